#!/usr/bin/env bash
# Slurm job array for a sweep (jobs/sweep.py): array task I runs point I of the sweep with all the
# task's ranks, checkpointed, stopped by SIGUSR1 two minutes before the time limit and requeued;
# the requeued task resumes its point (--resume auto). Every task appends its row to the same CSV
# (under a lock), so it must be on a file system every node sees. Submit from the repository root
# with the sweep's own arguments; count the points first:
#   jobs/sweep.py --name k-conv4 --models conv4 --k 0.1,0.3,0.5,0.7,0.9 --seeds 0,1,2 --epochs 100 \
#       --dataset cifar10 --data-dir /data/cifar10 --csv results/k-conv4.csv --list | tail -n 1   # "15 points, ..."
#   sbatch --array=0-14 jobs/slurm-sweep.sh --name k-conv4 --models conv4 --k 0.1,0.3,0.5,0.7,0.9 \
#       --seeds 0,1,2 --epochs 100 --dataset cifar10 --data-dir /data/cifar10 --csv results/k-conv4.csv
# A point already in the CSV exits at once, so the whole array can be resubmitted after a failure.
# Ranks per point: the task's (SLURM_NTASKS); launcher: mpirun (SWEEP_LAUNCH="srun --mpi=pmix" for
# srun). Docs/experiments.md has the paper's sweeps.
#SBATCH --job-name=hidden-mpi-sweep
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@120        # SIGUSR1 to this script 120 s before the time limit
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=hidden-mpi-sweep-%A_%a.out
set -euo pipefail
SUBMIT=${SLURM_SUBMIT_DIR:-$PWD}
cd "$SUBMIT"
if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
    echo "slurm-sweep.sh: not an array task (no SLURM_ARRAY_TASK_ID): submit with sbatch --array=0-N, N from jobs/sweep.py ... --list" >&2
    exit 2
fi
[ $# -gt 0 ] || { echo "slurm-sweep.sh: give the sweep's arguments (jobs/sweep.py --help)" >&2; exit 2; }
source "$SUBMIT/jobs/requeue.sh"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# Before "$@": the sweep's own "-- train flags" come last.
run_requeueable python3 "$SUBMIT/jobs/sweep.py" --np "${SLURM_NTASKS:-1}" --index "$SLURM_ARRAY_TASK_ID" "$@"

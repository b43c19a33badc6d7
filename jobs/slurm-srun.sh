#!/usr/bin/env bash
# Slurm, ranks started by Slurm itself (`srun --mpi=pmix`, no mpirun): the same run as
# slurm-train.sh (Conv6 on CIFAR-10 unless MODEL / DATASET say otherwise), checkpointed, stopped
# by SIGUSR1 two minutes before the time limit (srun passes the signal on to every task) and
# requeued; the requeued job resumes from its newest checkpoint (--resume auto). Needs Slurm's
# PMIx plugin (`srun --mpi=list` names pmix) and an Open MPI built with PMIx; where there is
# none, use slurm-train.sh. Submit from the repository root:
#   sbatch jobs/slurm-srun.sh /path/to/cifar-10-batches-bin                        # one node, 16 ranks
#   DATA=/data/cifar10 EXTRA_ARGS="--chunk 4" sbatch --nodes=2 jobs/slurm-srun.sh  # two nodes, 32 ranks
#   THREADS_PER_RANK=4 sbatch --ntasks-per-node=4 --cpus-per-task=4 jobs/slurm-srun.sh /data/cifar10
# Variables: as slurm-train.sh (DATA or $1, DATASET, MODEL, EPOCHS, RANKS, THREADS_PER_RANK,
# CKPT_DIR, METRICS, CHECKPOINT_EVERY, EXTRA_ARGS, HIDDEN_MPI_BIN); MPIRUN_ARGS are srun options
# here (e.g. "--mpi=pmix_v4"; later options win). A bad value stops the job with one message and
# exit status 2 before srun starts.
#SBATCH --job-name=hidden-mpi
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@120        # SIGUSR1 to this script 120 s before the time limit
#SBATCH --requeue                  # allow `scontrol requeue` (and requeue on preemption)
#SBATCH --open-mode=append         # a requeued job appends to its output file
#SBATCH --output=hidden-mpi-%j.out
set -euo pipefail

# Slurm runs a copy of this script from its spool folder: the helpers are found from the submit folder.
JOBS=${HIDDEN_MPI_JOBS:-${SLURM_SUBMIT_DIR:-$PWD}/jobs}
source "$JOBS/job-config.sh"
source "$JOBS/requeue.sh"
job_config slurm "${1:-}"

# srun no longer takes --cpus-per-task from sbatch (Slurm 22.05 and later): give it again.
# --kill-on-bad-exit: a rank that fails takes the others down instead of leaving them waiting.
run_requeueable srun --mpi=pmix --ntasks="$RANKS" --cpus-per-task="$THREADS_PER_RANK" \
    --cpu-bind=cores --kill-on-bad-exit=1 ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} \
    "$BIN" "${TRAIN_ARGS[@]}"

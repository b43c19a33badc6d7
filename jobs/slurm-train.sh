#!/usr/bin/env bash
# Slurm: edge-popup Conv6 on CIFAR-10, one rank per core, checkpointed and requeued before the
# time limit (Docs/checkpoints.md explains each line).
#   sbatch jobs/slurm-train.sh /path/to/cifar-10-batches-bin
#SBATCH --job-name=hidden-mpi
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@120        # SIGUSR1 to this script 120 s before the time limit
#SBATCH --requeue                  # allow `scontrol requeue` (and requeue on preemption)
#SBATCH --open-mode=append         # a requeued job appends to its output file
#SBATCH --output=hidden-mpi-%j.out
set -u
export OPENBLAS_NUM_THREADS=1
BIN=${HIDDEN_MPI_BIN:-$PWD/.build/release/hidden-mpi}
RUN=runs/conv6-${SLURM_JOB_ID}     # the job id stays the same across requeues
mkdir -p runs
# The exact reduction (default) gives the same bits on any number of ranks up to the chunks per
# batch (128 / 8 = 16 here), so a requeue onto another allocation continues the same run. For
# more ranks than that (sbatch -N 2 and up), add --chunk 4 (32 chunks) from the first submission
# on: the checkpoint keeps it. Docs/reproducibility.md.

# Slurm runs a copy of this script from its spool folder: requeue.sh is found from the submit folder.
source "${HIDDEN_MPI_JOBS:-$PWD/jobs}/requeue.sh"
run_requeueable mpirun -np "$SLURM_NTASKS" --bind-to core "$BIN" train \
    --model conv6 --dataset cifar10 --data-dir "$1" --epochs 100 \
    --checkpoint-dir "$RUN" --checkpoint-every 500 --resume auto --metrics "$RUN.jsonl"

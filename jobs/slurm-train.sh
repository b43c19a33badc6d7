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

mpirun -np "$SLURM_NTASKS" --bind-to core "$BIN" train \
    --model conv6 --dataset cifar10 --data-dir "$1" --epochs 100 \
    --checkpoint-dir "$RUN" --checkpoint-every 500 --resume auto --metrics "$RUN.jsonl" &
pid=$!
trap 'echo "time limit near: asking hidden-mpi to checkpoint"; kill -USR1 "$pid"; signalled=1' USR1
wait "$pid"; status=$?
# A trapped signal interrupts `wait` (status 128 + 10): wait again for mpirun's own status.
if [ "${signalled:-0}" = 1 ]; then wait "$pid"; status=$?; fi
if [ "$status" -eq 75 ]; then
    echo "checkpointed; requeueing"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"

#!/usr/bin/env bash
# Slurm, mpirun inside the allocation: edge-popup training (Conv6 on CIFAR-10 unless MODEL /
# DATASET say otherwise), one rank per task, checkpointed, stopped by SIGUSR1 two minutes before
# the time limit and requeued; the requeued job resumes from its newest checkpoint
# (--resume auto). Docs/jobs.md explains each variable; Docs/checkpoints.md the signal and requeue.
# Submit from the repository root (Slurm runs a spooled copy of this file there):
#   sbatch jobs/slurm-train.sh /path/to/cifar-10-batches-bin                        # one node, 16 ranks
#   DATA=/data/cifar10 EXTRA_ARGS="--chunk 4" sbatch --nodes=2 jobs/slurm-train.sh  # two nodes, 32 ranks
#   DATASET=fashion-mnist MODEL=fc EPOCHS=10 sbatch --ntasks-per-node=4 jobs/slurm-train.sh
#   THREADS_PER_RANK=4 sbatch --ntasks-per-node=4 --cpus-per-task=4 jobs/slurm-train.sh /data/cifar10
# Variables (sbatch passes the submitting shell's environment): DATA (or $1), DATASET, MODEL,
# EPOCHS, RANKS (default SLURM_NTASKS), THREADS_PER_RANK (default SLURM_CPUS_PER_TASK, else 1),
# CKPT_DIR (default runs/MODEL-DATASET-slurm-JOBID), METRICS, CHECKPOINT_EVERY, EXTRA_ARGS,
# MPIRUN_ARGS (e.g. "--mca pml ucx" or "--mca btl_tcp_if_include ib0"), HIDDEN_MPI_BIN.
# A bad value stops the job with one message and exit status 2 before mpirun starts.
#SBATCH --job-name=hidden-mpi
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@120        # SIGUSR1 to this script 120 s before the time limit
#SBATCH --requeue                  # allow `scontrol requeue` (and requeue on preemption)
#SBATCH --open-mode=append         # a requeued job appends to its output file
#SBATCH --output=hidden-mpi-%j.out
set -euo pipefail
# The job id stays the same across requeues, and so does the default CKPT_DIR. The exact
# reduction (default) gives the same bits on any number of ranks up to the chunks per batch
# (128 / 8 = 16 by default), so a requeue onto another allocation continues the same run; for
# more ranks (two nodes and up) add EXTRA_ARGS="--chunk 4" (32 chunks) from the first submission
# on: the checkpoint keeps it. Docs/reproducibility.md.

# Slurm runs a copy of this script from its spool folder: the helpers are found from the submit folder.
JOBS=${HIDDEN_MPI_JOBS:-${SLURM_SUBMIT_DIR:-$PWD}/jobs}
source "$JOBS/job-config.sh"
source "$JOBS/requeue.sh"
job_config slurm "${1:-}"

run_requeueable mpirun -np "$RANKS" "${BIND_ARGS[@]}" ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} \
    "$BIN" "${TRAIN_ARGS[@]}"

#!/usr/bin/env bash
# PBS / Torque: the same run as slurm-train.sh, checkpointed and rerunnable: a job that PBS reruns
# (after a node failure or preemption, `#PBS -r y`) resumes from the newest checkpoint, on
# whatever number of ranks its new allocation has (up to 16 = 128 / 8 chunks; the exact reduction
# makes that the same run, Docs/reproducibility.md).
#   qsub -v DATA=/path/to/cifar-10-batches-bin jobs/pbs-train.sh
#PBS -N hidden-mpi
#PBS -l select=1:ncpus=16:mpiprocs=16
#PBS -l walltime=04:00:00
#PBS -r y
#PBS -j oe
set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
export OPENBLAS_NUM_THREADS=1
BIN=${HIDDEN_MPI_BIN:-$PWD/.build/release/hidden-mpi}
RUN=runs/conv6-pbs                 # one folder per run: a rerun finds its checkpoints there
mkdir -p runs
NP=$(wc -l < "$PBS_NODEFILE")      # one rank per line of the node file (mpiprocs)
mpirun -np "$NP" --hostfile "$PBS_NODEFILE" --bind-to core "$BIN" train \
    --model conv6 --dataset cifar10 --data-dir "${DATA:?set DATA}" --k 0.5 --epochs 100 \
    --checkpoint-dir "$RUN" --checkpoint-every 500 --resume auto --metrics "$RUN.jsonl"

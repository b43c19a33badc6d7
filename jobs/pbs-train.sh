#!/usr/bin/env bash
# PBS / Torque: the same run as slurm-train.sh.
#   qsub -v DATA=/path/to/cifar-10-batches-bin jobs/pbs-train.sh
#PBS -N hidden-mpi
#PBS -l select=1:ncpus=16:mpiprocs=16
#PBS -l walltime=04:00:00
#PBS -j oe
set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
export OPENBLAS_NUM_THREADS=1
BIN=${HIDDEN_MPI_BIN:-$PWD/.build/release/hidden-mpi}
mkdir -p runs
mpirun -np 16 --hostfile "$PBS_NODEFILE" --bind-to core "$BIN" train \
    --model conv6 --dataset cifar10 --data-dir "${DATA:?set DATA}" --k 0.5 --epochs 100 \
    --metrics "runs/conv6-${PBS_JOBID:-local}.jsonl"

#!/usr/bin/env bash
# Slurm: edge-popup Conv6 on CIFAR-10, one rank per core, one BLAS thread per rank.
#   sbatch jobs/slurm-train.sh /path/to/cifar-10-batches-bin
#SBATCH --job-name=hidden-mpi
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=16
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=hidden-mpi-%j.out
set -euo pipefail
DATA=${1:?usage: sbatch jobs/slurm-train.sh CIFAR_DIR}
export OPENBLAS_NUM_THREADS=1
BIN=${HIDDEN_MPI_BIN:-$PWD/.build/release/hidden-mpi}
mkdir -p runs
mpirun -np "${SLURM_NTASKS}" --bind-to core "$BIN" train \
    --model conv6 --dataset cifar10 --data-dir "$DATA" --k 0.5 --epochs 100 \
    --metrics "runs/conv6-${SLURM_JOB_ID}.jsonl"

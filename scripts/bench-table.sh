#!/usr/bin/env bash
# The tables of Docs/performance.md: `hidden-mpi bench` for each model on CIFAR-shaped input
# (fc on 1x28x28), one rank and two ranks at the same per-rank batch, and ranks x threads.
#   scripts/bench-table.sh [steps]        (about 10 minutes on 2 cores with the default 10 steps)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
STEPS=${1:-10}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
row() {  # label, then mpirun/bench arguments
    local label=$1; shift
    "$@" --json | python3 "$(dirname "$0")/bench_row.py" "$label"
}
echo "| run | images/s | step ms | step GFLOP/s | sgemm peak | of peak | mask | fwd / bwd ms | allreduce hidden | kernel |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for model in conv4 conv2 conv6 conv8; do
    for np in 1 2; do
        row "$model, batch 128/rank, np $np" mpirun -np "$np" "$BIN" bench --model "$model" --rank-batch 128 --steps "$STEPS"
    done
done
for np in 1 2; do
    row "fc (1x28x28), batch 128/rank, np $np" mpirun -np "$np" "$BIN" bench --model fc --input 1x28x28 --rank-batch 128 --steps 50
done
row "conv4, batch 128, 1 rank x 2 threads" "$BIN" bench --model conv4 --batch-size 128 --threads 2 --steps "$STEPS"
row "conv4, batch 128, 2 ranks x 1 thread" mpirun -np 2 "$BIN" bench --model conv4 --batch-size 128 --steps "$STEPS"

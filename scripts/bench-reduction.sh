#!/usr/bin/env bash
# Issue 10, item 2 (Docs/performance.md, "Exact reduction"): hidden-mpi bench with
# --reduction exact and --reduction float, A/B interleaved for ROUNDS rounds, one rank x one BLAS
# thread, then two ranks (oversubscribed on fewer than 2 free cores, so read those as a check that
# the reduction works, not as a speed figure), for fc (1x28x28), conv4 and cifar-resnet18
# (3x32x32), global batch 128 (exact: chunks of 8). The kernel is the one hidden-mpi chooses;
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE stay as the environment sets them.
#   scripts/bench-reduction.sh [rounds] [models] > results.jsonl     (about 15 minutes on 2 cores)
#   python3 scripts/reduction_table.py results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS=${1:-3}
MODELS=${2:-"fc conv4 cifar-resnet18"}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(round=int(sys.argv[1])); print(json.dumps(d, sort_keys=True), flush=True)' "$@"; }
args() {
    case "$1" in
        fc) echo "--model fc --input 1x28x28 --steps 300 --warmup-steps 5" ;;
        conv4) echo "--model conv4 --input 3x32x32 --steps 8 --warmup-steps 1" ;;
        *) echo "--model $1 --input 3x32x32 --steps 4 --warmup-steps 1" ;;
    esac
}
for round in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        # Alternate which reduction goes first from round to round.
        order="exact float"; [ $((round % 2)) -eq 0 ] && order="float exact"
        for reduction in $order; do
            "$BIN" bench $(args "$model") --batch-size 128 --reduction "$reduction" --json | tag "$round"
        done
    done
done
for model in $MODELS; do
    for reduction in exact float; do
        mpirun --oversubscribe -np 2 "$BIN" bench $(args "$model") --batch-size 128 --reduction "$reduction" --json | tag 0
    done
done

#!/usr/bin/env bash
# The sharded update (issue 12, Docs/scaling.md): 1 rank, then 2 ranks with every rank updating
# every score (--replicated-update) and with the sharded update, at the same global batch,
# A/B interleaved for ROUNDS rounds. Prints bench JSON lines with "round" and "variant" added.
#   scripts/bench-update.sh [rounds] [models]   > update.jsonl
#   python3 scripts/update_table.py update.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS=${1:-3}
MODELS=${2:-"fc conv2"}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
STEPS=${STEPS:-20}
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(variant=sys.argv[1], round=int(sys.argv[2])); print(json.dumps(d, sort_keys=True), flush=True)' "$@"; }
for r in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        args=(bench --model "$model" --input 1x28x28 --batch-size 128 --steps "$STEPS" --warmup-steps 3 --threads 1 --json)
        mpirun -np 1 "$BIN" "${args[@]}" | tag one-rank "$r"
        mpirun -np 2 "$BIN" "${args[@]}" --replicated-update | tag replicated "$r"
        mpirun -np 2 "$BIN" "${args[@]}" | tag sharded "$r"
    done
done

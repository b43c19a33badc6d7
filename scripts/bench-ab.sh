#!/usr/bin/env bash
# Two builds of hidden-mpi A/B: the same `bench` runs with each, the order alternating from round
# to round, on one rank and on two ranks at the same per-rank batch, with one fixed OpenBLAS kernel
# (KERNEL, default Haswell) so that only the code differs. For a change to the step's code.
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY [rounds] [models]   > ab.jsonl
#   python3 scripts/ab_table.py ab.jsonl
# Models: conv4, cifar-resnet18 (3x32x32, batch 128) and resnet50 (3x224x224, batch 32) by
# default. Prints bench objects with "build" (old/new), "round" and "ranks" added.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OLD=$1 NEW=$2
ROUNDS=${3:-3}
MODELS=${4:-"cifar-resnet18 resnet50"}
export OPENBLAS_CORETYPE=${KERNEL:-Haswell}
unset OPENBLAS_L2_SIZE
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(build=sys.argv[1], round=int(sys.argv[2]), ranks=int(sys.argv[3])); print(json.dumps(d, sort_keys=True), flush=True)' "$@"; }
shape() { case $1 in resnet50) echo "3x224x224 32 1000 2";; *) echo "3x32x32 128 10 3";; esac; }
for r in $(seq 1 "$ROUNDS"); do
    for np in 1 2; do
        for model in $MODELS; do
            read -r input batch classes steps <<<"$(shape "$model")"
            args=(bench --model "$model" --input "$input" --classes "$classes" --rank-batch "$batch" --steps "$steps" --warmup-steps 1 --json)
            order=(old new); [ $((r % 2)) -eq 0 ] && order=(new old)
            for build in "${order[@]}"; do
                bin=$OLD; [ "$build" = new ] && bin=$NEW
                mpirun -np "$np" "$bin" "${args[@]}" | tag "$build" "$r" "$np"
            done
        done
    done
done

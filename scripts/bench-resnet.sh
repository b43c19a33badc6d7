#!/usr/bin/env bash
# The ResNet rows of Docs/performance.md: hidden-mpi against the PyTorch reference bench
# (../shared/reference, sort-based top-k, non-affine batch norm) on the same machine, one thread,
# A/B interleaved for ROUNDS rounds, medians; then hidden-mpi on 2 ranks at the same per-rank batch.
#   scripts/bench-resnet.sh [rounds]      (about 20 minutes on 2 cores with 3 rounds)
# Needs the reference's venv: PY=$(bash ../shared/reference/setup.sh). Prints JSON lines
# (hidden-mpi's bench object, or the reference's, each with "impl" and "round" added).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS=${1:-3}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
REF=${TORCH_REF:-../shared/reference/edge_popup_torch.py}
PY=${TORCH_PY:-$(bash ../shared/reference/setup.sh)}
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(impl=sys.argv[1], round=int(sys.argv[2])); print(json.dumps(d, sort_keys=True))' "$@"; }
# model, input, batch, hidden-mpi steps, reference steps
configs=("cifar-resnet18 3x32x32 128 5 5" "resnet50 3x224x224 32 3 3")
for r in $(seq 1 "$ROUNDS"); do
    for c in "${configs[@]}"; do
        read -r model input batch steps rsteps <<<"$c"
        classes=$([ "$model" = resnet50 ] && echo 1000 || echo 10)
        "$BIN" bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" --steps "$steps" \
            --warmup-steps 1 --threads 1 --json | tag hidden-mpi "$r"
        "$PY" "$REF" bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" --steps "$rsteps" \
            --warmup-steps 1 --threads 1 --k 0.5 | tag pytorch-sort "$r"
    done
done
for c in "${configs[@]}"; do
    read -r model input batch steps rsteps <<<"$c"
    classes=$([ "$model" = resnet50 ] && echo 1000 || echo 10)
    mpirun -np 2 "$BIN" bench --model "$model" --input "$input" --classes "$classes" --rank-batch "$batch" --steps "$steps" \
        --warmup-steps 1 --json | tag hidden-mpi-np2 0
done

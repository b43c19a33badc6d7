#!/usr/bin/env bash
# The measurements scripts/cost_model.py reads (Docs/cost-model.md): one-rank bench rows of conv4,
# cifar-resnet18, resnet50 and wide-resnet50-2 (ROUNDS rounds, interleaved), 1- and 2-rank
# benches of conv4 and cifar-resnet18 at the same per-rank batch, interleaved (the model's check),
# and the collectives probe on 2 ranks of this machine (shared memory).
#   scripts/bench-cost-model.sh [rounds] [outdir]     (about 20 minutes on 2 cores, 3 rounds)
# Writes OUTDIR/cost-model-bench-DATE-TAG.jsonl and OUTDIR/cost-model-check-DATE-TAG.jsonl (bench
# objects with "round" and "ranks" added) and OUTDIR/collectives-shm-2ranks-DATE-TAG.json. TAG
# defaults to epyc-zen3 (set MACHINE_TAG). The TCP probe across two network-namespace hosts:
#   scripts/fake-hosts.sh up cmodel 2 1
#   scripts/fake-hosts.sh mpirun cmodel -np 2 $PWD/.build/release/hidden-mpi collectives --json \
#       --max-bytes 64000000 --min-seconds 0.05 > OUTDIR/collectives-tcp-veth-2hosts-DATE.json
#   scripts/fake-hosts.sh down cmodel
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ROUNDS=${1:-3}
OUT=${2:-Docs/results}
DATE=$(date +%F)
TAG=${MACHINE_TAG:-epyc-zen3}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
BENCH=$OUT/cost-model-bench-$DATE-$TAG.jsonl
CHECK=$OUT/cost-model-check-$DATE-$TAG.jsonl
PROBE=$OUT/collectives-shm-2ranks-$DATE-$TAG.json
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(round=int(sys.argv[1]), ranks=int(sys.argv[2])); print(json.dumps(d, sort_keys=True))' "$@"; }
# model, input, classes, batch, steps, warm-up steps
configs=("conv4 3x32x32 10 32 20 3" "cifar-resnet18 3x32x32 10 32 5 1"
         "resnet50 3x224x224 1000 8 3 1" "wide-resnet50-2 3x224x224 1000 8 3 1")
for r in $(seq 1 "$ROUNDS"); do
    for c in "${configs[@]}"; do
        read -r model input classes batch steps warm <<<"$c"
        "$BIN" bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" \
            --steps "$steps" --warmup-steps "$warm" --threads 1 --json | tag "$r" 1 >>"$BENCH"
    done
done
# The check: conv4 and cifar-resnet18 on 1 and 2 ranks at the same per-rank batch (weak
# scaling; the sharded update on 2), A/B interleaved.
for r in $(seq 1 "$ROUNDS"); do
    for c in "conv4 20 3" "cifar-resnet18 5 1"; do
        read -r model steps warm <<<"$c"
        "$BIN" bench --model "$model" --input 3x32x32 --rank-batch 32 --steps "$steps" --warmup-steps "$warm" \
            --threads 1 --json | tag "$r" 1 >>"$CHECK"
        mpirun -np 2 "$BIN" bench --model "$model" --input 3x32x32 --rank-batch 32 --steps "$steps" \
            --warmup-steps "$warm" --threads 1 --json | tag "$r" 2 >>"$CHECK"
    done
done
mpirun -np 2 "$BIN" collectives --json --model resnet50 --min-seconds 0.05 >"$PROBE"
echo "wrote $BENCH $CHECK $PROBE" >&2

#!/usr/bin/env bash
# Is hidden-mpi's own kernel choice as fast as the best kernel forced by hand? (Speed II,
# Docs/performance.md.) With OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in this script alone,
# each round runs `bench` (one rank x one thread) with the kernel the probe chooses and with each
# correct kernel forced, the order rotated from round to round so that no configuration always
# runs first; a fresh kernel cache is probed once at the start.
#   scripts/bench-kernel-ab.sh [rounds] [models]   > ab.jsonl   (about 5 minutes a round on 2 cores)
#   python3 scripts/speed_table.py ab.jsonl        (own / best forced, with the same-kernel spread)
# Prints the probe's result, then bench objects with "impl", "round", "position" and
# "kernel_forced" ("none" for the own choice) added.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
ROUNDS=${1:-6}
MODELS=${2:-"conv4 cifar-resnet18 resnet50"}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
export HIDDEN_MPI_CACHE_DIR=${HIDDEN_MPI_CACHE_DIR:-$(mktemp -d)}
rm -f "$HIDDEN_MPI_CACHE_DIR"/blas-kernels-*.json
"$BIN" kernels --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d["impl"]="probe-result"; print(json.dumps(d, sort_keys=True))'
cores=$("$BIN" kernels --json | python3 -c 'import json,sys; print(" ".join(sorted({c["core"] for c in json.load(sys.stdin)["candidates"] if c["status"] == "ok"})))')
[ -n "${CORES:-}" ] && cores=$CORES  # e.g. CORES="SkylakeX Cooperlake": force only these
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(impl="hidden-mpi", round=int(sys.argv[1]), position=int(sys.argv[2]), kernel_forced=sys.argv[3]); print(json.dumps(d, sort_keys=True), flush=True)' "$@"; }
shape() { case $1 in resnet50) echo "3x224x224 32 1000 2";; cifar-resnet18) echo "3x32x32 128 10 3";; *) echo "3x32x32 128 10 5";; esac; }
configs=(none $cores)
for r in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        read -r input batch classes steps <<<"$(shape "$model")"
        args=(bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" --steps "$steps" --warmup-steps 1 --threads 1 --json)
        n=${#configs[@]}
        for p in $(seq 0 $((n - 1))); do
            c=${configs[$(((p + r - 1) % n))]}
            if [ "$c" = none ]; then "$BIN" "${args[@]}" | tag "$r" "$p" none
            else OPENBLAS_CORETYPE=$c "$BIN" "${args[@]}" | tag "$r" "$p" "$c"; fi
        done
    done
done

#!/usr/bin/env bash
# Speed II (Docs/performance.md): on this machine, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
# unset in this script alone, for conv4 (3x32x32, batch 128), cifar-resnet18 (3x32x32, batch 128)
# and resnet50 (3x224x224, batch 32), one rank x one thread, A/B interleaved for ROUNDS rounds:
#   hidden-mpi with its own kernel choice, hidden-mpi with each correct kernel forced,
#   the PyTorch reference (sort top-k) and its --topk kthvalue variant;
# then two ranks against the reference's DDP on two processes at the same global batch, also
# ROUNDS rounds with the order alternating.
#   scripts/bench-speed.sh [rounds] [models]   > results.jsonl   (about 60 minutes on 2 cores)
# CORES="SkylakeX Cooperlake" forces only those kernels (default: every correct one the probe
# found; the generic ones are 3-4x slower here and take most of the time).
#   python3 scripts/speed_table.py results.jsonl
# Prints JSON lines (bench objects with "impl", "round" and "kernel_forced" added). The kernel
# probe's own cost is measured first (a fresh cache, then a warm one).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
ROUNDS=${1:-3}
MODELS=${2:-"conv4 cifar-resnet18 resnet50"}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
REF=${TORCH_REF:-../shared/reference/edge_popup_torch.py}
PY=${TORCH_PY:-$(bash ../shared/reference/setup.sh)}
tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d.update(impl=sys.argv[1], round=int(sys.argv[2]), kernel_forced=sys.argv[3]); print(json.dumps(d, sort_keys=True), flush=True)' "$@"; }
export HIDDEN_MPI_CACHE_DIR=${HIDDEN_MPI_CACHE_DIR:-$(mktemp -d)}
rm -f "$HIDDEN_MPI_CACHE_DIR"/blas-kernels-*.json
# The probe's cost: cold (probes), then warm (reads the cache).
for state in cold warm; do
    s=$(date +%s.%N); "$BIN" kernels --json >/dev/null; e=$(date +%s.%N)
    python3 -c "import json,sys; print(json.dumps({\"impl\": \"probe\", \"state\": sys.argv[1], \"seconds\": float(sys.argv[3]) - float(sys.argv[2])}))" "$state" "$s" "$e"
done
"$BIN" kernels --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d["impl"]="probe-result"; print(json.dumps(d, sort_keys=True))'
cores=$("$BIN" kernels --json | python3 -c 'import json,sys; print(" ".join(sorted({c["core"] for c in json.load(sys.stdin)["candidates"] if c["status"] == "ok"})))')
[ -n "${CORES:-}" ] && cores=$CORES
shape() { case $1 in resnet50) echo "3x224x224 32 1000 2 2";; *) echo "3x32x32 128 10 5 5";; esac; }
for r in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        read -r input batch classes steps rsteps <<<"$(shape "$model")"
        args=(bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" --steps "$steps" --warmup-steps 1 --threads 1 --json)
        # Every run of a round, its order rotated from round to round, so that no configuration
        # always runs first (or right after the other implementation).
        runs=(own $cores pytorch-sort pytorch-kthvalue)
        shift_by=$(( (r - 1) % ${#runs[@]} ))
        runs=("${runs[@]:$shift_by}" "${runs[@]:0:$shift_by}")
        for run in "${runs[@]}"; do
            case $run in
                own) "$BIN" "${args[@]}" | tag hidden-mpi "$r" none ;;
                pytorch-*) "$PY" "$REF" bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" \
                               --steps "$rsteps" --warmup-steps 1 --threads 1 --k 0.5 --topk "${run#pytorch-}" | tag "$run" "$r" none ;;
                *) OPENBLAS_CORETYPE=$run "$BIN" "${args[@]}" | tag hidden-mpi "$r" "$run" ;;
            esac
        done
    done
done
for r in $(seq 1 "$ROUNDS"); do
    for model in $MODELS; do
        read -r input batch classes steps rsteps <<<"$(shape "$model")"
        order=(ours ddp); [ $((r % 2)) -eq 0 ] && order=(ddp ours)
        for impl in "${order[@]}"; do
            if [ "$impl" = ours ]; then
                mpirun -np 2 "$BIN" bench --model "$model" --input "$input" --classes "$classes" --batch-size "$batch" --steps "$steps" \
                    --warmup-steps 1 --json | tag hidden-mpi-np2 "$r" none
            else
                "$PY" "$REF" ddp --model "$model" --input "$input" --classes "$classes" --world-size 2 --batch-size "$batch" \
                    --steps "$rsteps" --warmup-steps 1 --k 0.5 | tag pytorch-ddp2 "$r" none
            fi
        done
    done
done

#!/usr/bin/env bash
# A scaling study: strong scaling (the global batch fixed, split over more ranks) and weak scaling
# (the per-rank batch fixed) over a list of rank counts, on this node or across the nodes of
# hostfiles, one `hidden-mpi bench` per point. Prints one CSV row per point (header first):
#   ranks,nodes,model,mode,global_batch,rank_batch,images_per_s,step_s,compute_s,reduction_s,
#   waiting_s,hidden_share,speedup,efficiency,oversubscribed,update,machine
# compute_s: a step's work (masks, forward, backward, update); reduction_s: how long the gradient
# reduction was in flight; waiting_s: what was not hidden (the reduction's wait after the backward
# pass, the allgather of W_eff and the top-k selection's small allreduces); hidden_share: 1 - the
# reduction's wait / its time in flight. Speed-up and efficiency
# are against the first rank count of the same model and mode (strong: images/s over P x the
# first's per rank; weak: images/s per rank over the first's). Points with more ranks than the
# node(s) have cores are marked oversubscribed=1: a functional check, not a measurement.
#
#   jobs/scaling-sweep.sh > scaling.csv                                   # defaults below
#   RANKS="1 2 4 8 16" MODELS="conv2 fc" jobs/scaling-sweep.sh > scaling.csv
#   HOSTFILE=hostfiles/two-nodes.example RANKS="16 32" jobs/scaling-sweep.sh >> scaling.csv
#   python3 scripts/plot_scaling.py scaling.csv -o Docs/scaling.png      # table + plots
#
# Variables: RANKS ("1 2"), MODELS ("fc conv2"), MODES ("strong weak"), BATCH (global batch of
# strong scaling, 128), RANK_BATCH (per-rank batch of weak scaling, 64), INPUT (1x28x28, the
# Fashion-MNIST shape), STEPS (20 timed steps, after 3 untimed), HOSTFILE (none: this node),
# CORES (cores per node, for the oversubscription mark; default nproc), MACHINE (a label for the
# machine column; default the CPU model), HIDDEN_MPI_BIN, MPIRUN_ARGS (more mpirun options).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
RANKS=${RANKS:-"1 2"}
MODELS=${MODELS:-"fc conv2"}
MODES=${MODES:-"strong weak"}
BATCH=${BATCH:-128}
RANK_BATCH=${RANK_BATCH:-64}
INPUT=${INPUT:-1x28x28}
STEPS=${STEPS:-20}
CORES=${CORES:-$(nproc)}
MACHINE=${MACHINE:-$(lscpu | sed -n 's/^Model name: *//p' | head -1 | tr ',' ' ')}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
for v in BATCH RANK_BATCH STEPS CORES; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "scaling-sweep.sh: $v=${!v} is not a positive whole number" >&2; exit 2; }
done
for np in $RANKS; do
    [[ $np =~ ^[1-9][0-9]*$ ]] || { echo "scaling-sweep.sh: RANKS has '$np', not a positive whole number" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "scaling-sweep.sh: no binary at $BIN (swift build -c release --static-swift-stdlib, or set HIDDEN_MPI_BIN)" >&2; exit 2; }
if [ -n "${HOSTFILE:-}" ]; then
    [ -r "$HOSTFILE" ] || { echo "scaling-sweep.sh: cannot read HOSTFILE=$HOSTFILE" >&2; exit 2; }
fi
# Inside an allocation of N tasks the sweep runs fewer ranks on purpose (train and bench refuse
# that otherwise, taking it for N independent one-rank jobs).
export HIDDEN_MPI_ALLOW_FEWER_RANKS=1
read -ra extra <<<"${MPIRUN_ARGS:-}"
launch=(mpirun ${HOSTFILE:+--hostfile "$HOSTFILE"} ${extra[@]+"${extra[@]}"})
# A launcher other than mpirun (scripts/fake-hosts.sh mpirun NAME) may stand in: LAUNCH="...".
if [ -n "${LAUNCH:-}" ]; then read -ra launch <<<"$LAUNCH"; fi

echo "ranks,nodes,model,mode,global_batch,rank_batch,images_per_s,step_s,compute_s,reduction_s,waiting_s,hidden_share,speedup,efficiency,oversubscribed,update,machine"
for model in $MODELS; do
    for mode in $MODES; do
        base=""
        for np in $RANKS; do
            if [ "$mode" = strong ]; then size=(--batch-size "$BATCH"); else size=(--rank-batch "$RANK_BATCH"); fi
            json=$("${launch[@]}" -np "$np" "$BIN" bench --model "$model" --input "$INPUT" "${size[@]}" \
                   --steps "$STEPS" --warmup-steps 3 --threads 1 --json | tail -n 1)
            row=$(python3 - "$json" "$mode" "$CORES" "$MACHINE" "$base" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); mode = sys.argv[2]; cores = int(sys.argv[3]); machine = sys.argv[4]
p = d["phases_s"]
P, nodes = d["world_size"], d.get("nodes", 1)
waiting = p.get("allreduce_wait", 0) + p.get("allgather_wait", 0) + p.get("selection_wait", 0)
compute = d["step_s"] - waiting
reduction = (d.get("allreduce_lifetime_s", 0) + p.get("allgather_wait", 0) + p.get("selection_wait", 0)) if P > 1 else 0.0
hidden = d.get("allreduce_hidden_fraction")
ips = d["images_per_s"]
if sys.argv[5]:
    bP, bips = sys.argv[5].split(":"); bP, bips = int(bP), float(bips)
else:
    bP, bips = P, ips
speedup = ips / bips
eff = (ips / P) / (bips / bP)  # per-rank throughput against the first point's (strong and weak alike)
over = 1 if P > cores * nodes else 0
print(f"{P},{nodes},{d['model']},{mode},{d['global_batch']},{d['rank_batch']},{ips:.1f},{d['step_s']:.6f},{compute:.6f},"
      f"{reduction:.6f},{waiting:.6f},{'' if hidden is None else f'{hidden:.3f}'},{speedup:.3f},{eff:.3f},{over},"
      f"{d.get('update', '')},{machine}")
PY
)
            echo "$row"
            [ -n "$base" ] || base="$np:$(cut -d, -f7 <<<"$row")"
        done
    done
done

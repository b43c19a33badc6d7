#!/usr/bin/env bash
# Strong scaling on one node: the same global batch over 1, 2, 4, ... ranks, a few hundred
# steps each on Fashion-MNIST; prints one CSV row per rank count (ranks, seconds, images/s).
#   jobs/scaling-sweep.sh "1 2 4 8 16" conv2
#   HOSTFILE=hostfiles/two-nodes.example jobs/scaling-sweep.sh "16 32" conv2   # across nodes
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
RANKS=${1:-"1 2"}
MODEL=${2:-fc}
STEPS=${STEPS:-200}
BIN=${HIDDEN_MPI_BIN:-.build/release/hidden-mpi}
# Inside an allocation of N tasks the sweep runs fewer ranks on purpose (train refuses that
# otherwise, taking it for N independent one-rank jobs).
export HIDDEN_MPI_ALLOW_FEWER_RANKS=1
mkdir -p runs
echo "ranks,model,steps,seconds,images_per_s,compute_s,allreduce_s"
for np in $RANKS; do
    out=runs/scaling-$MODEL-np$np.jsonl
    mpirun ${HOSTFILE:+--hostfile "$HOSTFILE"} -np "$np" "$BIN" train --model "$MODEL" --epochs 1 --max-steps "$STEPS" --progress 0 --metrics "$out" >/dev/null
    python3 - "$out" "$np" "$MODEL" "$STEPS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
e = [r for r in rows if r.get("kind") == "epoch"][-1]
print(f"{sys.argv[2]},{sys.argv[3]},{sys.argv[4]},{e['seconds']:.2f},{e['images_per_s']:.1f},{e['compute_s']:.2f},{e['allreduce_s']:.2f}")
PY
done

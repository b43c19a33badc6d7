#!/usr/bin/env bash
# The small-scale sweeps of Docs/experiments.md on Fashion-MNIST, all into one CSV as committed:
# Docs/results/k-sweep-fashion.csv (plotted by scripts/plot_sweep.py). Resumable: run it again and
# the points already in the CSV are skipped; a point stopped midway continues from its checkpoint.
#   jobs/fashion-sweeps.sh [fc|conv2|inits ...]      (default: all three)
# NP ranks per point (default 2). On the 2-core EPYC Zen 3 a point took about 1 minute (fc) and
# 8 minutes (conv2): about 20 minutes (fc, 21 points), 3 hours (conv2, 21) and 70 minutes (inits, 9).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
NP=${NP:-2}
csv=Docs/results/k-sweep-fashion.csv
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(fc conv2 inits)
for part in "${parts[@]}"; do
    case $part in
    fc)     # accuracy against k, with the dense and supermask baselines (10 epochs)
        jobs/sweep.py --name fashion-fc --models fc --k 0.1,0.3,0.5,0.7,0.9 --methods edge-popup,dense,supermask \
            --seeds 0,1,2 --epochs 10 --np "$NP" --csv $csv ;;
    conv2)  # the same for conv2 (3 epochs)
        jobs/sweep.py --name fashion-conv2 --models conv2 --k 0.1,0.3,0.5,0.7,0.9 --methods edge-popup,dense,supermask \
            --seeds 0,1,2 --epochs 3 --np "$NP" --csv $csv ;;
    inits)  # signed constant against Kaiming normal, each scaled and unscaled, for conv2 (3 epochs),
            # its signed-constant points are those of the conv2 k sweep
        jobs/sweep.py --name fashion-inits --models conv2 --k 0.5 \
            --inits signed-constant,signed-constant:unscaled,kaiming-normal,kaiming-normal:unscaled \
            --seeds 0,1,2 --epochs 3 --np "$NP" --csv $csv ;;
    *) echo "fashion-sweeps.sh: unknown part $part (fc, conv2, inits)" >&2; exit 2 ;;
    esac
done

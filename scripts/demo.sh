#!/usr/bin/env bash
# Set up and run the main job: install what is missing, build, and train the FC model on
# Fashion-MNIST with 2 ranks (about a minute on 2 cores). Extra arguments go to `train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
# The Swift runtime linked in, as scripts/install.sh and the tests build it (one build for all three).
swift build -c release --static-swift-stdlib
mkdir -p runs
mpirun -np 2 .build/release/hidden-mpi train --model fc --k 0.5 --epochs 3 --metrics runs/demo.jsonl "$@"
echo "next: the paper's Conv2 (5 to 8 minutes on 2 cores, about 90% after 3 epochs):"
echo "  source scripts/env.sh && mpirun -np 2 .build/release/hidden-mpi train --model conv2 --epochs 3 --metrics runs/conv2.jsonl"
echo "  python3 scripts/plot_metrics.py runs/demo.jsonl runs/conv2.jsonl -o runs/curves.png   # needs matplotlib"

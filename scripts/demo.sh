#!/usr/bin/env bash
# Set up and run the main job: install what is missing, build, and train the FC model on
# Fashion-MNIST with 2 ranks (about a minute on 2 cores). Extra arguments go to `train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
swift build -c release
mkdir -p runs
mpirun -np 2 .build/release/hidden-mpi train --model fc --k 0.5 --epochs 3 --metrics runs/demo.jsonl "$@"
echo "metrics written to runs/demo.jsonl"

#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the release binary (the multi-rank
# tests launch it under mpirun), then runs every XCTest target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
swift build -c release
swift test

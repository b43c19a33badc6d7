#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the release binary (the multi-rank
# tests launch it under mpirun), then runs every XCTest target and ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
# The release binary the multi-rank tests launch, with the Swift runtime inside (as
# scripts/install.sh builds it for clusters), installed with its manual page into a folder
# that InstallTests runs it from with the toolchain's libraries hidden.
swift build -c release --static-swift-stdlib
rm -rf .build/install-test
scripts/install.sh --no-build .build/install-test >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test --disable-swift-testing 2>&1 | tee "$log" || status=$?
# XCTest's last "Executed N tests, with [S tests skipped and] M failures" line is the run's total.
summary=$(grep -E "Executed [0-9]+ tests?, with " "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
    total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
    failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
    skipped=0
    if grep -qE "[0-9]+ tests? skipped" <<<"$summary"; then
        skipped=$(sed -E 's/.* ([0-9]+) tests? skipped.*/\1/' <<<"$summary")
    fi
    echo "$((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit "$status"

#!/usr/bin/env bash
# Fuzzes the readers of outside bytes with libFuzzer and the address sanitizer (issue 13): IDX
# (plain and gzip), CIFAR-10/100 batch files, score checkpoints, subnetwork files, the image-folder
# index and the JPEG decoder. Fuzz/ is a package of its own that depends on this one by path.
#   scripts/fuzz.sh [-t SECONDS] [-o DIR] [TARGET ...]   TARGETs: idx cifar checkpoint subnetwork index jpeg (default: all)
# Each target starts from its seeds in Tests/FuzzCorpus/TARGET (never changed) plus what earlier
# runs found in DIR/TARGET/corpus (DIR: runs/fuzz), runs SECONDS (default 60), and leaves any
# crash, leak, timeout or out-of-memory input in DIR/TARGET/ with its log. The suite's smoke run
# (FuzzSmokeTests) is `-t 3 -o` a folder of its own. Exit status 1 if any target
# found one. The build flags: --sanitize instruments only this package's own code, so the
# library is instrumented through -Xswiftc as well. Leak detection is off: FoundationEssentials
# leaks 4 KiB reading an empty file with FileManager.contents(atPath:) (the first input of every
# path-based target); crashes, hangs and memory blow-ups are what this looks for.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds=60
outdir=runs/fuzz
while [ $# -gt 0 ]; do
    case $1 in
    -t) seconds=${2:?-t needs seconds}; shift 2 ;;
    -o) outdir=${2:?-o needs a folder}; shift 2 ;;
    *) break ;;
    esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: -t $seconds is not a whole number of seconds" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx cifar checkpoint subnetwork index jpeg)
for t in "${targets[@]}"; do
    [ -d "Tests/FuzzCorpus/$t" ] || { echo "fuzz.sh: unknown target $t (idx cifar checkpoint subnetwork index jpeg)" >&2; exit 2; }
done
(cd Fuzz && swift build --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address 2>&1 | tail -n 1)
bin=Fuzz/.build/debug/FuzzReaders
found=0
for t in "${targets[@]}"; do
    out=$outdir/$t
    mkdir -p "$out/corpus"
    set +e
    # The safetensors targets get a dictionary of the format's words.
    dict=(); case $t in checkpoint|subnetwork) dict=(-dict=Tests/FuzzCorpus/safetensors.dict) ;; esac
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} HIDDEN_MPI_FUZZ_TARGET=$t "$bin" "$out/corpus" "Tests/FuzzCorpus/$t" -max_total_time="$seconds" ${dict[@]+"${dict[@]}"} \
        -timeout=10 -rss_limit_mb=2048 -max_len=65536 -detect_leaks=0 -artifact_prefix="$out/" -print_final_stats=1 >"$out/log" 2>&1
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1)
    cov=$(grep -oE "cov: [0-9]+" "$out/log" | tail -n 1 || true)
    if [ "$status" -eq 0 ]; then
        echo "$t: ${runs:-?} runs in $seconds s, ${cov:-cov: ?}, nothing found (log: $out/log)"
    else
        found=1
        echo "$t: FOUND something (status $status): $(grep -E "^==[0-9]+==ERROR|SUMMARY|Fatal error|deadly signal" "$out/log" | head -n 2 | tr '\n' ' ')"
        ls "$out" | grep -E "^(crash|leak|timeout|oom|slow-unit)-" | sed "s|^|  input: $out/|" || true
    fi
done
exit "$found"

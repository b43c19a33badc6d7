#!/usr/bin/env bash
# Builds hidden-mpi with the Swift runtime linked into the binary (--static-swift-stdlib) and
# installs it with its manual page, for clusters whose compute nodes have no Swift toolchain:
# build once on a login node, run on every node.
#
#   scripts/install.sh PREFIX              build, then install PREFIX/bin/hidden-mpi and
#                                          PREFIX/share/man/man1/hidden-mpi.1
#   scripts/install.sh --no-build PREFIX   install the static binary built already
#
# The compute nodes still need the C libraries it links (Open MPI, OpenBLAS, libjpeg-turbo, zlib:
# listed at the end), as every MPI program does; the Swift runtime and Foundation are inside.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
prefix=${1:?usage: scripts/install.sh [--no-build] PREFIX}
source scripts/env.sh
if [ "$build" -eq 1 ]; then
    swift build -c release --static-swift-stdlib
fi
bin=.build/release/hidden-mpi
[ -x "$bin" ] || { echo "install.sh: no $bin: run without --no-build" >&2; exit 1; }
if ldd "$bin" | grep -qE "libswift|libFoundation"; then
    echo "install.sh: $bin links the Swift runtime dynamically: build it with 'swift build -c release --static-swift-stdlib' (or run without --no-build)" >&2
    exit 1
fi
# The manual page: swift-argument-parser's plugin reads the tool's help (debug build: the test
# suite builds it anyway, and a release build here would replace the static binary).
man=$(mktemp -d)
trap 'rm -rf "$man"' EXIT
if ! swift package --allow-writing-to-directory "$man" generate-manual --configuration debug -o "$man" >"$man/log" 2>&1 \
        || [ ! -s "$man/hidden-mpi.1" ]; then
    cat "$man/log" >&2
    echo "install.sh: the manual page was not generated (swift package generate-manual failed above)" >&2
    exit 1
fi
install -D -m 755 "$bin" "$prefix/bin/hidden-mpi"
install -D -m 644 "$man/hidden-mpi.1" "$prefix/share/man/man1/hidden-mpi.1"
echo "installed $prefix/bin/hidden-mpi and $prefix/share/man/man1/hidden-mpi.1 (man -l $prefix/share/man/man1/hidden-mpi.1)"
echo "the nodes need these shared libraries (Debian: openmpi-bin libopenblas0 libturbojpeg0 zlib1g):"
ldd "$prefix/bin/hidden-mpi" | awk '/=>/ {print "  " $1}' | grep -E "libmpi|libopenblas|libturbojpeg|libz" || true

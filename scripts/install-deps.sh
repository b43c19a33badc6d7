#!/usr/bin/env bash
# Installs what hidden-mpi needs from Debian's packages, only what is missing.
# Swift itself (6.x) must already be on PATH: https://www.swift.org/install/linux/
set -euo pipefail
packages=(libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev libturbojpeg0-dev dataset-fashion-mnist pkg-config iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift not found on PATH: install Swift 6 (https://www.swift.org/install/linux/)" >&2; exit 1; }

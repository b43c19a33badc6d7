#!/usr/bin/env python3
"""One markdown table row from `hidden-mpi bench --json` on stdin (used by bench-table.sh)."""
import json
import sys

d = json.loads(sys.stdin.read().strip().splitlines()[-1])
p = d["phases_s"]
hidden = d["allreduce_hidden_fraction"]
cells = [
    sys.argv[1],
    f"{d['images_per_s']:.1f}",
    f"{d['step_s'] * 1e3:.0f}",
    f"{d['step_gflops']:.1f}",
    f"{d['sgemm_peak_gflops']:.1f}",
    f"{100 * d['peak_fraction']:.0f}%",
    f"{100 * d['mask_fraction']:.1f}%",
    f"{1e3 * p['forward']:.0f} / {1e3 * p['backward']:.0f}",
    "-" if hidden is None else f"{100 * hidden:.0f}%",
    d["blas_core"],
]
print("| " + " | ".join(cells) + " |")

#!/usr/bin/env python3
"""Markdown tables from scripts/bench-speed.sh's JSON lines: medians over rounds per model.

    python3 scripts/speed_table.py results.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
speed = defaultdict(list)   # (model, impl, forced) -> images/s per round
extra = defaultdict(list)   # (model, forced) -> hidden-mpi bench objects
for d in rows:
    if d.get("impl") in ("probe", "probe-result"):
        continue
    key = (d["model"], d["impl"], d.get("kernel_forced", "none"))
    speed[key].append(d["images_per_s"])
    if d["impl"].startswith("hidden-mpi"):
        extra[(d["model"], d.get("kernel_forced", "none"), d["impl"])].append(d)

for d in rows:
    if d.get("impl") == "probe":
        print(f"kernel probe, {d['state']} cache: {d['seconds']:.2f} s")
    if d.get("impl") == "probe-result":
        for c in d["candidates"]:
            err = c.get("maxRelativeError")
            print(f"  {c['requested']:>8} -> {c.get('core', '?'):<12} {c['status']:<8} check error "
                  + (f"{err:.1e}" if err is not None else "-")
                  + (f", peak {c['peakGFLOPs']:.1f} GFLOP/s" if c.get("peakGFLOPs") else ""))
print()
med = {k: statistics.median(v) for k, v in speed.items()}
models = sorted({k[0] for k in med}, key=lambda m: ["conv4", "cifar-resnet18", "resnet50"].index(m) if m in ["conv4", "cifar-resnet18", "resnet50"] else 9)
print("| model | hidden-mpi (own choice) | kernel | best forced | own / best forced | PyTorch sort | x | PyTorch kthvalue | x | of best peak | 2 ranks | PyTorch DDP 2 | x |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in models:
    own = med.get((m, "hidden-mpi", "none"))
    forced = {k[2]: v for k, v in med.items() if k[0] == m and k[1] == "hidden-mpi" and k[2] != "none"}
    best_core, best = max(forced.items(), key=lambda kv: kv[1]) if forced else ("-", None)
    sort_, kth = med.get((m, "pytorch-sort", "none")), med.get((m, "pytorch-kthvalue", "none"))
    np2, ddp = med.get((m, "hidden-mpi-np2", "none")), med.get((m, "pytorch-ddp2", "none"))
    objs = extra.get((m, "none", "hidden-mpi"), [])
    kernel = objs[0]["blas_core"] if objs else "-"
    peak = statistics.median(o["peak_fraction"] for o in objs) if objs else None
    f = lambda x: "-" if x is None else f"{x:.1f}"
    r = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}x"
    print(f"| {m} | {f(own)} | {kernel} | {f(best)} ({best_core}) | {r(own, best)} | {f(sort_)} | {r(own, sort_)} | "
          f"{f(kth)} | {r(own, kth)} | {'-' if peak is None else f'{100 * peak:.0f}%'} | {f(np2)} | {f(ddp)} | {r(np2, ddp)} |")
print()
print("forced kernels, images/s (median):", {f"{k[0]}/{k[2]}": round(v, 1) for k, v in sorted(med.items()) if k[1] == "hidden-mpi" and k[2] != "none"})

# Per round (the same round's runs were interleaved): the ratios, and their medians. On a noisy
# machine the ratio of the medians (the table) and the median of the rounds' ratios differ.
by_round = defaultdict(dict)  # (model, round) -> {impl: images/s}
for d in rows:
    if d.get("impl") in ("probe", "probe-result") or d.get("kernel_forced", "none") != "none":
        continue
    by_round[(d["model"], d.get("round", 0))][d["impl"]] = d["images_per_s"]
for m in models:
    for name, a, b in [("own / sort", "hidden-mpi", "pytorch-sort"), ("own / kthvalue", "hidden-mpi", "pytorch-kthvalue"),
                       ("2 ranks / DDP 2", "hidden-mpi-np2", "pytorch-ddp2")]:
        ratios = [v[a] / v[b] for (mm, _), v in sorted(by_round.items()) if mm == m and a in v and b in v]
        if ratios:
            print(f"{m} {name}: rounds " + " / ".join(f"{x:.2f}" for x in ratios) + f", median {statistics.median(ratios):.2f}x")

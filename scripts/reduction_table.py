#!/usr/bin/env python3
"""Median images/s of exact vs float per model and rank count from scripts/bench-reduction.sh output."""
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["model"], r["world_size"], r["reduction"]), []).append(r)
print("| model | ranks | float images/s | exact images/s | exact / float | bytes reduced per step, float -> exact | rounds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for (model, ranks) in sorted({(m, w) for (m, w, _) in by}, key=lambda k: (k[1], k[0])):
    f, e = by.get((model, ranks, "float"), []), by.get((model, ranks, "exact"), [])
    if not f or not e:
        continue
    mf = statistics.median(x["images_per_s"] for x in f)
    me = statistics.median(x["images_per_s"] for x in e)
    def total(x):
        return x["allreduce_bytes_per_step"] + x["allreduce_stats_bytes_per_step"] + x.get("allreduce_batchnorm_bytes_per_step", 0)
    print(f"| {model} | {ranks} | {mf:.1f} | {me:.1f} | {me / mf:.3f} | {total(f[0])} -> {total(e[0])} ({total(e[0]) / total(f[0]):.2f}x) | {len(e)} |")

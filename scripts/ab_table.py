#!/usr/bin/env python3
"""A table from scripts/bench-ab.sh's JSON lines: medians over rounds of the old and the new build.

    python3 scripts/ab_table.py ab.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
runs = defaultdict(list)  # (model, ranks, build) -> bench objects
for d in rows:
    runs[(d["model"], d["ranks"], d["build"])].append(d)


def med(objs, f):
    return statistics.median(f(o) for o in objs)


def overhead(o):
    return o.get("norm_pool_add_relu_fraction", 0)


print("| model, ranks | old images/s | new images/s | new / old (median of per-round ratios) | old step | new step | "
      "old of peak | new of peak | old BN + adds + pool + ReLU | new |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for (model, ranks) in sorted({(m, r) for m, r, _ in runs}):
    old, new = runs[(model, ranks, "old")], runs[(model, ranks, "new")]
    if not old or not new:
        continue
    by_round = {o["round"]: o for o in old}
    ratios = [n["images_per_s"] / by_round[n["round"]]["images_per_s"] for n in new if n["round"] in by_round]
    print(f"| {model}, {ranks} | {med(old, lambda o: o['images_per_s']):.2f} | {med(new, lambda o: o['images_per_s']):.2f} | "
          f"{statistics.median(ratios):.3f} ({', '.join(f'{x:.3f}' for x in ratios)}) | "
          f"{med(old, lambda o: o['step_s']):.2f} s | {med(new, lambda o: o['step_s']):.2f} s | "
          f"{100 * med(old, lambda o: o['peak_fraction']):.0f}% | {100 * med(new, lambda o: o['peak_fraction']):.0f}% | "
          f"{100 * med(old, overhead):.1f}% | {100 * med(new, overhead):.1f}% |")
print()
for (model, ranks, build), objs in sorted(runs.items()):
    kinds = defaultdict(list)
    for o in objs:
        for k, v in o.get("layer_kinds_s", {}).items():
            kinds[k].append(v)
    print(f"{model} x{ranks} {build}: " + ", ".join(f"{k} {1e3 * statistics.median(v):.0f} ms" for k, v in sorted(kinds.items(), key=lambda kv: -statistics.median(kv[1]))))

#!/usr/bin/env python3
"""Medians of scripts/bench-update.sh's rounds: step time, the per-rank update (mask selection +
optimiser, decoding included) and its share of one rank's, and the 2-rank strong-scaling
efficiency, per model and variant."""
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    by[(r["model"], r["variant"])].append(r)
med = lambda xs: statistics.median(xs)
print("| model | variant | ranks | step ms | images/s | mask ms | optimiser ms | update ms | update vs 1 rank | selection + allgather wait ms | efficiency | bytes sent per rank |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for model in dict.fromkeys(r["model"] for r in rows):
    one = by[(model, "one-rank")]
    base_update = med([r["phases_s"]["mask_selection"] + r["phases_s"]["optimizer"] for r in one])
    base_ips = med([r["images_per_s"] for r in one])
    for variant in ["one-rank", "replicated", "sharded"]:
        rs = by[(model, variant)]
        if not rs:
            continue
        mask = med([r["phases_s"]["mask_selection"] for r in rs])
        opt = med([r["phases_s"]["optimizer"] for r in rs])
        upd = med([r["phases_s"]["mask_selection"] + r["phases_s"]["optimizer"] for r in rs])
        ips = med([r["images_per_s"] for r in rs])
        waits = med([r["phases_s"].get("selection_wait", 0) + r["phases_s"].get("allgather_wait", 0) for r in rs])
        P = rs[0]["world_size"]
        print(f"| {model} | {variant} | {P} | {1e3 * med([r['step_s'] for r in rs]):.2f} | {ips:.0f} | {1e3 * mask:.2f} | {1e3 * opt:.2f} | "
              f"{1e3 * upd:.2f} | {upd / base_update:.0%} | {1e3 * waits:.2f} | {ips / base_ips / P:.0%} | {rs[0].get('gradient_bytes_sent_per_rank', 0):,} |")
print(f"\n{len(rows)} runs, medians over {max(r['round'] for r in rows)} rounds")

#!/usr/bin/env python3
"""Plot a scaling study: speed-up and parallel efficiency against the number of ranks.

    jobs/scaling-sweep.sh > scaling.csv
    python3 scripts/plot_scaling.py scaling.csv -o Docs/results/scaling.png   # also writes .svg

Input: CSV files from jobs/scaling-sweep.sh (several are concatenated; a repeated header line is
skipped). One curve per model, mode (strong / weak) and machine column (one sweep's hosts); speed-up and
efficiency as the sweep computed them (against the first rank count of each model and mode).
Oversubscribed points (more ranks than cores) are drawn hollow and labelled: they check that the
run works, they do not measure speed. Prints the table; needs matplotlib only for the plot.
"""
import argparse
import csv
import os
import sys
from collections import defaultdict

import plotting


def read(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if not r.get("ranks", "").strip().isdigit():
                    continue  # a repeated header or a note
                rows.append(r)
    if not rows:
        sys.exit(f"error: no rows with a 'ranks' column in {', '.join(paths)} (is it jobs/scaling-sweep.sh's output?)")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="CSV files from jobs/scaling-sweep.sh")
    parser.add_argument("-o", "--output", help="image to write (png; an svg is written beside it); without it, only the table")
    parser.add_argument("--title", default="", help="a line above the plots (machine, date)")
    args = parser.parse_args()

    curves = defaultdict(list)
    for r in read(args.files):
        key = (r["model"], r["mode"], r.get("machine", ""))  # one sweep: one machine (or set of hosts)
        curves[key].append(r)
    print(f"{'model':<16} {'mode':<7} {'ranks':>5} {'nodes':>5} {'batch':>6} {'per rank':>8} {'images/s':>10} {'speed-up':>9} {'efficiency':>10} {'waiting s':>9} {'hidden':>6}  note")
    for key, rows in curves.items():
        rows.sort(key=lambda r: int(r["ranks"]))
        for r in rows:
            note = "oversubscribed: functional check only" if r["oversubscribed"] == "1" else ""
            hidden = f"{100 * float(r['hidden_share']):.0f}%" if r["hidden_share"] else "-"
            print(f"{r['model']:<16} {r['mode']:<7} {r['ranks']:>5} {r['nodes']:>5} {r['global_batch']:>6} {r['rank_batch']:>8} "
                  f"{float(r['images_per_s']):>10.1f} {float(r['speedup']):>8.2f}x {100 * float(r['efficiency']):>9.1f}% "
                  f"{float(r['waiting_s']) * 1e3:>7.2f}ms {hidden:>6}  {note}")
    if not args.output:
        return

    plt = plotting.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6))
    all_ranks = sorted({int(r["ranks"]) for rows in curves.values() for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    machines = sorted({key[2] for key in curves})
    for i, (key, rows) in enumerate(sorted(curves.items())):
        model, mode, machine = key
        color = colors[i % len(colors)]
        nodes = max(int(r["nodes"]) for r in rows)
        label = f"{model}, {mode}" + (f", {'across ' + str(nodes) + ' nodes' if nodes > 1 else 'one node'}" if len(machines) > 1 else "")
        ranks = [int(r["ranks"]) for r in rows]
        style = "-" if mode == "strong" else "--"
        for ax, column, scale in ((left, "speedup", 1), (right, "efficiency", 100)):
            values = [scale * float(r[column]) for r in rows]
            ax.plot(ranks, values, style, color=color, label=label)
            measured = [(n, v) for n, v, r in zip(ranks, values, rows) if r["oversubscribed"] != "1"]
            over = [(n, v) for n, v, r in zip(ranks, values, rows) if r["oversubscribed"] == "1"]
            if measured:
                ax.plot(*zip(*measured), "o", color=color)
            if over:
                ax.plot(*zip(*over), "o", markerfacecolor="white", color=color)
    left.plot(all_ranks, [n / all_ranks[0] for n in all_ranks], ":", color="gray", label="ideal (strong)")
    right.axhline(90, color="gray", linestyle=":", label="90%")
    left.set(xscale="log", yscale="log", xlabel="MPI ranks (one core each)", ylabel="speed-up over the first point",
             title="Speed-up (hollow: oversubscribed, not a speed)")
    right.set(xscale="log", xlabel="MPI ranks (one core each)", ylabel="parallel efficiency (%)", ylim=(0, 115),
              title="Efficiency: per-rank images/s vs the first point")
    for ax in (left, right):
        ax.minorticks_off()
        ax.set_xticks(all_ranks)
        ax.set_xticklabels([str(n) for n in all_ranks])
    left.set_yticks(all_ranks)
    left.set_yticklabels([str(n) for n in all_ranks])
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    # One legend for both plots, below them (solid: strong scaling, dashed: weak).
    for ax in (left, right):
        ax.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    h2, l2 = right.get_legend_handles_labels()
    handles += [h for h, l in zip(h2, l2) if l == "90%"]
    labels += [l for l in l2 if l == "90%"]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 0.95))
    plotting.savefig(fig, args.output)
    plotting.savefig(fig, os.path.splitext(args.output)[0] + ".svg")


if __name__ == "__main__":
    main()

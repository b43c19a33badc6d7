#!/usr/bin/env python3
"""Plot a strong-scaling sweep: images/s and parallel efficiency against the number of ranks.

    jobs/scaling-sweep.sh "1 2 4 8 16" conv2 > runs/scaling-conv2.csv
    python3 scripts/plot_scaling.py runs/scaling-conv2.csv -o Docs/scaling-conv2.png

Input: the CSV that jobs/scaling-sweep.sh prints (ranks,model,steps,seconds,images_per_s,...);
several files (one per model or machine) give several curves, labelled by file name or LABEL=path.
Prints a table of speedup and efficiency against the smallest rank count of each file. Needs
matplotlib only for the plot (`pip install matplotlib` or Debian's python3-matplotlib).
"""
import argparse
import csv
import os
import sys

import plotting


def read(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("ranks", "").strip().isdigit()]
    if not rows:
        sys.exit(f"error: {path} has no rows with a 'ranks' column (is it jobs/scaling-sweep.sh's output?)")
    rows.sort(key=lambda r: int(r["ranks"]))
    return [(int(r["ranks"]), float(r["images_per_s"])) for r in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="CSV files, optionally LABEL=path")
    parser.add_argument("-o", "--output", help="image to write (png, pdf, svg); without it, only the table")
    args = parser.parse_args()

    curves = []
    for spec in args.files:
        label, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        label = label or os.path.splitext(os.path.basename(path))[0]
        points = read(path)
        base_ranks, base_rate = points[0]
        print(f"{label}:")
        print(f"  {'ranks':>5}  {'images/s':>10}  {'speedup':>8}  {'efficiency':>10}")
        rows = []
        for ranks, rate in points:
            speedup = rate / base_rate
            efficiency = speedup * base_ranks / ranks
            rows.append((ranks, rate, speedup, efficiency))
            print(f"  {ranks:>5}  {rate:>10.1f}  {speedup:>7.2f}x  {100 * efficiency:>9.1f}%")
        curves.append((label, base_ranks, base_rate, rows))

    if not args.output:
        return
    plt = plotting.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, base_ranks, base_rate, rows in curves:
        ranks = [r[0] for r in rows]
        left.plot(ranks, [r[1] for r in rows], marker="o", label=label)
        left.plot(ranks, [base_rate * n / base_ranks for n in ranks], linestyle=":", color="gray")
        right.plot(ranks, [100 * r[3] for r in rows], marker="o", label=label)
    left.set(xscale="log", xlabel="ranks", ylabel="images/s", title="throughput (dotted: ideal)")
    right.set(xscale="log", xlabel="ranks", ylabel="parallel efficiency (%)", ylim=(0, 110), title="efficiency")
    for ax in (left, right):
        all_ranks = sorted({r[0] for _, _, _, rows in curves for r in rows})
        ax.minorticks_off()
        ax.set_xticks(all_ranks)
        ax.set_xticklabels([str(n) for n in all_ranks])
    plotting.finish(fig, (left, right), args.output)


if __name__ == "__main__":
    main()

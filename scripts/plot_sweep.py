#!/usr/bin/env python3
"""Plots of a sweep's CSV (jobs/sweep.py) like the paper's figures, and a Markdown table of them.

  python3 scripts/plot_sweep.py Docs/results/k-sweep-fashion.csv --x k -o Docs/results/k-sweep-fashion
  python3 scripts/plot_sweep.py A.csv B.csv --x k -o k          # several CSVs, one line per model
  python3 scripts/plot_sweep.py all.csv --models conv2 --x k -o conv2-k   # only some of the models
  python3 scripts/plot_sweep.py conv2.csv --x init -o inits     # one line per weight init
  python3 scripts/plot_sweep.py conv2.csv --x init --at-k 0.5 -o inits   # one bar per init at k 0.5
  python3 scripts/plot_sweep.py wide.csv --x width -o width     # one line per model and k
  python3 scripts/plot_sweep.py conv2.csv --x k --table         # the table alone (no matplotlib needed)

--x k: test accuracy against the fraction of weights kept, one line per model (edge-popup with
--init, default signed-constant scaled), the mean over seeds with a band of one standard
deviation; the dense baseline (learned weights) of the same model as a dashed horizontal line and
Zhou et al.'s supermask as a dotted one, each with its band.
--x init: one line per weight init (and scaled or unscaled fan) against k.
--x width: one line per model and k against the width multiplier.
Writes PREFIX.png and PREFIX.svg, and prints the table (mean +- std over n seeds, in percent).
"""

import argparse
import csv
import math
import sys
from collections import defaultdict

import plotting  # scripts/plotting.py: the script's own folder is on sys.path


def load(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("test_acc"):
                    rows.append(row)
    if not rows:
        sys.exit(f"error: no finished points in {', '.join(paths)}")
    return rows


def stats(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def init_label(init, scaled):
    return f"{init}, {'scaled' if scaled == 'true' else 'unscaled'}"


def series(rows, x, init, scaled):
    """{label: {x value: [accuracies in %]}} for the edge-popup lines, and the baselines."""
    lines = defaultdict(lambda: defaultdict(list))
    baselines = defaultdict(list)  # (model, method, width) -> accuracies
    for r in rows:
        acc = 100 * float(r["test_acc"])
        if r["method"] != "edge-popup":
            baselines[(r["model"], r["method"], float(r["width"]))].append(acc)
            continue
        if x == "init":
            width = float(r["width"])
            model = r["model"] if width == 1 else f"{r['model']} x{width:g}"
            lines[(model, init_label(r["init"], r["scale_fan"]))][float(r["k"])].append(acc)
            continue
        if r["init"] != init or r["scale_fan"] != scaled:
            continue
        if x == "k":
            lines[(r["model"], float(r["width"]))][float(r["k"])].append(acc)
        else:
            lines[(r["model"], float(r["k"]))][float(r["width"])].append(acc)
    return lines, baselines


def name(key, x):
    model, other = key
    if x == "k":
        return model if other == 1 else f"{model} x{other:g}"
    if x == "init":
        return f"{model}: {other}"
    return f"{model}, k = {other:g}"


def table(lines, baselines, x):
    head = {"k": "k", "init": "k", "width": "width"}[x]
    out = [f"| series | {head} | test accuracy (%) | seeds |", "| --- | ---: | ---: | ---: |"]
    for key in sorted(lines, key=lambda k: (k[0], str(k[1]))):
        for xv in sorted(lines[key]):
            m, s, n = stats(lines[key][xv])
            out.append(f"| {name(key, x)} | {xv:g} | {m:.2f} ± {s:.2f} | {n} |")
    for (model, method, width), accs in sorted(baselines.items()):
        m, s, n = stats(accs)
        label = {"dense": "dense (learned weights)", "supermask": "supermask (Zhou et al.)"}.get(method, method)
        out.append(f"| {model}{'' if width == 1 else f' x{width:g}'} {label} | all | {m:.2f} ± {s:.2f} | {n} |")
    return "\n".join(out)


def plot(lines, baselines, x, output, title):
    plt = plotting.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color_of = {}
    if x == "init" and len({v for key in lines for v in lines[key]}) == 1:
        return bars(plt, fig, ax, colors, lines, baselines, output, title)
    for i, key in enumerate(sorted(lines, key=lambda k: (k[0], str(k[1])))):
        c = colors[i % len(colors)]
        color_of.setdefault(key[0], c)
        xs = sorted(lines[key])
        st = [stats(lines[key][v]) for v in xs]
        means = [s[0] for s in st]
        lo, hi = min(s[2] for s in st), max(s[2] for s in st)
        seeds = f"{lo} seeds" if lo == hi else f"{lo}-{hi} seeds"
        ax.plot(xs, means, "o-", color=c, label=f"{name(key, x)}: edge-popup, {seeds}")
        ax.fill_between(xs, [s[0] - s[1] for s in st], [s[0] + s[1] for s in st], color=c, alpha=0.18, linewidth=0)
    if x != "width":
        for (model, method, width), accs in sorted(baselines.items()):
            m, s, n = stats(accs)
            c = color_of.get(model, "black")
            style = "--" if method == "dense" else ":"
            label = {"dense": "dense, learned weights", "supermask": "supermask (Zhou et al.)"}.get(method, method)
            ax.axhline(m, linestyle=style, color=c, linewidth=1.4, label=f"{model}: {label}, {n} seed{'s' if n > 1 else ''}")
            ax.axhspan(m - s, m + s, color=c, alpha=0.08, linewidth=0)
    ax.set_xlabel({"k": "fraction of weights kept, k (per layer)", "init": "fraction of weights kept, k (per layer)",
                   "width": "width multiplier"}[x])
    ax.set_ylabel("test accuracy (%), last epoch; band: ±1 std over seeds")
    ax.grid(alpha=0.3)
    save(fig, ax, output, title, "best")


def bars(plt, fig, ax, colors, lines, baselines, output, title):
    """The init comparison at a single k: a bar per init (mean, one-std error bar, seeds as dots),
    the baselines as horizontal lines."""
    keys = sorted(lines, key=lambda k: (k[0], str(k[1])))
    k = next(iter(lines[keys[0]]))
    for i, key in enumerate(keys):
        accs = lines[key][k]
        m, s, n = stats(accs)
        ax.bar(i, m, yerr=s, color=colors[i % len(colors)], alpha=0.75, capsize=5,
               label=f"{name(key, 'init')}: {m:.2f}% ({n} seed{'s' if n > 1 else ''})")
        ax.plot([i] * n, accs, "k.", markersize=6)
    for (model, method, width), accs in sorted(baselines.items()):
        m, s, n = stats(accs)
        label = {"dense": "dense, learned weights", "supermask": "supermask (Zhou et al.)"}.get(method, method)
        ax.axhline(m, linestyle="--" if method == "dense" else ":", color="black", linewidth=1.2,
                   label=f"{model}: {label}, {m:.2f} ± {s:.2f}% ({n} seed{'s' if n > 1 else ''}; band ±1 std)")
        ax.axhspan(m - s, m + s, color="black", alpha=0.07, linewidth=0)
    every = [a for key in keys for a in lines[key][k]] + [a for accs in baselines.values() for a in accs]
    # Room above the bars for the legend.
    ax.set_ylim(min(every) - 1.5, max(every) + 0.45 * (len(keys) + len(baselines)) + 0.5)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([key[1].replace(", ", "\n") for key in keys])
    ax.set_xlabel(f"weight init (edge-popup, k = {k:g})")
    ax.set_ylabel("test accuracy (%), last epoch")
    ax.grid(alpha=0.3, axis="y")
    save(fig, ax, output, title, "upper left")


def save(fig, ax, output, title, legend_at):
    """The title and legend, then OUTPUT.png and OUTPUT.svg (each written atomically)."""
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc=legend_at)
    fig.tight_layout()
    for ext in ("png", "svg"):
        plotting.savefig(fig, f"{output}.{ext}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", help="sweep CSV files (jobs/sweep.py)")
    ap.add_argument("--x", choices=["k", "init", "width"], default="k", help="what the x axis shows (default k)")
    ap.add_argument("--init", default="signed-constant", help="the init of the edge-popup lines for --x k and width")
    ap.add_argument("--unscaled", action="store_true", help="take the unscaled-fan variant of --init")
    ap.add_argument("--models", help="only these models (comma-separated; default every model in the CSVs)")
    ap.add_argument("--at-k", type=float, help="only the edge-popup points at this k (--x init at one k: bars)")
    ap.add_argument("-o", "--output", help="write OUTPUT.png and OUTPUT.svg")
    ap.add_argument("--title", help="the figure's title (default: from the data)")
    ap.add_argument("--table", action="store_true", help="print the Markdown table only")
    args = ap.parse_args()
    rows = load(args.csv)
    if args.models:
        wanted = set(args.models.split(","))
        rows = [r for r in rows if r["model"] in wanted]
        if not rows:
            sys.exit(f"error: no finished points of {args.models} in {', '.join(args.csv)}")
    if args.at_k is not None:
        rows = [r for r in rows if r["method"] != "edge-popup" or abs(float(r["k"]) - args.at_k) < 1e-9]
    lines, baselines = series(rows, args.x, args.init, "false" if args.unscaled else "true")
    if not lines:
        sys.exit(f"error: no edge-popup points with init {args.init} ({'unscaled' if args.unscaled else 'scaled'}) in the CSV")
    datasets = sorted({r["dataset"] for r in rows})
    print(table(lines, baselines, args.x))
    if args.table:
        return
    if not args.output:
        sys.exit("error: give -o PREFIX for the plot (or --table for the table alone)")
    models = sorted({r["model"] for r in rows})   # the rows' names: a line's key may carry a width
    epochs = {m: sorted({r["epochs"] for r in rows if r["model"] == m}, key=int) for m in models}
    runs = ", ".join(f"{m} {'/'.join(epochs[m])} epochs" for m in models)
    title = args.title or (f"{runs} on {', '.join(datasets)}: "
                           + {"k": f"accuracy against k ({args.init}, {'unscaled' if args.unscaled else 'scaled'})",
                              "init": "weight inits", "width": "accuracy against width"}[args.x])
    plot(lines, baselines, args.x, args.output, title)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Plot `hidden-mpi train --metrics` files: test accuracy and train loss per epoch.

    python3 scripts/plot_metrics.py runs/fc.jsonl runs/conv2.jsonl -o Docs/curves.png

Each file is one curve, labelled by its file name (or LABEL=path). Needs matplotlib
(`pip install matplotlib` or Debian's python3-matplotlib).
"""
import argparse
import json
import os
import sys

import plotting


def epochs(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                obj = json.loads(line)
                if obj.get("kind") == "epoch":
                    rows.append(obj)
    # A resumed run appends to its file: keep the last record of each epoch.
    by_epoch = {r["epoch"]: r for r in rows}
    return [by_epoch[e] for e in sorted(by_epoch)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="metrics files (LABEL=path to name a curve)")
    parser.add_argument("-o", "--output", default="curves.png", help="PNG to write")
    args = parser.parse_args()
    plt = plotting.pyplot()
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 4))
    for spec in args.files:
        label, _, path = spec.rpartition("=") if "=" in spec else (os.path.basename(spec), "", spec)
        rows = epochs(path)
        if not rows:
            sys.exit(f"{path}: no epoch records")
        xs = [r["epoch"] for r in rows]
        acc.plot(xs, [100 * r["test_acc"] for r in rows], marker="o", label=label)
        loss.plot(xs, [r["train_loss"] for r in rows], marker="o", label=label)
    acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    loss.set(xlabel="epoch", ylabel="train loss", title="train loss (mean over the epoch)")
    plotting.finish(fig, (acc, loss), args.output)


if __name__ == "__main__":
    main()

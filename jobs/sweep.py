#!/usr/bin/env python3
"""A sweep of hidden-mpi training runs: every combination of models, k, widths, inits, methods and
seeds, each point its own `mpirun ... hidden-mpi train` job, one CSV row per finished point.

  jobs/sweep.py --name k-fc --models fc --k 0.1,0.3,0.5,0.7,0.9 --seeds 0,1,2 --epochs 10 \\
      --np 2 --csv Docs/results/sweep-k.csv
  jobs/sweep.py --name inits --models conv2 --inits signed-constant,signed-constant:unscaled,\\
      kaiming-normal,kaiming-normal:unscaled --seeds 0,1,2 --epochs 3 --np 2 --csv inits.csv
  jobs/sweep.py ... --list                  # the points, numbered, and which are done
  sbatch --array=0-14 jobs/slurm-sweep.sh ...  # one point per array task (--index)
  jobs/sweep.py ... -- --batch-size 256 --weight-decay 5e-4     # more train flags for every point

Points run one after another (on one allocation), or one per call with --index I (Slurm job
arrays: --index "$SLURM_ARRAY_TASK_ID"). A point already in the CSV is skipped, so a sweep that
the queue interrupted is resubmitted as it was. Each point trains with --checkpoint-dir
RUNS/POINT and --resume auto: an interrupted point continues from its last checkpoint, and a
SIGTERM, SIGINT or SIGUSR1 (Slurm's warning before the time limit) reaches the run as SIGUSR1,
which mpirun passes to every rank: the run checkpoints, and the sweep exits 75 without a row for
that point.

Rows are appended whole: one write of one line under an exclusive lock (array tasks share the
file); a line left without its newline by a crash is cut off before the next row is added, and
that point runs again. Baselines keep no top-k fraction: --method dense and supermask run once per
model, width and seed (k and init empty in the row; their own defaults), whatever --k and --inits
list. --inits entries are an init name, optionally with :scaled (the default) or :unscaled (the
fan not scaled by k).

Columns: sweep, point, model, width, k, init, scale_fan, method, seed, epochs, ranks, dataset,
extra, test_acc, test_top5, train_acc, train_loss, test_loss, best_test_acc, parameters,
seconds, finished. test_acc is the last epoch's (the paper's number); best_test_acc is the best
epoch's, chosen on the test set as the reference does, for comparison only. seconds is the wall
time of the call that finished the point (a resumed point counts only its last part).
"""

import argparse
import csv
import fcntl
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time

COLUMNS = ["sweep", "point", "model", "width", "k", "init", "scale_fan", "method", "seed", "epochs", "ranks",
           "dataset", "extra", "test_acc", "test_top5", "train_acc", "train_loss", "test_loss", "best_test_acc",
           "parameters", "seconds", "finished"]
METHODS = ["edge-popup", "dense", "supermask"]
STOPPED = 75  # hidden-mpi's exit status after a requested stop (checkpoint written)


def fail(message, hint=None):
    print(f"sweep.py: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    sys.exit(2)


def number_list(text, name, kind=float):
    try:
        values = [kind(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        fail(f"--{name} {text!r} is not a comma-separated list of numbers", f"such as --{name} 0.1,0.5")
    if not values:
        fail(f"--{name} is empty")
    return values


def fmt(x):
    """A number as the point names and the CSV write it: 0.5, 1, 0.25."""
    return ("%g" % x) if isinstance(x, float) else str(x)


def parse_epochs(text, models):
    """--epochs 10, or per model: fc=10,conv2=3."""
    if "=" not in text:
        return {m: int(text) for m in models}
    table = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        table[name.strip()] = int(value)
    missing = [m for m in models if m not in table]
    if missing:
        fail(f"--epochs {text} gives no epochs for {', '.join(missing)}", "name every model: fc=10,conv2=3")
    return table


def points(args):
    """Every point of the grid, in a fixed order (the order --list numbers them and --index picks)."""
    out = []
    seen = set()
    for model in args.models:
        for width in args.widths:
            for method in args.methods:
                ks = args.k if method == "edge-popup" else [None]
                inits = args.inits if method == "edge-popup" else [(None, None)]
                for k in ks:
                    for init, scaled in inits:
                        for seed in args.seeds:
                            p = {"model": model, "width": width, "k": k, "init": init, "scale_fan": scaled,
                                 "method": method, "seed": seed, "epochs": args.epochs[model]}
                            p["point"] = point_name(p, args.extra)
                            if p["point"] not in seen:
                                seen.add(p["point"])
                                out.append(p)
    return out


def point_name(p, extra):
    name = f"{p['model']}-w{fmt(p['width'])}-{p['method']}"
    if p["k"] is not None:
        name += f"-k{fmt(p['k'])}-{p['init']}{'' if p['scale_fan'] else '-unscaled'}"
    name += f"-e{p['epochs']}-s{p['seed']}"
    if extra:
        # Extra flags make another run: a short, stable tag of them.
        import zlib
        name += "-x%08x" % zlib.crc32(" ".join(extra).encode())
    return name


def train_args(p, args, runs):
    a = ["train", "--model", p["model"], "--width", fmt(p["width"]), "--method", p["method"],
         "--seed", str(p["seed"]), "--epochs", str(p["epochs"]), "--dataset", args.dataset,
         "--metrics", os.path.join(runs, p["point"] + ".jsonl"),
         "--checkpoint-dir", os.path.join(runs, p["point"]), "--resume", "auto", "--keep-checkpoints", "1",
         "--progress", "60"]
    if args.data_dir:
        a += ["--data-dir", args.data_dir]
    if p["k"] is not None:
        a += ["--k", fmt(p["k"]), "--init", p["init"], "--scale-fan" if p["scale_fan"] else "--no-scale-fan"]
    return a + args.extra


# ---- the CSV: whole rows only -------------------------------------------------------------------

def locked(path):
    """The CSV opened for appending under an exclusive lock, its torn tail (if any) cut off."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    size = os.fstat(fd).st_size
    if size > 0:
        data = os.pread(fd, size, 0)
        if not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            print(f"sweep.py: {path}: cutting off a torn last line ({size - keep} bytes) left by an earlier crash",
                  file=sys.stderr)
            os.ftruncate(fd, keep)
            size = keep
    if size > 0:
        first = os.pread(fd, min(size, 4096), 0).split(b"\n")[0].decode(errors="replace")
        if first != ",".join(COLUMNS):
            os.close(fd)
            raise HeaderMismatch(f"{path} is not a sweep CSV of this version: its first line is {first[:120]!r}")
    return fd


class HeaderMismatch(OSError):
    pass


def done_points(path):
    """Names of the points with a whole row in the CSV."""
    if not os.path.exists(path):
        return set()
    with open(path, "rb") as f:
        data = f.read()
    whole = data[:data.rfind(b"\n") + 1].decode()
    return {row["point"] for row in csv.DictReader(io.StringIO(whole)) if row.get("point")}


def append_row(path, row):
    fd = locked(path)
    try:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        if os.fstat(fd).st_size == 0:
            w.writeheader()
        w.writerow(row)
        data = buf.getvalue().encode()
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(f"short write to {path} ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def row_for(p, args, metrics_path, seconds):
    runs, epochs = None, []
    with open(metrics_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if obj.get("kind") == "run":
                runs = obj
            elif obj.get("kind") == "epoch":
                epochs.append(obj)
    # A resumed point appends to its metrics file: the latest report of each epoch counts.
    by_epoch = {e["epoch"]: e for e in epochs}
    last = by_epoch.get(p["epochs"])
    if last is None:
        raise ValueError(f"{metrics_path} has no report of epoch {p['epochs']}")
    best = max(e["test_acc"] for e in by_epoch.values())
    return {"sweep": args.name, "point": p["point"], "model": p["model"], "width": fmt(p["width"]),
            "k": "" if p["k"] is None else fmt(p["k"]), "init": p["init"] or "",
            "scale_fan": "" if p["scale_fan"] is None else str(p["scale_fan"]).lower(), "method": p["method"],
            "seed": p["seed"], "epochs": p["epochs"], "ranks": args.np, "dataset": args.dataset,
            "extra": " ".join(args.extra), "test_acc": "%.6f" % last["test_acc"],
            "test_top5": "" if last.get("test_top5") is None else "%.6f" % last["test_top5"],
            "train_acc": "%.6f" % last["train_acc"], "train_loss": "%.6f" % last["train_loss"],
            "test_loss": "%.6f" % last["test_loss"], "best_test_acc": "%.6f" % best,
            "parameters": (runs or {}).get("parameters", ""), "seconds": "%.1f" % seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# ---- running points -----------------------------------------------------------------------------

child = None
stop_requested = False


def forward(signum, _frame):
    """Any stop request becomes SIGUSR1 to the launcher: mpirun forwards that to every rank, which
    checkpoint and exit 75 (SIGTERM to mpirun would kill the ranks after a short grace period)."""
    global stop_requested
    stop_requested = True
    if child is not None and child.poll() is None:
        child.send_signal(signal.SIGUSR1)


def run_point(p, args, runs):
    global child
    cmd = args.launch + ["-np", str(args.np), args.bin] + train_args(p, args, runs)
    log_path = os.path.join(runs, p["point"] + ".log")
    started = time.time()
    with open(log_path, "ab") as log:
        log.write(("$ " + shlex.join(cmd) + "\n").encode())
        log.flush()
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        status = child.wait()
        child = None
    return status, time.time() - started, log_path


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="the sweep's name: the CSV's sweep column and the runs folder")
    ap.add_argument("--models", default="fc", help="comma-separated models (default fc)")
    ap.add_argument("--k", default="0.5", help="fractions of weights kept, edge-popup only (default 0.5)")
    ap.add_argument("--widths", default="1", help="width multipliers (default 1)")
    ap.add_argument("--inits", default="signed-constant",
                    help="weight inits for edge-popup, each optionally :scaled (default) or :unscaled")
    ap.add_argument("--methods", default="edge-popup", help="edge-popup, dense, supermask (default edge-popup)")
    ap.add_argument("--seeds", default="0", help="seeds (default 0)")
    ap.add_argument("--epochs", default="10", help="epochs, or per model: fc=10,conv2=3 (default 10)")
    ap.add_argument("--dataset", default="fashion-mnist", help="the data set (default fashion-mnist)")
    ap.add_argument("--data-dir", help="the data set's folder (default: hidden-mpi's)")
    ap.add_argument("--np", type=int, default=1, help="ranks per point (default 1)")
    ap.add_argument("--csv", help="the results file (default RUNS/results.csv)")
    ap.add_argument("--runs", help="folder of the points' metrics, logs and checkpoints (default runs/sweep/NAME)")
    ap.add_argument("--launch", default=os.environ.get("SWEEP_LAUNCH", "mpirun"),
                    help="the launcher, before -np (default mpirun; e.g. 'mpirun --hostfile hosts' or 'srun --mpi=pmix')")
    ap.add_argument("--bin", default=os.environ.get("HIDDEN_MPI_BIN", ".build/release/hidden-mpi"),
                    help="the hidden-mpi binary (default .build/release/hidden-mpi, or $HIDDEN_MPI_BIN)")
    ap.add_argument("--index", type=int, help="run only point I of the list (Slurm arrays: $SLURM_ARRAY_TASK_ID)")
    ap.add_argument("--max-points", type=int, help="stop after running this many points")
    ap.add_argument("--list", action="store_true", help="print the points, numbered, with done or to do, and exit")
    args = ap.parse_args(argv)
    args.extra = extra

    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models:
        fail("--models is empty")
    args.k = number_list(args.k, "k")
    if any(not (0 < k <= 1) for k in args.k):
        fail(f"--k must list fractions in (0, 1], got {args.k}")
    args.widths = number_list(args.widths, "widths")
    args.seeds = number_list(args.seeds, "seeds", int)
    try:
        args.epochs = parse_epochs(args.epochs, args.models)
    except ValueError:
        fail(f"--epochs {args.epochs!r} is not a number or a list such as fc=10,conv2=3")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        fail(f"--methods has {', '.join(bad)}", f"choose from {', '.join(METHODS)}")
    inits = []
    for entry in args.inits.split(","):
        name, _, variant = entry.strip().partition(":")
        if variant not in ("", "scaled", "unscaled"):
            fail(f"--inits entry {entry!r}: after the colon comes scaled or unscaled")
        inits.append((name, variant != "unscaled"))
    args.inits = inits
    if args.np < 1:
        fail("--np must be at least 1")
    args.launch = shlex.split(args.launch)
    runs = args.runs or os.path.join("runs", "sweep", args.name)
    csv_path = args.csv or os.path.join(runs, "results.csv")

    grid = points(args)
    done = done_points(csv_path)
    if args.list:
        for i, p in enumerate(grid):
            print(f"{i:4d}  {'done' if p['point'] in done else 'to do'}  {p['point']}")
        print(f"{len(grid)} points, {sum(p['point'] in done for p in grid)} done ({csv_path})")
        return 0
    if args.index is not None:
        if not (0 <= args.index < len(grid)):
            fail(f"--index {args.index} is outside the {len(grid)} points (0 to {len(grid) - 1})",
                 f"submit the array as --array=0-{len(grid) - 1}")
        todo = [grid[args.index]]
    else:
        todo = grid
    if not os.access(args.bin, os.X_OK):
        fail(f"no hidden-mpi binary at {args.bin}",
             "build it (swift build -c release --static-swift-stdlib) or pass --bin / set HIDDEN_MPI_BIN")
    os.makedirs(runs, exist_ok=True)
    csv_dir = os.path.dirname(os.path.abspath(csv_path))
    if not os.path.isdir(csv_dir):
        fail(f"the folder of --csv {csv_path} does not exist", f"mkdir -p {csv_dir}")
    # Nothing is lost if the CSV cannot be written: find out before the first run.
    try:
        os.close(locked(csv_path))
    except HeaderMismatch as e:
        fail(str(e), "give another --csv, or move that file away")
    except OSError as e:
        fail(f"cannot write {csv_path}: {e.strerror}")

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(s, forward)
    failed, ran = [], 0
    total = len(todo)
    for n, p in enumerate(todo, 1):
        if p["point"] in done:
            print(f"[{n}/{total}] {p['point']}: done already", flush=True)
            continue
        if args.max_points is not None and ran >= args.max_points:
            print(f"sweep.py: stopping after {ran} point(s) (--max-points)", flush=True)
            break
        if stop_requested:
            break
        print(f"[{n}/{total}] {p['point']}: running", flush=True)
        status, seconds, log = run_point(p, args, runs)
        ran += 1
        if status == STOPPED or stop_requested:
            print(f"sweep.py: {p['point']} stopped with its checkpoint in {os.path.join(runs, p['point'])}; "
                  "run the same command again to continue", file=sys.stderr)
            return STOPPED
        if status != 0:
            tail = open(log, errors="replace").read().splitlines()[-5:]
            print(f"sweep.py: {p['point']} failed (exit status {status}); the end of {log}:", file=sys.stderr)
            for line in tail:
                print("  " + line, file=sys.stderr)
            failed.append(p["point"])
            continue
        try:
            row = row_for(p, args, os.path.join(runs, p["point"] + ".jsonl"), seconds)
            append_row(csv_path, row)
        except (OSError, ValueError) as e:
            print(f"sweep.py: error: {p['point']}: cannot record its row in {csv_path}: {e}", file=sys.stderr)
            return 1
        done.add(p["point"])
        print(f"[{n}/{total}] {p['point']}: test_acc {float(row['test_acc']):.4f} in {seconds:.0f} s", flush=True)
    if failed:
        print(f"sweep.py: {len(failed)} point(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

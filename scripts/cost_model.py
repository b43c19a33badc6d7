#!/usr/bin/env python3
"""A communication cost model of the sharded update: predicted weak-scaling efficiency on clusters.

    mpirun -np 2 hidden-mpi collectives --model resnet50 --json > shm.json      # this machine
    hidden-mpi bench --model resnet50 --input 3x224x224 --classes 1000 \\
        --batch-size 8 --steps 3 --warmup-steps 1 --threads 1 --json >> bench.jsonl
    python3 scripts/cost_model.py --probe shm.json --bench bench.jsonl \\
        --csv predictions.csv --plot model.png

On a cluster, add the probe of the real network (`mpirun -np 32 --hostfile hosts hidden-mpi
collectives --model resnet50 --json > net.json`, then `--probe net.json`): a probe on more than one
node becomes an interconnect of its own next to the assumed ones (Docs/cost-model.md).

Inputs (measured):
  --probe FILE   `hidden-mpi collectives --json`: per collective (allreduce_int64,
                 reduce_scatter_int64, allgather_float) a fit seconds = latency + bytes / bandwidth,
                 bytes being the whole buffer. A probe on one node gives the shared-memory
                 parameters; a probe on several nodes gives a measured network.
  --bench FILE   JSON lines of `hidden-mpi bench --json`. One-rank lines (world_size 1) give the
                 compute per image and the update work (medians over lines per model); lines of
                 more ranks are the measured side of the check (below).

The model. A step of the sharded update on P ranks on n nodes (r = P/n ranks per node, default 16;
n = 1 and r = P when P <= r), per-rank batch b (weak scaling), N weights in L masked layers:

  compute      T_c = b * t_img,   t_img = (forward + backward + data) / rank_batch  (1-rank bench)
               T_bwd = b * backward / rank_batch
  update       T_u = (mask_selection + optimizer) / P          (sharded: each rank owns N/P scores)
  reduce-scatter of S = 8N bytes (int64 gradients), one per layer, started as its backward ends;
  allgather of S = 4N bytes (float W_eff), one per layer, before the forward pass;
  4 small allreduces (three radix-selection histograms and the ties) whose latency is
  4 log2(P) alpha (alpha of the network when n > 1, of shared memory when n = 1), plus the
  histograms' bytes: 3 x L x 2048 x 8 bytes allreduced (about 1% of 12N, kept because it is
  there).

  Hierarchical ring ("ring", the default): within each node a ring over r ranks, between nodes r
  parallel rings over n nodes, so that each node's link carries S (n-1)/n bytes per collective
  (12 N (n-1)/n per step) and each rank moves S (r-1)/r bytes through shared memory:

      t(S) = L [ (r-1) a_shm + (n-1) a_net ] + S [ (r-1)/r / beta_rank + (n-1)/n / B_node ]

  so the per-layer collectives cost 2 L (n-1) a_net of network latency per step.

  Exposed communication: X = max(0, T_rs - h T_bwd) + T_ag + T_small (+ T_hist), with h = 0.9 the
  share of the backward pass that can hide the reduce-scatter (--hide); the allgather precedes the
  forward pass and is exposed whole.

  Efficiency: E = (T_c + T_u) / (T_c + T_u + X).  (The communication overhead only: a rank's
  step against the same step without communication. The sharded update's T_u / P is in both.)

  Shared memory, scaled from the probe's P0 ranks to r ranks: each collective's fit is turned into
  a per-rank copy bandwidth beta_rank and a per-step latency a_shm by the byte and step counts of
  the algorithm that ran in the probe, and beta_rank is assumed not to depend on r (each rank
  copies with its own core; a node whose memory bandwidth saturates will be slower than this):
      allgather_float (Open MPI 4.1 libnbc: linear)   beta = B_fit (P0-1)/P0,   a = lat/(P0-1)
      reduce_scatter_int64 (libnbc: binomial reduce of the whole buffer to rank 0, then a linear
        scatter)                                      beta = B_fit (log2 P0 + (P0-1)/P0),
                                                      a = lat/(log2 P0 + P0-1)
        (at P0 = 2: beta = 1.5 B_fit; the int64 additions are inside this beta)
      allreduce_int64 (tuned, ring for large)         beta = B_fit 2 (P0-1)/P0, a = lat/log2 P0
  At r = P0 = 2 the model gives back the probe's fits exactly.

  Networks: assumed per-node latency and bandwidth (--interconnect NAME:LAT_US:GB_PER_S to add or
  replace), or measured by a probe on n0 > 1 nodes: its allgather fit (data movement only, no
  arithmetic) is inverted with libnbc's linear allgatherv's per-node bytes S r0 (n0-1)/n0 after
  the shared-memory part is taken off: B_node = r0 (n0-1)/n0 / (1/B_fit - (r0-1)/P0 / beta_rank),
  a_net = (lat - (r0-1) a_shm) / (n0-1).

  "libnbc" (--libnbc-csv, dotted in the plot): the same links under the algorithms Open MPI 4.1
  actually runs for the non-blocking collectives of the trainer (MPI_Ireduce_scatter,
  MPI_Iallgatherv; coll/han and coll/adapt have priority 0 and no non-blocking versions of these):
      reduce-scatter: t = (log2 r + r-1) a_shm + (log2 n + n-1) a_net
                          + S [ (log2 r + (r-1)/P) / beta_rank + (log2 n + (n-1)/n) / B_node ]
      allgatherv:     t = (r-1) a_shm + (n-1) a_net + S [ (r-1)/P / beta_rank + r (n-1)/n / B_node ]
  (every rank of a node receives every remote block over the node's link: r times the ring's bytes).

Not modelled: contention between the reduce-scatter and the compute it overlaps (cores and memory
bandwidth), the progress of non-blocking collectives only inside MPI calls, stragglers, the
per-rank compute of 16 ranks sharing a node's memory bandwidth (t_img is one rank on an idle-ish
core), the reduction's arithmetic on the network part, and topology beyond one switch.

The check (--check-bench, or the multi-rank lines of --bench): for each model and rank count of
the measured multi-rank bench lines, the model predicts that run (P ranks at the measured per-rank
batch, on one node over shared memory, or on 2+ nodes over a probed network whose probe had as many
nodes) under the libnbc algorithms (what ran) and the ring, and prints it next to the measured
exposed communication (allreduce_wait + allgather_wait), 1 - that / step, and the step ratio
against the one-rank lines of the same files.

Outputs: a table on stdout (and --markdown tables), --csv (model, interconnect, ranks, nodes,
rank_batch, t_compute_s, t_comm_exposed_s, efficiency, below_90, then the parts; t_compute_s is
T_c + T_u), --libnbc-csv, --plot and --libnbc-plot (PNG and SVG, only when matplotlib imports;
the tables and CSVs need nothing beyond Python 3).
"""
import argparse
import csv
import io
import json
import math
import os
import statistics
import sys

import plotting

# Masked layers (conv2d + linear rows of `hidden-mpi info`, input 3x32x32 or 3x224x224 with 1000
# classes): the number of per-layer reduce-scatters and allgathers per step.
LAYERS = {"fc": 3, "conv2": 5, "conv4": 7, "conv6": 9, "conv8": 11, "cifar-resnet18": 21,
          "cifar-resnet34": 37, "cifar-resnet50": 54, "resnet18": 21, "resnet34": 37,
          "resnet50": 54, "resnet101": 105, "resnet152": 156, "wide-resnet50-2": 54,
          "wide-resnet101-2": 105}
# Per-rank batch of the predictions: the paper's CIFAR batch 128 and ImageNet batch 256 over 16 ranks.
RANK_BATCH = {"conv4": 8, "cifar-resnet18": 8, "resnet50": 16, "wide-resnet50-2": 16}
MODELS = ["conv4", "cifar-resnet18", "resnet50", "wide-resnet50-2"]
# Assumed networks: (name, latency s, bytes/s per node link). Effective figures for MPI over each
# (not line rates): 10/25 GbE with TCP, InfiniBand HDR100/HDR200 with verbs/UCX.
ASSUMED = [("10 GbE", 30e-6, 1.15e9), ("25 GbE", 20e-6, 2.9e9),
           ("IB 100 Gb/s", 2e-6, 11.5e9), ("IB 200 Gb/s", 1.5e-6, 23e9)]
SHM = "shared memory"
COLLECTIVES = {"rs": "reduce_scatter_int64", "ag": "allgather_float", "ar": "allreduce_int64"}
HISTOGRAM_BYTES = 2048 * 8  # one selecting layer's histogram, int64
HISTOGRAM_PASSES = 3
SMALL_ALLREDUCES = 4


def log2(x):
    return math.log2(x) if x > 1 else 0.0


def load_json(path):
    with open(path) as f:
        text = f.read().strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # a log with the object on its last line
        return json.loads(text.splitlines()[-1])


def fit(points):
    """seconds = latency + bytes * per_byte, least squares on relative error (as `collectives`)."""
    sw = sx = sy = sxx = sxy = 0.0
    for b, t in points:
        w = 1 / max(t * t, 1e-18)
        sw += w; sx += w * b; sy += w * t; sxx += w * b * b; sxy += w * b * t
    det = sw * sxx - sx * sx
    if det <= 0:
        return sy / max(sw, 1e-300), 0.0
    slope = (sw * sxy - sx * sy) / det
    intercept = (sy - slope * sx) / sw
    if slope < 0:
        slope, intercept = 0.0, sy / sw
    if intercept < 0:
        intercept, slope = 0.0, sxy / max(sxx, 1e-300)
    return intercept, slope


def refit(probe, min_bytes):
    """The probe with each collective's bandwidth refitted on the points of at least min_bytes
    (latency kept from the probe's fit over all sizes)."""
    for c in probe["collectives"].values():
        pts = [(b, t) for b, t in c["points"] if b >= min_bytes]
        if len(pts) >= 2:
            _, per_byte = fit(pts)
            c["seconds_per_byte"] = per_byte
            c["bandwidth_bytes_per_s"] = 1 / per_byte if per_byte > 0 else None
    return probe


def load_bench(paths):
    """One-rank medians per model, and the multi-rank rows (the check)."""
    single, multi = {}, []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                d = json.loads(line)
                if "phases_s" not in d:
                    continue
                (single.setdefault(d["model"], []) if d.get("world_size", 1) == 1 else multi).append(d)
    medians = {}
    for model, rows in single.items():
        med = lambda f: statistics.median(f(r) for r in rows)
        ph = lambda k: med(lambda r: r["phases_s"].get(k, 0.0) / r["rank_batch"])
        medians[model] = {
            "runs": len(rows),
            "rank_batch": med(lambda r: r["rank_batch"]),
            "step_s": med(lambda r: r["step_s"]),
            "weights": int(med(lambda r: r["allreduce_bytes_per_step"] / (8 if r.get("reduction", "exact") == "exact" else 4))),
            # per image
            "t_img": med(lambda r: (r["phases_s"]["forward"] + r["phases_s"]["backward"] + r["phases_s"].get("data", 0.0)) / r["rank_batch"]),
            "t_bwd_img": ph("backward"),
            # per step (not per image): the update does not depend on the batch
            "t_update": med(lambda r: r["phases_s"].get("mask_selection", 0.0) + r["phases_s"].get("optimizer", 0.0)),
            "input": rows[0].get("input"),
        }
    return medians, multi


class SharedMemory:
    """Per-rank bandwidth and per-step latency of each collective within a node, from a 1-node probe."""

    def __init__(self, probe):
        p0 = probe["world_size"]
        if p0 < 2:
            sys.exit("error: the shared-memory probe needs at least 2 ranks")
        self.p0 = p0
        self.fit = {k: probe["collectives"][v] for k, v in COLLECTIVES.items()}
        factor = {"ag": ((p0 - 1) / p0, p0 - 1),
                  "rs": (log2(p0) + (p0 - 1) / p0, log2(p0) + p0 - 1),
                  "ar": (2 * (p0 - 1) / p0, max(1.0, log2(p0)))}
        self.beta, self.alpha = {}, {}
        for k, (bytes_factor, steps) in factor.items():
            bw = self.fit[k]["bandwidth_bytes_per_s"] or float("inf")
            self.beta[k] = bw * bytes_factor
            self.alpha[k] = self.fit[k]["latency_s"] / steps


class Network:
    def __init__(self, name, latency, bandwidth, source="assumed"):
        self.name, self.latency, self.bandwidth, self.source = name, latency, bandwidth, source


def network_from_probe(probe, shm, name):
    """Invert a multi-node probe's allgather fit (libnbc linear allgatherv) into a node link."""
    p0, n0 = probe["world_size"], probe["nodes"]
    r0 = p0 / n0
    # The non-blocking allgatherv (libnbc, linear): in probes before the step switched to the
    # blocking one it was named allgather_float; later probes time it as allgather_float_nonblocking.
    ag = probe["collectives"].get("allgather_float_nonblocking", probe["collectives"]["allgather_float"])
    per_byte = ag["seconds_per_byte"]
    intra = (r0 - 1) / p0 / shm.beta["ag"] if (shm and r0 > 1) else 0.0
    if per_byte - intra <= 0:
        intra = 0.0  # the shared-memory figures do not fit this machine: all to the network
    bw = r0 * (n0 - 1) / n0 / (per_byte - intra) if per_byte > 0 else float("inf")
    lat = ag["latency_s"] - ((r0 - 1) * shm.alpha["ag"] if (shm and r0 > 1) else 0.0)
    lat = max(lat, 0.0) / (n0 - 1)
    return Network(name, lat, bw, source="probe")


def collective_time(kind, alg, S, layers, P, n, r, shm, net):
    """Seconds of `layers` collectives of `kind` moving S bytes in all (whole buffers summed)."""
    a_s, b_s = shm.alpha[kind], shm.beta[kind]
    a_n, b_n = (net.latency, net.bandwidth) if (net and n > 1) else (0.0, float("inf"))
    if alg == "ring" or kind == "ar":
        lat = layers * ((r - 1) * a_s + (n - 1) * a_n)
        per_byte = (r - 1) / r / b_s + (n - 1) / n / b_n
    elif kind == "rs":  # libnbc (both "libnbc" and "openmpi"): binomial reduce of the whole buffer to rank 0, linear scatter
        lat = layers * ((log2(r) + r - 1) * a_s + (log2(n) + n - 1) * a_n)
        per_byte = (log2(r) + (r - 1) / P) / b_s + (log2(n) + (n - 1) / n) / b_n
    elif alg == "libnbc":  # libnbc linear allgatherv (the step's before it went blocking)
        lat = layers * ((r - 1) * a_s + (n - 1) * a_n)
        per_byte = (r - 1) / P / b_s + r * (n - 1) / n / b_n
    else:  # "openmpi": the blocking MPI_Allgatherv the step now calls, ring-like (coll/tuned)
        lat = layers * ((r - 1) * a_s + (n - 1) * a_n)
        per_byte = (r - 1) / r / b_s + (n - 1) / n / b_n
    return lat + S * per_byte


def predict(bench, layers, P, ranks_per_node, rank_batch, shm, net, alg="ring", hide=0.9):
    r = min(P, ranks_per_node)
    n = math.ceil(P / r)
    N = bench["weights"]
    T_c = rank_batch * bench["t_img"]
    T_bwd = rank_batch * bench["t_bwd_img"]
    T_u = bench["t_update"] / P
    t_rs = collective_time("rs", alg, 8 * N, layers, P, n, r, shm, net)
    t_ag = collective_time("ag", alg, 4 * N, layers, P, n, r, shm, net)
    small_alpha = net.latency if (net and n > 1) else shm.alpha["ar"]
    t_small = SMALL_ALLREDUCES * log2(P) * small_alpha
    H = HISTOGRAM_PASSES * layers * HISTOGRAM_BYTES
    b_n = net.bandwidth if (net and n > 1) else float("inf")
    t_hist = H * (2 * (r - 1) / r / shm.beta["ar"] + 2 * (n - 1) / n / b_n)
    exposed_rs = max(0.0, t_rs - hide * T_bwd)
    X = exposed_rs + t_ag + t_small + t_hist
    E = (T_c + T_u) / (T_c + T_u + X)
    return {"ranks": P, "nodes": n, "rank_batch": rank_batch, "t_compute_s": T_c + T_u, "t_update_s": T_u,
            "t_comm_exposed_s": X, "efficiency": E, "below_90": E < 0.9, "t_reduce_scatter_s": t_rs,
            "t_reduce_scatter_exposed_s": exposed_rs, "t_allgather_s": t_ag, "t_small_s": t_small + t_hist,
            "t_backward_s": T_bwd}


def parse_kv(items, cast):
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        if not v:
            sys.exit(f"error: expected MODEL=VALUE, got {item!r}")
        out[k] = cast(v)
    return out


def markdown_tables(rows, ranks, interconnects, models):
    lines = []
    for model in models:
        mrows = [x for x in rows if x["model"] == model]
        if not mrows:
            continue
        b = mrows[0]["rank_batch"]
        lines.append(f"**{model}** (per-rank batch {b}; efficiency, % of the step that is not exposed communication)\n")
        lines.append("| interconnect | " + " | ".join(f"P={p}" for p in ranks) + " | below 90% from |")
        lines.append("|---|" + "---:|" * len(ranks) + "---|")
        for ic in interconnects:
            by = {x["ranks"]: x for x in mrows if x["interconnect"] == ic}
            if not by:
                continue
            cells = [f"{100 * by[p]['efficiency']:.1f}" if p in by else "-" for p in ranks]
            low = [p for p in ranks if p in by and by[p]["below_90"]]
            first = f"P={low[0]} ({by[low[0]]['nodes']} node{'s' if by[low[0]]['nodes'] > 1 else ''})" if low else "never (up to P=%d)" % max(by)
            if ic == SHM:
                first = first if low else "never (one node)"
            lines.append(f"| {ic} | " + " | ".join(cells) + f" | {first} |")
        lines.append("")
    return "\n".join(lines)


def plot(rows, ranks, interconnects, models, output, title, rpn=16):
    """One panel per model: efficiency against ranks (log2), a line per interconnect, 90% dashed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib does not import: no {output} (the tables and CSV are written)", file=sys.stderr)
        return
    models = [m for m in models if any(x["model"] == m for x in rows)]
    cols = 2 if len(models) > 1 else 1
    nrows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.2 * cols, 4.2 * nrows + 0.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>p"
    lowest = min(100 * x["efficiency"] for x in rows)
    bottom = 0 if lowest < 50 else 10 * math.floor((lowest - 5) / 10)
    handles = {}
    for i, model in enumerate(models):
        ax = axes[i // cols][i % cols]
        for j, ic in enumerate(interconnects):
            pts = sorted((x["ranks"], x["efficiency"]) for x in rows if x["model"] == model and x["interconnect"] == ic)
            if not pts:
                continue
            xs, ys = zip(*pts)
            label = f"{ic} (one node only)" if ic == SHM else ic
            (h,) = ax.plot(xs, [100 * y for y in ys], marker=markers[j % len(markers)], markersize=7 if ic == SHM else 5,
                           color=colours[j % len(colours)], label=label, zorder=3 if ic == SHM else 2)
            handles[label] = h
        handles["90% efficiency"] = ax.axhline(90, color="black", linestyle="--", linewidth=1.2)
        b = next(x["rank_batch"] for x in rows if x["model"] == model)
        ax.set_title(f"{model} (per-rank batch {b}, {rpn} ranks per node)", fontsize=11)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ranks)
        ax.set_xticklabels([f"{p}\n({math.ceil(p / rpn)} node{'s' if p > rpn else ''})" for p in ranks])
        ax.minorticks_off()
        ax.set_xlabel("ranks (nodes), log2 scale")
        ax.set_ylabel("predicted efficiency (%)")
        ax.set_ylim(bottom, 100.5)
        ax.grid(alpha=0.3)
    for k in range(len(models), nrows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(title, fontsize=11)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=min(4, len(handles)), fontsize=10, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (4.2 * nrows + 0.6), 1, 1))
    base, ext = os.path.splitext(output)
    plotting.savefig(fig, output)
    if ext.lower() != ".svg":
        plotting.savefig(fig, base + ".svg")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", action="append", required=True,
                    help="collectives --json output; one on one node (shared memory) is needed, NAME=FILE names a multi-node one")
    ap.add_argument("--bench", action="append", required=True, help="bench --json lines (JSONL)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rank-batch", action="append", metavar="MODEL=B", help="per-rank batch (defaults: conv4 8, cifar-resnet18 8, resnet50 16, wide-resnet50-2 16)")
    ap.add_argument("--layers", action="append", metavar="MODEL=L", help="masked layers, overriding the built-in counts")
    ap.add_argument("--ranks", default="16,32,64,128,256")
    ap.add_argument("--ranks-per-node", type=int, default=16)
    ap.add_argument("--hide", type=float, default=0.9, help="share of the backward pass that can hide the reduce-scatter (0.9)")
    ap.add_argument("--interconnect", action="append", metavar="NAME:LAT_US:GB_PER_S", help="add or replace an assumed network")
    ap.add_argument("--no-assumed", action="store_true", help="only the probes' interconnects")
    ap.add_argument("--csv", help="predictions (hierarchical ring)")
    ap.add_argument("--libnbc-csv", help="also predict under Open MPI 4.1's libnbc algorithms and write them here")
    ap.add_argument("--openmpi-csv", help="also predict as hidden-mpi calls Open MPI 4.1 now (libnbc's reduce-scatter, the blocking allgatherv) and write them here")
    ap.add_argument("--plot", help="PNG of the hierarchical-ring predictions (an SVG is written next to it)")
    ap.add_argument("--libnbc-plot", help="PNG (and SVG) of the libnbc predictions")
    ap.add_argument("--markdown", action="store_true", help="print the predictions as markdown tables")
    ap.add_argument("--refit-from", type=int, metavar="BYTES",
                    help="refit the probes' bandwidths on their points of at least BYTES (default: the probes' own fits over all sizes)")
    ap.add_argument("--check-bench", action="append",
                    help="bench lines of 1 and more ranks on this machine, A/B interleaved: the check predicts the multi-rank "
                         "lines from the 1-rank lines of these files (default: the multi-rank lines of --bench)")
    args = ap.parse_args()

    shm, networks = None, []
    for spec in args.probe:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        probe = load_json(path)
        if args.refit_from:
            probe = refit(probe, args.refit_from)
        if probe.get("nodes", 1) == 1:
            if shm is None:
                shm = SharedMemory(probe)
                shm.path = path
        else:
            networks.append((name or f"probe {os.path.basename(path)}", probe, path))
    if shm is None:
        sys.exit("error: no probe on one node: the shared-memory parameters are needed (mpirun -np 2 hidden-mpi collectives --json)")
    nets = []
    if not args.no_assumed:
        assumed = {n: Network(n, l, b) for n, l, b in ASSUMED}
        for spec in args.interconnect or []:
            try:
                n, l, b = spec.rsplit(":", 2)
                assumed[n] = Network(n, float(l) * 1e-6, float(b) * 1e9)
            except ValueError:
                sys.exit(f"error: --interconnect wants NAME:LATENCY_US:GB_PER_S, got {spec!r}")
        nets += list(assumed.values())
    for name, probe, path in networks:
        nets.append(network_from_probe(probe, shm, name))
        nets[-1].probe = probe

    bench, multi = load_bench(args.bench)
    models = [m for m in args.models.split(",") if m]
    missing = [m for m in models if m not in bench]
    if missing:
        print(f"note: no one-rank bench lines for {', '.join(missing)}: skipped", file=sys.stderr)
        models = [m for m in models if m in bench]
    rank_batch = dict(RANK_BATCH, **parse_kv(args.rank_batch, int))
    layers = dict(LAYERS, **parse_kv(args.layers, int))
    ranks = [int(x) for x in args.ranks.split(",")]
    rpn = args.ranks_per_node

    # --- what was measured
    print(f"shared-memory probe {shm.path}: {shm.p0} ranks on one node")
    print("  collective              latency_us  bandwidth_GB/s(whole buffer)  -> per-rank beta_GB/s  step latency_us")
    for k, v in COLLECTIVES.items():
        f = shm.fit[k]
        print(f"  {v:22s} {1e6 * f['latency_s']:10.2f}  {1e-9 * (f['bandwidth_bytes_per_s'] or float('inf')):14.3f}"
              f"                {1e-9 * shm.beta[k]:10.3f}        {1e6 * shm.alpha[k]:8.2f}")
    for net in nets:
        if net.source == "probe":
            p = net.probe
            print(f"network probe {net.name}: {p['world_size']} ranks on {p['nodes']} nodes")
            for k, v in COLLECTIVES.items():
                f = p["collectives"][v]
                print(f"  {v:22s} {1e6 * f['latency_s']:10.2f}  {1e-9 * (f['bandwidth_bytes_per_s'] or float('inf')):14.3f}")
            print(f"  -> node link (from the allgather): latency {1e6 * net.latency:.2f} us, {1e-9 * net.bandwidth:.3f} GB/s")
    print("\none-rank bench (medians):")
    print("  model              runs  rank_batch  weights     L   t_img_s   t_bwd_img_s  t_update_s(step)")
    for m in models:
        b = bench[m]
        print(f"  {m:18s} {b['runs']:4d}  {b['rank_batch']:10.0f}  {b['weights']:10d} {layers[m]:3d}  {b['t_img']:8.4f}  {b['t_bwd_img']:11.4f}  {b['t_update']:10.4f}")

    # --- predictions
    interconnects = [SHM] + [n.name for n in nets]
    results = {}
    for alg in ["ring"] + (["libnbc", "openmpi"] if (args.libnbc_csv or args.libnbc_plot or args.openmpi_csv or args.markdown) else []):
        rows = []
        for m in models:
            b = rank_batch.get(m)
            if b is None:
                sys.exit(f"error: no per-rank batch for {m}: --rank-batch {m}=B")
            for P in ranks:
                if math.ceil(P / min(P, rpn)) == 1:
                    rows.append(dict(model=m, interconnect=SHM, algorithm=alg,
                                     **predict(bench[m], layers[m], P, rpn, b, shm, None, alg, args.hide)))
                for net in nets:
                    rows.append(dict(model=m, interconnect=net.name, algorithm=alg,
                                     **predict(bench[m], layers[m], P, rpn, b, shm, net, alg, args.hide)))
        results[alg] = rows

    print(f"\npredicted efficiency (hierarchical ring), {rpn} ranks per node, hide {args.hide:.0%} of backward:")
    w = max(len(ic) for ic in interconnects)
    print("  model              " + "interconnect".ljust(w) + " " + "".join(f"P={p:<7d}" for p in ranks))
    for m in models:
        for ic in interconnects:
            by = {x["ranks"]: x for x in results["ring"] if x["model"] == m and x["interconnect"] == ic}
            if by:
                print(f"  {m:18s} {ic:{w}s} " + "".join(f"{100 * by[p]['efficiency']:6.1f}% " if p in by else "   -    " for p in ranks))
    if "libnbc" in results:
        print("\nthe same under Open MPI 4.1's libnbc algorithms (binomial-reduce reduce-scatter, linear allgatherv):")
        for m in models:
            for ic in interconnects[1:]:
                by = {x["ranks"]: x for x in results["libnbc"] if x["model"] == m and x["interconnect"] == ic}
                print(f"  {m:18s} {ic:{w}s} " + "".join(f"{100 * by[p]['efficiency']:6.1f}% " for p in ranks))

    fields = ["model", "interconnect", "ranks", "nodes", "rank_batch", "t_compute_s", "t_comm_exposed_s", "efficiency",
              "below_90", "algorithm", "t_update_s", "t_backward_s", "t_reduce_scatter_s", "t_reduce_scatter_exposed_s",
              "t_allgather_s", "t_small_s"]

    def write_csv(path, rows):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for x in rows:
            w.writerow({k: (f"{x[k]:.6g}" if isinstance(x[k], float) else x[k]) for k in fields})
        plotting.write_text(path, buf.getvalue())
        print(f"wrote {path}")

    if args.csv:
        write_csv(args.csv, results["ring"])
    if args.libnbc_csv:
        write_csv(args.libnbc_csv, results["libnbc"])
    if args.openmpi_csv:
        write_csv(args.openmpi_csv, results["openmpi"])
    if args.markdown:
        print("\n" + markdown_tables(results["ring"], ranks, interconnects, models))
        if "libnbc" in results:
            print("Under Open MPI 4.1's libnbc algorithms:\n")
            print(markdown_tables(results["libnbc"], ranks, interconnects[1:], models))
            print("As hidden-mpi calls Open MPI 4.1 now (libnbc reduce-scatter, blocking ring-like allgatherv):\n")
            print(markdown_tables(results["openmpi"], ranks, interconnects[1:], models))

    # --- the check: P ranks on this node at the bench's own per-rank batch
    ref = bench
    if args.check_bench:
        ref, multi = load_bench(args.check_bench)
    if multi:
        print("\ncheck against measured multi-rank bench lines (shared memory on one node, a probed network across nodes; "
              + ("1-rank reference from --check-bench" if args.check_bench else "1-rank reference from --bench") + "):")
        groups = {}
        for d in multi:
            groups.setdefault((d["model"], d["world_size"], d["rank_batch"], d.get("nodes", 1)), []).append(d)
        for (m, P, b, nodes), rows in sorted(groups.items()):
            probed = [x for x in nets if x.source == "probe" and x.probe.get("nodes") == nodes]
            if m not in ref or (nodes > 1 and not probed):
                continue
            net = probed[0] if nodes > 1 else None
            where = f"{nodes} nodes over {net.name}" if net else "one node"
            med = lambda f: statistics.median(f(d) for d in rows)
            step = med(lambda d: d["step_s"])
            waits = med(lambda d: d["phases_s"].get("allreduce_wait", 0.0) + d["phases_s"].get("allgather_wait", 0.0))
            rs_wait = med(lambda d: d["phases_s"].get("allreduce_wait", 0.0))
            ag_wait = med(lambda d: d["phases_s"].get("allgather_wait", 0.0))
            e_meas = med(lambda d: 1 - (d["phases_s"].get("allreduce_wait", 0.0) + d["phases_s"].get("allgather_wait", 0.0)) / d["step_s"])
            one = ref[m]["step_s"] if ref[m]["rank_batch"] == b else None
            per_node = P // nodes
            pr = predict(ref[m], layers[m], P, per_node, b, shm, net, "libnbc", args.hide)
            ring = predict(ref[m], layers[m], P, per_node, b, shm, net, "ring", args.hide)
            print(f"  {m}, {P} ranks on {where}, per-rank batch {b}, {len(rows)} run(s):")
            print(f"    predicted (libnbc, as run here): step {pr['t_compute_s'] + pr['t_comm_exposed_s']:.4f} s, exposed communication "
                  f"{pr['t_comm_exposed_s']:.4f} s (reduce-scatter {pr['t_reduce_scatter_s']:.4f} s against 0.9 x backward "
                  f"{args.hide * pr['t_backward_s']:.4f} s: exposed {pr['t_reduce_scatter_exposed_s']:.4f} s; allgather "
                  f"{pr['t_allgather_s']:.4f} s; small allreduces {pr['t_small_s']:.5f} s), efficiency {100 * pr['efficiency']:.1f}%")
            print(f"    predicted (hierarchical ring): exposed communication {ring['t_comm_exposed_s']:.4f} s, efficiency {100 * ring['efficiency']:.1f}%")
            print(f"    measured: step {step:.4f} s, waits {waits:.4f} s (reduce-scatter wait {rs_wait:.4f} s, allgather wait "
                  f"{ag_wait:.4f} s), efficiency 1 - waits/step {100 * e_meas:.1f}%")
            if one:
                print(f"    measured weak-scaling ratio step(1 rank) / step({P} ranks) = {one:.4f} / {step:.4f} = {100 * one / step:.1f}% "
                      f"(includes the sharded update's savings and {P} ranks sharing this machine's cores)")
            print(f"    predicted (libnbc) - measured efficiency: {100 * (pr['efficiency'] - e_meas):+.1f} points; exposed communication "
                  f"predicted / measured = {pr['t_comm_exposed_s'] / waits if waits > 0 else float('inf'):.2f}; predicted / measured step "
                  f"= {(pr['t_compute_s'] + pr['t_comm_exposed_s']) / step:.2f}")

    if args.plot:
        plot(results["ring"], ranks, interconnects, models, args.plot, rpn=rpn,
             title=f"Sharded update, weak scaling: predicted efficiency (hierarchical ring collectives; "
                   f"{args.hide:.0%} of the backward pass can hide the reduce-scatter)")
    if args.libnbc_plot:
        plot(results["libnbc"], ranks, interconnects, models, args.libnbc_plot, rpn=rpn,
             title="The same under Open MPI 4.1's libnbc algorithms (binomial-reduce + scatter reduce-scatter, "
                   "linear allgatherv)")


if __name__ == "__main__":
    main()

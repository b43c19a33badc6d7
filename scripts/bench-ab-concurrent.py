#!/usr/bin/env python3
"""Whole-step A/B of two hidden-mpi builds, both running at the same time (scripts/bench-ab.sh
runs them one after the other, the order alternating).

On a shared machine a step's time moves by 10-30% from minute to minute, which hides a change of
a few percent when the two builds run one after the other. Here build A runs `bench` on core 0
while build B runs it on core 1, and the cores swap every round: a slow phase slows both. They
share the memory bandwidth (both alike; the faster one finishes first and the slower then runs
alone, which shrinks a difference rather than grows it). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
are unset for both, as in scripts/bench-speed.sh. Needs two free cores: run nothing else.

  python3 scripts/bench-ab-concurrent.py OLD_BINARY NEW_BINARY ROUNDS [bench options ...] > ab.jsonl
  python3 scripts/bench-ab-concurrent.py /tmp/hm-old .build/release/hidden-mpi 6 --model cifar-resnet18 --steps 6

One JSON line per round (each build's median step, images/s, the ratio A step / B step: above 1
means B is faster), then the median ratio on stderr.
"""
import json
import os
import statistics
import subprocess
import sys

if len(sys.argv) < 4:
    sys.exit(__doc__)
a, b, rounds, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
for binary in (a, b):
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        sys.exit(f"bench-ab-concurrent: {binary} is not an executable file: give the two hidden-mpi builds to compare")
if (os.cpu_count() or 1) < 2:
    sys.exit("bench-ab-concurrent: needs two cores (one build on each)")
env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
ratios = []
for r in range(rounds):
    cores = {"a": "0", "b": "1"} if r % 2 == 0 else {"a": "1", "b": "0"}
    procs = {x: subprocess.Popen(["taskset", "-c", cores[x], binary, "bench", *args, "--json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
             for x, binary in (("a", a), ("b", b))}
    res = {}
    for x, p in procs.items():
        out, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"bench of build {x} failed (status {p.returncode}):\n{err}")
        res[x] = json.loads(out)
    ratio = res["a"]["step_s"] / res["b"]["step_s"]
    ratios.append(ratio)
    print(json.dumps({"round": r + 1, "a": a, "b": b, "a_core": cores["a"], "bench_args": " ".join(args),
                      "a_step_s": res["a"]["step_s"], "b_step_s": res["b"]["step_s"], "ratio": round(ratio, 3),
                      "a_images_per_s": res["a"]["images_per_s"], "b_images_per_s": res["b"]["images_per_s"]}), flush=True)
print("median ratio (A step / B step) %.3f over %d rounds" % (statistics.median(ratios), len(ratios)), file=sys.stderr)

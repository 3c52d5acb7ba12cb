#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""idle_bench.py — what an idle `kodiak up` cluster costs, and how fast it
answers again.

Starts the default local cluster (`kodiak up`: two famds over shm and a
kodiakd of two MPI ranks under mpirun) from this tree's build, in a
temporary KODIAK_HOME, connects a client and does some work (pdarrays and a
FamArray, so the ranks have talked to both famds), then:
  - idle CPU: time on a CPU of every thread of every process of the
    cluster (famd x2, mpirun and everything in its session: the kodiakd
    ranks) from /proc/PID/task/*/schedstat over --idle-sec seconds, as % of one core, beside the goal (< 1% for the
    whole cluster);
  - the first command after an idle gap of --gap seconds (a small pdarray
    round trip and a FamArray read of 8 elements through the ranks), median
    and worst of --reps gaps, beside the same command warm (median of 50 in
    a row, same run).
Then it runs build/bench/idle_bench (bare famds, shm and tcp: idle CPU and
the first put/get/atomic after idle) unless --no-famd.

    KODIAK_BUILD=build /usr/bin/python3 bench/idle_bench.py [--idle-sec 10]
        [--gap 3] [--reps 5] [--provider shm|tcp] [--no-famd]
        [--baseline-build DIR]

--baseline-build measures another build the same way in the same run
(e.g. main's, built from `git archive` into build-main/, with
bench/idle_bench.c added to it) and prints ratios against it."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
os.environ.setdefault("KODIAK_BUILD", os.path.join(REPO, "build"))

import numpy as np  # noqa: E402

import kodiak as ak  # noqa: E402
from kodiak import launcher  # noqa: E402


def cluster_pids(state):
    """name -> pid for every process of the cluster."""
    out = {}
    for i, f in enumerate(state["famd"]):
        out[f"famd {i}"] = f["pid"]
    mp = state["mpirun"]["pid"]
    ranks = set(launcher.rank_pids(mp))
    for pid in sorted(launcher.session_pids(mp)):
        if pid in ranks:
            out[f"kodiakd {len([k for k in out if k.startswith('kodiakd')])}"] = pid
        else:
            st = launcher._proc_stat(pid)
            out[st["comm"] if st else str(pid)] = pid
    return out


def cpu_s(pid):
    """CPU time of every thread of pid, in seconds, from
    /proc/PID/task/*/schedstat (nanoseconds on a CPU; the clock ticks of
    /proc/PID/stat are too coarse for an idle process). None if gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    ns = 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                ns += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended
    return ns / 1e9


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure_cluster(build, opt):
    """Start `kodiak up` from `build`, measure; returns (cpu %, latencies):
    cpu: process name -> % of a core while idle; lat: command -> (median
    after idle, worst after idle, warm median), seconds."""
    os.environ["KODIAK_BUILD"] = build
    home = tempfile.mkdtemp(prefix="kodiak-idle-bench-")
    os.environ["KODIAK_HOME"] = home
    cpu, lat = {}, {}
    try:
        state = launcher.up(provider=opt.provider, pool_size="256M")
        try:
            ak.connect(connect_file=state["connect_file"])
            n = 100_000
            reg = ak.fam_region("idle_bench")
            fa = reg.create("x", ak.int64, n)
            fa[ak.arange(0, n, 1)] = ak.arange(0, n, 1)
            assert int(fa[ak.arange(0, 8, 1)].to_ndarray().sum()) == 28

            def small():  # one command, through every rank
                assert ak.arange(0, 16, 1).to_ndarray()[15] == 15

            idx = ak.arange(0, 8, 1)

            def fam_read():  # a FamArray gather through the ranks and famds
                assert int(fa[idx].to_ndarray()[7]) == 7

            time.sleep(0.5)
            pids = cluster_pids(state)
            c0 = {k: cpu_s(p) for k, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(opt.idle_sec)
            el = time.monotonic() - t0
            c1 = {k: cpu_s(p) for k, p in pids.items()}
            for k in pids:
                if c0[k] is not None and c1[k] is not None:
                    cpu[k] = 100.0 * (c1[k] - c0[k]) / el
            for name, fn in (("arange(16) round trip", small),
                             ("FamArray read 8 elements", fam_read)):
                warm = statistics.median(timed(fn) for _ in range(50))
                cold = []
                for _ in range(opt.reps):
                    time.sleep(opt.gap)
                    cold.append(timed(fn))
                lat[name] = (statistics.median(cold), max(cold), warm)
            reg.destroy()
            ak.disconnect()
        finally:
            launcher.down()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return cpu, lat


ROW = re.compile(r"^(idle cpu: \w+|first .+?)\s+(shm|tcp)\s+([\d.]+)")


def famd_rows(build, opt):
    """Run build/bench/idle_bench; its table as text and {(what, prov): value}."""
    exe = os.path.join(build, "bench", "idle_bench")
    out = subprocess.run([exe, "--idle-sec", str(opt.idle_sec), "--gap", str(opt.gap),
                          "--reps", str(opt.reps)], check=True, capture_output=True,
                         text=True).stdout
    vals = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            vals[(m.group(1), m.group(2))] = float(m.group(3))
    return out, vals


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-sec", type=float, default=10.0)
    ap.add_argument("--gap", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--provider", default="shm", choices=("shm", "tcp"))
    ap.add_argument("--baseline-build", metavar="DIR",
                    help="also measure this build (e.g. main's) in the same run")
    ap.add_argument("--no-famd", action="store_true",
                    help="skip build/bench/idle_bench (bare famds)")
    opt = ap.parse_args()
    build = os.environ["KODIAK_BUILD"]
    base = opt.baseline_build
    load = os.getloadavg()[0]

    cpu, lat = measure_cluster(build, opt)
    bcpu, blat = measure_cluster(base, opt) if base else ({}, {})

    def rel(x, b):
        return f"{x / b:7.2f}" if b else "      -"

    print(f"`kodiak up` default cluster ({opt.provider}: 2 famd, kodiakd of 2 ranks under "
          f"mpirun), idle {opt.idle_sec:.0f} s with a client connected; CPU time of all "
          f"threads from /proc/PID/task/*/schedstat; load average at start {load:.2f}")
    if base:
        print(f"baseline (same run): {base}")
    print(f"{'process':<26} {'idle CPU':>10} {'baseline':>10} {'ratio':>7}")
    total = btotal = 0.0
    for k in cpu:
        total += cpu[k]
        b = bcpu.get(k)
        btotal += b or 0.0
        print(f"{k:<26} {cpu[k]:>9.3f}% " + (f"{b:>9.3f}% " if b is not None else
                                             f"{'-':>10} ") + rel(cpu[k], b))
    print(f"{'whole cluster':<26} {total:>9.3f}% " +
          (f"{btotal:>9.3f}% " if base else f"{'-':>10} ") + rel(total, btotal) +
          f"   goal < 1% of a core: {'met' if total < 1.0 else 'NOT met'}")
    print()
    print(f"first command after {opt.gap:.1f} s idle (median of {opt.reps}; worst) and warm "
          f"(median of 50 in a row), same run")
    print(f"{'command':<26} {'after idle':>22} {'warm':>9} {'idle/warm':>9}"
          f" {'baseline after idle':>22} {'ratio':>7}")
    for k, (c, worst, warm) in lat.items():
        b = blat.get(k)
        bs = f"{b[0] * 1e3:8.2f} ms ({b[1] * 1e3:.1f})" if b else "-"
        print(f"{k:<26} {c * 1e3:>8.2f} ms ({worst * 1e3:>6.1f}) {warm * 1e3:>6.2f} ms"
              f" {c / warm:>9.1f} {bs:>22} " + rel(c, b[0] if b else None))
    sys.stdout.flush()
    if opt.no_famd:
        return
    out, vals = famd_rows(build, opt)
    print()
    print(out, end="")
    if base:
        bout, bvals = famd_rows(base, opt)
        print(f"\nthe same with the baseline build ({base}):")
        print(bout, end="")
        print("\nratio this build / baseline (after idle; lower is better):")
        for key, v in vals.items():
            if key in bvals:
                print(f"  {key[0]:<22} {key[1]:<4} {v:>10.3f} {bvals[key]:>10.3f} "
                      f"{rel(v, bvals[key])}")


if __name__ == "__main__":
    main()

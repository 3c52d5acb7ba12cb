#!/usr/bin/env python3
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

main's behaviour (famd polling every ms, ranks sleeping at most 2 ms) is not
in this run; docs/PERFORMANCE.md keeps its figures beside these."""
import argparse
import os
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-sec", type=float, default=10.0)
    ap.add_argument("--gap", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--provider", default="shm", choices=("shm", "tcp"))
    ap.add_argument("--no-famd", action="store_true",
                    help="skip build/bench/idle_bench (bare famds)")
    opt = ap.parse_args()

    home = tempfile.mkdtemp(prefix="kodiak-idle-bench-")
    os.environ["KODIAK_HOME"] = home
    try:
        state = launcher.up(provider=opt.provider, pool_size="256M")
        try:
            ak.connect(connect_file=state["connect_file"])
            a = ak.arange(0, 100_000, 1)
            reg = ak.fam_region("idle_bench")
            fa = reg.create("x", ak.int64, 100_000)
            fa[ak.arange(0, 100_000, 1)] = a
            assert int(fa[ak.arange(0, 8, 1)].to_ndarray().sum()) == 28

            def small():  # one command, through every rank
                assert ak.arange(0, 16, 1).to_ndarray()[15] == 15

            idx = ak.arange(0, 8, 1)

            def fam_read():  # a FamArray gather through the ranks
                assert int(fa[idx].to_ndarray()[7]) == 7

            time.sleep(0.5)
            pids = cluster_pids(state)
            c0 = {k: cpu_s(p) for k, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(opt.idle_sec)
            el = time.monotonic() - t0
            c1 = {k: cpu_s(p) for k, p in pids.items()}
            print(f"`kodiak up` default cluster ({opt.provider}), idle {el:.1f} s "
                  f"with a client connected; CPU from /proc/PID/task/*/schedstat")
            print(f"{'process':<22} {'idle CPU':>12} {'goal':>22}")
            total = 0.0
            for k in pids:
                if c0[k] is None or c1[k] is None:
                    continue
                pc = 100.0 * (c1[k] - c0[k]) / el
                total += pc
                print(f"{k:<22} {pc:>11.3f}% {'':>22}")
            print(f"{'whole cluster':<22} {total:>11.3f}% {'< 1% of a core':>22}"
                  f"  ratio to goal {total / 1.0:.2f}")
            print()
            print(f"first command after {opt.gap:.1f} s idle (median of {opt.reps}) vs warm "
                  f"(median of 50 in a row, same run)")
            print(f"{'command':<26} {'after idle':>20} {'warm':>10} {'ratio':>7}")
            for name, fn in (("arange(16) round trip", small), ("FamArray read 8", fam_read)):
                warm = statistics.median(timed(fn) for _ in range(50))
                cold = []
                for _ in range(opt.reps):
                    time.sleep(opt.gap)
                    cold.append(timed(fn))
                c = statistics.median(cold)
                print(f"{name:<26} {c * 1e3:>8.2f} ms (max {max(cold) * 1e3:.2f})"
                      f" {warm * 1e3:>7.2f} ms {c / warm:>7.1f}")
            ak.disconnect()
        finally:
            launcher.down()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    sys.stdout.flush()
    if not opt.no_famd:
        exe = os.path.join(os.environ["KODIAK_BUILD"], "bench", "idle_bench")
        print()
        subprocess.run([exe, "--idle-sec", str(opt.idle_sec), "--gap", str(opt.gap),
                        "--reps", str(opt.reps)], check=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kd_liveness.py — what a client sees when a kodiakd rank stops (SIGSTOP).

Starts a local kodiakd (no famd) with 2 ranks under a temporary
$KODIAK_HOME, connects with a request deadline, stops the rank that is not
rank 0 and prints: how long the command in flight took to raise
TimeoutError (against its deadline), how fast the next requests were told
ServerBusyError, how long after SIGCONT the session served again, and the
round trip of a small command and the idle CPU of the ranks (what the
watcher thread could cost).

  /usr/bin/python3 bench/kd_liveness.py [--deadline 2] [--busy 50] [--calls 2000]
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
import kodiak as ak  # noqa: E402
from kodiak import launcher  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--deadline", type=float, default=2.0)
    p.add_argument("--busy", type=int, default=50, help="requests while the rank is stopped")
    p.add_argument("--calls", type=int, default=2000, help="round trips timed")
    args = p.parse_args()
    os.environ["KODIAK_HOME"] = tempfile.mkdtemp(prefix="kd-liveness-")
    state = launcher.up(fam_servers=0, ranks=2)
    rows = []
    try:
        info = ak.connect(connect_file=state["connect_file"], timeout=args.deadline)
        ranks = launcher.rank_pids(state["mpirun"]["pid"])
        a = ak.arange(0, 1000, 1)
        t = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(args.calls):
                ak.client.generic_msg("memory")
            t.append((time.perf_counter() - t0) / args.calls)
        rows.append(("'memory' round trip", f"{min(t) * 1e6:.0f} us", f"best of 3 x {args.calls}"))
        c0 = sum(launcher.cpu_seconds(q) for q in ranks)
        time.sleep(5)
        c1 = sum(launcher.cpu_seconds(q) for q in ranks)
        rows.append(("idle CPU, 2 ranks", f"{(c1 - c0) / 5 * 100:.1f} %", "of one core, over 5 s"))

        victim = next(q for q in ranks if q != info["pid"])
        os.kill(victim, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            try:
                a.sum()
                raise SystemExit("a.sum() answered with a rank stopped")
            except TimeoutError:
                took = time.monotonic() - t0
            rows.append(("TimeoutError after", f"{took:.3f} s", f"deadline {args.deadline:g} s"))
            busy = []
            for _ in range(args.busy):
                t0 = time.monotonic()
                try:
                    ak.client.generic_msg("memory")
                except ak.ServerBusyError:
                    busy.append(time.monotonic() - t0)
            rows.append(("ServerBusyError in", f"{statistics.median(busy) * 1e3:.2f} ms",
                         f"median of {len(busy)}/{args.busy}, max {max(busy) * 1e3:.2f} ms"))
        finally:
            os.kill(victim, signal.SIGCONT)
        t0 = time.monotonic()
        while True:
            try:
                assert a.sum() == 499500
                break
            except ak.ServerBusyError:
                time.sleep(0.005)
        rows.append(("served again after", f"{(time.monotonic() - t0) * 1e3:.0f} ms",
                     "SIGCONT to a correct a.sum()"))
    finally:
        ak.disconnect()
        launcher.down()
    print(f"{'what':<22} {'value':>10}  note")
    for r in rows:
        print(f"{r[0]:<22} {r[1]:>10}  {r[2]}")


if __name__ == "__main__":
    main()

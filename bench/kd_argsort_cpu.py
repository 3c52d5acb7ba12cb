#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kd_argsort_cpu.py — ak.argsort by key range: wall time and the CPU time
the kodiakd ranks spent (user + sys from /proc, summed over the ranks).

On a machine shared with other jobs the wall time of a sort swings by 2-5x
with the neighbours' load, while the CPU the ranks use changes much less, so
this prints both, for every repetition, for the four key ranges of
bench/kd_bench.py's argsort rows (random in [0, 2^16), in [0, 2^32), over
all of int64, and float64 normal). The first repetition of a range also
pays for the first touch of the sort's buffers.

  /usr/bin/python3 bench/kd_argsort_cpu.py [--n 1e8] [--ranks 2] [--reps 3]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
import kodiak as ak  # noqa: E402


def ranks_cpu(exe):
    """user + sys seconds of every process running `exe` (the kodiakd ranks)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.path.realpath(f"/proc/{pid}/exe") != exe:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone, or not ours to read
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=float, default=1e8)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--build", default=os.environ.get("KODIAK_BUILD",
                                                     os.path.join(os.path.dirname(HERE),
                                                                  "build")))
    args = p.parse_args()
    n = int(args.n)
    os.environ["KODIAK_BUILD"] = args.build
    exe = os.path.realpath(os.path.join(args.build, "kodiakd"))
    ak.start(fam_servers=0, ranks=args.ranks)
    try:
        print(f"# kd_argsort_cpu: N = {n:.3g}, {args.ranks} ranks, {args.reps} reps; "
              f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
        print("keys    wall best  cpu best   wall, each rep         cpu, each rep")
        for label, make in (("<2^16", lambda: ak.randint(0, 2**16, n, seed=6)),
                            ("<2^32", lambda: ak.randint(0, 2**32, n, seed=6)),
                            ("int64", lambda: ak.randint(-2**63, 2**63, n, seed=6)),
                            ("f64", lambda: ak.standard_normal(n, seed=6))):
            k = make()
            wall, cpu = [], []
            for _ in range(args.reps):
                c0 = ranks_cpu(exe)
                t0 = time.perf_counter()
                perm = ak.argsort(k)
                wall.append(time.perf_counter() - t0)
                cpu.append(ranks_cpu(exe) - c0)
                del perm
            del k
            print(f"{label:6s} {min(wall):8.3f} s {min(cpu):7.2f} s   "
                  f"{' '.join(f'{x:.2f}' for x in wall):22s} "
                  f"{' '.join(f'{x:.2f}' for x in cpu)}", flush=True)
    finally:
        ak.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""csv_bench.py — ak.read_csv beside pandas.read_csv of the same file, in the
same run, in rows/s.

The file is the shipped taxi sample (data/taxi, 120,000 rows, 18 columns)
with its rows repeated to --rows rows (default 2e6), written once to a
temporary directory. kodiak reads it with kodiakd at each --ranks count
(a fresh server each, started with mpirun on loopback, as the tests start
theirs); the table gives the best of --trials wall times (the file is in
the page cache after the first read, for both sides) and the CPU seconds
of that trial (pandas: this process; kodiak: all its ranks, from /proc),
which other processes on a crowded machine disturb less than wall time.

  /usr/bin/python3 bench/csv_bench.py [--rows 2e6] [--ranks 1,2] [--trials 3]
                                      [--parse-dates]

--parse-dates: both sides turn pickup_datetime and dropoff_datetime into
date-times (pandas: datetime64 columns; kodiak: int64 seconds)."""
import argparse
import gc
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
import kodiak as ak  # noqa: E402

SAMPLE = os.path.join(REPO, "data", "taxi", "yellow_tripdata_2017_sample.csv.gz")
DATES = ["pickup_datetime", "dropoff_datetime"]


def mpi_env():
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


class Kodiakd:
    """kodiakd under mpirun on a free loopback port, in its own directory."""

    def __init__(self, build, ranks, tmp):
        self.dir = tempfile.mkdtemp(prefix="kd-", dir=tmp)
        cf = os.path.join(self.dir, "connect.json")
        self.log = open(os.path.join(self.dir, "kodiakd.log"), "w")
        self.proc = subprocess.Popen(
            ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
             os.path.join(build, "kodiakd"), "--port", "0", "--connect-file", cf],
            stdout=self.log, stderr=subprocess.STDOUT, env=mpi_env(), start_new_session=True)
        deadline = time.time() + 60
        while not os.path.exists(cf):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("kodiakd did not start")
            time.sleep(0.05)
        with open(cf) as f:
            json.load(f)
        ak.connect(connect_file=cf)

    def cpu(self):
        """CPU seconds used so far by the ranks (the children of mpirun)."""
        total = 0.0
        try:
            kids = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        except OSError:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for k in kids:
            try:
                f = open(f"/proc/{k}/stat").read().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / tick  # utime, stime
            except OSError:
                pass
        return total

    def stop(self):
        ak.disconnect()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def make_file(path, rows):
    with gzip.open(SAMPLE, "rb") as f:
        header = f.readline()
        body = f.read()
    if not body.endswith(b"\n"):
        body += b"\n"
    lines = body.splitlines(keepends=True)
    done = 0
    with open(path, "wb") as out:
        out.write(header)
        while done < rows:
            take = lines[:rows - done]
            out.write(b"".join(take))
            done += len(take)
    return done


def best_of(trials, fn, cpu=time.process_time):
    """Best wall time of fn() and the CPU seconds (cpu()) of that trial."""
    best, best_cpu = float("inf"), 0.0
    for _ in range(trials):
        gc.collect()
        c0 = cpu()
        t0 = time.perf_counter()
        out = fn()
        t = time.perf_counter() - t0
        if t < best:
            best, best_cpu = t, cpu() - c0
        del out
    return best, best_cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=float, default=2e6)
    p.add_argument("--ranks", default="1,2")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--parse-dates", action="store_true")
    p.add_argument("--build", default=os.environ.get("KODIAK_BUILD",
                                                     os.path.join(REPO, "build")))
    args = p.parse_args()
    import pandas as pd
    tmp = tempfile.mkdtemp(prefix="kodiak-csvbench-")
    try:
        path = os.path.join(tmp, "taxi.csv")
        n = make_file(path, int(args.rows))
        size = os.path.getsize(path)
        kw = {"parse_dates": DATES} if args.parse_dates else {}
        print(f"# csv_bench: {n} rows, 18 columns, {size / 1e6:.0f} MB (taxi sample repeated)"
              f"{', parse_dates' if kw else ''}; best of {args.trials}; load average at start "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        tp, cp = best_of(args.trials, lambda: pd.read_csv(path, **kw))
        print(f"{'reader':<26}{'time':>8}{'cpu':>8}{'rows/s':>10}{'MB/s':>7}   pandas (same run)"
              f"  ratio  cpu ratio")
        print(f"{'pandas.read_csv':<26}{tp:>7.2f}s{cp:>7.2f}s{n / tp / 1e6:>8.2f} M"
              f"{size / tp / 1e6:>7.0f}   -")
        for r in [int(x) for x in args.ranks.split(",")]:
            srv = Kodiakd(args.build, r, tmp)
            try:
                t, c = best_of(args.trials, lambda: ak.read_csv(path, **kw), srv.cpu)
            finally:
                srv.stop()
            print(f"{f'ak.read_csv, {r} rank(s)':<26}{t:>7.2f}s{c:>7.2f}s{n / t / 1e6:>8.2f} M"
                  f"{size / t / 1e6:>7.0f}   {n / tp / 1e6:>6.2f} M rows/s  {tp / t:>5.2f}"
                  f"  {cp / c if c else 0:>5.2f}", flush=True)
        print(f"# load average at end {os.getloadavg()[0]:.2f} (2 cores: above ~1 other "
              f"processes took CPU from the ranks)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""csv_bench.py — ak.read_csv beside pandas.read_csv of the same file, in the
same run, in rows/s.

The file is the shipped taxi sample (data/taxi, 120,000 rows, 18 columns)
with its rows repeated to --rows rows (default 2e6), written once to a
temporary directory. kodiak reads it with kodiakd at each --ranks count
(a fresh server each, started with mpirun on loopback, as the tests start
theirs); the table gives the best of --trials wall times (the file is in
the page cache after the first read, for both sides).

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


def best_of(trials, fn):
    best = float("inf")
    for _ in range(trials):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        del out
    return best


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
        tp = best_of(args.trials, lambda: pd.read_csv(path, **kw))
        print(f"{'reader':<28}{'time':>9}{'rows/s':>12}{'MB/s':>9}   pandas (same run)  ratio")
        print(f"{'pandas.read_csv':<28}{tp:>8.2f}s{n / tp / 1e6:>10.2f} M{size / tp / 1e6:>9.0f}"
              f"   -")
        for r in [int(x) for x in args.ranks.split(",")]:
            srv = Kodiakd(args.build, r, tmp)
            try:
                t = best_of(args.trials, lambda: ak.read_csv(path, **kw))
            finally:
                srv.stop()
            print(f"{f'ak.read_csv, {r} rank(s)':<28}{t:>8.2f}s{n / t / 1e6:>10.2f} M"
                  f"{size / t / 1e6:>9.0f}   {n / tp / 1e6:>6.2f} M rows/s  {tp / t:>5.2f}",
                  flush=True)
        print(f"# load average at end {os.getloadavg()[0]:.2f} (2 cores: above ~1 other "
              f"processes took CPU from the ranks)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

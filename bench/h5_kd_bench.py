#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""h5_kd_bench.py — ak.read_hdf of one --mib MiB float64 dataset kept in FAM
(fam://, the driver "fam") by kodiakd's ranks, beside h5py reading the same
file into NumPy through the same driver, in the same run, in MB/s of
dataset bytes. Also ak.read_hdf of the same bytes in a local file on
/dev/shm (sec2) beside h5py reading that.

One famd (volatile pool, --provider) holds a region with the file, written
once by h5py (contiguous, or --chunked in 1 MiB chunks). Then per trial:

  - h5py: d.read_direct(np.empty(n)) of h5py.File(..., driver="fam")["v"]
    (one process, one core), the baseline of the ratios; and d[...], which
    ran 20x slower than read_direct here (h5py 3.7's own cost);
  - kodiak at each --ranks count: ak.read_hdf("fam://bench/v.h5", "v") —
    every rank opens the file and reads its rows as a hyperslab straight
    into its block — timed to the reply (the array stays on the server);
  - the same two for the /dev/shm copy.

Each figure is the best of --trials wall times. The machine is shared:
compare the columns of one run, and say the load average (printed).

  /usr/bin/python3 bench/h5_kd_bench.py [--mib 1024] [--ranks 1,2]
                                        [--trials 3] [--provider shm|tcp]
                                        [--chunked]

Not part of `make test`."""
import argparse
import gc
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "python"))
os.environ.setdefault("KODIAK_BUILD", os.path.join(REPO, "build"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import kodiak as ak  # noqa: E402
import kodiak.h5  # noqa: E402,F401
from fam_fixtures import FamServers, connect, start_kodiakd  # noqa: E402


def best_of(trials, fn):
    best = float("inf")
    for _ in range(trials):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--provider", default="shm")
    ap.add_argument("--chunked", action="store_true")
    a = ap.parse_args()
    n = (a.mib << 20) // 8
    v = np.random.default_rng(1).standard_normal(n)
    chunks = ((1 << 20) // 8,) if a.chunked else None
    famd = FamServers(1, pool_size=f"{2 * a.mib + 512}M", provider=a.provider)
    shm = f"/dev/shm/h5_kd_bench-{os.getpid()}.h5"
    try:
        famh5 = os.path.join(os.environ["KODIAK_BUILD"], "famh5")
        subprocess.run([famh5, "-s", famd.servers, "-p", a.provider, "mkregion", "bench",
                        f"{a.mib + 256}M"], check=True, capture_output=True)
        kw = {"driver": "fam", "servers": famd.servers, "provider": a.provider}
        with h5py.File("bench/v.h5", "w", **kw) as f:
            f.create_dataset("v", data=v, chunks=chunks)
        with h5py.File(shm, "w") as f:
            f.create_dataset("v", data=v, chunks=chunks)

        def h5py_read(name, **kw):
            with h5py.File(name, "r", **kw) as f:
                out = f["v"][...]
            assert out[-1] == v[-1]

        def h5py_direct(name, **kw):
            with h5py.File(name, "r", **kw) as f:
                out = np.empty(n)
                f["v"].read_direct(out)
            assert out[-1] == v[-1]

        rows = []
        t_fam = best_of(a.trials, lambda: h5py_read("bench/v.h5", **kw))
        t_shm = best_of(a.trials, lambda: h5py_read(shm))
        d_fam = best_of(a.trials, lambda: h5py_direct("bench/v.h5", **kw))
        d_shm = best_of(a.trials, lambda: h5py_direct(shm))
        for r in [int(x) for x in a.ranks.split(",")]:
            srv = start_kodiakd(r, famd.servers, provider=a.provider)
            try:
                connect(ak, srv)
                got = ak.read_hdf("fam://bench/v.h5", "v")  # and check it once
                assert got.size == n and float(got[n - 1]) == v[-1]
                del got

                def kd_read(name):
                    x = ak.read_hdf(name, "v")
                    del x
                k_fam = best_of(a.trials, lambda: kd_read("fam://bench/v.h5"))
                k_shm = best_of(a.trials, lambda: kd_read(shm))
                rows.append((r, k_fam, k_shm))
            finally:
                ak.disconnect()
                srv.stop()
    finally:
        famd.stop()
        if os.path.exists(shm):
            os.unlink(shm)
    mb = n * 8 / 1e6
    load = open("/proc/loadavg").read().split()[0]
    print(f"read_hdf of a {a.mib} MiB float64 dataset ({'chunked 1 MiB' if a.chunked else 'contiguous'}), "
          f"provider {a.provider}, best of {a.trials}; load average after the run {load} on "
          f"{os.cpu_count()} cores")
    print(f"{'reader':<34} {'FAM (fam://)':>14} {'ratio':>7} {'/dev/shm (sec2)':>16} {'ratio':>7}")
    print(f"{'h5py d.read_direct (baseline)':<34} {mb / d_fam:>9.0f} MB/s {1:>7.2f} "
          f"{mb / d_shm:>11.0f} MB/s {1:>7.2f}")
    print(f"{'h5py d[...]':<34} {mb / t_fam:>9.0f} MB/s {d_fam / t_fam:>7.2f} "
          f"{mb / t_shm:>11.0f} MB/s {d_shm / t_shm:>7.2f}")
    for r, k_fam, k_shm in rows:
        print(f"{f'ak.read_hdf, {r} rank' + ('s' if r > 1 else ''):<34} {mb / k_fam:>9.0f} MB/s "
              f"{d_fam / k_fam:>7.2f} {mb / k_shm:>11.0f} MB/s {d_shm / k_shm:>7.2f}")


if __name__ == "__main__":
    main()

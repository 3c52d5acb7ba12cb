#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""demo.py — a short Python session with Kodiak: start a local cluster
(two famd, a kodiakd of two ranks), make distributed arrays, compute on them,
check every result against NumPy, and stop the cluster whatever happens.

    /usr/bin/python3 examples/demo.py [N]

It runs in a state directory of its own (a temporary KODIAK_HOME), so a
cluster you started with `kodiak up` is neither used nor stopped."""
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import numpy as np  # noqa: E402

import kodiak as ak  # noqa: E402


def check(what, got, want):
    """Print a result beside NumPy's and stop the demo if they differ."""
    got_nd = got.to_ndarray() if isinstance(got, ak.pdarray) else np.asarray(got)
    ok = got_nd.shape == np.shape(want) and np.array_equal(got_nd, want)
    print(f"  {what:<38} {'same as NumPy' if ok else 'DIFFERS FROM NUMPY'}")
    if not ok:
        raise SystemExit(f"demo: {what}: kodiak gave {got_nd!r}, NumPy {want!r}")


def session(n):
    print(f"--- arrays of {n:,} elements, spread over the ranks ---")
    a = ak.randint(0, 1000, n, seed=42)        # random integers in [0, 1000)
    b = ak.arange(n)                           # 0, 1, ..., n-1
    w = np.linspace(0.0, 1.0, n)
    c = ak.array(w)                            # from NumPy, sent as raw bytes
    print("a =", repr(a))
    print("b =", repr(b))
    print("c =", repr(c))
    na, nb = a.to_ndarray(), np.arange(n)
    check("ak.array(numpy) round trip", c, w)
    check("arange", b, nb)

    print("--- arithmetic and reductions ---")
    s = a + b * 2
    print("a + b * 2 =", repr(s))
    check("a + b * 2", s, na + nb * 2)
    total = s.sum()
    print(f"  (a + b * 2).sum() = {total}")
    check("(a + b * 2).sum()", total, (na + nb * 2).sum())

    print("--- sorting and gathering ---")
    perm = ak.argsort(a)
    srt = a[perm]
    print("a[ak.argsort(a)] =", repr(srt))
    check("a[ak.argsort(a)]", srt, np.sort(na, kind="stable"))

    print("--- group by ---")
    keys = a % 10
    uk, sums = ak.GroupBy(keys).sum(b)
    print("keys  =", repr(uk))
    print("sums  =", repr(sums))
    check("GroupBy(a % 10).sum(b): keys", uk, np.arange(10))
    check("GroupBy(a % 10).sum(b): sums", sums, np.bincount(na % 10, weights=nb).astype(np.int64))

    print("--- a FAM array: data in the memory servers, outliving kodiakd ---")
    reg = ak.fam_region("demo")
    fa = reg.create("aName", ak.int64, 10 * n)  # zero-filled, striped over the famds
    print("fa =", repr(fa))
    idx = ak.randint(0, 10 * n, n, seed=7)
    fa[idx] = b                                 # each rank scatters its share
    ref = np.zeros(10 * n, np.int64)
    ni = idx.to_ndarray()
    ref[ni] = nb
    check("fa[idx] = b, then fa[idx]", fa[idx], ref[ni])
    fa.add(idx, 1)                              # atomic, exact with repeated indices
    np.add.at(ref, ni, 1)
    check("fa.add(idx, 1)", fa.to_pdarray(), ref)
    print(f"  region 'demo' holds {reg.list()}")
    fa.delete()

    print("--- what the server holds ---")
    names = ak.list_symbols()
    print(f"  {len(names)} arrays: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    for r in ak.get_mem_status():
        print(f"  rank {r['rank']}: {r['used'] / 2**20:.2f} MiB of arrays "
              f"(limit {r['limit'] / 2**30:.1f} GiB)")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    home = tempfile.mkdtemp(prefix="kodiak-demo-")
    os.environ["KODIAK_HOME"] = home
    os.environ.pop("KODIAK_CONNECT_FILE", None)
    t = time.time()
    try:
        info = ak.start(fam_servers=2, ranks=2, pool_size="256M")
        st = ak.cluster_status()
        print(f"started kodiakd with {info['ranks']} ranks at tcp://{st['host']}:{st['port']} "
              f"and {len(st['famd'])} famd ({', '.join(f['address'] for f in st['famd'])}) "
              f"in {time.time() - t:.1f} s")
        session(n)
    finally:
        for line in ak.stop():
            print(line)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

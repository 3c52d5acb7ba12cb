# SPDX-License-Identifier: Apache-2.0
"""test_ds_head.py — head() and repr() of derived datasets read only the
rows they show (issue 14). On a kodiakd whose --memory-limit is a small
fraction of the data, filter index datasets (a wide one, a selective one
whose first rows lie far apart and across batches, a chain, an `|` of two)
and derived columns are too large to materialise: ds["col"] is a
MemoryError. Their head(n) and repr still work, equal pandas' .head(n) of
the same frame, and gather no column into the store (no "<name>[<column>]"
dataset appears but the derived ones made on purpose). At 1 and 2 ranks."""
import numpy as np
import pandas as pd
import pytest

import kodiak
from conftest import Server
from fam_fixtures import FamServers, connect

LIMIT = 1 << 20  # --memory-limit per rank
ZONES = np.array([f"zone{i:03d}" for i in range(90)], dtype=object)


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"{n}rank")
def small(request):
    """One famd and a kodiakd with a 1 MiB --memory-limit per rank."""
    fam = FamServers(1, pool_size="512M")
    srv = None
    try:
        srv = Server(request.param, args=["--memory-limit", str(LIMIT)],
                     env={"FAM_SERVERS": fam.servers})
        yield request.param, srv
    finally:
        kodiak.disconnect()
        if srv:
            srv.stop()
        fam.stop()


def frame(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, rows)
    x[rng.random(rows) < 0.01] = np.nan
    s = ZONES[rng.integers(0, len(ZONES), rows)]
    s[rng.random(rows) < 0.02] = np.nan
    t = (np.datetime64("2017-01-01T00:00:00") +
         rng.integers(0, 365 * 86400, rows).astype("timedelta64[s]")).astype("datetime64[ns]")
    return pd.DataFrame({"x": x, "k": rng.integers(-50, 50, rows), "s": s, "t": t})


def gathered(store, ds):
    """The "<ds>[<column>]" datasets of the store (gathered or derived)."""
    return sorted(n for n in store.list(all=True) if n.startswith(ds.name + "["))


def same_head(ds, want, n):
    """ds.head(n) equals pandas' head(n) of the expected frame."""
    got = ds.head(n)
    exp = want.head(n).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, exp, check_dtype=True)
    return exp


def test_head_and_repr_of_derived_datasets_larger_than_memory(small):
    nranks, srv = small
    # 4 columns of 8 bytes, 3 times the limit of all ranks per column: the
    # dataset is 12x what the server may hold, a filter of most rows 2x
    rows = 3 * LIMIT * nranks // 8
    df = frame(rows, 40 + nranks)
    connect(kodiak, srv)
    store = kodiak.DatasetStore(f"head_{nranks}")
    try:
        step = LIMIT * nranks // 64  # each ingest call well inside the limit
        t = None
        for at in range(0, rows, step):
            part = df.iloc[at:at + step]
            t = store.ingest("T", {c: part[c].values for c in df.columns}, batch_rows=7000)
        assert len(t) == rows and t.num_batches > rows // 7000  # batches of 7000 rows and less
        t.derive("q", kodiak.where(t.col("x") > 0, t.col("k"), -t.col("k")))
        wide = t.filter("x", "gt", -1.5)  # about 93% of the rows
        wide.derive("w", wide.col("x") * 2 + wide.col("k"))
        rare = t.filter("k", "eq", 7)  # 1%: its first rows lie far apart
        chain = wide.filter("s", "isin", ["zone003", "zone050"])  # an index of an index
        either = t.filter("k", "eq", -3) | rare

        full = df.assign(q=np.where(df.x > 0, df.k, -df.k))
        w = full[(full.x > -1.5).values]
        w = w.assign(w=w.x * 2 + w.k)
        r = full[(full.k == 7).values]
        ch = w[w.s.isin(["zone003", "zone050"]).values]
        ei = full[((full.k == -3) | (full.k == 7)).values]
        assert len(wide) == len(w) and len(rare) == len(r) and len(chain) == len(ch)
        assert len(wide) * 8 > 1.5 * LIMIT * nranks  # one of its columns does not fit

        for ds, want in ((t, full), (wide, w), (rare, r), (chain, ch), (either, ei)):
            for n in (0, 1, 5, 12):
                same_head(ds, want, n)
            # far beyond one span of rows, across batches
            same_head(ds, want, 3000 if ds is rare else 40)
            exp = want.head(5).reset_index(drop=True)
            with pd.option_context("display.max_columns", 20, "display.width", 100):
                body = repr(exp)
            text = repr(ds)
            assert body in text, text
            assert f"[{len(want)} rows x {want.shape[1]} columns, {t.num_batches} batches]" \
                in text, text
        # a head past the end: all the rows, as pandas
        few = t.filter("k", "eq", 7).filter("x", "gt", 2.5)
        fw = r[(r.x > 2.5).values]
        assert 0 < len(few) < 200
        same_head(few, fw, len(fw) + 50)
        # nothing was gathered: only the columns derived on purpose are stored
        assert gathered(store, t) == ["T[q]"]
        assert gathered(store, wide) == [f"{wide.name}[w]"]
        for ds in (rare, chain, either, few):
            assert gathered(store, ds) == []
        # ... while the whole columns do not fit
        for ds, c in ((t, "x"), (t, "q"), (wide, "x"), (wide, "w"), (wide, "s")):
            with pytest.raises(MemoryError, match="aggregate"):
                ds[c]
        assert srv.alive(), srv.output()[-3000:]
    finally:
        store.destroy()

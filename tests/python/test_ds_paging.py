# SPDX-License-Identifier: Apache-2.0
"""test_ds_paging.py — derived datasets larger than compute memory (issue
14): filters, gathers and derives stream the base's batches through the
bounded window (charged to --memory-limit), so on a dataset 4x what all
ranks together may hold they give the answers of an unlimited server and
of pandas, at 1 and 2 ranks. The batches are larger than the window, so
every batch is paged in several chunks (a filter counts, then writes).
Then one new batch: fewer new batches than ranks, so every rank computes
a share of it (the split update), and the results are pandas' again.
Aggregations through an index gather a window of rows at a time, so a
filter whose one batch is larger than the limit aggregates under it."""
import numpy as np
import pandas as pd
import pytest

import kodiak
from conftest import Server
from fam_fixtures import FamServers, connect
from test_ds_agg import check_column, check_groupby, check_value_counts
from test_ds_agg_cache import raw

LIMIT = 1 << 20  # --memory-limit per rank
TEXTS = np.array([f"zone{i:03d}" for i in range(120)], dtype=object)
PICK = ["zone001", "zone007", "zone100"]


def frame(rows, seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(0, 1, rows), "k": rng.integers(-50, 50, rows),
                       "s": TEXTS[rng.integers(0, len(TEXTS), rows)]})
    df.loc[rng.random(rows) < 0.01, "x"] = np.nan
    return df


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"{n}rank")
def servers(request):
    """One famd; a kodiakd with a 1 MiB --memory-limit per rank and an
    unlimited one, both attached to it."""
    fam = FamServers(1, pool_size="512M")
    small = big = None
    try:
        env = {"FAM_SERVERS": fam.servers}
        small = Server(request.param, args=["--memory-limit", str(LIMIT)], env=env)
        big = Server(request.param, env=env)
        yield request.param, small, big
    finally:
        kodiak.disconnect()
        for s in (small, big):
            if s:
                s.stop()
        fam.stop()


def column(ds, c):
    """Column c of ds batch by batch (each batch fits; the whole may not)."""
    parts = []
    for b in ds.batches([c]):
        v = b[c].to_ndarray()
        parts.append(np.asarray(v, dtype=object) if c == "s" else v)
    return np.concatenate(parts) if parts else np.array([])


def derived(t):
    """The pipeline: filters (number, text, a chain), gathers, derives on
    a base and on an index dataset."""
    f = t.filter("x", "gt", 0.25)
    g = t.filter("s", "isin", PICK)
    h = f.filter("k", "lt", 10)
    if "w" not in f.columns:  # made once, then kept current
        f.derive("w", f.col("x") * 2 + f.col("k"))
        t.derive("q", kodiak.where(t.col("x") > 0, t.col("k"), -t.col("k")))
    return {"f.x": column(f, "x"), "f.k": column(f, "k"), "f.s": column(f, "s"),
            "f.w": column(f, "w"), "g.s": column(g, "s"), "g.k": column(g, "k"),
            "h.k": column(h, "k"), "h.x": column(h, "x"), "t.q": column(t, "q")}


def expected(df):
    f = df[df.x > 0.25]
    g = df[df.s.isin(PICK)]
    h = f[f.k < 10]
    return {"f.x": f.x.values, "f.k": f.k.values, "f.s": f.s.values,
            "f.w": (f.x * 2 + f.k).values, "g.s": g.s.values, "g.k": g.k.values,
            "h.k": h.k.values, "h.x": h.x.values,
            "t.q": np.where(df.x > 0, df.k, -df.k)}


def same(got, want):
    assert got.keys() == want.keys()
    for k in want:
        assert len(got[k]) == len(want[k]), k
        if want[k].dtype == object:
            assert list(got[k]) == list(want[k]), k
        else:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def ingest(store, name, df, batch_rows, step):
    t = None
    for at in range(0, len(df), step):
        t = store.ingest(name, {c: df[c].values[at:at + step] for c in df.columns},
                         batch_rows=batch_rows)
    return t


def test_four_times_the_memory_limit_gives_the_answers_in_memory_and_of_pandas(servers):
    nranks, small, big = servers
    rows = 4 * LIMIT * nranks // 24 + 1000  # three 8-byte columns
    df, more = frame(rows, nranks), frame(9000, 10 + nranks)
    step = LIMIT * nranks // 48  # each ingest call well inside the limit
    batch = 9000  # more rows than the limited server's window holds
    results = {}
    for name, srv in (("small", small), ("big", big)):
        connect(kodiak, srv)
        s = kodiak.DatasetStore("paging_" + name)
        try:
            t = ingest(s, "T", df, batch, step)
            assert len(t) == rows and rows * 24 > 4 * LIMIT * nranks
            if name == "small":  # the whole does not fit: the limit is real
                with pytest.raises(MemoryError):
                    t["x"]
            got = derived(t)
            same(got, expected(df))
            results[name] = got
            # one new batch: fewer than the ranks, all ranks share it
            s.ingest("T", {c: more[c].values for c in more.columns}, batch_rows=len(more))
            both = pd.concat([df, more], ignore_index=True)
            f = t.filter("x", "gt", 0.25)
            same({"f.w": column(f, "w")}, {"f.w": expected(both)["f.w"]})
            assert f.stats()["last"] == 1
            assert t.filter("x", "gt", 0.25).stats()["base_batches"] == t.num_batches
            same(derived(t), expected(both))
            assert srv.alive(), srv.output()[-3000:]
        finally:
            s.destroy()
    same(results["small"], results["big"])


def test_a_filter_batch_larger_than_the_limit_aggregates_a_window_at_a_time(servers):
    """An aggregation through an index gathers each batch a window of rows
    at a time (the index's rows, then the base's rows at them), never the
    batch whole: a filter whose every batch of index rows alone is larger
    than --memory-limit aggregates under it. Dense (x > -0.5), sparse (s in
    three of 120 texts) and a chain (two indexes) give pandas' answers, and
    bit for bit those of an unlimited server (which gathers each batch in
    one piece), with and without kept partials; nothing is left held."""
    nranks, small, big = servers
    rows = 600_000
    df = frame(rows, 3)
    connect(kodiak, big)
    s = kodiak.DatasetStore("paging_onebatch")
    try:
        t = s.ingest("T", {c: df[c].values for c in df.columns}, batch_rows=rows // 2)
        made = {"f": t.filter("x", "gt", -0.5), "g": t.filter("s", "isin", PICK)}
        made["h"] = made["f"].filter("k", "lt", 30)
        made["f"].derive("w", made["f"].col("x") * 2 + made["f"].col("k"))
        made["f"].derive("j", made["f"].col("k") * 3)
        sel = {"f": df[df.x > -0.5], "g": df[df.s.isin(PICK)]}
        sel["f"] = sel["f"].assign(w=sel["f"].x * 2 + sel["f"].k, j=sel["f"].k * 3)
        sel["h"] = sel["f"][sel["f"].k < 30]
        names = {n: d.name for n, d in made.items()}
        # every batch of the dense filter: its index rows alone exceed the limit
        assert made["f"].num_batches == 2 and min(made["f"].batch_rows) * 8 > LIMIT
        assert min(made["h"].batch_rows) * 8 > LIMIT
        ops = ["size", "count", "sum", "mean", "min", "max", "std", "nunique"]
        # through h, w and j are gathered through one index (f stores them in
        # "f[w]", "f[j]"), k and s through two: a window's index rows read
        # for j are kept for the next column, but not past k (whose rows and
        # spans overwrite them): read again for w
        asks = {"f": ((["k"], "x"), (["s"], "k"), ([], "x"), (["k"], "w")),
                "g": ((["k"], "x"), (["s"], "k"), ([], "x")),
                "h": ((["k"], "x"), (["s"], "k"), ([], "x"), (["k", "s"], "w"),
                      (["s"], "w"), (["j", "k"], "w"))}
        want = {}
        for n, ds in names.items():
            for keys, value in asks[n]:
                want[n, tuple(keys), value] = raw(s.name, ds, keys, value, ops, cache=False)[1]
        connect(kodiak, small)
        s2 = kodiak.DatasetStore("paging_onebatch", create=False)
        for n, ds_name in names.items():
            ds, pdf = s2[ds_name], sel[n]
            check_groupby(ds, pdf, "k", "x")
            check_groupby(ds, pdf, "s", "k", ops=("count", "sum", "min", "max", "nunique"))
            check_column(ds, pdf, "x")
            check_column(ds, pdf, "s", ops=("count", "nunique", "min", "max"))
            check_value_counts(ds, pdf, "s")
            if n != "g":
                check_groupby(ds, pdf, ["k", "s"], "w", ops=("count", "sum", "mean", "max"))
                check_groupby(ds, pdf, "s", "w", ops=("count", "mean", "std", "min"))
                check_groupby(ds, pdf, ["j", "k"], "w", ops=("count", "sum", "max"))
            for keys, value in asks[n]:
                # folded; then without nunique (whose distinct values are too
                # many to keep under this limit) folded and kept, then kept
                exp = want[n, tuple(keys), value]
                for o, extra in ((ops, {"cache": False}), (ops[:-1], {}), (ops[:-1], {})):
                    res, got = raw(s2.name, ds_name, keys, value, o, **extra)
                    assert got[1] == exp[1]
                    for op, words in got[0].items():
                        np.testing.assert_array_equal(words, exp[0][op],
                                                      err_msg=f"{n} {keys} {value} {op}")
                if len(keys) < 2:  # (k, s): ~12000 groups a batch, too many to keep here
                    assert res["batches_cached"] == 2 and res["batches_folded"] == 0
        assert small.alive(), small.output()[-3000:]
        # nothing held: at most the shares of the column cache and of the
        # kept partials (1/8 and 1/16 of the limit), on every rank
        assert kodiak.get_mem_used() <= nranks * (LIMIT // 8 + LIMIT // 16)
    finally:
        connect(kodiak, big)
        s.destroy()


def test_arrays_that_leave_no_room_for_the_window_of_a_gather_are_a_memoryerror(servers):
    """What still cannot be done: a window of fewer than 1024 rows for each
    column and the two slots a gather needs besides. That is a MemoryError
    that says to free arrays, and once they are freed the same aggregation
    works."""
    nranks, small, big = servers
    df = frame(20_000, 4)
    connect(kodiak, small)
    s = kodiak.DatasetStore("paging_noroom")
    try:
        t = s.ingest("T", {c: df[c].values for c in df.columns}, batch_rows=10_000)
        f = t.filter("x", "gt", 0.25)
        x = kodiak.zeros((LIMIT - 48 * 1024) // 8 * nranks)  # 48 KiB left per rank
        with pytest.raises(MemoryError, match="too few to page") as e:
            f.groupby("k").mean("x")
        assert "free some arrays" in str(e.value)
        del x
        sel = df[df.x > 0.25]
        check_groupby(f, sel, "k", "x", ops=("count", "mean", "max"))
        assert small.alive(), small.output()[-3000:]
    finally:
        s.destroy()

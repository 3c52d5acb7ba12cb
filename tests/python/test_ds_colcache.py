# SPDX-License-Identifier: Apache-2.0
"""test_ds_colcache.py — kodiakd's cache of batches' column rows
(src/kodiakd/kd_dscache.c, issue 14): a rank keeps the rows it has just
written to a batch (ingest, derived batches; with KD_DS_COLCACHE=reads,
also those it read), so the
queries after an ingest read no FAM for them. Proven equal to the
uncached way (a kodiakd with KD_DS_COLCACHE=0 on the same famd: the same
values bit for bit, and pandas'), at 1 and 2 ranks, through the span and
the indexed gathers; never stale: a dropped and recreated dataset of the
same name and shape, batches appended by another server, a small
--memory-limit (the cache stays in its share, evicts, gives way to an
array of the whole limit, answers stay right)."""
import time

import numpy as np
import pandas as pd
import pytest

import kodiak
from fam_fixtures import connect, famd_and_kodiakds


def frame(rows, seed):
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-01-01T00:00:00", "s")
    a = t0 + rng.integers(0, 86400 * 30, rows).astype("timedelta64[s]")
    return pd.DataFrame({
        "a": a, "b": a + rng.integers(0, 7200, rows).astype("timedelta64[s]"),
        "k": rng.integers(0, 40, rows), "x": rng.normal(20, 30, rows).round(2),
        "s": np.array(["zone%02d" % i for i in range(25)], dtype=object)[
            rng.integers(0, 25, rows)]})


def put(store, name, df, batch_rows):
    return store.ingest(name, {c: df[c].values for c in df.columns}, batch_rows=batch_rows)


def queries(t):
    """ds_bench's queries and more: a sparse and a dense filter, a derived
    column through each, a group-by, gathered text, a whole column."""
    out = {}
    for op, v in (("gt", 95.0), ("ge", -10.0)):
        d = t.filter("x", op, v)
        if "dur" not in d.columns:
            d.derive("dur", d.col("b") - d.col("a"))
        out[op + " k"] = d["k"].to_ndarray()
        out[op + " dur"] = d["dur"].to_ndarray()
        out[op + " s"] = np.array(d["s"].to_ndarray(), dtype=object)
        g = d.groupby("k").mean("dur")
        out[op + " mean"] = g.sort_index().to_numpy()
    out["x"] = t["x"].to_ndarray()
    return out


def pandas_queries(df):
    out = {}
    for op, v in (("gt", 95.0), ("ge", -10.0)):
        d = df[df.x > v] if op == "gt" else df[df.x >= v]
        dur = (d.b - d.a).dt.total_seconds().astype(np.int64)
        out[op + " k"] = d.k.values
        out[op + " dur"] = dur.values
        out[op + " s"] = d.s.values
        out[op + " mean"] = dur.groupby(d.k).mean().sort_index().to_numpy()
    out["x"] = df.x.values
    return out


def assert_same(got, want, what):
    assert got.keys() == want.keys()
    for k in want:
        if want[k].dtype == object:
            assert got[k].tolist() == want[k].tolist(), (what, k)
        elif k.endswith("mean"):
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, err_msg=f"{what} {k}")
        else:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{what} {k}")


def colcache():
    res, _ = kodiak.client.generic_msg("ds_derive_stats", {"store": "-"})
    return res["colcache"]


@pytest.mark.parametrize("nranks,gather,mode", [(1, "index", "1"), (2, "index", "1"),
                                               (2, "span", "reads")])
def test_cached_equals_uncached_and_pandas(nranks, gather, mode):
    """mode "reads": rows read from FAM are kept too (KD_DS_COLCACHE=reads)."""
    df = frame(24000, nranks)
    with famd_and_kodiakds(pool_size="256M") as kodiakd:
        env = {"KD_DSD_GATHER": gather}
        on = kodiakd(nranks, env={**env, "KD_DS_COLCACHE": mode})
        off = kodiakd(nranks, env={**env, "KD_DS_COLCACHE": "0"})
        got = {}
        for name, srv in (("on", on), ("off", off)):
            connect(kodiak, srv)
            s = kodiak.DatasetStore(f"cc_{name}")
            t = put(s, "T", df, 5000)  # 5 batches
            before = colcache()
            got[name] = queries(t)
            after = colcache()
            if name == "on":  # read from the cache, and (1 rank) no base row from FAM
                assert after["hit_rows"] - before["hit_rows"] > len(df), (before, after)
                assert 0 < after["bytes"] <= after["limit"]
                if nranks == 1:
                    assert after["read_rows"] == before["read_rows"], (before, after)
            else:
                assert after["hit_rows"] == 0 and after["bytes"] == 0, after
            again = queries(t)  # the derived datasets made: read again
            assert_same(again, got[name], f"{name} again")
            s.destroy()
        for k, v in got["on"].items():  # bit for bit
            w = got["off"][k]
            assert v.tolist() == w.tolist() if v.dtype == object else v.tobytes() == w.tobytes(), k
        assert_same(got["on"], pandas_queries(df), "pandas")
        assert on.alive() and off.alive()


def test_never_stale_drop_recreate_and_another_server_appending():
    with famd_and_kodiakds(pool_size="256M") as kodiakd:
        a = kodiakd(2, env={"KD_DS_COLCACHE": "reads"})  # reads kept too
        b = kodiakd(1)
        connect(kodiak, a)
        s = kodiak.DatasetStore("cc_stale")
        d1 = frame(12000, 1)
        t = put(s, "T", d1, 4000)
        assert_same(queries(t), pandas_queries(d1), "first")
        # the same name and shape, other values: never the old rows
        for n in sorted(s.list(all=True), key=len, reverse=True):  # derived ones first
            s.drop(n)
        assert s.list(all=True) == []
        d2 = frame(12000, 2)
        d2["x"] = -d2["x"]  # other values in every batch and column it reads
        t = put(s, "T", d2, 4000)
        assert_same(queries(t), pandas_queries(d2), "recreated")
        # another server appends batches; this one (its cache holds the
        # old batches' rows) brings everything current and reads the new
        # batches from FAM
        connect(kodiak, b)
        d3 = frame(8000, 3)
        put(kodiak.DatasetStore("cc_stale"), "T", d3, 4000)
        connect(kodiak, a)
        before = colcache()
        s = kodiak.DatasetStore("cc_stale")
        both = pd.concat([d2, d3], ignore_index=True)
        assert_same(queries(s["T"]), pandas_queries(both), "appended by another server")
        after = colcache()
        assert after["read_rows"] > before["read_rows"], (before, after)
        assert after["hit_rows"] > before["hit_rows"], (before, after)
        # the rows it read are kept: again, the same answers, from the cache
        assert_same(queries(s["T"]), pandas_queries(both), "again")
        again = colcache()
        assert again["hit_rows"] - after["hit_rows"] > len(both), (after, again)
        s.destroy()
        assert a.alive() and b.alive()


def test_small_memory_limit_share_eviction_and_giving_way():
    limit = 4 << 20  # per rank; the cache: 512 KiB of it
    with famd_and_kodiakds(pool_size="256M") as kodiakd:
        srv = kodiakd(2, args=["--memory-limit", str(limit)])
        connect(kodiak, srv)
        s = kodiak.DatasetStore("cc_small")
        df = frame(60000, 4)  # 2.4 MB of columns, 12 batches of 5000 rows (40 KB a column)
        t = put(s, "T", df, 5000)
        for _ in range(2):
            assert_same(queries(t), pandas_queries(df), "small limit")
            st = colcache()
            assert 0 < st["bytes"] <= st["limit"] == 2 * (limit // 8), st
        assert st["evicted"] > 0, st
        # an array of every byte of the limit: the cache gives way
        z = kodiak.zeros(2 * limit // 8, dtype=kodiak.int64)
        assert all(r["used"] == r["limit"] for r in kodiak.get_mem_status())
        assert colcache()["bytes"] == 0
        del z
        assert_same(queries(t), pandas_queries(df), "after giving way")
        s.destroy()
        assert srv.alive()


@pytest.mark.parametrize("ahead", ["1", "0"])
def test_big_buffers_made_ahead_give_the_same_answers(ahead):
    """A rank with a core to spare (the default where the host has more
    cores than kodiakd ranks; KD_AHEAD=1 forces it) has a thread map and
    fault in big buffers ahead, of the size it last had to map fresh
    (kd_util.c): the column cache's pieces of the next ingests take them.
    The answers equal pandas' either way; with KD_AHEAD=0 none is made."""
    df = frame(3 * 300_000, 7)  # pieces of 300,000 rows: 2.4 MB, big buffers
    with famd_and_kodiakds(pool_size="512M") as kodiakd:
        connect(kodiak, kodiakd(1, env={"KD_AHEAD": ahead}))
        s = kodiak.DatasetStore(f"ahead{ahead}")
        for i in range(3):
            t = put(s, f"T{i}", df, 300_000)
            time.sleep(0.3)  # the thread's time to make buffers
        assert_same(queries(t), pandas_queries(df), f"KD_AHEAD={ahead}")
        m = kodiak.client.generic_msg("memory", {})[0]["ranks"][0]
        if ahead == "1":
            assert m["ahead_taken"] >= 4 and m["ahead_made"] >= m["ahead_taken"], m
        else:
            assert m["ahead_made"] == 0 and m["ahead_taken"] == 0, m
        s.destroy()

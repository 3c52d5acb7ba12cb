# SPDX-License-Identifier: Apache-2.0
"""test_ds_agg_cache.py — incremental aggregation (issue 14): kodiakd keeps
each batch's partial result of a ds_agg, so after one new batch the same
aggregation folds only that batch (the reply's batches_folded, summed
over the ranks) and merges the others' kept partials. The answers are
bit for bit those of a fresh kodiakd on the same store (nothing kept,
every batch folded) and equal pandas', for group-by count, sum, mean, min,
max, std, nunique and size and whole-column reductions, on a base dataset
and on a filter index dataset (gathered keys, a derived column). A
dropped and recreated dataset is never answered from the old partials;
under a small --memory-limit the cache stays within its share of the
limit, evicts, gives way to arrays, and the answers stay right."""
import numpy as np
import pandas as pd
import pytest

import kodiak
from conftest import Server
from fam_fixtures import FamServers, connect

OPS = ["size", "count", "sum", "mean", "min", "max", "std", "nunique"]
WHOLE = ["count", "sum", "mean", "min", "max", "std", "nunique"]


def frame(rows, seed, names=tuple("zone%03d" % i for i in range(0, 100, 2))):
    """Random columns; s is text from `names` (the new batch of the update
    test brings names that sort between the old ones: every union code
    moves)."""
    rng = np.random.default_rng(seed)
    names = np.array(list(names), dtype=object)
    df = pd.DataFrame({"k": rng.integers(-20, 20, rows),  # small keys: direct table
                       "s": names[rng.integers(0, len(names), rows)],
                       "g": rng.integers(0, 1 << 40, rows),  # large keys: hash table
                       "x": rng.normal(0, 1e3, rows),
                       "i": rng.integers(-1000, 1000, rows)})
    df.loc[rng.random(rows) < 0.02, "x"] = np.nan
    df.loc[rng.random(rows) < 0.01, "x"] = -0.0
    return df


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}rank")
def fam(request):
    f = FamServers(1, pool_size="512M")
    try:
        yield request.param, f
    finally:
        kodiak.disconnect()
        f.stop()


def _cats(offs, text):
    o, b = np.frombuffer(offs, dtype=np.int64), bytes(text)
    return [b[o[i]:o[i + 1]].decode() for i in range(len(o) - 1)]


def raw(store, ds, keys, value, ops, **extra):
    """One ds_agg request: the reply, and its groups sorted by key as
    {name: uint64 words} (keys, then each op, in the server's order) to
    compare bit for bit, with {name: categories} of text keys and a text
    value's min/max (the words are codes into them, in sorted order)."""
    res, frames = kodiak.client.generic_msg(
        "ds_agg", {"store": store, "dataset": ds, "keys": keys, "value": value, "ops": ops,
                   **extra})
    words, cats, at = {}, {}, 0
    for k in res["keys"]:
        words[k["name"]] = np.frombuffer(frames[at], dtype=np.uint64)
        at += 1
        if k["dtype"] == "text":
            cats[k["name"]] = _cats(frames[at], frames[at + 1])
            at += 2
    for o in res["ops"]:
        words[o["op"]] = np.frombuffer(frames[at], dtype=np.uint64)
        at += 1
    if res.get("value_dtype") == "text":
        vc = _cats(frames[at], frames[at + 1])
        cats.update({op: vc for op in ("min", "max") if op in words})
    order = np.lexsort([words[k].view(np.int64) for k in reversed(keys)]) if keys else \
        np.arange(res["groups"])
    return res, ({n: w[order] for n, w in words.items()}, cats)


def requests(with_filter):
    """(dataset, keys, value, ops) of the checks: the base T, and the filter
    F = T.x > 0 with the derived column w (keys gathered through F's index)."""
    out = []
    for ds in ["T"] + (["F"] if with_filter else []):
        for value in ["x", "i"] + (["w"] if ds == "F" else []):
            out.append((ds, ["k"], value, OPS))
            out.append((ds, [], value, WHOLE))
        out.append((ds, ["g"], "x", ["sum", "mean", "std", "nunique"]))
        out.append((ds, ["k", "i"], "x", ["sum", "count"]))
        out.append((ds, ["s"], "x", OPS))  # text: kept in the batch's own codes
        out.append((ds, ["k", "s"], "i", ["sum", "nunique"]))
        out.append((ds, ["k"], "s", ["count", "min", "max", "nunique"]))
        out.append((ds, [], "s", ["count", "min", "max", "nunique"]))
    return out


def pandas_of(df, keys, value, ops):
    """pandas' answers, sorted by key, as {name: float64 or int64 array}."""
    if not keys:
        return {op: np.array([getattr(df[value], op)()]) for op in ops}
    g = df.groupby(keys)[value]
    r = g.agg([op for op in ops if op != "size"])
    if "size" in ops:
        r["size"] = g.size()
    r = r.sort_index()
    out = {k: r.index.get_level_values(k).to_numpy() for k in keys}
    out.update({op: r[op].to_numpy() for op in ops})
    return out


def same_as_pandas(got, exp, what):
    got, cats = got
    for name, e in exp.items():
        w = got[name]
        if name in cats:  # text: codes into sorted categories
            assert [cats[name][c] for c in w.view(np.int64)] == list(e), f"{what} {name}"
        elif name in ("sum", "mean", "std", "min", "max") and \
                (e.dtype == np.float64 or name in ("mean", "std")):
            g = w.view(np.float64)
            np.testing.assert_allclose(g, e.astype(np.float64), rtol=1e-9, atol=1e-6,
                                       equal_nan=True, err_msg=f"{what} {name}")
        else:
            np.testing.assert_array_equal(w.view(np.int64), e.astype(np.int64),
                                          err_msg=f"{what} {name}")


def same_bits(a, b, what):
    """Two raw() answers are the same bits (and the same categories)."""
    assert a[0].keys() == b[0].keys() and a[1] == b[1], what
    for n in a[0]:
        np.testing.assert_array_equal(a[0][n], b[0][n], err_msg=f"{what} {n}")


def filtered(df):
    f = df[df.x > 0].copy()
    f["w"] = f.x * 2 + f.i
    return f


def test_update_folds_only_the_new_batch_and_equals_a_fresh_server_and_pandas(fam):
    nranks, f = fam
    env = {"FAM_SERVERS": f.servers}
    a = Server(nranks, env=env)
    fresh = None
    try:
        connect(kodiak, a)
        s = kodiak.DatasetStore("aggc_update")
        df = frame(24000, nranks)
        more = frame(3000, 10 + nranks, ("zone%03d" % i for i in range(1, 100, 3)))
        t = s.ingest("T", {c: df[c].values for c in df.columns}, batch_rows=4000)
        nb = t.num_batches
        assert nb == 6
        fl = t.filter("x", "gt", 0.0)
        fl.derive("w", fl.col("x") * 2 + fl.col("i"))
        # F in the requests: the filter, by the name the store gave it
        req = [(fl.name if ds == "F" else ds, k, v, ops) for ds, k, v, ops in requests(True)]
        first = {(ds, tuple(k), v): raw(s.name, ds, k, v, ops) for ds, k, v, ops in req}
        for key, (res, _) in first.items():
            assert (res["batches_folded"], res["batches_cached"]) == (nb, 0), key
        again = {(ds, tuple(k), v): raw(s.name, ds, k, v, ops) for ds, k, v, ops in req}
        for key, (res, words) in again.items():
            assert (res["batches_folded"], res["batches_cached"]) == (0, nb), key
            same_bits(words, first[key][1], str(key))  # from the cache: the same bits
        # one new batch: only it is folded, on the base and through the filter
        s.ingest("T", {c: more[c].values for c in more.columns}, batch_rows=4000)
        upd = {(ds, tuple(k), v): raw(s.name, ds, k, v, ops) for ds, k, v, ops in req}
        for key, (res, _) in upd.items():
            assert (res["batches_folded"], res["batches_cached"]) == (1, nb), key
        both = pd.concat([df, more], ignore_index=True)
        for ds, k, v, ops in req:
            ref = pandas_of(both if ds == "T" else filtered(both), k, v, ops)
            same_as_pandas(upd[(ds, tuple(k), v)][1], ref, f"{ds} {k} {v}")
        # a fresh kodiakd on the same store: nothing kept, every batch folded
        fresh = Server(nranks, env=env)
        connect(kodiak, fresh)
        for ds, k, v, ops in req:
            res, words = raw(s.name, ds, k, v, ops)
            assert (res["batches_folded"], res["batches_cached"]) == (nb + 1, 0)
            key = (ds, tuple(k), v)
            same_bits(words, upd[key][1], f"{key}: cached != fresh")
        # cache: false folds every batch, keeps nothing: the same bits again
        connect(kodiak, a)
        for ds, k, v, ops in req[:4]:
            res, words = raw(s.name, ds, k, v, ops, cache=False)
            assert (res["batches_folded"], res["batches_cached"]) == (nb + 1, 0)
            same_bits(words, upd[(ds, tuple(k), v)][1], f"{ds} {k} {v}: cache false")
        assert a.alive() and fresh.alive()
        s.destroy()
    finally:
        kodiak.disconnect()
        for srv in (a, fresh):
            if srv:
                srv.stop()


def test_a_dropped_and_recreated_dataset_is_folded_anew(fam):
    nranks, f = fam
    a = Server(nranks, env={"FAM_SERVERS": f.servers})
    try:
        connect(kodiak, a)
        s = kodiak.DatasetStore("aggc_drop")
        for seed in (1, 2):  # the same name, shape and batches; other values
            df = frame(9000, seed)
            s.ingest("R", {c: df[c].values for c in df.columns}, batch_rows=3000)
            for _ in range(2):
                res, words = raw(s.name, "R", ["k"], "x", OPS)
                same_as_pandas(words, pandas_of(df, ["k"], "x", OPS), f"R {seed}")
            # the second request came from the cache, the first from FAM
            assert (res["batches_folded"], res["batches_cached"]) == (0, 3)
            s.drop("R")
        s.destroy()
        assert a.alive(), a.output()[-3000:]
    finally:
        kodiak.disconnect()
        a.stop()


LIMIT = 1 << 20  # --memory-limit per rank of the small server: the cache may hold 1/16


def test_the_cache_stays_in_its_share_of_a_small_memory_limit_and_gives_way(fam):
    nranks, f = fam
    env = {"FAM_SERVERS": f.servers}
    small = big = None
    try:
        small = Server(nranks, args=["--memory-limit", str(LIMIT)], env=env)
        big = Server(nranks, env=env)
        rng = np.random.default_rng(7)
        rows = 70000  # a batch: more rows than the small server's window holds (one column:
        # 64 Ki rows at most), so it folds each batch in pieces of another size than big
        df = frame(6 * rows, 20 + nranks)
        df["m"] = rng.integers(0, 500, len(df))  # ~52 KiB a partial: one fits, not two
        connect(kodiak, big)
        s = kodiak.DatasetStore("aggc_small")
        s.ingest("T", {c: df[c].values for c in df.columns}, batch_rows=rows)  # big's
        assert s["T"].num_batches == 6
        # nunique keeps a batch's distinct (key, value) pairs: too many to
        # keep here (folded every time, right all the same)
        few = [op for op in OPS if op != "nunique"]
        req = [("T", ["k"], "x", few), ("T", [], "x", WHOLE[:-1]), ("T", ["m"], "x", few),
               ("T", ["k"], "x", OPS), ("T", [], "i", WHOLE)]
        connect(kodiak, small)
        got = {}
        for ds, k, v, ops in req:
            for rnd in range(2):  # the same request twice
                res, words = raw(s.name, ds, k, v, ops)
                assert 0 <= res["cache_bytes"] <= res["cache_limit"] == LIMIT // 16
                same_as_pandas(words, pandas_of(df, k, v, ops), f"{k} {v}")
                if rnd:
                    same_bits(words, got[(tuple(k), v, tuple(ops))], f"{k} {v}")
                got[(tuple(k), v, tuple(ops))] = words
            if "nunique" in ops:  # the pairs: kept as far as they fit
                assert res["batches_folded"] + res["batches_cached"] == 6
                assert res["batches_folded"] == 6 or not k
            elif k != ["m"]:  # small partials: all kept the first time
                assert (res["batches_folded"], res["batches_cached"]) == (0, 6), (k, v, ops)
            else:  # more than fit: the first kept (older ones evicted), the rest folded
                assert res["cache_evicted"] > 0 and res["batches_folded"] > 0
                assert res["batches_cached"] == min(nranks, 6)  # one per rank
        # the unlimited server (its window holds a whole batch; nothing kept
        # yet): the same bits
        connect(kodiak, big)
        for ds, k, v, ops in req:
            res, words = raw(s.name, ds, k, v, ops)
            assert (res["batches_folded"], res["batches_cached"]) == (6, 0)
            same_bits(words, got[(tuple(k), v, tuple(ops))], f"{k} {v}: small != big")
        # the cache gives way to an array that needs every byte of the limit
        connect(kodiak, small)
        assert sum(r["used"] for r in kodiak.get_mem_status()) > 0  # the cache's
        z = kodiak.zeros(nranks * LIMIT // 8, dtype=kodiak.int64)
        assert all(r["used"] == r["limit"] for r in kodiak.get_mem_status())
        del z
        res, words = raw(s.name, "T", ["k"], "x", OPS)
        assert (res["batches_folded"], res["batches_cached"]) == (6, 0)  # evicted
        same_bits(words, got[(("k",), "x", tuple(OPS))], "after the eviction")
        assert small.alive(), small.output()[-3000:]
        s.destroy()
    finally:
        kodiak.disconnect()
        for srv in (small, big):
            if srv:
                srv.stop()

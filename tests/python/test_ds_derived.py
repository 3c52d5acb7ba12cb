# SPDX-License-Identifier: Apache-2.0
"""test_ds_derived.py — derived datasets (issue 14) against pandas and NumPy:
filter index datasets (every op, NaN, negatives, text, date-times, batches
where nothing or everything passes), chains and & / |, columns gathered
through an index, derived columns (every operator, where, abs, astype) on
base and derived datasets, at 1, 2 and 3 ranks on the shipped taxi sample
and on random data; incremental updates equal a full recompute and process
exactly the new batches; bad input is a clear error and the server lives;
two kodiakd and a C program share derived datasets, and two servers
bringing one up to date at once leave one result."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import kodiak
from conftest import BUILD, REPO, mpi_env
from fam_fixtures import FamServers, connect, famd_and_kodiakds, start_kodiakd

DATES = ["pickup_datetime", "dropoff_datetime"]


def values(col):
    """A dataset column (pdarray or Categorical) as a NumPy array (text:
    objects, None where missing)."""
    if isinstance(col, kodiak.Categorical):
        return np.array([x if isinstance(x, str) else None for x in col.to_ndarray()],
                        dtype=object)
    return col.to_ndarray()


def same(got, want, name=""):
    """A column equals a pandas Series (text: None for NaN; dates: seconds)."""
    want = pd.Series(want).reset_index(drop=True)
    g = values(got)
    if want.dtype == object:
        w = np.array([x if isinstance(x, str) else None for x in want], dtype=object)
        assert g.tolist() == w.tolist(), name
    elif np.issubdtype(want.dtype, np.datetime64):
        np.testing.assert_array_equal(g, want.values.astype("datetime64[s]").astype(np.int64),
                                      err_msg=name)
    else:
        assert g.dtype == want.dtype, (name, g.dtype, want.dtype)
        np.testing.assert_array_equal(g, want.values, err_msg=name)


def reclaim_clean(store):
    """Nothing left behind: no arrays or categories of uncommitted batches,
    and no catalog snapshot a commit retired (kodiakd deletes those after
    each reply: ds_defer_cleanup)."""
    r = store.reclaim(0)
    assert r["arrays"] == 0 and r["categories"] == 0 and r["snapshots"] == 0, r


# ---- the taxi sample -----------------------------------------------------------------------

def test_taxi_filter_gather_derive_as_pandas(store, taxi):
    path, df = taxi.path, taxi.df
    t = store.ingest("Trip", path, batch_rows=30_000, parse_dates=DATES)
    big = kodiak.filter(t, "fare_amount", "gt", 10)
    assert big.name == "Trip.fare_amount_gt_10"
    sel = df[df.fare_amount > 10]
    assert len(big) == len(sel) and big.num_batches == t.num_batches
    # the index: per base batch, the row numbers within that batch
    rows = np.flatnonzero((df.fare_amount > 10).values)
    idx = store["Trip.fare_amount_gt_10"]._read_from(big.name, ["index"])["index"]
    np.testing.assert_array_equal(values(idx), rows % 30_000)
    for k in ("fare_amount", "passenger_count", "store_and_fwd_flag", "pickup_datetime",
              "congestion_surcharge"):
        same(big[k], sel[k], k)
    assert big.columns == list(df.columns)
    # gathered once, kept in FAM, reused
    assert "Trip.fare_amount_gt_10[fare_amount]" in store.list(all=True)
    before = big.stats()
    same(big["fare_amount"], sel["fare_amount"])
    assert big.stats() == before
    # a derived column: seconds between the two times
    big.derive("duration", big["dropoff_datetime"] - big["pickup_datetime"])
    dur = (sel.dropoff_datetime - sel.pickup_datetime).dt.total_seconds().astype(np.int64)
    same(big["duration"], dur, "duration")
    assert big.dtypes["duration"] == "int64" and big.columns[-1] == "duration"
    assert big.lineage == "filter of 'Trip': fare_amount gt 10"
    # the same call again: the stored dataset, nothing computed
    n = len(store.list(all=True))
    again = t.filter("fare_amount", "gt", 10)
    assert again.name == big.name and len(store.list(all=True)) == n
    # a filter on text and on date-times
    cash = t.filter("payment_type", "eq", 2)
    same(cash["tip_amount"], df[df.payment_type == 2].tip_amount)
    ny = t.filter("pickup_datetime", "ge", "2017-07-01")
    assert ny.name == "Trip.pickup_datetime_ge_2017-07-01T00:00:00"
    same(ny["vendor_id"], df[df.pickup_datetime >= pd.Timestamp("2017-07-01")].vendor_id)
    flag = t.filter("store_and_fwd_flag", "eq", "Y")
    assert flag.name == "Trip.store_and_fwd_flag_eq_'Y'"
    same(flag["fare_amount"], df[df.store_and_fwd_flag == "Y"].fare_amount)
    assert store.verify(codes=True) > 0
    reclaim_clean(store)


# ---- random data: every op, edge cases ---------------------------------------------------

def random_frame(n, seed):
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 10, n).round(1)
    f[rng.random(n) < 0.1] = np.nan
    f[:3] = [-0.0, np.inf, -np.inf] if n >= 3 else f[:3]
    return pd.DataFrame({
        "i": rng.integers(-20, 20, n),
        "f": f,
        "b": rng.random(n) < 0.3,
        "u": rng.integers(0, 50, n).astype(np.uint64),
        "s": np.where(rng.random(n) < 0.1, None,
                      np.array(["ab", "b", "Zed", "é", "a'b"], dtype=object)[rng.integers(0, 5, n)]),
    })


def pandas_op(s, op, v, v2=None):
    if op == "between":
        return s.between(v, v2)
    if op == "isin":
        return s.isin(v)
    return {"eq": s.__eq__, "ne": s.__ne__, "lt": s.__lt__, "le": s.__le__, "gt": s.__gt__,
            "ge": s.__ge__}[op](v)


CASES = [
    ("i", "eq", 3), ("i", "ne", -5), ("i", "lt", -1), ("i", "ge", -20), ("i", "gt", 2.5),
    ("i", "between", -3, 3), ("i", "isin", [1, -2, 40]), ("f", "eq", np.nan),
    ("f", "ne", np.nan), ("f", "lt", np.nan), ("f", "le", -np.inf), ("f", "gt", -2.5),
    ("f", "between", -1.5, 7), ("f", "isin", [np.nan, 0.0, 1.1]), ("b", "ne", True),
    ("u", "gt", -1), ("u", "isin", [0, 49]),
]


def test_every_op_against_pandas_with_edge_cases(store):
    df = random_frame(700, 1)
    t = store.ingest("R", {k: df[k].values for k in df.columns}, batch_rows=128)
    names = set()
    for case in CASES:
        col, op, v = case[:3]
        v2 = case[3] if len(case) > 3 else None
        d = kodiak.filter(t, col, op, v, v2)
        names.add(d.name)
        want = df[pandas_op(df[col], op, v, v2).values]
        assert len(d) == len(want), case
        same(d["i"], want["i"], str(case))
        if op in ("isin", "between", "eq"):
            same(d[col], want[col], str(case))
    assert len(names) == len(CASES)  # every predicate its own dataset
    # text: == != isin between, and orderings where nothing is missing
    for op, v, v2 in [("ne", "b", None), ("isin", ["ab", "é", "q"], None),
                      ("between", "a", "b", ), ("ge", "Zed", None)]:
        d = t.filter("s", op, v, v2)
        s = df["s"]
        m = pandas_op(s.fillna("\x00"), op, v, v2) if op in ("lt", "between") else \
            pandas_op(s, op, v, v2)
        if op in ("lt", "between"):
            m &= s.notna()
        if op == "ge":
            m = s.notna() & (s.fillna("") >= v)
        same(d["i"], df[m.values]["i"], f"s {op} {v}")
        same(d["s"], df[m.values]["s"], f"s {op} {v}")
    # nothing passes / everything passes: empty and full batches
    none = t.filter("i", "gt", 1000)
    assert len(none) == 0 and none.num_batches == t.num_batches
    assert none["f"].size == 0 and none.head().shape == (0, 5)
    every = t.filter("i", "ge", -1000)
    same(every["f"], df["f"])
    reclaim_clean(store)


def test_chains_and_combinations(store):
    df = random_frame(500, 2)
    t = store.ingest("R", {k: df[k].values for k in df.columns}, batch_rows=50)
    a = t.filter("i", "gt", 0)
    b = t.filter("f", "lt", 5)
    both, either = a & b, a | b
    assert both.name == "R.(i_gt_0)&(f_lt_5)" and either.kind == "index"
    ma, mb = df.i > 0, df.f < 5
    same(both["u"], df[(ma & mb).values]["u"])
    same(either["u"], df[(ma | mb).values]["u"])
    same(either["s"], df[(ma | mb).values]["s"])
    # head and repr: the base's columns gathered, and the lineage
    want = df[(ma | mb).values].head(4).reset_index(drop=True)
    pd.testing.assert_frame_equal(either.head(4), want, check_dtype=False)
    r = repr(either)
    assert "'R.i_gt_0' | 'R.f_lt_5' on 'R'" in r and f"[{int((ma | mb).sum())} rows x 5 " in r
    # a chain: a filter of a filter, of a column gathered through the first
    c = a.filter("u", "isin", list(range(0, 50, 3)))
    assert c.name == "R.i_gt_0.u_isin_[" + ",".join(map(str, range(0, 50, 3))) + "]"
    sub = df[ma.values]
    want = sub[sub.u.isin(list(range(0, 50, 3))).values]
    same(c["f"], want["f"])
    same(c["s"], want["s"])
    with pytest.raises(ValueError, match="one base"):
        a & c


def test_derived_columns_every_operator_as_numpy(store):
    df = random_frame(400, 3)
    t = store.ingest("R", {k: df[k].values for k in df.columns}, batch_rows=70)
    i, f, b, u = (df[k].values for k in "ifbu")
    cases = {
        "add": (t["i"] + t["f"], i + f), "sub": (t.col("i") - 3, i - 3),
        "mul": (2.5 * t.col("f"), 2.5 * f), "div": (t.col("i") / t.col("u"), i / u),
        "fdiv": (t.col("i") // 7, i // 7), "mod": (t.col("i") % -4, i % -4),
        "fmod": (t.col("f") % 3, f % 3), "pow": (t.col("u") ** 2, u ** 2),
        "sqrt": (abs(t.col("f")) ** 0.5, np.abs(f) ** 0.5), "lt": (t.col("f") < t.col("i"), f < i),
        "eq": (t.col("i") == t.col("u"), i == u),
        "ne": (t.col("f") != t.col("f"), f != f), "and": (t.col("b") & (t.col("i") > 0), b & (i > 0)),
        "inv": (~t.col("b"), ~b), "iinv": (~t.col("i"), ~i),
        "neg": (-t.col("f"), -f), "abs": (kodiak.abs(t.col("i")), np.abs(i)),
        "astype": (t.col("f").astype("int64"), f.astype(np.int64)),
        "where": (kodiak.where(t.col("f") > 0, t.col("f"), t.col("i") * 2),
                  np.where(f > 0, f, i * 2)),
        "where_s": (kodiak.where(t["b"], t["i"], -1), np.where(b, i, -1)),
    }
    with np.errstate(all="ignore"):
        for name, (e, want) in cases.items():
            t.derive(name, e)
            got = t[name].to_ndarray()
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)
    # a derived column is a column like any other: filter on it, gather it
    pos = t.filter("add", "gt", 0)
    m = (i + f) > 0
    same(pos["add"], pd.Series((i + f)[m]))
    same(pos["s"], df[m]["s"])
    # derived on a derived dataset, then gathered through a chain
    pos.derive("twice", pos["i"] * 2)
    same(pos["twice"], pd.Series(i[m] * 2))
    neg = pos.filter("twice", "lt", 0)
    same(neg["f"], pd.Series(f[m][i[m] * 2 < 0]))
    with pytest.raises(TypeError, match="text"):
        t.col("s")
    with pytest.raises(ValueError, match="already has"):
        t.derive("add", t.col("i") + 1)
    with pytest.raises(ValueError, match="negative integer powers"):
        t.derive("bad", t.col("i") ** -1)
    with pytest.raises(TypeError, match="expression"):
        t.derive("nope", kodiak.arange(400))


def test_errors_are_clear_and_the_server_lives(store, cluster):
    t = store.ingest("R", {"x": np.arange(5), "s": np.array(list("abcde"), dtype=object)})
    with pytest.raises(ValueError, match="unknown filter op"):
        t.filter("x", "like", 3)
    with pytest.raises(KeyError, match="no column"):
        t.filter("nope", "eq", 1)
    with pytest.raises(TypeError, match="compare it with a number"):
        t.filter("x", "eq", "3")
    with pytest.raises(TypeError, match="compare it with a str"):
        t.filter("s", "eq", 3)
    with pytest.raises(TypeError, match="two values"):
        t.filter("x", "between", 1)
    store.ingest("R.x_gt_1", {"y": np.arange(2)})  # a base dataset where a filter would go
    with pytest.raises(ValueError, match="made otherwise"):
        t.filter("x", "gt", 1)
    assert cluster.server.alive()
    assert len(t.filter("x", "gt", 2)) == 2


def test_refresh_sends_the_list_only_when_it_changed(store):
    """ds_refresh {known}: the catalog list comes back only when the
    version is not the one the client knows (one round trip per access)."""
    t = store.ingest("R", {"x": np.arange(5)})
    msg = kodiak.client.generic_msg
    first, _ = msg("ds_refresh", {"store": store.name, "known": -1})
    assert [d["name"] for d in first["datasets"]] == ["R"]
    same_v, _ = msg("ds_refresh", {"store": store.name, "known": first["version"]})
    assert "datasets" not in same_v and same_v["version"] == first["version"]
    t.filter("x", "gt", 2)  # a commit: the version moves
    moved, _ = msg("ds_refresh", {"store": store.name, "known": first["version"]})
    assert moved["version"] > first["version"]
    assert [d["name"] for d in moved["datasets"]] == ["R", "R.x_gt_2"]
    with pytest.raises(TypeError):
        msg("ds_refresh", {"store": store.name, "known": "new"})
    # a new derived dataset is never listed without its batches
    assert [d["nbatches"] if "nbatches" in d else len(d["batches"])
            for d in moved["datasets"]] == [1, 1]


def test_refresh_lists_only_the_family_of_the_dataset_asked_about(store):
    """ds_refresh {known, dataset}: the list holds the datasets whose
    lineage tops out where that dataset's does, whatever else the store
    holds (the reply does not grow with the store), and nothing for a
    name the store does not have. Datasets of two families read through
    one store object keep their own columns (the client keeps one list
    per name)."""
    a = store.ingest("FamA", {"x": np.arange(6), "y": np.arange(6) * 2.0})
    b = store.ingest("FamB", {"x": np.arange(4)})
    fa = a.filter("x", "gt", 1)
    fa.derive("z", fa.col("y") * 3)
    fb = b.filter("x", "lt", 3)
    fb.derive("w", fb.col("x") + 1)
    msg = kodiak.client.generic_msg
    everything = {d["name"] for d in msg("ds_refresh", {"store": store.name,
                                                       "known": -1})[0]["datasets"]}
    family_a = {"FamA", "FamA.x_gt_1", "FamA.x_gt_1[z]"} | \
        {n for n in everything if n.startswith("FamA.x_gt_1[")}
    family_b = {n for n in everything if n.startswith("FamB")}
    assert family_a & family_b == set() and len(family_b) >= 3
    for name, family in ((fa.name, family_a), ("FamA", family_a),
                         (fb.name + "[w]", family_b)):
        got, _ = msg("ds_refresh", {"store": store.name, "known": -1, "dataset": name})
        assert {d["name"] for d in got["datasets"]} == family, name
    none, _ = msg("ds_refresh", {"store": store.name, "known": -1, "dataset": "NoSuch"})
    assert none["datasets"] == []
    with pytest.raises(KeyError, match="NoSuch"):
        store["NoSuch"].columns
    for _ in range(2):  # each name's own list, also when the version moved in between
        assert fa.columns == ["x", "y", "z"] and fb.columns == ["x", "w"]
        same(fa["z"], pd.Series(np.arange(2, 6) * 6.0))
        same(fb["w"], pd.Series(np.arange(0, 3) + 1))
        b.filter("x", "gt", 0)


# ---- incremental updates ---------------------------------------------------------------

def test_incremental_update_equals_recompute_and_counts_new_batches(store):
    df = random_frame(1000, 4)
    cols = list(df.columns)
    t = store.ingest("R", {k: df[k].values[:900] for k in cols}, batch_rows=90)  # 10 batches
    big = t.filter("f", "gt", -3)
    big.derive("d", big["i"] * 2 + big["f"])
    chain = big.filter("d", "lt", 10)
    t.derive("half", t.col("i") / 2)
    _ = big["s"], chain["u"]  # gathered now
    items = [big, chain, store["R[half]"], store["R.f_gt_-3[d]"], store["R.f_gt_-3[s]"],
             store["R.f_gt_-3.d_lt_10[u]"]]
    assert all(x.stats()["base_batches"] == 10 for x in items)
    before = {x.name: x.stats()["batches"] for x in items}
    store.ingest("R", {k: df[k].values[900:] for k in cols}, batch_rows=100)  # one more batch
    # the next access brings everything current, one new batch each
    m = (df.f > -3).values
    d = df.i.values[m] * 2 + df.f.values[m]
    same(big["d"], pd.Series(d))
    same(chain["u"], df[m][d < 10]["u"])
    same(big["s"], df[m]["s"])
    same(t["half"], df.i / 2)
    for x in items:
        st = x.stats()
        assert st["base_batches"] == 11 and st["last"] == 1, (x.name, st)
        assert st["batches"] == before[x.name] + 1, (x.name, st)
    # == a full recompute: the same definitions on the whole data at once
    t2 = store.ingest("R2", {k: df[k].values for k in cols}, batch_rows=90)
    big2 = t2.filter("f", "gt", -3)
    big2.derive("d", big2["i"] * 2 + big2["f"])
    np.testing.assert_array_equal(big2["d"].to_ndarray(), big["d"].to_ndarray())
    np.testing.assert_array_equal(big2.filter("d", "lt", 10)["u"].to_ndarray(),
                                  chain["u"].to_ndarray())
    reclaim_clean(store)


@pytest.mark.parametrize("how", ["split", "owner", "owner-default", "solo", "solo-nosync",
                                 "owner-nosync"])
def test_an_update_of_new_batches_on_three_ranks_every_way(how):
    """An update (kd_ds_refresh) of few new rows is done by rank 0 alone
    while the others wait (solo: up to KD_DSD_SOLO_ROWS new rows, the
    default for rows this few). With KD_DSD_SOLO_ROWS=0 every rank takes
    part: an update of fewer new batches than ranks splits each new
    batch's rows over all ranks (compute_split) when the batch has at
    least KD_DSD_SPLIT_MIN rows (0 here: every batch), unless
    KD_DSD_SPLIT=0: then the rank that owns the batch computes it alone,
    as it does by default for batches this small. Every way, the filter,
    the column derived through it, a column gathered through it and a
    group-by of it equal pandas' after one new batch and after five more
    (more than ranks), and only the new batches are processed. After each
    commit of rank 0 the other ranks take its catalog from it over MPI
    (kd_ds_sync: a packed ds_catalog_export, none read from FAM); with
    KD_DS_CATSYNC=0 (-nosync) each rank reads it from FAM: the same
    results, and no catalog handed over."""
    df = random_frame(1700, 11)
    cols = list(df.columns)
    env = {"split": {"KD_DSD_SOLO_ROWS": "0", "KD_DSD_SPLIT_MIN": "0"},
           "owner": {"KD_DSD_SOLO_ROWS": "0", "KD_DSD_SPLIT": "0"},
           "owner-default": {"KD_DSD_SOLO_ROWS": "0"}, "solo": {},
           "solo-nosync": {"KD_DS_CATSYNC": "0"},
           "owner-nosync": {"KD_DSD_SOLO_ROWS": "0", "KD_DSD_SPLIT": "0",
                            "KD_DS_CATSYNC": "0"}}[how]
    with famd_and_kodiakds() as kodiakd:
        connect(kodiak, kodiakd(3, env=env))
        s = kodiak.DatasetStore(f"upd_{how.replace('-', '_')}")
        t = s.ingest("R", {k: df[k].values[:1000] for k in cols}, batch_rows=250)
        big = t.filter("f", "gt", -1)
        big.derive("d", big["i"] * 3 - big["f"])
        _ = big["d"], big["u"], big.groupby("s").mean("d")
        # rows [lo, hi) in batches of `rows`: `new` batches, `nb` in all
        for lo, hi, rows, new, nb in ((1000, 1200, 200, 1, 5), (1200, 1700, 100, 5, 10)):
            s.ingest("R", {k: df[k].values[lo:hi] for k in cols}, batch_rows=rows)
            upto = hi
            part = df[:upto]
            m = (part.f > -1).values
            same(big["d"], pd.Series(part.i.values[m] * 3 - part.f.values[m]), f"{how} {upto}")
            same(big["u"], part[m]["u"], f"{how} {upto}")
            got = big.groupby("s").mean("d")
            # NumPy's mean of each group (pandas' Kahan sum makes a group
            # holding an infinity NaN: 2, -inf, 3 has the mean -inf)
            d, keys = part.i.values[m] * 3 - part.f.values[m], part.s.values[m]
            want = {k: np.mean(d[keys == k]) for k in sorted(set(keys[~pd.isna(keys)]))}
            assert list(got.index) == list(want)
            np.testing.assert_allclose(np.asarray(got.values, dtype=float),
                                       np.array(list(want.values())), rtol=1e-12)
            for name in (big.name, f"{big.name}[d]", f"{big.name}[u]"):
                st = s[name].stats()
                assert st["base_batches"] == nb and st["last"] == new, (how, name, st)
                # the way asked for: by rank 0 alone, or not once
                assert st["solo"] == (st["updates"] - 1 if how.startswith("solo") else 0), \
                    (how, st)
        cat = kodiak.client.generic_msg("ds_derive_stats", {"store": s.name})[0]["catalog"]
        if how.endswith("nosync"):
            assert cat == {"imports": 0, "exports": 0}, cat
        else:  # each commit of rank 0 (ingests, creations, updates) to both other ranks
            assert cat["exports"] >= 6 and cat["imports"] == 2 * cat["exports"], cat
        s.destroy()


@pytest.mark.parametrize("ranks,once", [(1, True), (3, True), (1, False)])
def test_an_update_of_a_chain_on_one_rank_commits_once(ranks, once):
    """An update of several derived datasets on one rank (a server of one,
    or rank 0 alone for few new rows) commits them all at once: each is
    computed from the new batches of the one it derives from before those
    are committed (ds_txn_stage), and the catalog goes up one version
    however many datasets catch up. With KD_DSD_ONE_COMMIT=0 each commits
    by itself, a version each. The same results both ways, pandas'."""
    df = random_frame(1300, 12)
    cols = list(df.columns)
    env = {} if once else {"KD_DSD_ONE_COMMIT": "0"}
    with famd_and_kodiakds() as kodiakd:
        connect(kodiak, kodiakd(ranks, env=env))
        s = kodiak.DatasetStore(f"once_{ranks}_{int(once)}")
        t = s.ingest("R", {k: df[k].values[:1000] for k in cols}, batch_rows=250)
        big = t.filter("f", "gt", -1)
        big.derive("d", big.col("i") * 3 - big.col("f"))
        chain = big.filter("d", "lt", 2)
        _ = big["u"], chain["s"]
        derived = [big.name, f"{big.name}[d]", chain.name, f"{big.name}[u]", f"{chain.name}[s]"]
        assert sorted(s.list(all=True)) == sorted(["R"] + derived), s.list(all=True)
        msg = kodiak.client.generic_msg
        for lo, hi, nb in ((1000, 1100, 5), (1100, 1300, 6)):
            s.ingest("R", {k: df[k].values[lo:hi] for k in cols}, batch_rows=250)
            v0 = msg("ds_list", {"store": s.name})[0]["version"]
            done = msg("ds_refresh", {"store": s.name})[0]
            v1 = msg("ds_list", {"store": s.name})[0]["version"]
            assert done["processed"] == len(derived), done  # a new batch each
            assert v1 - v0 == (1 if once else len(derived)), (v0, v1)
            part = df[:hi]
            m = (part.f > -1).values
            d = part.i.values[m] * 3 - part.f.values[m]
            same(big["d"], pd.Series(d), f"{ranks} {hi} d")
            same(big["u"], part[m]["u"], f"{ranks} {hi} u")
            same(chain["s"], part[m][d < 2]["s"], f"{ranks} {hi} s")
            for name in derived:
                st = s[name].stats()
                assert st["base_batches"] == nb and st["last"] == 1, (name, st)
                assert st["solo"] == (st["updates"] - 1 if ranks > 1 else 0), (name, st)
        s.destroy()


def test_an_update_that_loses_the_race_goes_again_one_by_one():
    """A one-commit update (one rank) whose datasets another server brought
    current first fails as a whole and goes again dataset by dataset,
    which finds each current: pandas' results on both servers, each new
    batch committed by one server only, the loser's batches deleted.
    kodiakd holds server A's commit back (KD_DSD_TEST_HOLD_MS, a hook for
    tests) until server B has committed the same update."""
    df = random_frame(1300, 21)
    cols = list(df.columns)
    with famd_and_kodiakds() as kodiakd:
        a = kodiakd(1, env={"KD_DSD_TEST_HOLD_MS": "5000"})
        b = kodiakd(1)
        connect(kodiak, a)
        s = kodiak.DatasetStore("lost_race")
        t = s.ingest("R", {k: df[k].values[:1000] for k in cols}, batch_rows=250)
        big = t.filter("f", "gt", -1)
        big.derive("d", big.col("i") * 3 - big.col("f"))
        assert "test hold" not in a.output()  # making them was no update
        s.ingest("R", {k: df[k].values[1000:] for k in cols}, batch_rows=250)  # 2 batches
        racer = subprocess.Popen([sys.executable, "-c", RACER.format(
            python=os.path.join(REPO, "python"), cf=a.connect_file, store=s.name,
            ds=f"{big.name}[d]")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while "test hold" not in a.output():  # A computed both, holds its commit
                assert racer.poll() is None and time.monotonic() < deadline, a.output()
                time.sleep(0.02)
            connect(kodiak, b)
            done = kodiak.client.generic_msg("ds_refresh", {"store": s.name})[0]
            assert done["processed"] == 4, done  # 2 batches of 2 datasets
            out = racer.communicate(timeout=120)[0]
        finally:
            if racer.poll() is None:
                racer.kill()
        m = (df.f > -1).values
        assert racer.returncode == 0 and int(out.split()[-1]) == int(m.sum()), out
        stats = {}
        for k, srv in (("A", a), ("B", b)):
            connect(kodiak, srv)
            stats[k] = kodiak.client.generic_msg("ds_derive_stats", {"store": s.name})[0]
            sk = kodiak.DatasetStore(s.name)
            bk = sk[big.name]
            same(bk["d"], pd.Series(df.i.values[m] * 3 - df.f.values[m]), f"{k} d")
            same(bk["u"], df[m]["u"], f"{k} u")
        assert stats["A"]["one_commit"] == {"commits": 1, "lost": 1}, stats["A"]
        assert stats["B"]["one_commit"] == {"commits": 1, "lost": 0}, stats["B"]
        for name in (big.name, f"{big.name}[d]"):  # the new batches: B's only
            assert stats["B"]["datasets"][name]["batches"] == 2, stats["B"]
            assert stats["A"]["datasets"][name]["batches"] == 4, stats["A"]  # its first 4
        r = kodiak.DatasetStore(s.name).reclaim(0)
        assert r["arrays"] == 0, r  # A's uncommitted batches were deleted
        s.destroy()


# ---- sharing: two servers and a C program ------------------------------------------------

@pytest.fixture(scope="module")
def two():
    f = FamServers(1)
    box = {}
    try:
        box["A"] = start_kodiakd(1, f.servers)
        box["B"] = start_kodiakd(2, f.servers)
        yield f, box
    finally:
        kodiak.disconnect()
        for s in box.values():
            s.stop()
        f.stop()


RACER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {python!r})
    import kodiak as ak
    ak.connect(connect_file={cf!r})
    print(len(ak.DatasetStore({store!r})[{ds!r}]), flush=True)
""")


def test_shared_by_two_servers_and_c(two):
    fam, srv = two
    connect(kodiak, srv["A"])
    s = kodiak.DatasetStore("dshare")
    try:
        x = np.arange(4000) % 97
        t = s.ingest("T", {"x": x, "y": x * 0.5}, batch_rows=100)  # 40 batches
        big = t.filter("x", "ge", 50)
        big.derive("z", big["y"] * 4)
        connect(kodiak, srv["B"])
        sb = kodiak.DatasetStore("dshare")
        bb = sb["T.x_ge_50"]
        np.testing.assert_array_equal(bb["z"].to_ndarray(), x[x >= 50] * 2.0)
        assert bb.stats()["batches"] == 0  # B computed nothing: A's work is shared
        # the C program reads the index dataset's arrays from the catalog
        env = {**mpi_env(), "FAM_SERVERS": fam.servers}
        r = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none",
                            os.path.join(BUILD, "ds_mpi_example"), "--read", "dshare",
                            "T.x_ge_50"], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        want = int(sum(np.flatnonzero(x[b * 100:(b + 1) * 100] >= 50).sum()
                       for b in range(40)))
        assert f"index int64 sum={want}" in r.stdout, r.stdout
        info = subprocess.run([os.path.join(BUILD, "kodiak-ds"), "info", "dshare", "T.x_ge_50"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert '"filter"' in info.stdout and "40 base batches" in info.stdout, info.stdout
        # 20 new batches; both servers bring the dataset current at once
        sb.ingest("T", {"x": np.arange(2000) % 97, "y": (np.arange(2000) % 97) * 0.5},
                  batch_rows=100)
        procs = [subprocess.Popen([sys.executable, "-c", RACER.format(
            python=os.path.join(REPO, "python"), cf=srv[k].connect_file, store="dshare",
            ds="T.x_ge_50[z]")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for k in ("A", "B")]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        xa = np.concatenate([x, np.arange(2000) % 97])
        n = int((xa >= 50).sum())
        assert all(p.returncode == 0 for p in procs), outs
        assert [int(o.split()[-1]) for o in outs] == [n, n], outs
        # one result: each new batch computed (committed) by one server only
        done = 0
        for k in ("A", "B"):
            connect(kodiak, srv[k])
            st = kodiak.DatasetStore("dshare")["T.x_ge_50[z]"].stats()
            assert st["base_batches"] == 60
            done += st["batches"]
        assert done == 60, done
        np.testing.assert_array_equal(kodiak.DatasetStore("dshare")["T.x_ge_50"]["z"]
                                      .to_ndarray(), xa[xa >= 50] * 2.0)
        r = kodiak.DatasetStore("dshare").reclaim(0)
        assert r["arrays"] == 0, r  # the loser's batches were deleted
    finally:
        connect(kodiak, srv["A"])
        kodiak.DatasetStore("dshare").destroy()


# ---- the fast paths against the general ones -----------------------------------------------

@pytest.mark.parametrize("gather,filt,mapped,colcache,simd", [
    ("span", "generic", False, "1", "1"), ("index", "fused", False, "1", "1"),
    ("index", "fused", False, "1", "0"), ("index", "fused", True, "1", "1"),
    ("index", "fused", False, "0", "1"), ("span", "generic", False, "0", "1")])
def test_fast_paths_as_general(gather, filt, mapped, colcache, simd, tmp_path):
    """kodiakd gathers rows through an index by reading the span they
    cover or, when they are sparse, by an indexed read (ds_gather); it
    filters a stored numeric column in place (fused: compare and write the
    row numbers in one pass) or through the window (generic).
    KD_DSD_GATHER / KD_DSD_FILTER force one way: each must give pandas'
    rows and values for every filter op and edge case, sparse and dense
    gathers, text, a chain and a derived column, on 2 ranks. The fused
    filter runs only on a pool mapped here (a pool file and
    FAM_MODEL=shared_memory); elsewhere it falls back to the general way,
    and an indexed read is done by famd. KD_DS_COLCACHE=0: every row read
    from FAM, none from kodiakd's column cache (kd_dscache.c), which else
    holds what the ingest wrote. KD_DSD_SIMD=0: the fused filter of a
    float64 column compares one row at a time, else 16 at a time (AVX2,
    where the CPU has it), with every op, NaN and infinities, sparse and
    dense passes, batches not a multiple of 16 rows."""
    df = random_frame(3000, 7)
    env = {"KD_DSD_GATHER": gather, "KD_DSD_FILTER": filt, "KD_DS_COLCACHE": colcache,
           "KD_DSD_SIMD": simd}
    if mapped:
        env["FAM_MODEL"] = "shared_memory"
    with famd_and_kodiakds(pool_files=[str(tmp_path / "pool")] if mapped else None) as kodiakd:
        srv = kodiakd(2, env=env)
        connect(kodiak, srv)
        s = kodiak.DatasetStore(f"fast_{gather}")
        t = s.ingest("R", {k: df[k].values for k in df.columns}, batch_rows=700)
        for case in CASES + [("i", "between", 3, -3), ("u", "le", 2**63), ("f", "ge", -np.inf),
                             ("i", "lt", -2**62), ("u", "between", 10, 10.5),
                             ("f", "eq", 0.0), ("f", "eq", 1.5), ("f", "ne", 1.5),
                             ("f", "lt", 3), ("f", "le", 2.5), ("f", "ge", 0.0), ("f", "gt", 25),
                             ("f", "gt", np.nan), ("f", "ge", np.inf), ("f", "le", np.inf),
                             ("f", "between", np.nan, 3), ("f", "between", -np.inf, np.inf),
                             ("f", "between", 2, 2.0)]:
            col, op, v = case[:3]
            v2 = case[3] if len(case) > 3 else None
            d = kodiak.filter(t, col, op, v, v2)
            want = df[pandas_op(df[col], op, v, v2).values]
            assert len(d) == len(want), case
            same(d["i"], want["i"], f"{filt} {case}")
        sparse, dense = t.filter("i", "eq", 3), t.filter("i", "ge", -15)
        ms, md = (df.i == 3).values, (df.i >= -15).values
        assert 0 < ms.mean() < 0.1 and md.mean() > 0.8
        for d, m in ((sparse, ms), (dense, md)):
            for k in ("f", "u", "s", "b"):
                same(d[k], df[m][k], f"{gather} {d.name} {k}")
        chain = dense.filter("u", "lt", 5)  # an index of an index: sparse rows of dense ones
        sub = df[md]
        same(chain["f"], sub[(sub.u < 5).values]["f"], f"{gather} chain")
        same(chain["s"], sub[(sub.u < 5).values]["s"], f"{gather} chain text")
        sparse.derive("g", sparse.col("f") * 2 - sparse.col("i"))
        same(sparse["g"], (df.f * 2 - df.i)[ms], f"{gather} derive")
        s.destroy()
        assert srv.alive()

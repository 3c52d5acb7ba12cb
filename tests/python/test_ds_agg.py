# SPDX-License-Identifier: Apache-2.0
"""test_ds_agg.py — aggregation over datasets of the store (ds.sum, mean,
min, max, count, std, var, nunique, value_counts, groupby) against pandas
on the same data: the shipped taxi sample and random tables with the
awkward cases (NaN, -0.0, inf, negative numbers, int64 extremes, missing
text, two keys, one batch, more ranks than batches, no rows), at 1, 2 and
3 ranks. A dataset four times larger than the compute server's
--memory-limit aggregates to the same answers, and reading one of its
columns whole is a MemoryError that says what to do instead."""
import numpy as np
import pandas as pd
import pytest

import kodiak
from fam_fixtures import FamCluster, connect

DATES = ["pickup_datetime", "dropoff_datetime"]


# ---- comparing with pandas -------------------------------------------------------------------

def same_scalar(got, exp, what):
    """A reduction equals pandas': exactly for integers, text and times,
    within 1e-12 relative for floats (summation order differs)."""
    if isinstance(exp, (float, np.floating)):
        assert isinstance(got, (float, np.floating)), (what, got, exp)
        if np.isnan(exp):
            assert np.isnan(got), (what, got, exp)
        else:
            assert got == pytest.approx(exp, rel=1e-12, abs=1e-300), (what, got, exp)
    elif exp is pd.NaT or (isinstance(exp, float) and np.isnan(exp)):
        assert got is pd.NaT, (what, got)
    else:
        assert type(got) is type(exp) or isinstance(exp, (int, np.integer)), (what, got, exp)
        assert got == exp, (what, got, exp)


def same_series(got, exp, what, exact=False):
    """A group-by result equals pandas': values, index, name and dtype."""
    assert isinstance(got, pd.Series), (what, type(got))
    pd.testing.assert_series_equal(got, exp, check_dtype=True, check_index_type=False,
                                   check_exact=exact, rtol=1e-12, atol=0, obj=what)


def check_column(ds, df, col, ops=("sum", "mean", "min", "max", "count", "std", "nunique")):
    for op in ops:
        got = getattr(ds, op)(col)
        ref = df[col]
        if ref.dtype == object and op in ("min", "max"):  # pandas 1.5 fails on str vs NaN
            ref = ref.dropna()
        exp = getattr(ref, op)()
        if ref.dtype == np.uint64 and op == "sum":  # pandas 1.5 gives it as int64: NumPy's
            exp = ref.to_numpy().sum()
        same_scalar(got, exp, f"{col}.{op}")


def check_groupby(ds, df, keys, col, ops=("count", "sum", "mean", "min", "max", "nunique",
                                          "std", "size"), one_pass=True):
    """Each op of ds.groupby(keys) on col as pandas' df.groupby(keys)[col].<op>():
    all in one request (agg), or one method call each (one_pass=False)."""
    g, pg = ds.groupby(keys), df.groupby(keys)[col]
    if one_pass:
        both = g[col].agg(list(ops))
    for op in ops:
        if one_pass:
            got = both[op].rename(col)
        elif op == "size":
            got = g.size().rename(col)
        else:
            got = getattr(g, op)(col)
        exp = getattr(pg, op)().rename(col)
        same_series(got, exp, f"groupby({keys})[{col}].{op}",
                    exact=op in ("count", "size", "nunique", "min", "max"))


def check_value_counts(ds, df, col):
    got = ds.value_counts(col)
    exp = df[col].value_counts()
    assert got.name == exp.name and got.index.name == exp.index.name
    # pandas leaves the order of equal counts open: compare as sorted by value
    pd.testing.assert_series_equal(got.sort_index(), exp.sort_index(), check_index_type=False)
    assert list(got.values) == sorted(got.values, reverse=True)


# ---- the taxi sample ---------------------------------------------------------------------------

def test_taxi_reductions_group_bys_and_value_counts_as_pandas(store, taxi):
    parts, df = taxi.parts, taxi.parts_df
    t = store.ingest("Trip", parts, batch_rows=7_000, parse_dates=DATES)
    assert t.num_batches > 10
    for col in ("fare_amount", "passenger_count"):
        check_column(t, df, col)
    check_column(t, df, "congestion_surcharge")  # all empty: NaN sums to 0, mean NaN
    check_column(t, df, "pickup_datetime", ops=("min", "max", "count", "nunique"))
    check_column(t, df, "store_and_fwd_flag", ops=("min", "max", "count", "nunique"))
    check_groupby(t, df, "pickup_location_id", "fare_amount", one_pass=False)
    check_groupby(t, df, ["payment_type", "store_and_fwd_flag"], "tip_amount")
    check_groupby(t, df, "store_and_fwd_flag", "passenger_count")
    check_groupby(t, df, "vendor_id", "dropoff_location_id", ops=("nunique", "min", "max"))
    for col in ("payment_type", "store_and_fwd_flag"):
        check_value_counts(t, df, col)
    # several aggregations in one pass, as pandas' agg
    got = t.groupby("payment_type")["fare_amount"].agg(["count", "mean", "max"])
    exp = df.groupby("payment_type")["fare_amount"].agg(["count", "mean", "max"])
    pd.testing.assert_frame_equal(got, exp, check_index_type=False, rtol=1e-12)


# ---- random data -------------------------------------------------------------------------------

def random_frame(rng, n):
    texts = np.array(["", "a", "b", "é", "zz", "A b", "ß"], dtype=object)
    f = rng.normal(0, 1e6, n)
    f[rng.random(n) < 0.1] = np.nan
    f[rng.random(n) < 0.02] = -0.0
    f[rng.random(n) < 0.02] = 0.0
    s = texts[rng.integers(0, len(texts), n)]
    s[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "k": rng.integers(-3, 4, n),
        "s": s,
        "f": f,
        "i": rng.integers(-10**12, 10**12, n),
        "u": rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2),
        "b": rng.random(n) < 0.3,
        "fk": np.round(rng.normal(0, 2, n)),
    })


@pytest.mark.parametrize("n,batch", [(3_000, 333), (1_000, 5_000), (7, 2)])
def test_random_tables_as_pandas(store, n, batch):
    rng = np.random.default_rng(n + batch)
    df = random_frame(rng, n)
    t = store.ingest("R", df, batch_rows=batch)
    got = t.to_pandas()
    pd.testing.assert_frame_equal(got, df)  # what pandas is given is what was stored
    for col in ("f", "i", "u", "k", "fk"):
        check_column(t, df, col)
    check_column(t, df, "b", ops=("sum", "mean", "min", "max", "count", "nunique"))
    check_column(t, df, "s", ops=("min", "max", "count", "nunique"))
    for keys in ("k", "s", ["k", "s"], ["s", "fk"], "b"):
        check_groupby(t, df, keys, "f")
        check_groupby(t, df, keys, "i", ops=("sum", "min", "max", "mean", "nunique"))
    check_groupby(t, df, "k", "s", ops=("count", "nunique", "size"))
    check_groupby(t, df, "k", "u", ops=("sum", "min", "max"))
    for col in ("s", "k", "fk", "b"):
        check_value_counts(t, df, col)


def test_int64_extremes_wrap_as_numpy_and_inf_nan_as_pandas(store):
    big = np.iinfo(np.int64)
    df = pd.DataFrame({
        "k": np.array([1, 1, 1, 2, 2, 3], dtype=np.int64),
        "i": np.array([big.max, big.max, 5, big.min, big.min, -1], dtype=np.int64),
        "f": np.array([np.inf, 1.0, np.nan, -np.inf, np.inf, np.nan]),
    })
    t = store.ingest("X", df, batch_rows=2)
    check_column(t, df, "i", ops=("sum", "min", "max", "count", "nunique"))
    check_column(t, df, "f")
    check_groupby(t, df, "k", "i", ops=("sum", "min", "max", "count", "nunique"))
    # means of integers are exact (a 128-bit sum): pandas sums float64 casts,
    # which lose the low bits near 2^63; the reference is Python's exact ints
    from fractions import Fraction
    assert t.mean("i") == float(Fraction(sum(int(v) for v in df["i"]), len(df)))
    exp = df.groupby("k")["i"].apply(lambda s: float(Fraction(sum(map(int, s)), len(s))))
    same_series(t.groupby("k").mean("i"), exp.rename("i"), "exact means", exact=True)
    check_groupby(t, df, "k", "f", ops=("min", "max", "count"))
    # pandas 1.5's group-by sum and mean turn inf into NaN (their Kahan
    # compensation computes inf - inf); the reference is Series.sum/mean per group
    for op in ("sum", "mean"):
        exp = df.groupby("k")["f"].apply(lambda s: getattr(s, op)())
        same_series(getattr(t.groupby("k"), op)("f"), exp, f"inf {op}")


@pytest.mark.parametrize("batch", [1, 2, 4, 7])
def test_sums_with_infinities_do_not_hang_on_the_batching(store, batch):
    """An infinity after finite values in one batch, window or group made
    the compensated sum's correction inf - inf (NaN): 2, -inf, 3 summed to
    NaN or -inf depending on where batches began. The reference is NumPy's
    sum and mean of each group, whatever the batch size."""
    df = pd.DataFrame({"k": np.array([1, 1, 1, 2, 2, 2, 3], dtype=np.int64),
                       "f": np.array([2.0, -np.inf, 3.0, np.inf, 1.0, -np.inf, 5.0])})
    t = store.ingest(f"Inf{batch}", df, batch_rows=batch)
    for op in ("sum", "mean"):
        got = getattr(t.groupby("k"), op)("f")
        exp = {k: getattr(np, op)(df.f.values[df.k.values == k]) for k in (1, 2, 3)}
        assert list(got.index) == [1, 2, 3], got
        np.testing.assert_array_equal(np.asarray(got.values, dtype=float),
                                      np.array(list(exp.values())), err_msg=op)
        assert np.array_equal(getattr(t, op)("f"), getattr(np, op)(df.f.values), equal_nan=True)
    store.drop(f"Inf{batch}")


def test_float_sums_stay_accurate_over_many_batches(store):
    """1e6 values of mixed magnitude: the compensated sum is as close to
    the exact sum (math.fsum) as pandas'."""
    import math
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 200_000) * 10.0 ** rng.integers(-8, 9, 200_000)
    t = store.ingest("F", {"x": x}, batch_rows=9_999)
    exact = math.fsum(x)
    assert abs(t.sum("x") - exact) <= 1e-15 * np.abs(x).sum()
    assert t.sum("x") == pytest.approx(pd.Series(x).sum(), rel=1e-12)


def test_a_dataset_with_no_rows(store):
    df = pd.DataFrame({"k": np.array([], dtype=np.int64), "f": np.array([], dtype=float)})
    t = store.ingest("E", df)
    assert len(t) == 0
    for op in ("sum", "mean", "min", "max", "count", "std", "nunique"):
        same_scalar(getattr(t, op)("f"), getattr(df["f"], op)(), op)
    assert len(t.groupby("k").mean("f")) == 0
    assert len(t.value_counts("k")) == 0


def test_batches_yields_each_batch_in_order(store):
    df = pd.DataFrame({"x": np.arange(10), "s": list("abcabcabca")})
    t = store.ingest("B", df, batch_rows=4)
    got = list(t.batches())
    assert [len(b["x"]) for b in got] == [4, 4, 2]
    assert np.concatenate([b["x"].to_ndarray() for b in got]).tolist() == list(range(10))
    assert [v for b in got for v in b["s"].to_ndarray()] == list(df["s"])
    assert list(next(t.batches(["s"]))) == ["s"]


def test_bad_requests_are_clear_errors_and_the_server_keeps_running(store, fam_ak):
    t = store.ingest("Z", {"x": np.arange(3), "s": np.array(["a", "b", "c"])})
    with pytest.raises(KeyError, match="no column 'nope'"):
        t.sum("nope")
    with pytest.raises(KeyError, match="no column 'nope'"):
        t.groupby("nope").sum("x")
    with pytest.raises(TypeError, match="text"):
        t.mean("s")
    with pytest.raises(TypeError, match="text"):
        t.groupby("x").sum("s")
    with pytest.raises(ValueError, match="unknown operation"):
        t.groupby("x")["x"].agg(["median"])
    with pytest.raises(TypeError):
        t.groupby(3)
    with pytest.raises(KeyError, match="no dataset"):
        from kodiak.ds_agg import _agg
        from kodiak.dataset import Dataset
        _agg(Dataset(store, "missing"), [], "x", ["sum"])
    with pytest.raises(ValueError, match="unknown operation"):
        kodiak.client.generic_msg("ds_agg", {"store": store.name, "dataset": "Z", "keys": [],
                                             "value": "x", "ops": ["drop_tables"]})
    with pytest.raises(TypeError, match="keys"):
        kodiak.client.generic_msg("ds_agg", {"store": store.name, "dataset": "Z",
                                             "keys": ["x"] * 9, "value": "x", "ops": ["sum"]})
    with pytest.raises(ValueError, match="ddof"):
        kodiak.client.generic_msg("ds_agg", {"store": store.name, "dataset": "Z", "keys": [],
                                             "value": "x", "ops": ["std"], "ddof": -1})
    assert t.sum("x") == 3


# ---- the direct-indexed table for small keys -------------------------------------------------

def test_direct_indexed_keys_equal_the_hash_table(store):
    """Group-bys on small integer, bool, date-time and text keys (one and
    two of them, with missing keys, and a key whose range is small in some
    batches and huge in others) give exactly, bit for bit and in the same
    group order, what the hash table alone gives; and both are pandas'."""
    from kodiak.ds_agg import _agg
    rng = np.random.default_rng(14)
    n = 20_000
    df = random_frame(rng, n)
    df["t"] = pd.to_datetime(1_600_000_000 + rng.integers(0, 500, n), unit="s")
    df.loc[rng.random(n) < 0.05, "t"] = pd.NaT
    mixed = rng.integers(0, 40, n)
    mixed[n // 2:] = rng.integers(-2**62, 2**62, n - n // 2)  # later batches: a huge range
    df["m"] = mixed
    t = store.ingest("D", df, batch_rows=3_000)
    every = ["size", "count", "sum", "mean", "min", "max", "std", "var", "nunique"]
    for keys in ([], ["k"], ["s"], ["b"], ["t"], ["k", "s"], ["s", "b", "k"], ["m"], ["i"],
                 ["u"], ["fk"]):
        for value in ("f", "i", "k", "s", "b", "m"):  # nunique: small values direct too
            ops = ["count", "min", "max", "nunique"] if value == "s" else every
            kh, oh = _agg(t, keys, value, ops, table="hash")
            kd, od = _agg(t, keys, value, ops)
            for k in keys:
                np.testing.assert_array_equal(kd[k], kh[k], err_msg=f"{keys} {value}")
            for op in ops:
                assert od[op].dtype == oh[op].dtype, (keys, value, op)
                if od[op].dtype == object:  # text min/max
                    assert od[op].tolist() == oh[op].tolist(), (keys, value, op)
                else:
                    np.testing.assert_array_equal(od[op].view(np.uint8),
                                                  oh[op].view(np.uint8),
                                                  err_msg=f"{keys} {value} {op}")
    # the direct table is used where the keys are small (rank 0's windows)
    def direct(keys):
        res, _ = kodiak.client.generic_msg("ds_agg", {"store": store.name, "dataset": "D",
                                                      "keys": keys, "value": "f",
                                                      "ops": ["sum"]})
        return res["direct_windows"]
    mine = len(range(0, t.num_batches, kodiak.get_config()["numLocales"]))  # rank 0's batches
    assert direct(["k", "s"]) > 0 and direct(["i"]) == 0 and direct(["f"]) == 0
    assert 0 < direct(["m"]) < mine
    for keys in ("k", "s", "t", ["k", "s"], "m"):
        check_groupby(t, df, keys, "f")
    check_value_counts(t, df, "t")
    with pytest.raises(ValueError, match="table"):
        _agg(t, ["k"], "f", ["sum"], table="dense")


# ---- derived datasets: filter indices, gathered and derived columns --------------------------

def seconds(a, b):
    """b - a of two date-time Series in whole seconds (as a derived column)."""
    return ((b.values.astype("datetime64[s]").astype(np.int64)
             - a.values.astype("datetime64[s]").astype(np.int64)))


def check_derived(ds, sel, tag):
    """The aggregations of the issue's workflow on a derived dataset `ds`
    whose rows are pandas' `sel` (with a `duration` column)."""
    check_column(ds, sel, "fare_amount")
    check_column(ds, sel, "duration")
    check_column(ds, sel, "store_and_fwd_flag", ops=("min", "max", "count", "nunique"))
    check_column(ds, sel, "pickup_datetime", ops=("min", "max", "count", "nunique"))
    check_groupby(ds, sel, "pickup_location_id", "duration",
                  ops=("count", "sum", "mean", "min", "max", "std", "nunique", "size"))
    check_groupby(ds, sel, ["payment_type", "store_and_fwd_flag"], "tip_amount")
    check_groupby(ds, sel, "store_and_fwd_flag", "duration", ops=("mean", "max"))
    check_groupby(ds, sel, "vendor_id", "store_and_fwd_flag", ops=("nunique", "min", "max"))
    for col in ("payment_type", "store_and_fwd_flag", "duration"):
        check_value_counts(ds, sel, col)
    same_scalar(ds.var("duration"), sel["duration"].var(), f"{tag}: var(duration)")


def test_derived_datasets_aggregate_as_pandas(store, taxi):
    """ak.filter -> gathered columns -> ds.derive -> groupby, on the taxi
    sample, as pandas; columns gathered on the fly and kept in FAM give the
    same; a chain of filters and a derived column of the base dataset too;
    after an ingest the aggregations are current (only the new batches
    computed)."""
    parts, df = taxi.parts, taxi.parts_df
    t = store.ingest("Trip", parts[:2], batch_rows=9_000, parse_dates=DATES)
    n0 = len(t)
    big = kodiak.filter(t, "fare_amount", "gt", 20)
    big.derive("duration", big["dropoff_datetime"] - big["pickup_datetime"])
    assert "Trip.fare_amount_gt_20[store_and_fwd_flag]" not in store.list(all=True)
    d = df.iloc[:n0].copy()
    d["duration"] = seconds(d.pickup_datetime, d.dropoff_datetime)
    sel = d[d.fare_amount > 20].reset_index(drop=True)
    check_derived(big, sel, "gathered on the fly")
    assert "Trip.fare_amount_gt_20[store_and_fwd_flag]" not in store.list(all=True)
    # the same once gathered columns are kept in FAM
    for k in ("store_and_fwd_flag", "pickup_location_id", "tip_amount"):
        big[k]
    assert "Trip.fare_amount_gt_20[store_and_fwd_flag]" in store.list(all=True)
    check_derived(big, sel, "kept")
    # a chain: a filter of the derived dataset, its columns through both
    two = big.filter("passenger_count", "ge", 2)
    check_derived(two, sel[sel.passenger_count >= 2].reset_index(drop=True), "chain")
    # a derived column of the base dataset, grouped by a base column
    t.derive("tip_frac", t["tip_amount"] * 0.01 - t["fare_amount"])
    d["tip_frac"] = d.tip_amount * 0.01 - d.fare_amount
    check_column(t, d, "tip_frac", ops=("sum", "mean", "min", "max", "count", "std"))
    check_groupby(t, d, "payment_type", "tip_frac", ops=("count", "mean", "max"))
    check_groupby(big, sel.assign(tip_frac=sel.tip_amount * 0.01 - sel.fare_amount),
                  "pickup_location_id", "tip_frac", ops=("mean", "min"))
    # new batches: the next aggregation is current, computing only them
    before, nb0 = big.stats(), t.num_batches
    store.ingest("Trip", parts[2], parse_dates=DATES, batch_rows=9_000)
    new = store["Trip"].num_batches - nb0
    d = df.copy()
    d["duration"] = seconds(d.pickup_datetime, d.dropoff_datetime)
    sel = d[d.fare_amount > 20].reset_index(drop=True)
    check_groupby(big, sel, "pickup_location_id", "duration", ops=("mean", "count"))
    after = big.stats()
    assert new > 0 and after["base_batches"] == nb0 + new, (before, after)
    assert after["last"] == new and after["batches"] - before["batches"] == new, (before, after)
    check_derived(big, sel, "after an ingest")
    assert store.verify(codes=True) > 0


@pytest.mark.parametrize("n,batch", [(3_000, 333), (7, 2)])
def test_random_derived_datasets_as_pandas(store, n, batch):
    """Filters where nothing, some or everything of a batch passes, over
    the awkward values of random_frame, and a derived float column with
    NaN and -0.0: every aggregation as pandas."""
    rng = np.random.default_rng(n * 7 + batch)
    df = random_frame(rng, n)
    t = store.ingest("R", df, batch_rows=batch)
    for op, v, m in [("ge", -1, df.k >= -1), ("gt", 10, df.k > 10), ("ne", 99, df.k != 99)]:
        f = t.filter("k", op, v)
        f.derive("g", f["f"] * 2.0 - f["fk"])
        sel = df[m].reset_index(drop=True)
        sel = sel.assign(g=sel.f * 2.0 - sel.fk)
        for col in ("f", "i", "g"):
            check_column(f, sel, col)
        check_column(f, sel, "s", ops=("min", "max", "count", "nunique"))
        for keys in ("k", "s", ["k", "s"], "b", "fk"):
            check_groupby(f, sel, keys, "g")
            check_groupby(f, sel, keys, "i", ops=("sum", "min", "max", "nunique"))
        check_groupby(f, sel, "k", "s", ops=("count", "nunique", "size"))
        for col in ("s", "k", "b"):
            check_value_counts(f, sel, col)


# ---- larger than compute memory ------------------------------------------------------------------

LIMIT = 1 << 20  # --memory-limit per rank


@pytest.mark.parametrize("nranks", [1, 2, 3])
def test_four_times_the_memory_limit_gives_the_answers_of_pandas(nranks):
    """A dataset of 4x what all ranks together may hold: every aggregation
    as pandas, and a whole column is a MemoryError that says to aggregate
    or iterate; the server keeps running."""
    c = FamCluster(nranks, 1, args=["--memory-limit", str(LIMIT)])
    try:
        connect(kodiak, c.server)
        rows = 4 * LIMIT * nranks // 24 + 1000  # three 8-byte columns
        rng = np.random.default_rng(nranks)
        texts = np.array([f"zone{i:03d}" for i in range(300)], dtype=object)
        df = pd.DataFrame({"k": rng.integers(0, 50, rows),
                           "f": rng.normal(10, 5, rows),
                           "s": texts[rng.integers(0, len(texts), rows)]})
        df.loc[rng.random(rows) < 0.01, "f"] = np.nan
        s = kodiak.DatasetStore("big")
        try:
            step = LIMIT * nranks // 48  # each ingest call well inside the limit
            for at in range(0, rows, step):
                t = s.ingest("Big", df.iloc[at:at + step], batch_rows=step // 3)
            assert len(t) == rows and rows * 24 > 4 * LIMIT * nranks
            check_column(t, df, "f")
            check_column(t, df, "k", ops=("sum", "min", "max", "nunique"))
            check_column(t, df, "s", ops=("count", "nunique", "min", "max"))
            check_groupby(t, df, "s", "f", ops=("count", "mean", "std", "max"))
            check_groupby(t, df, ["k", "s"], "f", ops=("sum",))
            check_groupby(t, df, "k", "s", ops=("nunique",))
            check_value_counts(t, df, "s")
            # a derived dataset of it, its columns gathered batch by batch
            # through the index, and a derived column of that
            big = t.filter("k", "lt", 30)
            big.derive("g", big.col("f") * 2.0 + big.col("k"))  # reads nothing
            sel = df[df.k < 30].reset_index(drop=True)
            sel = sel.assign(g=sel.f * 2.0 + sel.k)
            check_column(big, sel, "g")
            check_column(big, sel, "s", ops=("count", "nunique", "min", "max"))
            check_groupby(big, sel, "s", "g", ops=("count", "mean", "std", "max"))
            check_groupby(big, sel, ["k", "s"], "f", ops=("sum",))
            check_value_counts(big, sel, "k")
            with pytest.raises(MemoryError) as e:
                t["f"]
            msg = str(e.value)
            assert "memory limit" in msg and "ds.batches()" in msg and "groupby" in msg, msg
            # iterating batch by batch works: each batch fits
            total = sum(float(np.nansum(b["f"].to_ndarray())) for b in t.batches(["f"]))
            assert total == pytest.approx(df["f"].sum(), rel=1e-12)
            # arrays that leave no room for the window: a clear MemoryError, then fine
            x = kodiak.zeros((LIMIT - 8192) // 8 * nranks)  # 8 KiB left per rank
            with pytest.raises(MemoryError, match="too few to page"):
                t.sum("f")
            del x
            assert t.count("f") == df["f"].count()
            assert c.server.alive()
        finally:
            s.destroy()
    finally:
        kodiak.disconnect()
        c.stop()


# ---- the client's key order: NumPy's argsort where it is pandas' sort_index -------------------

@pytest.mark.parametrize("kind", ["int64", "uint64", "float64", "bool", "datetime64[s]"])
def test_groups_put_in_key_order_by_numpy_as_pandas_sort_index_would(kind):
    """ds_agg's groups come in the server's order; the client orders them
    by one numeric or date-time key with NumPy (a fast path for pandas'
    sort_index): the same Series as sort_index on shuffled keys with NaN,
    NaT, negatives and the extremes, and on keys already in order."""
    from kodiak.ds_agg import _in_key_order, _index
    rng = np.random.default_rng(7)
    if kind == "int64":
        key = np.concatenate([rng.integers(-10**6, 10**6, 300),
                              [np.iinfo(np.int64).min, np.iinfo(np.int64).max]])
    elif kind == "uint64":
        key = np.concatenate([rng.integers(0, 10**6, 300).astype(np.uint64),
                              np.array([np.iinfo(np.uint64).max, 2**63], dtype=np.uint64)])
    elif kind == "float64":
        key = np.concatenate([rng.normal(size=300), [np.nan, -np.inf, np.inf, -0.5e-300]])
    elif kind == "bool":
        key = np.array([True, False])
    else:
        key = np.concatenate([rng.integers(0, 2 * 10**9, 300).astype("datetime64[s]"),
                              np.array(["NaT"], dtype="datetime64[s]")])
    key = np.unique(key) if kind != "float64" else key  # groups: distinct keys
    for shuffled in (rng.permutation(len(key)), np.arange(len(key))):
        k = {"g": key[shuffled]}
        o = {"mean": rng.normal(size=len(key)), "size": rng.integers(0, 9, len(key))}
        exp = {op: pd.Series(v, index=_index(k), name="x").sort_index() for op, v in o.items()}
        k2, o2 = _in_key_order(k, o)
        for op in o:
            got = pd.Series(o2[op], index=_index(k2), name="x")
            pd.testing.assert_series_equal(got, exp[op])

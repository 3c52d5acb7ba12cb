# SPDX-License-Identifier: Apache-2.0
"""GroupBy against pandas (df.groupby(keys).agg(...), sorted keys): one and
several keys of mixed dtypes, every reduction, broadcast, at 1, 2 and 3 ranks."""
import numpy as np
import pandas as pd
import pytest

SIZES = [0, 1, 7, 1000, 100003]


def values_of(n, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(bool)
    if dtype == np.float64:
        v = rng.standard_normal(n) * 100
        v[rng.random(n) < 0.1] = np.nan
        return v
    if dtype == np.uint64:
        return rng.integers(0, 1000, n, dtype=np.uint64)
    return rng.integers(-1000, 1000, n)


def keys_of(n, kind, seed=0):
    rng = np.random.default_rng(seed + n)
    if kind == "dups":
        return rng.integers(-5, 5, n)
    return rng.permutation(n).astype(np.int64) * 3 - n  # all distinct


def expected(keys, vals, op):
    """pandas' answer: (unique key columns, values), keys ascending."""
    cols = {f"k{j}": k for j, k in enumerate(keys)}
    cols["v"] = vals
    df = pd.DataFrame(cols)
    g = df.groupby([f"k{j}" for j in range(len(keys))], sort=True)["v"]
    r = {"sum": g.sum, "prod": g.prod, "mean": g.mean, "min": g.min, "max": g.max, "count": g.count,
         "nunique": g.nunique, "first": lambda: g.nth(0), "size": g.size}[op]()
    if op == "first":  # nth(0) keeps the rows' index: rebuild keys from the rows
        firsts = df.groupby([f"k{j}" for j in range(len(keys))], sort=True).head(1)
        firsts = firsts.sort_values([f"k{j}" for j in range(len(keys))], kind="stable")
        return [firsts[f"k{j}"].to_numpy() for j in range(len(keys))], firsts["v"].to_numpy()
    idx = r.index
    if len(keys) == 1:
        uk = [np.asarray(idx.get_level_values(0))]
    else:
        uk = [np.asarray(idx.get_level_values(j)) for j in range(len(keys))]
    return uk, r.to_numpy()


def check(got_keys, got_vals, exp_keys, exp_vals, op, vdtype):
    got_keys = list(got_keys) if isinstance(got_keys, tuple) else [got_keys]
    assert len(got_keys) == len(exp_keys)
    for g, e in zip(got_keys, exp_keys):
        np.testing.assert_array_equal(g.to_ndarray(), e.astype(g.dtype))
    v = got_vals.to_ndarray()
    want_dtype = {"sum": np.int64 if vdtype in (np.int64, np.bool_) else vdtype,
                  "prod": np.int64 if vdtype in (np.int64, np.bool_) else vdtype,
                  "mean": np.float64, "count": np.int64, "size": np.int64,
                  "nunique": np.int64}.get(op, vdtype)
    assert v.dtype == np.dtype(want_dtype), (op, v.dtype)
    if v.dtype == np.float64:
        np.testing.assert_allclose(v, exp_vals.astype(np.float64), rtol=1e-12, atol=1e-9)
    else:
        np.testing.assert_array_equal(v, exp_vals.astype(v.dtype))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", ["dups", "distinct"])
def test_groupby_attributes(ak, n, kind):
    k = keys_of(n, kind)
    g = ak.GroupBy(ak.array(k))
    uk, counts = np.unique(k, return_counts=True)
    assert g.ngroups == uk.size and g.length == n and g.nkeys == 1
    np.testing.assert_array_equal(g.unique_keys.to_ndarray(), uk)
    np.testing.assert_array_equal(g.permutation.to_ndarray(), np.argsort(k, kind="stable"))
    np.testing.assert_array_equal(g.segments.to_ndarray(),
                                  np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
                                  if n else np.array([], np.int64))
    keys, sizes = g.size()
    np.testing.assert_array_equal(sizes.to_ndarray(), counts)
    np.testing.assert_array_equal(g.count()[1].to_ndarray(), counts)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", ["dups", "distinct"])
@pytest.mark.parametrize("vdtype", [np.int64, np.uint64, np.float64, np.bool_])
@pytest.mark.parametrize("op", ["sum", "mean", "min", "max", "count", "nunique", "first"])
def test_single_key_reductions_match_pandas(ak, n, kind, vdtype, op):
    k = keys_of(n, kind)
    if n == 0 and op == "first":  # pandas cannot take the first row of nothing
        gk, gv = ak.GroupBy(ak.array(k)).aggregate(ak.array(values_of(0, vdtype, 1)), op)
        assert gk.size == 0 and gv.size == 0 and gv.dtype == np.dtype(vdtype)
        return
    v = values_of(n, vdtype, n + 1)
    if op == "first" and vdtype == np.float64:
        v = np.nan_to_num(v)  # pandas' first skips NaN; Arkouda's is the first row
    g = ak.GroupBy(ak.array(k))
    gk, gv = g.aggregate(ak.array(v), op)
    ek, ev = expected([k], v, op)
    check(gk, gv, ek, ev, op, vdtype)


@pytest.mark.parametrize("op", ["sum", "mean", "min", "max", "count", "nunique", "first"])
def test_named_methods_are_aggregate(ak, op):
    k = keys_of(1000, "dups")
    v = values_of(1000, np.int64, 3)
    g = ak.GroupBy(ak.array(k))
    a = ak.array(v)
    np.testing.assert_array_equal(getattr(g, op)(a)[1].to_ndarray(),
                                  g.aggregate(a, op)[1].to_ndarray())


@pytest.mark.parametrize("n", [0, 7, 1000, 100003])
def test_multi_key_groupby_with_mixed_dtypes_matches_pandas(ak, n):
    rng = np.random.default_rng(n)
    k1 = rng.integers(-2, 2, n)
    k2 = rng.integers(0, 3, n) * 0.5
    k3 = rng.integers(0, 2, n).astype(bool)
    k4 = rng.integers(0, 2, n, dtype=np.uint64)
    keys = [k1, k2, k3, k4]
    v = values_of(n, np.float64, 9)
    g = ak.GroupBy([ak.array(k) for k in keys])
    assert isinstance(g.unique_keys, tuple) and len(g.unique_keys) == 4
    for op in ("sum", "mean", "min", "max", "count", "nunique"):
        gk, gv = g.aggregate(ak.array(v), op)
        ek, ev = expected(keys, v, op)
        check(gk, gv, ek, ev, op, np.float64)
    np.testing.assert_array_equal(g.permutation.to_ndarray(), np.lexsort(keys[::-1]))


@pytest.mark.parametrize("n", [7, 1000, 100003])
def test_multi_key_groupby_with_keys_wider_than_one_word(ak, n):
    rng = np.random.default_rng(n)
    k1 = rng.integers(-2**63, 2**63 - 1, 4, dtype=np.int64)[rng.integers(0, 4, n)]
    k2 = rng.standard_normal(3)[rng.integers(0, 3, n)] * 1e300
    v = values_of(n, np.int64, 2)
    g = ak.GroupBy([ak.array(k1), ak.array(k2)])
    gk, gv = g.sum(ak.array(v))
    ek, ev = expected([k1, k2], v, "sum")
    check(gk, gv, ek, ev, "sum", np.int64)


def test_nan_keys_are_dropped_as_pandas_does(ak):
    rng = np.random.default_rng(4)
    k = rng.integers(0, 4, 1000) * 1.5
    k[rng.random(1000) < 0.2] = np.nan
    v = values_of(1000, np.int64, 5)
    g = ak.GroupBy(ak.array(k))
    assert g.permutation.size == int((~np.isnan(k)).sum())
    for op in ("sum", "count", "max"):
        gk, gv = g.aggregate(ak.array(v), op)
        ek, ev = expected([k], v, op)
        check(gk, gv, ek, ev, op, np.int64)


def test_nan_keys_form_a_group_with_dropna_false(ak):
    k = np.array([1.0, np.nan, 2.0, np.nan, 1.0])
    v = np.array([1, 2, 3, 4, 5])
    g = ak.GroupBy(ak.array(k), dropna=False)
    keys, sums = g.sum(ak.array(v))
    np.testing.assert_array_equal(keys.to_ndarray(), [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(sums.to_ndarray(), [6, 3, 6])


def test_sum_of_bool_counts_trues_as_int64(ak):
    k = np.array([0, 1, 0, 1, 1])
    v = np.array([True, True, True, False, True])
    keys, sums = ak.GroupBy(ak.array(k)).sum(ak.array(v))
    assert sums.dtype == np.int64
    np.testing.assert_array_equal(sums.to_ndarray(), [2, 2])


def test_mean_and_min_of_an_all_nan_group_are_nan_and_sum_is_zero(ak):
    k = np.array([0, 0, 1, 1])
    v = np.array([np.nan, np.nan, 1.0, np.nan])
    g = ak.GroupBy(ak.array(k))
    np.testing.assert_array_equal(g.mean(ak.array(v))[1].to_ndarray(), [np.nan, 1.0])
    np.testing.assert_array_equal(g.min(ak.array(v))[1].to_ndarray(), [np.nan, 1.0])
    np.testing.assert_array_equal(g.sum(ak.array(v))[1].to_ndarray(), [0.0, 1.0])
    np.testing.assert_array_equal(g.count(ak.array(v))[1].to_ndarray(), [0, 1])


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 100003])
@pytest.mark.parametrize("vdtype", [np.int64, np.uint64, np.float64, np.bool_])
def test_prod_matches_pandas(ak, n, vdtype):
    # values whose products stay exact in int64 and finite in float64:
    # mostly 1, some -1 and 2 (ints), or 1 +- 1e-3 with NaNs (floats)
    rng = np.random.default_rng(n + 5)
    k = rng.integers(0, 40, n)
    if vdtype == np.float64:
        v = 1.0 + (rng.random(n) - 0.5) * 2e-3
        v[rng.random(n) < 0.1] = np.nan
    elif vdtype == np.bool_:
        v = rng.random(n) < 0.9
    else:
        v = rng.choice(np.array([1, 1, 1, 1, 1, 1, 1, 1, 2, -1 if vdtype == np.int64 else 3]),
                       n).astype(vdtype)
        v[rng.random(n) < 0.9] = 1
    g = ak.GroupBy(ak.array(k))
    gk, gv = g.prod(ak.array(v))
    ek, ev = expected([k], v, "prod")
    check(gk, gv, ek, ev, "prod", vdtype)
    np.testing.assert_array_equal(g.aggregate(ak.array(v), "prod")[1].to_ndarray(),
                                  gv.to_ndarray())


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 100003])
@pytest.mark.parametrize("kind", ["dups", "distinct"])
@pytest.mark.parametrize("vdtype", [np.int64, np.uint64, np.float64])
def test_median_matches_pandas(ak, n, kind, vdtype):
    k = keys_of(n, kind, seed=9)
    v = values_of(n, vdtype, n + 11)
    if vdtype == np.float64 and n:
        v[k == k.min()] = np.nan  # one group of NaNs only: its median is NaN
    g = ak.GroupBy(ak.array(k))
    gk, gv = g.median(ak.array(v))
    want = pd.DataFrame({"k": k, "v": v}).groupby("k")["v"].median()
    np.testing.assert_array_equal(gk.to_ndarray(), want.index.to_numpy())
    assert gv.dtype == np.float64
    np.testing.assert_array_equal(gv.to_ndarray(), want.to_numpy(np.float64))
    np.testing.assert_array_equal(g.aggregate(ak.array(v), "median")[1].to_ndarray(),
                                  gv.to_ndarray())


def test_median_of_two_keys_and_its_errors(ak):
    rng = np.random.default_rng(31)
    k1, k2 = rng.integers(0, 4, 5000), rng.integers(0, 3, 5000)
    v = rng.standard_normal(5000)
    _, got = ak.GroupBy([ak.array(k1), ak.array(k2)]).median(ak.array(v))
    want = pd.DataFrame({"a": k1, "b": k2, "v": v}).groupby(["a", "b"])["v"].median()
    np.testing.assert_array_equal(got.to_ndarray(), want.to_numpy())
    g = ak.GroupBy(ak.array(k1))
    with pytest.raises(TypeError):
        g.median(ak.array(v > 0))
    with pytest.raises(ValueError):
        g.median(ak.arange(3))


def test_float_prods_are_the_same_for_every_rank_count(ak):
    # as sums: multiplied in row order from the group's first row
    rng = np.random.default_rng(22)
    n = 20011
    k = rng.integers(0, 5, n)
    v = 1.0 + (rng.random(n) - 0.5) * 1e-2
    v[::89] = np.nan
    _, p = ak.GroupBy(ak.array(k)).prod(ak.array(v))
    want = []
    for key in range(5):
        acc = 1.0
        for x in v[k == key]:
            if x == x:
                acc *= x
        want.append(acc)
    assert p.to_ndarray().tolist() == want
    # an integer product wraps as int64 arithmetic does
    big = np.full(10, 2**40, np.int64)
    _, q = ak.GroupBy(ak.zeros(10, ak.int64)).prod(ak.array(big))
    assert q.to_ndarray().tolist() == [int(np.prod(big))]


@pytest.mark.parametrize("n", [1, 7, 1000, 100003])
@pytest.mark.parametrize("vdtype", [np.int64, np.float64, np.bool_])
def test_broadcast_gives_each_row_its_groups_value(ak, n, vdtype):
    k = keys_of(n, "dups")
    g = ak.GroupBy(ak.array(k))
    per_group = values_of(g.ngroups, vdtype, 7)
    uk = np.unique(k)
    pos = np.searchsorted(uk, k)
    got = g.broadcast(ak.array(per_group))
    np.testing.assert_array_equal(got.to_ndarray(), per_group[pos])
    grouped = g.broadcast(ak.array(per_group), permute=False)
    np.testing.assert_array_equal(grouped.to_ndarray(),
                                  per_group[pos][np.argsort(k, kind="stable")])


def test_broadcast_of_a_group_sum_is_pandas_transform(ak):
    k = keys_of(1000, "dups")
    v = values_of(1000, np.int64, 8)
    g = ak.GroupBy(ak.array(k))
    _, sums = g.sum(ak.array(v))
    want = pd.DataFrame({"k": k, "v": v}).groupby("k")["v"].transform("sum").to_numpy()
    np.testing.assert_array_equal(g.broadcast(sums).to_ndarray(), want)


def test_groupby_errors(ak):
    g = ak.GroupBy(ak.array([1, 2, 1]))
    with pytest.raises(ValueError):
        g.sum(ak.arange(4))
    with pytest.raises(ValueError):
        g.aggregate(ak.arange(3), "kurtosis")  # not a reduction
    with pytest.raises(ValueError):
        g.broadcast(ak.arange(3))
    with pytest.raises(TypeError):
        g.sum([1, 2, 3])
    with pytest.raises(ValueError):
        ak.GroupBy([ak.arange(3), ak.arange(4)])
    with pytest.raises(ValueError):
        ak.GroupBy([])


def test_server_checks_segments_and_permutation_it_is_given(ak):
    vals = ak.arange(5)
    perm = ak.array([0, 1, 2, 3, 4])
    bad_seg = ak.array([0, 3, 2])
    with pytest.raises(ValueError):
        ak.client.generic_msg("groupby_reduce", {"permutation": perm.name,
                                                 "segments": bad_seg.name,
                                                 "values": vals.name, "op": "sum"})
    seg = ak.array([0, 2])
    bad_perm = ak.array([0, 1, 2, 3, 99])
    with pytest.raises(IndexError):
        ak.client.generic_msg("groupby_reduce", {"permutation": bad_perm.name,
                                                 "segments": seg.name,
                                                 "values": vals.name, "op": "sum"})
    res, _ = ak.client.generic_msg("groupby_reduce", {"permutation": perm.name,
                                                      "segments": seg.name,
                                                      "values": vals.name, "op": "sum"})
    assert ak.pdarray(res["array"]["name"], "int64", 2).tolist() == [1, 9]


def test_float_sums_and_means_are_the_same_for_every_rank_count(ak):
    # a group's rows are added in order from its first row, whatever ranks
    # hold them: the result equals a plain sequential loop per group
    rng = np.random.default_rng(21)
    n = 20011
    k = rng.integers(0, 5, n)
    v = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)
    v[::97] = np.nan
    g = ak.GroupBy(ak.array(k))
    _, s = g.sum(ak.array(v))
    _, m = g.mean(ak.array(v))
    _, mi = g.mean(ak.array(k * 3))
    want_s, want_m, want_mi = [], [], []
    for key in range(5):
        acc, cnt, acci = 0.0, 0, 0.0
        for x, kk in zip(v[k == key], k[k == key]):
            acci += float(kk * 3)
            if x == x:
                acc += x
                cnt += 1
        want_s.append(acc)
        want_m.append(acc / cnt)
        want_mi.append(acci / (k == key).sum())
    assert s.to_ndarray().tolist() == want_s
    assert m.to_ndarray().tolist() == want_m
    assert mi.to_ndarray().tolist() == want_mi


@pytest.mark.parametrize("vdtype", [np.int64, np.float64, np.bool_])
def test_any_and_all_match_pandas(ak, vdtype):
    rng = np.random.default_rng(8)
    k = rng.integers(0, 30, 2000)
    v = (rng.integers(0, 4, 2000) == 0).astype(vdtype) if vdtype != np.float64 else \
        np.where(rng.integers(0, 4, 2000) == 0, 0.0, 1.5)
    g = ak.GroupBy(ak.array(k))
    df = pd.DataFrame({"k": k, "v": v != 0})
    for op in ("any", "all"):
        keys, got = getattr(g, op)(ak.array(v))
        want = getattr(df.groupby("k")["v"], op)()
        np.testing.assert_array_equal(keys.to_ndarray(), want.index.to_numpy())
        np.testing.assert_array_equal(got.to_ndarray(), want.to_numpy())
        assert got.dtype == np.bool_


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 100003])
@pytest.mark.parametrize("vdtype", [np.int64, np.uint64, np.float64])
def test_var_std_argmin_argmax_match_pandas(ak, n, vdtype):
    k = keys_of(n, "dups", seed=4)
    v = values_of(n, vdtype, 5)
    if vdtype == np.float64 and n > 10:
        v[k == 2] = np.nan  # a group with no values at all
        v[:n // 3] += 1e6   # squares about the mean, not about zero
    g = ak.GroupBy(ak.array(k))
    a = ak.array(v)
    s = pd.Series(v).groupby(k, sort=True)
    for ddof in (1, 0):
        keys, var = g.var(a, ddof=ddof)
        np.testing.assert_array_equal(keys.to_ndarray(), s.var(ddof=ddof).index.to_numpy())
        np.testing.assert_allclose(var.to_ndarray(), s.var(ddof=ddof).to_numpy(),
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(g.std(a, ddof=ddof)[1].to_ndarray(),
                                   s.std(ddof=ddof).to_numpy(), rtol=1e-9, atol=1e-9)
    for op, pdop in (("argmin", "idxmin"), ("argmax", "idxmax")):
        _, got = getattr(g, op)(a)
        assert got.dtype == np.int64
        want = np.array([getattr(grp.dropna(), pdop)() if grp.notna().any() else -1
                         for _, grp in s], dtype=np.int64)
        np.testing.assert_array_equal(got.to_ndarray(), want)
        np.testing.assert_array_equal(g.aggregate(a, op)[1].to_ndarray(), want)
    np.testing.assert_allclose(g.aggregate(a, "var")[1].to_ndarray(), s.var().to_numpy(),
                               rtol=1e-9, atol=1e-9)


def test_aggregate_takes_any_and_all(ak):
    k = np.array([1, 1, 2, 3, 3])
    v = np.array([0, 0, 5, 1, 0])
    g = ak.GroupBy(ak.array(k))
    assert g.aggregate(ak.array(v), "any")[1].tolist() == [False, True, True]
    assert g.aggregate(ak.array(v), "all")[1].tolist() == [False, True, False]

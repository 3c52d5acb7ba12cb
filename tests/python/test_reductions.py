# SPDX-License-Identifier: Apache-2.0
"""Reductions (sum ... std, is_sorted), scans (cumsum, cumprod), where and
concatenate, against NumPy: values, result dtypes, NumPy scalar types, NaN,
empty arrays, ties across rank boundaries."""
import warnings

import numpy as np
import pytest

SIZES = [0, 1, 7, 1000]
DTYPES = [np.int64, np.uint64, np.float64, np.bool_]
DT_IDS = ["i64", "u64", "f64", "bool"]


def data(dtype, n, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(np.bool_)
    if dtype == np.float64:
        return rng.standard_normal(n) * 100
    if dtype == np.int64:
        return rng.integers(-2**62, 2**62, n)
    return rng.integers(0, 2**64 - 1, n, dtype=np.uint64)


def np_call(name, x, **kw):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(np, name)(x, **kw)


def ak_call(ak, name, a, as_method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(a, name)(**kw) if as_method else getattr(ak, name)(a, **kw)


def assert_scalar(got, exp, exact):
    assert type(got) is type(exp), (type(got), type(exp))
    if exact:
        assert got == exp or (np.isnan(got) and np.isnan(exp)), (got, exp)
    else:
        np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-12)


EXACT = ["prod", "min", "max", "argmin", "argmax", "any", "all"]


@pytest.mark.parametrize("name", ["sum", "prod", "min", "max", "argmin", "argmax", "any",
                                  "all", "mean", "var", "std"])
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_reduction_matches_numpy_value_and_type(ak, name, dt):
    for n in SIZES:
        x = data(dt, n, n)
        a = ak.array(x)
        for as_method in (True, False):
            if n == 0 and name in ("min", "max", "argmin", "argmax"):
                with pytest.raises(ValueError, match="empty|zero-size"):
                    ak_call(ak, name, a, as_method)
                continue
            exp = np_call(name, x)
            got = ak_call(ak, name, a, as_method)
            # integer sums are exact (they wrap like NumPy's)
            exact = name in EXACT or (name == "sum" and dt != np.float64)
            if name == "prod" and dt == np.float64:
                exact = False
            assert_scalar(got, exp, exact)


@pytest.mark.parametrize("ddof", [0, 1, 2.5])
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_var_and_std_with_ddof(ak, dt, ddof):
    for n in (1, 2, 7, 1000):
        x = data(dt, n, 20 + n)
        a = ak.array(x)
        for name in ("var", "std"):
            exp = np_call(name, x, ddof=ddof)
            got = ak_call(ak, name, a, True, ddof=ddof)
            assert type(got) is np.float64
            if np.isnan(exp) or np.isinf(exp):
                assert (np.isnan(got) and np.isnan(exp)) or got == exp, (got, exp)
            else:
                np.testing.assert_allclose(got, exp, rtol=1e-10)


def test_var_is_accurate_with_a_large_offset(ak):
    # a naive sum of squares loses every digit here; the two-pass formula does not
    x = 1e9 + np.random.default_rng(1).standard_normal(100003)
    np.testing.assert_allclose(ak.array(x).var(), x.var(), rtol=1e-9)
    np.testing.assert_allclose(ak.std(ak.array(x), ddof=1), x.std(ddof=1), rtol=1e-9)


# ---- float64 results that do not depend on the number of ranks -------------------------
# The server sums (and multiplies) float64 values in fixed chunks of 65536
# elements of the global array: each chunk left to right from its first
# element, then the chunk values left to right. The reference below computes
# that definition with NumPy's sequential np.cumsum/np.cumprod, so equality
# must be exact, for 1, 2 and 3 ranks alike.

FCHUNK = 65536
EXACT_SIZES = [0, 1, 7, 65535, 65537, 200003]


def spread(n, seed):
    """float64 values spanning 16 orders of magnitude, both signs"""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)


def near_one(n, seed):
    """float64 values whose product over 2e5 elements stays finite"""
    rng = np.random.default_rng(seed)
    return 1 + rng.standard_normal(n) * 10.0 ** rng.integers(-8, -2, n)


def chunked(x, prod=False):
    acc = np.cumprod if prod else np.cumsum
    vals = [acc(x[k:k + FCHUNK])[-1] for k in range(0, len(x), FCHUNK)]
    if not vals:
        return np.float64(1.0 if prod else 0.0)
    return acc(np.array(vals))[-1]


def ref_var(x, ddof=0):
    n = len(x)
    if n == 0:
        return np.float64(np.nan)
    d = x - chunked(x) / np.float64(n)
    return chunked(d * d) / np.float64(max(n - ddof, 0))


def same(got, exp):
    assert type(got) is np.float64
    assert got == exp or (np.isnan(got) and np.isnan(exp)), (got, exp, got - exp)


@pytest.mark.parametrize("n", EXACT_SIZES)
def test_float_sum_and_mean_are_the_fixed_chunk_sum_exactly(ak, n):
    x = spread(n, 60 + n)
    a = ak.array(x)
    same(a.sum(), chunked(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same(a.mean(), chunked(x) / np.float64(n) if n else np.float64(np.nan))


@pytest.mark.parametrize("n", EXACT_SIZES)
def test_float_var_and_std_are_the_fixed_chunk_two_pass_formula_exactly(ak, n):
    x = spread(n, 70 + n)
    a = ak.array(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ddof in (0, 1):
            same(a.var(ddof=ddof), ref_var(x, ddof))
            same(a.std(ddof=ddof), np.sqrt(ref_var(x, ddof)))


@pytest.mark.parametrize("n", EXACT_SIZES)
def test_float_prod_is_the_fixed_chunk_product_exactly(ak, n):
    x = near_one(n, 80 + n)
    same(ak.array(x).prod(), chunked(x, prod=True))


@pytest.mark.parametrize("n", [2 * FCHUNK, 3 * FCHUNK + 1, 24 * FCHUNK + 777])
def test_float_sums_are_exact_at_chunk_multiples_and_many_chunks_per_rank(ak, n):
    # 24 chunks and more: every rank takes the path that runs 8 chunks at once
    x = spread(n, n % 1000)
    a = ak.array(x)
    same(a.sum(), chunked(x))
    same(a.var(), ref_var(x))


def test_integer_mean_and_var_use_the_same_fixed_chunks(ak):
    x = np.random.default_rng(90).integers(-2**60, 2**60, 200003)
    xf = x.astype(np.float64)
    a = ak.array(x)
    same(a.mean(), chunked(xf) / np.float64(len(x)))
    same(a.var(), ref_var(xf))


def test_float_sum_propagates_nan_and_inf_across_chunks(ak):
    x = spread(200003, 91)
    x[150000] = np.nan
    assert np.isnan(ak.array(x).sum()) and np.isnan(ak.array(x).var())
    x[150000] = np.inf
    assert ak.array(x).sum() == np.inf and np.isnan(ak.array(x).var())


def test_empty_arrays_reduce_like_numpy(ak):
    for dt in DTYPES:
        e = ak.zeros(0, dt)
        assert e.sum() == 0 and type(e.sum()) is type(np.sum(np.zeros(0, dt)))
        assert e.prod() == 1
        assert e.any() is np.False_ and e.all() is np.True_
        with pytest.warns(RuntimeWarning):
            assert np.isnan(e.mean())
        with pytest.raises(ValueError, match="zero-size array to reduction operation minimum"):
            e.min()
        with pytest.raises(ValueError, match="attempt to get argmax of an empty sequence"):
            ak.argmax(e)
        assert e.is_sorted()


def test_nan_propagates_through_min_max_and_argmin_finds_the_first(ak):
    x = np.arange(1000.0)
    x[[600, 17, 900]] = np.nan
    a = ak.array(x)
    assert np.isnan(a.min()) and np.isnan(ak.max(a))
    assert a.argmin() == np.argmin(x) == 17 and a.argmax() == np.argmax(x) == 17
    assert np.isnan(a.sum()) and np.isnan(a.mean())


def test_argmin_argmax_ties_give_the_first_global_index(ak):
    for n in (2, 7, 1000):
        x = np.zeros(n, np.int64)
        x[n // 2:] = -5  # the minimum starts in a later rank and repeats to the end
        a = ak.array(x)
        assert a.argmin() == np.argmin(x) == n // 2
        assert a.argmax() == 0
        u = np.full(n, 2**64 - 1, np.uint64)
        assert ak.array(u).argmax() == 0 and ak.array(u).max() == np.uint64(2**64 - 1)


def test_sums_wrap_and_keep_numpys_dtypes(ak):
    x = np.array([2**63 - 1, 2**63 - 1, 5], np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ak.array(x).sum() == x.sum()
    u = np.array([2**64 - 1, 2], np.uint64)
    assert ak.array(u).sum() == u.sum() and type(ak.array(u).sum()) is np.uint64
    b = np.array([True, True, False])
    assert ak.array(b).sum() == 2 and type(ak.array(b).sum()) is np.int64
    assert type(ak.array(b).mean()) is np.float64
    assert type(ak.array(b).min()) is np.bool_


# ---- is_sorted -----------------------------------------------------------------------

@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_is_sorted_checks_across_rank_boundaries(ak, dt):
    for n in (1, 2, 7, 1000):
        x = np.sort(data(dt, n, 30 + n))
        assert ak.is_sorted(ak.array(x)) is np.True_
        if n >= 2:
            # swap a neighbouring pair: at the ends, and across each rank boundary
            for i in sorted({0, n - 2} | {max(0, n * k // r - 1) for r in (2, 3)
                                         for k in range(1, r)}):
                y = x.copy()
                y[i], y[i + 1] = x[i + 1], x[i]
                exp = bool(np.all(y[:-1] <= y[1:]))
                assert bool(ak.array(y).is_sorted()) == exp


def test_is_sorted_with_equal_values_and_nan(ak):
    assert ak.array(np.array([1, 1, 1, 2, 2])).is_sorted()
    assert not ak.array(np.array([1.0, np.nan, 2.0])).is_sorted()
    assert not ak.array(np.array([1.0, 2.0, np.nan])).is_sorted()


# ---- scans ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_scans_match_numpy(ak, name, dt):
    for n in SIZES + [100003]:
        x = data(dt, n, 40 + n)
        if name == "cumprod" and dt == np.float64:
            x = 1 + x / 1e4  # products stay finite over 1e5 elements
        elif name == "cumprod" and dt != np.bool_:
            x = x % np.array(7, dt) + np.array(1, dt)  # wraps around, identically
        for as_method in (True, False):
            got = ak_call(ak, name, ak.array(x), as_method)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exp = getattr(np, name)(x)
            assert got.dtype == exp.dtype
            if dt == np.float64:
                np.testing.assert_allclose(got.to_ndarray(), exp, rtol=1e-9)
            else:
                np.testing.assert_array_equal(got.to_ndarray(), exp)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_float_scans_equal_numpys_sequential_scan_exactly(ak, name):
    for n in EXACT_SIZES:
        x = near_one(n, 100 + n) if name == "cumprod" else spread(n, 100 + n)
        got = getattr(ak.array(x), name)().to_ndarray()
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, getattr(np, name)(x))


def test_float_cumsum_keeps_a_leading_negative_zero(ak):
    got = ak.array(np.array([-0.0, -0.0])).cumsum().to_ndarray()
    assert np.signbit(got).all()


# ---- where -------------------------------------------------------------------------

@pytest.mark.parametrize("dtb", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("dta", DTYPES, ids=DT_IDS)
def test_where_with_arrays_matches_numpy(ak, dta, dtb):
    for n in SIZES:
        c = data(np.bool_, n, 50)
        x, y = data(dta, n, 51), data(dtb, n, 52)
        exp = np.where(c, x, y)
        got = ak.where(ak.array(c), ak.array(x), ak.array(y))
        assert got.dtype == exp.dtype
        np.testing.assert_array_equal(got.to_ndarray(), exp)


@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_where_with_scalars_matches_numpy(ak, dt):
    c = data(np.bool_, 1000, 53)
    x = data(dt, 1000, 54)
    for s in (7, -1, 2.5, True, np.uint64(2**64 - 1), 2**63):
        for exp, got in ((np.where(c, x, s), ak.where(ak.array(c), ak.array(x), s)),
                         (np.where(c, s, x), ak.where(ak.array(c), s, ak.array(x)))):
            assert got.dtype == exp.dtype, (s, got.dtype, exp.dtype)
            np.testing.assert_array_equal(got.to_ndarray(), exp)
    exp = np.where(c, 1, 2.5)
    got = ak.where(ak.array(c), 1, 2.5)
    assert got.dtype == exp.dtype
    np.testing.assert_array_equal(got.to_ndarray(), exp)


def test_where_takes_any_condition_dtype_as_truth(ak):
    c = np.array([0.0, np.nan, -1.0, 0.5])
    np.testing.assert_array_equal(ak.where(ak.array(c), 1, 0).to_ndarray(), np.where(c, 1, 0))


def test_where_errors(ak):
    c = ak.array(np.array([True, False]))
    with pytest.raises(ValueError, match="2.*3"):
        ak.where(c, ak.arange(3), 0)
    with pytest.raises(TypeError):
        ak.where(c, "x", 0)
    with pytest.raises(TypeError):
        ak.where(np.array([True, False]), 1, 0)


# ---- concatenate ---------------------------------------------------------------------

@pytest.mark.parametrize("dtb", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("dta", DTYPES, ids=DT_IDS)
def test_concatenate_two_arrays_matches_numpy(ak, dta, dtb):
    for na, nb in ((0, 0), (0, 5), (1, 7), (7, 1), (1000, 3), (13, 1000)):
        x, y = data(dta, na, na), data(dtb, nb, nb + 1)
        exp = np.concatenate([x, y])
        got = ak.concatenate([ak.array(x), ak.array(y)])
        assert got.dtype == exp.dtype and got.size == exp.size
        np.testing.assert_array_equal(got.to_ndarray(), exp)


def test_concatenate_many_arrays_keeps_their_order(ak):
    rng = np.random.default_rng(60)
    parts = [rng.integers(-100, 100, int(k)) for k in rng.integers(0, 300, 25)]
    got = ak.concatenate([ak.array(p) for p in parts])
    np.testing.assert_array_equal(got.to_ndarray(), np.concatenate(parts))
    big = [np.arange(100003), np.arange(5.0), np.arange(50001)]
    got = ak.concatenate(ak.array(p) for p in big)
    np.testing.assert_array_equal(got.to_ndarray(), np.concatenate(big))
    one = ak.arange(10)
    again = ak.concatenate([one, one, one])
    assert again.tolist() == list(range(10)) * 3


def test_concatenate_errors(ak):
    with pytest.raises(ValueError, match="at least one"):
        ak.concatenate([])
    with pytest.raises(TypeError):
        ak.concatenate([ak.arange(3), np.arange(3)])
    from kodiak import client
    with pytest.raises(KeyError):
        client.generic_msg("concatenate", {"arrays": ["nope"], "rt": "int64"})
    with pytest.raises(ValueError):
        client.generic_msg("concatenate", {"arrays": [], "rt": "int64"})

# SPDX-License-Identifier: Apache-2.0
"""sort, argsort, coargsort, unique, value_counts, in1d, histogram and the set
functions (intersect1d, union1d, setdiff1d, setxor1d) against NumPy, on random
data of every dtype, at 1, 2 and 3 ranks."""
import numpy as np
import pytest

SIZES = [0, 1, 7, 1000, 100003]
DTYPES = [np.int64, np.uint64, np.float64, np.bool_]


def data(n, dtype, kind, seed=0):
    """Random values: 'dups' draws from a few values, 'distinct' from a wide
    range; ints include negatives, floats include NaN, -0.0 and infinities."""
    rng = np.random.default_rng(seed + n)
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(bool)
    if dtype == np.float64:
        if kind == "dups":
            x = rng.integers(-5, 5, n) * 0.5
        else:
            x = rng.standard_normal(n) * 1e6
        x[rng.random(n) < 0.05] = np.nan
        x[rng.random(n) < 0.01] = -0.0
        x[rng.random(n) < 0.01] = np.inf
        x[rng.random(n) < 0.01] = -np.inf
        return x
    if dtype == np.uint64:
        hi = 10 if kind == "dups" else 2**64 - 1
        return rng.integers(0, hi, n, dtype=np.uint64, endpoint=kind != "dups")
    lo, hi = (-10, 10) if kind == "dups" else (-2**63, 2**63 - 1)
    return rng.integers(lo, hi, n, dtype=np.int64)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64])
@pytest.mark.parametrize("low_same", [False, True])
def test_wide_keys_sorted_in_two_halves_keep_the_stable_order(ak, dtype, low_same):
    """Keys too wide to share a word with the index are sorted low half
    first, then high half: repeated wide keys, and keys equal in their low
    bits but not their high ones, must come out in NumPy's stable order."""
    rng = np.random.default_rng(5)
    n = 100003
    vals = rng.integers(-2**63, 2**63 - 1, 997, dtype=np.int64).view(dtype)
    if dtype == np.float64:
        vals = vals[np.isfinite(vals)]
    x = vals[rng.integers(0, vals.size, n)]
    if low_same:  # the same low 40 bits everywhere: only the high bits order them
        u = x.view(np.uint64)
        u[:] = (u & ~np.uint64(2**40 - 1)) | np.uint64(12345)
    k = ak.array(x)
    np.testing.assert_array_equal(ak.argsort(k).to_ndarray(), np.argsort(x, kind="stable"))
    np.testing.assert_array_equal(ak.sort(k).to_ndarray(), np.sort(x, kind="stable"))
    uniq, counts = ak.unique(k, return_counts=True)
    nu, nc = np.unique(x, return_counts=True)
    np.testing.assert_array_equal(uniq.to_ndarray(), nu)
    np.testing.assert_array_equal(counts.to_ndarray(), nc)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dups", "distinct"])
def test_argsort_is_numpys_stable_argsort(ak, n, dtype, kind):
    x = data(n, dtype, kind)
    perm = ak.argsort(ak.array(x))
    assert perm.dtype == np.int64
    np.testing.assert_array_equal(perm.to_ndarray(), np.argsort(x, kind="stable"))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dups", "distinct"])
def test_sort_is_numpys_sort(ak, n, dtype, kind):
    x = data(n, dtype, kind)
    got = ak.sort(ak.array(x)).to_ndarray()
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, np.sort(x))  # NaN last, as NumPy


def test_sort_puts_every_nan_last_whatever_its_sign_bit(ak):
    x = np.array([1.0, -np.nan, 2.0, np.nan, -np.inf, -1.0])
    got = ak.sort(ak.array(x)).to_ndarray()
    np.testing.assert_array_equal(got, np.sort(x))
    np.testing.assert_array_equal(ak.argsort(ak.array(x)).to_ndarray(),
                                  np.argsort(x, kind="stable"))


def test_negative_zero_and_zero_are_equal_keys_that_keep_their_order(ak):
    x = np.array([0.0, -0.0, 0.0, -0.0, -1.0])
    np.testing.assert_array_equal(ak.argsort(ak.array(x)).to_ndarray(),
                                  np.argsort(x, kind="stable"))


def test_argsort_of_a_constant_array_is_the_identity(ak):
    np.testing.assert_array_equal(ak.argsort(ak.full(1001, 7)).to_ndarray(), np.arange(1001))


def test_argsort_of_extreme_int64_values(ak):
    x = np.array([2**63 - 1, -2**63, 0, -1, 2**63 - 1, -2**63, 1], dtype=np.int64)
    np.testing.assert_array_equal(ak.argsort(ak.array(x)).to_ndarray(),
                                  np.argsort(x, kind="stable"))


@pytest.mark.parametrize("n", SIZES)
def test_coargsort_of_mixed_dtypes_is_lexsort(ak, n):
    rng = np.random.default_rng(n)
    k1 = rng.integers(-3, 3, n)
    k2 = (rng.integers(0, 4, n) * 0.25)
    k2[rng.random(n) < 0.1] = np.nan
    k3 = rng.integers(0, 2, n).astype(bool)
    k4 = rng.integers(0, 5, n, dtype=np.uint64)
    keys = [k1, k2, k3, k4]
    perm = ak.coargsort([ak.array(k) for k in keys]).to_ndarray()
    np.testing.assert_array_equal(perm, np.lexsort(keys[::-1]))


@pytest.mark.parametrize("n", [7, 1000, 100003])
def test_coargsort_of_keys_wider_than_one_word_together(ak, n):
    # two full-range int64 keys need two passes of the sort over 64-bit words
    k1 = data(n, np.int64, "distinct", 1) // 2**40  # few high values: ties on k1
    k2 = data(n, np.int64, "distinct", 2)
    k3 = data(n, np.float64, "distinct", 3)
    perm = ak.coargsort([ak.array(k1), ak.array(k2), ak.array(k3)]).to_ndarray()
    np.testing.assert_array_equal(perm, np.lexsort([k3, k2, k1]))


def test_coargsort_of_one_array_is_argsort(ak):
    x = data(1000, np.int64, "dups")
    np.testing.assert_array_equal(ak.coargsort([ak.array(x)]).to_ndarray(),
                                  np.argsort(x, kind="stable"))


def test_coargsort_refuses_arrays_of_different_sizes(ak):
    with pytest.raises(ValueError):
        ak.coargsort([ak.arange(5), ak.arange(6)])
    with pytest.raises(ValueError):
        ak.coargsort([])


def test_sorting_refuses_what_is_not_a_pdarray(ak):
    with pytest.raises(TypeError):
        ak.argsort([3, 1, 2])
    with pytest.raises(TypeError):
        ak.sort(np.arange(3))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dups", "distinct"])
def test_unique_with_counts_is_numpys(ak, n, dtype, kind):
    x = data(n, dtype, kind)
    u, c = ak.unique(ak.array(x), return_counts=True)
    eu, ec = np.unique(x, return_counts=True)  # NumPy 1.24: NaNs count as one
    assert u.dtype == x.dtype and c.dtype == np.int64
    np.testing.assert_array_equal(u.to_ndarray(), eu)
    np.testing.assert_array_equal(c.to_ndarray(), ec)
    np.testing.assert_array_equal(ak.unique(ak.array(x)).to_ndarray(), eu)


def test_value_counts_is_unique_with_counts(ak):
    x = data(1000, np.int64, "dups")
    v, c = ak.value_counts(ak.array(x))
    ev, ec = np.unique(x, return_counts=True)
    np.testing.assert_array_equal(v.to_ndarray(), ev)
    np.testing.assert_array_equal(c.to_ndarray(), ec)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_in1d_is_numpys(ak, n, dtype):
    a = data(n, dtype, "dups", 1)
    b = data(n // 3 + 1, dtype, "dups", 2)
    got = ak.in1d(ak.array(a), ak.array(b))
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got.to_ndarray(), np.in1d(a, b))
    np.testing.assert_array_equal(ak.in1d(ak.array(a), ak.array(b), invert=True).to_ndarray(),
                                  np.in1d(a, b, invert=True))


def test_in1d_never_finds_nan_and_finds_zero_for_negative_zero(ak):
    a = np.array([np.nan, -0.0, 1.5, 2.0])
    b = np.array([np.nan, 0.0, 2.0])
    np.testing.assert_array_equal(ak.in1d(ak.array(a), ak.array(b)).to_ndarray(),
                                  np.in1d(a, b))


@pytest.mark.parametrize("da,db", [(np.int64, np.float64), (np.bool_, np.int64),
                                   (np.uint64, np.int64), (np.float64, np.bool_),
                                   (np.uint64, np.bool_)])
def test_in1d_compares_after_numpys_type_promotion(ak, da, db):
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, 1000).astype(da)
    b = (rng.integers(0, 3, 10) + (0.5 if db == np.float64 else 0)).astype(db)
    b[:2] = [1, 2]
    np.testing.assert_array_equal(ak.in1d(ak.array(a), ak.array(b)).to_ndarray(),
                                  np.in1d(a, b))


def test_in1d_with_an_empty_test_set_is_all_false(ak):
    a = np.arange(10)
    np.testing.assert_array_equal(ak.in1d(ak.array(a), ak.array(np.array([], np.int64)))
                                  .to_ndarray(), np.zeros(10, bool))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64])
@pytest.mark.parametrize("bins", [1, 3, 10, 257])
def test_histogram_is_numpys(ak, n, dtype, bins):
    x = data(n, dtype, "dups" if bins != 257 else "distinct", bins)
    if dtype == np.float64:
        x = x[np.isfinite(x)]
    else:  # keep min +- 0.5 representable, or NumPy itself divides by zero
        x = x // dtype(2**20)
    h, e = ak.histogram(ak.array(x), bins=bins)
    eh, ee = np.histogram(x, bins=bins)
    assert h.dtype == np.int64 and e.dtype == np.float64
    np.testing.assert_array_equal(h.to_ndarray(), eh)
    np.testing.assert_array_equal(e.to_ndarray(), ee)


def test_histogram_values_on_bin_edges_land_where_numpy_puts_them(ak):
    # edges like 0.1 * k are not exact in binary: the index arithmetic alone
    # puts some of these values one bin off
    x = np.concatenate([np.linspace(0, 1, 11), np.linspace(0, 1, 101), [0.3, 0.7, 0.6]])
    for bins in (3, 7, 10, 100):
        h, e = ak.histogram(ak.array(x), bins=bins)
        eh, ee = np.histogram(x, bins=bins)
        np.testing.assert_array_equal(h.to_ndarray(), eh)
        np.testing.assert_array_equal(e.to_ndarray(), ee)


def test_histogram_of_a_constant_array_spans_half_a_unit_each_side(ak):
    for x in (np.full(5, 3), np.full(5, 2.5)):
        h, e = ak.histogram(ak.array(x), bins=4)
        eh, ee = np.histogram(x, bins=4)
        np.testing.assert_array_equal(h.to_ndarray(), eh)
        np.testing.assert_array_equal(e.to_ndarray(), ee)


def test_histogram_of_extreme_int64_values(ak):
    x = np.array([-2**63, 2**63 - 1, 0, 5, -7], dtype=np.int64)
    h, e = ak.histogram(ak.array(x), bins=5)
    eh, ee = np.histogram(x, bins=5)
    np.testing.assert_array_equal(h.to_ndarray(), eh)
    np.testing.assert_array_equal(e.to_ndarray(), ee)


def test_histogram_errors_are_numpys(ak):
    with pytest.raises(ValueError, match="not finite"):
        ak.histogram(ak.array([1.0, np.nan]), bins=3)
    with pytest.raises(ValueError, match="not finite"):
        ak.histogram(ak.array([1.0, np.inf]), bins=3)
    with pytest.raises(ValueError):
        ak.histogram(ak.arange(5), bins=0)
    with pytest.raises(TypeError):
        ak.histogram(ak.array([True, False]), bins=2)
    with pytest.raises(TypeError):
        ak.histogram(ak.arange(5), bins=[0, 1, 2])


def test_server_refuses_a_sort_of_an_unknown_array(ak):
    with pytest.raises(KeyError):
        ak.client.generic_msg("argsort", {"array": "no_such_array"})
    a = ak.arange(5)
    with pytest.raises(TypeError):  # bins missing
        ak.client.generic_msg("histogram", {"array": a.name})
    assert ak.sort(a).tolist() == [0, 1, 2, 3, 4]  # still serving


# ---- set functions ---------------------------------------------------------------------------

SETOPS = ["intersect1d", "union1d", "setdiff1d", "setxor1d"]


@pytest.mark.parametrize("op", SETOPS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 1000, 20011])
def test_set_functions_are_numpys(ak, op, dtype, n):
    x = data(n, dtype, "dups", seed=1)
    y = data(n // 2 + 3, dtype, "dups", seed=2)
    got = getattr(ak, op)(ak.array(x), ak.array(y))
    want = getattr(np, op)(x, y)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.to_ndarray(), want)


@pytest.mark.parametrize("op", ["intersect1d", "setdiff1d", "setxor1d"])
def test_set_functions_with_assume_unique_are_numpys(ak, op):
    rng = np.random.default_rng(7)
    x = rng.permutation(5000)[:3000].astype(np.int64)  # distinct, unsorted
    y = rng.permutation(5000)[:2000].astype(np.int64)
    got = getattr(ak, op)(ak.array(x), ak.array(y), assume_unique=True)
    want = getattr(np, op)(x, y, assume_unique=True)
    np.testing.assert_array_equal(got.to_ndarray(), want)  # setdiff1d keeps x's order


@pytest.mark.parametrize("op", SETOPS)
@pytest.mark.parametrize("da,db", [(np.int64, np.float64), (np.int64, np.uint64),
                                   (np.bool_, np.int64)])
def test_set_functions_promote_types_as_numpy(ak, op, da, db):
    x = np.array([3, 1, 2, 2, 0, 5], dtype=da) if da != np.bool_ else np.array([True, False])
    y = np.array([2, 5, 7, 1, 1], dtype=db)
    got = getattr(ak, op)(ak.array(x), ak.array(y))
    want = getattr(np, op)(x, y)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.to_ndarray(), want)


def test_set_functions_take_lists_and_refuse_garbage(ak):
    np.testing.assert_array_equal(ak.union1d([3, 1], ak.array([2, 3])).to_ndarray(), [1, 2, 3])
    np.testing.assert_array_equal(ak.intersect1d(ak.array([3, 1, 3]), [3, 4]).to_ndarray(), [3])
    with pytest.raises(TypeError):
        ak.setdiff1d(ak.array([1, 2]), {"a": 1})

# SPDX-License-Identifier: Apache-2.0
"""Descending argsort/coargsort, sort(algorithm=), pdarray.argsort(),
is_cosorted, searchsorted, search_intervals and mink/maxk/argmink/argmaxk
against references built with NumPy, on random data with ties, NaN and the
extremes of each dtype, at 1, 2 and 3 ranks."""
import numpy as np
import pytest

from test_sorting import data

SIZES = [0, 1, 7, 5003]
DTYPES = [np.int64, np.uint64, np.float64, np.bool_]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_descending_argsort_is_the_stable_ascending_order_reversed(ak, n, dtype):
    """Arkouda's argsort(ascending=False) flips the stable ascending order:
    equal values come last-first and NaN first."""
    x = data(n, dtype, "dups")
    got = ak.argsort(ak.array(x), ascending=False).to_ndarray()
    np.testing.assert_array_equal(got, np.argsort(x, kind="stable")[::-1])
    np.testing.assert_array_equal(ak.array(x).argsort(ascending=False).to_ndarray(), got)
    np.testing.assert_array_equal(ak.array(x).argsort().to_ndarray(),
                                  np.argsort(x, kind="stable"))


@pytest.mark.parametrize("n", SIZES)
def test_descending_coargsort_is_lexsort_reversed(ak, n):
    a = data(n, np.int64, "dups", seed=1)
    b = data(n, np.float64, "dups", seed=2)
    c = data(n, np.uint64, "dups", seed=3)
    keys = [ak.array(a), ak.array(b), ak.array(c)]
    ref = np.lexsort([c, b, a])
    np.testing.assert_array_equal(ak.coargsort(keys).to_ndarray(), ref)
    np.testing.assert_array_equal(ak.coargsort(keys, ascending=False).to_ndarray(), ref[::-1])


def test_sort_takes_arkoudas_algorithms_and_refuses_others(ak):
    x = data(1000, np.float64, "distinct")
    for alg in ("RadixSortLSD", "TwoArrayRadixSort", ak.SortingAlgorithm.RadixSortLSD):
        np.testing.assert_array_equal(ak.sort(ak.array(x), algorithm=alg).to_ndarray(),
                                      np.sort(x))
    with pytest.raises(ValueError, match="unknown sorting algorithm"):
        ak.sort(ak.array(x), algorithm="QuickSort")
    with pytest.raises(ValueError, match="unknown sorting algorithm"):
        ak.argsort(ak.array(x), algorithm="bogus")
    with pytest.raises(np.AxisError):
        ak.sort(ak.array(x), axis=1)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64])
def test_is_cosorted_agrees_with_lexsort(ak, dtype):
    rng = np.random.default_rng(4)
    a = np.sort(rng.integers(0, 5, 3000)).astype(dtype)
    b = rng.integers(0, 100, 3000).astype(dtype)
    order = np.lexsort([b, a])
    sa, sb = a[order], b[order]
    assert ak.is_cosorted([ak.array(sa), ak.array(sb)])
    assert ak.is_cosorted([ak.array(sa)])
    assert not ak.is_cosorted([ak.array(a), ak.array(b)])  # second key unsorted within runs
    sb2 = sb.copy()
    sb2[-1], sb2[-2] = sb[-2], sb[-1]
    expected = bool(np.all(np.diff(np.lexsort([sb2, sa])) > 0))
    assert bool(ak.is_cosorted([ak.array(sa), ak.array(sb2)])) == expected
    assert ak.is_cosorted([ak.array(np.zeros(0, dtype)), ak.array(np.zeros(0, dtype))])
    with pytest.raises(ValueError, match="same size"):
        ak.is_cosorted([ak.array(sa), ak.array(sb[:10])])
    with pytest.raises(TypeError):
        ak.is_cosorted([ak.array(sa), list(sb)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_is_numpys(ak, dtype, side):
    a = np.sort(data(4000, dtype, "dups", seed=5))
    v = data(3001, dtype, "dups", seed=6)
    got = ak.searchsorted(ak.array(a), ak.array(v), side=side)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.to_ndarray(), np.searchsorted(a, v, side=side))
    # distinct values and the dtype's extremes
    a2 = np.sort(data(2000, dtype, "distinct", seed=7))
    v2 = np.r_[data(999, dtype, "distinct", seed=8), a2[:5]]
    np.testing.assert_array_equal(ak.searchsorted(ak.array(a2), ak.array(v2), side=side)
                                  .to_ndarray(), np.searchsorted(a2, v2, side=side))


def test_searchsorted_scalars_empty_and_mixed_dtypes(ak):
    a = np.array([1, 2, 2, 3])
    assert ak.searchsorted(ak.array(a), 2) == np.searchsorted(a, 2)
    assert ak.searchsorted(ak.array(a), 2, side="right") == np.searchsorted(a, 2, side="right")
    assert ak.searchsorted(ak.array(a), 2.5) == np.searchsorted(a, 2.5)
    e = np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(ak.searchsorted(ak.array(e), ak.array([1, 2])).to_ndarray(),
                                  [0, 0])
    assert ak.searchsorted(ak.array(a), ak.array(e)).size == 0
    f = np.array([0.5, 1.0, 2.0, np.nan])
    v = np.array([1.0, np.nan, 3.0, -np.inf])
    for side in ("left", "right"):
        np.testing.assert_array_equal(
            ak.searchsorted(ak.array(f), ak.array(v), side=side).to_ndarray(),
            np.searchsorted(f, v, side=side))
    with pytest.raises(ValueError, match="side"):
        ak.searchsorted(ak.array(a), 1, side="middle")
    with pytest.raises(TypeError):
        ak.searchsorted(list(a), 1)


def test_search_intervals_finds_the_closed_interval_or_minus_one(ak):
    rng = np.random.default_rng(9)
    lo = np.sort(rng.choice(100_000, 300, replace=False)) * 2
    hi = lo + rng.integers(0, 2, 300)  # [lo, lo] or [lo, lo + 1]: never overlapping
    vals = rng.integers(-5, 200_010, 5000)
    vals[:300] = lo
    vals[300:600] = hi
    ref = np.full(vals.size, -1)
    for j, (l, h) in enumerate(zip(lo, hi)):
        ref[(vals >= l) & (vals <= h)] = j
    got = ak.search_intervals(ak.array(vals), (ak.array(lo), ak.array(hi)))
    np.testing.assert_array_equal(got.to_ndarray(), ref)
    empty = ak.array(np.zeros(0, dtype=np.int64))
    np.testing.assert_array_equal(ak.search_intervals(ak.array([1, 2]), (empty, empty))
                                  .to_ndarray(), [-1, -1])
    with pytest.raises(ValueError, match="same size"):
        ak.search_intervals(ak.array(vals), (ak.array(lo), ak.array(hi[:5])))
    with pytest.raises(ValueError, match="lower bound must be <="):
        ak.search_intervals(ak.array(vals), (ak.array(hi + 1), ak.array(lo)))
    with pytest.raises(ValueError, match="sorted"):
        ak.search_intervals(ak.array(vals), (ak.array(lo[::-1]), ak.array(hi[::-1])))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 5, 5003, 10_000])
def test_mink_maxk_argmink_argmaxk_are_the_ends_of_the_stable_sort(ak, dtype, k):
    x = data(5003, dtype, "dups", seed=10)
    pa = ak.array(x)
    order = np.argsort(x, kind="stable")
    kk = min(k, x.size)
    np.testing.assert_array_equal(ak.argmink(pa, k).to_ndarray(), order[:kk])
    np.testing.assert_array_equal(ak.argmaxk(pa, k).to_ndarray(), order[x.size - kk:])
    np.testing.assert_array_equal(ak.mink(pa, k).to_ndarray(), np.sort(x)[:kk])
    np.testing.assert_array_equal(ak.maxk(pa, k).to_ndarray(), np.sort(x)[x.size - kk:])


def test_mink_errors(ak):
    with pytest.raises(ValueError, match="k must be 1 or greater"):
        ak.mink(ak.arange(5), 0)
    with pytest.raises(ValueError, match="non-empty"):
        ak.maxk(ak.array(np.zeros(0)), 3)
    with pytest.raises(TypeError, match="k must be an integer"):
        ak.argmaxk(ak.arange(5), 2.0)
    with pytest.raises(TypeError):
        ak.argmink([1, 2, 3], 1)
    assert ak.arange(3).sum() == 3

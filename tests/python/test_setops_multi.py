# SPDX-License-Identifier: Apache-2.0
"""unique, in1d, intersect1d, union1d, setdiff1d and setxor1d on lists of
pdarrays (rows of several columns, Arkouda's multi-key data) against
references built with pandas and Python sets of row tuples, at 1, 2 and 3
ranks: rows come back lexicographically sorted (as NumPy sorts structured
rows); in unique two NaNs are one value (pandas' drop_duplicates), in in1d
a NaN matches nothing (numpy.in1d)."""
import numpy as np
import pandas as pd
import pytest

SIZES = [0, 7, 2000]


def cols(n, seed, float_col=False):
    """Three columns with many repeated rows: int64, uint64 and int64 (or
    float64 with NaN and -0.0)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 3, n)
    b = rng.integers(0, 4, n).astype(np.uint64)
    if float_col:
        c = rng.integers(-2, 2, n) * 0.5
        c[rng.random(n) < 0.1] = np.nan
        c[c == 0] = -0.0
    else:
        c = rng.integers(0, 3, n)
    return [a, b, c]


def unique_rows(cs):
    """Distinct rows (NaN == NaN), lexicographically sorted, NaN last."""
    df = pd.DataFrame({i: c for i, c in enumerate(cs)}).drop_duplicates()
    out = [df[i].to_numpy() for i in range(len(cs))]
    order = np.lexsort(out[::-1])
    return [o[order] for o in out]


def row_set(cs):
    """The rows without NaN, as a set of tuples (NaN rows match nothing)."""
    ok = np.ones(cs[0].size, bool)
    for c in cs:
        if c.dtype.kind == "f":
            ok &= ~np.isnan(c)
    return set(zip(*[c[ok].tolist() for c in cs]))


def rows_in(a, b):
    s = row_set(b)
    return np.array([t in s for t in zip(*[c.tolist() for c in a])], dtype=bool)


def common(a, b):
    """Each column pair cast to NumPy's common dtype."""
    out_a, out_b = [], []
    for x, y in zip(a, b):
        t = np.result_type(x, y)
        out_a.append(x.astype(t))
        out_b.append(y.astype(t))
    return out_a, out_b


def to_ak(ak, cs):
    return [ak.array(c) for c in cs]


def assert_rows(got, ref):
    assert isinstance(got, list) and len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype
        np.testing.assert_array_equal(g.to_ndarray(), r)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("float_col", [False, True])
def test_unique_rows(ak, n, float_col):
    a = cols(n, 1, float_col)
    assert_rows(ak.unique(to_ak(ak, a)), unique_rows(a))
    u, counts = ak.unique(to_ak(ak, a), return_counts=True)
    ref = unique_rows(a)
    assert_rows(u, ref)
    df = pd.DataFrame({i: c for i, c in enumerate(a)})
    ref_counts = df.groupby(list(range(3)), dropna=False).size()
    # pandas orders groups as the lexicographic sort does
    np.testing.assert_array_equal(counts.to_ndarray(), ref_counts.to_numpy())


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("float_col", [False, True])
def test_in1d_rows(ak, n, float_col):
    a = cols(n, 2, float_col)
    b = cols(max(n // 2, 1), 3, float_col)
    got = ak.in1d(to_ak(ak, a), to_ak(ak, b))
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got.to_ndarray(), rows_in(a, b))
    np.testing.assert_array_equal(ak.in1d(to_ak(ak, a), to_ak(ak, b), invert=True).to_ndarray(),
                                  ~rows_in(a, b))


def test_in1d_rows_promotes_each_column_pair(ak):
    a = [np.array([1, 2, 3]), np.array([1.5, 2.0, 7.0])]
    b = [np.array([2.0, 3.0]), np.array([2, 7], dtype=np.uint64)]
    np.testing.assert_array_equal(ak.in1d(to_ak(ak, a), to_ak(ak, b)).to_ndarray(),
                                  [False, True, True])
    big = [np.array([2**63 - 1, 5], dtype=np.int64)]
    other = [np.array([2**63 - 1], dtype=np.int64)]
    np.testing.assert_array_equal(ak.in1d(to_ak(ak, big), to_ak(ak, other)).to_ndarray(),
                                  [True, False])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("float_col", [False, True])
def test_set_functions_on_rows(ak, n, float_col):
    a = cols(n, 4, float_col)
    b = cols(max(n // 3, 1), 5, float_col)
    a, b = common(a, b)
    ua, ub = unique_rows(a), unique_rows(b)
    A, B = to_ak(ak, a), to_ak(ak, b)

    inter = [c[rows_in(ua, ub)] for c in ua]
    assert_rows(ak.intersect1d(A, B), inter)
    assert_rows(ak.union1d(A, B), unique_rows([np.r_[x, y] for x, y in zip(a, b)]))
    assert_rows(ak.setdiff1d(A, B), [c[~rows_in(ua, ub)] for c in ua])
    xor = [np.r_[x[~rows_in(ua, ub)], y[~rows_in(ub, ua)]] for x, y in zip(ua, ub)]
    order = np.lexsort(xor[::-1])
    assert_rows(ak.setxor1d(A, B), [c[order] for c in xor])


def test_assume_unique_gives_the_same_rows_for_unique_input(ak):
    a = unique_rows(cols(500, 6))
    b = unique_rows(cols(300, 7))
    A, B = to_ak(ak, a), to_ak(ak, b)
    for fn in (ak.intersect1d, ak.setdiff1d, ak.setxor1d):
        assert_rows(fn(A, B, assume_unique=True), [c.to_ndarray() for c in fn(A, B)])


def test_bad_row_sets_are_clear_errors(ak):
    a = [ak.arange(5), ak.arange(5)]
    with pytest.raises(ValueError, match="same number of columns"):
        ak.in1d(a, [ak.arange(5)])
    with pytest.raises(ValueError, match="same size"):
        ak.unique([ak.arange(5), ak.arange(4)])
    with pytest.raises(ValueError, match="same size"):
        ak.intersect1d(a, [ak.arange(3), ak.arange(2)])
    with pytest.raises(TypeError, match="list of columns"):
        ak.in1d(a, ak.arange(3))
    with pytest.raises(TypeError, match="pdarray"):
        ak.in1d([ak.arange(3), [1, 2, 3]], [ak.arange(3), ak.arange(3)])
    assert ak.arange(3).sum() == 3

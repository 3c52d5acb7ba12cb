# SPDX-License-Identifier: Apache-2.0
"""Results a user can trust: creation is exact for every dtype (a list of
big ints never passes through float64), an operator never writes into a
live operand, and misuse raises as NumPy would. NumPy is the reference."""
import warnings

import numpy as np
import pytest

BIG_UINT = [2**64 - 1, 1, 2**63 - 1, 2**63, 2**53 + 1, 0]
BIG_INT = [-2**63, 2**63 - 1, 2**53 + 1, -(2**53 + 1), 0, -1]


def _numpy(fn):
    """fn() under NumPy with its warnings silenced (1.24 warns where it wraps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.mark.parametrize("values,dtype", [
    ([2**64 - 1, 1], np.uint64),
    ([2**64 - 1, 2**63 - 1], np.uint64),
    (BIG_UINT, np.uint64),
    (tuple(BIG_UINT), np.uint64),
    (BIG_INT, np.int64),
    (tuple(BIG_INT), np.int64),
    ([2**53 + 1, 3], np.float64),
    ([0, 2, 0, 1], np.bool_),
    ([1.9, -1.9, 2**62 + 0.0], np.int64),
    ([True, False, True], np.uint64),
])
def test_array_of_a_list_is_exact_for_its_dtype(ak, values, dtype):
    want = np.array(values, dtype=dtype)
    got = ak.array(values, dtype=dtype).to_ndarray()
    assert got.dtype == want.dtype
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("values", [BIG_UINT, BIG_INT, [2**63 + 5], [1.5, 2, 3]])
def test_array_without_dtype_takes_numpys(ak, values):
    want = np.array(values)
    got = ak.array(values).to_ndarray()
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64, np.bool_])
def test_array_of_a_numpy_array_cast_as_numpy_casts(ak, dtype):
    src = np.array([2**64 - 1, 2**63, 12345678901234567891, 7], dtype=np.uint64)
    want = _numpy(lambda: src.astype(dtype))
    got = ak.array(src, dtype=dtype).to_ndarray()
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("value,dtype", [
    (2**64 - 1, np.uint64), (2**63, np.uint64), (2**63 - 1, np.int64), (-2**63, np.int64),
    (2**53 + 1, np.int64), (2**53 + 1, np.float64), (2**64, np.float64), (1.9, np.int64),
    (-1.9, np.int64), (np.uint64(2**64 - 1), np.uint64), (np.float64(0.1), np.float64),
    (3, np.bool_), (0.0, np.bool_), (True, np.float64),
])
def test_full_is_exact_as_numpy(ak, value, dtype):
    want = _numpy(lambda: np.full(3, value, dtype=dtype))
    got = ak.full(3, value, dtype=dtype).to_ndarray()
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


@pytest.mark.parametrize("value", [2**64 - 1, 2**63 + 7, -2**63, 2**63 - 1, 0.5])
def test_full_without_dtype_takes_the_scalars(ak, value):
    want = np.full(4, value)
    got = ak.full(4, value).to_ndarray()
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


@pytest.mark.parametrize("dtype,value", [(np.uint64, 2**64 - 1), (np.int64, -2**63 + 1),
                                         (np.int64, 2**53 + 1), (np.float64, 2**53 + 1),
                                         (np.int64, 7.9), (np.bool_, 5)])
def test_fill_sets_every_element_as_ndarray_fill(ak, dtype, value):
    want = np.zeros(1000, dtype=dtype)
    want.fill(value)
    a = ak.zeros(1000, dtype=dtype)
    a.fill(value)
    got = a.to_ndarray()
    assert got.dtype == want.dtype and got.tolist() == want.tolist()


# ---- no optimisation changes a result ---------------------------------------------


@pytest.mark.parametrize("n", [1000, 1 << 15, 1 << 18])  # 8 KiB .. 2 MiB of float64
@pytest.mark.parametrize("op", ["__add__", "__sub__", "__mul__", "__truediv__"])
def test_explicit_dunder_call_leaves_its_operands_alone(ak, n, op):
    na = np.arange(n, dtype=np.float64)
    nb = np.full(n, 3.0)
    a, b = ak.array(na), ak.array(nb)
    c = getattr(a, op)(b)
    np.testing.assert_array_equal(a.to_ndarray(), na)
    np.testing.assert_array_equal(b.to_ndarray(), nb)
    np.testing.assert_array_equal(c.to_ndarray(), getattr(na, op)(nb))
    d = b.__radd__(a)
    np.testing.assert_array_equal(b.to_ndarray(), nb)
    np.testing.assert_array_equal(d.to_ndarray(), na + nb)


@pytest.mark.parametrize("n", [1000, 1 << 18])
def test_triad_and_its_product_both_right(ak, n):
    """STREAM's triad is fused on the server; the product it fused is still
    right when used afterwards, also after its operand changed."""
    nb, nc = np.arange(n, dtype=np.float64), np.linspace(0, 1, n)
    b, c = ak.array(nb), ak.array(nc)
    p = c * 3.0
    a = b + p
    a2 = p.__rsub__(b)  # b - p, through the reflected method
    np.testing.assert_array_equal(a.to_ndarray(), nb + nc * 3.0)
    np.testing.assert_array_equal(a2.to_ndarray(), nb - nc * 3.0)
    c += 1.0
    np.testing.assert_array_equal(p.to_ndarray(), nc * 3.0)
    np.testing.assert_array_equal((b + c * 3.0).to_ndarray(), nb + (nc + 1.0) * 3.0)


def test_chained_temporaries_are_right(ak):
    n = 1 << 18
    x = np.linspace(-1, 1, n)
    a = ak.array(x)
    r = (a * 2.0 + a) * a - a / 3.0
    np.testing.assert_array_equal(r.to_ndarray(), (x * 2.0 + x) * x - x / 3.0)
    np.testing.assert_array_equal(a.to_ndarray(), x)


# ---- misuse raises ------------------------------------------------------------------


def test_unary_plus_on_bool_raises(ak):
    a = ak.array([True, False])
    with pytest.raises(TypeError, match="bool"):
        +a  # noqa: B018
    np.testing.assert_array_equal((+ak.array([1, -2])).to_ndarray(), [1, -2])


def test_groupby_refuses_a_second_array_as_a_flag(ak):
    keys, other = ak.array([1, 2, 1]), ak.array([5, 6, 7])
    with pytest.raises(TypeError, match=r"list: ak.GroupBy\(\[a, b\]\)"):
        ak.GroupBy(keys, other)
    with pytest.raises(TypeError, match="dropna"):
        ak.GroupBy(keys, dropna="yes")
    g = ak.GroupBy([keys, other])
    assert g.ngroups == 3


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.uint64, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 1000, 100003])
def test_flatnonzero_and_nonzero_match_numpy(ak, dtype, n):
    rng = np.random.default_rng(n)
    x = (rng.integers(0, 3, n) * (rng.random(n) < 0.3)).astype(dtype)
    if dtype == np.float64 and n > 3:
        x[:3] = [np.nan, -0.0, 0.5]
    a = ak.array(x)
    got = ak.flatnonzero(a).to_ndarray()
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.flatnonzero(x))
    (nz,) = a.nonzero()
    np.testing.assert_array_equal(nz.to_ndarray(), np.nonzero(x)[0])

# SPDX-License-Identifier: Apache-2.0
"""pdarray[...] and pdarray[...] = ..., against NumPy on random data: one
element, slices (negative steps too), boolean masks, integer index arrays
(gather and scatter), casting of assigned values, and NumPy's errors (after
which the array must be unchanged)."""
import warnings

import numpy as np
import pytest

SIZES = [0, 1, 7, 1000, 100003]
DTYPES = [np.int64, np.uint64, np.float64, np.bool_]
IDS = {np.int64: "int64", np.uint64: "uint64", np.float64: "float64", np.bool_: "bool"}


def random_values(n, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(np.bool_)
    if dtype == np.float64:
        return rng.standard_normal(n) * 1e6
    if dtype == np.uint64:
        return rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    return rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64, endpoint=True)


def random_slice(rng, n):
    def bound():
        return None if rng.random() < 0.2 else int(rng.integers(-n - 3, n + 4))
    step = None if rng.random() < 0.2 else int(rng.choice([-1, 1]) * rng.integers(1, n + 3))
    return slice(bound(), bound(), step)


def assert_same(got, want):
    """got (pdarray or NumPy scalar) equals NumPy's want, dtype included."""
    if hasattr(got, "to_ndarray"):
        got = got.to_ndarray()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def numpy_assign(nd, key, value):
    """NumPy's result of nd[key] = value (casting warnings silenced)."""
    ref = nd.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref[key] = value
    return ref


dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: IDS[d])
sizes = pytest.mark.parametrize("n", SIZES)


# ---- one element ---------------------------------------------------------------------------

@sizes
@dtypes
def test_integer_index_gives_a_numpy_scalar_of_the_arrays_dtype(ak, n, dtype):
    nd = random_values(n, dtype, 1)
    a = ak.array(nd)
    for i in sorted({0, 1, n // 2, n - 1, -1, -n, -(n // 3) - 1} & set(range(-n, n))):
        got = a[i]
        assert type(got) is type(nd[i]) and got == nd[i], i
    if n:
        assert a[np.int64(n - 1)] == nd[-1] and a[np.uint64(0)] == nd[0]


@pytest.mark.parametrize("n,i", [(10, 10), (10, -11), (0, 0), (0, -1), (7, 2**40)])
def test_integer_index_out_of_range_is_numpys_index_error(ak, n, i):
    a = ak.arange(n)
    with pytest.raises(IndexError, match=f"^index {i} is out of bounds for axis 0 with "
                                         f"size {n}$"):
        a[i]


def test_keys_that_are_not_indices_are_index_errors_as_in_numpy(ak):
    a = ak.arange(5)
    for key in ("x", 1.0, 2**64, None, True, (1, 2)):
        with pytest.raises(IndexError):
            a[key]
    with pytest.raises(IndexError, match="integer \\(or boolean\\) type"):
        a[np.array([1.0])]
    with pytest.raises(IndexError, match="integer \\(or boolean\\) type"):
        a[ak.array([1.0, 2.0])]


# ---- slices ----------------------------------------------------------------------------------

@sizes
@dtypes
def test_random_slices_match_numpy(ak, n, dtype):
    nd = random_values(n, dtype, 2)
    a = ak.array(nd)
    rng = np.random.default_rng(n + 17)
    for _ in range(12 if n > 1000 else 30):
        s = random_slice(rng, n)
        assert_same(a[s], nd[s])


@pytest.mark.parametrize("key", [slice(None), slice(None, None, -1), slice(3, 3),
                                 slice(8, 2), slice(2, 8, -1), slice(-1, -200, -7),
                                 slice(None, None, 10**18), slice(None, None, -10**18),
                                 slice(np.int64(2), np.uint64(90), np.int64(3)), Ellipsis, ()])
def test_slice_edges_match_numpy(ak, key):
    nd = np.arange(100) * 10
    assert_same(ak.array(nd)[key], nd[key])


def test_slices_of_an_empty_array_are_empty(ak):
    a = ak.zeros(0, ak.uint64)
    for s in (slice(None), slice(None, None, -1), slice(-5, 5, 2)):
        assert_same(a[s], np.zeros(0, np.uint64)[s])


def test_bad_slices_are_numpys_errors(ak):
    a = ak.arange(10)
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        a[::0]
    with pytest.raises(TypeError):
        a[1.5:3]


def test_repr_of_a_large_array_shows_numpys_summary(ak):
    nd = random_values(5000, np.float64, 3)
    assert repr(ak.array(nd)) == repr(nd)
    nd = random_values(2001, np.int64, 3)
    assert str(ak.array(nd)) == str(nd)


# ---- boolean masks ---------------------------------------------------------------------------

@sizes
@dtypes
def test_mask_selects_the_true_elements_in_order(ak, n, dtype):
    nd = random_values(n, dtype, 4)
    a = ak.array(nd)
    rng = np.random.default_rng(n)
    for m in (rng.random(n) < 0.3, np.ones(n, bool), np.zeros(n, bool), rng.random(n) < 0.99):
        assert_same(a[ak.array(m)], nd[m])


def test_mask_from_a_list_or_ndarray_selects_like_numpy(ak):
    nd = np.arange(5) * 2.5
    a = ak.array(nd)
    assert_same(a[[True, False, True, True, False]], nd[[True, False, True, True, False]])
    m = np.array([False, True, False, False, True])
    assert_same(a[m], nd[m])


def test_mask_of_another_size_is_numpys_index_error(ak):
    a = ak.arange(10)
    with pytest.raises(IndexError, match="dimension is 10 but corresponding boolean "
                                         "dimension is 3"):
        a[ak.array([True, False, True])]


# ---- integer index arrays (gather) ----------------------------------------------------------

@sizes
@dtypes
@pytest.mark.parametrize("idx_dtype", [np.int64, np.uint64], ids=["int64", "uint64"])
def test_gather_with_random_negative_and_repeated_indices(ak, n, dtype, idx_dtype):
    nd = random_values(n, dtype, 5)
    a = ak.array(nd)
    rng = np.random.default_rng(n + 1)
    for m in ((0, 1, 5, 2 * n + 3) if n else (0,)):
        idx = rng.integers(0 if idx_dtype == np.uint64 else -n, max(n, 1), m)
        if n == 0:
            idx = idx[:0]
        idx = idx.astype(idx_dtype)
        assert_same(a[ak.array(idx)], nd[idx])


def test_gather_keeps_index_order_with_every_index_repeated(ak):
    nd = np.arange(1000, dtype=np.float64) ** 2
    idx = np.repeat(np.arange(999, -1, -1), 3)
    assert_same(ak.array(nd)[ak.array(idx)], nd[idx])


def test_uint64_index_is_read_as_int64_like_numpy(ak):
    nd = np.arange(10) + 100
    a = ak.array(nd)
    idx = np.array([2**64 - 1, 3, 2**64 - 10], dtype=np.uint64)
    assert_same(a[ak.array(idx)], nd[idx])
    with pytest.raises(IndexError, match="index -9223372036854775808 is out of bounds"):
        a[ak.array(np.array([2**63], dtype=np.uint64))]


@pytest.mark.parametrize("bad", [10, -11, 2**62, -2**63])
def test_gather_out_of_range_is_numpys_index_error(ak, bad):
    a = ak.arange(10)
    idx = np.array([0, 9, bad, 3])
    with pytest.raises(IndexError, match=f"^index {bad} is out of bounds for axis 0 with "
                                         f"size 10$"):
        a[ak.array(idx)]


def test_gather_from_an_empty_array(ak):
    a = ak.zeros(0, ak.int64)
    assert_same(a[[]], np.zeros(0, np.int64)[[]])
    assert_same(a[ak.array(np.zeros(0, np.int64))], np.zeros(0, np.int64))
    assert_same(a[ak.array(np.zeros(0, np.bool_))], np.zeros(0, np.int64))
    with pytest.raises(IndexError, match="index 0 is out of bounds for axis 0 with size 0"):
        a[ak.array([0])]


def test_empty_index_of_any_kind_gives_an_empty_array_of_the_dtype(ak):
    nd = np.arange(7, dtype=np.uint64)
    a = ak.array(nd)
    assert_same(a[[]], nd[[]])
    assert_same(a[np.zeros(0, np.int64)], nd[np.zeros(0, np.int64)])
    assert_same(a[ak.array(np.zeros(0, np.uint64))], nd[np.zeros(0, np.uint64)])
    with pytest.raises(IndexError):
        a[np.zeros(0, np.float64)]


def test_list_and_ndarray_indices_gather_like_numpy(ak):
    nd = np.arange(20) * 3
    a = ak.array(nd)
    assert_same(a[[3, -1, 3, 0]], nd[[3, -1, 3, 0]])
    assert_same(a[np.array([5, 2], dtype=np.int32)], nd[np.array([5, 2], dtype=np.int32)])
    assert_same(a[range(2, 9, 3)], nd[range(2, 9, 3)])


# ---- assignment: one element ------------------------------------------------------------------

@dtypes
def test_setting_one_element_casts_like_numpy(ak, dtype):
    nd = random_values(7, dtype, 6)
    a = ak.array(nd)
    for i, v in ((0, 5), (-1, 2.7), (3, True), (6, np.float64(-1.0)), (2, np.uint64(9))):
        a[i] = v
        nd = numpy_assign(nd, i, v)
        assert_same(a, nd)


def test_setting_one_element_out_of_range_changes_nothing(ak):
    nd = np.arange(10)
    a = ak.array(nd)
    for i in (10, -11):
        with pytest.raises(IndexError, match=f"index {i} is out of bounds"):
            a[i] = 5
    assert_same(a, nd)


def test_setting_one_element_from_a_one_element_array(ak):
    a = ak.arange(5)
    a[2] = ak.array([7.9])
    assert a.tolist() == [0, 1, 7, 3, 4]
    with pytest.raises(ValueError, match="setting an array element with a sequence"):
        a[2] = ak.array([1, 2])
    assert a.tolist() == [0, 1, 7, 3, 4]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**63, 1e30, np.float64(1e30),
                                   np.float64("nan"), -1, 2**64 - 1, np.array(np.nan)],
                         ids=lambda v: repr(v))
@pytest.mark.parametrize("dtype", [np.int64, np.uint64], ids=["int64", "uint64"])
def test_hard_scalars_into_int_arrays_convert_or_fail_as_numpy_does(ak, value, dtype):
    nd = np.arange(5, dtype=dtype)
    for key in (1, slice(1, 3), [True, False, True, False, False], [0, 4]):
        a = ak.array(nd)
        try:
            want = numpy_assign(nd, key, value)
        except (ValueError, OverflowError) as e:
            with pytest.raises(type(e)):
                a[key] = value
            assert_same(a, nd)
        else:
            a[key] = value
            assert_same(a, want)


# ---- assignment: slices --------------------------------------------------------------------------

@sizes
@dtypes
def test_assigning_to_random_slices_matches_numpy(ak, n, dtype):
    nd = random_values(n, dtype, 7)
    a = ak.array(nd)
    rng = np.random.default_rng(n + 5)
    for k in range(8 if n > 1000 else 20):
        s = random_slice(rng, n)
        m = len(range(*s.indices(n)))
        if k % 2:
            vals = random_values(m, dtype, k)
            a[s] = ak.array(vals)
        else:
            vals = random_values(1, dtype, k)[0]
            a[s] = vals
        nd = numpy_assign(nd, s, vals)
        assert_same(a, nd)


@pytest.mark.parametrize("src", DTYPES, ids=lambda d: IDS[d])
@dtypes
def test_assigned_arrays_are_cast_like_ndarray_astype(ak, src, dtype):
    vals = random_values(1000, src, 8)
    if src == np.float64:
        vals[:8] = [np.nan, np.inf, -np.inf, 1e30, -1e30, -1.0, -2.5, 2.0**63]
    nd = random_values(3000, dtype, 9)
    a = ak.array(nd)
    a[1000:2000] = ak.array(vals)
    a[::-3] = vals  # a NumPy array on the right
    nd = numpy_assign(numpy_assign(nd, slice(1000, 2000), vals), slice(None, None, -3), vals)
    assert_same(a, nd)


def test_assigning_a_list_converts_each_item_like_numpy(ak):
    nd = np.zeros(6, np.uint64)
    a = ak.array(nd)
    a[1:4] = [-1, 2.7, True]
    assert_same(a, numpy_assign(nd, slice(1, 4), [-1, 2.7, True]))
    with pytest.raises(ValueError):
        a[1:3] = [np.nan, 1.0]


def test_slice_assignment_of_another_length_is_numpys_value_error(ak):
    nd = np.arange(10)
    a = ak.array(nd)
    with pytest.raises(ValueError, match=r"could not broadcast input array from shape "
                                         r"\(3,\) into shape \(2,\)"):
        a[1:3] = ak.array([1, 2, 3])
    with pytest.raises(ValueError, match=r"from shape \(2,\) into shape \(0,\)"):
        a[5:5] = ak.array([1, 2])
    assert_same(a, nd)


def test_a_one_element_array_is_broadcast_to_the_slice(ak):
    nd = np.arange(10, dtype=np.float64)
    a = ak.array(nd)
    a[::4] = ak.array([-7])
    a[3:3] = ak.array([1])
    assert_same(a, numpy_assign(nd, slice(None, None, 4), np.array([-7])))


def test_assigning_an_array_to_a_reversed_slice_of_itself(ak):
    nd = random_values(1001, np.int64, 10)
    a = ak.array(nd)
    a[::-1] = a
    a[1:] = a[:-1]
    nd = nd[::-1].copy()
    nd[1:] = nd[:-1].copy()
    assert_same(a, nd)


# ---- assignment: masks ---------------------------------------------------------------------------

@sizes
@dtypes
def test_assigning_through_masks_matches_numpy(ak, n, dtype):
    nd = random_values(n, dtype, 11)
    a = ak.array(nd)
    rng = np.random.default_rng(n + 9)
    for k, m in enumerate((rng.random(n) < 0.5, np.ones(n, bool), np.zeros(n, bool),
                           rng.random(n) < 0.1)):
        if k % 2:
            vals = random_values(1, dtype, k)[0]
            a[ak.array(m)] = vals
        else:
            vals = random_values(int(m.sum()), dtype, k)
            a[ak.array(m)] = ak.array(vals)
        nd = numpy_assign(nd, m, vals)
        assert_same(a, nd)


def test_mask_assignment_with_the_wrong_count_is_numpys_value_error(ak):
    nd = np.arange(10)
    a = ak.array(nd)
    m = np.zeros(10, bool)
    m[:3] = True
    with pytest.raises(ValueError, match="cannot assign 2 input values to the 3 output "
                                         "values where the mask is true"):
        a[ak.array(m)] = ak.array([1, 2])
    with pytest.raises(IndexError, match="dimension is 10 but corresponding boolean "
                                         "dimension is 3"):
        a[ak.array(m[:3])] = 1
    assert_same(a, nd)
    a[ak.array(m)] = ak.array([2.5])  # one value is broadcast, cast to int
    assert_same(a, numpy_assign(nd, m, np.array([2.5])))


def test_a_bool_array_masked_by_itself(ak):
    nd = random_values(1000, np.bool_, 12)
    a = ak.array(nd)
    vals = np.arange(nd.sum()) % 2 == 1  # False, True, False, ...
    a[a] = ak.array(vals)
    assert_same(a, numpy_assign(nd, nd.copy(), vals))
    a[a] = False
    assert not a.to_ndarray().any()


# ---- assignment: integer index arrays (scatter) ---------------------------------------------------

@sizes
@dtypes
def test_scatter_with_random_negative_indices_matches_numpy(ak, n, dtype):
    nd = random_values(n, dtype, 13)
    a = ak.array(nd)
    rng = np.random.default_rng(n + 3)
    for k in range(4):
        idx = rng.permutation(n)[: n // 2 + 1][:n] - (n if k % 2 else 0)  # distinct
        if k < 2:
            vals = random_values(len(idx), dtype, k)
            a[ak.array(idx)] = ak.array(vals)
        else:
            vals = random_values(1, dtype, k)[0]
            a[ak.array(idx)] = vals
        nd = numpy_assign(nd, idx, vals)
        assert_same(a, nd)


@pytest.mark.parametrize("n", [7, 1000, 100003])
def test_scatter_with_repeated_indices_keeps_the_last_value_like_numpy(ak, n):
    rng = np.random.default_rng(n)
    idx = rng.integers(-n, n, 3 * n)  # every index many times, in random order
    vals = np.arange(3 * n, dtype=np.float64)
    nd = np.zeros(n)
    a = ak.array(nd)
    a[ak.array(idx)] = ak.array(vals)
    assert_same(a, numpy_assign(nd, idx, vals))


def test_scatter_of_other_dtypes_casts_like_numpy(ak):
    nd = np.zeros(50, np.int64)
    a = ak.array(nd)
    idx = np.arange(0, 50, 5)
    vals = np.array([1.9, -1.9, np.nan, 1e300, -0.5, 3, 4, 5, 2.0**62, 7.5])
    a[ak.array(idx)] = ak.array(vals)
    a[[1, -1]] = np.array([2**64 - 1, 2**63], dtype=np.uint64)
    nd = numpy_assign(numpy_assign(nd, idx, vals), [1, -1],
                      np.array([2**64 - 1, 2**63], dtype=np.uint64))
    assert_same(a, nd)


@pytest.mark.parametrize("bad", [1000, -1001])
def test_scatter_out_of_range_changes_nothing(ak, bad):
    nd = random_values(1000, np.float64, 14)
    a = ak.array(nd)
    idx = np.arange(0, 1000, 3)
    idx[-1] = bad  # every other index is fine and would be written
    with pytest.raises(IndexError, match=f"index {bad} is out of bounds for axis 0 with "
                                         f"size 1000"):
        a[ak.array(idx)] = ak.array(np.zeros(len(idx)))
    with pytest.raises(IndexError):
        a[ak.array(idx)] = 0.0
    assert_same(a, nd)


def test_scatter_with_the_wrong_number_of_values_is_numpys_value_error(ak):
    nd = np.arange(10)
    a = ak.array(nd)
    with pytest.raises(ValueError, match=r"shape mismatch: value array of shape \(3,\) could "
                                         r"not be broadcast to indexing result of shape "
                                         r"\(2,\)"):
        a[ak.array([0, 20])] = ak.array([1, 2, 3])
    assert_same(a, nd)
    a[[]] = ak.array([5])
    a[ak.array([1, 3])] = ak.array([9])
    assert_same(a, numpy_assign(nd, [1, 3], 9))


def test_scatter_with_the_array_as_its_own_index_and_values(ak):
    nd = np.random.default_rng(15).permutation(1000)  # every index once
    a = ak.array(nd)
    a[a] = a  # NumPy reads index and values before writing
    assert_same(a, numpy_assign(nd, nd.copy(), nd.copy()))
    b = ak.array(nd)
    b[b] = ak.arange(1000)
    assert_same(b, numpy_assign(nd, nd.copy(), np.arange(1000)))


def test_scatter_into_an_empty_array(ak):
    a = ak.zeros(0, ak.bool)
    a[[]] = True
    assert a.size == 0
    with pytest.raises(IndexError, match="index 0 is out of bounds for axis 0 with size 0"):
        a[[0]] = True


def test_server_refuses_requests_the_client_would_never_send(ak):
    from kodiak import client
    a = ak.arange(10)
    f = ak.zeros(3)
    for args, exc in (({"start": -5, "stop": 20, "step": 1}, IndexError),
                      ({"start": 0, "stop": 2**62, "step": 2**61}, IndexError),
                      ({"start": 9, "stop": -2**63, "step": -2**63}, IndexError),
                      ({"start": 0, "stop": 5, "step": 0}, ValueError)):
        with pytest.raises(exc):
            client.generic_msg("index_slice", {"array": a.name, **args})
    with pytest.raises(IndexError, match="integer \\(or boolean\\) type"):
        client.generic_msg("index_gather", {"array": a.name, "index": f.name})
    with pytest.raises(TypeError, match="must be a bool array"):
        client.generic_msg("setitem_mask", {"array": a.name, "mask": a.name,
                                            "value": {"dtype": "int64", "value": "1"}})
    with pytest.raises(KeyError):
        client.generic_msg("setitem_scatter", {"array": a.name, "index": "id_999999",
                                               "value": {"dtype": "int64", "value": "1"}})
    assert a.tolist() == list(range(10))

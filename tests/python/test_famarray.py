# SPDX-License-Identifier: Apache-2.0
"""FAM arrays (ak.fam_region, FamArray) against NumPy, with kodiakd at 1, 2
and 3 ranks and 1 or 2 memory servers.

Arrays of ~100k int64 elements span several 256 KiB stripes (32768 int64),
so slices and index lists cross stripe and server boundaries."""
import itertools
import types

import numpy as np
import pytest

import kodiak
from conftest import owned
from fam_fixtures import FamCluster, connect, start_kodiakd

N = 100_003  # > 3 stripes of int64, not divisible by 2 or 3
DTYPES = [np.int64, np.uint64, np.float64, np.bool_]
_regions = itertools.count()


@pytest.fixture(scope="session", params=[(1, 2), (2, 1), (3, 2)],
                ids=lambda p: f"{p[0]}rank-{p[1]}famd")
def fam_cluster(request):
    yield from owned(FamCluster(*request.param))


@pytest.fixture
def fam(fam_cluster):
    """The kodiak module connected to the cluster, and a fresh region."""
    ak = connect(kodiak, fam_cluster.server)
    reg = ak.fam_region(f"t{next(_regions)}")
    yield types.SimpleNamespace(ak=ak, region=reg, cluster=fam_cluster)
    assert fam_cluster.server.alive(), f"kodiakd died: {fam_cluster.server.output()}"
    reg.destroy()


def random_values(rng, dtype, n):
    if dtype == np.bool_:
        return rng.integers(0, 2, n).astype(np.bool_)
    if dtype == np.float64:
        return rng.standard_normal(n) * 1e6
    if dtype == np.uint64:
        return rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return rng.integers(-2**62, 2**62, n)


def filled(fam, name, nd):
    """A FamArray holding nd (written through a pdarray)."""
    return fam.ak.fam_array(fam.ak.array(nd), fam.region, name)


# ---- creating, finding, deleting ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_create_gives_a_zero_filled_array_with_its_metadata(fam, dtype):
    fa = fam.region.create("z", dtype, N)
    assert (fa.name, fa.dtype, fa.size, len(fa)) == ("z", np.dtype(dtype), N, N)
    assert fa.region.name == fam.region.name
    np.testing.assert_array_equal(fa.to_pdarray().to_ndarray(), np.zeros(N, dtype))


def test_repr_says_where_the_array_lives(fam):
    fa = fam.region.create("aName", fam.ak.int64, 1000)
    assert repr(fa) == f"FamArray('aName', region='{fam.region.name}', dtype=int64, size=1000)"


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_element_arrays(fam, n):
    fa = fam.region.create("small", fam.ak.float64, n)
    assert fa.to_pdarray().size == n
    fa[0:n] = fam.ak.array(np.full(n, 2.5))
    np.testing.assert_array_equal(fa.to_ndarray(), np.full(n, 2.5))
    np.testing.assert_array_equal(fa[fam.ak.array(np.zeros(n, np.int64))].to_ndarray(),
                                  np.full(n, 2.5))


def test_lookup_finds_the_same_array(fam):
    nd = np.arange(N) * 3
    filled(fam, "a", nd)
    fb = fam.region.lookup("a")
    assert (fb.dtype, fb.size) == (np.dtype(np.int64), N)
    np.testing.assert_array_equal(fb.to_ndarray(), nd)


def test_region_list_names_its_arrays_sorted(fam):
    for name in ("b", "a", "c"):
        fam.region.create(name, fam.ak.int64, 10)
    assert fam.region.list() == ["a", "b", "c"]


def test_fam_region_looks_up_an_existing_region(fam):
    fam.region.create("x", fam.ak.int64, 5)
    again = fam.ak.fam_region(fam.region.name, create=False)
    assert again == fam.region and again.lookup("x").size == 5


def test_delete_removes_the_array_and_frees_the_name(fam):
    fa = fam.region.create("d", fam.ak.int64, 10)
    fa.delete()
    with pytest.raises(KeyError):
        fam.region.lookup("d")
    fb = fam.region.create("d", fam.ak.float64, 3)
    assert fb.dtype == np.float64 and fb.to_ndarray().tolist() == [0, 0, 0]


def test_region_destroy_removes_its_arrays(fam):
    reg = fam.ak.fam_region(fam.region.name + "_gone")
    reg.create("x", fam.ak.int64, 10)
    reg.destroy()
    with pytest.raises(KeyError):
        fam.ak.fam_region(reg.name, create=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fam_array_copies_a_pdarray_and_to_pdarray_brings_it_back(fam, dtype):
    nd = random_values(np.random.default_rng(1), dtype, N)
    fa = filled(fam, "copy", nd)
    assert fa.dtype == np.dtype(dtype) and fa.size == N
    np.testing.assert_array_equal(fa.to_pdarray().to_ndarray(), nd)


# ---- gather and scatter ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_with_random_and_repeated_indices_matches_numpy(fam, dtype):
    rng = np.random.default_rng(2)
    nd = random_values(rng, dtype, N)
    fa = filled(fam, "g", nd)
    idx = rng.integers(0, N, 30_011)
    idx[::7] = idx[0]  # repeats
    got = fa[fam.ak.array(idx)]
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.to_ndarray(), nd[idx])


def test_gather_with_negative_and_uint64_indices(fam):
    nd = np.arange(N) * 2
    fa = filled(fam, "neg", nd)
    idx = np.array([-1, -N, 0, 5, -7])
    np.testing.assert_array_equal(fa[fam.ak.array(idx)].to_ndarray(), nd[idx])
    uidx = np.array([N - 1, 0, 77], dtype=np.uint64)
    np.testing.assert_array_equal(fa[fam.ak.array(uidx)].to_ndarray(), nd[uidx])


def test_gather_with_a_list_or_a_mask(fam):
    nd = np.arange(1000) % 17
    fa = filled(fam, "m", nd)
    np.testing.assert_array_equal(fa[[3, 1, 3]].to_ndarray(), nd[[3, 1, 3]])
    mask = nd > 10
    np.testing.assert_array_equal(fa[fam.ak.array(mask)].to_ndarray(), nd[mask])


def test_scatter_of_distinct_indices_matches_numpy(fam):
    rng = np.random.default_rng(3)
    fa = fam.region.create("s", fam.ak.int64, N)
    idx = rng.permutation(N)[:40_000]
    vals = rng.integers(-10**12, 10**12, idx.size)
    fa[fam.ak.array(idx)] = fam.ak.array(vals)
    want = np.zeros(N, np.int64)
    want[idx] = vals
    np.testing.assert_array_equal(fa.to_ndarray(), want)


def test_scatter_with_repeated_indices_keeps_the_last_as_numpy(fam):
    rng = np.random.default_rng(4)
    fa = fam.region.create("dup", fam.ak.int64, N)
    idx = rng.integers(0, 5000, 30_000)  # many repeats, spread over all blocks
    idx[-5:] = [-1, N - 1, -1, 7, 7]     # negative and positive spellings repeat too
    vals = np.arange(1, idx.size + 1)
    fa[fam.ak.array(idx)] = fam.ak.array(vals)
    want = np.zeros(N, np.int64)
    want[idx] = vals
    np.testing.assert_array_equal(fa.to_ndarray(), want)
    # the seed's example: same indices everywhere, the last value wins
    fa[fam.ak.array(np.full(20, 5))] = fam.ak.arange(20)
    assert fa[5] == 19
    # repeats and a float array: cast as NumPy, still the last wins
    fb = fam.region.create("dupf", fam.ak.float64, 10)
    fb[fam.ak.array([3, 3, 3])] = fam.ak.array([1.5, 2.5, 3.5])
    assert fb[3] == 3.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_a_scalar(fam, dtype):
    fa = fam.region.create("sc", dtype, N)
    idx = np.random.default_rng(5).integers(0, N, 9000)
    fa[fam.ak.array(idx)] = 1
    want = np.zeros(N, dtype)
    want[idx] = 1
    np.testing.assert_array_equal(fa.to_ndarray(), want)


def test_scatter_casts_values_as_numpy_assignment(fam):
    fa = fam.region.create("cast", fam.ak.int64, 100)
    idx = np.array([1, 2, 3, 4])
    vals = np.array([2.7, -2.7, 1e3, 0.5])
    fa[fam.ak.array(idx)] = fam.ak.array(vals)
    fa[[10, 11]] = [7.9, True]
    want = np.zeros(100, np.int64)
    want[idx] = vals
    want[[10, 11]] = [7.9, True]
    np.testing.assert_array_equal(fa.to_ndarray(), want)
    fb = fam.region.create("castb", fam.ak.bool, 10)
    fb[fam.ak.array([0, 1, 2])] = fam.ak.array([0.0, 2.5, -1.0])
    assert fb.to_ndarray().tolist() == [False, True, True] + [False] * 7


def test_scatter_with_empty_and_single_index(fam):
    fa = filled(fam, "e", np.arange(50))
    fa[fam.ak.array(np.zeros(0, np.int64))] = fam.ak.array(np.zeros(0, np.int64))
    fa[fam.ak.array([49])] = fam.ak.array([-1])
    want = np.arange(50)
    want[49] = -1
    np.testing.assert_array_equal(fa.to_ndarray(), want)
    assert fa[fam.ak.array(np.zeros(0, np.int64))].size == 0


def test_the_issue_example(fam):
    ak = fam.ak
    fa = fam.region.create("aName", ak.int64, 1_000_000)
    p1 = ak.randint(0, 1_000_000, 10_000)
    p2 = ak.arange(0, 10_000, 1)
    fa[p1] = p2
    i1 = p1.to_ndarray()
    got = fa.to_ndarray()
    # p2 is arange: the value at each written position is the number of an
    # assignment aimed at that very position
    np.testing.assert_array_equal(i1[got[i1]], i1)
    untouched = np.ones(fa.size, bool)
    untouched[i1] = False
    assert not got[untouched].any()
    np.testing.assert_array_equal(fa[p1].to_ndarray(), got[i1])


# ---- slices and elements ---------------------------------------------------------------------------

SLICES = [slice(None), slice(10, 20), slice(32760, 32780), slice(30000, 70000, 3),
          slice(None, None, -1), slice(90000, 1000, -7), slice(5, 5), slice(-100, None),
          slice(N - 1, None), slice(65530, 98310, 32768)]


@pytest.mark.parametrize("sl", SLICES, ids=str)
def test_get_slice_matches_numpy(fam, sl):
    nd = np.arange(N, dtype=np.float64) * 0.5
    fa = filled(fam, "sl", nd)
    got = fa[sl]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.to_ndarray(), nd[sl])


@pytest.mark.parametrize("sl", SLICES, ids=str)
def test_put_slice_matches_numpy(fam, sl):
    want = np.arange(N)
    fa = filled(fam, "ps", want)
    vals = -np.arange(len(range(*sl.indices(N)))) - 1
    fa[sl] = fam.ak.array(vals)
    want[sl] = vals
    np.testing.assert_array_equal(fa.to_ndarray(), want)


def test_put_slice_with_a_scalar_and_a_bool_array(fam):
    fa = fam.region.create("pb", fam.ak.bool, N)
    fa[100:70000:5] = True
    want = np.zeros(N, bool)
    want[100:70000:5] = True
    np.testing.assert_array_equal(fa.to_ndarray(), want)
    fu = fam.region.create("pu", fam.ak.uint64, 40000)
    fu[32000:33000] = 2**64 - 1
    wu = np.zeros(40000, np.uint64)
    wu[32000:33000] = 2**64 - 1
    np.testing.assert_array_equal(fu.to_ndarray(), wu)


def test_put_slice_of_the_wrong_length_is_a_value_error(fam):
    fa = filled(fam, "len", np.arange(100))
    with pytest.raises(ValueError):
        fa[0:10] = fam.ak.arange(9)
    np.testing.assert_array_equal(fa.to_ndarray(), np.arange(100))


def test_single_elements_read_and_write_as_numpy(fam):
    nd = np.arange(N) * 11
    fa = filled(fam, "el", nd)
    assert fa[0] == nd[0] and fa[-1] == nd[-1] and fa[32768] == nd[32768]
    assert isinstance(fa[5], np.int64)
    fa[7] = 2.9
    fa[-2] = -5
    nd[7] = 2.9
    nd[-2] = -5
    np.testing.assert_array_equal(fa.to_ndarray(), nd)
    with pytest.raises(IndexError):
        fa[N]
    with pytest.raises(IndexError):
        fa[-N - 1] = 1


# ---- atomics -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64])
def test_add_with_repeated_indices_matches_np_add_at(fam, dtype):
    rng = np.random.default_rng(6)
    start = (rng.integers(0, 1000, N)).astype(dtype)
    fa = filled(fam, "add", start)
    idx = rng.integers(0, 3000, 50_000)  # heavy repeats
    vals = rng.integers(0, 1000, idx.size).astype(dtype)  # exact in float64 too
    fa.add(fam.ak.array(idx), fam.ak.array(vals))
    want = start.copy()
    np.add.at(want, idx, vals)
    np.testing.assert_array_equal(fa.to_ndarray(), want)


def test_add_of_a_scalar_and_negative_numbers(fam):
    fa = fam.region.create("adds", fam.ak.int64, 100)
    idx = np.array([1, 1, 1, 5, -1])
    fa.add(fam.ak.array(idx), 3)
    fa.add(fam.ak.array([5]), fam.ak.array([-10]))
    want = np.zeros(100, np.int64)
    np.add.at(want, idx, 3)
    want[5] -= 10
    np.testing.assert_array_equal(fa.to_ndarray(), want)


def test_fetch_add_returns_previous_values_consistent_with_the_updates(fam):
    rng = np.random.default_rng(7)
    start = rng.integers(0, 100, 2000)
    fa = filled(fam, "fadd", start)
    idx = rng.integers(0, 2000, 20_000)
    vals = rng.integers(1, 50, idx.size)  # positive: a chain of olds increases
    old = fam.ak.array(idx)
    old = fa.fetch_add(old, fam.ak.array(vals)).to_ndarray()
    assert old.dtype == np.int64 and old.size == idx.size
    final = fa.to_ndarray()
    want = start.copy()
    np.add.at(want, idx, vals)
    np.testing.assert_array_equal(final, want)
    # per element: the updates applied one after the other, each saw the last
    order = np.lexsort((old, idx))
    for j in np.unique(idx):
        sel = order[idx[order] == j]
        o, v = old[sel], vals[sel]
        assert o[0] == start[j]
        np.testing.assert_array_equal(o[1:], o[:-1] + v[:-1])
        assert final[j] == o[-1] + v[-1]


def test_fetch_add_returns_what_a_sequential_loop_sees(fam):
    """Repeats fall in the blocks of different ranks: the previous values
    are those of one loop over the index list in order, at any rank count."""
    rng = np.random.default_rng(8)
    start = rng.integers(-50, 50, 64)
    fa = filled(fam, "seq", start)
    idx = rng.integers(0, 64, 5001)
    vals = rng.integers(-9, 10, idx.size)
    old = fa.fetch_add(fam.ak.array(idx), fam.ak.array(vals)).to_ndarray()
    cur, want = start.copy(), np.empty_like(vals)
    for k, (i, v) in enumerate(zip(idx, vals)):
        want[k] = cur[i]
        cur[i] += v
    np.testing.assert_array_equal(old, want)
    np.testing.assert_array_equal(fa.to_ndarray(), cur)


def test_fetch_add_of_one_everywhere_hands_out_distinct_tickets(fam):
    fa = fam.region.create("ticket", fam.ak.int64, 1)
    old = fa.fetch_add(fam.ak.zeros(5000, fam.ak.int64), 1).to_ndarray()
    np.testing.assert_array_equal(old, np.arange(5000))  # in index order
    assert fa[0] == 5000


# ---- errors leave the data as it was ----------------------------------------------------------------------

def test_out_of_range_index_on_any_rank_writes_nothing(fam):
    nd = np.arange(N)
    fa = filled(fam, "oor", nd)
    idx = np.arange(0, N, 3)
    idx[-1] = N  # in the last rank's block
    for op in (lambda k: fa.__setitem__(k, fam.ak.zeros(idx.size, fam.ak.int64)),
               lambda k: fa.add(k, 1), lambda k: fa.fetch_add(k, 1), lambda k: fa[k]):
        with pytest.raises(IndexError):
            op(fam.ak.array(idx))
    with pytest.raises(IndexError):
        fa[fam.ak.array([-N - 1, 0])] = 5
    np.testing.assert_array_equal(fa.to_ndarray(), nd)


def test_non_integer_indices_are_an_index_error(fam):
    fa = filled(fam, "fi", np.arange(10))
    with pytest.raises(IndexError):
        fa[fam.ak.array([1.0, 2.0])]
    with pytest.raises(IndexError):
        fa[fam.ak.array([1.0])] = 3


def test_length_mismatch_is_a_value_error_and_writes_nothing(fam):
    fa = filled(fam, "lm", np.arange(100))
    with pytest.raises(ValueError):
        fa[fam.ak.array([1, 2, 3])] = fam.ak.array([9, 9])
    with pytest.raises(ValueError):
        fa.add(fam.ak.array([1, 2, 3]), fam.ak.array([9, 9]))
    np.testing.assert_array_equal(fa.to_ndarray(), np.arange(100))


def test_add_to_a_bool_array_is_a_type_error(fam):
    fa = fam.region.create("bo", fam.ak.bool, 10)
    with pytest.raises(TypeError):
        fa.add(fam.ak.array([1]), True)


def test_unknown_names_are_key_errors(fam):
    with pytest.raises(KeyError):
        fam.region.lookup("nope")
    with pytest.raises(KeyError):
        fam.ak.fam_region("no_such_region_xyz", create=False)
    with pytest.raises(KeyError):
        fam.ak.fam_region("no_such_region_xyz", create=False).create("a", fam.ak.int64, 1)
    gone = fam.region.create("gone", fam.ak.int64, 4)
    gone.delete()
    with pytest.raises(KeyError):
        gone.delete()


def test_not_found_says_what_is_missing_once(fam):
    with pytest.raises(KeyError) as e:
        fam.region.lookup("nope")
    msg = str(e.value)
    assert "'nope'" in msg and f"'{fam.region.name}'" in msg
    assert msg.count("nope") == 1 and msg.count(fam.region.name) == 1, msg
    with pytest.raises(KeyError) as e:
        fam.ak.fam_region("no_such_region_xyz", create=False).lookup("a")
    assert "no_such_region_xyz" in str(e.value)
    assert str(e.value).count("no_such_region_xyz") == 1, str(e.value)


def _peak_rss(pid):
    """VmHWM of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def _minor_faults(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])  # field 10: minflt


@pytest.fixture(scope="module")
def fresh():
    """A cluster of its own (1 rank, 1 famd), so that no earlier test has
    left free memory in rank 0's heap that would hide an allocation."""
    yield from owned(FamCluster(1, 1))


def test_writing_one_element_touches_little_memory(fresh):
    """fa[i] = v writes one element: rank 0 must not fill a whole chunk for
    it (8 MiB, ~2048 fresh pages, before the fix)."""
    ak = connect(kodiak, fresh.server)
    fa = ak.fam_region("one").create("one", ak.int64, 1000)
    pid = fresh.server.info["pid"]
    before = _minor_faults(pid)
    for i in range(20):
        fa[i] = 5 + i
    faults = _minor_faults(pid) - before
    assert faults < 1000, f"20 single-element writes took {faults} page faults on rank 0"
    got = fa.to_ndarray()
    np.testing.assert_array_equal(got[:20], np.arange(5, 25))
    assert not got[20:].any()


def test_a_mask_builds_no_index_of_the_whole_array(fresh):
    """fa[mask] and fa[mask] = v select a few of 4M elements: no 32 MiB
    index of every position (rank 0's peak memory grew by 2 x 32 MiB
    before the fix)."""
    ak = connect(kodiak, fresh.server)
    n = 1 << 22
    fa = ak.fam_region("mask").create("m", ak.int64, n)
    nmask = np.zeros(n, dtype=bool)
    nmask[[3, 77, 4096, n // 2, n - 1]] = True
    mask = ak.array(nmask)
    pid = fresh.server.info["pid"]
    before = _peak_rss(pid)
    fa[mask] = 7
    got = fa[mask]
    grew = _peak_rss(pid) - before
    assert grew < 16 << 20, f"a 5-element masked write and read raised rank 0's peak by {grew} B"
    np.testing.assert_array_equal(got.to_ndarray(), [7] * 5)
    assert int(fa.to_pdarray().sum()) == 35


def test_a_taken_name_is_a_file_exists_error(fam):
    fa = filled(fam, "taken", np.arange(10))
    with pytest.raises(FileExistsError):
        fam.region.create("taken", fam.ak.float64, 5)
    with pytest.raises(FileExistsError):
        fam.ak.fam_array(fam.ak.arange(3), fam.region, "taken")
    np.testing.assert_array_equal(fa.to_ndarray(), np.arange(10))


def test_a_full_region_is_a_memory_error(fam):
    small = fam.ak.fam_region(fam.region.name + "_small", size=1 << 20)
    try:
        with pytest.raises(MemoryError):
            small.create("big", fam.ak.int64, 1 << 20)  # 8 MiB > 1 MiB
        with pytest.raises(MemoryError):
            fam.region.create("huge", fam.ak.int64, 1 << 40)
        assert "big" not in small.list()
    finally:
        small.destroy()


def test_bad_names_and_sizes_are_refused(fam):
    with pytest.raises(ValueError):
        fam.region.create("", fam.ak.int64, 1)
    with pytest.raises(ValueError):
        fam.region.create("x" * 300, fam.ak.int64, 1)
    with pytest.raises(ValueError):
        fam.region.create("neg", fam.ak.int64, -1)
    with pytest.raises(TypeError):
        fam.region.create("str", "int32", 1)


def test_a_server_without_memory_servers_says_so(fam_cluster):
    s = start_kodiakd(1, None)
    try:
        kodiak.connect(connect_file=s.connect_file)
        with pytest.raises(kodiak.KodiakError, match="FAM_SERVERS"):
            kodiak.fam_region("x")
        assert kodiak.arange(3).tolist() == [0, 1, 2]  # and it still serves
    finally:
        kodiak.disconnect()
        s.stop()


def test_fam_array_takes_the_issues_spelling_and_region_compares_to_its_name(fam):
    fa = fam.ak.fam_array(pda=fam.ak.arange(4), reg=fam.region, name="spelled")
    assert fa.to_ndarray().tolist() == [0, 1, 2, 3]
    assert fa.region == fam.region.name and fa.region == fam.region

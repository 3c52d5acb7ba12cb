# SPDX-License-Identifier: Apache-2.0
"""test_read_hdf.py — ak.read_hdf, pdarray.to_hdf and ak.to_hdf against h5py
reading and writing the same files, in FAM (fam://, h5py through
kodiak.h5) and on the local filesystem, at 1, 2 and 3 ranks: every dtype
h5py writes converted as NumPy converts it, contiguous and chunked+gzip
datasets, lists of files concatenated, empty and one-element datasets;
errors (missing file, dataset or region, strings and compound datasets,
damaged files, a full pool, another user's region) are Python exceptions
with a clear message, nothing half-written is left, and kodiakd keeps
running. The dataset store's HDF5 ingest is compared with h5py too."""
import os
import subprocess

import h5py  # Debian's python3-h5py
import numpy as np
import pytest

import kodiak
import kodiak.h5  # noqa: F401 — registers the driver "fam" with h5py
from conftest import BUILD
from fam_fixtures import FamCluster, FamServers, connect, start_kodiakd

FAMH5 = os.path.join(BUILD, "famh5")
REGION = "h5r"

# h5py's dtype -> the pdarray dtype read_hdf gives (NumPy's safe cast)
DTYPES = {np.int8: np.int64, np.int16: np.int64, np.int32: np.int64, np.int64: np.int64,
          np.uint8: np.int64, np.uint16: np.int64, np.uint32: np.int64,
          np.uint64: np.uint64, np.float32: np.float64, np.float64: np.float64,
          np.bool_: np.bool_}


def famh5(servers, *args, check=True):
    return subprocess.run([FAMH5, "-s", servers, *args], check=check, capture_output=True,
                          text=True)


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}rank")
def cluster(request):
    c = FamCluster(request.param, 1)
    try:
        famh5(c.famd.servers, "mkregion", REGION, "160M")
        famh5(c.famd.servers, "mkregion", "tiny", "4M")
        yield c
    finally:
        kodiak.disconnect()
        c.stop()


@pytest.fixture
def ak(cluster):
    connect(kodiak, cluster.server)
    yield kodiak
    assert cluster.server.alive(), f"kodiakd died: {cluster.server.output()[-3000:]}"


class Place:
    """Where a test's files live: in FAM (fam://h5r/NAME) or in tmp_path."""

    def __init__(self, kind, cluster, tmp_path):
        self.kind, self.servers, self.tmp = kind, cluster.famd.servers, tmp_path

    def name(self, base):
        return f"fam://{REGION}/{base}" if self.kind == "fam" else str(self.tmp / base)

    def open(self, base, mode):
        if self.kind == "fam":
            return h5py.File(f"{REGION}/{base}", mode, driver="fam", servers=self.servers)
        return h5py.File(self.tmp / base, mode)


@pytest.fixture(params=["fam", "local"])
def place(request, cluster, tmp_path):
    return Place(request.param, cluster, tmp_path)


def sample(rng, t, n):
    if t is np.bool_:
        return rng.integers(0, 2, n).astype(bool)
    if np.issubdtype(t, np.floating):
        return (rng.standard_normal(n) * 1e6).astype(t)
    info = np.iinfo(t)
    return rng.integers(info.min, info.max, n, dtype=t, endpoint=True)


def test_every_dtype_contiguous_and_chunked_gzip_reads_as_numpy_converts_it(ak, place):
    rng = np.random.default_rng(1)
    want = {}
    with place.open("types.h5", "w") as f:
        for i, t in enumerate(DTYPES):
            v = sample(rng, t, 1001 + i)
            f[f"c/{np.dtype(t).name}"] = v
            f.create_dataset(f"z/{np.dtype(t).name}", data=v, chunks=(97,), compression="gzip")
    with place.open("types.h5", "r") as f:  # h5py's reading is the reference
        for t in DTYPES:
            for g in ("c", "z"):
                want[f"{g}/{np.dtype(t).name}"] = (f[f"{g}/{np.dtype(t).name}"][...], DTYPES[t])
    got = ak.read_hdf(place.name("types.h5"))
    assert sorted(got) == sorted(want)
    for k, (v, t) in want.items():
        assert got[k].dtype == np.dtype(t), k
        np.testing.assert_array_equal(got[k].to_ndarray(), v.astype(t), err_msg=k)
    # one dataset by its absolute path gives a pdarray
    one = ak.read_hdf(place.name("types.h5"), datasets="/z/uint64")
    np.testing.assert_array_equal(one.to_ndarray(), want["z/uint64"][0])


def test_a_list_of_files_is_one_array_per_dataset_in_file_order(ak, place):
    rng = np.random.default_rng(2)
    sizes = [777, 0, 1, 2049]
    parts_a, parts_b = [], []
    for i, n in enumerate(sizes):
        a = rng.integers(-10**12, 10**12, n)
        b = rng.standard_normal(n + 3)
        with place.open(f"part{i}.h5", "w") as f:
            f.create_dataset("g/a", data=a, chunks=(64,), maxshape=(None,), compression="gzip")
            f["b"] = b
        parts_a.append(a)
        parts_b.append(b)
    names = [place.name(f"part{i}.h5") for i in range(len(sizes))]
    got = ak.read_hdf(names, datasets=["g/a", "b"])
    assert list(got) == ["g/a", "b"]
    np.testing.assert_array_equal(got["g/a"].to_ndarray(), np.concatenate(parts_a))
    np.testing.assert_array_equal(got["b"].to_ndarray(), np.concatenate(parts_b))
    # iterative= reads one dataset per request: the same arrays
    it = ak.read_hdf(names, datasets=["g/a", "b"], iterative=True)
    np.testing.assert_array_equal(it["b"].to_ndarray(), np.concatenate(parts_b))
    # empty and one-element datasets alone
    assert ak.read_hdf(names[1], datasets="g/a").size == 0
    np.testing.assert_array_equal(ak.read_hdf(names[2], datasets="b").to_ndarray(),
                                  parts_b[2])


def test_strict_types_refuses_types_that_differ_unless_told_to_convert(ak, place):
    with place.open("i.h5", "w") as f:
        f["x"] = np.arange(5, dtype=np.int32)
    with place.open("f.h5", "w") as f:
        f["x"] = np.linspace(0, 1, 4, dtype=np.float32)
    files = [place.name("i.h5"), place.name("f.h5")]
    with pytest.raises(TypeError, match="strictTypes=False"):
        ak.read_hdf(files, datasets="x")
    got = ak.read_hdf(files, datasets="x", strictTypes=False)
    want = np.concatenate([np.arange(5, dtype=np.int32), np.linspace(0, 1, 4, dtype=np.float32)])
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_array_equal(got.to_ndarray(), want)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64, np.bool_])
def test_to_hdf_writes_what_h5py_reads_and_append_adds_datasets(ak, place, dtype):
    rng = np.random.default_rng(3)
    v = sample(rng, dtype, 3001)
    w = sample(rng, dtype, 5)
    assert ak.array(v).to_hdf(place.name("out.h5"), dataset="grp/v") == [place.name("out.h5")]
    ak.array(w).to_hdf(place.name("out.h5"), dataset="w", mode="append")
    with place.open("out.h5", "r") as f:
        assert f["grp/v"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(f["grp/v"][...], v)
        np.testing.assert_array_equal(f["w"][...], w)
    # truncate replaces the file
    ak.array(w).to_hdf(place.name("out.h5"), dataset="only")
    with place.open("out.h5", "r") as f:
        assert list(f) == ["only"]
    # one file per rank, read back as one array
    files = ak.array(v).to_hdf(place.name("dist.h5"), dataset="v", file_type="distribute")
    assert len(files) == ak.get_config()["numLocales"]
    assert files[0] == place.name("dist_LOCALE0000.h5")
    np.testing.assert_array_equal(ak.read_hdf(files, datasets="v").to_ndarray(), v)
    if place.kind == "local":  # a glob pattern finds them, as Arkouda's
        np.testing.assert_array_equal(
            ak.read_hdf(place.name("dist_LOCALE*.h5"), datasets="v").to_ndarray(), v)


def test_ak_to_hdf_writes_several_columns_and_empty_arrays(ak, place):
    a, b = np.arange(10), np.zeros(0)
    ak.to_hdf({"a": ak.array(a), "b": ak.array(b)}, place.name("cols.h5"))
    with place.open("cols.h5", "r") as f:
        np.testing.assert_array_equal(f["a"][...], a)
        assert f["b"].shape == (0,) and f["b"].dtype == np.float64
    got = ak.read_hdf(place.name("cols.h5"))
    np.testing.assert_array_equal(got["a"].to_ndarray(), a)
    assert got["b"].size == 0


def test_bad_files_and_datasets_raise_clear_errors_and_the_server_lives(ak, place, cluster,
                                                                        tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        ak.read_hdf(place.name("missing.h5"))
    with place.open("bad.h5", "w") as f:
        f["x"] = np.arange(100)
        f["s"] = np.array([b"ab", b"cd"])
        f["c"] = np.zeros(3, dtype=[("p", "i4"), ("q", "f8")])
        f["m"] = np.zeros((3, 4))
    name = place.name("bad.h5")
    with pytest.raises(KeyError, match="nope"):
        ak.read_hdf(name, datasets="nope")
    with pytest.raises(KeyError, match="no/such"):
        ak.read_hdf(name, datasets=["x", "no/such"])
    with pytest.raises(TypeError, match="string"):
        ak.read_hdf(name, datasets="s")
    with pytest.raises(TypeError, match="compound"):
        ak.read_hdf(name, datasets="c")
    with pytest.raises(ValueError, match="2 dimensions"):
        ak.read_hdf(name, datasets="m")
    # appending a dataset that is there leaves the file as it was
    with pytest.raises(ValueError, match="already has a dataset 'x'"):
        ak.arange(0, 5, 1).to_hdf(name, dataset="x", mode="append")
    with place.open("bad.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][...], np.arange(100))
    # a damaged and a truncated file (made locally, copied into FAM as bytes)
    local = tmp_path / "whole.h5"
    with h5py.File(local, "w") as f:
        f["x"] = np.arange(100_000)
    data = local.read_bytes()
    for base, content in (("junk.h5", b"not an hdf5 file at all" * 100),
                          ("cut.h5", data[:len(data) // 3])):
        p = tmp_path / ("src_" + base)
        p.write_bytes(content)
        if place.kind == "fam":
            famh5(cluster.famd.servers, "put", str(p), f"{REGION}/{base}")
            target = place.name(base)
        else:
            target = str(p)
        with pytest.raises(ValueError, match="HDF5|truncated|signature"):
            kodiak.read_hdf(target, datasets="x")
    with pytest.raises(NotImplementedError):
        ak.read_hdf(name, allow_errors=True)
    np.testing.assert_array_equal(ak.arange(0, 3, 1).to_ndarray(), np.arange(3))


def test_fam_errors_missing_region_and_full_pool_leave_nothing(ak, cluster):
    with pytest.raises(FileNotFoundError, match="no such FAM region"):
        ak.read_hdf("fam://nowhere/x.h5")
    with pytest.raises(ValueError, match="fam://REGION/NAME"):
        ak.read_hdf("fam://just-a-region")
    # 4 MiB region, 16 MiB array: the write fails and no file is left
    with pytest.raises(MemoryError, match="full"):
        ak.zeros(2 * 1024 * 1024).to_hdf("fam://tiny/big.h5", dataset="z")
    assert "big.h5" not in famh5(cluster.famd.servers, "ls", "tiny").stdout
    with pytest.raises(FileNotFoundError):
        ak.read_hdf("fam://tiny/big.h5")
    # 6 MiB: at 3 ranks rank 0's rows fit and rank 1's do not; an append
    # that fails leaves the file as it was
    with pytest.raises(MemoryError, match="full"):
        ak.zeros(6 * 1024 * 1024 // 8).to_hdf("fam://tiny/six.h5", dataset="z")
    assert "six.h5" not in famh5(cluster.famd.servers, "ls", "tiny").stdout
    ak.arange(0, 10, 1).to_hdf("fam://tiny/keep.h5", dataset="a")
    with pytest.raises(MemoryError, match="full"):
        ak.zeros(6 * 1024 * 1024 // 8).to_hdf("fam://tiny/keep.h5", dataset="z",
                                                 mode="append")
    with h5py.File("tiny/keep.h5", "r", driver="fam", servers=cluster.famd.servers) as f:
        assert list(f) == ["a"]
        np.testing.assert_array_equal(f["a"][...], np.arange(10))
    famh5(cluster.famd.servers, "rm", "tiny/keep.h5")
    # and a small one fits afterwards
    ak.arange(0, 10, 1).to_hdf("fam://tiny/small.h5", dataset="z")
    np.testing.assert_array_equal(ak.read_hdf("fam://tiny/small.h5", "z").to_ndarray(),
                                  np.arange(10))


def test_another_users_region_is_a_permissionerror():
    # famd over tcp (shm serves one user); the owner's region is 0700
    from conftest import Server
    famds = FamServers(1, provider="tcp")
    mine = other = None
    try:
        famh5(famds.servers, "-p", "tcp", "mkregion", "-m", "700", "priv", "8M")
        famh5(famds.servers, "-p", "tcp", "mkregion", "-m", "755", "pub", "8M")
        mine = start_kodiakd(1, famds.servers, provider="tcp")
        connect(kodiak, mine)
        kodiak.arange(0, 100, 1).to_hdf("fam://priv/f.h5", dataset="x")
        kodiak.arange(0, 100, 1).to_hdf("fam://pub/f.h5", dataset="x")
        other = Server(1, prefix=["setpriv", "--reuid", "65534", "--regid", "65534",
                                  "--clear-groups"],
                       env={"FAM_SERVERS": famds.servers, "FAM_PROVIDER": "tcp",
                            "HOME": "/tmp"})
        connect(kodiak, other)
        with pytest.raises(PermissionError, match="permission"):
            kodiak.read_hdf("fam://priv/f.h5", datasets="x")
        with pytest.raises(PermissionError, match="permission"):
            kodiak.arange(0, 5, 1).to_hdf("fam://pub/g.h5", dataset="x")
        np.testing.assert_array_equal(kodiak.read_hdf("fam://pub/f.h5", "x").to_ndarray(),
                                      np.arange(100))
        assert other.alive()
    finally:
        kodiak.disconnect()
        for s in (other, mine):
            if s is not None:
                s.stop()
        famds.stop()


def test_the_store_ingests_hdf5_files_one_dataset_per_column(ak, place):
    import pandas as pd
    rng = np.random.default_rng(4)
    frames = []
    for i, n in enumerate([2500, 1, 1700]):
        df = pd.DataFrame({"fare": rng.standard_normal(n), "passengers": rng.integers(0, 6, n),
                           "paid": rng.integers(0, 2, n).astype(bool),
                           "id": rng.integers(0, 2**63, n, dtype=np.uint64)})
        with place.open(f"trip{i}.h5", "w") as f:
            for k in df:
                f.create_dataset(f"trip/{k}", data=df[k].to_numpy(), chunks=True,
                                 compression="gzip")
        frames.append(df)
    want = pd.concat(frames, ignore_index=True)
    store = ak.DatasetStore(f"h5ingest_{place.kind}")
    try:
        names = [place.name(f"trip{i}.h5") for i in range(3)]
        t = store.ingest("Trip", names, batch_rows=1000)  # found HDF5 by its name
        assert t.num_batches == 3 + 1 + 2
        assert sorted(t.columns) == sorted(want.columns)
        got = t.to_pandas()
        pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=True)
        # only some datasets, appended: the columns must match the dataset's
        with pytest.raises(ValueError):
            store.ingest_hdf("Trip", names[1], datasets=["trip/fare"])
        assert len(store["Trip"]) == len(want)
        t2 = store.ingest_hdf("Two", names[0], datasets=["trip/fare", "trip/id"])
        np.testing.assert_array_equal(t2["id"].to_ndarray(), frames[0]["id"].to_numpy())
        with pytest.raises(KeyError):
            store.ingest_hdf("Three", names[0], datasets=["trip/nope"])
        assert "Three" not in store
    finally:
        store.destroy()


def test_bad_requests_are_refused_clearly(ak, tmp_path):
    # the commands as a hostile client may send them: every one a clear error
    a = ak.arange(0, 10, 1)
    msg = ak.client.generic_msg
    bad = [("read_hdf", {}), ("read_hdf", {"files": "x.h5"}), ("read_hdf", {"files": []}),
           ("read_hdf", {"files": [5]}), ("read_hdf", {"files": [""]}),
           ("read_hdf", {"files": ["/x.h5"], "datasets": "d"}),
           ("read_hdf", {"files": ["/x.h5"], "datasets": []}),
           ("read_hdf", {"files": ["/x.h5"], "datasets": ["d", "d"]}),
           ("read_hdf", {"files": ["/x.h5"], "strict_types": "yes"}),
           ("read_hdf", {"files": ["x" * 5000]}),
           ("read_hdf", {"files": ["/dev/null"]}), ("read_hdf", {"files": [str(tmp_path)]}),
           ("to_hdf", {"array": a.name, "file": str(tmp_path / "o.h5")}),
           ("to_hdf", {"array": "id_nosuch", "file": "/tmp/o.h5", "dataset": "d"}),
           ("to_hdf", {"array": a.name, "file": "", "dataset": "d"}),
           ("to_hdf", {"array": a.name, "file": str(tmp_path / "o.h5"), "dataset": "d",
                       "mode": "w"}),
           ("to_hdf", {"array": a.name, "file": str(tmp_path / "o.h5"), "dataset": "d",
                       "file_type": "many"}),
           ("to_hdf", {"array": a.name, "file": str(tmp_path / "no" / "o.h5"),
                       "dataset": "d"})]
    for cmd, args in bad:
        with pytest.raises((TypeError, ValueError, KeyError, FileNotFoundError)) as e:
            msg(cmd, args)
        assert cmd in str(e.value) or "not" in str(e.value), (cmd, args, e.value)
    assert not os.path.exists(tmp_path / "o.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        a.to_hdf(str(tmp_path / "no" / "o.h5"))
    with pytest.raises(ValueError, match="not a regular file"):
        ak.read_hdf(str(tmp_path))
    np.testing.assert_array_equal(a.to_ndarray(), np.arange(10))

# SPDX-License-Identifier: Apache-2.0
"""test_h5fam.py — h5py with the driver "fam" (import kodiak.h5): files
written to FAM hold what the same h5py code writes to a local file (read
back with NumPy, and h5diff on a copy taken out with famh5); slices, resizes,
append mode; errors are Python exceptions with the driver's message; a
small slice costs O(1) FAM requests. Over one famd with shm and two famd
(an interleaved region) with tcp."""
import doctest
import os
import subprocess

import h5py  # Debian's python3-h5py (scripts/setup.sh)
import numpy as np
import pytest

import kodiak.h5
from conftest import BUILD
from fam_fixtures import FamServers

FAMH5 = os.path.join(BUILD, "famh5")


@pytest.fixture(scope="module", params=[(1, "shm"), (2, "tcp")],
                ids=lambda p: f"{p[0]}famd-{p[1]}")
def fam(request):
    n, provider = request.param
    srv = FamServers(n, pool_size="256M", provider=provider)
    try:
        args = [FAMH5, "-s", srv.servers, "-p", provider, "mkregion"]
        if n == 2:
            args.append("-i")
        subprocess.run(args + ["py", "128M"], check=True, capture_output=True)
        yield {"servers": srv.servers, "provider": provider}
    finally:
        srv.stop()


def test_the_modules_examples_hold_and_it_registers_the_driver():
    assert "fam" in h5py.registered_drivers()
    res = doctest.testmod(kodiak.h5)
    assert res.attempted >= 4 and res.failed == 0


def famfile(fam, name, mode):
    return h5py.File(f"py/{name}", mode, driver="fam", **fam)


def write_sample(f, rng):
    """The same content into any h5py.File; returns what was written."""
    a = rng.integers(-2**62, 2**62, size=300_000, dtype=np.int64)
    b = rng.standard_normal((400, 250))
    c = rng.integers(0, 2, size=1000).astype(bool)
    f.create_dataset("a", data=a)
    g = f.create_group("sim/run1")
    g.create_dataset("b", data=b, chunks=(50, 50), compression="gzip")
    g["c"] = c
    g.attrs["note"] = "temperature"
    f["a"].attrs["scale"] = np.array([1.5, 2.5])
    return {"a": a, "sim/run1/b": b, "sim/run1/c": c}


def test_a_file_in_fam_holds_what_h5py_writes_to_a_local_file(fam, tmp_path):
    local = tmp_path / "local.h5"
    with h5py.File(local, "w") as f:
        want = write_sample(f, np.random.default_rng(5))
    with famfile(fam, "same.h5", "w") as f:
        write_sample(f, np.random.default_rng(5))
    with famfile(fam, "same.h5", "r") as f, h5py.File(local, "r") as g:
        for name, arr in want.items():
            np.testing.assert_array_equal(f[name][...], arr)
            np.testing.assert_array_equal(f[name][...], g[name][...])
        assert f["sim/run1"].attrs["note"] == "temperature"
        np.testing.assert_array_equal(f["a"].attrs["scale"], [1.5, 2.5])
        assert f["sim/run1/b"].compression == "gzip"
        assert f["sim/run1/b"].chunks == (50, 50)
    # copied out, the file is the same HDF5 content as the local one
    out = tmp_path / "out.h5"
    subprocess.run([FAMH5, "-s", fam["servers"], "-p", fam["provider"], "get",
                    "py/same.h5", str(out)], check=True, capture_output=True)
    r = subprocess.run(["h5diff", str(local), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_slices_resizes_and_append_mode(fam):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(200_000)
    with famfile(fam, "grow.h5", "w") as f:
        d = f.create_dataset("x", data=x[:1000], maxshape=(None,), chunks=(4096,))
        d.resize((len(x),))
        d[1000:] = x[1000:]
    with famfile(fam, "grow.h5", "a") as f:
        f["y"] = np.arange(10)
        np.testing.assert_array_equal(f["x"][123:150_000:7], x[123:150_000:7])
    with famfile(fam, "grow.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][...], x)
        np.testing.assert_array_equal(f["y"][...], np.arange(10))
        assert sorted(f.keys()) == ["x", "y"]


def test_a_small_slice_costs_a_few_fam_requests(fam):
    v = np.arange(2_000_000, dtype=np.int64)  # 16 MB, several extents
    with famfile(fam, "rt.h5", "w") as f:
        f.create_dataset("v", data=v)
    with famfile(fam, "rt.h5", "r") as f:
        d = f["v"]
        d[0:8]
        d[1_999_990:2_000_000]  # every extent looked up once before counting
        rng = np.random.default_rng(1)
        kodiak.h5.reset_stats()
        starts = rng.integers(0, len(v) - 8, size=200)
        for s in starts:
            np.testing.assert_array_equal(d[s:s + 8], v[s:s + 8])
        st = kodiak.h5.stats()
    assert st["fam_other"] <= 20  # extent look-ups: at most one per extent
    assert st["fam_gets"] <= 2 * len(starts), st
    # and a few bytes: the driver's 4 KiB sieve, not HDF5's 64 KiB one
    assert st["read_bytes"] <= 4096 * len(starts), st


def test_errors_are_exceptions_with_the_drivers_message(fam, tmp_path):
    with pytest.raises(OSError, match="no such file in FAM region 'py'"):
        famfile(fam, "missing.h5", "r")
    with pytest.raises(OSError, match="no such FAM region"):
        h5py.File("nowhere/x.h5", "w", driver="fam", **fam)
    with pytest.raises(OSError, match="REGION/NAME"):
        h5py.File("flat.h5", "w", driver="fam", **fam)
    # a file being written is refused to readers
    w = famfile(fam, "busy.h5", "w")
    try:
        w["x"] = np.arange(5)
        w.flush()
        kid = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import h5py, kodiak.h5, sys\n"
             "try:\n"
             f"    h5py.File('py/busy.h5', 'r', driver='fam', servers={fam['servers']!r},"
             f" provider={fam['provider']!r})\n"
             "except OSError as e:\n"
             "    print(e); sys.exit(3)\n"],
            capture_output=True, text=True, env=os.environ)
        assert kid.returncode == 3, kid.stdout + kid.stderr
        assert "being written" in kid.stdout
    finally:
        w.close()
    with famfile(fam, "busy.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][...], np.arange(5))

# SPDX-License-Identifier: Apache-2.0
"""FAM arrays are shared: they outlive the compute server, two compute
servers on the same memory servers see each other's arrays, with
persistent pools they outlive the memory servers too, and C programs
(libfamarray) read what Python wrote and the reverse."""
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import kodiak
from conftest import BUILD
from fam_fixtures import FamServers, connect, start_kodiakd

N = 100_003


@pytest.fixture
def famds():
    f = FamServers(2)
    try:
        yield f
    finally:
        kodiak.disconnect()
        f.stop()


def started(nranks, servers):
    s = start_kodiakd(nranks, servers)
    connect(kodiak, s)
    return s


def test_an_array_outlives_kodiakd_and_reads_the_same_with_other_rank_counts(famds):
    nd = np.random.default_rng(1).standard_normal(N)
    s = started(2, famds.servers)
    try:
        reg = kodiak.fam_region("keep")
        kodiak.fam_array(kodiak.array(nd), reg, "x")
    finally:
        kodiak.disconnect()
        s.stop()
    for nranks in (3, 1):
        s = started(nranks, famds.servers)
        try:
            fa = kodiak.fam_region("keep", create=False).lookup("x")
            assert (fa.dtype, fa.size) == (np.dtype(np.float64), N)
            np.testing.assert_array_equal(fa.to_ndarray(), nd)
            np.testing.assert_array_equal(fa[1000:50000:7].to_ndarray(), nd[1000:50000:7])
        finally:
            kodiak.disconnect()
            s.stop()


def test_two_compute_servers_see_each_others_arrays(famds):
    a = start_kodiakd(1, famds.servers)
    b = start_kodiakd(2, famds.servers)
    try:
        connect(kodiak, a)
        fa = kodiak.fam_region("both").create("counts", kodiak.int64, N)
        fa[0:N] = kodiak.arange(N)
        connect(kodiak, b)
        fb = kodiak.fam_region("both").lookup("counts")
        np.testing.assert_array_equal(fb.to_ndarray(), np.arange(N))
        fb[40000:40010] = -1
        fb.add(kodiak.array([7, 7, 8]), 100)
        kodiak.fam_array(kodiak.arange(5), "both", "from_b")
        connect(kodiak, a)
        want = np.arange(N)
        want[40000:40010] = -1
        want[7] += 200
        want[8] += 100
        np.testing.assert_array_equal(fa.to_ndarray(), want)  # a's open handle
        assert kodiak.fam_region("both").lookup("from_b").to_ndarray().tolist() == [0, 1, 2, 3, 4]
        assert kodiak.fam_region("both").list() == ["counts", "from_b"]
        assert a.alive() and b.alive()
    finally:
        kodiak.disconnect()
        a.stop()
        b.stop()


@pytest.mark.parametrize("provider", ["shm", "tcp"])
def test_an_array_another_server_deleted_is_a_keyerror_and_its_new_namesake_is_used(provider):
    """a has the array open (cached handles on each rank); b deletes it and
    makes a new one under the same name. a's next use must not send RMA with
    the revoked key (over shm it would never complete and wedge the rank)."""
    f = FamServers(2, provider=provider)
    a = start_kodiakd(2, f.servers, provider=provider)
    b = start_kodiakd(1, f.servers, provider=provider)
    try:
        connect(kodiak, a)
        fa = kodiak.fam_region("swap").create("x", kodiak.int64, 1000)
        fa[0:3] = 5
        connect(kodiak, b)
        kodiak.fam_region("swap").lookup("x").delete()
        connect(kodiak, a)
        with pytest.raises(KeyError, match="'x' not found"):
            fa[0:3] = 7
        with pytest.raises(KeyError):
            fa.to_ndarray()
        connect(kodiak, b)
        kodiak.fam_region("swap").create("x", kodiak.float64, 10)[0:10] = 2.5
        connect(kodiak, a)
        y = kodiak.fam_region("swap").create("y", kodiak.int64, 4)  # the rank still works
        y[0:4] = 9
        assert y.to_ndarray().tolist() == [9, 9, 9, 9]
        got = kodiak.fam_region("swap").lookup("x")
        assert (got.dtype, got.size) == (np.dtype(np.float64), 10)
        assert got.to_ndarray().tolist() == [2.5] * 10
        assert a.alive() and b.alive()
    finally:
        kodiak.disconnect()
        a.stop()
        b.stop()
        f.stop()


@pytest.mark.parametrize("provider", ["shm", "tcp"])
def test_a_running_kodiakd_reconnects_after_its_memory_servers_restart(provider):
    d = tempfile.mkdtemp(prefix="kodiak-pool-")
    pools = [os.path.join(d, f"pool{i}") for i in range(2)]
    nd = np.random.default_rng(3).integers(-2**62, 2**62, N)
    s = None
    try:
        f = FamServers(2, pool_files=pools, provider=provider)
        ports = f.ports
        s = start_kodiakd(2, f.servers, provider=provider)
        connect(kodiak, s)
        fa = kodiak.fam_array(kodiak.array(nd), kodiak.fam_region("bounce"), "p")
        f.stop()
        f = FamServers(2, pool_files=pools, ports=ports, provider=provider)
        try:
            np.testing.assert_array_equal(fa.to_ndarray(), nd)  # the cached handle
            fa[0:2] = -1
            assert kodiak.fam_region("bounce", create=False).list() == ["p"]
            assert fa[0:3].tolist() == [-1, -1, int(nd[2])]
            assert s.alive()
        finally:
            f.stop()
    finally:
        kodiak.disconnect()
        if s:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_with_persistent_pools_an_array_outlives_a_famd_restart():
    d = tempfile.mkdtemp(prefix="kodiak-pool-")
    pools = [os.path.join(d, f"pool{i}") for i in range(2)]
    nd = np.random.default_rng(2).integers(-2**62, 2**62, N)
    try:
        f = FamServers(2, pool_files=pools)
        ports = f.ports
        try:
            s = started(2, f.servers)
            try:
                kodiak.fam_array(kodiak.array(nd), kodiak.fam_region("durable"), "p")
            finally:
                kodiak.disconnect()
                s.stop()
        finally:
            f.stop()
        # new processes on the same addresses: libfam numbers the memory
        # servers by sorting their addresses, and striped items and region
        # homes follow that numbering, so a restart keeps the addresses
        f = FamServers(2, pool_files=pools, ports=ports)
        try:
            s = started(3, f.servers)
            try:
                fa = kodiak.fam_region("durable", create=False).lookup("p")
                np.testing.assert_array_equal(fa.to_ndarray(), nd)
            finally:
                kodiak.disconnect()
                s.stop()
        finally:
            f.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- with C programs (libfamarray) ------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A C reader of a FAM array: prints its dtype, size and every element.
READER_C = r"""
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include "fam/fam.h"
#include "kodiak/famarray.h"
int main(int argc, char **argv)
{
    fam_t *f;
    fa_array_t *a;
    if (argc != 3 || fam_initialize(NULL, &f) || fa_open(f, argv[1], argv[2], &a)) {
        fprintf(stderr, "reader: %s\n", fam_last_error());
        return 1;
    }
    uint64_t n = fa_size(a);
    int64_t *v = malloc(n * 8 + 8);
    if (fa_dtype(a) != FA_INT64 || fa_get(a, 0, n, v)) {
        fprintf(stderr, "reader: not int64 or %s\n", fam_last_error());
        return 1;
    }
    printf("%s %" PRIu64 "\n", fa_dtype_name(fa_dtype(a)), n);
    for (uint64_t i = 0; i < n; i++)
        printf("%" PRId64 "\n", v[i]);
    fa_close(a);
    fam_finalize(f);
    return 0;
}
"""


def test_python_reads_what_the_mpi_example_wrote(famds):
    from conftest import mpi_env
    exe = os.path.join(BUILD, "fa_mpi_example")
    n = 100_003
    env = mpi_env()
    env["FAM_SERVERS"] = famds.servers
    out = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none",
                          "-x", "FAM_SERVERS", exe, "fromc", str(n)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    want = np.arange(n, dtype=np.int64) ** 2
    assert f"total = {want.sum()}" in out.stdout
    s = started(3, famds.servers)
    try:
        reg = kodiak.fam_region("fromc", create=False)
        assert {"squares", "total"} <= set(reg.list())
        np.testing.assert_array_equal(reg.lookup("squares").to_ndarray(), want)
        assert reg.lookup("total")[0] == want.sum()
    finally:
        kodiak.disconnect()
        s.stop()


def test_a_c_program_reads_what_python_wrote(famds, tmp_path):
    src = tmp_path / "reader.c"
    src.write_text(READER_C)
    exe = tmp_path / "reader"
    cc = subprocess.run(["cc", "-std=c11", "-O1", "-I", os.path.join(REPO, "include"),
                         str(src), "-o", str(exe), "-L", BUILD, f"-Wl,-rpath,{BUILD}",
                         "-lfamarray", "-lfam"], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    nd = np.random.default_rng(3).integers(-2**62, 2**62, 40_000)
    s = started(2, famds.servers)
    try:
        fa = kodiak.fam_array(kodiak.array(nd), kodiak.fam_region("toc"), "frompy")
        fa.add(kodiak.array([0, 0, 39_999]), 5)
    finally:
        kodiak.disconnect()
        s.stop()
    nd[0] += 10
    nd[-1] += 5
    env = dict(os.environ, FAM_SERVERS=famds.servers)
    out = subprocess.run([str(exe), "toc", "frompy"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:2] == ["int64", str(nd.size)]
    np.testing.assert_array_equal(np.array(lines[2:], dtype=np.int64), nd)


def test_another_user_reads_but_may_not_write_and_gets_permissionerror():
    # famd over tcp (shm serves one user); arrays are created 0644 in a 0755
    # region: the owner writes, another uid reads and is refused writes
    from conftest import Server
    famds = FamServers(1, provider="tcp")
    mine = other = None
    try:
        mine = start_kodiakd(1, famds.servers, provider="tcp")
        connect(kodiak, mine)
        fa = kodiak.fam_region("perm").create("owned", kodiak.int64, 1000)
        fa[0:1000] = kodiak.arange(1000)
        other = Server(1, prefix=["setpriv", "--reuid", "65534", "--regid", "65534",
                                  "--clear-groups"],
                       env={"FAM_SERVERS": famds.servers, "FAM_PROVIDER": "tcp",
                            "HOME": "/tmp"})
        connect(kodiak, other)
        fb = kodiak.fam_region("perm").lookup("owned")
        np.testing.assert_array_equal(fb.to_ndarray(), np.arange(1000))
        with pytest.raises(PermissionError):
            fb[0:10] = 5
        with pytest.raises(PermissionError):
            fb.add(kodiak.array([1, 2]), 1)
        with pytest.raises(PermissionError):
            kodiak.fam_region("perm").lookup("owned").delete()
        assert other.alive()
        connect(kodiak, mine)
        np.testing.assert_array_equal(fa.to_ndarray(), np.arange(1000))
    finally:
        kodiak.disconnect()
        for s in (other, mine):
            if s is not None:
                s.stop()
        famds.stop()

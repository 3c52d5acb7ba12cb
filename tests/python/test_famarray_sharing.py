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


def test_with_persistent_pools_an_array_outlives_a_famd_restart():
    d = tempfile.mkdtemp(prefix="kodiak-pool-")
    pools = [os.path.join(d, f"pool{i}") for i in range(2)]
    nd = np.random.default_rng(2).integers(-2**62, 2**62, N)
    try:
        f = FamServers(2, pool_files=pools)
        try:
            s = started(2, f.servers)
            try:
                kodiak.fam_array(kodiak.array(nd), kodiak.fam_region("durable"), "p")
            finally:
                kodiak.disconnect()
                s.stop()
        finally:
            f.stop()
        f = FamServers(2, pool_files=pools)  # new processes, new ports
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

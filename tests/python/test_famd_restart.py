# SPDX-License-Identifier: Apache-2.0
"""test_famd_restart.py — kodiakd's FAM commands work right after a memory
server restarts.

famd runs on a pool file; kodiakd (2 ranks) writes a FAM array through it;
famd is stopped and started again on the same port and pool file. The very
next FAM command must work (libfam finds its control connection closed by
the old famd and connects again before sending), with the data NumPy says,
and no error message may repeat itself (fam_fail once formatted the
thread's last-error buffer into itself). Run with shm and tcp."""
import os
import shutil
import tempfile

import numpy as np
import pytest

import kodiak
from fam_fixtures import FamServers, start_kodiakd


@pytest.mark.parametrize("provider", ["shm", "tcp"])
@pytest.mark.parametrize("how", ["stop", "kill9"])
@pytest.mark.parametrize("nfamd,first", [(1, "lookup"), (2, "lookup"), (2, "cached")])
def test_the_next_fam_command_after_a_famd_restart_works(provider, how, nfamd, first):
    """nfamd 2: both restart, the array is striped over both."""
    d = tempfile.mkdtemp(prefix="kodiak-restart-")
    pools = [os.path.join(d, f"famd{i}.pool") for i in range(nfamd)]
    famd = FamServers(nfamd, pool_files=pools, provider=provider)
    server = None
    try:
        server = start_kodiakd(2, famd.servers, provider=provider)
        ak = kodiak
        ak.connect(connect_file=server.connect_file)
        rng = np.random.default_rng(11)
        x = rng.integers(-10**9, 10**9, 50_000)
        reg = ak.fam_region("restart")
        fa = ak.fam_array(ak.array(x), reg, "x")
        np.testing.assert_array_equal(fa.to_ndarray(), x)

        ports = famd.ports
        if how == "kill9":
            for p in famd.procs:
                p.kill()
        famd.stop()
        famd = FamServers(nfamd, pool_files=pools, ports=ports, provider=provider)

        # the very next FAM command works, on every rank: the cached handle
        # (checked with a stat at its home famd only; the other famd's
        # restart is found too), or a lookup (no handle cached)
        if first == "cached":
            np.testing.assert_array_equal(fa.to_ndarray(), x)
        assert reg.list() == ["x"]
        fb = reg.lookup("x")
        np.testing.assert_array_equal(fb.to_ndarray(), x)
        np.testing.assert_array_equal(fa.to_ndarray(), x)
        idx = rng.integers(0, len(x), 1000)
        fa[ak.array(idx)] = ak.array(idx * 3)
        y = x.copy()
        y[idx] = idx * 3
        np.testing.assert_array_equal(fa.to_ndarray(), y)
        b = reg.create("y", ak.int64, 10)
        b[:] = ak.arange(0, 10, 1)
        assert b.to_ndarray().tolist() == list(range(10))
        assert server.alive(), server.output()
    finally:
        kodiak.disconnect()
        if server:
            server.stop()
        famd.stop()
        shutil.rmtree(d, ignore_errors=True)

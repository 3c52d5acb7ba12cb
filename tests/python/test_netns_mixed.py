# SPDX-License-Identifier: Apache-2.0
"""One client, two providers (issue 16), from Python: on network-namespace
host 0 a famd (shm) and kodiakd's two ranks, which also reach a second
famd on host 1 (tcp); no provider is forced anywhere, so each rank's libfam
takes shm for its own host's famd and tcp for the other. The ranks' log
says which (one line per rank and server), and a FAM array (striped over
all memory servers, python/kodiak/famarray.py) is checked against NumPy: scatter with duplicate indices,
gather, atomic adds and fetch-adds. Skipped, with the reason, where this
process cannot make network namespaces (not root)."""
import os
import re
import subprocess

import numpy as np
import pytest

from conftest import BUILD, mpi_env
from netns_hosts import NetnsHosts, netns, serve

WHY = netns.available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")

HERE, THERE = 0, 1


class Hosts(NetnsHosts):
    """Host 0: famd (shm), kodiakd ranks, the Python client; host 1: famd
    (tcp)."""

    def __init__(self):
        super().__init__(2, "kodiak-netns-mixed-")
        try:
            self.local = self.famd(HERE, "shm", "64M")
            self.remote = self.famd(THERE, "tcp", "64M")
            self.servers = f"{self.local},{self.remote}"
            self.connect_file = os.path.join(self.dir, "connect.json")
            env = {k: v for k, v in mpi_env().items() if k != "FAM_PROVIDER"}
            self.log = open(os.path.join(self.dir, "kodiakd.log"), "w+")
            self.mpirun = self.c.popen(HERE, [
                "mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none",
                "-x", "FAM_SERVERS=" + self.servers, "-x", "PATH",
                os.path.join(BUILD, "kodiakd"), "--host", self.c.addr[HERE],
                "--port", "0", "--connect-file", self.connect_file],
                stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            self.wait_kodiakd(self.mpirun, self.output)
        except BaseException:
            self.stop()
            raise

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def python(self, code, timeout=120):
        """Run `code` on host 0 after `import kodiak as ak` and connecting;
        returns its stdout."""
        prelude = f"ak.connect(connect_file={self.connect_file!r}, timeout=20)\n"
        env = self.client_env()
        env.pop("FAM_PROVIDER", None)
        return self.run_python(HERE, prelude, code, env, timeout)


@pytest.fixture(scope="module")
def hosts():
    yield from serve(Hosts)


def test_fam_arrays_over_shm_here_and_tcp_there(hosts, tmp_path):
    out = tmp_path / "got.npz"
    hosts.python(f"""
        rng = np.random.default_rng(1616)
        n = 300_000
        idx = rng.integers(0, n, 60_000)
        val = rng.integers(-10**12, 10**12, 60_000)
        reg = ak.fam_region("mixed16")
        fa = reg.create("x", ak.int64, n)
        fa[ak.array(idx)] = ak.array(val)
        g = fa[ak.array(idx)].to_ndarray()
        fa.add(ak.array(idx[:5000]), ak.array(np.arange(5000)))
        old = fa.fetch_add(ak.array(np.unique(idx[:50])), 11).to_ndarray()
        np.savez({str(out)!r}, g=g, whole=fa.to_ndarray(), old=old)
        fa.delete()
        """)
    got = np.load(out)
    rng = np.random.default_rng(1616)
    n = 300_000
    idx = rng.integers(0, n, 60_000)
    val = rng.integers(-10**12, 10**12, 60_000)
    ref = np.zeros(n, dtype=np.int64)
    ref[idx] = val  # the last write of a duplicate index wins, as in NumPy
    np.testing.assert_array_equal(got["g"], ref[idx])
    np.add.at(ref, idx[:5000], np.arange(5000))
    u = np.unique(idx[:50])
    np.testing.assert_array_equal(got["old"], ref[u])
    ref[u] += 11
    np.testing.assert_array_equal(got["whole"], ref)

    # each rank took shm for the famd on its host and tcp for the other
    log = hosts.output()
    lines = re.findall(r"kodiakd rank (\d+): memory server (\S+) over (\w+)(.*)", log)
    seen = {(int(r), srv): (prov, rest) for r, srv, prov, rest in lines}
    for rank in (0, 1):
        assert seen.get((rank, hosts.local), ("",))[0] == "shm", log
        assert "(this host)" in seen[(rank, hosts.local)][1]
        assert seen.get((rank, hosts.remote), ("",))[0] == "tcp", log
        assert "(this host)" not in seen[(rank, hosts.remote)][1]


# SPDX-License-Identifier: Apache-2.0
"""One client, two providers (issue 16), from Python: on network-namespace
host 0 a famd (shm) and kodiakd's two ranks, which also reach a second
famd on host 1 (tcp); no provider is forced anywhere, so each rank's libfam
takes shm for its own host's famd and tcp for the other. The ranks' log
says which (one line per rank and server), and a FAM array (striped over
all memory servers, python/kodiak/famarray.py) is checked against NumPy: scatter with duplicate indices,
gather, atomic adds and fetch-adds. Skipped, with the reason, where this
process cannot make network namespaces (not root)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

from conftest import BUILD, REPO, mpi_env

sys.path.insert(0, os.path.join(REPO, "tests", "netns"))
import netns  # noqa: E402

WHY = netns.available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")

HERE, THERE = 0, 1


class Hosts:
    """Host 0: famd (shm), kodiakd ranks, the Python client; host 1: famd
    (tcp)."""

    def __init__(self):
        self.c = netns.Cluster(2).create()
        self.dir = tempfile.mkdtemp(prefix="kodiak-netns-mixed-")
        self.procs = []
        try:
            self.local = self._famd(HERE, "shm")
            self.remote = self._famd(THERE, "tcp")
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
            self.procs.append(self.mpirun)
            deadline = time.time() + 90
            while not os.path.exists(self.connect_file):
                if self.mpirun.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"kodiakd did not start: {self.output()}")
                time.sleep(0.1)
            time.sleep(0.2)  # written whole (kodiakd renames it into place)
        except BaseException:
            self.stop()
            raise

    def _famd(self, h, provider):
        log = open(os.path.join(self.dir, f"famd{h}.log"), "w+")
        p = self.c.popen(h, [os.path.join(BUILD, "famd"), "--provider", provider, "--host",
                             self.c.addr[h], "--port", "0", "--pool-size", "64M"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        deadline = time.time() + 30
        while True:
            log.seek(0)
            for line in log.read().splitlines():
                if line.startswith("famd ready "):
                    return line.split()[2]
            if p.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"famd did not start on host {h}: {log.read()}")
            time.sleep(0.05)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def python(self, code, timeout=120):
        """Run `code` on host 0 after `import kodiak as ak` and connecting;
        returns its stdout."""
        script = "import kodiak as ak, numpy as np, json, sys\n" \
                 f"ak.connect(connect_file={self.connect_file!r}, timeout=20)\n" + \
                 textwrap.dedent(code)
        env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "python")}
        env.pop("FAM_PROVIDER", None)
        r = self.c.run(HERE, ["/usr/bin/python3", "-c", script], env=env,
                       capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.c.destroy()  # also kills what is left in the namespaces
        subprocess.run(["rm", "-rf", self.dir])


@pytest.fixture(scope="module")
def hosts():
    h = Hosts()
    try:
        yield h
    finally:
        h.stop()


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


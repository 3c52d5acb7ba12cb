# SPDX-License-Identifier: Apache-2.0
"""Many hosts, proven on network-namespace hosts (tests/netns/netns.py):
famd on two memory hosts, kodiakd's two ranks on two compute hosts
(mpirun reaching the other namespace through tests/netns/rsh_agent.sh),
the Python client on a host of its own and a C program on yet another,
all over the tcp provider. Each client runs as a subprocess in its
namespace; results are checked against NumPy here. Skipped, with the
reason, where this process cannot make network namespaces (not root)."""
import json
import os
import subprocess
import textwrap
import time

import numpy as np
import pytest

from conftest import BUILD, REPO, mpi_env
from netns_hosts import NetnsHosts, netns, serve

WHY = netns.available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")

CLIENT, MEM, COMPUTE, CPROG = 0, (1, 2), (3, 4), 5


class Hosts(NetnsHosts):
    """The namespace hosts with famd and kodiakd running on them."""

    def __init__(self):
        super().__init__(6, "kodiak-netns-")
        try:
            self.servers = ",".join(self.famd(h, "tcp", "128M") for h in MEM)
            self.connect_file = os.path.join(self.dir, "connect.json")
            hostfile = os.path.join(self.dir, "hosts")
            with open(hostfile, "w") as f:
                f.writelines(f"{self.c.addr[h]} slots=1\n" for h in COMPUTE)
            env = {**mpi_env(), **self.c.env()}
            log = open(os.path.join(self.dir, "kodiakd.log"), "w+")
            self.mpirun = self.c.popen(COMPUTE[0], [
                "mpirun", "--hostfile", hostfile, "-np", "2", "--bind-to", "none",
                "--mca", "plm_rsh_agent", netns.AGENT,
                "--mca", "oob_tcp_if_include", "eth0", "--mca", "btl_tcp_if_include", "eth0",
                "--mca", "btl", "tcp,self", "-x", "FAM_SERVERS=" + self.servers,
                "-x", "FAM_PROVIDER=tcp", "-x", "PATH",
                os.path.join(BUILD, "kodiakd"), "--host", self.c.addr[COMPUTE[0]],
                "--port", "0", "--connect-file", self.connect_file],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

            def output():
                log.seek(0)
                return log.read()
            self.wait_kodiakd(self.mpirun, output)
        except BaseException:
            self.stop()
            raise

    def python(self, code, timeout=120):
        """Run `code` in the client's host after `import kodiak as ak` (and
        `connect()`, which connects with a 20 s request deadline); returns
        its stdout."""
        prelude = "def connect():\n" \
                  f"    ak.connect(connect_file={self.connect_file!r}, timeout=20)\n"
        return self.run_python(CLIENT, prelude, code, self.client_env(), timeout)


@pytest.fixture(scope="module")
def hosts():
    yield from serve(Hosts)


def test_the_servers_are_on_other_hosts(hosts):
    info = json.loads(hosts.python("connect(); print(json.dumps(ak.get_config()))"))
    assert info["numLocales"] == 2
    assert info["serverHostname"] == hosts.c.addr[COMPUTE[0]]
    here = hosts.c.run(CLIENT, ["ip", "-o", "-4", "addr"], capture_output=True,
                       text=True).stdout
    assert hosts.c.addr[CLIENT] in here
    for a in [*hosts.servers.split(","), info["serverHostname"]]:
        assert a.split(":")[0] not in here  # nothing of the cluster on the client's host
        assert a.split(":")[0] in hosts.c.addr


def test_fam_array_scatter_gather_and_atomics_across_hosts(hosts, tmp_path):
    out = tmp_path / "got.npz"
    hosts.python(f"""
        connect()
        rng = np.random.default_rng(16)
        n = 200_000
        idx = rng.integers(0, n, 50_000)
        val = rng.integers(-10**12, 10**12, 50_000)
        reg = ak.fam_region("netns_sga")
        fa = reg.create("x", ak.int64, n)
        fa[ak.array(idx)] = ak.array(val)
        g = fa[ak.array(idx)].to_ndarray()
        fa.add(ak.array(idx[:1000]), ak.array(np.arange(1000)))
        old = fa.fetch_add(ak.array(np.unique(idx[:10])), 7).to_ndarray()
        np.savez({str(out)!r}, g=g, whole=fa.to_ndarray(), old=old)
        fa.delete()
        """)
    got = np.load(out)
    rng = np.random.default_rng(16)
    n = 200_000
    idx = rng.integers(0, n, 50_000)
    val = rng.integers(-10**12, 10**12, 50_000)
    ref = np.zeros(n, dtype=np.int64)
    ref[idx] = val  # the last write of a duplicate index wins, as in NumPy
    # a duplicated index keeps one of its values; NumPy keeps the last
    np.testing.assert_array_equal(got["g"], ref[idx])
    np.add.at(ref, idx[:1000], np.arange(1000))
    u = np.unique(idx[:10])
    np.testing.assert_array_equal(got["old"], ref[u])
    ref[u] += 7
    np.testing.assert_array_equal(got["whole"], ref)


def test_a_c_program_on_a_third_host_shares_arrays_with_python(hosts):
    n = 100_003
    env = {**mpi_env(), "FAM_SERVERS": hosts.servers, "FAM_PROVIDER": "tcp"}
    r = hosts.c.run(CPROG, ["mpirun", "-np", "1", "--bind-to", "none", "-x", "FAM_SERVERS",
                            "-x", "FAM_PROVIDER", os.path.join(BUILD, "fa_mpi_example"),
                            "fromc", str(n)], env=env, capture_output=True, text=True,
                    timeout=120)
    assert r.returncode == 0, r.stderr
    want = np.arange(n, dtype=np.int64) ** 2
    assert f"total = {want.sum()}" in r.stdout
    got = hosts.python("""
        connect()
        reg = ak.fam_region("fromc", create=False)
        a = reg.lookup("squares").to_ndarray()
        print(json.dumps([int(a.size), int(a.sum()), int(reg.lookup("total")[0])]))
        """)
    size, total, stored = json.loads(got)
    assert (size, total, stored) == (n, int(want.sum()), int(want.sum()))


def test_the_dataset_store_across_hosts(hosts, tmp_path):
    out = tmp_path / "ds.npz"
    hosts.python(f"""
        connect()
        rng = np.random.default_rng(5)
        fare = rng.uniform(0, 100, 300_000)
        ids = np.arange(300_000)
        store = ak.DatasetStore("netns_ds")
        t = store.ingest("T", {{"id": ids, "fare": fare}}, batch_rows=65_536)
        store.ingest("T", {{"id": ids[:1000] + 300_000, "fare": fare[:1000]}})
        v = t["fare"]
        np.savez({str(out)!r}, fare=v.to_ndarray(), id=t["id"].to_ndarray(),
                 big=float(v[v > 50].sum()), n=len(t), nb=t.num_batches)
        """)
    got = np.load(out)
    rng = np.random.default_rng(5)
    fare = rng.uniform(0, 100, 300_000)
    want = np.concatenate([fare, fare[:1000]])
    assert int(got["n"]) == 301_000 and int(got["nb"]) == 6  # 5 batches + 1 appended
    np.testing.assert_array_equal(got["fare"], want)
    np.testing.assert_array_equal(got["id"], np.concatenate([np.arange(300_000),
                                                             np.arange(1000) + 300_000]))
    assert np.isclose(float(got["big"]), want[want > 50].sum(), rtol=1e-12)


def test_a_compute_host_cut_makes_the_client_raise_not_hang(hosts):
    # last in this module: it leaves the compute server broken
    hosts.c.link(COMPUTE[1], False)
    try:
        t0 = time.time()
        out = hosts.python("""
            try:
                connect()
                print("value", int(ak.arange(0, 1_000_000, 1).sum()))
            except Exception as e:
                print("raised", type(e).__name__, e)
            """, timeout=120)
        took = time.time() - t0
    finally:
        hosts.c.link(COMPUTE[1], True)
    assert out.startswith("raised"), out
    assert took < 60, took


def _procs(c, i):
    """Names of the processes running in host i."""
    pids = subprocess.run(["ip", "netns", "pids", c.ns[i]], capture_output=True,
                          text=True).stdout.split()
    return [open(f"/proc/{p}/comm").read().strip() for p in pids
            if os.path.exists(f"/proc/{p}/comm")]


def test_kodiak_up_with_a_hostfile_status_by_host_and_down_after_a_host_vanished(tmp_path):
    # its own hosts: client 0, memory 1, compute 2 and 3
    with netns.Cluster(4) as c:
        home = tmp_path / "home"
        home.mkdir()
        (home / "hosts").write_text(f"# test cluster\nmemory {c.addr[1]} pool=64M data={home}/d1\n"
                                    f"compute {c.addr[2]} ranks=1\ncompute {c.addr[3]} ranks=1\n")
        env = {**mpi_env(), **c.env(), "KODIAK_HOME": str(home), "KODIAK_BUILD": BUILD,
               "PYTHONPATH": os.path.join(REPO, "python")}
        kodiak = ["/usr/bin/python3", os.path.join(REPO, "bin", "kodiak")]

        def run(*args, timeout=200):
            return c.run(0, [*args], env=env, capture_output=True, text=True, timeout=timeout)
        try:
            r = run(*kodiak, "up", "--hostfile", str(home / "hosts"), "--launcher", netns.AGENT)
            assert r.returncode == 0, r.stdout + r.stderr
            r = run(*kodiak, "status")
            assert r.returncode == 0, r.stdout
            assert f"on host {c.addr[1]}" in r.stdout and f"{c.addr[3]} (1 ranks)" in r.stdout
            cf = json.load(open(home / "connect.json"))
            assert cf["host"] == c.addr[2] and cf["fam_servers"][0].startswith(c.addr[1] + ":")
            assert "famd" in _procs(c, 1) and "kodiakd" in _procs(c, 3)
            assert "famd" not in _procs(c, 0) and "kodiakd" not in _procs(c, 0)
            r = run("/usr/bin/python3", "-c", textwrap.dedent("""
                import kodiak as ak, numpy as np
                ak.connect()
                nd = np.random.default_rng(4).integers(-99, 99, 5000)
                fa = ak.fam_region("hf").create("x", ak.int64, 5000)
                fa[ak.arange(0, 5000, 1)] = ak.array(nd)
                got = fa[ak.array(np.arange(4999, -1, -1))].to_ndarray()
                print(int((got == nd[::-1]).all()), int(ak.array(nd).sum()), int(nd.sum()))
                """))
            assert r.returncode == 0, r.stderr
            assert r.stdout.split() == ["1"] + [r.stdout.split()[2]] * 2

            c.link(3, False)  # a compute host vanishes
            r = run(*kodiak, "status")
            assert r.returncode == 2, r.stdout  # not healthy, said so, no hang
            t0 = time.time()
            r = run(*kodiak, "down", "--timeout", "5")
            assert r.returncode == 0, r.stdout + r.stderr
            assert time.time() - t0 < 60
            assert "stopped famd #0 on" in r.stdout and "stopped kodiakd" in r.stdout
            assert "famd" not in _procs(c, 1)  # reachable hosts are clean
            assert not [p for p in _procs(c, 0) if p in ("mpirun", "ssh", "ip")]
            assert not (home / "cluster.json").exists()
            assert run(*kodiak, "status").returncode == 1  # nothing runs
        finally:
            run(*kodiak, "down", "--timeout", "2")


def test_a_crashed_runs_leftovers_are_swept_and_live_ones_kept(hosts):
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(REPO, "tests", "netns", "netns.py"),
                          "run", "2", "--", "sleep", "120"])
    try:
        deadline = time.time() + 30
        mine = lambda: [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                  text=True).stdout.split()
                        if n.startswith(f"kdk-{p.pid}-")]
        while len(mine()) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(mine()) == 2
    finally:
        p.kill()  # SIGKILL: no clean-up of its own
        p.wait()
    assert len(mine()) == 2  # left behind
    netns.sweep()
    assert mine() == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"kb{p.pid}x" not in links and f"kv{p.pid}x" not in links
    # the module's own live hosts are untouched
    live = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert all(ns in live for ns in hosts.c.ns)

# SPDX-License-Identifier: Apache-2.0
"""`kodiak up --hostfile` on network-namespace hosts (tests/netns/netns.py)
with famd --auth munge, and `kodiak down` after a host vanished (its link
cut, its namespace gone): everything reachable is stopped, what is not is
reported, nothing hangs, and the next `kodiak up` is not blocked.

Hosts: 0 runs the `kodiak` command and the Python client, 1 a famd, 2 and
3 kodiakd's ranks (mpirun reaches 3 through tests/netns/rsh_agent.sh, which
is also the launcher of famd). munged is the test's own
(tests/netns/with_munged.py: own key and socket; the socket is a file, so
every namespace host reaches it, as every host of a cluster runs munged
with the same key). Skipped, with the reason, where this process cannot
make network namespaces (not root)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from conftest import BUILD, REPO, mpi_env

sys.path.insert(0, os.path.join(REPO, "tests", "netns"))
import netns  # noqa: E402
import with_munged  # noqa: E402

WHY = netns.available()
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "")
KODIAK = ["/usr/bin/python3", os.path.join(REPO, "bin", "kodiak")]
NOBODY = 65534


@pytest.fixture(scope="module")
def munge():
    d = tempfile.mkdtemp(prefix="kodiak-munge-")
    os.chmod(d, 0o755)
    p = None
    try:
        p, sock = with_munged.start(d)
        yield sock
    finally:
        if p is not None:
            p.terminate()
            p.wait(20)
        shutil.rmtree(d, ignore_errors=True)


class Site:
    """4 namespace hosts and a KODIAK_HOME for `kodiak` run on host 0."""

    def __init__(self, tmp_path):
        self.c = netns.Cluster(4).create()
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.env = {**mpi_env(), **self.c.env(), "KODIAK_HOME": str(self.home),
                    "KODIAK_BUILD": BUILD, "PYTHONPATH": os.path.join(REPO, "python")}
        self.stray = []  # pids to kill at the end (a famd whose namespace we removed)

    def hostfile(self, name, compute=(2, 3)):
        path = self.home / name
        path.write_text(f"memory {self.c.addr[1]} pool=64M\n" +
                        "".join(f"compute {self.c.addr[h]} ranks=1\n" for h in compute))
        return str(path)

    def run(self, *args, timeout=200, env=None):
        return self.c.run(0, [*args], env={**self.env, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)

    def kodiak(self, *args, timeout=200):
        return self.run(*KODIAK, *args, timeout=timeout)

    def up(self, hostfile, *more):
        r = self.kodiak("up", "--hostfile", hostfile, "--launcher", netns.AGENT, *more)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    def python(self, code, timeout=120, env=None):
        return self.run("/usr/bin/python3", "-c", textwrap.dedent(code), timeout=timeout,
                        env=env)

    def procs(self, i):
        """Names of the processes running in host i."""
        pids = subprocess.run(["ip", "netns", "pids", self.c.ns[i]], capture_output=True,
                              text=True).stdout.split()
        out = []
        for p in pids:
            try:
                out.append(open(f"/proc/{p}/comm").read().strip())
            except OSError:
                pass
        return out

    def close(self):
        try:
            self.kodiak("down", "--timeout", "2", timeout=120)
        finally:
            for p in self.stray:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.c.destroy()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.close()


STAT = textwrap.dedent("""
    import ctypes, json, sys
    lib = ctypes.CDLL(sys.argv[1])
    lib.fam_last_error.restype = ctypes.c_char_p
    class Stat(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char * 256), ("size", ctypes.c_uint64),
                    ("used", ctypes.c_uint64), ("id", ctypes.c_uint64),
                    ("region_id", ctypes.c_uint64), ("uid", ctypes.c_uint32),
                    ("gid", ctypes.c_uint32), ("perm", ctypes.c_uint32),
                    ("memory_type", ctypes.c_int), ("interleave", ctypes.c_int),
                    ("stripe_size", ctypes.c_uint64), ("num_servers", ctypes.c_uint32)]
    f, d, st = ctypes.c_void_p(), ctypes.c_void_p(), Stat()
    out = {}
    for what, call in (("init", lambda: lib.fam_initialize(None, ctypes.byref(f))),
                       ("lookup", lambda: lib.fam_lookup(f, sys.argv[3].encode(),
                                                         sys.argv[2].encode(),
                                                         ctypes.byref(d))),
                       ("stat", lambda: lib.fam_stat(f, d, ctypes.byref(st)))):
        rc = call()
        if rc:
            out.update(failed=what, rc=rc, err=lib.fam_last_error().decode())
            break
    else:
        out.update(uid=st.uid, gid=st.gid, perm=st.perm)
    print(json.dumps(out))
""")


def fam_stat(site, famd, region, item, munge_socket):
    """Who famd says owns item (a libfam client of root's on host 0)."""
    r = site.run("/usr/bin/python3", "-c", STAT, os.path.join(BUILD, "libfam.so"), region, item,
                 env={"FAM_SERVERS": famd, "FAM_PROVIDER": "tcp",
                      "FAM_MUNGE_SOCKET": munge_socket})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_kodiak_up_auth_munge_arrays_from_python_are_the_users_not_nobodys(site, munge):
    hf = site.hostfile("hosts")
    site.up(hf, "--auth", "munge", "--munge-socket", munge)
    st = site.kodiak("status")
    assert st.returncode == 0, st.stdout
    assert f"famd --auth munge (munged socket {munge})" in st.stdout
    state = json.load(open(site.home / "cluster.json"))
    assert state["auth"] == "munge"
    famd = state["famd"][0]["address"]
    assert famd.startswith(site.c.addr[1] + ":") and "famd" in site.procs(1)
    # famd runs with --auth munge on host 1 (pids are this machine's: the
    # hosts are network namespaces)
    cmdline = open(f"/proc/{state['famd'][0]['pid']}/cmdline").read().split("\0")
    assert f"--auth munge --munge-socket {munge}" in " ".join(cmdline), cmdline
    r = site.python("""
        import kodiak as ak, numpy as np
        ak.connect()
        fa = ak.fam_region("mu").create("x", ak.int64, 4000)
        fa[ak.arange(0, 4000, 1)] = ak.arange(0, 4000, 1) * 3
        print(int(fa[ak.arange(0, 4000, 1)].sum()), int((np.arange(4000) * 3).sum()))
        """)
    assert r.returncode == 0, r.stderr
    got, want = r.stdout.split()
    assert got == want
    # famd (on host 1) says the array belongs to the user who runs kodiakd
    # on hosts 2 and 3 (root here), as its credential says: not nobody
    s = fam_stat(site, famd, "mu", "x", munge)
    assert "failed" not in s, s
    assert (s["uid"], s["gid"]) == (os.geteuid(), os.getegid()), s
    # a client without a credential is refused, clearly
    s = fam_stat(site, famd, "mu", "x", "/nonexistent/munge.socket")
    assert s["failed"] == "init" and "wants a MUNGE credential" in s["err"], s
    r = site.kodiak("down", "--timeout", "5")
    assert r.returncode == 0 and "stopped famd #0" in r.stdout, r.stdout + r.stderr
    assert "famd" not in site.procs(1)


def test_kodiak_up_auth_munge_without_munged_on_a_host_is_a_clear_error(site):
    hf = site.hostfile("hosts")
    r = site.kodiak("up", "--hostfile", hf, "--launcher", netns.AGENT, "--auth", "munge",
                    "--munge-socket", "/nonexistent/munge.socket")
    assert r.returncode == 1
    assert (f"munged is not running on {site.c.addr[1]} (no socket /nonexistent/munge.socket"
            in r.stderr), r.stderr
    assert not (site.home / "cluster.json").exists()
    assert "famd" not in site.procs(1)
    r = site.kodiak("up", "--auth", "munge")  # one host: not what --auth is for
    assert r.returncode == 1 and "go with --hostfile" in r.stderr, r.stderr
    r = site.kodiak("up", "--hostfile", hf, "--auth", "kerberos")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_down_after_a_compute_host_is_cut_then_up_again(site):
    site.up(site.hostfile("hosts"))
    site.c.link(3, False)  # rank 1's host vanishes
    t0 = time.monotonic()
    r = site.python("""
        import kodiak as ak
        try:
            ak.connect(timeout=10)
            print("value", int(ak.arange(0, 1_000_000, 1).sum()))
        except Exception as e:
            print("raised", type(e).__name__, e)
        """)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("raised"), r.stdout  # the client raises, never hangs
    assert took < 60, took
    t0 = time.monotonic()
    r = site.kodiak("down", "--timeout", "5")
    took = time.monotonic() - t0
    print(f"kodiak down took {took:.1f} s:\n{r.stdout}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < 90, took
    assert "stopped kodiakd" in r.stdout and "stopped famd #0" in r.stdout, r.stdout
    assert f"compute host {site.c.addr[3]} unreachable" in r.stdout, r.stdout
    assert "famd" not in site.procs(1) and "kodiakd" not in site.procs(2)
    assert not [p for p in site.procs(0) if p in ("mpirun", "ip", "python3", "sh")]
    assert not (site.home / "cluster.json").exists()
    assert not (site.home / "connect.json").exists()
    assert site.kodiak("status").returncode == 1
    # nothing left blocks the next cluster (on the hosts still there)
    site.up(site.hostfile("hosts2", compute=(2,)))
    r = site.python("""
        import kodiak as ak
        ak.connect(timeout=20)
        print(int(ak.arange(0, 1000, 1).sum()))
        """)
    assert r.returncode == 0 and r.stdout.split() == [str(sum(range(1000)))], r.stderr
    r = site.kodiak("down", "--timeout", "5")
    assert r.returncode == 0 and "unreachable" not in r.stdout, r.stdout


def test_down_after_a_memory_and_a_compute_host_vanished_with_their_namespaces(site):
    site.up(site.hostfile("hosts"))
    for h in (1, 3):  # the memory host and rank 1's compute host
        pids = [int(p) for p in subprocess.run(["ip", "netns", "pids", site.c.ns[h]],
                                               capture_output=True, text=True).stdout.split()]
        assert pids
        site.stray += pids  # theirs to clean up when the host is back: ours at the end
        site.c.link(h, False)  # unreachable over the network ...
        subprocess.run(["ip", "netns", "del", site.c.ns[h]], check=True)  # ... and by name
    t0 = time.monotonic()
    r = site.kodiak("down", "--timeout", "5", timeout=150)
    took = time.monotonic() - t0
    print(f"kodiak down took {took:.1f} s:\n{r.stdout}")  # (pytest -s shows it)
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < 90, took
    assert "stopped kodiakd" in r.stdout, r.stdout
    assert f"famd #0 on {site.c.addr[1]}" in r.stdout and "left as it is" in r.stdout, r.stdout
    assert "stopped famd" not in r.stdout
    assert f"compute host {site.c.addr[3]} unreachable" in r.stdout, r.stdout
    assert f"compute host {site.c.addr[2]}" not in r.stdout, r.stdout
    assert "kodiakd" not in site.procs(2)  # the reachable host is clean
    assert not (site.home / "cluster.json").exists()
    assert site.kodiak("status").returncode == 1
    # the next `kodiak up` is not blocked (a cluster of the hosts still there)
    hf = site.home / "hosts2"
    hf.write_text(f"compute {site.c.addr[2]} ranks=1\n")
    site.up(str(hf))
    assert site.kodiak("status").returncode == 0

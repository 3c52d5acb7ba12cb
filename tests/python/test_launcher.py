# SPDX-License-Identifier: Apache-2.0
"""The launcher: `kodiak up/status/down` (bin/kodiak, python3 -m kodiak),
ak.start()/ak.stop(), and make install-dev. Every test runs in a state
directory of its own (KODIAK_HOME) and stops what it started."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import BUILD, REPO, Server

import kodiak
from kodiak import client, launcher

KODIAK = os.path.join(REPO, "bin", "kodiak")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh KODIAK_HOME for this test (and the kodiak commands it runs);
    whatever runs there is stopped at the end."""
    d = tmp_path / "home"
    monkeypatch.setenv("KODIAK_HOME", str(d))
    monkeypatch.delenv("KODIAK_CONNECT_FILE", raising=False)
    monkeypatch.setenv("KODIAK_BUILD", BUILD)
    yield d
    kodiak.disconnect()
    launcher.down(timeout=2)


def run(*args, check=None):
    """Run bin/kodiak with the test's environment; returns CompletedProcess."""
    r = subprocess.run([KODIAK, *args], capture_output=True, text=True, timeout=120)
    if check is not None:
        assert r.returncode == check, r.stdout + r.stderr
    return r


def up(*args):
    return run("up", "--pool-size", "32M", *args, check=0)


def state(home):
    with open(home / "cluster.json") as f:
        return json.load(f)


def all_pids(st):
    return ([st["mpirun"]["pid"]] + [r["pid"] for r in st["kodiakd"]] +
            [f["pid"] for f in st["famd"]])


def wait_gone(pids, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(launcher._alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def listening(address):
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


# ---- kodiak up / status / down -------------------------------------------------------------

def test_up_starts_famd_and_kodiakd_and_connect_reads_the_connect_file(home):
    up("--fam-servers", "2", "--ranks", "2")
    with open(home / "connect.json") as f:
        cf = json.load(f)
    assert cf["ranks"] == 2 and cf["version"] == client.PROTOCOL_VERSION
    assert len(cf["fam_servers"]) == 2 and len(set(cf["fam_servers"])) == 2
    for addr in cf["fam_servers"]:
        assert addr.startswith("127.0.0.1:") and listening(addr)
    st = state(home)
    assert [f["address"] for f in st["famd"]] == cf["fam_servers"]
    assert cf["famd_pids"] == [f["pid"] for f in st["famd"]]
    assert cf["mpirun_pid"] == st["mpirun"]["pid"]
    assert len(st["kodiakd"]) == 2
    for pid in all_pids(st):
        assert launcher._alive(pid)
    # the processes are detached: a session of their own, not the test's
    for pid in [st["mpirun"]["pid"]] + [f["pid"] for f in st["famd"]]:
        assert os.getsid(pid) == pid != os.getsid(0)
    info = kodiak.connect()
    assert info["ranks"] == 2 and info["pid"] == cf["pid"]
    nd = np.arange(-500, 500)
    np.testing.assert_array_equal(kodiak.array(nd).to_ndarray(), nd)


def test_famd_runs_with_the_provider_and_pool_size_given(home):
    up("--fam-servers", "1", "--ranks", "1", "--provider", "tcp", "--pool-size", "48M")
    with open(home / "famd0.log") as f:
        line = f.readline()
    assert "ready" in line and "provider=tcp" in line and f"pool={48 << 20}" in line
    with open(home / "connect.json") as f:
        assert json.load(f)["fam_provider"] == "tcp"


def test_kodiakd_gets_the_port_and_memory_limit_given(home):
    with socket.socket() as s:  # a port that is free right now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    up("--fam-servers", "0", "--ranks", "3", "--port", str(port), "--memory-limit", "8M")
    with open(home / "connect.json") as f:
        assert json.load(f)["port"] == port
    kodiak.connect()
    assert [r["limit"] for r in kodiak.get_mem_status()] == [8 << 20] * 3


def test_status_shows_ranks_famd_and_memory_and_exits_0(home):
    up("--fam-servers", "2", "--ranks", "2")
    kodiak.connect()
    a = kodiak.zeros(10001, dtype=kodiak.int64)  # 5000 and 5001 elements
    r = run("status", check=0)
    st = state(home)
    for f in st["famd"]:
        assert f["address"] in r.stdout and str(f["pid"]) in r.stdout
    assert "rank 0" in r.stdout and "rank 1" in r.stdout and "running" in r.stdout
    js = json.loads(run("status", "--json", check=0).stdout)
    assert js["running"] and js["answering"]
    assert [k["used"] for k in js["kodiakd"]] == [5000 * 8, 5001 * 8]
    assert {k["pid"] for k in js["kodiakd"]} == {k["pid"] for k in st["kodiakd"]}
    assert js["kodiakd"][0]["pid"] == kodiak.server_info()["pid"]  # rank 0 first
    assert all(k["alive"] for k in js["kodiakd"]) and all(f["alive"] for f in js["famd"])
    del a


def test_status_exits_1_when_nothing_runs(home):
    r = run("status", check=1)
    assert "no cluster running" in r.stdout
    assert run("status", "--json", check=1).stdout.strip() == "null"


def test_up_refuses_while_a_cluster_runs_and_leaves_it_alone(home):
    up("--fam-servers", "1", "--ranks", "1")
    before = state(home)
    cf = (home / "connect.json").read_text()
    r = run("up", "--fam-servers", "1", "--ranks", "1")
    assert r.returncode == 1 and "already running" in r.stderr and "kodiak down" in r.stderr
    assert state(home) == before and (home / "connect.json").read_text() == cf
    assert all(launcher._alive(p) for p in all_pids(before))
    assert kodiak.connect()["pid"] == json.loads(cf)["pid"]


def test_down_stops_everything_and_removes_the_state(home):
    up("--fam-servers", "2", "--ranks", "2")
    st = state(home)
    r = run("down", check=0)
    assert "by shutdown command" in r.stdout and r.stdout.count("famd #") == 2
    assert wait_gone(all_pids(st))
    assert not (home / "cluster.json").exists() and not (home / "connect.json").exists()
    assert (home / "kodiakd.log").exists()  # logs stay for post-mortems
    r = run("down", check=0)
    assert "no cluster running" in r.stdout


def test_down_when_nothing_ever_ran_is_fine(home):
    r = run("down", check=0)
    assert "no cluster running" in r.stdout


def test_after_a_crash_status_says_so_and_up_starts_afresh(home):
    up("--fam-servers", "1", "--ranks", "2")
    st = state(home)
    for pid in launcher.session_pids(st["mpirun"]["pid"]) + [st["famd"][0]["pid"]]:
        os.kill(pid, signal.SIGKILL)
    assert wait_gone(all_pids(st))
    r = run("status")
    assert r.returncode == 2 and "DEAD" in r.stdout
    up("--fam-servers", "1", "--ranks", "2")
    assert state(home)["mpirun"]["pid"] != st["mpirun"]["pid"]
    assert kodiak.connect()["ranks"] == 2


def test_a_stale_connect_file_does_not_stop_up(home):
    home.mkdir(parents=True)
    (home / "connect.json").write_text(json.dumps({"host": "127.0.0.1", "port": 1,
                                                    "pid": 2**22 + 12345}))
    up("--fam-servers", "0", "--ranks", "1")
    assert kodiak.connect()["ranks"] == 1


def test_down_escalates_to_sigkill_when_nothing_answers(home):
    up("--fam-servers", "1", "--ranks", "2")
    st = state(home)
    # a stopped mpirun ignores SIGTERM; a stopped rank 0 cannot answer
    os.kill(st["mpirun"]["pid"], signal.SIGSTOP)
    for r in st["kodiakd"]:
        os.kill(r["pid"], signal.SIGSTOP)
    t = time.time()
    r = run("down", "--timeout", "1", check=0)
    assert "SIGKILL" in r.stdout
    assert wait_gone(all_pids(st), timeout=5)
    assert time.time() - t < 30
    assert not (home / "cluster.json").exists()


def test_bad_options_are_refused_before_anything_starts(home):
    for args, text in [(["--ranks", "0"], "ranks"), (["--memory-limit", "lots"], "memory_limit"),
                       (["--pool-size", "-1"], "pool_size"), (["--port", "70000"], "port"),
                       (["--fam-servers", "-1"], "fam_servers")]:
        r = run("up", *args)
        assert r.returncode == 1 and text in r.stderr, (args, r.stderr)
    assert run("up", "--provider", "verbs").returncode == 2  # argparse's choices
    assert not (home / "cluster.json").exists()


def test_a_famd_that_fails_is_reported_with_its_log_and_nothing_is_left(home):
    r = run("up", "--fam-servers", "2", "--ranks", "1", "--pool-size", "1M")  # famd: min 16M
    assert r.returncode == 1 and "famd exited" in r.stderr and "pool" in r.stderr
    assert not (home / "cluster.json").exists() and not (home / "connect.json").exists()
    assert run("status").returncode == 1


def test_binaries_are_looked_for_in_kodiak_build(home, tmp_path, monkeypatch):
    empty = tmp_path / "nobuild"
    empty.mkdir()
    monkeypatch.setenv("KODIAK_BUILD", str(empty))
    with pytest.raises(launcher.LaunchError, match="KODIAK_BUILD"):
        launcher.up(fam_servers=1, ranks=1)
    links = tmp_path / "links"
    links.mkdir()
    for name in ("kodiakd", "famd"):
        os.symlink(os.path.join(BUILD, name), links / name)
    monkeypatch.setenv("KODIAK_BUILD", str(links))
    assert launcher.find_binary("kodiakd") == str(links / "kodiakd")
    monkeypatch.delenv("KODIAK_BUILD")
    # without it: the checkout's build/, then PATH (tests may run from
    # another build directory, where build/ need not exist)
    in_repo = os.path.join(REPO, "build", "famd")
    if os.path.exists(in_repo):
        assert launcher.find_binary("famd") == in_repo
    elif shutil.which("famd"):
        assert launcher.find_binary("famd") == shutil.which("famd")
    else:
        with pytest.raises(launcher.LaunchError, match="PATH"):
            launcher.find_binary("famd")


def test_python_m_kodiak_and_a_symlink_to_bin_kodiak_work(home, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    r = subprocess.run([sys.executable, "-m", "kodiak", "status"], capture_output=True,
                       text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 1 and "no cluster running" in r.stdout
    link = tmp_path / "kodiak"
    os.symlink(KODIAK, link)
    r = subprocess.run([str(link), "down"], capture_output=True, text=True, cwd="/",
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                       timeout=60)
    assert r.returncode == 0 and "no cluster running" in r.stdout


# ---- ak.start / ak.stop ----------------------------------------------------------------------

def test_start_connects_and_stop_stops(home):
    info = kodiak.start(fam_servers=1, ranks=3, memory_limit="4M", pool_size="32M")
    assert info["ranks"] == 3 and info["memory_limit"] == 4 << 20
    assert kodiak.connected()
    st = kodiak.cluster_status()
    assert st["running"] and len(st["famd"]) == 1 and len(st["kodiakd"]) == 3
    a = kodiak.arange(100)
    np.testing.assert_array_equal(a.to_ndarray(), np.arange(100))
    with pytest.raises(kodiak.ClusterRunning, match="already running"):
        kodiak.start(fam_servers=1, ranks=1)
    assert kodiak.connected() and kodiak.list_symbols() == [a.name]
    pids = all_pids(state(home))
    done = kodiak.stop()
    assert any("shutdown command" in line for line in done)
    assert not kodiak.connected()
    assert wait_gone(pids)
    assert launcher._children == []  # our children were reaped, no zombies
    assert kodiak.cluster_status() is None
    assert kodiak.stop() == []
    with pytest.raises(ConnectionError, match="no running kodiak cluster"):
        kodiak.connect()


def test_connect_without_a_connect_file_tries_localhost_5555_as_arkouda(home):
    if client._port_open("127.0.0.1", 5555):
        pytest.skip("something else listens on localhost:5555")
    with pytest.raises(ConnectionError, match="nothing listens on localhost:5555"):
        kodiak.connect()
    s = Server(2, args=("--port", "5555"))
    try:
        assert s.port == 5555
        os.remove(s.connect_file)  # as a kodiakd someone started by hand
        # it is tried, but without its connect file there is no token
        with pytest.raises(PermissionError, match="127.0.0.1:5555 refused the access token"):
            kodiak.connect()
        info = kodiak.connect(access_token=s.token)
        assert info["ranks"] == 2
        assert client._conn.endpoint == "tcp://127.0.0.1:5555"
        np.testing.assert_array_equal(kodiak.arange(10).to_ndarray(), np.arange(10))
        # a connect file named on purpose is not replaced by the default port
        with pytest.raises(ConnectionError, match="connect file"):
            kodiak.connect(connect_file=str(home / "nowhere.json"))
    finally:
        kodiak.disconnect()
        s.stop()


def test_start_with_bad_arguments_starts_nothing(home):
    with pytest.raises(ValueError):
        kodiak.start(ranks=0)
    with pytest.raises(ValueError):
        kodiak.start(provider="carrier-pigeon")
    with pytest.raises(ValueError):
        kodiak.start(memory_limit="12 parsecs")
    assert kodiak.cluster_status() is None


@pytest.mark.parametrize("text,n", [(1000, 1000), ("1000", 1000), ("4K", 4096), ("4KiB", 4096),
                                    ("16M", 16 << 20), ("2g", 2 << 30), ("1T", 1 << 40),
                                    ("3MB", 3 << 20)])
def test_sizes_are_parsed_with_binary_suffixes(text, n):
    assert launcher.parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "M", "1.5G", "-3", "0", "1X", True, 0, "12 G"])
def test_bad_sizes_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        launcher.parse_size(bad)


# ---- make install-dev ---------------------------------------------------------------------------

def test_install_dev_writes_a_pth_and_a_symlink_once(tmp_path):
    site, bindir = tmp_path / "site", tmp_path / "bin"
    env = dict(os.environ, KODIAK_SITE_DIR=str(site), KODIAK_BIN_DIR=str(bindir))
    script = os.path.join(REPO, "scripts", "install-dev.sh")
    if os.geteuid() != 0:
        pytest.skip("install-dev installs only as root")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=True)
    assert "kodiak.pth" in first.stdout
    assert (site / "kodiak.pth").read_text().strip() == os.path.realpath(
        os.path.join(REPO, "python"))
    assert os.readlink(bindir / "kodiak") == os.path.realpath(KODIAK)
    second = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                            check=True)
    assert second.stdout == ""  # idempotent: nothing to do the second time
    # the .pth makes `import kodiak` work for a python that knows nothing else
    # (-S: not the machine's own site dirs, whose kodiak.pth may name
    # another checkout; Debian's dist-packages for numpy and zmq)
    r = subprocess.run([sys.executable, "-S", "-c", "import site; "
                        "site.addsitedir('/usr/lib/python3/dist-packages'); "
                        f"site.addsitedir({str(site)!r}); "
                        "import kodiak, os; print(os.path.realpath(kodiak.__file__))"],
                       capture_output=True, text=True, cwd="/",
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.stdout.strip() == os.path.realpath(os.path.join(REPO, "python", "kodiak",
                                                             "__init__.py"))


def test_install_dev_as_another_user_only_says_what_to_export(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    script = os.path.join(REPO, "scripts", "install-dev.sh")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "bash", script], capture_output=True, text=True, cwd="/",
                       env=dict(os.environ, KODIAK_SITE_DIR=str(tmp_path / "s"),
                                KODIAK_BIN_DIR=str(tmp_path / "b")))
    assert r.returncode == 0 and "PYTHONPATH=" in r.stdout
    assert not (tmp_path / "s").exists() and not (tmp_path / "b").exists()


def test_shutdown_of_a_launched_cluster_stops_its_famds_too(home):
    up("--fam-servers", "2", "--ranks", "1")
    st = state(home)
    pids = all_pids(st)
    kodiak.connect()
    assert kodiak.arange(3).tolist() == [0, 1, 2]
    kodiak.shutdown()
    assert wait_gone(pids)
    assert not (home / "cluster.json").exists()
    assert run("status").returncode == 1
    info = kodiak.start(fam_servers=1, ranks=1, pool_size="32M")  # a new one starts at once
    assert info["ranks"] == 1
    kodiak.stop()


def test_persistent_pools_keep_fam_arrays_across_down_and_up(home):
    up("--fam-servers", "2", "--ranks", "1", "--persistent")
    first = [f["address"] for f in state(home)["famd"]]
    kodiak.connect()
    fa = kodiak.fam_region("keep").create("kept", kodiak.int64, 100_003)
    fa[0:100_003] = kodiak.arange(100_003) * 3
    kodiak.disconnect()
    run("down", check=0)
    assert (home / "famd0.pool").exists() and (home / "famd1.pool").exists()
    up("--fam-servers", "2", "--ranks", "2", "--persistent")
    assert [f["address"] for f in state(home)["famd"]] == first
    kodiak.connect()
    got = kodiak.fam_region("keep").lookup("kept").to_ndarray()
    np.testing.assert_array_equal(got, np.arange(100_003) * 3)


def test_auth_options_are_checked_before_anything_starts(home, tmp_path):
    hf = tmp_path / "hosts"
    hf.write_text("memory 127.0.0.1 pool=16M\ncompute 127.0.0.1 ranks=1\n")
    with pytest.raises(ValueError, match="auth and munge_socket go with hostfile"):
        kodiak.start(fam_servers=0, ranks=1, auth="munge")
    with pytest.raises(ValueError, match="auth must be 'none' or 'munge'"):
        launcher.up_hosts(str(hf), auth="kerberos")
    with pytest.raises(ValueError, match="munge_socket is for auth='munge'"):
        launcher.up_hosts(str(hf), munge_socket="/run/munge/munge.socket.2")
    with pytest.raises(ValueError, match="absolute path"):
        launcher.up_hosts(str(hf), auth="munge", munge_socket="munge.socket")
    r = run("up", "--munge-socket", "/x")
    assert r.returncode == 1 and "go with --hostfile" in r.stderr, r.stderr
    assert not (home / "cluster.json").exists()

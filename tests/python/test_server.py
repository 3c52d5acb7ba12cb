# SPDX-License-Identifier: Apache-2.0
"""The server itself: its symbol table, memory accounting and limit, how it
stops (shutdown command, SIGTERM to mpirun) and that an idle server is idle."""
import json
import os
import signal
import time

import numpy as np
import pytest
import zmq

from conftest import Server, connected_to, owned, plain

import kodiak
from kodiak import launcher


def block_sizes(n, nranks):
    """Elements of an n-element array on each rank: rank r holds
    [n*r/R, n*(r+1)/R) (kd_block)."""
    return [n * (r + 1) // nranks - n * r // nranks for r in range(nranks)]


def used_per_rank(ak):
    return [r["used"] for r in ak.get_mem_status()]


def symbols_seen_by_another_client(port, token):
    """list_symbols on a connection of its own: it carries no "free" list."""
    sock = plain(zmq.Context.instance().socket(zmq.REQ), token)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(b'{"cmd": "list_symbols"}')
        assert sock.poll(10000)
        return [s["name"] for s in json.loads(sock.recv())["result"]["symbols"]]
    finally:
        sock.close(0)


# ---- the symbol table -------------------------------------------------------------------

def test_list_symbols_grows_on_creation_and_shrinks_after_del(ak):
    before = set(ak.list_symbols())
    a = ak.arange(10)
    b = ak.zeros(5)
    names = set(ak.list_symbols())
    assert names - before == {a.name, b.name}
    del a
    assert set(ak.list_symbols()) - before == {b.name}
    del b
    assert set(ak.list_symbols()) == before


def test_a_deleted_array_is_freed_with_the_next_request(ak, server):
    a = ak.arange(10)
    name = a.name
    del a
    # nothing was sent yet: another client still sees it
    assert name in symbols_seen_by_another_client(server.port, server.token)
    ak.arange(3)  # any request carries the name in its "free" list
    assert name not in symbols_seen_by_another_client(server.port, server.token)


def test_symbols_are_listed_oldest_first_with_dtype_and_size(ak):
    a = ak.arange(7)
    b = ak.ones(3, dtype=ak.bool)
    info = {s["name"]: s for s in kodiak.server.symbol_info()}
    assert info[a.name] == {"name": a.name, "dtype": "int64", "size": 7}
    assert info[b.name] == {"name": b.name, "dtype": "bool", "size": 3}
    names = ak.list_symbols()
    assert names.index(a.name) < names.index(b.name)


def test_freeing_many_arrays_at_once(ak):
    before = set(ak.list_symbols())
    arrays = [ak.full(4, i) for i in range(300)]
    assert len(set(ak.list_symbols()) - before) == 300
    del arrays
    assert set(ak.list_symbols()) == before


# ---- memory accounting -------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 1001, 100003])
@pytest.mark.parametrize("dtype,width", [("int64", 8), ("float64", 8), ("bool", 1)])
def test_used_memory_grows_by_each_ranks_block(ak, server, n, dtype, width):
    before = used_per_rank(ak)
    a = ak.zeros(n, dtype=dtype)
    after = used_per_rank(ak)
    assert [x - y for x, y in zip(after, before)] == \
        [k * width for k in block_sizes(n, server.nranks)]
    assert ak.get_mem_used() - sum(before) == n * width
    del a
    assert used_per_rank(ak) == before


def test_memory_status_has_one_entry_per_rank(ak, server):
    st = ak.get_mem_status()
    assert [r["rank"] for r in st] == list(range(server.nranks))
    for r in st:
        assert r["limit"] > 0 and 0 <= r["used"] <= r["limit"] and r["available"] > 0


def test_get_config_says_ranks_port_and_limit_as_arkouda_keys(ak, server):
    cfg = ak.get_config()
    assert cfg["numLocales"] == server.nranks
    assert cfg["ServerPort"] == server.port and cfg["serverHostname"] == "127.0.0.1"
    assert cfg["memoryLimit"] == ak.get_mem_status()[0]["limit"]
    assert cfg["serverPid"] == server.info["pid"]  # rank 0, as in the connect file
    assert cfg["numPUs"] >= 1 and cfg["physicalMemory"] > 0
    assert cfg["arkoudaVersion"] == ak.__version__


@pytest.fixture(scope="module")
def limited():
    """kodiakd with 2 ranks and --memory-limit 1M."""
    yield from owned(Server(2, ("--memory-limit", "1M")))


@pytest.fixture
def lak(limited):
    yield from connected_to(limited)


def test_the_limit_is_the_one_given_on_the_command_line(lak):
    assert [r["limit"] for r in lak.get_mem_status()] == [2**20, 2**20]
    assert kodiak.server_info()["memory_limit"] == 2**20


def test_allocation_over_the_limit_is_a_memoryerror_and_the_server_goes_on(lak):
    ak = lak
    keep = ak.arange(1000)
    used = used_per_rank(ak)
    with pytest.raises(MemoryError, match="over its memory limit of 1048576 bytes"):
        ak.zeros(300000, dtype=ak.int64)  # 1.2 MB per rank
    assert used_per_rank(ak) == used  # nothing half-allocated stays charged
    np.testing.assert_array_equal(keep.to_ndarray(), np.arange(1000))
    b = ak.full(1000, 3)
    np.testing.assert_array_equal(b.to_ndarray(), np.full(1000, 3))


def test_the_limit_is_exact_to_the_element(lak):
    ak = lak
    free = min(r["limit"] - r["used"] for r in ak.get_mem_status())
    n = 2 * (free // 8)  # fills both ranks to the byte (used is equal on both)
    assert used_per_rank(ak)[0] == used_per_rank(ak)[1]
    a = ak.zeros(n, dtype=ak.int64)
    assert all(r["used"] == r["limit"] for r in ak.get_mem_status())
    with pytest.raises(MemoryError):
        ak.zeros(1, dtype=ak.bool)
    del a
    with pytest.raises(MemoryError):
        ak.zeros(n + 1, dtype=ak.int64)
    ak.zeros(n, dtype=ak.int64)  # fits again once `a` is freed


# ---- stopping ---------------------------------------------------------------------------------

def wait_gone(pids, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(launcher._alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_shutdown_command_stops_every_rank_with_exit_code_0():
    s = Server(2)
    try:
        ranks = launcher.rank_pids(s.proc.pid)
        assert len(ranks) == 2
        kodiak.connect("127.0.0.1", s.port, access_token=s.token)
        kodiak.shutdown()
        assert not kodiak.connected()
        assert s.proc.wait(20) == 0
        assert wait_gone(ranks)
        assert not os.path.exists(s.connect_file)
        assert "kodiakd stopped" in s.output()
    finally:
        s.stop()


def test_sigterm_to_mpirun_stops_every_rank_cleanly():
    """Open MPI's mpirun passes SIGTERM on to the ranks and itself always
    exits with status 1 after a signal; what we check is that kodiakd stops
    cleanly before mpirun's SIGKILL (a second later): rank 0 removes the
    connect file and reports a clean stop once all ranks agreed on it."""
    s = Server(2)
    try:
        ranks = launcher.rank_pids(s.proc.pid)
        assert len(ranks) == 2
        t = time.time()
        os.kill(s.proc.pid, signal.SIGTERM)
        s.proc.wait(30)
        assert wait_gone(ranks)
        assert not os.path.exists(s.connect_file)
        assert "kodiakd stopped (signal from mpirun)" in s.output()
        print(f"\nSIGTERM to mpirun: everything gone in {time.time() - t:.2f} s, mpirun "
              f"exit status {s.proc.returncode}")
    finally:
        s.stop()


def test_sigterm_to_rank_0_alone_stops_the_server_with_exit_code_0():
    s = Server(2)
    try:
        ranks = launcher.rank_pids(s.proc.pid)
        os.kill(s.info["pid"], signal.SIGTERM)
        assert s.proc.wait(20) == 0
        assert wait_gone(ranks)
        assert not os.path.exists(s.connect_file)
        assert "kodiakd stopped\n" in s.output()
    finally:
        s.stop()


def test_sigterm_to_the_ranks_while_they_start_stops_the_server_with_exit_code_0(tmp_path):
    """A SIGTERM that comes before MPI_Init is done is not the default
    action (ranks dead without MPI_Finalize, mpirun reporting a crash): the
    ranks start, rank 0 sees the stop asked and stops them all cleanly.
    KD_TEST_START_HOLD_MS holds each rank before MPI_Init so that the
    signal surely lands there; rank 0 is not known yet, so every rank gets
    it (the others ignore it, as after the start)."""
    import subprocess
    from conftest import KODIAKD, die_with_us, mpi_env
    connect_file = tmp_path / "connect.json"
    log = open(tmp_path / "kodiakd.log", "w+")
    proc = subprocess.Popen(
        ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", KODIAKD, "--port", "0",
         "--connect-file", str(connect_file)], stdout=log, stderr=subprocess.STDOUT,
        env={**mpi_env(), "KD_TEST_START_HOLD_MS": "1500"}, start_new_session=True,
        preexec_fn=die_with_us)
    try:
        deadline = time.time() + 30
        out = ""
        while out.count("test hold: start held back") < 2:  # both ranks hold before MPI_Init
            assert time.time() < deadline and proc.poll() is None, f"ranks did not start: {out}"
            time.sleep(0.02)
            log.seek(0)
            out = log.read()
        ranks = launcher.rank_pids(proc.pid)
        assert len(ranks) == 2, ranks
        for p in ranks:
            os.kill(p, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert wait_gone(ranks)
        log.seek(0)
        out = log.read()
        assert out.count("test hold: start held back") == 2, out  # the signal came during the hold
        assert "kodiakd stopped\n" in out, out
        assert not connect_file.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# ---- idle is idle -----------------------------------------------------------------------------

def test_an_idle_two_rank_server_uses_under_5_percent_of_a_core():
    s = Server(2)
    try:
        kodiak.connect("127.0.0.1", s.port, access_token=s.token)
        kodiak.arange(1000).to_ndarray()  # some work first, then idle
        ranks = launcher.rank_pids(s.proc.pid)
        assert len(ranks) == 2
        time.sleep(0.5)
        c0 = [launcher.cpu_seconds(p) for p in ranks]
        m0 = launcher.cpu_seconds(s.proc.pid)
        t0 = time.monotonic()
        time.sleep(3.0)
        c1 = [launcher.cpu_seconds(p) for p in ranks]
        m1 = launcher.cpu_seconds(s.proc.pid)
        wall = time.monotonic() - t0
        per_rank = [(b - a) / wall for a, b in zip(c0, c1)]
        total = sum(per_rank)
        print(f"\nidle CPU over {wall:.1f} s: kodiakd ranks "
              f"{', '.join(f'{100 * x:.1f}%' for x in per_rank)} of a core "
              f"(total {100 * total:.1f}%), mpirun {100 * (m1 - m0) / wall:.1f}%")
        assert total < 0.05
        assert s.alive()
    finally:
        kodiak.disconnect()
        s.stop()


def test_connect_takes_arkoudas_forms(ak, server):
    try:
        info = ak.connect(connect_url=f"tcp://127.0.0.1:{server.port}?token={server.token}",
                          timeout=0)
        assert info["ranks"] == server.nranks
        assert ak.arange(5).tolist() == [0, 1, 2, 3, 4]
        info = ak.connect("localhost", server.port, access_token=server.token)
        assert info["ranks"] == server.nranks
        with pytest.raises(ValueError):
            ak.connect(connect_url="not-a-url")
    finally:
        ak.connect(connect_file=server.connect_file)


def test_a_long_command_shows_a_progress_bar(capsys, monkeypatch):
    # the client side only: a REP socket that answers "slow" after 1.5 s
    import json
    import threading
    import zmq
    import kodiak
    from zmq.auth.thread import ThreadAuthenticator
    ctx = zmq.Context()  # its own, with a ZAP handler that takes the token "t"
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_plain(domain="*", passwords={"kodiak": "t"})
    rep = ctx.socket(zmq.REP)
    rep.plain_server = True
    port = rep.bind_to_random_port("tcp://127.0.0.1")

    def serve():
        for delay in (0.0, 1.5):
            rep.recv_multipart()
            time.sleep(delay)
            rep.send(json.dumps({"ok": True, "result": {"version": 1, "ranks": 1}}).encode())
    t = threading.Thread(target=serve)
    t.start()
    monkeypatch.setattr(kodiak.client, "PROGRESS_AFTER", 0.5)
    monkeypatch.setenv("KODIAK_PROGRESS", "1")  # pytest captures stderr: not a terminal
    try:
        kodiak.connect("127.0.0.1", port, access_token="t")
        kodiak.client.generic_msg("slow")
        err = capsys.readouterr().err
        assert "kodiak: slow running for" in err
    finally:
        t.join()
        kodiak.disconnect()
        rep.close(0)
        auth.stop()
        ctx.term()

# SPDX-License-Identifier: Apache-2.0
"""test_liveness.py — a kodiakd with a stopped rank does not hang its clients.

Every request has a deadline (ak.connect(timeout=), kodiakd's
--request-timeout, 600 s by default). A rank stopped with SIGSTOP makes the
command in flight time out with a TimeoutError that names the server, the
command and the deadline; the next request is answered at once with
ServerBusyError (rank 0's watcher thread) instead of hanging; after SIGCONT
the session works again and its results match NumPy. Each test runs its
own 2-rank kodiakd: it stops one of its ranks."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import zmq

import kodiak
from conftest import Server, plain
from kodiak import launcher

# A hang must fail the test, not the whole run: each test body runs under
# this guard (seconds), well above every deadline it uses.
GUARD = 90


@pytest.fixture
def two_ranks():
    s = Server(2)
    stopped = []
    try:
        yield s, stopped
    finally:
        for pid in stopped:  # never leave a stopped rank behind
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        kodiak.disconnect()
        s.stop()


@pytest.fixture(autouse=True)
def guard():
    """Fail (SIGALRM in the main thread) instead of hanging forever."""
    def on_alarm(sig, frame):
        raise AssertionError(f"test still running after {GUARD} s: a request hung")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(GUARD)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def sigstop(pid):
    """SIGSTOP pid and wait until every thread of it is stopped (kill()
    returns before a thread running on another core has stopped, and a
    request sent meanwhile could still be served)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while True:
        states = []
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    states.append(f.read().rpartition(")")[2].split()[0])
            except FileNotFoundError:
                pass
        if states and all(st in ("T", "t") for st in states):
            return
        assert time.monotonic() < deadline, f"pid {pid} did not stop: {states}"
        time.sleep(0.01)


def other_rank(server):
    """The pid of a kodiakd rank that is not rank 0 (the connect file has
    rank 0's pid)."""
    r0 = server.info["pid"]
    others = [p for p in launcher.rank_pids(server.proc.pid) if p != r0]
    assert len(others) == 1, f"ranks {launcher.rank_pids(server.proc.pid)}, rank 0 {r0}"
    return others[0]


def until_not_busy(fn, within=30.0):
    """fn(), retried while the server says it is busy (its stuck command
    finishes right after SIGCONT, but not instantly)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return fn()
        except kodiak.ServerBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def thread_switches(pid, name):
    """Context switches (voluntary + not) of pid's thread called `name`."""
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/comm") as f:
            if f.read().strip() != name:
                continue
        with open(f"/proc/{pid}/task/{t}/status") as f:
            return sum(int(ln.split()[1]) for ln in f if "ctxt_switches" in ln)
    raise AssertionError(f"pid {pid} has no thread named {name!r}")


def test_short_commands_do_not_wake_the_watcher(two_ranks):
    """The watcher sleeps until the deadline of the command it last saw, so
    a run of short commands wakes it a few times, not twice per command on
    the replies' path; it still answers busy (the tests above)."""
    server, _ = two_ranks
    ak = kodiak
    ak.connect(connect_file=server.connect_file)
    a = ak.arange(0, 100, 1)
    r0 = server.info["pid"]
    before = thread_switches(r0, "kd-watch")
    t0 = time.monotonic()
    for i in range(300):
        assert a[i % 100] == i % 100
    took = time.monotonic() - t0
    woke = thread_switches(r0, "kd-watch") - before
    # at most one wake at each 0.2 s deadline, one signal after each quiet
    # spell between them, and a few to spare: 600 or more before
    assert woke <= 2 * (took / 0.2 + 1) + 10, (woke, took)


def test_connect_timeout_covers_every_request_and_a_stopped_rank_recovers(two_ranks):
    server, stopped = two_ranks
    ak = kodiak
    ak.connect(connect_file=server.connect_file, timeout=3)
    assert ak.client.request_timeout() == 3.0
    x = np.arange(1000, dtype=np.int64) * 7 % 101
    a = ak.array(x)
    b = ak.arange(0, 1000, 1)
    victim = other_rank(server)
    sigstop(victim)
    stopped.append(victim)

    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        a.sum()
    took = time.monotonic() - t0
    msg = str(ei.value)
    assert isinstance(ei.value, ak.RequestTimeoutError)
    assert f"127.0.0.1:{server.port}" in msg and "within 3 s" in msg and "'reduce'" in msg, msg
    assert 2.5 <= took < 3 + 10, took

    # the next request is answered at once: the server is unhealthy
    t0 = time.monotonic()
    with pytest.raises(ak.ServerBusyError, match=r"still running 'reduce' since \d+ s; "
                                                 r"a rank may be stopped"):
        (a + b).sum()
    assert time.monotonic() - t0 < 2.5  # before the deadline: not another timeout
    assert server.alive()

    os.kill(victim, signal.SIGCONT)
    stopped.remove(victim)
    got = until_not_busy(lambda: (a * 2 + b).to_ndarray())
    np.testing.assert_array_equal(got, x * 2 + np.arange(1000))
    assert a.sum() == x.sum()
    assert (a + b).sum() == (x + np.arange(1000)).sum()
    assert ak.arange(0, 5, 1).tolist() == [0, 1, 2, 3, 4]


def test_server_request_timeout_is_the_default_and_0_means_no_limit():
    s = Server(2, args=["--request-timeout", "2.5"])
    stopped = None
    try:
        info = kodiak.connect(connect_file=s.connect_file)
        assert info["request_timeout"] == 2.5
        assert kodiak.client.request_timeout() == 2.5
        a = kodiak.arange(0, 100, 1)
        stopped = other_rank(s)
        sigstop(stopped)
        t0 = time.monotonic()
        with pytest.raises(kodiak.RequestTimeoutError, match="within 2.5 s"):
            a.sum()
        assert time.monotonic() - t0 < 2.5 + 10

        os.kill(stopped, signal.SIGCONT)
        pid, stopped = stopped, None
        assert until_not_busy(lambda: a.sum()) == 4950

        # timeout=0: no deadline; a request waits until the rank goes on
        kodiak.connect(connect_file=s.connect_file, timeout=0)
        assert kodiak.client.request_timeout() is None
        sigstop(pid)
        stopped = pid
        threading.Timer(4.0, os.kill, (pid, signal.SIGCONT)).start()
        t0 = time.monotonic()
        b = kodiak.arange(0, 10, 1)  # waits for the rank, however long
        assert time.monotonic() - t0 >= 3.0
        stopped = None
        assert b.sum() == 45
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        kodiak.disconnect()
        s.stop()


def test_the_default_deadline_is_documented_and_advertised():
    s = Server(1)
    try:
        info = kodiak.connect(connect_file=s.connect_file)
        assert info["request_timeout"] == kodiak.client.DEFAULT_REQUEST_TIMEOUT == 600
        assert kodiak.client.request_timeout() == 600
        doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                                "PROTOCOL.md")).read()
        assert "600 s" in doc and "--request-timeout" in doc and "ServerBusyError" in doc
    finally:
        kodiak.disconnect()
        s.stop()


def raw(server, hdr, timeout=10.0):
    ctx = zmq.Context.instance()
    sock = plain(ctx.socket(zmq.REQ), server.token)
    port = server.port
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(json.dumps(hdr).encode())
        assert sock.poll(int(timeout * 1000)), f"no answer to {hdr}"
        return json.loads(sock.recv())
    finally:
        sock.close(0)


def test_every_reply_echoes_the_request_id_busy_ones_too(two_ranks):
    server, stopped = two_ranks
    version = kodiak.client.PROTOCOL_VERSION
    r = raw(server, {"cmd": "connect", "args": {"version": version}, "id": 77})
    assert r["ok"] and r["id"] == 77
    r = raw(server, {"cmd": "no_such_command", "args": {}, "id": 78})
    assert not r["ok"] and r["id"] == 78
    r = raw(server, {"cmd": "connect", "args": {"version": version}})
    assert r["ok"] and "id" not in r  # no id asked, none given

    kodiak.connect(connect_file=server.connect_file, timeout=1)
    a = kodiak.arange(0, 10, 1)
    victim = other_rank(server)
    sigstop(victim)
    stopped.append(victim)
    with pytest.raises(TimeoutError):
        a.sum()
    t0 = time.monotonic()
    r = raw(server, {"cmd": "list_symbols", "args": {}, "id": 79})
    assert time.monotonic() - t0 < 5
    assert not r["ok"] and r["id"] == 79 and r["error"]["type"] == "ServerBusyError"
    os.kill(victim, signal.SIGCONT)
    stopped.remove(victim)
    assert until_not_busy(lambda: a.sum()) == 45


def test_kodiak_up_request_timeout_reaches_clients(tmp_path, monkeypatch):
    monkeypatch.setenv("KODIAK_HOME", str(tmp_path))
    monkeypatch.delenv("KODIAK_CONNECT_FILE", raising=False)
    with pytest.raises(ValueError, match="request_timeout"):
        launcher.up(fam_servers=0, ranks=1, request_timeout=-1)
    try:
        launcher.up(fam_servers=0, ranks=1, request_timeout=7.5)
        info = kodiak.connect()
        assert info["request_timeout"] == 7.5 and kodiak.client.request_timeout() == 7.5
        kodiak.connect(timeout=0)  # the client's own setting wins
        assert kodiak.client.request_timeout() is None
    finally:
        kodiak.disconnect()
        launcher.down()


def test_a_stopped_rank_0_times_out_every_request_and_recovers():
    """Rank 0 itself stopped: no watcher answers, so each request ends at
    its own deadline (none hangs), and all works again after SIGCONT."""
    s = Server(1)
    pid = s.info["pid"]
    stopped = False
    try:
        kodiak.connect(connect_file=s.connect_file, timeout=1.5)
        a = kodiak.arange(0, 10, 1)
        sigstop(pid)
        stopped = True
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(kodiak.RequestTimeoutError, match="within 1.5 s"):
                a.sum()
            assert 1.2 <= time.monotonic() - t0 < 1.5 + 10
        os.kill(pid, signal.SIGCONT)
        stopped = False
        assert until_not_busy(lambda: a.sum()) == 45
        assert (a * 3).to_ndarray().tolist() == [3 * i for i in range(10)]
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        kodiak.disconnect()
        s.stop()

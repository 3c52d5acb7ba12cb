# SPDX-License-Identifier: Apache-2.0
"""test_interrupt.py — Ctrl-C during a request does not break the session.

A KeyboardInterrupt while the client waits for an answer gives it a fresh
socket: the next call works, and the interrupted command's answer, when it
comes, is never delivered as the answer to a later request. To interrupt a
request for sure, a rank is stopped (SIGSTOP) so the command cannot finish,
and SIGINT is sent to this process while it waits, as Ctrl-C in a notebook
does. Each test runs its own 2-rank kodiakd."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import kodiak
from conftest import Server
from kodiak import launcher

GUARD = 90  # seconds: a hang fails the test instead of the run


@pytest.fixture
def session():
    s = Server(2)
    stopped = []
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(GUARD)
    try:
        ak = kodiak
        ak.connect(connect_file=s.connect_file)
        yield ak, s, stopped
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        kodiak.disconnect()
        s.stop()


def _on_alarm(sig, frame):
    raise AssertionError(f"test still running after {GUARD} s: a request hung")


def _other_rank(server):
    r0 = server.info["pid"]
    others = [p for p in launcher.rank_pids(server.proc.pid) if p != r0]
    assert len(others) == 1, others
    return others[0]


def _later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.daemon = True
    t.start()
    return t


def _interrupt_a_stuck_request(ak, server, stopped, request):
    """Stop rank 1, run request(), Ctrl-C it after 0.5 s; return rank 1's pid."""
    pid = _other_rank(server)
    os.kill(pid, signal.SIGSTOP)
    stopped.append(pid)
    _later(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        request()
    assert time.monotonic() - t0 < 10
    return pid


def test_after_ctrl_c_the_next_call_works_and_gets_its_own_answer(session):
    ak, server, stopped = session
    x = np.arange(100_000, dtype=np.int64)
    a = ak.array(x)
    pid = _interrupt_a_stuck_request(ak, server, stopped, lambda: a.sum())
    os.kill(pid, signal.SIGCONT)  # the interrupted sum now finishes, unheard
    b = a * 3
    assert int(b.sum()) == int((x * 3).sum())  # not the interrupted a.sum()
    np.testing.assert_array_equal((a + 1).to_ndarray(), x + 1)
    assert int(a.max()) == int(x.max())


def test_the_next_call_waits_for_the_interrupted_command(session):
    """The server is still running the interrupted command when the next
    call arrives: that call waits for it and works (no ServerBusyError)."""
    ak, server, stopped = session
    x = np.linspace(-1, 1, 50_000)
    a = ak.array(x)
    pid = _interrupt_a_stuck_request(ak, server, stopped, lambda: ak.argsort(a))
    _later(1.5, lambda: os.kill(pid, signal.SIGCONT))
    t0 = time.monotonic()
    perm = ak.argsort(-a)  # sent while the first argsort is stuck
    assert time.monotonic() - t0 >= 1.0  # it did wait for the stuck one
    np.testing.assert_array_equal(perm.to_ndarray(), np.argsort(-x, kind="stable"))


def test_ctrl_c_twice_then_work(session):
    ak, server, stopped = session
    a = ak.arange(1000)
    pid = _interrupt_a_stuck_request(ak, server, stopped, lambda: a.sum())
    # still stuck: a second request is interrupted too
    _later(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        (a * 2).sum()
    os.kill(pid, signal.SIGCONT)
    assert int((a + 5).sum()) == sum(range(1000)) + 5000
    assert ak.arange(3).tolist() == [0, 1, 2]

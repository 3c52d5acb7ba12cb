# SPDX-License-Identifier: Apache-2.0
"""client.py — the connection to kodiakd and the request/reply exchange.

The format of requests and replies is wire.py's (docs/PROTOCOL.md); where
the connect file lives is paths.py's. This module keeps the one connection
of the process; it does not start or stop servers (launcher.py does, and
session.py joins the two for ak.start, ak.stop and ak.shutdown).

Every request has a deadline (DEFAULT_REQUEST_TIMEOUT, or what the server
advertises from `kodiak up --request-timeout`, or ak.connect(timeout=)).
Past it the client raises RequestTimeoutError (a TimeoutError) and opens a
fresh socket, so the late answer, if it ever comes, goes nowhere; each
request also carries an "id" that the reply echoes and the client checks.
A server still busy with the command that timed out answers the next
request at once with ServerBusyError.

Arrays whose Python objects are garbage-collected are not deleted from
inside __del__ (that could interleave with a request in flight); their names
are queued here and ride along in the "free" list of the next request.

kodiakd serves only clients that hold its access token (the "token" of its
connect file, mode 0600): the socket sends it as its ZeroMQ PLAIN password
and the server's ZAP handler checks it before any request is read. A
refused token shows as a failed handshake on the socket monitor and is
raised as PermissionError. On the server's own host the client connects to
its Unix socket (the connect file's "ipc"), where the kernel tells kodiakd
which process is asking: the memory path needs that."""
import json
import os
import threading
import time

import zmq

from . import wire
# re-exported: users and tests find them here
from .paths import default_connect_file, state_dir  # noqa: F401
from .wire import (PROTOCOL_VERSION, KodiakError, RequestTimeoutError,  # noqa: F401
                   ServerBusyError)


# Seconds to wait for each answer when neither ak.connect(timeout=) nor the
# server (kodiakd --request-timeout) says otherwise; docs/PROTOCOL.md.
DEFAULT_REQUEST_TIMEOUT = 600.0
# The deadline of the 'connect' request itself when connect() is given none.
CONNECT_TIMEOUT = 10.0


# the error type of a reply -> its exception (kept under its old name)
_EXCEPTIONS = wire.ERROR_TYPES


class _Connection:
    """The one connection of this Python process (Arkouda has one too)."""

    def __init__(self):
        self.ctx = None
        self.sock = None
        self.endpoint = None   # tcp://host:port of the server, as people name it
        self.zmq_endpoint = None  # what the socket connects to: endpoint or ipc://@...
        self.info = {}
        self.pending_free = []
        self.token = None      # the access token sent as the PLAIN password
        self.monitor = None    # ZeroMQ monitor of sock: tells when the server goes away
        self.peer_up = False   # the monitor's last word: connected (True) or not
        self.timeout = None    # seconds per request (None: no limit)
        self.next_id = 1       # "id" of the next request; the reply echoes it
        self.interrupted = None  # the command a KeyboardInterrupt left running, if any
        self.lock = threading.RLock()


_conn = _Connection()


def _port_open(host, port, wait=0.5):
    """Whether something accepts TCP connections at host:port."""
    import socket
    try:
        with socket.create_connection((host, port), timeout=wait):
            return True
    except OSError:
        return False


def _local_ipc(cf):
    """The connect file's Unix-socket endpoint if this process can reach it
    (same host, same network namespace), else None."""
    ipc = cf.get("ipc")
    if not ipc or not ipc.startswith("ipc://@"):
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            if f.read().strip() != cf.get("boot_id"):
                return None
    except OSError:
        return None
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + ipc[len("ipc://@"):])
        return ipc
    except OSError:
        return None
    finally:
        s.close()


def _parse_url(connect_url):
    """(host, port, token or None) of tcp://host:port[?token=...]."""
    from urllib.parse import parse_qs
    url, _, query = connect_url.partition("?")
    url = url[len("tcp://"):] if url.startswith("tcp://") else url
    server, _, p = url.rpartition(":")
    if not server or not p.isdigit():
        raise ValueError(f"connect_url must look like tcp://host:port[?token=...], not "
                         f"{connect_url.split('?')[0]!r}")
    token = parse_qs(query).get("token", [None])[0] if query else None
    return server, int(p), token


def connect(server=None, port=None, connect_file=None, timeout=None, connect_url=None,
            access_token=None):
    """Connect to a kodiakd. With no arguments, read the connect file that
    `kodiak up` / ak.start() wrote; without one, try localhost:5555, as
    Arkouda does. Arkouda's forms work too: connect("localhost", 5555,
    access_token=...) and connect(connect_url="tcp://host:port?token=...").
    access_token: the "token" of the server's connect file; when not given,
    the connect file's is used if that file names the same server.
    A missing or wrong token raises PermissionError.
    timeout: seconds to wait for the answer to every request, this one and
    all later ones (RequestTimeoutError past it); 0: no limit; None: what
    the server advertises (`kodiak up --request-timeout`, default 600 s).
    Returns the server's info dict."""
    token = access_token
    if connect_url is not None:
        server, port, url_token = _parse_url(connect_url)
        token = token or url_token
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a number of seconds >= 0 (0: no limit), "
                         f"not {timeout!r}")
    cf = {}
    if server is None and port is None:
        path = connect_file or default_connect_file()
        try:
            with open(path) as f:
                cf = json.load(f)
        except FileNotFoundError:
            if connect_file is not None or not _port_open("127.0.0.1", 5555):
                raise ConnectionError(f"no running kodiak cluster: connect file {path} not "
                                      f"found and nothing listens on localhost:5555 (start "
                                      f"one with `kodiak up` or ak.start(), or give server "
                                      f"and port)") from None
            cf = {"host": "127.0.0.1", "port": 5555}
        server, port = cf["host"], cf["port"]
    else:
        # the local cluster's connect file hands its token to a client that
        # names the same server by host and port
        try:
            with open(connect_file or default_connect_file()) as f:
                known = json.load(f)
            if (known.get("host"), known.get("port")) == (server or "127.0.0.1",
                                                          port or 5555):
                cf = known
        except (OSError, ValueError):
            pass
    if token is None:
        token = cf.get("token")
    server = server or "127.0.0.1"
    if port is None:
        port = 5555
    disconnect()
    with _conn.lock:
        _conn.ctx = zmq.Context.instance()
        _conn.endpoint = f"tcp://{server}:{port}"
        _conn.zmq_endpoint = (_local_ipc(cf) if token and token == cf.get("token")
                              else None) or _conn.endpoint
        _conn.token = token
        _open_socket()
        # the first request: the given deadline, else CONNECT_TIMEOUT (the
        # server's own is not known yet, and 'connect' itself is quick)
        _conn.timeout = _deadline(CONNECT_TIMEOUT if timeout is None else timeout)
        try:
            _conn.info = generic_msg("connect", {"version": PROTOCOL_VERSION})[0]
        except Exception:
            _close()
            raise
        if timeout is None:
            _conn.timeout = _deadline(_conn.info.get("request_timeout",
                                                     DEFAULT_REQUEST_TIMEOUT))
    return dict(_conn.info)


def _deadline(seconds):
    """A timeout setting as generic_msg wants it: None for no limit."""
    return None if not seconds else float(seconds)


def request_timeout():
    """Seconds each request may wait for its answer (None: no limit)."""
    return _conn.timeout


def set_request_timeout(seconds):
    """Change the deadline of every later request (0 or None: no limit)."""
    if seconds is not None and (not isinstance(seconds, (int, float)) or seconds < 0):
        raise ValueError(f"request timeout must be a number of seconds >= 0, not {seconds!r}")
    _conn.timeout = _deadline(seconds)


def _make_socket():
    """A new REQ socket, not yet connected (every socket option is set here)."""
    sock = _conn.ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    # no token: a password the server refuses, so the refusal is its own
    wire.set_credentials(sock, _conn.token)
    return sock


# what the socket monitor reports
_MONITORED = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED |
              zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
              zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def _open_socket():
    """A REQ socket to _conn.zmq_endpoint that presents the access token,
    with a monitor that reports when the server accepts, refuses or drops
    the connection."""
    _conn.sock = _make_socket()
    _conn.monitor = _conn.sock.get_monitor_socket(_MONITORED)
    _conn.peer_up = False
    _conn.sock.connect(_conn.zmq_endpoint)


def _close_socket():
    if _conn.sock is not None:
        _conn.sock.disable_monitor()
        _conn.monitor.close(0)
        _conn.sock.close(0)
    _conn.sock = None
    _conn.monitor = None


def _peer_events():
    """Read the monitor's pending events; True if the server dropped the
    connection among them."""
    from zmq.utils.monitor import recv_monitor_message
    dropped = False
    while _conn.monitor.poll(0):
        ev = recv_monitor_message(_conn.monitor)["event"]
        if ev == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            _refused()
        if ev in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            ep = _conn.endpoint
            _close_socket()
            _open_socket()
            raise ConnectionError(f"the handshake with the kodiak server at {ep} failed: "
                                  f"is it a kodiakd of protocol version {PROTOCOL_VERSION} "
                                  f"(with access tokens)?")
        if ev == zmq.EVENT_CONNECTED:
            _conn.peer_up = True
        elif ev == zmq.EVENT_DISCONNECTED:
            _conn.peer_up = False
            dropped = True
    return dropped


def _refused():
    """The server refused our access token: no request will be answered on
    this connection. Give it a new socket and raise PermissionError."""
    ep, had = _conn.endpoint, _conn.token is not None
    _close_socket()
    _open_socket()
    why = ("the token given is not its token" if had else
           "none was given, and no connect file names this server")
    raise PermissionError(f"kodiakd at {ep} refused the access token ({why}). Connect with the connect file it wrote (ak.connect("
                          f"connect_file=...)), or pass the file's \"token\" as "
                          f"ak.connect(host, port, access_token=...) or connect_url="
                          f"'tcp://host:port?token=...'")


def _lost(msg):
    """The request in flight has no answer coming: give the connection a new
    socket (a REQ socket cannot send again before it receives) and raise."""
    _close_socket()
    _open_socket()
    raise ConnectionError(msg)


def _close():
    _close_socket()
    _conn.endpoint = None
    _conn.zmq_endpoint = None
    _conn.info = {}
    _conn.token = None
    _conn.timeout = None
    _conn.pending_free.clear()


def disconnect():
    """Forget the connection (the server and its arrays stay)."""
    with _conn.lock:
        _close()


def connected():
    return _conn.sock is not None


def server_info():
    """What the server said on connect: version, ranks, memory_limit, pid."""
    return dict(_conn.info)



_MEMORY_PATH_MIN = 1 << 16


def memory_path(addr, nbytes):
    """The "vm" argument that lets the ranks copy an array straight from or
    to this process's buffer of `nbytes` bytes at `addr` (connected over the
    server's Unix socket, same user); None when the path cannot apply. The
    server learns which process we are from the kernel, not from us."""
    if (not (_conn.zmq_endpoint or "").startswith("ipc://") or nbytes < _MEMORY_PATH_MIN
            or os.environ.get("KODIAK_NO_VM")):
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return None
    return {"addr": int(addr), "nbytes": int(nbytes), "boot_id": boot}


def split_frames(data):
    """`data` (a byte memoryview) cut into frames no larger than the server
    reads (its "max_frame": ZMQ_MAXMSGSIZE, which also bounds what a client
    without the token can make it buffer); always at least one frame."""
    return wire.split_frames(data, _conn.info.get("max_frame"))


# A command that runs longer than this (seconds) shows a tqdm bar with the
# time it has taken, until the server answers: in a terminal or a Jupyter
# kernel; KODIAK_PROGRESS=1 shows it anywhere, KODIAK_PROGRESS=0 nowhere.
PROGRESS_AFTER = 2.0


def _progress_bar(cmd):
    setting = os.environ.get("KODIAK_PROGRESS", "auto")
    if setting == "0":
        return None
    # "auto": in a terminal or a Jupyter kernel, not in logs and pipes
    import sys
    if setting != "1" and not ("ipykernel" in sys.modules or
                               (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(desc=f"kodiak: {cmd}", bar_format="{desc} running for {elapsed}",
                leave=False)


# A request waits this long (seconds) for a server that is not there (it
# stopped, or never listened) before it raises ConnectionError.
UNREACHABLE_AFTER = 10.0


def _check_size(cmd, parts):
    """kodiakd refuses (drops, unread) a message larger than all its ranks
    may hold together; say so here instead of sending it."""
    limit = _conn.info.get("memory_limit")
    ranks = _conn.info.get("ranks")
    if not limit or not ranks:
        return
    nbytes = sum(memoryview(p).nbytes for p in parts)
    if nbytes > limit * ranks:
        raise MemoryError(f"'{cmd}' would send {nbytes} bytes, more than the server's "
                          f"{ranks} rank(s) may hold together ({limit} bytes each, "
                          f"--memory-limit)")


def queue_free(name):
    """Called from pdarray.__del__: delete `name` with the next request."""
    if _conn.sock is not None:
        _conn.pending_free.append(name)


def _reset_socket():
    """Give the connection a new REQ socket: the old one is waiting for an
    answer that may never come (a REQ socket cannot send again before it
    receives), and an answer that comes late goes to the old socket, gone."""
    _close_socket()
    _open_socket()


def _hand_over(cmd, parts, timeout):
    """Give the request to the socket. A REQ socket with no connection to
    queue on blocks in send for ever, and the connection can go between a
    poll that says "ready" and the send: the server has just refused our
    token (libzmq drops the connection, then tries again) or went away. So
    the first frame is offered without blocking, again and again, reading
    the monitor meanwhile (a refused token raises PermissionError) and
    keeping the request's deadline; the frames after it follow it on the
    connection that took it (or are dropped with it: no wait either)."""
    more = zmq.SNDMORE if len(parts) > 1 else 0
    start = time.monotonic()
    while True:
        try:
            _conn.sock.send(parts[0], zmq.NOBLOCK | more, copy=False)
            break
        except zmq.Again:
            pass
        left = None if timeout is None else start + timeout - time.monotonic()
        if left is not None and left <= 0:
            _reset_socket()
            raise RequestTimeoutError(
                f"kodiak server at {_conn.endpoint} did not take '{cmd}' within "
                f"{round(timeout, 3):g} s (no connection to it was up: the request was not "
                f"sent); the server may be gone or refusing connections")
        _conn.monitor.poll(int(1000 * (0.05 if left is None else min(0.05, left))))
        _peer_events()
        if time.monotonic() - start >= UNREACHABLE_AFTER:
            _lost(f"the kodiak server at {_conn.endpoint} cannot be reached (no connection "
                  f"to it for {UNREACHABLE_AFTER:g} s): '{cmd}' was not sent")
    if more:
        _conn.sock.send_multipart(parts[1:], copy=False)


def generic_msg(cmd, args=None, frames=(), timeout=None):
    """Send one command; return (result dict, list of reply frames as
    memoryviews). Raises the server's error as a Python exception.
    timeout: seconds for this request (default: the connection's deadline,
    see connect); past it, RequestTimeoutError.

    Ctrl-C (KeyboardInterrupt) while waiting gives the connection a fresh
    socket, so the next call works and the interrupted command's answer is
    never taken for another's; the server finishes that command, and the
    next call waits for it (within its own deadline) instead of failing
    with ServerBusyError."""
    start = time.monotonic()
    limit = _conn.timeout if timeout is None else (None if timeout == 0 else timeout)
    pause = 0.02
    while True:
        left = None if limit is None else max(0.001, limit - (time.monotonic() - start))
        try:
            result = _request(cmd, args, frames, 0 if left is None else left)
        except ServerBusyError:
            if _conn.interrupted is None or (limit is not None and
                                             time.monotonic() - start >= limit):
                raise
            time.sleep(pause)  # the interrupted command is still running
            pause = min(0.5, pause * 2)
            continue
        _conn.interrupted = None
        res = result[0] if isinstance(result, tuple) and result else None
        if isinstance(res, dict) and "fpe" in res:
            from .fpe import report  # warn or raise as ak.seterr says
            # raise mode frees the command's new array, never an in-place target
            report(res["fpe"], None if (args or {}).get("out") else res)
        return result


def _request(cmd, args, frames, timeout):
    """One try of generic_msg: send, wait, return or raise."""
    try:
        return _exchange(cmd, args, frames, timeout)
    except KeyboardInterrupt:
        # the socket waits for an answer that now belongs to no one: a new
        # socket, and the answer, when it comes, goes to the old one, gone
        with _conn.lock:
            if _conn.sock is not None:
                _reset_socket()
                _conn.interrupted = cmd
        raise


def _exchange(cmd, args, frames, timeout):
    with _conn.lock:
        if _conn.sock is None:
            raise ConnectionError("not connected to a kodiak server: call ak.connect() "
                                  "or ak.start() first")
        if timeout is None:
            timeout = _conn.timeout
        elif timeout == 0:
            timeout = None
        rid = _conn.next_id
        _conn.next_id += 1
        freed = _conn.pending_free[:]
        _conn.pending_free.clear()
        parts = [wire.request_header(cmd, args, rid, freed)]
        parts.extend(frames)
        _check_size(cmd, parts)
        _peer_events()
        _hand_over(cmd, parts, timeout)
        waited = 0.0
        down_for = 0.0
        bar = None
        poller = zmq.Poller()
        poller.register(_conn.sock, zmq.POLLIN)
        poller.register(_conn.monitor, zmq.POLLIN)
        start = time.monotonic()
        try:
            while not _conn.sock.poll(0):
                tick = 0.5 if timeout is None else max(0.0, min(0.5, start + timeout -
                                                               time.monotonic()))
                if not poller.poll(int(tick * 1000)):
                    waited += tick
                if _peer_events() and not _conn.sock.poll(100):
                    # (the reply may come just before the close: a stopping
                    # server answers 'shutdown' and goes)
                    if cmd == "shutdown":
                        _reset_socket()
                        return {}, []
                    _lost(f"the kodiak server at {_conn.endpoint} closed the connection "
                          f"during '{cmd}' (it stopped, or refused a message of "
                          f"{sum(memoryview(p).nbytes for p in parts)} bytes): no answer "
                          f"will come")
                down_for = 0.0 if _conn.peer_up else down_for + tick
                if down_for >= UNREACHABLE_AFTER:
                    _lost(f"the kodiak server at {_conn.endpoint} cannot be reached "
                          f"(nothing listens there for {UNREACHABLE_AFTER:g} s)")
                if timeout is not None and time.monotonic() - start >= timeout:
                    if _conn.sock.poll(0):
                        break  # answered just in time
                    _reset_socket()
                    raise RequestTimeoutError(
                        f"kodiak server at {_conn.endpoint} did not answer '{cmd}' within "
                        f"{round(timeout, 3):g} s (the request deadline: ak.connect(timeout=), "
                        f"`kodiak up --request-timeout`); the server may be hung or a rank "
                        f"stopped; the next request works, or says the server is busy")
                if bar is None and waited >= PROGRESS_AFTER:
                    bar = _progress_bar(cmd)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        reply = _conn.sock.recv_multipart(copy=False)
        try:
            head = wire.parse_header(reply[0].buffer)
        except ValueError:
            head = None
        if head is None or head.get("id", rid) != rid:
            # never take another request's answer (or garbage) for this one's
            _reset_socket()
            raise ConnectionError(f"the kodiak server at {_conn.endpoint} sent a reply "
                                  f"that does not answer '{cmd}' (request id {rid}, reply "
                                  f"{str(head)[:80]}); the connection was reset")
        if not head.get("ok") and (head.get("error") or {}).get("type") == "ServerBusyError":
            # not run: the arrays to free ride along with the next request
            _conn.pending_free[:0] = freed
    if not head.get("ok"):
        raise wire.error_from_reply(head.get("error"))
    return head.get("result") or {}, [f.buffer for f in reply[1:]]

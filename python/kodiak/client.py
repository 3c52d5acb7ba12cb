"""client.py — the connection to kodiakd and the request/reply exchange.

One request is a multipart ZeroMQ message: a JSON header
{"cmd": name, "args": {...}, "free": [names]} and raw little-endian binary
frames. The reply is a JSON header {"ok": true, "result": {...}} or
{"ok": false, "error": {"type": "ValueError", "message": "..."}} and binary
frames. See docs/PROTOCOL.md.

Arrays whose Python objects are garbage-collected are not deleted from
inside __del__ (that could interleave with a request in flight); their names
are queued here and ride along in the "free" list of the next request."""
import builtins
import json
import os
import threading

import zmq

PROTOCOL_VERSION = 1


class KodiakError(RuntimeError):
    """A server-side failure with no more specific Python exception."""


_EXCEPTIONS = {
    "ValueError": ValueError, "TypeError": TypeError, "IndexError": IndexError,
    "KeyError": KeyError, "MemoryError": MemoryError,
    "ZeroDivisionError": ZeroDivisionError, "RuntimeError": KodiakError,
    "NotImplementedError": NotImplementedError, "OverflowError": OverflowError,
    "FileExistsError": FileExistsError, "PermissionError": PermissionError,
    "ConnectionError": ConnectionError,
}


class _Connection:
    """The one connection of this Python process (Arkouda has one too)."""

    def __init__(self):
        self.ctx = None
        self.sock = None
        self.endpoint = None
        self.info = {}
        self.pending_free = []
        self.token = None      # from the connect file: enables the memory path
        self.monitor = None    # ZeroMQ monitor of sock: tells when the server goes away
        self.peer_up = False   # the monitor's last word: connected (True) or not
        self.lock = threading.RLock()


_conn = _Connection()


def default_connect_file():
    """Where `kodiak up` and ak.start() write the connect file."""
    env = os.environ.get("KODIAK_CONNECT_FILE")
    if env:
        return env
    return os.path.join(state_dir(), "connect.json")


def state_dir():
    """The launcher's directory: $KODIAK_HOME, else ~/.kodiak."""
    return os.environ.get("KODIAK_HOME") or os.path.join(os.path.expanduser("~"), ".kodiak")


def _port_open(host, port, wait=0.5):
    """Whether something accepts TCP connections at host:port."""
    import socket
    try:
        with socket.create_connection((host, port), timeout=wait):
            return True
    except OSError:
        return False


def connect(server=None, port=None, connect_file=None, timeout=10.0, connect_url=None):
    """Connect to a kodiakd. With no arguments, read the connect file that
    `kodiak up` / ak.start() wrote; without one, try localhost:5555, as
    Arkouda does. Arkouda's forms work too: connect("localhost", 5555) and
    connect(connect_url="tcp://host:port").
    timeout: seconds to wait for the server's answer (0 or None: no limit).
    Returns the server's info dict."""
    if connect_url is not None:
        url = connect_url[len("tcp://"):] if connect_url.startswith("tcp://") else connect_url
        server, _, p = url.rpartition(":")
        if not server or not p.isdigit():
            raise ValueError(f"connect_url must look like tcp://host:port, not {connect_url!r}")
        port = int(p)
    if timeout == 0:
        timeout = None
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
        token = cf.get("token")
    else:
        token = None
    server = server or "127.0.0.1"
    if port is None:
        port = 5555
    disconnect()
    with _conn.lock:
        _conn.ctx = zmq.Context.instance()
        _conn.endpoint = f"tcp://{server}:{port}"
        _open_socket()
        _conn.token = token
        try:
            _conn.info = generic_msg("connect", {"version": PROTOCOL_VERSION},
                                     timeout=timeout)[0]
        except Exception:
            _close()
            raise
    return dict(_conn.info)


def _open_socket():
    """A REQ socket to _conn.endpoint, with a monitor that reports when the
    server accepts or drops the connection."""
    _conn.sock = _conn.ctx.socket(zmq.REQ)
    _conn.sock.setsockopt(zmq.LINGER, 0)
    _conn.monitor = _conn.sock.get_monitor_socket(
        zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
    _conn.peer_up = False
    _conn.sock.connect(_conn.endpoint)


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
        if ev == zmq.EVENT_CONNECTED:
            _conn.peer_up = True
        elif ev == zmq.EVENT_DISCONNECTED:
            _conn.peer_up = False
            dropped = True
    return dropped


def _lost(msg):
    """The request in flight has no answer coming: give the connection a new
    socket (a REQ socket cannot send again before it receives) and raise."""
    _close_socket()
    _open_socket()
    raise ConnectionError(msg)


def _close():
    _close_socket()
    _conn.endpoint = None
    _conn.info = {}
    _conn.token = None
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


def shutdown():
    """Stop the server (all its arrays are lost) and disconnect. If it is the
    kodiakd of the local cluster `kodiak up` / ak.start() launched, the rest
    of that cluster (its famd processes) is stopped too, as `kodiak down`."""
    ep = _conn.endpoint
    try:
        generic_msg("shutdown")
    finally:
        disconnect()
        from . import launcher
        state = launcher._read_json(launcher.state_file())
        if state and ep and state.get("port") and ep.endswith(f":{state['port']}"):
            launcher.down()


_MEMORY_PATH_MIN = 1 << 16


def memory_path(addr, nbytes):
    """The "vm" argument that lets the ranks copy an array straight from or
    to this process's buffer at `addr` (same host, same user, a client that
    read the connect file); None when the path cannot apply."""
    if _conn.token is None or nbytes < _MEMORY_PATH_MIN or os.environ.get("KODIAK_NO_VM"):
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return None
    return {"pid": os.getpid(), "addr": int(addr), "boot_id": boot, "token": _conn.token}


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


def generic_msg(cmd, args=None, frames=(), timeout=None):
    """Send one command; return (result dict, list of reply frames as
    memoryviews). Raises the server's error as a Python exception."""
    with _conn.lock:
        if _conn.sock is None:
            raise ConnectionError("not connected to a kodiak server: call ak.connect() "
                                  "or ak.start() first")
        hdr = {"cmd": cmd, "args": args or {}}
        if _conn.pending_free:
            hdr["free"] = _conn.pending_free[:]
            _conn.pending_free.clear()
        parts = [json.dumps(hdr).encode()]
        parts.extend(frames)
        _check_size(cmd, parts)
        _peer_events()
        _conn.sock.send_multipart(parts, copy=False)
        waited = 0.0
        down_for = 0.0
        bar = None
        poller = zmq.Poller()
        poller.register(_conn.sock, zmq.POLLIN)
        poller.register(_conn.monitor, zmq.POLLIN)
        try:
            while not _conn.sock.poll(0):
                if not poller.poll(500):
                    waited += 0.5
                if _peer_events() and not _conn.sock.poll(100):
                    # (the reply may come just before the close: a stopping
                    # server answers 'shutdown' and goes)
                    if cmd == "shutdown":
                        _close_socket()
                        _open_socket()
                        return {}, []
                    _lost(f"the kodiak server at {_conn.endpoint} closed the connection "
                          f"during '{cmd}' (it stopped, or refused a message of "
                          f"{sum(memoryview(p).nbytes for p in parts)} bytes): no answer "
                          f"will come")
                down_for = 0.0 if _conn.peer_up else down_for + 0.5
                if down_for >= UNREACHABLE_AFTER and cmd != "connect":
                    _lost(f"the kodiak server at {_conn.endpoint} cannot be reached "
                          f"(nothing listens there for {UNREACHABLE_AFTER:g} s)")
                if timeout is not None and waited >= timeout:
                    ep = _conn.endpoint
                    _close()
                    raise ConnectionError(f"no answer from kodiak server at {ep} within "
                                          f"{timeout:g} s")
                if bar is None and waited >= PROGRESS_AFTER:
                    bar = _progress_bar(cmd)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        reply = _conn.sock.recv_multipart(copy=False)
    head = json.loads(bytes(reply[0].buffer))
    if not head.get("ok"):
        err = head.get("error") or {}
        exc = _EXCEPTIONS.get(err.get("type"), KodiakError)
        msg = err.get("message", "server error")
        if exc is builtins.KeyError:
            raise KeyError(msg)
        raise exc(msg)
    return head.get("result") or {}, [f.buffer for f in reply[1:]]

# SPDX-License-Identifier: Apache-2.0
"""wire.py — the format of kodiakd's requests and replies, with no socket
state: what client.py (the connection) and launcher.py (its one-shot
requests) both speak. See docs/PROTOCOL.md.

A request is a multipart ZeroMQ message: a JSON header {"cmd": name,
"args": {...}, "id": n, "free": [names]} and raw little-endian binary
frames. The reply is a JSON header {"ok": true, "result": {...}} or
{"ok": false, "error": {"type": "ValueError", "message": "..."}} and binary
frames. Every socket presents kodiakd's access token as its ZeroMQ PLAIN
password (user name "kodiak"); the server's ZAP handler checks it before
any request is read."""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

__all__ = ["PROTOCOL_VERSION", "DEFAULT_MAX_FRAME", "KodiakError", "RequestTimeoutError",
           "ServerBusyError", "ERROR_TYPES", "set_credentials", "request_header",
           "parse_header", "error_from_reply", "split_frames"]

# The version of this page of the protocol; kodiakd refuses a 'connect'
# that names another (KD_PROTOCOL_VERSION in kd.h).
PROTOCOL_VERSION = 2

# The frame size to cut binary data to when the server has not said its own
# ("max_frame" of the 'connect' answer: its ZMQ_MAXMSGSIZE).
DEFAULT_MAX_FRAME = 1 << 20

# The ZeroMQ PLAIN user name every client presents (the password is the token).
PLAIN_USERNAME = b"kodiak"


class KodiakError(RuntimeError):
    """A server-side failure with no more specific Python exception."""


class RequestTimeoutError(TimeoutError):
    """The server did not answer a request within its deadline. The
    connection stays usable: the next request works, or raises
    ServerBusyError while the server is still stuck in this one."""


class ServerBusyError(KodiakError):
    """kodiakd is still running an earlier command (one that timed out, or
    another client's) and answered this request without running it: the
    server is unhealthy if this lasts (a rank may be stopped or hung)."""


# The error "type" of a reply -> the Python exception raised for it.
ERROR_TYPES = {
    "ValueError": ValueError, "TypeError": TypeError, "IndexError": IndexError,
    "KeyError": KeyError, "MemoryError": MemoryError,
    "ZeroDivisionError": ZeroDivisionError, "RuntimeError": KodiakError,
    "NotImplementedError": NotImplementedError, "OverflowError": OverflowError,
    "FileExistsError": FileExistsError, "PermissionError": PermissionError,
    "ConnectionError": ConnectionError, "ServerBusyError": ServerBusyError,
    "FileNotFoundError": FileNotFoundError,
}


def set_credentials(sock: Any, token: Optional[str]) -> None:
    """Make a ZeroMQ socket present kodiakd's access token (before it connects).

    Parameters
    ----------
    sock : zmq.Socket
        A socket not yet connected.
    token : str or None
        The "token" of the server's connect file. None sends a password the
        server refuses, so that the refusal is its own (PermissionError).

    Returns
    -------
    None

    Examples
    --------
    >>> import zmq
    >>> from kodiak import wire
    >>> s = zmq.Context.instance().socket(zmq.REQ)
    >>> wire.set_credentials(s, "abc")
    >>> s.plain_username, s.plain_password
    (b'kodiak', b'abc')
    >>> s.close(0)
    """
    sock.plain_username = PLAIN_USERNAME
    sock.plain_password = (token or "-").encode()


def request_header(cmd: str, args: Optional[dict] = None, rid: Optional[int] = None,
                   free: Sequence[str] = ()) -> bytes:
    """The JSON header frame of a request.

    Parameters
    ----------
    cmd : str
        The command's name, as kodiakd's command table spells it.
    args : dict, optional
        Its arguments (JSON values); None: none.
    rid : int, optional
        The request "id" the reply echoes; None: no id (the reply has none).
    free : sequence of str
        Names of arrays for the server to delete before it runs the command.

    Returns
    -------
    bytes
        The header, UTF-8 JSON.

    Examples
    --------
    >>> from kodiak import wire
    >>> wire.request_header("memory", rid=7)
    b'{"cmd": "memory", "args": {}, "id": 7}'
    >>> wire.request_header("list_symbols", free=["id_3"])
    b'{"cmd": "list_symbols", "args": {}, "free": ["id_3"]}'
    """
    hdr = {"cmd": cmd, "args": args or {}}
    if rid is not None:
        hdr["id"] = rid
    if free:
        hdr["free"] = list(free)
    return json.dumps(hdr).encode()


def parse_header(frame: Any) -> dict:
    """The JSON header of a reply, as a dict.

    Parameters
    ----------
    frame : bytes-like
        The first frame of the reply.

    Returns
    -------
    dict
        {"ok": ..., "result": ...} or {"ok": false, "error": {...}}, and "id"
        when the request had one.

    Raises
    ------
    ValueError
        The frame is not JSON, or not a JSON object.

    Examples
    --------
    >>> from kodiak import wire
    >>> wire.parse_header(b'{"ok": true, "result": {"n": 1}, "id": 7}')["result"]
    {'n': 1}
    """
    head = json.loads(bytes(frame))
    if not isinstance(head, dict):
        raise ValueError(f"a reply header is a JSON object, not {str(head)[:80]}")
    return head


def error_from_reply(error: Optional[dict]) -> Exception:
    """The Python exception for the "error" of a failed reply.

    Parameters
    ----------
    error : dict or None
        {"type": name, "message": text}, as the server sends it.

    Returns
    -------
    Exception
        An instance of the class ERROR_TYPES maps the type to (KodiakError
        for a type it does not know), with the server's message.

    Examples
    --------
    >>> from kodiak import wire
    >>> wire.error_from_reply({"type": "IndexError", "message": "index 9 is out of bounds"})
    IndexError('index 9 is out of bounds')
    >>> type(wire.error_from_reply({"type": "NoSuchError"})).__name__
    'KodiakError'
    """
    err = error or {}
    exc = ERROR_TYPES.get(err.get("type"), KodiakError)
    return exc(err.get("message", "server error"))


def split_frames(data: memoryview, max_frame: Optional[int] = None) -> list:
    """`data` cut into frames no larger than the server reads.

    Parameters
    ----------
    data : memoryview
        Bytes to send (a byte memoryview).
    max_frame : int, optional
        The server's "max_frame" (its ZMQ_MAXMSGSIZE, which also bounds what
        a client without the token can make it buffer); None or 0:
        DEFAULT_MAX_FRAME.

    Returns
    -------
    list of memoryview
        The frames, in order; always at least one (empty for empty data).

    Examples
    --------
    >>> from kodiak import wire
    >>> [bytes(f) for f in wire.split_frames(memoryview(b"abcde"), 2)]
    [b'ab', b'cd', b'e']
    >>> len(wire.split_frames(memoryview(b"")))
    1
    """
    step = int(max_frame or DEFAULT_MAX_FRAME)
    return [data[i:i + step] for i in range(0, len(data), step)] or [data]

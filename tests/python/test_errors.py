# SPDX-License-Identifier: Apache-2.0
"""Errors and hostile input: every bad request gets a clear Python exception
(or, for what is not even a request, a dropped connection), and afterwards
the server still answers and the arrays it held are unchanged.

Raw requests go straight to kodiakd's port, with a plain ZeroMQ REQ socket
and with a plain TCP socket speaking (or mangling) ZMTP 3.0 by hand; both
present the access token (PLAIN), so that what is attacked is what comes
after it."""
import json
import os
import socket
import struct
import time

import numpy as np
import pytest
import zmq

from conftest import Server, connected_to, owned, plain

import kodiak
from kodiak import client


# ---- helpers -----------------------------------------------------------------------

@pytest.fixture
def kept(ak):
    """Arrays that must survive every attack, with their NumPy copies."""
    nd = {"i": np.arange(1001, dtype=np.int64) * 7 - 3000,
          "f": np.linspace(-1.0, 1.0, 333),
          "b": np.arange(50) % 3 == 0}
    arrays = {k: ak.array(v) for k, v in nd.items()}
    yield arrays, nd


def assert_intact(ak, kept):
    """The server answers and every kept array holds what it held."""
    arrays, nd = kept
    names = ak.list_symbols()
    for k, a in arrays.items():
        assert a.name in names
        got = a.to_ndarray()
        assert got.dtype == nd[k].dtype
        np.testing.assert_array_equal(got, nd[k])


def raw_request(srv, parts, timeout=5.0):
    """Send `parts` to Server `srv` on a fresh REQ socket (with the token);
    the reply's parts, or None if no reply came within `timeout` seconds."""
    sock = plain(zmq.Context.instance().socket(zmq.REQ), srv.token)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://127.0.0.1:{srv.port}")
        sock.send_multipart(parts)
        if not sock.poll(int(timeout * 1000)):
            return None
        return sock.recv_multipart()
    finally:
        sock.close(0)


def error_of(reply):
    """(type, message) of an error reply, checking it is valid UTF-8 JSON."""
    assert reply is not None, "no reply"
    head = json.loads(reply[0].decode("utf-8"))
    assert head["ok"] is False, head
    return head["error"]["type"], head["error"]["message"]


# ZMTP 3.0 by hand (RFC 23): a 64-byte greeting, the PLAIN handshake (RFC 24:
# HELLO, WELCOME, INITIATE, READY), then frames
def greeting(mechanism=b"PLAIN"):
    return (b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\0") +
            b"\x00" + b"\0" * 31)


def ready(socket_type=b"REQ", name=b"READY"):
    body = bytes([len(name)]) + name + bytes([11]) + b"Socket-Type" + \
        struct.pack(">I", len(socket_type)) + socket_type
    return bytes([0x04, len(body)]) + body


def hello(token, user=b"kodiak"):
    body = b"\x05HELLO" + bytes([len(user)]) + user + bytes([len(token)]) + token.encode()
    return bytes([0x04, len(body)]) + body


def frame(data, more=False):
    flags = 0x01 if more else 0x00
    if len(data) < 256:
        return bytes([flags, len(data)]) + data
    return bytes([flags | 0x02]) + struct.pack(">Q", len(data)) + data


def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_frame(s):
    """(flags, body) of the next frame."""
    flags = recv_exact(s, 1)[0]
    size = struct.unpack(">Q", recv_exact(s, 8))[0] if flags & 0x02 else recv_exact(s, 1)[0]
    return flags, recv_exact(s, size)


def handshake(s, token, socket_type=b"REQ"):
    """Greeting, HELLO with the token and INITIATE, each after the server's
    greeting, WELCOME and READY (libzmq drops a peer that sends its whole
    handshake before reading the server's greeting)."""
    s.sendall(greeting())
    recv_exact(s, 64)
    s.sendall(hello(token))
    flags, body = read_frame(s)
    assert flags & 0x04 and body.startswith(b"\x07WELCOME"), body
    s.sendall(ready(socket_type, name=b"INITIATE"))
    flags, body = read_frame(s)
    assert flags & 0x04 and body.startswith(b"\x05READY"), body


def read_message(s):
    """One message's frames (commands skipped)."""
    frames = []
    while True:
        flags, body = read_frame(s)
        if flags & 0x04:
            continue
        frames.append(body)
        if not flags & 0x01:
            return frames


def closed_by_peer(s, timeout=5.0):
    """True if the server closes the connection within `timeout` seconds
    (whatever it sent before, such as its own greeting, is read and dropped)."""
    s.settimeout(timeout)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


# ---- errors through the client --------------------------------------------------------

def test_unknown_array_name_is_a_keyerror_naming_it(ak, kept):
    with pytest.raises(KeyError, match="id_987654321"):
        client.generic_msg("to_ndarray", {"array": "id_987654321"})
    assert_intact(ak, kept)


def test_an_array_deleted_on_the_server_gives_keyerror_on_use(ak, kept):
    a = ak.arange(5)
    client.generic_msg("delete", {"name": a.name})
    with pytest.raises(KeyError, match=a.name):
        a.to_ndarray()
    del a  # its name rides along in "free" and is ignored: it is gone already
    assert_intact(ak, kept)


def test_error_message_cut_inside_a_utf8_character_still_decodes(ak, kept):
    # the server quotes at most 80 bytes of the name: that cuts an 'é' in two
    name = "a" + "é" * 100
    with pytest.raises(KeyError, match="unknown array name 'aé"):
        client.generic_msg("to_ndarray", {"array": name})
    assert_intact(ak, kept)


def test_unknown_command_is_a_valueerror(ak, kept):
    with pytest.raises(ValueError, match="unknown command 'no_such_command'"):
        client.generic_msg("no_such_command", {"x": 1})
    assert_intact(ak, kept)


@pytest.mark.parametrize("dtype", ["int32", "float16", "str", "", "INT64", "int64 "])
def test_unsupported_dtype_names_are_typeerrors(ak, kept, dtype):
    with pytest.raises(TypeError, match="unsupported dtype"):
        client.generic_msg("full", {"dtype": dtype, "size": 3,
                                    "value": {"dtype": "int64", "value": "1"}})
    with pytest.raises(TypeError):  # the client refuses before sending
        ak.zeros(3, dtype=dtype)
    assert_intact(ak, kept)


def test_a_dtype_that_is_not_a_string_is_a_typeerror(ak, kept):
    with pytest.raises(TypeError, match="'dtype' must be a string"):
        client.generic_msg("full", {"dtype": 7, "size": 3,
                                    "value": {"dtype": "int64", "value": "1"}})
    assert_intact(ak, kept)


@pytest.mark.parametrize("value", [{"dtype": "int64", "value": "12abc"},
                                   {"dtype": "int64", "value": "12\u0000"},
                                   {"dtype": "uint64", "value": "-1"},
                                   {"dtype": "int64", "value": "99999999999999999999"},
                                   {"dtype": "bool", "value": "maybe"}])
def test_scalar_text_that_is_not_its_dtype_is_a_valueerror(ak, kept, value):
    with pytest.raises(ValueError, match="is not a valid"):
        client.generic_msg("full", {"dtype": "int64", "size": 3, "value": value})
    assert_intact(ak, kept)


def test_scalar_with_an_unknown_dtype_is_a_typeerror(ak, kept):
    with pytest.raises(TypeError, match="scalar"):
        client.generic_msg("full", {"dtype": "int64", "size": 3,
                                    "value": {"dtype": "int8", "value": "1"}})
    assert_intact(ak, kept)


def test_version_mismatch_on_connect_is_refused_with_both_versions(ak, server, monkeypatch):
    monkeypatch.setattr(client, "PROTOCOL_VERSION", 999)
    with pytest.raises(kodiak.KodiakError, match="version 999.*version 2"):
        kodiak.connect("127.0.0.1", server.port, access_token=server.token)
    assert not kodiak.connected()  # a refused connection is not kept
    monkeypatch.undo()
    info = kodiak.connect("127.0.0.1", server.port, access_token=server.token)
    assert info["version"] == client.PROTOCOL_VERSION
    assert info["ranks"] == server.nranks


def test_connect_without_a_version_is_a_typeerror(ak):
    with pytest.raises(TypeError, match="missing argument 'version'"):
        client.generic_msg("connect", {})


# ---- raw requests on a ZeroMQ REQ socket --------------------------------------------------

BAD_HEADERS = [
    (b"", "ValueError", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "ValueError", "not valid JSON"),
    (b'{"cmd": "list_symbols"', "ValueError", "not valid JSON"),
    (b'{"cmd": "list_symbols"} trailing', "ValueError", "not valid JSON"),
    (b"[" * 100000, "ValueError", "not valid JSON"),
    (b"[1, 2, 3]", "ValueError", "JSON object"),
    (b'"list_symbols"', "ValueError", "JSON object"),
    (b"42", "ValueError", "JSON"),  # json-c waits for the end of a bare number
    (b"null", "ValueError", "not valid JSON"),  # json-c parses null as no object
    (b'{"args": {}}', "ValueError", "\"cmd\" string"),
    (b'{"cmd": 5}', "ValueError", "\"cmd\" string"),
    (b'{"cmd": ["list_symbols"]}', "ValueError", "\"cmd\" string"),
    (b'{"cmd": "nope"}', "ValueError", "unknown command 'nope'"),
    (b'{"cmd": "\xff\xfe\xfd"}', "ValueError", "unknown command"),
    (b'{"cmd": "shutdown\\u0000x"}', "ValueError", "NUL"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": "abc"}}', "TypeError",
     "'size' must be an integer"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 1.5}}', "TypeError",
     "'size' must be an integer"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 1e30}}', "TypeError",
     "'size' must be an integer"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 99999999999999999999999}}',
     "ValueError", "out of range"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 9223372036854775808}}',
     "ValueError", "out of range"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": -1}}', "ValueError", "invalid"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 4611686018427387904}}',
     "ValueError", "invalid"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 1099511627776}}', "MemoryError",
     "memory limit"),
    (b'{"cmd": "array", "args": {"size": 10}}', "TypeError", "missing argument 'dtype'"),
    (b'{"cmd": "array", "args": {"dtype": "int64", "size": 10}}', "ValueError",
     "frame 0 is missing"),
    (b'{"cmd": "to_ndarray", "args": []}', "TypeError", "missing argument 'array'"),
    (b'{"cmd": "to_ndarray", "args": "id_1"}', "TypeError", "missing argument 'array'"),
    (b'{"cmd": "to_ndarray", "args": {"array": 5}}', "TypeError", "must be a string"),
    (b'{"cmd": "to_ndarray", "args": {"array": null}}', "TypeError", "missing argument"),
    (b'{"cmd": "full", "args": {"dtype": "int64", "size": -5, "value": '
     b'{"dtype": "int64", "value": "1"}}}', "ValueError", "negative"),
    (b'{"cmd": "full", "args": {"dtype": "int64", "size": 5, "value": 3}}', "TypeError",
     "scalar"),
    (b'{"cmd": "arange", "args": {"start": 0, "stop": 10, "step": 0}}', "ZeroDivisionError",
     "step"),
]


@pytest.mark.parametrize("header,etype,text", BAD_HEADERS,
                         ids=[f"h{i}" for i in range(len(BAD_HEADERS))])
def test_bad_header_gets_an_error_reply(ak, server, kept, header, etype, text):
    got_type, msg = error_of(raw_request(server, [header]))
    assert got_type == etype
    assert text in msg
    assert_intact(ak, kept)


def test_a_free_list_of_junk_is_ignored(ak, server, kept):
    hdr = b'{"cmd": "list_symbols", "free": ["id_424242", 5, null, {}, [], "", "\xff"]}'
    head = json.loads(raw_request(server, [hdr])[0])
    assert head["ok"] is True
    assert_intact(ak, kept)
    head = json.loads(raw_request(server, [b'{"cmd": "list_symbols", "free": 5}'])[0])
    assert head["ok"] is True
    assert_intact(ak, kept)


@pytest.mark.parametrize("nbytes", [0, 79, 81, 800])
def test_array_frame_of_the_wrong_length_is_a_valueerror(ak, server, kept, nbytes):
    hdr = b'{"cmd": "array", "args": {"dtype": "int64", "size": 10}}'
    before = ak.list_symbols()
    etype, msg = error_of(raw_request(server, [hdr, b"\x01" * nbytes]))
    assert etype == "ValueError" and f"{nbytes} bytes" in msg and "80 bytes" in msg
    assert ak.list_symbols() == before  # nothing half-made is left behind
    assert_intact(ak, kept)


def test_a_message_without_the_req_delimiter_is_dropped(ak, server, kept):
    dealer = plain(zmq.Context.instance().socket(zmq.DEALER), server.token)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://127.0.0.1:{server.port}")
    try:
        dealer.send(b'{"cmd": "list_symbols"}')  # no empty delimiter frame
        assert not dealer.poll(500)
        # the same socket with the delimiter is a request like any other
        dealer.send_multipart([b"", b'{"cmd": "list_symbols"}'])
        assert dealer.poll(5000)
        reply = dealer.recv_multipart()
        assert reply[0] == b"" and json.loads(reply[1])["ok"] is True
    finally:
        dealer.close(0)
    assert_intact(ak, kept)


def test_a_client_that_leaves_before_the_reply_does_not_hurt(ak, server, kept):
    sock = plain(zmq.Context.instance().socket(zmq.REQ), server.token)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{server.port}")
    sock.send(json.dumps({"cmd": "randint", "args": {
        "low": {"dtype": "int64", "value": "0"}, "high": {"dtype": "int64", "value": "9"},
        "size": 100000, "dtype": "int64", "seed": 1}}).encode())
    sock.close(0)
    assert_intact(ak, kept)


# ---- raw TCP: ZMTP mangled -----------------------------------------------------------------

def test_hand_made_zmtp_request_is_answered(ak, server, kept):
    """The raw client below speaks enough ZMTP to be answered, so the
    attacks that follow are attacks on kodiakd and not on our own bytes."""
    with tcp(server.port) as s:
        handshake(s, server.token)
        s.sendall(frame(b"", more=True) + frame(b'{"cmd": "list_symbols"}'))
        frames = read_message(s)
    assert frames[0] == b""
    names = [x["name"] for x in json.loads(frames[1])["result"]["symbols"]]
    assert set(a.name for a in kept[0].values()) <= set(names)


@pytest.mark.parametrize("junk", [b"\0" * 100, b"\xff" * 64,
                                  b"\xff" + b"\0" * 8 + b"\x7f" + b"\x09\x09" + b"?" * 52],
                         ids=["zeros", "ff", "version9"])
def test_garbage_bytes_close_the_connection(ak, server, kept, junk):
    with tcp(server.port) as s:
        s.sendall(junk)
        assert closed_by_peer(s)
    assert_intact(ak, kept)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_hurt_nothing(ak, server, kept, seed):
    # random bytes may pass for the start of a ZMTP 1.0 peer, which libzmq
    # then waits on: the connection may stay open, the server must not care
    junk = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with tcp(server.port) as s:
        s.sendall(junk)
        assert_intact(ak, kept)
    assert_intact(ak, kept)


def test_a_peer_looking_like_zmtp1_and_stalling_does_not_block_others(ak, server, kept):
    # 'G' reads as the length byte of a ZMTP 1.0 identity: libzmq waits for
    # the rest (until its 30 s handshake timeout) while serving others
    with tcp(server.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert_intact(ak, kept)
    assert_intact(ak, kept)


def test_unknown_security_mechanism_closes_the_connection(ak, server, kept):
    with tcp(server.port) as s:
        s.sendall(greeting(b"CURVE"))
        assert closed_by_peer(s)
    assert_intact(ak, kept)


def test_bad_handshake_command_closes_the_connection(ak, server, kept):
    with tcp(server.port) as s:
        s.sendall(greeting())
        recv_exact(s, 64)
        s.sendall(bytes([0x04, 5]) + b"\x04HELO")  # not HELLO
        assert closed_by_peer(s)
    assert_intact(ak, kept)


def test_a_whole_handshake_and_request_sent_at_once_is_dropped(ak, server, kept):
    with tcp(server.port) as s:
        s.sendall(greeting() + ready() + frame(b"", more=True) +
                  frame(b'{"cmd": "shutdown"}'))
        assert closed_by_peer(s)
    assert_intact(ak, kept)


@pytest.mark.parametrize("cut", [3, 10, 40, 63])
def test_truncated_greeting_then_close(ak, server, kept, cut):
    with tcp(server.port) as s:
        s.sendall(greeting()[:cut])
    assert_intact(ak, kept)


def test_truncated_frame_then_close(ak, server, kept):
    with tcp(server.port) as s:
        handshake(s, server.token)
        s.sendall(frame(b"", more=True) + bytes([0x00, 100]) + b'{"cmd": "li')  # 11 of 100
    assert_intact(ak, kept)


def test_a_stalled_half_handshake_does_not_block_other_clients(ak, server, kept):
    with tcp(server.port) as s:
        s.sendall(greeting()[:20])
        t = time.time()
        assert_intact(ak, kept)
        ak.arange(10)
        assert time.time() - t < 5
    with tcp(server.port) as s:  # stalled in the middle of a frame
        handshake(s, server.token)
        s.sendall(frame(b"", more=True) + bytes([0x00, 200]) + b"{")
        assert_intact(ak, kept)


def test_a_frame_claiming_an_absurd_length_closes_the_connection(ak, server, kept):
    with tcp(server.port) as s:
        handshake(s, server.token)
        s.sendall(frame(b"", more=True) + bytes([0x02]) + struct.pack(">Q", 1 << 62) +
                  b"x" * 100)
        assert closed_by_peer(s)
    with tcp(server.port) as s:  # lengths >= 2^63 are negative as int64
        handshake(s, server.token)
        s.sendall(bytes([0x02]) + struct.pack(">Q", 2**64 - 8))
        assert closed_by_peer(s)
    assert_intact(ak, kept)


# ---- a server with a small memory limit: small ZMQ_MAXMSGSIZE -----------------------------

@pytest.fixture(scope="module")
def small():
    """kodiakd with 2 ranks of 1 MiB each: messages over 2 MiB are dropped."""
    yield from owned(Server(2, ("--memory-limit", "1M")))


@pytest.fixture
def small_ak(small):
    yield from connected_to(small)


def test_an_array_as_big_as_all_ranks_together_can_hold_arrives(small_ak):
    ak = small_ak
    nd = np.arange(3 * 2**20 // 16, dtype=np.int64)  # 1.5 MiB: 0.75 MiB per rank
    a = ak.array(nd)
    np.testing.assert_array_equal(a.to_ndarray(), nd)


def test_an_oversized_message_drops_the_connection_and_nothing_else(small, small_ak):
    ak = small_ak
    keep = np.arange(1000, dtype=np.int64) ** 2
    a = ak.array(keep)
    hdr = json.dumps({"cmd": "array", "args": {"dtype": "int64", "size": 3 * 2**20 // 8}})
    assert raw_request(small, [hdr.encode(), b"\0" * (3 * 2**20)], timeout=3) is None
    # a header alone over the limit is dropped the same way
    assert raw_request(small, [b'{"cmd": "list_symbols", "x": "' + b"y" * (3 * 2**20) +
                                    b'"}'], timeout=3) is None
    assert small.alive()
    assert a.name in ak.list_symbols()
    np.testing.assert_array_equal(a.to_ndarray(), keep)
    assert all(r["used"] <= r["limit"] for r in ak.get_mem_status())


def test_too_many_frames_is_a_valueerror(small, small_ak):
    # enough 1 MiB frames for the largest request (2 MiB here), plus 64 + 1
    limit = 64 + 2 * 2**20 // small_ak.client.server_info()["max_frame"] + 1
    a = small_ak.arange(10)
    etype, msg = error_of(raw_request(small, [b'{"cmd": "list_symbols"}'] +
                                      [b"x"] * (limit + 1)))
    assert etype == "ValueError" and f"more than {limit}" in msg
    head = json.loads(raw_request(small, [b'{"cmd": "list_symbols"}'] + [b"x"] * limit)[0])
    assert head["ok"] is True
    assert a.tolist() == list(range(10))


def test_a_request_whose_frames_add_up_to_too_much_is_a_memoryerror(small, small_ak):
    """Each frame fits in ZMQ_MAXMSGSIZE; together they are more than the
    2 ranks of 1 MiB may hold: refused with a clear error, nothing made."""
    a = small_ak.arange(10)
    before = small_ak.list_symbols()
    hdr = json.dumps({"cmd": "array", "args": {"dtype": "int64", "size": 3 * 2**17}})
    etype, msg = error_of(raw_request(small, [hdr.encode()] + [b"\0" * 2**20] * 3))
    assert etype == "MemoryError" and "larger than this server's ranks may hold" in msg
    assert small_ak.list_symbols() == before
    assert a.tolist() == list(range(10))


def test_huge_sizes_are_memoryerrors_from_the_memory_limit(small_ak):
    ak = small_ak
    a = ak.arange(100)
    for n in (2**18 + 2, 10**9, 2**40):
        with pytest.raises(MemoryError, match="memory limit of 1048576 bytes"):
            ak.zeros(n, dtype=ak.int64)
    with pytest.raises(MemoryError):
        ak.randint(0, 10, 10**7)
    np.testing.assert_array_equal(a.to_ndarray(), np.arange(100))


def test_uploading_more_than_all_ranks_may_hold_is_a_memoryerror_not_a_hang(small_ak):
    """Connected by host and port (no memory path), the array travels as one
    frame; the client refuses it before ZeroMQ would drop the connection."""
    ak = small_ak
    a = ak.arange(10)
    t0 = time.time()
    with pytest.raises(MemoryError, match="more than the server's 2 rank"):
        ak.array(np.zeros(3 * 2**20 // 8))
    assert time.time() - t0 < 5
    assert (a + 1).tolist() == list(range(1, 11))


def test_a_message_over_what_the_ranks_hold_is_refused_by_the_server_and_the_next_works(
        small_ak, monkeypatch):
    ak = small_ak
    a = ak.arange(10)
    monkeypatch.setitem(kodiak.client._conn.info, "memory_limit", None)  # skip the check
    t0 = time.time()
    with pytest.raises(MemoryError, match="larger than this server's ranks may hold"):
        ak.array(np.zeros(3 * 2**20 // 8))
    assert time.time() - t0 < 5
    assert a.sum() == 45 and ak.array(np.arange(5)).tolist() == [0, 1, 2, 3, 4]


def test_a_frame_over_max_frame_drops_the_connection_and_the_next_request_works(
        small_ak, monkeypatch):
    ak = small_ak
    a = ak.arange(10)
    monkeypatch.setattr(kodiak.client, "split_frames", lambda data: [data])  # one frame
    t0 = time.time()
    with pytest.raises(ConnectionError, match="closed the connection during 'array'"):
        ak.array(np.zeros(2**20 // 8 + 1))
    assert time.time() - t0 < 5
    monkeypatch.undo()
    assert a.sum() == 45 and ak.array(np.arange(5)).tolist() == [0, 1, 2, 3, 4]


def test_a_server_that_stops_gives_connectionerror_not_a_hang(monkeypatch):
    s = Server(1)
    try:
        kodiak.connect("127.0.0.1", s.port, access_token=s.token)
        a = kodiak.arange(10)
        s.stop()
        monkeypatch.setattr(kodiak.client, "UNREACHABLE_AFTER", 2.0)
        t0 = time.time()
        with pytest.raises(ConnectionError, match="cannot be reached|closed the connection"):
            a.sum()
        assert time.time() - t0 < 10
    finally:
        kodiak.disconnect()
        s.stop()

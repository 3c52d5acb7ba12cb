# SPDX-License-Identifier: Apache-2.0
"""test_munge.py — famd --auth munge: over TCP a client is the uid its MUNGE
credential says, and only a valid credential made for this famd and this
connection is accepted.

Everything runs against the test's own munged (its own key, socket, pid,
log and seed files in a temporary directory; a second munged with another
key forges credentials), stopped afterwards. Users are made with useradd
for the test and removed after it. Clients are real: libfam through ctypes
(run as the test user with setpriv, FAM_CONTROL=tcp so that famd treats it
as remote), kodiakd running as the test user, and a raw client speaking
the control protocol (docs/PROTOCOL.md) that replays, delays or forges
credentials made with the `munge` command.

The memory servers listen on KODIAK_TEST_FAMD_HOST (default 127.0.0.1), run
under the command in KODIAK_TEST_FAMD_PREFIX if set (e.g. `ip netns exec
h1`), and the libfam and kodiakd clients under KODIAK_TEST_CLIENT_PREFIX
(e.g. `ip netns exec h2`): the same tests then run with famd on another
(namespace) host. The raw client runs in pytest's own process, which must
reach KODIAK_TEST_FAMD_HOST. Run by tests/netns/netns.py (KDK_NETNS_HOSTS
set; ctest netns.python.test_munge), famd runs on host 1 and everything
else on host 0."""
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import pwd

import numpy as np
import pytest

from conftest import BUILD, Server
from fam_fixtures import FAMD, FamServers, connect

import kodiak

HOST = os.environ.get("KODIAK_TEST_FAMD_HOST", "127.0.0.1")
PREFIX = shlex.split(os.environ.get("KODIAK_TEST_FAMD_PREFIX", ""))
# run by tests/netns/netns.py (ctest netns.python.test_munge): this process
# and every client on host 0, famd on host 1, reached over the bridge
_NETNS = [h.split("=", 1) for h in os.environ.get("KDK_NETNS_HOSTS", "").split(",") if "=" in h]
if len(_NETNS) >= 2 and "KODIAK_TEST_FAMD_HOST" not in os.environ:
    HOST = _NETNS[1][1]
    PREFIX = ["ip", "netns", "exec", _NETNS[1][0]]
CLIENT_PREFIX = shlex.split(os.environ.get("KODIAK_TEST_CLIENT_PREFIX", ""))
NOBODY = 65534

if shutil.which("munged") is None:  # noqa: not a skip: the test needs it
    raise RuntimeError("munged is not installed (scripts/setup.sh installs munge)")


# ---- our own munged ------------------------------------------------------------

class Munged:
    """A munged of our own: key file, socket, pid, log and seed files in a
    temporary directory (0755: other users' clients reach the socket)."""

    def __init__(self, key=None):
        self.dir = tempfile.mkdtemp(prefix="kodiak-munge-")
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "munge.socket")
        self.key = os.path.join(self.dir, "munge.key")
        with open(self.key, "wb") as f:
            f.write(key or secrets.token_bytes(1024))
        os.chmod(self.key, 0o600)
        self.proc = None
        self.start()

    def start(self):
        d = self.dir
        self.log = open(os.path.join(d, "stderr"), "w+")
        self.proc = subprocess.Popen(
            ["munged", "--foreground", "--force", f"--socket={self.socket}",
             f"--key-file={self.key}", f"--pid-file={d}/munged.pid",
             f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"munged did not start: {self.log.read()}")
            time.sleep(0.02)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for p in (self.socket, self.socket + ".lock"):
            if os.path.exists(p):
                os.unlink(p)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def encode(self, payload, ttl=None, user=None):
        """A credential for `payload`, made as `user` (pwd entry; None: us)."""
        cmd = ["munge", "--socket", self.socket, "--string", payload]
        if ttl:
            cmd += ["--ttl", str(ttl)]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--clear-groups", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True,
                              text=True).stdout.strip()


def start_famd(munge_socket, *args):
    """A famd over tcp on HOST with --auth munge (unless args say otherwise);
    returns (process, "host:port", log)."""
    d = tempfile.mkdtemp(prefix="kodiak-famd-munge-")
    log = open(os.path.join(d, "famd.log"), "w+")
    cmd = [*PREFIX, FAMD, "--port", "0", "--pool-size", "64M", "--provider", "tcp",
           "--host", HOST, "--munge-socket", munge_socket, *(args or ("--auth", "munge"))]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        addr = FamServers._ready(p, log)
    except BaseException:
        p.kill()
        p.wait()
        raise
    p.dir = d
    return p, addr, log


def stop_famd(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(p.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def munged():
    m = Munged()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture(scope="module")
def famd(munged):
    p, addr, log = start_famd(munged.socket, "--auth", "munge", "--verbose")
    try:
        yield addr
    finally:
        ok = p.poll() is None
        stop_famd(p)
        log.seek(0)
        assert ok, "famd died: " + log.read()[-3000:]


def make_user():
    name = "kdm" + secrets.token_hex(4)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    return pwd.getpwnam(name)


@pytest.fixture(scope="module")
def users():
    """Two local users made for these tests, removed afterwards."""
    if os.geteuid() != 0:
        pytest.fail("these tests make local users and run munged: they must run as root")
    made = []
    try:
        made.append(make_user())
        made.append(make_user())
        yield made
    finally:
        for u in made:
            subprocess.run(["userdel", u.pw_name], capture_output=True)


# ---- a libfam client (ctypes), as any user -------------------------------------

LIBFAM_CLIENT = textwrap.dedent("""
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
    out = {}
    def check(what, rc):
        if rc:
            out.update(failed=what, rc=rc, err=lib.fam_last_error().decode())
            print(json.dumps(out))
            sys.exit(0)
    cmd, region, item = sys.argv[2:5]
    f = ctypes.c_void_p()
    check("init", lib.fam_initialize(None, ctypes.byref(f)))
    r, d, st = ctypes.c_void_p(), ctypes.c_void_p(), Stat()
    data = bytes(range(256)) * 16
    if cmd == "create":
        check("create_region", lib.fam_create_region(f, region.encode(), 1 << 20, 0o700,
                                                     None, ctypes.byref(r)))
        check("allocate", lib.fam_allocate(f, item.encode(), len(data), 0o600, r,
                                           ctypes.byref(d)))
        check("put", lib.fam_put_blocking(f, data, d, ctypes.c_uint64(0),
                                          ctypes.c_uint64(len(data))))
    if cmd in ("read", "stat"):
        check("lookup", lib.fam_lookup(f, item.encode(), region.encode(), ctypes.byref(d)))
    if cmd in ("create", "read"):
        buf = ctypes.create_string_buffer(len(data))
        check("get", lib.fam_get_blocking(f, buf, d, ctypes.c_uint64(0),
                                          ctypes.c_uint64(len(data))))
        out["same"] = buf.raw == data
    if cmd != "init":
        check("stat", lib.fam_stat(f, d, ctypes.byref(st)))
        out.update(uid=st.uid, gid=st.gid, perm=st.perm)
    out["ok"] = True
    print(json.dumps(out))
""")


def libfam(cmd, famd_addr, user=None, munge_socket=None, region="r", item="i",
           control="tcp"):
    """Run the ctypes client (as `user`, None: root) against famd_addr."""
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "FAM_SERVERS": famd_addr,
           "FAM_PROVIDER": "tcp", "FAM_CONTROL": control}
    if munge_socket:
        env["FAM_MUNGE_SOCKET"] = munge_socket
    argv = [sys.executable, "-c", LIBFAM_CLIENT, os.path.join(BUILD, "libfam.so"),
            cmd, region, item]
    if user is not None:
        argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--clear-groups", *argv]
    r = subprocess.run([*CLIENT_PREFIX, *argv], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- a raw control-protocol client ---------------------------------------------

HDR = struct.Struct("<IHHIiQ")  # magic, version, op, seq, status, len
MAGIC, VERSION = 0x314D464B, 2
HELLO, REGION_LOOKUP, AUTH = 1, 3, 25
REQ_SIZE = 5 * 8 + 4 * 8 + 4 * 4 + 256 + 256 + 256 + 32
INFO_SIZE = 12 * 8 + 2 * 4 + 8 + 8 * 4 + 256 + 256  # 656
F_AUTH = 16


class Raw:
    """One TCP control connection to famd, spoken byte by byte."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=20)
        self.seq = 0

    def request(self, op, body):
        self.seq += 1
        self.s.sendall(HDR.pack(MAGIC, VERSION, op, self.seq, 0, len(body)) + body)
        magic, _, rop, seq, status, n = HDR.unpack(self.recv(HDR.size))
        assert magic == MAGIC and rop == op and seq == self.seq
        return status, self.recv(n)

    def recv(self, n):
        b = b""
        while len(b) < n:
            k = self.s.recv(n - len(b))
            if not k:
                raise ConnectionError("famd closed the connection")
            b += k
        return b

    def hello(self):
        """HELLO -> (nonce payload to sign, famd's uid)."""
        req = bytearray(REQ_SIZE)
        req[-32:-29] = b"tcp"
        status, body = self.request(HELLO, bytes(req))
        assert status == 0 and len(body) == INFO_SIZE, body
        arg0, arg1 = struct.unpack_from("<QQ", body, 56)
        uid, = struct.unpack_from("<I", body, 112)
        flags, = struct.unpack_from("<I", body, 132)
        ident = body[144:400].split(b"\0")[0].decode()
        assert flags & F_AUTH
        return f"kodiak-famd-auth/1 {ident} nonce={arg0:016x}{arg1:016x}", uid

    def auth(self, cred):
        """AUTH -> (status, uid or famd's message)."""
        status, body = self.request(AUTH, cred.encode())
        if status == 0:
            return status, struct.unpack_from("<I", body, 112)[0]
        return status, body.decode()

    def closed(self):
        self.s.settimeout(10)
        try:
            return self.s.recv(1) == b""
        except ConnectionError:
            return True

    def close(self):
        self.s.close()


FAM_EPERM, FAM_EPROTO = -4, -8


# ---- identity ------------------------------------------------------------------------

def test_a_credential_for_uid_u_reaches_u_objects_and_not_another_users(
        munged, famd, users):
    u1, u2 = users
    a = libfam("create", famd, u1, munged.socket, region="r1", item="i1")
    assert a == {"ok": True, "same": True, "uid": u1.pw_uid, "gid": u1.pw_gid,
                 "perm": 0o600}, a
    # the owner again, on a new connection: reads what it wrote
    b = libfam("read", famd, u1, munged.socket, region="r1", item="i1")
    assert b["ok"] and b["same"] and b["uid"] == u1.pw_uid, b
    # another user with a valid credential of its own: refused (0600)
    c = libfam("read", famd, u2, munged.socket, region="r1", item="i1")
    assert c["failed"] == "lookup" and c["rc"] == FAM_EPERM, c
    assert f"you are uid {u2.pw_uid}" in c["err"] or "permission" in c["err"].lower(), c
    # u2's own objects are its own
    d = libfam("create", famd, u2, munged.socket, region="r2", item="i2")
    assert d["ok"] and d["uid"] == u2.pw_uid, d
    e = libfam("read", famd, u1, munged.socket, region="r2", item="i2")
    assert e["failed"] == "lookup" and e["rc"] == FAM_EPERM, e


def test_without_auth_munge_tcp_clients_stay_nobody_and_the_unix_socket_is_unchanged(
        munged, famd, users):
    u1 = users[0]
    p, addr, log = start_famd(munged.socket, "--auth", "none")
    try:
        a = libfam("create", addr, u1, munged.socket, region="rn", item="in")
        assert a["ok"] and a["uid"] == NOBODY, a
    finally:
        stop_famd(p)
    if PREFIX:
        return  # famd on another host: no Unix socket to reach
    # on famd's own host the Unix socket's kernel identity holds, munged or not
    b = libfam("create", famd, u1, "/nonexistent/munge.socket", region="ru", item="iu",
               control="unix")
    assert b["ok"] and b["uid"] == u1.pw_uid, b


# ---- refusals ------------------------------------------------------------------------

def test_no_munged_on_the_client_is_a_clear_refusal(famd, users):
    a = libfam("init", famd, users[0], "/nonexistent/munge.socket")
    assert a["failed"] == "init" and a["rc"] == FAM_EPERM, a
    assert "wants a MUNGE credential" in a["err"] and "munged is not running" in a["err"], a
    assert "/nonexistent/munge.socket" in a["err"], a


def test_no_munged_beside_famd_is_a_clear_refusal(munged, users):
    p, addr, log = start_famd("/nonexistent/munge.socket", "--auth", "munge")
    try:
        a = libfam("init", addr, users[0], munged.socket)
        assert a["failed"] == "init" and a["rc"] == FAM_EPERM, a
        assert "refused our MUNGE credential" in a["err"], a
        assert "its munged is not running" in a["err"], a
        assert p.poll() is None
    finally:
        stop_famd(p)


def test_a_forged_credential_is_refused(munged, famd, users):
    forger = Munged()  # same protocol, another key
    try:
        a = libfam("init", famd, users[0], forger.socket)
        assert a["failed"] == "init" and a["rc"] == FAM_EPERM, a
        assert "invalid MUNGE credential" in a["err"], a
        # the same by hand: a credential naming root, from the wrong key
        r = Raw(famd)
        payload, _ = r.hello()
        status, msg = r.auth(forger.encode(payload))
        assert status == FAM_EPERM and "invalid MUNGE credential" in msg, msg
        assert r.closed()
    finally:
        forger.close()


def test_a_replayed_credential_is_refused_also_after_munged_restarts(munged, famd, users):
    u1 = users[0]
    r = Raw(famd)
    payload, famd_uid = r.hello()
    assert famd_uid == os.geteuid()
    cred = munged.encode(payload, user=u1)
    assert r.auth(cred) == (0, u1.pw_uid)
    r.close()
    # sniffed and sent again on a new connection: munged remembers it
    r2 = Raw(famd)
    r2.hello()
    status, msg = r2.auth(cred)
    assert status == FAM_EPERM and "replayed" in msg, msg
    assert r2.closed()
    # munged restarted (its replay memory gone): famd remembers the nonce
    munged.stop()
    munged.start()
    r3 = Raw(famd)
    r3.hello()
    status, msg = r3.auth(cred)
    assert status == FAM_EPERM and "replayed" in msg and "nonce" in msg, msg
    r3.close()


def test_the_replay_memory_is_bounded_and_a_forgotten_nonce_is_still_refused(munged):
    # famd remembers 2 nonces: the first of 3 accepted credentials is
    # forgotten; with munged's own memory gone (a restart), replaying it is
    # still refused (its nonce is not this connection's), the last as replayed
    p, addr, log = start_famd(munged.socket, "--auth", "munge", "--auth-cache", "2")
    try:
        creds = []
        for _ in range(3):
            r = Raw(addr)
            creds.append(munged.encode(r.hello()[0]))
            assert r.auth(creds[-1])[0] == 0
            r.close()
        munged.stop()
        munged.start()
        r = Raw(addr)
        r.hello()
        status, msg = r.auth(creds[0])
        assert status == FAM_EPERM and "another connection" in msg, msg
        r = Raw(addr)
        r.hello()
        status, msg = r.auth(creds[2])
        assert status == FAM_EPERM and "nonce was used before" in msg, msg
        assert p.poll() is None
    finally:
        stop_famd(p)


def test_garbage_and_oversized_credentials_are_refused(famd):
    r = Raw(famd)
    r.hello()
    status, msg = r.auth("MUNGE:" + "A" * 100 + ":")
    assert status == FAM_EPERM and "invalid MUNGE credential" in msg, msg
    assert r.closed()
    # longer than famd reads (2048 bytes): refused from the header, closed
    r = Raw(famd)
    r.hello()
    status, msg = r.auth("x" * 2100)
    assert status == FAM_EPROTO and "wrong size" in msg, msg
    assert r.closed()
    # AUTH before HELLO: no nonce yet
    r = Raw(famd)
    status, msg = r.auth("MUNGE:x:")
    assert status == FAM_EPROTO and "AUTH before HELLO" in msg, msg


def test_a_credential_for_another_connection_or_server_is_refused(munged, famd, users):
    a, b = Raw(famd), Raw(famd)
    pa, _ = a.hello()
    b.hello()
    status, msg = b.auth(munged.encode(pa))  # made for a's nonce, sent on b
    assert status == FAM_EPERM and "another connection or memory server" in msg, msg
    # another famd (same munged, same key) refuses a credential made for this one
    p, addr, log = start_famd(munged.socket, "--auth", "munge")
    try:
        d = Raw(addr)
        d.hello()
        status, msg = d.auth(munged.encode(pa))
        assert status == FAM_EPERM and "another connection or memory server" in msg, msg
    finally:
        stop_famd(p)
    # and nothing but HELLO or AUTH comes before the credential
    e = Raw(famd)
    e.hello()
    status, msg = e.request(REGION_LOOKUP, bytes(REQ_SIZE))
    assert status == FAM_EPROTO and b"HELLO must come first" in msg
    a.close()


def test_an_expired_credential_is_refused(munged, famd):
    # munge's own time-to-live (1 s), and famd's stricter --auth-max-age (1 s)
    p, addr, log = start_famd(munged.socket, "--auth", "munge", "--auth-max-age", "1")
    try:
        a, b = Raw(famd), Raw(addr)
        ca = munged.encode(a.hello()[0], ttl=1)
        cb = munged.encode(b.hello()[0])  # munge's TTL: 300 s
        time.sleep(3)
        status, msg = a.auth(ca)
        assert status == FAM_EPERM and "expired" in msg, msg
        status, msg = b.auth(cb)
        assert status == FAM_EPERM and "expired" in msg and "--auth-max-age" in msg, msg
    finally:
        stop_famd(p)


# ---- kodiakd passes its user's identity through -------------------------------------

def test_fam_arrays_from_python_belong_to_the_user_who_runs_kodiakd(munged, famd, users):
    u1, u2 = users
    env = {"FAM_SERVERS": famd, "FAM_PROVIDER": "tcp", "FAM_CONTROL": "tcp",
           "FAM_MUNGE_SOCKET": munged.socket, "HOME": "/tmp"}
    mine = other = None

    def as_user(u):
        return [*CLIENT_PREFIX, "setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}",
                "--clear-groups"]
    try:
        mine = Server(1, prefix=as_user(u1), env=env)
        connect(kodiak, mine)
        fa = kodiak.fam_region("mungereg").create("owned", kodiak.int64, 1000)
        fa[0:1000] = kodiak.arange(1000) * 7
        np.testing.assert_array_equal(fa.to_ndarray(), np.arange(1000) * 7)
        # famd says who owns it: u1, not root, not nobody
        st = libfam("stat", famd, None, munged.socket, region="mungereg", item="owned")
        assert st["ok"] and st["uid"] == u1.pw_uid and st["gid"] == u1.pw_gid, st
        other = Server(1, prefix=as_user(u2), env=env)
        connect(kodiak, other)
        fb = kodiak.fam_region("mungereg").lookup("owned")
        np.testing.assert_array_equal(fb.to_ndarray(), np.arange(1000) * 7)
        with pytest.raises(PermissionError):
            fb[0:10] = 5
        connect(kodiak, mine)
        np.testing.assert_array_equal(fa.to_ndarray(), np.arange(1000) * 7)
    finally:
        kodiak.disconnect()
        for s in (other, mine):
            if s is not None:
                s.stop()

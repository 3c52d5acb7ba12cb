# SPDX-License-Identifier: Apache-2.0
"""launcher.py — start, inspect and stop a local Kodiak cluster: N famd
memory servers and a kodiakd of R MPI ranks under mpirun, all detached from
the terminal (their own session, logs in the state directory).

    kodiak up [--fam-servers 2] [--ranks 2] ...   |  ak.start(fam_servers=2, ranks=2, ...)
    kodiak status                                 |  ak.cluster_status()
    kodiak down                                   |  ak.stop()

Files, in the state directory ($KODIAK_HOME, default ~/.kodiak):

- cluster.json: what the launcher started and how to recognise it again:
  every pid with its start time (so a reused pid is never taken for ours),
  addresses, options and log paths. `status` and `down` read only this.
- connect.json (or $KODIAK_CONNECT_FILE): written by kodiakd when it is
  ready ({host, port, ranks, pid, version, token, ipc, boot_id}); the
  launcher then adds
  "fam_servers" (["127.0.0.1:port", ...]), "fam_provider", "famd_pids",
  "mpirun_pid" and "state_file". ak.connect() with no arguments reads it.
  kodiakd removes it when it stops. It holds kodiakd's access token, as
  cluster.json does: both are written mode 0600, and rewritten so.
- kodiakd.log, famd<i>.log: the programs' output (kept after `down`).
- famd<i>/: each famd's --data-dir (its backups; kept after `down`).
- lock: held while `up` or `down` runs, so two cannot interleave.

Stopping kodiakd: the shutdown command first (every rank stops cleanly),
then SIGTERM to mpirun (kodiakd stops cleanly too, but Open MPI's mpirun
always exits with status 1 after a signal), then SIGKILL to everything in
mpirun's session after `timeout` seconds. famd: SIGTERM, then SIGKILL.

Where these files and the binaries are is paths.py's; the requests the
launcher sends are in wire.py's format. It does not use the client's
connection: ak.start() and ak.stop(), which connect and disconnect too, are
in session.py."""
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time

from . import paths, wire
from .paths import state_file  # noqa: F401  (re-exported: launcher.state_file())

__all__ = ["cluster_status", "LaunchError", "ClusterRunning"]

STATE_VERSION = 1


class LaunchError(RuntimeError):
    """A cluster could not be started (the message quotes the log)."""


class ClusterRunning(LaunchError):
    """`up` / ak.start() found a cluster already running."""


# Popen objects of the processes this Python process started, so that
# stop() in the same process reaps them (no zombies in a notebook).
_children = []


# ---- small helpers --------------------------------------------------------------------

def parse_size(value, what="size"):
    """Bytes from an int or text such as 1G, 512M, 64KiB, 1000000."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number of bytes, not {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip()
        units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
        num = text.rstrip("bB").rstrip("iI")
        unit = ""
        if num and num[-1].lower() in units:
            unit, num = num[-1].lower(), num[:-1]
        if not num.isdigit():
            raise ValueError(f"{what} {value!r} is not a number of bytes (e.g. 1G, 512M, "
                             f"1048576)")
        n = int(num) * units[unit]
    if n <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return n


def find_binary(name):
    """$KODIAK_BUILD/name, else <repo>/build/name, else name on PATH
    (paths.find_binary); LaunchError when it is not there."""
    try:
        return paths.find_binary(name)
    except FileNotFoundError as e:
        raise LaunchError(str(e)) from None


def _proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command name, with the
    command name itself as field 'comm'; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    # rest starts at field 3 (state); ppid is 4, session 6, utime 14,
    # stime 15, starttime 22
    return {"comm": head.partition("(")[2], "state": fields[0], "ppid": int(fields[1]),
            "session": int(fields[3]), "utime": int(fields[11]), "stime": int(fields[12]),
            "start": int(fields[19])}


def _start_time(pid):
    st = _proc_stat(pid)
    return st["start"] if st else None


def _alive(pid, start=None):
    """True if `pid` runs (not a zombie) and, when given, started at `start`
    (clock ticks after boot): a pid reused by another program is not ours."""
    if not pid:
        return False
    st = _proc_stat(pid)
    if st is None or st["state"] in ("Z", "X"):
        return False
    return start is None or st["start"] == start


def _reap():
    """Collect the exit status of our own children that have finished."""
    for p in list(_children):
        if p.poll() is not None:
            _children.remove(p)


def cpu_seconds(pid):
    """utime + stime of a process in seconds (None if it is gone)."""
    st = _proc_stat(pid)
    if st is None:
        return None
    return (st["utime"] + st["stime"]) / os.sysconf("SC_CLK_TCK")


def session_pids(sid):
    """Every live process of session `sid` (mpirun is its leader; the
    kodiakd ranks stay in it even after mpirun is gone)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st and st["session"] == sid and st["state"] not in ("Z", "X"):
                pids.append(int(d))
    return sorted(pids)


def rank_pids(mpirun_pid):
    """The kodiakd processes mpirun started, rank order unknown (sorted by pid)."""
    out = []
    for pid in session_pids(mpirun_pid):
        st = _proc_stat(pid)
        if st and st["comm"] == "kodiakd":
            out.append(pid)
    return out


def _write_json(path, obj):
    """Write `obj` to `path` atomically, mode 0600 whatever the umask: the
    connect file and cluster.json hold kodiakd's access token."""
    tmp = f"{path}.tmp.{os.getpid()}"
    _unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            text = f.read().splitlines()[-lines:]
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + line for line in text) or "    (empty)"


class _Lock:
    """An exclusive lock on <state dir>/lock while up or down runs."""

    def __enter__(self):
        d = paths.state_dir()
        os.makedirs(d, mode=0o700, exist_ok=True)
        self.f = open(os.path.join(d, "lock"), "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self.f.close()
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise LaunchError(f"another `kodiak up` or `kodiak down` is running on "
                                  f"{d}") from None
            raise
        return self

    def __exit__(self, *exc):
        self.f.close()


def _request(host, port, cmd, args=None, timeout=5.0, token=None):
    """One request on a socket of its own (the client's connection, if any,
    is left alone), presenting the access token. Returns the result dict;
    raises TimeoutError if kodiakd does not answer, RuntimeError if it
    answers with an error or refuses the token."""
    import zmq
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    wire.set_credentials(sock, token)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    def refused():
        why = "none was recorded" if not token else "the one recorded is not its own"
        return RuntimeError(f"PermissionError: kodiakd at {host}:{port} refused the "
                            f"access token ({why})")

    def no_answer():
        return TimeoutError(f"kodiakd at {host}:{port} did not answer '{cmd}' within "
                            f"{timeout:g} s")
    end = time.monotonic() + timeout
    try:
        sock.connect(f"tcp://{host}:{port}")
        # a refusal can drop the connection before the request is taken:
        # a blocking send would then wait for good
        while True:
            try:
                sock.send(wire.request_header(cmd, args), zmq.NOBLOCK)
                break
            except zmq.Again:
                if monitor.poll(50):
                    raise refused() from None
                if time.monotonic() >= end:
                    raise no_answer() from None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        ready = dict(poller.poll(max(1, int((end - time.monotonic()) * 1000))))
        if monitor in ready and sock not in ready:
            raise refused()
        if sock not in ready:
            raise no_answer()
        head = wire.parse_header(sock.recv())
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
    if not head.get("ok"):
        err = head.get("error") or {}
        raise RuntimeError(f"{err.get('type')}: {err.get('message')}")
    return head.get("result") or {}


def mpi_defaults(env):
    """Set, where the caller has not, what Open MPI needs here in `env`
    (a dict, changed in place and returned): the launcher's, the tests'
    and the benchmarks' mpirun all take it from here."""
    if os.geteuid() == 0:  # Open MPI refuses root without these
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    # Open MPI 4.1's orted (the daemon mpirun starts on every other host)
    # maps hwloc's topology at an address picked from a hole in its memory
    # and at times crashes doing so (SIGSEGV in hwloc_shmem_topology_write:
    # `kodiak up --hostfile` failed 1 time in 3 on namespace hosts here);
    # without the shared topology each process reads its own
    env.setdefault("OMPI_MCA_rtc_hwloc_vmhole", "none")
    # every orted reports to mpirun itself, not through a tree of orteds: a
    # daemon's connection to its parent daemon failed at times on namespace
    # hosts ("unable to complete a TCP connection", Open MPI's own advice:
    # routed=direct); a tree only pays at hundreds of hosts
    env.setdefault("OMPI_MCA_routed", "direct")
    return env


def _mpi_env(fam_servers, provider):
    env = mpi_defaults(dict(os.environ))
    # the memory servers, for kodiakd's libfam (FAM arrays)
    env["FAM_SERVERS"] = ",".join(fam_servers)
    env["FAM_PROVIDER"] = provider
    return env


def _spawn(cmd, log_path, env=None):
    """Start `cmd` in a session of its own, output to log_path."""
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True,
                             cwd=paths.state_dir(), close_fds=True)
    _children.append(p)
    return p


def _terminate(pid, start, timeout, also=()):
    """SIGTERM pid, wait up to timeout, then SIGKILL pid and `also` (pids).
    Returns "SIGTERM" or "SIGKILL" (how it ended)."""
    how = "SIGTERM"
    if _alive(pid, start):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _alive(pid, start) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.05)
    if _alive(pid, start):
        how = "SIGKILL"
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for q in also:
        try:
            os.kill(q, signal.SIGKILL)
            how = "SIGKILL"
        except ProcessLookupError:
            pass
    _reap()
    return how


# ---- up -------------------------------------------------------------------------------------

def _running_parts(state):
    """The parts of a recorded cluster that still run, for people."""
    parts = []
    m = state.get("mpirun") or {}
    if state.get("hostfile"):  # pids on other hosts: judge by what runs here
        famd = [f for f in state.get("famd") or []
                if _alive(f.get("launcher_pid"), f.get("launcher_start"))]
        if _alive(m.get("pid"), m.get("start")):
            parts.append(f"kodiakd at {state.get('host')}:{state.get('port')} (mpirun pid "
                         f"{m.get('pid')}, hosts from {state['hostfile']})")
        if famd:
            parts.append(f"{len(famd)} famd on {', '.join(f['host'] for f in famd)}")
        return parts
    ranks = [r for r in state.get("kodiakd") or [] if _alive(r.get("pid"), r.get("start"))]
    if _alive(m.get("pid"), m.get("start")) or ranks:
        parts.append(f"kodiakd at {state.get('host')}:{state.get('port')} "
                     f"({len(ranks)} ranks, mpirun pid {m.get('pid')})")
    famd = [f for f in state.get("famd") or [] if _alive(f.get("pid"), f.get("start"))]
    if famd:
        parts.append(f"{len(famd)} famd ({', '.join(str(f.get('address')) for f in famd)})")
    return parts


def _check_nothing_runs():
    """Refuse if a cluster (or a kodiakd writing our connect file) runs;
    clear the files of one that died."""
    path = state_file()
    state = _read_json(path)
    if state is not None:
        parts = _running_parts(state)
        if parts:
            raise ClusterRunning(
                f"a kodiak cluster is already running: {'; '.join(parts)}; state in "
                f"{path}. Use it with ak.connect(), or stop it first with `kodiak down` "
                f"/ ak.stop()")
        _unlink(path)  # everything it names is dead
    cf_path = paths.default_connect_file()
    cf = _read_json(cf_path)
    if cf is not None:
        pid = cf.get("pid")
        if _alive(pid) and (_proc_stat(pid) or {}).get("comm") == "kodiakd":
            raise ClusterRunning(
                f"a kodiakd (pid {pid}, port {cf.get('port')}) is running and owns the "
                f"connect file {cf_path}: stop it, or set KODIAK_HOME / "
                f"KODIAK_CONNECT_FILE to start another cluster")
    _unlink(cf_path)


def _wait_famd(p, log_path, deadline):
    """The address famd prints on its ready line ("famd ready ADDR ...")."""
    while True:
        try:
            with open(log_path, errors="replace") as f:
                for line in f:
                    words = line.split()
                    if len(words) >= 3 and words[1] == "ready":
                        return words[2]
        except FileNotFoundError:
            pass
        if p.poll() is not None:
            raise LaunchError(f"famd exited with status {p.returncode} before it was "
                              f"ready; its log {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise LaunchError(f"famd did not get ready in time; its log {log_path}:\n"
                              f"{_tail(log_path)}")
        time.sleep(0.02)


def _wait_kodiakd(p, cf_path, log_path, deadline):
    """The connect file kodiakd writes once rank 0 listens, then an answer
    to 'connect' (all ranks up and serving)."""
    while True:
        cf = _read_json(cf_path)
        if cf and cf.get("port"):
            break
        if p.poll() is not None:
            raise LaunchError(f"mpirun/kodiakd exited with status {p.returncode} before it "
                              f"was ready; its log {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise LaunchError(f"kodiakd did not get ready in time; its log {log_path}:\n"
                              f"{_tail(log_path)}")
        time.sleep(0.05)
    left = max(1.0, deadline - time.monotonic())
    try:
        info = _request(cf["host"], cf["port"], "connect",
                        {"version": wire.PROTOCOL_VERSION}, timeout=left,
                        token=cf.get("token"))
    except (TimeoutError, RuntimeError) as e:
        raise LaunchError(f"kodiakd does not answer: {e}; its log {log_path}:\n"
                          f"{_tail(log_path)}") from None
    return cf, info


def up(fam_servers=2, ranks=2, memory_limit=None, pool_size="1G", provider="shm", port=0,
       host="127.0.0.1", timeout=60.0, persistent=False, request_timeout=None):
    """Start famd x fam_servers and kodiakd x ranks; return the state dict
    (also written to cluster.json). Raises ClusterRunning if one runs.

    persistent: each famd keeps its pool in $KODIAK_HOME/famd<i>.pool, which
    `down` leaves in place, and comes back on the port it had the first
    time (recorded in famd-ports.json): libfam finds a striped array's parts
    by the servers' addresses, so they must not change.

    request_timeout: seconds a client waits for each answer before it raises
    TimeoutError (kodiakd tells clients on connect; None: kodiakd's default,
    600; 0: no limit)."""
    if request_timeout is not None and (isinstance(request_timeout, bool) or
                                        not isinstance(request_timeout, (int, float)) or
                                        not 0 <= request_timeout < float("inf")):
        raise ValueError(f"request_timeout must be a number of seconds >= 0 (0: no limit), "
                         f"got {request_timeout!r}")
    if isinstance(fam_servers, bool) or not isinstance(fam_servers, int) or fam_servers < 0:
        raise ValueError(f"fam_servers must be an integer >= 0, got {fam_servers!r}")
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be an integer >= 1, got {ranks!r}")
    if provider not in ("shm", "tcp"):
        raise ValueError(f"provider must be 'shm' or 'tcp', got {provider!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535 (0: any free port), got {port!r}")
    pool_bytes = parse_size(pool_size, "pool_size")
    limit = parse_size(memory_limit, "memory_limit") if memory_limit is not None else None
    kodiakd = find_binary("kodiakd")
    famd = find_binary("famd") if fam_servers else None
    mpirun = shutil.which("mpirun")
    if not mpirun:
        raise LaunchError("mpirun not found on PATH (Debian: apt-get install openmpi-bin)")

    sdir = paths.state_dir()
    with _Lock():
        _check_nothing_runs()
        cf_path = paths.default_connect_file()
        os.makedirs(os.path.dirname(os.path.abspath(cf_path)), exist_ok=True)
        state = {"version": STATE_VERSION, "started": time.time(), "state_dir": sdir,
                 "connect_file": os.path.abspath(cf_path), "host": host, "port": None,
                 "ranks": ranks, "memory_limit": limit, "provider": provider,
                 "pool_size": pool_bytes, "famd": [], "mpirun": None, "kodiakd": []}
        procs = []
        deadline = time.monotonic() + timeout
        try:
            ports_path = os.path.join(sdir, "famd-ports.json")
            ports = (_read_json(ports_path) or {}) if persistent else {}
            for i in range(fam_servers):
                log = os.path.join(sdir, f"famd{i}.log")
                cmd = [famd, "--host", host, "--port", str(ports.get(str(i), 0)),
                       "--pool-size", str(pool_bytes),
                       "--provider", provider, "--data-dir", os.path.join(sdir, f"famd{i}")]
                if persistent:
                    cmd += ["--pool-file", os.path.join(sdir, f"famd{i}.pool")]
                p = _spawn(cmd, log)
                procs.append(p)
                state["famd"].append({"pid": p.pid, "start": _start_time(p.pid), "log": log,
                                      "address": None})
            for i, f in enumerate(state["famd"]):
                f["address"] = _wait_famd(procs[i], f["log"], deadline)
            addrs = [f["address"] for f in state["famd"]]
            if persistent:
                _write_json(ports_path, {str(i): int(a.rsplit(":", 1)[1])
                                         for i, a in enumerate(addrs)})

            log = os.path.join(sdir, "kodiakd.log")
            cmd = [mpirun, "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
                   "-x", "FAM_SERVERS", "-x", "FAM_PROVIDER",
                   kodiakd, "--host", host, "--port", str(port), "--connect-file",
                   state["connect_file"]]
            if limit is not None:
                cmd += ["--memory-limit", str(limit)]
            if request_timeout is not None:
                cmd += ["--request-timeout", repr(float(request_timeout))]
            p = _spawn(cmd, log, env=_mpi_env(addrs, provider))
            procs.append(p)
            state["mpirun"] = {"pid": p.pid, "start": _start_time(p.pid), "log": log}
            cf, info = _wait_kodiakd(p, state["connect_file"], log, deadline)
            state["port"] = cf["port"]
            state["token"] = cf.get("token")  # cluster.json is 0600 too
            state["memory_limit"] = info.get("memory_limit")
            state["kodiakd"] = [{"pid": q, "start": _start_time(q)} for q in rank_pids(p.pid)]
            _write_json(state_file(), state)
            cf.update({"fam_servers": addrs, "fam_provider": provider,
                       "famd_pids": [f["pid"] for f in state["famd"]],
                       "mpirun_pid": p.pid, "state_file": state_file()})
            _write_json(state["connect_file"], cf)
            if not _alive(p.pid):  # died meanwhile: kodiakd could not remove it
                raise LaunchError(f"kodiakd stopped right after starting; its log {log}:\n"
                                  f"{_tail(log)}")
        except BaseException:
            _stop_state(state, timeout=5.0)
            _unlink(state_file())
            _unlink(state["connect_file"])
            raise
    return state


# ---- down ---------------------------------------------------------------------------------

def _stop_state(state, timeout):
    """Stop every process `state` names; return what was done, one line each."""
    done = []
    m = state.get("mpirun") or {}
    mpid, mstart = m.get("pid"), m.get("start")
    if mpid and _alive(mpid, mstart):
        ranks = [r["pid"] for r in state.get("kodiakd") or []
                 if _alive(r.get("pid"), r.get("start"))]
        how = None
        if state.get("port"):
            try:
                _request(state["host"], state["port"], "shutdown",
                         timeout=min(5.0, timeout), token=state.get("token"))
                deadline = time.monotonic() + timeout
                while _alive(mpid, mstart) and time.monotonic() < deadline:
                    _reap()
                    time.sleep(0.05)
                if not _alive(mpid, mstart):
                    how = "shutdown command"
            except (TimeoutError, RuntimeError):
                pass
        if how is None:
            # everything still in mpirun's session dies with it at the end
            how = _terminate(mpid, mstart, timeout)
            left = [q for q in session_pids(mpid) if q in ranks or q == mpid]
            if left:
                how = _terminate(mpid, mstart, 0, also=left)
        done.append(f"stopped kodiakd ({len(ranks)} ranks, mpirun pid {mpid}) by {how}")
    elif mpid:
        done.append(f"kodiakd (mpirun pid {mpid}) was not running")
    # ranks outliving mpirun (it was killed): still ours, by pid and start time
    for r in state.get("kodiakd") or []:
        if _alive(r.get("pid"), r.get("start")):
            _terminate(r["pid"], r["start"], min(2.0, timeout))
    for i, f in enumerate(state.get("famd") or []):
        if _alive(f.get("pid"), f.get("start")):
            how = _terminate(f["pid"], f["start"], timeout)
            done.append(f"stopped famd #{i} ({f.get('address')}, pid {f['pid']}) by {how}")
        elif f.get("pid"):
            done.append(f"famd #{i} (pid {f['pid']}) was not running")
    _reap()
    return done


def down(timeout=10.0):
    """Stop the cluster of the state directory and remove its state files.
    Safe when nothing runs. Returns a list of lines saying what was done."""
    with _Lock():
        state = _read_json(state_file())
        cf_path = paths.default_connect_file()
        if state is None:
            cf = _read_json(cf_path)
            if cf is not None and not _alive(cf.get("pid")):
                _unlink(cf_path)  # left by a kodiakd that died
            return []
        if state.get("hostfile"):
            done = _stop_hosts(state, timeout)
            _unlink(state.get("connect_file") or cf_path)  # rank 0 is elsewhere
            _unlink(state_file())
            return done
        done = _stop_state(state, timeout)
        cf_path = state.get("connect_file") or cf_path
        cf = _read_json(cf_path)
        if cf is not None and not _alive(cf.get("pid")):
            _unlink(cf_path)
        _unlink(state_file())
        return done


# ---- status ---------------------------------------------------------------------------------

def cluster_status(timeout=5.0):
    """What the state directory's cluster runs: None if nothing was started,
    else {"running": all parts alive and kodiakd answering, "state_file",
    "connect_file", "host", "port", "ranks", "provider", "mpirun": {pid,
    alive}, "kodiakd": [{rank, pid, alive, used, limit}], "famd": [{address,
    pid, alive}], "answering": bool, "error": why kodiakd did not answer}."""
    state = _read_json(state_file())
    if state is None:
        return None
    _reap()
    m = state.get("mpirun") or {}
    out = {"state_file": state_file(), "connect_file": state.get("connect_file"),
           "host": state.get("host"), "port": state.get("port"),
           "ranks": state.get("ranks"), "provider": state.get("provider"),
           "pool_size": state.get("pool_size"), "logs": paths.state_dir(),
           "mpirun": {"pid": m.get("pid"), "alive": _alive(m.get("pid"), m.get("start"))},
           "kodiakd": [], "famd": [], "answering": False, "error": None}
    memory = []
    if out["mpirun"]["alive"]:
        try:
            memory = _request(state["host"], state["port"], "memory", timeout=timeout,
                              token=state.get("token"))["ranks"]
            out["answering"] = True
        except (TimeoutError, RuntimeError, KeyError, ValueError) as e:
            out["error"] = str(e)
    if state.get("hostfile"):  # ranks and famd on other hosts
        for r in range(max(len(memory), state.get("ranks") or 0)):
            e = {"rank": r, "pid": None, "alive": True if out["answering"] else None, "used": None,
                 "limit": None}
            if r < len(memory):
                e.update(used=memory[r]["used"], limit=memory[r]["limit"])
            out["kodiakd"].append(e)
        _status_hosts(state, out, timeout)
        out["auth"] = state.get("auth") or "none"
        out["munge_socket"] = state.get("munge_socket")
        out["running"] = out["answering"] and all(f["alive"] for f in out["famd"])
        return out
    pids = state.get("kodiakd") or []
    for r in range(max(len(pids), len(memory))):
        entry = {"rank": r, "pid": None, "alive": None, "used": None, "limit": None}
        if r < len(memory):
            entry.update(used=memory[r]["used"], limit=memory[r]["limit"])
        out["kodiakd"].append(entry)
    # pids are known per process, ranks per message: rank 0's pid is in the
    # connect file, the others follow in pid order
    cf = _read_json(state.get("connect_file") or "") or {}
    ordered = sorted(pids, key=lambda q: (q.get("pid") != cf.get("pid"), q.get("pid")))
    for entry, q in zip(out["kodiakd"], ordered):
        entry["pid"] = q.get("pid")
        entry["alive"] = _alive(q.get("pid"), q.get("start"))
    for f in state.get("famd") or []:
        out["famd"].append({"address": f.get("address"), "pid": f.get("pid"),
                            "alive": _alive(f.get("pid"), f.get("start"))})
    out["running"] = (out["answering"] and all(e["alive"] for e in out["kodiakd"]) and
                      all(f["alive"] for f in out["famd"]))
    return out



# ---- many hosts: kodiak up --hostfile -------------------------------------------------------
#
# A hostfile names the memory hosts (one famd each) and the compute hosts
# (kodiakd ranks), one host a line, by the address the programs listen on:
#
#     memory  10.0.0.2  pool=64G data=/var/lib/kodiak/famd
#     memory  10.0.0.3  pool=64G
#     compute 10.0.0.10 ranks=4
#     compute 10.0.0.11 ranks=4
#
# famd is started on its host through the launcher command (default `ssh`;
# any command run as `LAUNCHER HOST 'shell command'`, e.g. a wrapper of
# `srun -w HOST` or of a container runtime), which also stops it
# (`kill PID`) and asks whether it still runs (`kill -0 PID`). kodiakd is
# started by mpirun here, on the compute hosts (mpirun's rsh agent is the
# launcher command when it is not ssh); rank 0 listens on the first
# compute host's address. The state directory must be on a file system
# the compute hosts share (kodiakd's rank 0 writes the connect file).

def parse_hostfile(path):
    """{"memory": [{host, pool, data}], "compute": [{host, ranks}]} of a
    hostfile; ValueError naming the line for anything wrong."""
    out = {"memory": [], "compute": []}
    with open(path) as f:
        for no, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            where = f"{path}:{no}"
            if words[0] not in ("memory", "compute") or len(words) < 2:
                raise ValueError(f"{where}: want 'memory HOST [pool=SIZE] [data=DIR]' or "
                                 f"'compute HOST [ranks=N]', not {line.strip()!r}")
            opts = {}
            for w in words[2:]:
                k, eq, v = w.partition("=")
                if not eq or not v:
                    raise ValueError(f"{where}: {w!r} is not KEY=VALUE")
                opts[k] = v
            allowed = {"memory": {"pool", "data"}, "compute": {"ranks"}}[words[0]]
            if set(opts) - allowed:
                raise ValueError(f"{where}: unknown option(s) {sorted(set(opts) - allowed)} "
                                 f"for a {words[0]} host (known: {sorted(allowed)})")
            host = words[1]
            if words[0] == "memory":
                out["memory"].append({"host": host, "pool": parse_size(opts.get("pool", "1G"),
                                                                       f"{where}: pool"),
                                      "data": opts.get("data")})
            else:
                r = opts.get("ranks", "1")
                if not r.isdigit() or int(r) < 1:
                    raise ValueError(f"{where}: ranks must be an integer >= 1, not {r!r}")
                out["compute"].append({"host": host, "ranks": int(r)})
    if not out["compute"]:
        raise ValueError(f"{path}: no compute host (a line 'compute HOST ranks=N')")
    return out


def _remote(launcher, host, command, timeout=15.0):
    """Run a shell command on host through the launcher; (status, output),
    status None when it did not finish in time (host unreachable)."""
    import shlex
    try:
        r = subprocess.run([*shlex.split(launcher), host, command], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired:
        return None, f"no answer from {host} within {timeout:g} s"


def _wait_remote_famd(p, log_path, deadline):
    """(remote pid, address) from the launched command's output."""
    pid = None
    while True:
        try:
            with open(log_path, errors="replace") as f:
                for line in f:
                    w = line.split()
                    if len(w) == 2 and w[0] == "kodiak-pid" and w[1].isdigit():
                        pid = int(w[1])
                    if len(w) >= 3 and w[0] == "famd" and w[1] == "ready" and pid:
                        return pid, w[2]
        except FileNotFoundError:
            pass
        if p.poll() is not None:
            raise LaunchError(f"famd exited (launcher status {p.returncode}) before it was "
                              f"ready; its log {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise LaunchError(f"famd did not get ready in time; its log {log_path}:\n"
                              f"{_tail(log_path)}")
        time.sleep(0.05)


MUNGE_SOCKET = "/run/munge/munge.socket.2"  # munged's (and libmunge's) default


def _check_munged(launcher, hosts, socket_path, timeout):
    """LaunchError unless every host has munged's socket (famd and libfam
    need it there for --auth munge)."""
    import shlex
    for h in hosts:
        rc, out = _remote(launcher, h, f"test -S {shlex.quote(socket_path)}", timeout=timeout)
        if rc is None:
            raise LaunchError(f"cannot check munged on {h}: {out}")
        if rc != 0:
            raise LaunchError(
                f"--auth munge: munged is not running on {h} (no socket {socket_path}; "
                f"start munged there with the cluster's key, docs/SECURITY.md, or name its "
                f"socket with --munge-socket)")


def up_hosts(hostfile, launcher="ssh", provider="tcp", port=0, timeout=120.0,
             memory_limit=None, request_timeout=None, auth="none", munge_socket=None):
    """Start famd on every memory host and kodiakd on the compute hosts of
    `hostfile` (see parse_hostfile); return the state (cluster.json).

    auth: "none" (a client on another host is nobody to famd) or "munge"
    (famd --auth munge: a client is the uid and gid of the MUNGE credential
    libfam sends, so kodiakd's ranks act as the user who runs them; every
    host needs munged with the cluster's key; munge_socket: its socket when
    not munged's default, also given to kodiakd as FAM_MUNGE_SOCKET)."""
    import shlex
    if provider not in ("tcp", "sockets"):
        raise ValueError(f"provider across hosts must be tcp (or sockets), not {provider!r}: "
                         f"shm reaches one host only (docs/DEPLOY.md: RDMA providers)")
    if auth not in ("none", "munge"):
        raise ValueError(f"auth must be 'none' or 'munge', not {auth!r}")
    if munge_socket is not None and auth != "munge":
        raise ValueError("munge_socket is for auth='munge'")
    if munge_socket is not None and (not isinstance(munge_socket, str) or
                                     not munge_socket.startswith("/")):
        raise ValueError(f"munge_socket must be an absolute path, not {munge_socket!r}")
    hosts = parse_hostfile(hostfile)
    limit = parse_size(memory_limit, "memory_limit") if memory_limit is not None else None
    kodiakd = find_binary("kodiakd")
    famd = find_binary("famd") if hosts["memory"] else None
    mpirun = shutil.which("mpirun")
    if not mpirun:
        raise LaunchError("mpirun not found on PATH (Debian: apt-get install openmpi-bin)")
    sdir = paths.state_dir()
    with _Lock():
        _check_nothing_runs()
        cf_path = os.path.abspath(paths.default_connect_file())
        rank0 = hosts["compute"][0]["host"]
        nranks = sum(c["ranks"] for c in hosts["compute"])
        state = {"version": STATE_VERSION, "started": time.time(), "state_dir": sdir,
                 "connect_file": cf_path, "host": rank0, "port": None, "ranks": nranks,
                 "memory_limit": limit, "provider": provider, "hostfile": hostfile,
                 "launcher": launcher, "compute": hosts["compute"], "famd": [],
                 "auth": auth, "munge_socket": munge_socket,
                 "pool_size": hosts["memory"][0]["pool"] if hosts["memory"] else None,
                 "mpirun": None, "kodiakd": []}
        procs = []
        deadline = time.monotonic() + timeout
        try:
            if auth == "munge":
                every = dict.fromkeys([m["host"] for m in hosts["memory"]] +
                                      [c["host"] for c in hosts["compute"]])
                _check_munged(launcher, every, munge_socket or MUNGE_SOCKET,
                              min(15.0, timeout))
            for i, m in enumerate(hosts["memory"]):
                log = os.path.join(sdir, f"famd{i}.log")
                cmd = [famd, "--host", m["host"], "--port", "0", "--pool-size",
                       str(m["pool"]), "--provider", provider]
                if m["data"]:
                    cmd += ["--data-dir", m["data"]]
                if auth == "munge":
                    cmd += ["--auth", "munge"]
                    if munge_socket:
                        cmd += ["--munge-socket", munge_socket]
                line = "echo kodiak-pid $$; exec " + " ".join(shlex.quote(c) for c in cmd)
                p = _spawn([*shlex.split(launcher), m["host"], line], log)
                procs.append(p)
                state["famd"].append({"host": m["host"], "launcher_pid": p.pid,
                                      "launcher_start": _start_time(p.pid), "log": log,
                                      "pid": None, "address": None})
            for i, f in enumerate(state["famd"]):
                f["pid"], f["address"] = _wait_remote_famd(procs[i], f["log"], deadline)
            addrs = [f["address"] for f in state["famd"]]
            hf = os.path.join(sdir, "mpi-hosts")
            with open(hf, "w") as out:
                out.writelines(f"{c['host']} slots={c['ranks']}\n" for c in hosts["compute"])
            log = os.path.join(sdir, "kodiakd.log")
            cmd = [mpirun, "--hostfile", hf, "-np", str(nranks), "--bind-to", "none",
                   "-x", "FAM_SERVERS", "-x", "FAM_PROVIDER", "-x", "PATH"]
            env = _mpi_env(addrs, provider)
            if munge_socket:  # libfam in each rank asks this munged for credentials
                cmd += ["-x", "FAM_MUNGE_SOCKET"]
                env["FAM_MUNGE_SOCKET"] = munge_socket
            if shlex.split(launcher)[0] != "ssh":
                cmd += ["--mca", "plm_rsh_agent", launcher]
            cmd += [kodiakd, "--host", rank0, "--port", str(port), "--connect-file", cf_path]
            if limit is not None:
                cmd += ["--memory-limit", str(limit)]
            if request_timeout is not None:
                cmd += ["--request-timeout", repr(float(request_timeout))]
            p = _spawn(cmd, log, env=env)
            procs.append(p)
            state["mpirun"] = {"pid": p.pid, "start": _start_time(p.pid), "log": log}
            cf, info = _wait_kodiakd(p, cf_path, log, deadline)
            state["port"] = cf["port"]
            state["token"] = cf.get("token")
            state["memory_limit"] = info.get("memory_limit")
            _write_json(state_file(), state)
            cf.update({"fam_servers": addrs, "fam_provider": provider,
                       "mpirun_pid": p.pid, "state_file": state_file(),
                       "hosts": {"memory": [f["host"] for f in state["famd"]],
                                 "compute": [c["host"] for c in hosts["compute"]]}})
            _write_json(cf_path, cf)
        except BaseException:
            _stop_hosts(state, timeout=5.0)
            _unlink(state_file())
            _unlink(cf_path)
            raise
    return state


def _same_host(pid):
    """Is pid in this process's network namespace (on this host)? A
    process that mpirun's launcher left here is; one on another host (on a
    real cluster never in /proc here; on namespace test hosts, in another
    network namespace) is not ours to kill from here."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def _stop_remote_famd(launcher, i, f, timeout):
    """Stop one famd of a hostfile cluster through the launcher; the line
    saying what happened. Takes at most about 4 x timeout."""
    host, pid = f.get("host"), int(f.get("pid") or 0)
    what = f"famd #{i} on {host} (pid {pid})"
    rc, out = _remote(launcher, host, f"kill -TERM {pid}", timeout=min(10.0, timeout))
    if rc is None:
        return f"{what}: host unreachable ({out.strip()}); left as it is"
    if rc != 0:
        if "no such process" in out.lower():
            return f"{what} was not running"
        return (f"{what}: could not be stopped (launcher status {rc}: "
                f"{' '.join(out.split())[:200] or 'no output'}); host gone or unreachable, "
                f"left as it is")
    end = time.monotonic() + timeout
    while True:
        rc, _ = _remote(launcher, host, f"kill -0 {pid}", timeout=min(5.0, timeout))
        if rc == 1:  # no such process
            return f"stopped {what} by SIGTERM"
        if rc != 0:  # no answer in time, or the launcher's own failure (ssh: 255)
            return f"{what}: asked to stop (SIGTERM), then the host stopped answering"
        if time.monotonic() >= end:
            break
        time.sleep(0.2)
    rc, _ = _remote(launcher, host, f"kill -KILL {pid}", timeout=min(5.0, timeout))
    if rc == 0:
        return f"stopped {what} by SIGKILL"
    return f"{what}: did not stop on SIGTERM and SIGKILL could not be sent; left as it is"


def _stop_hosts(state, timeout):
    """Stop what a hostfile cluster started, reachable or not; lines saying
    what was done (an unreachable host is said so, never waited on past the
    deadlines: docs/DEPLOY.md says how long `kodiak down` can take)."""
    done = []
    m = state.get("mpirun") or {}
    mpid, mstart = m.get("pid"), m.get("start")
    ours = mpid and _alive(mpid, mstart)  # mpirun's session is ours to clean
    if ours:
        how = None
        if state.get("port"):
            try:
                _request(state["host"], state["port"], "shutdown", timeout=min(5.0, timeout),
                         token=state.get("token"))
                end = time.monotonic() + timeout
                while _alive(mpid, mstart) and time.monotonic() < end:
                    _reap()
                    time.sleep(0.05)
                how = "shutdown command" if not _alive(mpid, mstart) else None
            except (TimeoutError, RuntimeError, OSError):
                pass
        if how is None:  # mpirun's SIGTERM stops the ranks it can still reach
            how = _terminate(mpid, mstart, timeout)
        done.append(f"stopped kodiakd ({state.get('ranks')} ranks on "
                    f"{', '.join(c['host'] for c in state.get('compute') or [])}, "
                    f"mpirun pid {mpid}) by {how}")
    elif mpid:
        done.append(f"kodiakd (mpirun pid {mpid}) was not running")
    if ours:
        # what mpirun started here and left behind (its launcher commands,
        # e.g. ssh to a host that vanished): same session, this host only
        left = [q for q in session_pids(mpid)
                if q not in (mpid, os.getpid()) and _same_host(q)]
        for q in left:
            try:
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            done.append(f"killed {len(left)} process(es) mpirun left on this host "
                        f"(pids {', '.join(map(str, left))})")
    launcher = state.get("launcher") or "ssh"
    for i, f in enumerate(state.get("famd") or []):
        if f.get("pid"):
            done.append(_stop_remote_famd(launcher, i, f, timeout))
        lp = f.get("launcher_pid")
        if lp and _alive(lp, f.get("launcher_start")):
            _terminate(lp, f.get("launcher_start"), 2.0)
    # compute hosts that do not answer: ranks there could not be told to stop
    for c in state.get("compute") or []:
        rc, out = _remote(launcher, c["host"], "true", timeout=min(5.0, timeout))
        if rc != 0:
            done.append(f"compute host {c['host']} unreachable "
                        f"({' '.join(out.split())[:200] or f'launcher status {rc}'}): its "
                        f"{c['ranks']} kodiakd rank(s) could not be told to stop; they may "
                        f"still run there until the host is back")
    _reap()
    return done


def _status_hosts(state, out, timeout):
    """cluster_status's famd part for a hostfile cluster: each famd asked
    about on its host (alive None: host unreachable)."""
    launcher = state.get("launcher") or "ssh"
    for f in state.get("famd") or []:
        rc, _ = _remote(launcher, f.get("host"), f"kill -0 {int(f.get('pid') or 0)}",
                        timeout=timeout)
        out["famd"].append({"host": f.get("host"), "address": f.get("address"),
                            "pid": f.get("pid"),
                            # kill -0: 0 runs, 1 no such process; else
                            # (ssh's 255, no answer) the host is unreachable
                            "alive": {0: True, 1: False}.get(rc)})
    out["compute"] = state.get("compute")

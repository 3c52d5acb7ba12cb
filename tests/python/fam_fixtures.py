# SPDX-License-Identifier: Apache-2.0
"""fam_fixtures.py — memory servers (famd) and kodiakd servers attached to
them, for the FAM array tests.

FamServers starts N famd processes on free loopback ports (volatile pools,
or persistent ones in given files). The ports are chosen below the kernel's
ephemeral range, so that a famd restarted on its old port never finds it
taken by some other test's outgoing connection and reads each one's ready line
("famd ready ADDR ..."). FamCluster is those famds plus a kodiakd under
mpirun whose ranks get FAM_SERVERS in their environment. Everything is
stopped at the end, also when a test fails."""
import contextlib
import os
import random
import socket
import shutil
import signal
import subprocess
import tempfile
import time

from conftest import BUILD, Server, die_with_us

FAMD = os.path.join(BUILD, "famd")


class FamServers:
    """famd x n. pool_files: one path per famd for persistent pools; args:
    more famd options, the same for each."""

    def __init__(self, n, pool_size="256M", pool_files=None, ports=None, provider=None,
                 args=()):
        self.dir = tempfile.mkdtemp(prefix="kodiak-famd-")
        self.procs, self.addresses, self.logs = [], [], []
        self._start = (pool_size, pool_files, provider, list(args))
        try:
            chosen = list(ports) if ports else [free_fixed_port() for _ in range(n)]
            for i in range(n):
                self.procs.append(self._spawn(i, chosen[i]))
            for i in range(n):
                for attempt in range(5):
                    try:
                        self.addresses.append(self._ready(self.procs[i], self.logs[i]))
                        break
                    except RuntimeError as e:
                        # a port of our choosing taken meanwhile: another one
                        if ports or "Address already in use" not in str(e) or attempt == 4:
                            raise
                        self.procs[i] = self._spawn(i, free_fixed_port())
        except BaseException:
            self.stop()
            raise

    def _spawn(self, i, port):
        pool_size, pool_files, provider, args = self._start
        cmd = [FAMD, "--port", str(port), "--pool-size", pool_size]
        if provider:
            cmd += ["--provider", provider]
        if pool_files:
            cmd += ["--pool-file", pool_files[i]]
        cmd += args
        log = open(os.path.join(self.dir, f"famd{i}.log"), "w+")
        if i < len(self.logs):
            self.logs[i].close()
            self.logs[i] = log
        else:
            self.logs.append(log)
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_us)

    @staticmethod
    def _ready(p, log):
        deadline = time.time() + 30
        while True:
            log.flush()
            log.seek(0)
            for line in log.read().splitlines():
                if line.startswith("famd ready "):
                    return line.split()[2]
            if p.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"famd did not start: {log.read()}")
            time.sleep(0.05)

    @property
    def servers(self):
        """The FAM_SERVERS value."""
        return ",".join(self.addresses)

    @property
    def ports(self):
        return [int(a.rsplit(":", 1)[1]) for a in self.addresses]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


def free_fixed_port():
    """A loopback TCP port free now and below the ephemeral range
    (/proc/sys/net/ipv4/ip_local_port_range), so that only an explicit bind
    can take it: a server stopped and started again on it finds it free."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    while True:
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def start_kodiakd(nranks, fam_servers, provider=None, env=None, args=()):
    """A kodiakd (conftest.Server) whose ranks reach `fam_servers` (None:
    no FAM_SERVERS at all); `env` adds to mpirun's environment, `args` to
    kodiakd's command line."""
    saved = {k: os.environ.get(k) for k in ("FAM_SERVERS", "FAM_PROVIDER")}
    try:
        os.environ.pop("FAM_SERVERS", None)
        if fam_servers is not None:
            os.environ["FAM_SERVERS"] = fam_servers
        if provider:
            os.environ["FAM_PROVIDER"] = provider
        return Server(nranks, args=args, env=env)  # mpirun passes its environment to the ranks
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class FamCluster:
    """famd x nfamd (pools of pool_size) + kodiakd x nranks (with extra
    kodiakd arguments `args`, e.g. ["--memory-limit", "1048576"])."""

    def __init__(self, nranks, nfamd, args=(), pool_size="256M"):
        self.nranks, self.nfamd = nranks, nfamd
        self.famd = FamServers(nfamd, pool_size=pool_size)
        try:
            self.server = start_kodiakd(nranks, self.famd.servers, args=args)
        except BaseException:
            self.famd.stop()
            raise

    def stop(self):
        try:
            self.server.stop()
        finally:
            self.famd.stop()


def connect(kodiak, server):
    """Point the kodiak module at `server` (if it is not already)."""
    if kodiak.client._conn.endpoint != f"tcp://127.0.0.1:{server.port}":
        kodiak.connect(connect_file=server.connect_file)
    return kodiak


@contextlib.contextmanager
def famd_and_kodiakds(**famd_args):
    """One famd (FamServers(1, **famd_args)) and a function that starts a
    kodiakd on it (start_kodiakd's nranks, env=, args=); at the end, even
    on failure, the client disconnects and every one of them stops."""
    import kodiak
    f = FamServers(1, **famd_args)
    started = []

    def kodiakd(nranks, env=None, args=()):
        started.append(start_kodiakd(nranks, f.servers, env=env, args=args))
        return started[-1]
    try:
        yield kodiakd
    finally:
        kodiak.disconnect()
        for srv in started:
            srv.stop()
        f.stop()

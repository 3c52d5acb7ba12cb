#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""netns.py — test hosts on one machine: Linux network namespaces on a bridge.

Each "host" is a network namespace with its own loopback and one veth
interface (eth0) plugged into a bridge of this run; the hosts have
addresses in a private subnet (10.77.0.0/24) that exists only on that
bridge (the root namespace gets no address on it, so nothing leaves the
machine and parallel runs, each with its own bridge, never see each other).

Names carry the owner's pid (and a number per cluster of that owner) so
that parallel runs never collide and a crashed run's leftovers can be
swept: namespaces `kdk-<pid>-<n>h<i>`, bridge `kb<pid>x<n>`, host-side
veths `kv<pid>x<n>h<i>`. `sweep()` removes only the leftovers of owners
that are dead.

Used three ways:
  - from Python (pytest): `with Cluster(3) as c: c.run(0, [...])`
  - as a runner (ctest):  `netns.py run N -- CMD...` creates N hosts, runs
    CMD in host 0 with KDK_NETNS_* in its environment, and removes it all
    (also when CMD fails or the runner is interrupted); exit status of CMD,
    or 77 (ctest SKIP_RETURN_CODE) when namespaces cannot be made here.
  - as an exec agent: `netns.py exec HOST CMD...` (HOST a namespace name or
    one of the hosts' addresses) — rsh_agent.sh wraps it for mpirun. A
    host whose link is cut is unreachable to it too (status 255, as ssh).

Environment given to the command run in host 0:
  KDK_NETNS_HOSTS  "ns0=10.77.0.1,ns1=10.77.0.2,..." (host i = entry i)
  KDK_NETNS_AGENT  the rsh agent script (runs `CMD...` on a host)
"""
import itertools
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "rsh_agent.sh")
SUBNET = "10.77.0"
SKIP = 77


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_procs(ns):
    """SIGKILL every process still running in namespace ns (they are ours:
    the namespace was made by this run)."""
    for _ in range(20):
        r = _ip("netns", "pids", ns, check=False)
        pids = [int(p) for p in r.stdout.split()] if r.returncode == 0 else []
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def sweep():
    """Remove namespaces and bridges of dead owners (a crashed run)."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"kdk-(\d+)-", name)
        if m and not _alive(int(m.group(1))):
            _kill_ns_procs(name)
            _ip("netns", "del", name, check=False)
    r = _ip("-o", "link", "show", check=False)
    for line in r.stdout.splitlines():
        f = line.split(":")
        if len(f) < 2:
            continue
        dev = f[1].strip().split("@")[0]
        m = re.match(r"k[bv](\d+)x", dev)
        if m and not _alive(int(m.group(1))):
            _ip("link", "del", dev, check=False)


def available():
    """'' when this process can make namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root to test many hosts)"
    if subprocess.run(["which", "ip"], stdout=subprocess.DEVNULL).returncode:
        return "the 'ip' command (iproute2) is not installed"
    name = f"kdk-{os.getpid()}-probe"
    r = _ip("netns", "add", name, check=False)
    if r.returncode:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return ""


class Cluster:
    """n hosts (namespaces) on a bridge; host i has address 10.77.0.(i+1)."""

    _seq = itertools.count()

    def __init__(self, n):
        if not 1 <= n <= 9:
            raise ValueError("1 to 9 hosts")
        self.owner = os.getpid()
        k = next(Cluster._seq) % 100
        self.n = n
        self.bridge = f"kb{self.owner}x{k}"
        self.ns = [f"kdk-{self.owner}-{k}h{i}" for i in range(n)]
        self.addr = [f"{SUBNET}.{i + 1}" for i in range(n)]
        self.veth = [f"kv{self.owner}x{k}h{i}" for i in range(n)]
        self.up = False

    def env(self):
        return {"KDK_NETNS_HOSTS": ",".join(f"{a}={b}" for a, b in zip(self.ns, self.addr)),
                "KDK_NETNS_AGENT": AGENT}

    def create(self):
        sweep()
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "up")
            for ns, a, v in zip(self.ns, self.addr, self.veth):
                _ip("netns", "add", ns)
                _ip("link", "add", v, "type", "veth", "peer", "name", v + "p")
                _ip("link", "set", v + "p", "netns", ns)
                _ip("link", "set", v, "master", self.bridge)
                _ip("link", "set", v, "up")
                _ip("-n", ns, "link", "set", v + "p", "name", "eth0")
                _ip("-n", ns, "addr", "add", f"{a}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            self.up = True
        except Exception:
            self.destroy()
            raise
        return self

    def destroy(self):
        for ns in self.ns:
            _kill_ns_procs(ns)
            _ip("netns", "del", ns, check=False)
        for v in self.veth:
            _ip("link", "del", v, check=False)
        _ip("link", "del", self.bridge, check=False)
        self.up = False

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.destroy()

    def cmd(self, i, argv):
        """argv prefixed to run in host i."""
        return ["ip", "netns", "exec", self.ns[i], *argv]

    def popen(self, i, argv, **kw):
        return subprocess.Popen(self.cmd(i, argv), **kw)

    def run(self, i, argv, **kw):
        return subprocess.run(self.cmd(i, argv), **kw)

    def link(self, i, up):
        """Cut (up=False) or restore host i's link to the bridge."""
        _ip("link", "set", self.veth[i], "up" if up else "down")


def resolve(host):
    """A namespace for HOST: a namespace name, or an address of one of the
    hosts of a live run (KDK_NETNS_HOSTS, or any kdk- namespace here)."""
    env = os.environ.get("KDK_NETNS_HOSTS", "")
    for item in env.split(","):
        if "=" in item:
            ns, a = item.split("=", 1)
            if host in (ns, a):
                return ns
    if host.startswith("kdk-"):
        return host
    raise SystemExit(f"netns.py: unknown host '{host}' (not in KDK_NETNS_HOSTS)")


def link_cut(ns):
    """Is host ns's link to the bridge cut (Cluster.link(i, False))? Its
    eth0 then has no carrier. The exec agent treats such a host as
    unreachable, as ssh would, though `ip netns exec` could still enter it."""
    r = _ip("-n", ns, "-o", "link", "show", "eth0", check=False)
    return r.returncode == 0 and "NO-CARRIER" in r.stdout


def main(argv):
    if len(argv) >= 3 and argv[0] == "exec":
        ns = resolve(argv[1])
        if link_cut(ns):
            # as ssh to a host that vanished: nothing runs there, status 255
            print(f"netns.py: host {argv[1]} unreachable (its link is cut)", file=sys.stderr)
            return 255
        os.execvp("ip", ["ip", "netns", "exec", ns, *argv[2:]])
    if len(argv) >= 1 and argv[0] == "sweep":
        sweep()
        return 0
    if len(argv) >= 4 and argv[0] == "run" and argv[2] == "--":
        why = available()
        if why:
            print(f"SKIP: {why}", flush=True)
            return SKIP
        c = Cluster(int(argv[1]))
        # a ctest timeout sends SIGTERM: clean up then too
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
        try:
            c.create()
            env = {**os.environ, **c.env()}
            return c.run(0, argv[3:], env=env).returncode
        finally:
            c.destroy()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

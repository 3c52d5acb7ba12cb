# SPDX-License-Identifier: Apache-2.0
"""netns_hosts.py — what the Python tests on network-namespace hosts
(test_netns.py, test_netns_mixed.py) share: a cluster of hosts with a scratch
directory, famd started on a host and awaited, kodiakd's connect file
awaited, a Python client run on a host, and everything stopped again.

Each test module subclasses NetnsHosts to say which servers run where."""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from conftest import BUILD, REPO
from fam_fixtures import FamServers

sys.path.insert(0, os.path.join(REPO, "tests", "netns"))
import netns  # noqa: E402


class NetnsHosts:
    """`n` namespace hosts (self.c), a scratch directory (self.dir) and the
    server processes started on them (self.procs, stopped by stop())."""

    def __init__(self, n, prefix):
        self.c = netns.Cluster(n).create()
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.procs = []

    def famd(self, h, provider, pool_size):
        """Start famd on host `h` with `provider`; returns its address once
        it says it is ready."""
        log = open(os.path.join(self.dir, f"famd{h}.log"), "w+")
        p = self.c.popen(h, [os.path.join(BUILD, "famd"), "--provider", provider, "--host",
                             self.c.addr[h], "--port", "0", "--pool-size", pool_size],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return FamServers._ready(p, log)

    def wait_kodiakd(self, mpirun, output):
        """Wait until `mpirun` (kodiakd) has written self.connect_file;
        `output()` gives its log for the error when it does not."""
        self.procs.append(mpirun)
        deadline = time.time() + 90
        while not os.path.exists(self.connect_file):
            if mpirun.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"kodiakd did not start: {output()}")
            time.sleep(0.1)
        time.sleep(0.2)  # written whole (kodiakd renames it into place)

    def run_python(self, host, prelude, code, env, timeout):
        """Run `prelude` then `code` (dedented) with /usr/bin/python3 on
        `host`, after `import kodiak as ak, numpy as np, json, sys`; asserts
        it succeeds and returns its stdout."""
        script = "import kodiak as ak, numpy as np, json, sys\n" + prelude + \
                 textwrap.dedent(code)
        r = self.c.run(host, ["/usr/bin/python3", "-c", script], env=env,
                       capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def client_env(self):
        """The environment of a client run: ours, with the tree's python/."""
        return {**os.environ, "PYTHONPATH": os.path.join(REPO, "python")}

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.c.destroy()  # also kills what is left in the namespaces
        subprocess.run(["rm", "-rf", self.dir])


def serve(hosts_class):
    """The body of a module fixture: start `hosts_class()`, yield it, stop it."""
    h = hosts_class()
    try:
        yield h
    finally:
        h.stop()

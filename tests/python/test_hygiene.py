# SPDX-License-Identifier: Apache-2.0
"""test_hygiene.py — the servers a test run starts stop when the run is
killed with -9: the fixtures' famd and mpirun get SIGTERM when the process
that started them dies (conftest.die_with_us), and mpirun stops kodiakd's
ranks. Without it a killed run left kodiakd ranks and famds running, each
holding a pool and ports, for every later run to work beside."""
import os
import subprocess
import sys
import time

from conftest import REPO

SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r}); sys.path.insert(0, {python!r})
from fam_fixtures import FamServers, start_kodiakd
f = FamServers(1, pool_size="32M")
s = start_kodiakd(2, f.servers)
print(f.procs[0].pid, s.proc.pid, flush=True)
time.sleep(600)
"""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_servers_of_a_killed_test_run_stop_with_it():
    run = subprocess.Popen([sys.executable, "-c", SCRIPT.format(
        tests=os.path.join(REPO, "tests", "python"), python=os.path.join(REPO, "python"))],
        stdout=subprocess.PIPE, text=True)
    pids = []
    try:
        famd, mpirun = (int(x) for x in run.stdout.readline().split())
        ranks = subprocess.run(["pgrep", "-s", str(mpirun), "-x", "kodiakd"],
                               capture_output=True, text=True).stdout.split()
        pids = [famd, mpirun] + [int(x) for x in ranks]
        assert len(ranks) == 2 and all(alive(p) for p in pids), (pids, ranks)
        run.kill()  # the test run, killed with -9
        run.wait(10)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in pids if alive(p)]
        assert not left, f"still running after the run that started them was killed: {left}"
    finally:
        if run.poll() is None:
            run.kill()
        for p in pids:
            if alive(p):
                os.kill(p, 9)

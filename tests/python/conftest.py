# SPDX-License-Identifier: Apache-2.0
"""conftest.py — pytest fixtures that run a real kodiakd under mpirun.

`server` is session-scoped and parametrised over 1, 2 and 3 ranks (3 is
oversubscribed on this 2-core machine), so every test that uses `ak` runs
once per rank count. The server is stopped at the end even when tests fail.

The dataset tests (test_dataset, test_ds_agg, test_ds_derived) share
`cluster` (famd + kodiakd at 1 rank/1 famd, 2/2 and 3/1, per module),
`fam_ak` (kodiak connected to it), `store` (a DatasetStore per test,
destroyed after) and `taxi` (the shipped sample decompressed, and split by
pickup month into three files)."""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
BUILD = os.environ.get("KODIAK_BUILD", os.path.join(REPO, "build"))
KODIAKD = os.path.join(BUILD, "kodiakd")

import kodiak  # noqa: E402


def die_with_us():
    """A Popen preexec_fn: the child (a famd, an mpirun) gets SIGTERM when
    the process that started it dies (PR_SET_PDEATHSIG), so the servers of
    a test run killed with -9 do not outlive it (mpirun stops its ranks on
    SIGTERM; a rank's death signal would not survive its fork)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def pytest_configure(config):
    """Under pytest only (the benchmarks import this module too): every
    dataset catalog a kodiakd writes is also written through json-c's
    objects and the two compared (libdataset's DS_JSON_CHECK)."""
    os.environ.setdefault("DS_JSON_CHECK", "1")


def mpi_env():
    from kodiak.launcher import mpi_defaults
    return mpi_defaults(dict(os.environ))


class Server:
    """One kodiakd under mpirun, on a free loopback port."""

    def __init__(self, nranks, args=(), prefix=(), env=None):
        """prefix: a command to run mpirun under (e.g. setpriv as another
        user); env: variables added to mpirun's (and the ranks') environment."""
        self.nranks = nranks
        self.dir = tempfile.mkdtemp(prefix="kodiak-test-")
        if prefix:  # the server may run as another user: let it write here
            os.chmod(self.dir, 0o777)
        self.connect_file = os.path.join(self.dir, "connect.json")
        cmd = [*prefix, "mpirun", "-np", str(nranks), "--oversubscribe", "--bind-to", "none",
               KODIAKD, "--port", "0", "--connect-file", self.connect_file, *args]
        self.log = open(os.path.join(self.dir, "kodiakd.log"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**mpi_env(), **(env or {})}, start_new_session=True,
                                     preexec_fn=die_with_us)
        deadline = time.time() + 60
        while not os.path.exists(self.connect_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"kodiakd did not start: {self.output()}")
            time.sleep(0.05)
        with open(self.connect_file) as f:
            self.info = json.load(f)
        self.port = self.info["port"]
        self.token = self.info["token"]  # the access token clients must present

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def plain(sock, token):
    """Make a raw ZeroMQ socket present kodiakd's access token (PLAIN)."""
    sock.plain_username = b"kodiak"
    sock.plain_password = token.encode()
    return sock


def owned(s):
    """The body of a fixture that owns `s` (a Server or a FamCluster): yield
    it, then disconnect the client and stop it."""
    try:
        yield s
    finally:
        kodiak.disconnect()
        s.stop()


def connected_to(s):
    """The body of a fixture giving the kodiak module connected to Server `s`
    by port and token: afterwards disconnect, and check `s` still runs."""
    kodiak.connect("127.0.0.1", s.port, access_token=s.token)
    yield kodiak
    kodiak.disconnect()
    assert s.alive(), s.output()


@pytest.fixture(scope="session", params=[1, 2, 3], ids=lambda n: f"{n}rank")
def server(request):
    yield from owned(Server(request.param))


@pytest.fixture
def ak(server):
    """The kodiak module, connected to the session's server."""
    c = kodiak.client._conn
    if c.endpoint != f"tcp://127.0.0.1:{server.port}" or \
            not (c.zmq_endpoint or "").startswith("ipc://"):
        kodiak.connect(connect_file=server.connect_file)  # over its Unix socket
    yield kodiak
    assert server.alive(), f"kodiakd died: {server.output()}"


# ---- the dataset tests: famd + kodiakd, a store per test, the taxi sample -------------------

TAXI_DATES = ["pickup_datetime", "dropoff_datetime"]


@pytest.fixture(scope="module", params=[(1, 1), (2, 2), (3, 1)],
                ids=lambda p: f"{p[0]}rank-{p[1]}famd")
def cluster(request):
    """famd x nfamd + kodiakd x nranks, for one test module."""
    from fam_fixtures import FamCluster  # it imports this module
    yield from owned(FamCluster(*request.param))


@pytest.fixture
def fam_ak(cluster):
    """The kodiak module, connected to the module's cluster."""
    if kodiak.client._conn.endpoint != f"tcp://127.0.0.1:{cluster.server.port}":
        kodiak.connect(connect_file=cluster.server.connect_file)
    yield kodiak
    assert cluster.server.alive(), f"kodiakd died: {cluster.server.output()[-3000:]}"


@pytest.fixture
def store(fam_ak, request):
    """A DatasetStore named after the test (and its module), destroyed after."""
    mod = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:4]
    s = fam_ak.DatasetStore(f"{mod}_" + request.node.name.split("[")[0][5:40])
    yield s
    s.destroy()


class Taxi:
    """The shipped taxi sample: `path` (the whole file), `parts` (three
    files of its own lines, split by pickup month: 1-5, 6, 7-12), `df`
    (pandas' reading of `path`) and `parts_df` (of the parts, in order),
    both with the two times parsed and floats read round trip."""

    def __init__(self, d):
        from test_csv import REPO_TAXI
        self.path = os.path.join(d, "taxi.csv")
        with gzip.open(REPO_TAXI, "rb") as f, open(self.path, "wb") as g:
            g.write(f.read())
        os.chmod(self.path, 0o644)
        with open(self.path) as f:
            lines = f.read().splitlines(keepends=True)
        self.df = pd.read_csv(self.path, float_precision="round_trip", parse_dates=TAXI_DATES)
        month = self.df["pickup_datetime"].dt.month.values
        self.parts = []
        for k, months in enumerate([(1, 2, 3, 4, 5), (6,), (7, 8, 9, 10, 11, 12)]):
            p = os.path.join(d, f"taxi_part{k}.csv")
            with open(p, "w") as g:
                g.write(lines[0])
                g.writelines(lines[i + 1] for i in np.flatnonzero(np.isin(month, months)))
            os.chmod(p, 0o644)
            self.parts.append(p)
        self.parts_df = pd.concat([pd.read_csv(p, float_precision="round_trip",
                                               parse_dates=TAXI_DATES) for p in self.parts],
                                  ignore_index=True)


@pytest.fixture(scope="module")
def taxi():
    d = tempfile.mkdtemp(prefix="kodiak-taxi-")
    os.chmod(d, 0o755)  # the server may read the files as another user
    try:
        yield Taxi(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)

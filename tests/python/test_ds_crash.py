# SPDX-License-Identifier: Apache-2.0
"""test_ds_crash.py — kill -9 of kodiakd in the middle of a long ds.derive
and in the middle of a long aggregation (one that first brings a derived
dataset up to date with new base batches): of one MPI rank, and of mpirun
itself. The store in famd stays consistent: afterwards a second kodiakd
attached to the same famd and the C tool kodiak-ds (no kodiakd at all)
list the same datasets, those of before plus at most the derived one; a
derived dataset is either absent or covers a whole number of base batches
(possibly none: a derived dataset is in the catalog before its batches)
whose rows are pandas', and whose values, once read (which brings it
current), are exactly pandas'; store.verify() passes; what the dead server
left half written is freed by reclaim; and bringing the derived dataset
current afterwards works and gives pandas' answers."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import kodiak
from conftest import BUILD, REPO, mpi_env
from fam_fixtures import FamServers, start_kodiakd

KODIAK_DS = os.path.join(BUILD, "kodiak-ds")
STORE = "crash"
ROWS, BATCH = 1_200_000, 30_000  # 40 batches
FILTER = "T.k_lt_60"
DERIVED = f"{FILTER}[g]"

# The client that runs the long operation: prints "start", then "done".
CLIENT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {python!r})
    import kodiak as ak
    ak.connect(connect_file={cf!r})
    f = ak.DatasetStore({store!r}, create=False)[{filter!r}]
    print("start", flush=True)
    if {what!r} == "derive":
        f.derive("g", (f.col("v") * 3.0 - f.col("w")) * (f.col("k") + 1) + f.col("w") / 7.0)
    else:
        f.groupby(["k", "s"])["g"].agg(["mean", "std", "nunique"])
    print("done", flush=True)
""")


def frame(seed, n):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"k": rng.integers(0, 100, n), "v": rng.normal(0, 1e3, n),
                         "w": rng.integers(-10**6, 10**6, n),
                         "s": np.array(["x", "y", "z", "é"], dtype=object)[rng.integers(0, 4, n)]})


def expected_g(df):
    return (df.v * 3.0 - df.w) * (df.k + 1) + df.w / 7.0


def c_list(famd):
    """name -> (kind, rows, batches), as kodiak-ds (C, no kodiakd) lists them."""
    out = subprocess.run([KODIAK_DS, "list", STORE], env={**os.environ, "FAM_SERVERS":
                                                          famd.servers},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return {r[0]: (r[1], int(r[2]), int(r[3])) for r in rows}


def rank_pid(server, rank):
    """The pid of kodiakd rank `rank` (a child of mpirun)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != server.proc.pid:
                    continue
                with open(f"/proc/{p}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
                return int(p)
        time.sleep(0.1)
    raise RuntimeError(f"no rank {rank} under mpirun {server.proc.pid}")


def crash(server, victim, ranks):
    """kill -9 the victim (rank 1, or mpirun); then, once mpirun has had
    time to notice, whatever is left of the job (the ranks, found by
    rank_pid before the operation began, run in sessions of their own, so
    by their pids)."""
    os.kill(ranks[1] if victim == "rank" else server.proc.pid, signal.SIGKILL)
    try:
        server.proc.wait(15 if victim == "rank" else 2)
    except subprocess.TimeoutExpired:
        pass
    for pid in [server.proc.pid, *ranks]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.proc.wait(30)
    for pid in ranks:  # gone (reaped by init once mpirun is)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)
    server.stop()


@pytest.mark.parametrize("victim", ["rank", "mpirun"])
@pytest.mark.parametrize("what", ["derive", "agg"])
def test_kill9_in_the_middle_leaves_the_store_consistent(what, victim):
    famd = FamServers(1, pool_size="1G")
    a = b = client = None
    try:
        # KD_DSD_TRACE: each rank prints "batch computed" as it goes, so
        # the kill can wait until the operation is surely under way
        a = start_kodiakd(2, famd.servers, env={"KD_DSD_TRACE": "1"})
        kodiak.connect(connect_file=a.connect_file)
        s = kodiak.DatasetStore(STORE)
        df = frame(1, ROWS)
        t = s.ingest("T", df, batch_rows=BATCH)
        f = t.filter("k", "lt", 60)
        # a derive first: the first one also maps kodiakd's windows in
        f.derive("h0", (f.col("v") * 3.0 - f.col("w")) * (f.col("k") + 1) + f.col("w") / 7.0)
        f.derive("h", (f.col("v") * 3.0 - f.col("w")) * (f.col("k") + 1) + f.col("w") / 7.0)
        if what == "agg":  # g exists; new base batches: the aggregation brings f and g current
            f.derive("g", (f.col("v") * 3.0 - f.col("w")) * (f.col("k") + 1) + f.col("w") / 7.0)
            f.groupby(["k", "s"])["g"].agg(["mean", "std", "nunique"])
            extra = frame(2, ROWS // 2)
            s.ingest("T", extra, batch_rows=BATCH)
        before = c_list(famd)
        old_batches = ROWS // BATCH
        assert before["T"][2] == old_batches * (1.5 if what == "agg" else 1)
        kodiak.disconnect()

        # found now: a scan of /proc at the kill took long enough on a
        # loaded machine for the operation to end first
        ranks = [rank_pid(a, r) for r in range(2)]
        code = CLIENT.format(python=os.path.join(REPO, "python"), cf=a.connect_file,
                             store=STORE, filter=FILTER, what=what)
        client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=mpi_env())
        # read through a handle of its own (a.output() seeks the handle
        # mpirun writes through), from its end now
        log = open(os.path.join(a.dir, "kodiakd.log"), errors="replace")
        log.seek(0, os.SEEK_END)
        traced = ""
        assert client.stdout.readline().strip() == "start"
        # the kill lands once the ranks have computed two of the operation's
        # 20-40 new batches: inside it whatever the load (a kill timed as a
        # fifth of the operation's time came after its end on a loaded CI)
        deadline = time.time() + 60
        while traced.count("batch computed") < 2:
            assert client.poll() is None and time.time() < deadline, \
                "the operation ended, or never began, before the kill"
            time.sleep(0.002)
            traced += log.read()
        log.close()
        assert client.poll() is None, "the operation ended before the kill: make it longer"
        crash(a, victim, ranks)
        try:
            out, _ = client.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            client.kill()
            out, _ = client.communicate()
        assert "done" not in out.split("\n"), out  # a line of its own: tracebacks may hold the word

        # a second kodiakd, and the C tool, see one consistent store
        b = start_kodiakd(1, famd.servers)
        kodiak.connect(connect_file=b.connect_file)
        s = kodiak.DatasetStore(STORE, create=False)
        after = c_list(famd)
        assert sorted(s.list(all=True)) == sorted(after)
        full = df if what == "derive" else pd.concat([df, extra], ignore_index=True)
        nb = full.shape[0] // BATCH
        if what == "derive":
            assert set(after) - set(before) <= {DERIVED}, (before, after)
            assert f"{FILTER}[h]" in before
            assert {k: v for k, v in after.items() if k != DERIVED} == before
        else:  # f and g cover the old batches or the new ones, each whole
            assert set(after) == set(before)
            for name in (FILTER, DERIVED):
                assert after[name][2] in (old_batches, nb), (name, before[name], after[name])
            assert after[FILTER][2] >= after[DERIVED][2]
        if DERIVED in after:  # whole batches (made in the catalog before any: maybe none)
            covered = after[DERIVED][2] * BATCH
            assert after[DERIVED][1] == int((full.k.values[:covered] < 60).sum()), after
            # read by B: brought current first, then exactly pandas'
            sel = full[full.k < 60]
            got = s[DERIVED]._read_from(DERIVED, ["g"])["g"].to_ndarray()
            np.testing.assert_array_equal(got, expected_g(sel).values)
        assert s.verify(codes=True) > 0
        s.reclaim(0)  # frees what the dead server left half written
        r = s.reclaim(0)
        assert r["arrays"] == 0 and r["categories"] == 0, r

        # bringing it current afterwards works
        f = s[FILTER]
        if DERIVED not in s.list(all=True):  # the derive that was killed, again
            f.derive("g", (f.col("v") * 3.0 - f.col("w")) * (f.col("k") + 1) + f.col("w") / 7.0)
        sel = full[full.k < 60].reset_index(drop=True)
        sel = sel.assign(g=expected_g(sel))
        np.testing.assert_array_equal(f["g"].to_ndarray(), sel.g.values)
        got = f.groupby(["k", "s"])["g"].agg(["mean", "count"])
        exp = sel.groupby(["k", "s"])["g"].agg(["mean", "count"])
        pd.testing.assert_frame_equal(got, exp, check_index_type=False, rtol=1e-12)
        assert c_list(famd)[FILTER][2] == nb and s.verify(codes=True) > 0
        assert b.alive()
    finally:
        if client and client.poll() is None:
            client.kill()
            client.wait()
        kodiak.disconnect()
        for srv in (a, b):
            if srv is not None:
                srv.stop()
        famd.stop()

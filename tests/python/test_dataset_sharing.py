# SPDX-License-Identifier: Apache-2.0
"""test_dataset_sharing.py — one dataset store shared by two kodiakd
clusters (1 and 2 ranks, each its own symbol table) on the same two famd,
and by examples/ds_mpi_example (C, mpirun -np 2): what any of them commits
the others see at their next access; concurrent appends from all three
lose nothing; reading during another server's ingest always gives one
whole version; kill -9 of a kodiakd in the middle of an ingest leaves the
store at its earlier version, consistent, with orphans that ds_reclaim
frees; the store outlives kodiakd restarts with other rank counts and,
with persistent pools, a restart of both famd."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib

import numpy as np
import pytest

import kodiak
from conftest import BUILD, REPO, mpi_env
from fam_fixtures import FamServers, connect, start_kodiakd

EXAMPLE = os.path.join(BUILD, "ds_mpi_example")
STORE = "shared"


@pytest.fixture(scope="module")
def pools():
    d = tempfile.mkdtemp(prefix="kodiak-dsshare-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def famds(pools):
    """Two famd on pool files (the last test restarts them)."""
    box = {"f": FamServers(2, pool_size="512M",
                           pool_files=[os.path.join(pools, f"famd{i}.pool") for i in range(2)])}
    try:
        yield box
    finally:
        kodiak.disconnect()
        box["f"].stop()


@pytest.fixture(scope="module")
def servers(famds):
    """kodiakd A (1 rank) and B (2 ranks) on the same famds."""
    box = {"A": start_kodiakd(1, famds["f"].servers)}
    try:
        box["B"] = start_kodiakd(2, famds["f"].servers)
        yield box
    finally:
        kodiak.disconnect()
        for s in box.values():
            s.stop()


def on(server):
    """kodiak pointed at `server`; the store's handle there."""
    connect(kodiak, server)
    return kodiak.DatasetStore(STORE)


def example(famds, *args, timeout=120):
    """ds_mpi_example under mpirun -np 2; its stdout."""
    env = {**mpi_env(), "FAM_SERVERS": famds["f"].servers}
    r = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", EXAMPLE,
                        *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def example_sums(out, dataset):
    """{column: (sum, missing)} from the example's report of `dataset`."""
    block = out.split(f"dataset {dataset} ")[1].split("\ndataset ")[0]
    rows = int(re.match(r"\(\w+\): (\d+) rows", block).group(1))
    sums = {}
    for m in re.finditer(r"^  (\S+) \S+ sum=(\S+)(?: missing=(\d+))?$", block, re.M):
        sums[m.group(1)] = (m.group(2), int(m.group(3) or 0))
    return rows, sums


def c_rows(rank, rows):
    """What ds_mpi_example's rank `rank` appends (its documented formula)."""
    i = np.arange(rows + rank)
    zone = np.where(i % 4 == 3, None, np.array([f"zone-{rank}-{k}" for k in range(4)],
                                               dtype=object)[i % 4])
    return {"id": rank * 1_000_000_000 + i, "fare": (i % 1000) * 0.25 + rank,
            "rank": np.full(len(i), rank), "zone": zone}


def python_sums(ds):
    """The example's checksums computed from what kodiak reads."""
    cols = ds.to_dict()
    out = {}
    for k, v in cols.items():
        if isinstance(v, kodiak.Categorical):
            crc = np.array([zlib.crc32(c.encode()) for c in v.categories], dtype=np.uint64)
            codes = v.codes.to_ndarray()
            out[k] = (str(int(crc[codes[codes >= 0]].sum())), int((codes < 0).sum()))
        elif v.dtype == np.float64:
            out[k] = (float(v.to_ndarray().sum()), 0)
        else:
            out[k] = (str(int(v.to_ndarray().astype(np.int64).sum())), 0)
    return out


def same_sums(py, c):
    assert py.keys() == c.keys()
    for k in py:
        if isinstance(py[k][0], float):
            assert float(c[k][0]) == pytest.approx(py[k][0], rel=1e-12), k
        else:
            assert py[k] == c[k], k


def test_what_one_commits_the_others_see(famds, servers):
    a = on(servers["A"])
    t = a.ingest("Py", {"x": np.arange(10), "s": np.array(list("abcdeabcde"), dtype=object)},
                 batch_rows=4)
    b = on(servers["B"])
    assert b.list() == ["Py"]
    np.testing.assert_array_equal(b["Py"]["x"].to_ndarray(), np.arange(10))
    b.ingest("Py", {"x": np.arange(10, 13), "s": np.array(["z", "a", "z"], dtype=object)})
    a = on(servers["A"])
    assert t.num_batches == 4 and len(t) == 13  # the same Dataset object, next access
    assert t["s"].tolist() == list("abcdeabcdezaz")
    # the C program appends; both servers see its batches
    out = example(famds, STORE, "C", "1000")
    rows, sums = example_sums(out, "C")
    assert rows == 1000 + 1001
    for srv in ("A", "B"):
        st = on(servers[srv])
        c = st["C"]
        assert c.dtypes == {"id": "int64", "fare": "float64", "rank": "int64", "zone": "text"}
        got = c.to_dict()
        ranks = got["rank"].to_ndarray()
        for r in (0, 1):
            want = c_rows(r, 1000)
            m = ranks == r
            np.testing.assert_array_equal(got["id"].to_ndarray()[m], want["id"])
            np.testing.assert_array_equal(got["fare"].to_ndarray()[m], want["fare"])
            z = got["zone"].to_ndarray()[m]
            assert [x if isinstance(x, str) else None for x in z] == list(want["zone"])
        same_sums(python_sums(c), sums)
    # batches ingested from Python are read by the C program
    st = on(servers["B"])
    st.ingest("C", {**{k: v for k, v in c_rows(5, 333).items() if k != "zone"},
                    "zone": c_rows(5, 333)["zone"]})
    rows, sums = example_sums(example(famds, "--read", STORE, "C"), "C")
    assert rows == 1000 + 1001 + 338
    same_sums(python_sums(st["C"]), sums)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {python!r})
    import kodiak as ak
    ak.connect(connect_file={cf!r})
    s = ak.DatasetStore({store!r})
    for k in range({n}):
        lo = {tag} * 1_000_000 + k * {rows}
        s.ingest({ds!r}, {{"v": np.arange(lo, lo + {rows}), "tag": np.full({rows}, {tag})}},
                 batch_rows={batch})
        print("done", k, flush=True)
""")


def writer(server, ds, tag, n, rows, batch):
    code = WRITER.format(python=os.path.join(REPO, "python"), cf=server.connect_file,
                         store=STORE, ds=ds, tag=tag, n=n, rows=rows, batch=batch)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_concurrent_appends_from_both_servers_and_c_lose_nothing(famds, servers):
    a = on(servers["A"])
    a.ingest("Cc", {"v": np.arange(0), "tag": np.arange(0)})  # the schema, no rows
    wb = writer(servers["B"], "Cc", 2, 8, 500, 200)  # 8 ingests x 3 batches, via B
    for k in range(8):                               # 8 ingests x 2 batches, via A
        lo = 1_000_000 + k * 300
        a.ingest("Cc", {"v": np.arange(lo, lo + 300), "tag": np.full(300, 1)}, batch_rows=150)
    # the C program's batches go to its own dataset: it has other columns
    for _ in range(3):
        example(famds, STORE, "Cx", "100")
    out, _ = wb.communicate(timeout=120)
    assert wb.returncode == 0, out
    t = a["Cc"]
    assert t.num_batches == 8 * 3 + 8 * 2 and len(t) == 8 * 500 + 8 * 300
    v, tag = t["v"].to_ndarray(), t["tag"].to_ndarray()
    for who, n in ((1, 300), (2, 500)):
        got = np.sort(v[tag == who])
        np.testing.assert_array_equal(got, who * 1_000_000 + np.arange(8 * n))
        # each writer's own batches stay in its order
        assert np.all(np.diff(v[tag == who]) > 0)
    assert a["Cx"].num_batches == 3 * 2 and len(a["Cx"]) == 3 * 201


def test_reading_during_another_servers_ingest_sees_whole_versions(famds, servers):
    a = on(servers["A"])
    wb = writer(servers["B"], "Rd", 0, 25, 4000, 1000)  # v = 0, 1, 2, ... in batch order
    seen = set()
    deadline = time.time() + 120
    while wb.poll() is None and time.time() < deadline:
        if "Rd" not in a:
            continue
        v = a["Rd"]["v"].to_ndarray()  # one version: a prefix of whole batches
        assert len(v) % 1000 == 0
        np.testing.assert_array_equal(v, np.arange(len(v)))
        seen.add(len(v))
    out, _ = wb.communicate(timeout=120)
    assert wb.returncode == 0, out
    assert len(a["Rd"]) == 25 * 4000
    assert len(seen) >= 2, seen  # the reads did overlap the ingest


KILLED = textwrap.dedent("""
    import sys
    sys.path.insert(0, {python!r})
    import kodiak as ak
    from kodiak import client
    ak.connect(connect_file={cf!r})
    ak.DatasetStore({store!r})
    r, _ = client.generic_msg("ds_ingest_begin", {{"store": {store!r}, "dataset": "Trip"}})
    client.generic_msg("ds_ingest_csv", {{"token": r["token"], "files": [{f1!r}],
                                          "batch_rows": 500}})
    print("written", flush=True)
    client.generic_msg("ds_ingest_csv", {{"token": r["token"], "files": {more!r},
                                          "batch_rows": 500}})
    print("not killed", flush=True)
""")


def kill9_tree(pid):
    """SIGKILL pid and all its descendants (a rank outlives a killed mpirun
    for a while, and would go on writing), and wait until they are gone."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 30
    for p in tree[1:]:  # (pid itself is reaped by its Popen)
        while os.path.exists(f"/proc/{p}") and time.time() < deadline:
            try:
                with open(f"/proc/{p}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)


def test_kill9_of_kodiakd_mid_ingest_leaves_the_earlier_version(famds, servers, pools):
    a = on(servers["A"])
    f1 = os.path.join(pools, "k1.csv")
    rng = np.random.default_rng(3)
    with open(f1, "w") as f:
        f.write("id,fare,zone\n")
        f.writelines(f"{i},{rng.random():.6f},z{i % 7}\n" for i in range(5000))
    t = a.ingest("Trip", f1, batch_rows=1000)
    before = t["fare"].to_ndarray()
    more = [f1] * 200  # long enough to be killed in
    code = KILLED.format(python=os.path.join(REPO, "python"), cf=servers["B"].connect_file,
                         store=STORE, f1=f1, more=more)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    assert p.stdout.readline().strip() == "written"  # 10 batches written, not committed
    time.sleep(0.5)                                  # into the second command
    kill9_tree(servers["B"].proc.pid)  # mpirun and every rank, at once
    servers["B"].proc.wait(30)
    p.kill()
    out = p.communicate()[0]
    assert "not killed" not in out, out
    # the earlier version, whole; the catalog agrees with FAM
    assert (len(t), t.num_batches) == (5000, 5)
    np.testing.assert_array_equal(t["fare"].to_ndarray(), before)
    assert a.verify(codes=True) > 0
    freed = a.reclaim(0)
    assert freed["arrays"] >= 10 * 3 and freed["categories"] >= 10, freed
    assert a.reclaim(0)["arrays"] == 0
    assert a.verify(codes=True) > 0
    # the store survives: a new kodiakd with 3 ranks reads the same
    servers["B"].stop()
    servers["B"] = start_kodiakd(3, famds["f"].servers)
    b = on(servers["B"])
    np.testing.assert_array_equal(b["Trip"]["fare"].to_ndarray(), before)
    assert b["Trip"]["zone"].tolist() == [f"z{i % 7}" for i in range(5000)]


def test_open_ingests_are_bounded_and_aborted_when_kodiakd_stops(famds, servers):
    """A client may leave ingests open (it disappeared): at most 16 per
    server, each with its uncommitted batches; kodiakd's stop deletes them."""
    from kodiak import client
    b = on(servers["B"])
    tokens = []
    for k in range(16):
        r, _ = client.generic_msg("ds_ingest_begin", {"store": STORE, "dataset": "Open"})
        x = kodiak.array(np.arange(10) + 10 * k)
        client.generic_msg("ds_ingest_arrays", {"token": r["token"], "batch_rows": 5,
                                                "columns": [{"name": "x", "array": x.name,
                                                             "dtype": "int64"}]})
        tokens.append(r["token"])
    with pytest.raises(RuntimeError, match="already has 16 ingests open"):
        client.generic_msg("ds_ingest_begin", {"store": STORE, "dataset": "Open"})
    client.generic_msg("ds_ingest_commit", {"token": tokens.pop()})
    assert len(b["Open"]) == 10  # one of them, whole
    with pytest.raises(KeyError, match="no open ingest"):
        client.generic_msg("ds_ingest_commit", {"token": "0123456789abcdef"})
    r, _ = client.generic_msg("ds_ingest_begin", {"store": STORE, "dataset": "Open"})
    tokens.append(r["token"])  # a slot was free again
    kodiak.disconnect()
    servers["B"].stop()  # SIGTERM: the 15 x 2 uncommitted batches are deleted
    a = on(servers["A"])
    freed = a.reclaim(0)
    assert freed["arrays"] == 0 and freed["categories"] == 0, freed
    assert len(a["Open"]) == 10
    servers["B"] = start_kodiakd(2, famds["f"].servers)


def test_store_survives_a_restart_of_both_famd(famds, servers, pools):
    a = on(servers["A"])
    want = {k: a[k].to_pandas() for k in a.list()}
    ports = famds["f"].ports
    for p in famds["f"].procs:
        p.kill()
    famds["f"].stop()
    famds["f"] = FamServers(2, pool_size="512M", ports=ports,
                            pool_files=[os.path.join(pools, f"famd{i}.pool") for i in range(2)])
    for srv in ("A", "B"):
        st = on(servers[srv])
        try:
            names = st.list()
        except ConnectionError:  # a rank's first FAM command after the restart
            names = st.list()
        assert names == list(want)
        for k, df in want.items():
            got = st[k].to_pandas()
            assert got.equals(df), k
        assert st.verify(codes=True) > 0
    st.ingest("Trip", {"id": np.arange(3), "fare": np.ones(3), "zone": np.array(["q"] * 3)})
    assert len(on(servers["A"])["Trip"]) == 5003


def test_a_store_destroyed_and_made_again_by_another_server(famds, servers):
    """B has store 'remade' open; A destroys it and makes it again: B's
    next access reads the new store (no error first). An ingest B had open
    into the destroyed store fails its commit and puts nothing into the new
    one. Once A destroys the store for good, B's access is a KeyError that
    says so."""
    from kodiak import client
    connect(kodiak, servers["A"])
    a = kodiak.DatasetStore("remade")
    a.ingest("T", {"x": np.arange(5)})
    connect(kodiak, servers["B"])
    b = kodiak.DatasetStore("remade", create=False)
    assert b["T"]["x"].to_ndarray().tolist() == list(range(5))
    r, _ = client.generic_msg("ds_ingest_begin", {"store": "remade", "dataset": "U"})
    x = kodiak.array(np.arange(7))
    client.generic_msg("ds_ingest_arrays", {"token": r["token"], "columns": [
        {"name": "x", "array": x.name, "dtype": "int64"}]})
    connect(kodiak, servers["A"])
    a.destroy()
    a = kodiak.DatasetStore("remade")
    a.ingest("T", {"x": np.arange(3) + 100})
    connect(kodiak, servers["B"])
    t0 = time.monotonic()  # each said at once, not after libfam's timeout (30 s)
    b = kodiak.DatasetStore("remade", create=False)
    assert b["T"]["x"].to_ndarray().tolist() == [100, 101, 102]
    with pytest.raises(KeyError, match="'remade' was destroyed while the ingest was open"):
        client.generic_msg("ds_ingest_commit", {"token": r["token"]})
    assert time.monotonic() - t0 < 10
    assert b.list() == ["T"] and len(b["T"]) == 3
    connect(kodiak, servers["A"])
    assert a.list() == ["T"]
    a.destroy()
    connect(kodiak, servers["B"])
    t0 = time.monotonic()
    with pytest.raises(KeyError, match="no dataset store 'remade'"):
        b["T"]
    with pytest.raises(KeyError, match="no dataset store 'remade'"):
        kodiak.DatasetStore("remade", create=False)
    assert time.monotonic() - t0 < 10

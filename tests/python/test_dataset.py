# SPDX-License-Identifier: Apache-2.0
"""test_dataset.py — ak.DatasetStore / Dataset against pandas: CSV files
(the shipped taxi sample, random tables with the awkward cases) and Python
data ingested into FAM as batches and read back whole, by batch and by
head(), at 1, 2 and 3 ranks with 1 and 2 memory servers; appends; schema
mismatches and bad input refused with nothing of the ingest visible and
nothing left in FAM (ds_reclaim finds no orphan)."""
import os
import random
import shutil
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest

import kodiak
from fam_fixtures import connect
from test_csv import quote, random_rows, table, write

DATES = ["pickup_datetime", "dropoff_datetime"]


@pytest.fixture(scope="module")
def tmp():
    d = tempfile.mkdtemp(prefix="kodiak-ds-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def pandas_read(paths, **kw):
    frames = [pd.read_csv(p, float_precision="round_trip", **kw) for p in paths]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def same_column(got, exp, name, date=False):
    """A Dataset column (pdarray or Categorical) equals a pandas Series."""
    assert len(got) == len(exp), name
    if date:
        assert got.dtype == np.int64, name
        want = exp.values.astype("datetime64[s]").astype(np.int64)
        np.testing.assert_array_equal(got.to_ndarray(), want, err_msg=name)
    elif exp.dtype == object:
        assert isinstance(got, kodiak.Categorical), (name, type(got))
        cat = exp.astype("category")
        np.testing.assert_array_equal(got.categories, np.array(list(cat.cat.categories),
                                                                dtype=str), err_msg=name)
        np.testing.assert_array_equal(got.codes.to_ndarray(),
                                      cat.cat.codes.values.astype(np.int64), err_msg=name)
    else:
        assert got.dtype == exp.dtype, (name, got.dtype, exp.dtype)
        a, b = got.to_ndarray(), exp.values
        if a.dtype == np.float64:  # bit for bit, NaN where NaN
            assert np.array_equal(np.isnan(a), np.isnan(b)), name
            m = ~np.isnan(a)
            np.testing.assert_array_equal(a[m].view(np.uint64), b[m].view(np.uint64),
                                          err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def same_dataset(ds, df, dates=()):
    """Every column, whole, equals pandas'; so does head()."""
    assert ds.columns == list(df.columns)
    assert len(ds) == len(df)
    cols = ds.to_dict()
    for k in df.columns:
        same_column(cols[k], df[k], k, k in dates)
    h = ds.head(7)
    pd.testing.assert_frame_equal(h, df.head(7), check_dtype=True)


def no_orphans(store):
    """Nothing of a failed ingest is left in FAM: no uncommitted batch."""
    r = store.reclaim(0)
    assert r["arrays"] == 0 and r["categories"] == 0, r


# ---- the taxi sample -----------------------------------------------------------------------

def test_taxi_sample_as_pandas_one_file_many_batches(store, taxi):
    path = taxi.path
    t = store.ingest("Trip", path, batch_rows=25_000, parse_dates=DATES)
    assert t.num_batches == 5 and t.batch_rows == [25_000] * 4 + [20_000]
    df = pandas_read([path], parse_dates=DATES)
    same_dataset(t, df, DATES)
    b = t.batch(3)
    for k in ("fare_amount", "store_and_fwd_flag", "pickup_datetime"):
        same_column(b[k], df[k].iloc[75_000:100_000].reset_index(drop=True), k,
                    k in DATES)
    assert store.verify(codes=True) == 5 * 18
    no_orphans(store)


def test_taxi_months_as_files_in_order_with_dtypes_and_usecols(store, taxi):
    parts = taxi.parts
    cols = ["pickup_datetime", "passenger_count", "store_and_fwd_flag", "fare_amount",
            "pickup_location_id"]
    dt = {"passenger_count": "float64", "pickup_location_id": "str"}
    t = store.ingest("Trip", parts, batch_rows=20_000, usecols=cols, dtypes=dt,
                     parse_dates=["pickup_datetime"])
    sizes = [sum(1 for _ in open(p)) - 1 for p in parts]
    want = []
    for n in sizes:  # each file is its own batches, in file order
        want += [20_000] * (n // 20_000) + ([n % 20_000] if n % 20_000 else [])
    assert t.batch_rows == want
    df = pandas_read(parts, usecols=cols, dtype={"passenger_count": "float64",
                                                 "pickup_location_id": str},
                     parse_dates=["pickup_datetime"])
    same_dataset(t, df, ["pickup_datetime"])
    # the repr: columns, first rows, rows and batches
    r = repr(t)
    assert "fare_amount" in r and f"[{len(df)} rows x 5 columns, {len(want)} batches]" in r
    assert "Trip" in store and store.list() == ["Trip"]


# ---- random tables -----------------------------------------------------------------------

RDT = {"i": "float64", "f": "float64", "s": "str", "b": "bool"}


def test_random_files_with_edge_cases_appended_one_by_one(store, tmp):
    rng = random.Random(13)
    paths = []
    for k, n in enumerate([1, 0, 37, 5, 300]):
        eol = rng.choice(["\n", "\r\n"])
        paths.append(write(tmp, f"rand{k}.csv", table(random_rows(rng, n), eol)))
    long_text = "y" * 65_535  # a category holds at most 64 KiB - 1 (dataset.h)
    paths.append(write(tmp, "long.csv", f'i,f,s,b,d\n1,-2.5,{long_text},True,\n'
                                        f'-3,,"{long_text[:60_000]},\n""q""",False,'
                                        f'2017-01-01 00:00:01\n'))
    for k, p in enumerate(paths):  # an append per file, batches of 7 rows
        t = store.ingest("R", p, batch_rows=7, dtypes=RDT, parse_dates=["d"])
        assert len(t) == len(pandas_read(paths[:k + 1], dtype=RDT, parse_dates=["d"]))
    df = pandas_read(paths, dtype=RDT, parse_dates=["d"])
    assert len(df) == 1 + 37 + 5 + 300 + 2
    same_dataset(t, df, ["d"])
    assert t.num_batches == 1 + 6 + 1 + 43 + 1
    store.verify(codes=True)


def test_text_longer_than_a_category_may_be_is_refused(store, tmp):
    p = write(tmp, "huge.csv", "a,s\n1,x\n2," + "z" * 65_536 + "\n")
    with pytest.raises(ValueError, match="column 's'.*65536 bytes long; the most is 65535"):
        store.ingest("L", p)
    assert "L" not in store
    no_orphans(store)


def test_header_only_and_one_row_files(store, tmp):
    h = write(tmp, "header.csv", "a,b,c\n")
    t = store.ingest("H", h)
    assert (len(t), t.num_batches, t.columns) == (0, 0, ["a", "b", "c"])
    pd.testing.assert_frame_equal(t.head(), pd.read_csv(h), check_index_type=False)
    one = write(tmp, "one.csv", 'a,b\n-7,"x, ""y"""\n')
    t = store.ingest("One", one)
    same_dataset(t, pandas_read([one]))


def test_negative_nan_and_quoted_values(store, tmp):
    text = ('n,x,s\n-1,-0.5,"a,b"\n-9223372036854775808,,"line\nbreak"\n'
            '5,NaN,\n0,-inf,"say ""hi"""\n')
    p = write(tmp, "edge.csv", text)
    t = store.ingest("E", p, batch_rows=2)
    same_dataset(t, pandas_read([p]))
    assert t.dtypes == {"n": "int64", "x": "float64", "s": "text"}


# ---- Python data ---------------------------------------------------------------------------

def test_dataframe_numpy_and_pdarrays(store, fam_ak):
    ak = fam_ak
    rng = np.random.default_rng(5)
    n = 1003
    df = pd.DataFrame({
        "i": rng.integers(-10**12, 10**12, n),
        "f": np.where(rng.random(n) < 0.1, np.nan, rng.standard_normal(n)),
        "b": rng.random(n) < 0.5,
        "s": np.where(rng.random(n) < 0.1, None,
                      rng.choice(["x", "é", "", "a,b", "z" * 300], n)).astype(object),
        "t": pd.to_datetime(rng.integers(0, 2 * 10**9, n), unit="s"),
    })
    t = store.ingest("DF", df, batch_rows=100)
    assert t.num_batches == 11
    assert t.dtypes == {"i": "int64", "f": "float64", "b": "bool", "s": "text",
                        "t": "datetime64[s]"}
    same_dataset(t, df, ["t"])
    # a dict of NumPy arrays appends; a dict of pdarrays and Categoricals too
    d = {k: df[k].to_numpy() for k in df.columns}
    store.ingest("DF", d, batch_rows=1000)
    cat = ak.Categorical(ak.array(df["s"].astype("category").cat.codes.values.astype(np.int64)),
                         np.array(list(df["s"].astype("category").cat.categories)))
    secs = df["t"].values.astype("datetime64[s]").astype(np.int64)
    with pytest.raises(ValueError, match="datetime64"):  # an int64 pdarray is not a date
        store.ingest("DF", {"i": ak.array(df["i"].values), "f": ak.array(df["f"].values),
                            "b": ak.array(df["b"].values), "s": cat, "t": ak.array(secs)})
    t = store.ingest("DF", {"i": ak.array(df["i"].values), "f": ak.array(df["f"].values),
                            "b": ak.array(df["b"].values), "s": cat,
                            "t": df["t"].values})
    assert t.num_batches == 11 + 2 + 1  # batch_rows 100, 1000, the default
    same_dataset(t, pd.concat([df, df, df], ignore_index=True), ["t"])


def test_categories_larger_than_a_request_frame(store):
    """A text column whose categories take more than one 1 MiB frame,
    ingested in batches that each keep only their own categories."""
    n = 40_000
    words = np.array([f"w{i:06d}-" + "x" * 40 for i in range(n)], dtype=object)
    rng = np.random.default_rng(2)
    vals = words[rng.permutation(n)]
    t = store.ingest("W", {"s": vals, "i": np.arange(n)}, batch_rows=15_000)
    got = t["s"]
    assert list(got.categories) == sorted(words)
    np.testing.assert_array_equal(got.to_ndarray(), vals)
    np.testing.assert_array_equal(t.batch(1)["s"].to_ndarray(), vals[15_000:30_000])
    assert len(t.batch(2)["s"].categories) == n - 30_000  # the batch's own only


# ---- errors: nothing visible, nothing left --------------------------------------------------

def test_schema_mismatch_is_refused_and_leaves_nothing(store, tmp):
    a = write(tmp, "sa.csv", "x,y\n1,2.5\n2,3.5\n")
    store.ingest("S", a)
    b = write(tmp, "sb.csv", "x,y\n1,a\n")  # y is text here
    with pytest.raises(ValueError, match=r"sb.csv.*'y'.*float64"):
        store.ingest("S", b)
    c = write(tmp, "sc.csv", "x,z\n1,2.5\n")  # another column name
    with pytest.raises(ValueError, match=r"sc.csv' has no column 'y', which the dataset has"):
        store.ingest("S", c)
    with pytest.raises(ValueError, match=r"differ from the dataset's"):
        store.ingest("S", {"x": np.arange(2), "y": np.arange(2)})  # int64, not float64
    with pytest.raises(ValueError, match=r"differ from the dataset's"):
        store.ingest("S", a, usecols=["x"])
    t = store["S"]
    assert (len(t), t.num_batches) == (2, 1)
    no_orphans(store)


def test_an_int_column_with_floats_in_a_later_file(store, tmp):
    """pandas reading both files at once widens x to float64; an ingest
    takes x's dtype from the first file and writes its batches at once, so
    a float in a later file is a clear error saying which dtypes= to give,
    and with it the dataset equals pandas' frame."""
    a = write(tmp, "wa.csv", "x,y\n1,a\n2,b\n")
    b = write(tmp, "wb.csv", "x,y\n3,c\n4.5,d\n")
    want = pd.concat([pd.read_csv(a), pd.read_csv(b)], ignore_index=True)
    assert want["x"].dtype == np.float64  # (per file: int64, then float64)
    with pytest.raises(ValueError, match=r"wb.csv', line 3: column 1 \('x'\): cannot read "
                                         r"'4.5' as int64 \(the dataset's column 'x' is int64, "
                                         r".*dtypes=\{'x': 'float64'\}"):
        store.ingest("W", [a, b])
    assert "W" not in store
    no_orphans(store)
    t = store.ingest("W", [a, b], dtypes={"x": "float64"}).to_pandas()
    pd.testing.assert_series_equal(t["x"], want["x"])
    assert list(t["y"].astype(str)) == list(want["y"])


def test_bad_input_names_file_line_column_and_leaves_nothing(store, tmp):
    good = write(tmp, "good.csv", "a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(50)))
    bad = write(tmp, "bad.csv", "a,b\n1,2\n3,4\n5,oops\n")
    with pytest.raises(ValueError, match=r"bad.csv', line 4.*column 2 \('b'\)"):
        store.ingest("B", [good, bad], batch_rows=10, dtypes={"b": "float64"})
    assert "B" not in store  # not even an empty dataset
    no_orphans(store)
    short = write(tmp, "short.csv", "a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match=r"short.csv', line 3.*expected 2 fields"):
        store.ingest("B", [good, short])
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        store.ingest("B", [good, os.path.join(tmp, "nope.csv")])
    empty = write(tmp, "empty.csv", "")
    with pytest.raises(ValueError, match="empty.csv.*empty"):
        store.ingest("B", [good, empty])
    assert "B" not in store
    no_orphans(store)
    # an existing dataset keeps its rows after a failed append
    store.ingest("B", good, batch_rows=10)
    with pytest.raises(ValueError, match="bad.csv"):
        store.ingest("B", [good, bad], batch_rows=10, dtypes={"b": "float64"})
    assert (len(store["B"]), store["B"].num_batches) == (50, 5)
    no_orphans(store)
    # skip: the bad rows are left out, and counted
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t = store.ingest("B", [bad, short], on_bad_lines="skip", dtypes={"b": "float64"})
    assert any("skipped 2 bad row" in str(x.message) for x in w), [str(x.message) for x in w]
    assert len(t) == 50 + 2 + 1


def test_progress_bar_follows_the_files(store, tmp, capsys):
    paths = [write(tmp, f"p{k}.csv", "a,b\n" + "".join(f"{i},{k}\n" for i in range(100)))
             for k in range(3)]
    t = store.ingest("P", paths, progress=True)
    err = capsys.readouterr().err
    total = sum(os.path.getsize(p) for p in paths)  # a bar over the files' bytes
    assert "kodiak: ingest" in err and f"/{total / 1000:.2f}k" in err, err[-500:]
    assert len(t) == 300 and t.num_batches == 3
    store.ingest("P", paths, progress=False)
    assert "kodiak: ingest" not in capsys.readouterr().err


def test_list_contains_getitem_and_drop(store, fam_ak):
    ak = fam_ak
    assert store.list() == [] and "A" not in store
    store.ingest("A", {"x": np.arange(3)})
    store.ingest("B", {"y": np.array([True, False])})
    assert store.list() == ["A", "B"] and "A" in store and "C" not in store
    with pytest.raises(KeyError, match="'C'"):
        store["C"]
    with pytest.raises(KeyError, match="no column 'nope'"):
        store["A"]["nope"]
    with pytest.raises(IndexError, match="batch 1 is out of range"):
        store["A"].batch(1)
    store.drop("A")
    assert store.list() == ["B"]
    with pytest.raises(KeyError):
        store.drop("A")
    with pytest.raises(KeyError, match="no dataset store"):
        ak.DatasetStore("t_never_made", create=False)
    # another handle on the same store sees the same catalog
    assert ak.DatasetStore(store.name).list() == ["B"]


def test_list_shows_what_users_made_and_all_shows_the_internal_datasets_too(store, fam_ak):
    ak = fam_ak
    t = store.ingest("T", {"x": np.arange(6), "y": np.arange(6) * 2}, batch_rows=4)
    big = ak.filter(t, "x", "gt", 2)
    big["y"]  # gathered and kept: the internal dataset "T.x_gt_2[y]"
    big.derive("z", big["y"] * 10)  # "T.x_gt_2[z]"
    t.derive("w", t["x"] + 1)  # "T[w]"
    internal = {"T.x_gt_2[y]", "T.x_gt_2[z]", "T[w]"}
    assert store.list() == ["T", "T.x_gt_2"] and list(store) == store.list() and len(store) == 2
    every = store.list(all=True)
    assert [n for n in every if n not in internal] == ["T", "T.x_gt_2"]
    assert internal <= set(every)
    assert all(store[n].kind == "column" for n in set(every) - {"T", "T.x_gt_2"})
    assert store.describe().name.tolist() == ["T", "T.x_gt_2"]
    assert store.describe(all=True).name.tolist() == every
    # an internal dataset is still there to open by name; its data is a column of its dataset
    assert "T.x_gt_2[z]" in store and "T[w]" in store
    assert store["T.x_gt_2[z]"]["z"].to_ndarray().tolist() == [60, 80, 100]
    assert t.columns == ["x", "y", "w"] and big.columns == ["x", "y", "w", "z"]


def test_a_drop_takes_everything_derived_from_it_so_nothing_stale_comes_back(store, fam_ak):
    """Lineage is by name and batch count: a filter (or a gathered column)
    left behind by a drop looked current again over a dataset made anew
    under the same name, and gave the old rows. A drop takes every dataset
    derived from the dropped one, down the chain, in the same commit."""
    ak = fam_ak
    d1 = pd.DataFrame({"k": np.arange(100), "v": np.arange(100) * 3})
    t = store.ingest("T", d1, batch_rows=40)
    f = ak.filter(t, "k", "gt", 22)
    g = ak.filter(f, "v", "lt", 200)  # a chain
    assert f["v"].to_ndarray().tolist() == d1.v[d1.k > 22].tolist()  # gathered: "T.k_gt_22[v]"
    g.derive("w", g["k"] * 2)
    t.derive("u", t["k"] + 1)
    other = store.ingest("O", {"z": np.arange(3)})
    assert len(store.list(all=True)) > 4
    # dropping the filter takes its chain and columns, leaves the base and its own column
    store.drop(f.name)
    assert sorted(store.list(all=True)) == ["O", "T", "T[u]"]
    # dropping the base takes the rest; a store's other datasets stay
    f = ak.filter(t, "k", "gt", 22)
    f["v"]
    store.drop("T")
    assert store.list(all=True) == ["O"]
    assert other["z"].to_ndarray().tolist() == [0, 1, 2]
    # made again under the same names, with other rows: never the old ones
    d2 = pd.DataFrame({"k": np.arange(30, 60), "v": -np.arange(30)})
    t = store.ingest("T", d2, batch_rows=40)
    f = ak.filter(t, "k", "gt", 22)
    want = d2[d2.k > 22]
    assert len(f) == len(want)
    assert f["v"].to_ndarray().tolist() == want.v.tolist()
    assert f["k"].to_ndarray().tolist() == want.k.tolist()
    g = ak.filter(f, "v", "lt", 200)
    assert g["k"].to_ndarray().tolist() == want.k[want.v < 200].tolist()


def test_a_name_dropped_and_made_again_as_another_kind_is_read_as_it_is_now(store, fam_ak):
    ak = fam_ak
    t = store.ingest("T", {"x": np.arange(6)}, batch_rows=4)
    old = store.ingest("T.x_gt_3", {"index": np.array([7, 8])})  # a base dataset of that name
    assert old.kind == "base" and old["index"].to_ndarray().tolist() == [7, 8]
    store.drop("T.x_gt_3")
    new = ak.filter(t, "x", "gt", 3)  # the same name, now an index dataset
    assert new.name == old.name
    store.ingest("T", {"x": np.array([10, 1])})  # a new batch of the base: brought up to date
    # the object made for the base dataset reads the filter as it is now
    assert old["x"].to_ndarray().tolist() == [4, 5, 10]
    with pytest.raises(KeyError, match="no column 'index'"):
        old["index"]  # the filter's own column is not one a user reads
    assert old.kind == "index" and len(old) == 3 and old.columns == ["x"]
    # and back: dropped (with what was gathered through it) and made again as a base dataset
    assert any(n.startswith(new.name + "[") for n in store.list(all=True))
    store.drop(new.name)
    assert store.list(all=True) == ["T"]
    store.ingest(new.name, {"x": np.array([42]), "index": np.array([1])})
    assert new["x"].to_ndarray().tolist() == [42] and new["index"].to_ndarray().tolist() == [1]
    assert new.kind == "base" and old["index"].to_ndarray().tolist() == [1]


def test_a_full_pool_fails_the_ingest_on_every_rank():
    """The memory servers run out of space while rank 0 begins a batch: the
    other ranks must fail with it (a rank that went on alone hung the
    server in the next collective), nothing is visible, nothing is left."""
    from fam_fixtures import FamServers, start_kodiakd
    famd = FamServers(1, pool_size="24M")
    srv = None
    try:
        srv = start_kodiakd(2, famd.servers)
        connect(kodiak, srv)
        s = kodiak.DatasetStore("full")
        s.ingest("Small", {"x": np.arange(1000)})
        with pytest.raises(MemoryError, match="pool is full"):
            s.ingest("Big", {"x": np.arange(3_000_000), "y": np.ones(3_000_000)},
                     batch_rows=250_000)
        assert srv.alive() and s.list() == ["Small"]
        no_orphans(s)
        s.ingest("Small", {"x": np.arange(5)})  # the server still works
        assert len(s["Small"]) == 1005
    finally:
        kodiak.disconnect()
        if srv:
            srv.stop()
        famd.stop()

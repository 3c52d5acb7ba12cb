# SPDX-License-Identifier: Apache-2.0
"""test_fuzz.py — a seeded random fuzzer against kodiakd: no request may
crash, hang or corrupt the server.

Every registered command (the kd_register calls of src/kodiakd/*.c) is sent,
through kodiak.client.generic_msg, with arguments drawn from valid arrays of
every dtype (empty and size 1 included), unknown names, wrong JSON types,
extreme integers, NaN/inf, malformed scalars, missing and extra arguments,
empty and 2000-name lists, junk "free" lists and wrong binary frames. Every
reply must be a success or one of the mapped Python exceptions; a request
with no answer within TIMEOUT seconds is a hang. Every CHECK_EVERY requests
the "sentinel" arrays made at the start must still hold exactly their NumPy
contents, the server must answer, and its log must hold no sanitizer report
(run with KODIAK_BUILD=build-asan for an ASan/UBSan kodiakd).

Requests with exactly one deliberate fault (a missing argument, a wrong JSON
type, an unknown array name, an integer beyond int64) must fail with the
exception that fault calls for, unless the same request without the fault
fails the same way (a check that comes first).

The server runs with --memory-limit 64M per rank, so huge sizes give
MemoryError instead of swapping. KODIAK_FUZZ_N sets the number of random
requests per rank count, KODIAK_FUZZ_SEED the seed."""
import json
import os
import random
import time

import numpy as np
import pytest

import kodiak
from kodiak import client
from conftest import Server

N_REQUESTS = int(os.environ.get("KODIAK_FUZZ_N", "2500"))
SEED = int(os.environ.get("KODIAK_FUZZ_SEED", "20240611"))
CHECK_EVERY = 100
TIMEOUT = 30.0  # seconds without an answer: the server hangs

ALLOWED = (ValueError, TypeError, IndexError, KeyError, MemoryError, ZeroDivisionError,
           NotImplementedError, OverflowError, FileExistsError, PermissionError,
           FileNotFoundError, kodiak.KodiakError)
SANITIZER_MARKS = ("runtime error", "AddressSanitizer", "LeakSanitizer")
DTYPES = ["int64", "uint64", "float64", "bool"]
SIZES = [0, 1, 2, 3, 5, 10, 17, 64, 100, 1000]
NP = {"int64": np.int64, "uint64": np.uint64, "float64": np.float64, "bool": np.bool_}
I64_MIN, I64_MAX = -2**63, 2**63 - 1


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}rank")
def server(request):
    """Overrides conftest's server: one with a small memory limit per rank."""
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    s = Server(request.param, ["--memory-limit", "64M"])
    try:
        yield s
    finally:
        kodiak.disconnect()
        s.stop()


# ---- the commands and their arguments ------------------------------------------------------

# kind of each argument: "array" (a name; "marray" when the command writes
# into it), "int", "size", "index", "seed", "float", "bool", "scalar", "dtype",
# "names", "vm", ("op", [choices]); "x|y" keys take an array x or a scalar y.
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>",
          "<", "<=", ">", ">=", "==", "!="]
REDUCE_OPS = ["sum", "prod", "min", "max", "argmin", "argmax", "any", "all", "mean", "var",
              "std", "is_sorted"]
GB_OPS = ["sum", "mean", "min", "max", "count", "size", "first", "nunique"]

# (key, kind, required)
SPECS = {
    "connect": [("version", "int", True)],
    "list_symbols": [],
    "memory": [],
    "delete": [("name", "marray", True)],
    "array": [("dtype", "dtype", True), ("size", "size", True), ("vm", "vm", False)],
    "to_ndarray": [("array", "array", True), ("vm", "vm", False)],
    "full": [("dtype", "dtype", True), ("size", "size", True), ("value", "scalar", True)],
    "arange": [("start", "index", True), ("stop", "index", True), ("step", "int", True),
               ("dtype", "dtype", False)],
    "linspace": [("start", "float", True), ("stop", "float", True), ("num", "size", True),
                 ("endpoint", "bool", False)],
    "randint": [("low", "scalar", True), ("high", "scalar", True), ("size", "size", True),
                ("dtype", "dtype", True), ("seed", "seed", True)],
    "uniform": [("low", "float", True), ("high", "float", True), ("size", "size", True),
                ("seed", "seed", True)],
    "standard_normal": [("size", "size", True), ("seed", "seed", True)],
    "binop": [("op", ("op", BINOPS), True), ("ct", "dtype", True), ("rt", "dtype", True),
              ("a|sa", "operand", True), ("b|sb", "operand", True), ("out", "marray", False),
              ("stream", "bool", False)],
    "axpy": [("x", "array", True), ("y", "array", True), ("alpha", "scalar", True),
             ("form", ("op", ["x+ay", "x-ay", "ay-x"]), True)],
    "unop": [("op", ("op", ["neg", "invert", "abs"]), True), ("array", "array", True)],
    "astype": [("array", "array", True), ("dtype", "dtype", True)],
    "reduce": [("op", ("op", REDUCE_OPS), True), ("array", "array", True),
               ("ddof", "float", False)],
    "scan": [("op", ("op", ["cumsum", "cumprod"]), True), ("array", "array", True)],
    "where": [("cond", "array", True), ("a|sa", "operand", True), ("b|sb", "operand", True),
              ("rt", "dtype", True)],
    "concatenate": [("arrays", "names", True), ("rt", "dtype", True)],
    "index_int": [("array", "array", True), ("index", "index", True)],
    "index_slice": [("array", "array", True), ("start", "index", True),
                    ("stop", "index", True), ("step", "int", True)],
    "index_mask": [("array", "array", True), ("mask", "array", True)],
    "index_gather": [("array", "array", True), ("index", "array", True)],
    "setitem_int": [("array", "marray", True), ("index", "index", True),
                    ("values|value", "operand", True)],
    "setitem_slice": [("array", "marray", True), ("start", "index", True),
                      ("stop", "index", True), ("step", "int", True),
                      ("values|value", "operand", True)],
    "setitem_mask": [("array", "marray", True), ("mask", "array", True),
                     ("values|value", "operand", True)],
    "setitem_scatter": [("array", "marray", True), ("index", "array", True),
                        ("values|value", "operand", True)],
    "sort": [("array", "array", True)],
    "argsort": [("array", "array", True)],
    "coargsort": [("arrays", "names", True)],
    "unique": [("array", "array", True), ("return_counts", "bool", False)],
    "in1d": [("a", "array", True), ("b", "array", True), ("dtype", "dtype", True),
             ("invert", "bool", False)],
    "histogram": [("array", "array", True), ("bins", "bins", True)],
    "groupby": [("keys", "names", True), ("dropna", "bool", False)],
    "groupby_reduce": [("permutation", "gbperm", True), ("segments", "gbseg", True),
                       ("values", "array", False), ("op", ("op", GB_OPS), True)],
    "groupby_broadcast": [("permutation", "gbperm", True), ("segments", "gbseg", True),
                          ("values", "array", True), ("permute", "bool", True),
                          ("length", "size", True)],
    "read_csv": [("files", "files", True), ("usecols", "colnames", False),
                 ("dtypes", "dtmap", False), ("parse_dates", "colnames", False),
                 ("on_bad_lines", ("op", ["error", "skip"]), False)],
}
# registered but not fuzzed: shutdown (it would end the run; test_server.py covers it)
# names that are not commands (they must be refused clearly)
UNKNOWN_CMDS = ["fam_put", "fam_get", "fam_attach", "nosuch", "", "CONNECT",
                "connect ", "list_symbols\u0000", "x" * 300, "\u00e9t\u00e9", "\ud800",
                "\U0001f600" * 60, "\ud83d" + "x" * 98, "x" + "\U0001f600" * 60]

# JSON values of the wrong type for each kind of argument
WRONG_TYPES = {
    "int": ["5", 1.5, [], [1], {}, {"a": {"b": [None]}}, True, float("nan")],
    "float": ["1.5", [], [1.0], {}, True, "nan"],
    "bool": [1, 0, "true", [], {}, 1.5],
    "str": [5, [], ["id_1"], {}, {"name": "id_1"}, True, 1.5],
    "scalar": ["5", 5, 1.5, [], ["int64", "1"], True, {"dtype": "int32", "value": "1"},
               {"dtype": "int64"}, {"value": "1"}, {"dtype": "int64", "value": 5},
               {"dtype": None, "value": "1"}, {"dtype": ["int64"], "value": "1"},
               {"dtype": "int64", "value": None}, {}],
    "names": ["id_1", 5, {}, True, {"arrays": []}],
    "dtmap": [5, "int64", [], ["a"], True, 1.5],
}
BIG_INTS = [I64_MAX, I64_MIN, -1, 2**40, 2**31, 2**31 - 1, 2**32, 2**59, 2**62, -2**40,
            I64_MIN + 1]
PAST_INT64 = [2**63, 2**64, 2**64 - 1, 10**30, -2**63 - 1]
EDGE_FLOATS = [float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 5e-324, -0.0, 0.0,
               2.0**63, -2.0**63, 2.0**64]
NEAR_LIMIT = [2**20, 3 * 10**6, 8 * 2**20, 8 * 2**20 + 1, 2**24 + 3]  # 64M per rank
BAD_SCALAR_TEXT = {"int64": ["abc", "", "1.5", "9223372036854775808", "0x10", " 1", "1 ",
                             "1e3", "\u0000", "-"],
                   "uint64": ["-1", "18446744073709551616", "abc", "", "1.0"],
                   "float64": ["abc", "", "1.5x", "nanx", "--1"],
                   "bool": ["yes", "2", "", "TRUE", "None"]}


def wrong_type_kind(kind):
    if kind in ("int", "size", "index", "seed", "bins"):
        return "int"
    if kind in ("float", "bool", "scalar", "names", "dtmap"):
        return kind
    if kind in ("files", "colnames"):
        return "names"
    return "str"


CSV_COLS = ["a", "b", "c", "d"]


def csv_files(rng, where):
    """Small CSV files for read_csv, good and hostile (and names of things
    that are not readable files), written under `where`."""
    good = "a,b,c,d\n1,x,2.5,2017-01-01 00:32:05\n-2,\"y,\n\"\"z\"\"\",,2017-01-02\n"
    texts = {
        "good.csv": good, "crlf.csv": good.replace("\n", "\r\n"), "empty.csv": "",
        "header.csv": "a,b,c,d\n", "noeol.csv": good.rstrip("\n"),
        "short_row.csv": good + "1,2\n", "long_row.csv": good + "1,2,3,4,5\n",
        "bad_date.csv": good + "3,w,1.0,yesterday\n", "open_quote.csv": good + '4,"never\n',
        "stray.csv": good + '5,ab"c,1,2017-01-01\n', "other_header.csv": "a,b,x,d\n1,2,3,4\n",
        "long_line.csv": "a,b,c,d\n1," + "q" * 200000 + ",2,2017-01-01\n",
        "wide.csv": ",".join(f"c{i}" for i in range(5000)) + "\n",
        "dup.csv": "a,a,c,d\n1,2,3,4\n",
    }
    paths = []
    for name, text in texts.items():
        path = os.path.join(where, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        paths.append(path)
    for k in range(4):  # random bytes after a good header
        path = os.path.join(where, f"junk{k}.csv")
        with open(path, "wb") as f:
            f.write(b"a,b,c,d\n" + bytes(rng.choice(b'\x00\xff",\r\n a1.e-') for _ in
                                          range(rng.choice([10, 1000, 5000]))))
        paths.append(path)
    return paths + [os.path.join(where, "missing.csv"), where, "relative.csv", "/dev/null",
                    "/proc/self/status"]


# ---- the fuzzer ----------------------------------------------------------------------------


def make_array(nd):
    """A server array from NumPy data; returns its name."""
    res, _ = client.generic_msg("array", {"dtype": str(nd.dtype), "size": int(nd.size)},
                                frames=[nd.tobytes()] if nd.size else [b""])
    return res["array"]["name"]


def random_nd(rng, dtype, size):
    r = rng.random()
    if dtype == "bool":
        return np.array([rng.random() < 0.5 for _ in range(size)], dtype=np.bool_)
    if dtype == "float64":
        vals = [rng.choice([0.0, -0.0, 1.5, -2.25, float("nan"), float("inf"), -float("inf"),
                            1e308, 5e-324, rng.uniform(-1e3, 1e3)]) if r < 0.3
                else rng.uniform(-100, 100) for _ in range(size)]
        return np.array(vals, dtype=np.float64)
    if dtype == "int64":
        lo, hi = ((I64_MIN, I64_MAX) if r < 0.2 else (-size - 3, size + 3))
        return np.array([rng.randint(lo, hi) for _ in range(size)], dtype=np.int64)
    hi = 2**64 - 1 if r < 0.2 else size + 3
    return np.array([rng.randint(0, hi) for _ in range(size)], dtype=np.uint64)


class Fuzzer:
    def __init__(self, server, rng):
        self.server = server
        self.rng = rng
        self.sentinels = {}   # name -> NumPy contents (never written by the fuzzer)
        self.meta = {}        # name -> (dtype, size) of every array the fuzzer knows
        self.pool = []        # names the fuzzer may read, write and delete
        self.gb = []          # (permutation, segments, nrows, ngroups) of successful groupbys
        self.history = []     # the last requests, for failure messages
        self.mismatches = []  # single-fault requests that failed with the wrong kind
        self.count = 0
        self.stats = {}
        self.extreme = False  # this request: every number at an edge

    # -- arrays --
    def setup(self):
        rng = self.rng
        where = os.path.join(self.server.dir, "csv")
        os.makedirs(where, exist_ok=True)
        self.csv_files = csv_files(rng, where)
        for dt in DTYPES:
            for size in (0, 1, 7, 100, 1001):
                nd = random_nd(rng, dt, size)
                name = make_array(nd)
                self.sentinels[name] = nd
                self.meta[name] = (dt, size)
        self.refill()

    def refill(self):
        while len(self.pool) < 40:
            dt = self.rng.choice(DTYPES)
            size = self.rng.choice(SIZES)
            name = make_array(random_nd(self.rng, dt, size))
            self.pool.append(name)
            self.meta[name] = (dt, size)

    def arr(self, size=None, dtype=None, writable=False):
        """A known array of this size and dtype (made when there is none)."""
        names = self.pool if writable else self.pool + list(self.sentinels)
        fit = [n for n in names if n in self.meta and (size is None or self.meta[n][1] == size)
               and (dtype is None or self.meta[n][0] == dtype)]
        if fit:
            return self.rng.choice(fit)
        dt = dtype or self.rng.choice(DTYPES)
        size = self.rng.choice(SIZES) if size is None else size
        nd = random_nd(self.rng, dt, size)
        if dt in ("int64", "uint64") and size and self.rng.random() < 0.7:
            nd = np.array([self.rng.randint(-size - 2, size + 1) for _ in range(size)],
                          dtype=np.int64).astype(dt)
        name = make_array(nd)
        self.pool.append(name)
        self.meta[name] = (dt, size)
        return name

    def smart(self, cmd, writable):
        """Arguments that make sense together (same sizes, fitting dtypes,
        indices mostly in range), so that the deep paths run."""
        rng = self.rng
        S = rng.choice(SIZES)
        dt = lambda: rng.choice(DTYPES)  # noqa: E731
        scalar = lambda: self.valid("scalar", "", False)  # noqa: E731

        def operand(akey, skey, size, dtype=None):
            if rng.random() < 0.65:
                return {akey: self.arr(size if rng.random() < 0.9 else 1, dtype)}
            return {skey: scalar()}

        def index(n):
            if self.extreme or rng.random() < 0.1:
                return rng.choice(BIG_INTS + [0, -1, n, -n, n - 1, -n - 1])
            return rng.randint(-n - 2, n + 1)

        if cmd == "binop":
            op = rng.choice(BINOPS)
            ct = dt()
            rt = "bool" if op in BINOPS[12:] else ("float64" if op == "/" else ct)
            a = {"op": op, "ct": ct, "rt": rt, **operand("a", "sa", S), **operand("b", "sb", S)}
            if rng.random() < 0.3:
                a["out"] = self.arr(S, rt if rng.random() < 0.8 else None, writable=True)
            if rng.random() < 0.2:
                a["stream"] = True
            return a
        if cmd == "axpy":
            return {"x": self.arr(S, "float64"), "y": self.arr(S, "float64"),
                    "alpha": {"dtype": "float64", "value": repr(rng.choice([0.5, -2.0, 1e308, float("nan"), 0.0]))},
                    "form": rng.choice(["x+ay", "x-ay", "ay-x"])}
        if cmd == "where":
            return {"cond": self.arr(S, "bool"), **operand("a", "sa", S),
                    **operand("b", "sb", S), "rt": dt()}
        if cmd in ("index_mask", "setitem_mask"):
            a = {"array": self.arr(S, writable=cmd.startswith("set")), "mask": self.arr(S, "bool")}
        elif cmd in ("index_gather", "setitem_scatter"):
            a = {"array": self.arr(S, writable=cmd.startswith("set")),
                 "index": self.arr(rng.choice(SIZES), rng.choice(["int64", "uint64", "bool"]))}
        elif cmd in ("index_int", "setitem_int"):
            a = {"array": self.arr(S, writable=cmd.startswith("set")), "index": index(S)}
        elif cmd in ("index_slice", "setitem_slice"):
            a = {"array": self.arr(S, writable=cmd.startswith("set")), "start": index(S),
                 "stop": index(S), "step": rng.choice([1, 1, 2, -1, -3, 7, 0, I64_MIN, I64_MAX,
                                                       I64_MIN + 1, 2**62, S, -S])}
        elif cmd == "in1d":
            t1, t2 = dt(), dt()
            common = str(np.result_type(NP[t1], NP[t2]))
            return {"a": self.arr(None, t1), "b": self.arr(None, t2),
                    "dtype": common if common in NP else "float64", "invert": rng.random() < .5}
        elif cmd == "concatenate":
            names = [self.arr() for _ in range(rng.choice([1, 2, 3, 10]))]
            rt = np.result_type(*[NP[self.meta[n][0]] for n in names])
            return {"arrays": names, "rt": str(rt) if str(rt) in NP else "float64"}
        elif cmd == "read_csv":
            # mostly readable files (the first ones of csv_files), sometimes
            # a hostile one with on_bad_lines="skip"
            ok = [self.csv_files[i] for i in (0, 1, 3, 4)]
            a = {"files": [rng.choice(ok) for _ in range(rng.choice([1, 1, 2, 4]))]}
            if rng.random() < 0.3:
                a["files"].append(rng.choice(self.csv_files))
                a["on_bad_lines"] = "skip"
            if rng.random() < 0.5:
                a["usecols"] = rng.sample(CSV_COLS, rng.randint(1, 4))
            if rng.random() < 0.5:
                a["parse_dates"] = ["d"]
            if rng.random() < 0.3:
                a["dtypes"] = {"a": rng.choice(["int64", "float64", "str"]),
                               "c": rng.choice(["float64", "str"])}
            return a
        elif cmd in ("groupby", "coargsort"):
            names = [self.arr(S) for _ in range(rng.choice([1, 1, 2, 3]))]
            return {"keys" if cmd == "groupby" else "arrays": names, "dropna": rng.random() < .5} \
                if cmd == "groupby" else {"arrays": names}
        elif cmd in ("groupby_reduce", "groupby_broadcast") and self.gb:
            perm, seg, nrows, ngroups = rng.choice(self.gb)
            if cmd == "groupby_reduce":
                return {"permutation": perm, "segments": seg, "values": self.arr(nrows),
                        "op": rng.choice(GB_OPS)}
            return {"permutation": perm, "segments": seg, "values": self.arr(ngroups),
                    "permute": rng.random() < 0.5,
                    "length": nrows if rng.random() < 0.9 else rng.choice(SIZES)}
        else:
            return None
        if cmd.startswith("setitem"):
            if rng.random() < 0.5:
                a["value"] = scalar()
            else:
                a["values"] = self.arr(rng.choice([1, S, rng.choice(SIZES)]))
        return a

    def any_name(self, writable):
        names = self.pool if writable or self.rng.random() < 0.6 else list(self.sentinels)
        return self.rng.choice(names)

    # -- values --
    def valid(self, kind, key, writable_cmd):
        rng = self.rng
        if self.extreme and kind in ("int", "size", "index", "seed", "bins"):
            return rng.choice(BIG_INTS + [0, 1, -1, 2])
        if self.extreme and kind == "float":
            return rng.choice(EDGE_FLOATS)
        if kind in ("array", "marray"):
            return self.any_name(kind == "marray" or writable_cmd)
        if kind == "gbperm" or kind == "gbseg":
            if self.gb and rng.random() < 0.8:
                return rng.choice(self.gb)[0 if kind == "gbperm" else 1]
            return self.any_name(False)
        if kind == "int":
            return rng.choice([1, 1, 2, 3, -1, -2, 0, 7])
        if kind == "size":
            return rng.choice([0, 1, 2, 5, 10, 33, 100, 1000])
        if kind == "index":
            return rng.randint(-120, 120)
        if kind == "seed":
            return rng.randint(0, 2**31)
        if kind == "bins":
            return rng.choice([1, 2, 3, 10, 100])
        if kind == "float":
            return rng.choice([0.0, 1.0, -1.5, 2.5, 1e-3, 100.0, 3])
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "dtype":
            return rng.choice(DTYPES)
        if kind == "scalar":
            dt = rng.choice(DTYPES)
            v = {"int64": str(rng.choice([0, 1, -1, 5, I64_MAX, I64_MIN])),
                 "uint64": str(rng.choice([0, 1, 7, 2**64 - 1])),
                 "float64": repr(rng.choice([0.0, -0.0, 1.5, float("nan"), float("inf"),
                                             -1e300])),
                 "bool": rng.choice(["True", "False"])}[dt]
            return {"dtype": dt, "value": v}
        if kind == "names":
            k = rng.choice([1, 1, 2, 3, 4])
            return [self.any_name(writable_cmd) for _ in range(k)]
        if kind == "files":
            return [rng.choice(self.csv_files) for _ in range(rng.choice([1, 1, 2, 3]))]
        if kind == "colnames":
            return rng.sample(CSV_COLS + ["zz"], rng.randint(0, 3))
        if kind == "dtmap":
            return {col: rng.choice(["int64", "float64", "bool", "str"])
                    for col in rng.sample(CSV_COLS, rng.randint(0, 3))}
        if kind == "vm":
            vm = client.memory_path(0, 1 << 20)
            boot = vm["boot_id"] if vm else ""
            return rng.choice([
                {}, None, 5, "vm", {"boot_id": "b", "pid": 1, "addr": 0, "nbytes": 8},
                {"boot_id": "nope", "pid": os.getpid(), "addr": 16, "nbytes": 1 << 40},
                {"boot_id": boot, "pid": rng.choice([1, 0, -5, 2**31 - 1]),
                 "addr": rng.choice([0, 16, -1, 2**62]), "nbytes": 1 << 40},
                {"boot_id": boot, "addr": rng.choice([0, 16, -1, 2**62, -2**63]),
                 "nbytes": rng.choice([0, 8, 1 << 40, -1, 2**63 - 1])},
                {"boot_id": boot, "pid": os.getpid(),
                 "addr": rng.choice([0, 16, -1, 2**62, -2**63]), "nbytes": 1 << 40},
                {"pid": "1", "addr": "0", "nbytes": "8"}])
        assert isinstance(kind, tuple)
        return rng.choice(kind[1])

    def invalid(self, kind):
        """A value that is wrong in some way (type, range or content)."""
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return rng.choice(WRONG_TYPES[wrong_type_kind(kind)])
        if r < 0.45:
            return rng.choice([None, "", "\u0000", "id_1\u0000", "x" * 5000,
                               nested(rng.randint(1, 40))])
        if kind in ("int", "size", "index", "seed", "bins"):
            return rng.choice(BIG_INTS + PAST_INT64 + NEAR_LIMIT)
        if kind == "float":
            return rng.choice([float("nan"), float("inf"), -float("inf"), 1e308, -0.0,
                               5e-324, 2**64, I64_MIN])
        if kind == "scalar":
            dt = rng.choice(DTYPES + ["int32", "float", "", "str"])
            txt = rng.choice(BAD_SCALAR_TEXT.get(dt, ["1"]))
            return rng.choice([{"dtype": dt, "value": txt},
                               {"dtype": dt, "value": txt, "extra": [1, 2]},
                               {"dtype": dt}, {"value": txt}])
        if kind == "names":
            k = rng.choice([0, 2000, 1025, 1024, 3])
            if k == 2000 and rng.random() < 0.5:
                return ["id_999999"] * k
            if k == 3 and rng.random() < 0.5:
                return [self.any_name(False), 5, None]
            return [self.any_name(False) for _ in range(k)]
        if kind in ("array", "marray", "gbperm", "gbseg"):
            return rng.choice(["id_999999", "id_-1", "id_", "id_0", "id_1x", "ID_1",
                               "\u00e9", "a" * 100, " id_1", "id_18446744073709551616",
                               "\ud800", "id_\udfff\ud800x", "\U0001f600" * 50,
                               "x" + "\U0001f600" * 50, "xy" + "\u00e9" * 60])
        if kind == "dtype":
            return rng.choice(["int32", "float32", "object", "str", "", "Int64", "int64 ",
                               "uint8", "bool_", "float", "\udcff" * 20,
                               "\u00e9" * 30, "x" + "\u00e9" * 30])
        if kind == "bool":
            return rng.choice([None, 2, "False"])
        return rng.choice(["", "nope", "+-", "x" * 100, "sum ", "SUM", "cumsum\u0000"])

    def frames_for(self, cmd, args):
        rng = self.rng
        if cmd == "array" and isinstance(args.get("dtype"), str) and args["dtype"] in NP \
                and isinstance(args.get("size"), int) and 0 <= args["size"] <= 10**5:
            nd = random_nd(rng, args["dtype"], args["size"])
            good = nd.tobytes()
            r = rng.random()
            if r < 0.6:
                if args["dtype"] == "bool" and rng.random() < 0.3:
                    good = bytes(rng.randint(0, 255) for _ in good)  # any non-zero byte
                return [good]
            if r < 0.7:
                return [good[:-1]] if good else [b"\x00"]
            if r < 0.8:
                return [good + b"\x00" * rng.choice([1, 7, 8])]
            if r < 0.85:
                return []
            if r < 0.9:
                return [good, good]
            return [b"\x00"] * rng.choice([64, 65])
        if rng.random() < 0.03:
            return [b"\x01" * rng.choice([0, 1, 8, 100])] * rng.choice([1, 2, 65])
        return []

    def generic(self, spec, writable):
        """Each argument valid on its own (but maybe not with the others)."""
        args = {}
        for key, kind, req in spec:
            if not req and self.rng.random() < 0.5:
                continue
            if "|" in key:
                akey, skey = key.split("|")
                if self.rng.random() < 0.5:
                    args[akey] = self.valid("array", akey, writable)
                else:
                    args[skey] = self.valid("scalar", skey, writable)
                continue
            args[key] = self.valid(kind, key, writable)
        return args

    def build(self, cmd):
        """(args, frames, expected, clean): a random request; `expected` is
        the exception type a single deliberate fault calls for (else None)
        and `clean` the same request without that fault."""
        rng = self.rng
        spec = SPECS[cmd]
        writable = cmd.startswith("setitem") or cmd in ("delete",)
        single = rng.random() < 0.3
        self.extreme = not single and rng.random() < 0.15
        args = self.smart(cmd, writable) if rng.random() < 0.5 else None
        if args is None:
            args = self.generic(spec, writable)
        if not single:
            for key in list(args):
                if rng.random() < 0.15:
                    kind = dict((k, v) for k, v, _ in spec).get(key, "array")
                    if kind == "operand":
                        kind = "array"
                    args[key] = self.invalid(kind)
                elif rng.random() < 0.05:
                    del args[key]
            if rng.random() < 0.1:
                args[rng.choice(["extra", "x", "values", "out", "vm", "stream", "free"])] = \
                    rng.choice([1, "id_1", None, [], {"a": 1}, self.any_name(True)])
            if rng.random() < 0.05:
                args = rng.choice([None, {}, {"args": args}])
        if single:
            clean = json.loads(json.dumps(args))
            expected = self.one_fault(cmd, args)
            return args, self.good_frames(cmd, clean), expected, clean
        return args, self.frames_for(cmd, args if isinstance(args, dict) else {}), None, None

    def good_frames(self, cmd, args):
        if cmd != "array":
            return []
        nd = random_nd(self.rng, args["dtype"], args["size"])
        return [nd.tobytes()]

    def one_fault(self, cmd, args):
        """Put one deterministic fault into a valid request; return its exception type."""
        rng = self.rng
        spec = [(k, kind, req) for k, kind, req in SPECS[cmd]]
        if not spec:
            return None
        key, kind, req = rng.choice(spec)
        if "|" in key:
            akey, skey = key.split("|")
            if rng.random() < 0.5:
                args.pop(akey, None)
                args.pop(skey, None)
                return TypeError
            key, kind = (akey, "array") if akey in args else (skey, "scalar")
        if kind == "vm":
            return None
        r = rng.random()
        if r < 0.3 and req:
            args.pop(key, None)
            return TypeError
        if r < 0.4:
            args[key] = None  # null is as good as missing
            return TypeError if req else None
        if r < 0.7:
            wk = wrong_type_kind(kind)
            bad = rng.choice(WRONG_TYPES[wk])
            if wk == "names" and isinstance(bad, list):
                return None
            args[key] = bad
            return TypeError
        if kind in ("array", "marray", "gbperm", "gbseg"):
            args[key] = rng.choice(["id_999999", "nope", "", "id_1x"])
            return KeyError
        if kind == "names":
            args[key] = [rng.choice(self.pool), "id_999999"]
            return KeyError
        if kind in ("int", "size", "index", "seed", "bins"):
            args[key] = rng.choice(PAST_INT64)
            return ValueError
        if kind == "scalar":
            dt = rng.choice(DTYPES)
            args[key] = {"dtype": dt, "value": rng.choice(BAD_SCALAR_TEXT[dt])}
            return ValueError
        if kind == "dtype":
            args[key] = rng.choice(["int32", "float32", "", "object"])
            return TypeError
        if isinstance(kind, tuple):
            args[key] = rng.choice(["", "nope", "SUM", "x" * 100])
            return ValueError
        return None

    # -- sending --
    def send(self, cmd, args, frames):
        self.history.append((cmd, args, [len(f) for f in frames]))
        del self.history[:-8]
        t0 = time.time()
        try:
            res, _ = client.generic_msg(cmd, args, frames=frames, timeout=TIMEOUT)
        except (ConnectionError, TimeoutError) as e:
            pytest.fail(f"no answer (hang?) after {time.time() - t0:.1f} s: {e}\n"
                        f"{self.context()}")
        except ALLOWED as e:
            assert str(e), f"empty error message for {cmd}\n{self.context()}"
            return None, e
        except Exception as e:  # noqa: BLE001 - anything else is a bug
            pytest.fail(f"{type(e).__name__}: {e}\n{self.context()}")
        finally:
            if not self.server.alive():
                pytest.fail(f"kodiakd died\n{self.context()}")
        return res, None

    def context(self):
        lines = ["last requests:"]
        for cmd, args, fl in self.history:
            lines.append(f"  {cmd} {short(args)} frames={fl}")
        lines.append("server log tail:\n" + self.server.output()[-6000:])
        return "\n".join(lines)

    def absorb(self, cmd, args, res):
        """After a success: forget a deleted array; keep some result arrays
        in the pool and free the others."""
        if cmd == "delete":
            assert args["name"] not in self.sentinels, f"sentinel deleted\n{self.context()}"
            if args["name"] in self.pool:
                self.pool.remove(args["name"])
            self.meta.pop(args["name"], None)
            self.gb = [g for g in self.gb if args["name"] not in g[:2]]
        if cmd == "binop" and isinstance(args.get("out"), str):
            self.meta.pop(args["out"], None)  # now the result's (maybe another dtype)
            if args["out"] in self.pool:
                self.pool.remove(args["out"])
        arrays = [v for v in res.values() if isinstance(v, dict) and "name" in v]
        for a in arrays:
            self.meta[a["name"]] = (a["dtype"], a["size"])
        if "permutation" in res and "segments" in res:
            self.gb.append((res["permutation"]["name"], res["segments"]["name"],
                            res["permutation"]["size"], res["segments"]["size"]))
            del self.gb[:-5]
            return  # keep them all (the unique keys too: cheap, and they get freed later)
        for a in arrays:
            if a["size"] <= 10**4 and len(self.pool) < 60 and self.rng.random() < 0.3:
                self.pool.append(a["name"])
            else:
                client.queue_free(a["name"])

    def one_request(self):
        rng = self.rng
        self.count += 1
        r = rng.random()
        if r < 0.02:
            cmd = rng.choice(UNKNOWN_CMDS)
            args = {"name": self.any_name(False)}
            res, err = self.send(cmd, args, [])
            assert isinstance(err, ValueError) and "command" in str(err), f"{cmd!r}: {err!r}"
            return
        victim = None
        if r < 0.04:
            # junk (and sometimes real) names in the "free" list
            junk = rng.choice([["id_999999"], [5, None, [], {}], [""] * 10, ["x" * 1000]])
            if rng.random() < 0.3 and len(self.pool) > 10:
                victim = self.pool.pop(rng.randrange(len(self.pool)))
                self.meta.pop(victim, None)
                junk = junk + [victim, victim]
            client._conn.pending_free.extend(junk)
        cmd = rng.choice(list(SPECS))
        args, frames, expected, clean = self.build(cmd)
        if victim and isinstance(args, dict) and isinstance(args.get("array"), str):
            # freed before the command runs: the command must not see it
            args["array"], expected, clean = victim, None, None
            res, err = self.send(cmd, args, frames)
            assert err is not None, f"{cmd} ran on a freed array\n{self.context()}"
            return
        res, err = self.send(cmd, args, frames)
        self.stats.setdefault(cmd, [0, 0])[err is not None] += 1
        if err is not None and os.environ.get("KODIAK_FUZZ_DEBUG") == cmd:
            print(f"{cmd} {short(args, 200)} -> {type(err).__name__}: {err}")
        if err is None:
            self.absorb(cmd, args, res)
        if expected is not None and not isinstance(err, expected):
            self.classify(cmd, args, expected, err, clean)

    def classify(self, cmd, args, expected, err, clean):
        """A single-fault request failed differently than its fault calls for:
        fine if the request without the fault is refused the same way (a
        check that comes first)."""
        if err is not None and clean is not None:
            res, cerr = self.send(cmd, clean, self.good_frames(cmd, clean))
            if res is not None:
                self.absorb(cmd, clean, res)
            if type(cerr) is type(err):
                return
        self.mismatches.append((cmd, short(args), expected.__name__,
                                type(err).__name__ if err else "success",
                                str(err)[:200] if err else ""))

    # -- checks --
    def check(self):
        _, frames = client.generic_msg("list_symbols", timeout=TIMEOUT)
        for name, nd in self.sentinels.items():
            _, fr = client.generic_msg("to_ndarray", {"array": name}, timeout=TIMEOUT)
            got = np.frombuffer(fr[0], dtype=nd.dtype) if nd.size else np.empty(0, nd.dtype)
            assert got.dtype == nd.dtype and got.size == nd.size, \
                f"sentinel {name} changed shape\n{self.context()}"
            assert np.array_equal(got.view(np.uint8), nd.view(np.uint8)), \
                f"sentinel {name} changed contents\n{self.context()}"
        log = self.server.output()
        for mark in SANITIZER_MARKS:
            assert mark not in log, f"sanitizer report in kodiakd's log\n{self.context()}"
        self.refill()


def nested(depth):
    v = 1
    for _ in range(depth):
        v = {"a": [v]}
    return v


def short(x, n=300):
    s = json.dumps(x) if not isinstance(x, str) else x
    return s if len(s) <= n else s[:n] + f"...({len(s)} chars)"


# ---- the tests -----------------------------------------------------------------------------


def test_fuzz_every_command(ak, server):
    """Thousands of random requests: success or a mapped exception, never a
    crash, a hang, a sanitizer report or a changed sentinel."""
    rng = random.Random(SEED + server.nranks)
    fz = Fuzzer(server, rng)
    fz.setup()
    fz.check()
    for i in range(N_REQUESTS):
        fz.one_request()
        if (i + 1) % CHECK_EVERY == 0:
            fz.check()
    fz.check()
    print(f"\n{server.nranks} ranks: {fz.count} requests, [ok, failed] per command: {fz.stats}")
    assert not fz.mismatches, "single-fault requests with the wrong exception:\n" + \
        "\n".join(map(str, fz.mismatches[:40]))
    # the fuzzer reached every command, with successes and failures
    for cmd in SPECS:
        assert cmd in fz.stats, f"{cmd} never sent"


def raw_request(parts):
    """Send raw message parts (header bytes first) on the client's socket;
    return the reply header as a dict."""
    with client._conn.lock:
        client._conn.sock.send_multipart(parts)
        assert client._conn.sock.poll(TIMEOUT * 1000), "no answer to a raw request"
        reply = client._conn.sock.recv_multipart()
    return json.loads(reply[0])


@pytest.mark.parametrize("header", [
    b"", b"{", b"[]", b"null", b"42", b'"connect"', b"{}", b'{"cmd": 5}', b'{"cmd": null}',
    b'{"cmd": ["list_symbols"]}', b'{"cmd": "list_symbols"} x', b'{"cmd": "list_symbols"}{}',
    b'{"cmd": "fam_put", "args": {}}', rb'{"cmd": "list_symbols\u0000"}',
    b'{"cmd": "nosuch"}', b"\xff\xfe{}", b'{"cmd": "memory", "args": 5}',
    b'{"cmd": "memory", "args": [1]}', b'{"cmd": "memory", "free": "id_1"}',
    b'{"cmd": "memory", "free": {"a": 1}}', b'{"cmd": "list_symbols", "cmd": "nosuch"}',
    b'{"cmd": "delete", "args": {"name": "id_1", "name": "id_999999"}}',
    b"{" * 40 + b"}" * 40, b'{"cmd": "memory", "args": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}",
    b'{"cmd": "memory", "args": {"x": 1e999, "y": -1e999, "z": NaN}}',
    b'{"cmd": "arange", "args": {"start": 0, "stop": 3, "step": 1.0}}',
    b'{"cmd": "arange", "args": {"start": 0, "stop": 3, "step": 1e0}}',
    b'{"cmd": "arange", "args": {"start": -0, "stop": 3, "step": 00001}}',
], ids=lambda h: h[:30].decode("latin-1"))
def test_raw_headers(ak, server, header):
    """Malformed headers: an error reply (ValueError, TypeError or KeyError)
    or a success, and the server keeps answering."""
    head = raw_request([header])
    assert head.get("ok") in (True, False)
    if not head["ok"]:
        assert head["error"]["type"] in ("ValueError", "TypeError", "KeyError"), head
        assert head["error"]["message"]
    assert client.generic_msg("memory")[0]["ranks"]
    log = server.output()
    assert not any(m in log for m in SANITIZER_MARKS), log[-4000:]


def test_raw_frames(ak, server):
    """Binary frames in excess or of odd sizes, on commands that take none."""
    hdr = json.dumps({"cmd": "list_symbols"}).encode()
    assert raw_request([hdr] + [b"x"] * 64)["ok"]
    info = client.server_info()  # frames enough for all ranks' memory, plus 65
    limit = 64 + info["memory_limit"] * info["ranks"] // info["max_frame"] + 1
    head = raw_request([hdr] + [b""] * (limit + 1))
    assert not head["ok"] and head["error"]["type"] == "ValueError"
    hdr = json.dumps({"cmd": "array", "args": {"dtype": "int64", "size": 2}}).encode()
    for frames in ([b"\x00" * 15], [b"\x00" * 17], [], [b"\x00" * 16, b"\x00" * 16],
                   [b"\x01" * 8, b"\x02" * 3, b"\x03" * 5], [b"\x01" * 8, b"", b"\x02" * 8]):
        head = raw_request([hdr] + frames)
        if sum(map(len, frames)) == 16:  # the frames together hold the array
            assert head["ok"], head
            a = ak.pdarray(head["result"]["array"]["name"], ak.int64, 2)
            assert a.to_ndarray().tobytes() == b"".join(frames)
        else:
            assert not head["ok"] and head["error"]["type"] == "ValueError", head
    assert client.generic_msg("memory")[0]["ranks"]


# ---- regressions: bugs the fuzzer found ----------------------------------------------------


def test_integer_below_int64_is_refused(ak):
    """json-c clamps -2**63 - 1 to INT64_MIN silently: kodiakd must refuse it
    (it took arange(89, -27, -2**63 - 1) as a step of -2**63)."""
    for args in ({"start": 89, "stop": -27, "step": -2**63 - 1},
                 {"start": -10**30, "stop": 0, "step": 1},
                 {"start": 0, "stop": 2**64, "step": 1}):
        with pytest.raises(ValueError, match="out of range"):
            client.generic_msg("arange", args)
    # INT64_MIN itself is an int64, and doubles are not integers
    res, _ = client.generic_msg("arange", {"start": 0, "stop": 5, "step": -2**63})
    assert res["array"]["size"] == 0
    with pytest.raises(TypeError):
        client.generic_msg("arange", {"start": 0, "stop": -1e30, "step": 1})
    # digits inside strings are not numbers
    with pytest.raises(KeyError):
        client.generic_msg("to_ndarray", {"array": "-99999999999999999999"})


def test_scalar_text_with_leading_space_is_refused(ak):
    """strtoll/strtod skip leading blanks: " 1" passed for 1 while "1 " did not."""
    for dt, txt in (("int64", " 1"), ("uint64", "\t7"), ("float64", " 1.5"),
                    ("int64", "\n-3")):
        with pytest.raises(ValueError, match="not a valid"):
            client.generic_msg("full", {"dtype": "int64", "size": 3,
                                        "value": {"dtype": dt, "value": txt}})
    res, _ = client.generic_msg("full", {"dtype": "int64", "size": 3,
                                         "value": {"dtype": "int64", "value": "-3"}})
    _, fr = client.generic_msg("to_ndarray", {"array": res["array"]["name"]})
    np.testing.assert_array_equal(np.frombuffer(fr[0], dtype=np.int64), [-3, -3, -3])


def test_groupby_size_checks_the_values_name(ak):
    """groupby_reduce(op="size") ignored an unknown "values" name."""
    g = ak.GroupBy(ak.array(np.array([3, 1, 3, 2], dtype=np.int64)))
    args = {"permutation": g.permutation.name, "segments": g.segments.name, "op": "size"}
    with pytest.raises(KeyError):
        client.generic_msg("groupby_reduce", {**args, "values": "id_999999"})
    _, counts = g.size()
    np.testing.assert_array_equal(counts.to_ndarray(), [1, 1, 2])


FAM_COMMANDS = ["fam_region", "fam_region_list", "fam_region_destroy", "fam_create",
                "fam_lookup", "fam_delete", "fam_from_pdarray", "fam_to_pdarray",
                "fam_scatter", "fam_gather", "fam_get_item", "fam_get_slice",
                "fam_put_slice", "fam_add", "fam_fetch_add"]


def test_fam_commands_without_memory_servers_say_what_is_missing(ak, server):
    # this server has no FAM_SERVERS: every FAM command is a clear error
    a = ak.arange(10)
    base = {"region": "r", "name": "x", "dtype": "int64", "size": 10, "array": a.name,
            "index": a.name, "values": a.name, "start": 0, "stop": 5, "step": 1}
    for cmd in FAM_COMMANDS:
        with pytest.raises(ak.KodiakError, match="FAM_SERVERS"):
            ak.client.generic_msg(cmd, dict(base))
    assert ak.arange(3).tolist() == [0, 1, 2]
    assert a.tolist() == list(range(10))

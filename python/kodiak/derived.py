# SPDX-License-Identifier: Apache-2.0
"""derived.py — derived datasets of the FAM dataset store (issue 14): filter
index datasets, columns gathered through them, derived (computed) columns,
kept current as their base grows.

    big = ak.filter(trip, "fare", "gt", 10000)      # dataset "Trip.fare_gt_10000"
    big["pickuptime"]                                # gathered through the index
    big.derive("duration", big["dropofftime"] - big["pickuptime"])
    big["duration"]

Everything is computed by kodiakd (src/kodiakd/kd_cmd_dsderive.c) batch by
batch, each rank on the batches it owns, and stored in FAM as ordinary
datasets of the catalog (docs/DATASET.md, "Derived datasets"):

- a filter is an index dataset "<base>.<column>_<op>_<value>" holding, per
  base batch, the int64 row numbers of that batch that pass;
- a column of an index dataset that is not its own is the base's column
  gathered through the index, kept in FAM the first time it is read as
  the dataset "<dataset>[<column>]" (kind column);
- ds.derive(name, expr) makes the dataset "<dataset>[<name>]" (kind column).

Expressions. `ds["fare"]` is still the whole column as a pdarray, as for a
base dataset; the pdarray it returns also remembers that it is column
"fare" of ds, and arithmetic on such pdarrays (and scalars) gives pdarrays
that remember the expression too, so `ds["b"] - ds["a"]` can be passed to
derive. To build an expression without reading any column, use
`ds.col("fare")`: a lazy ColumnExpr with the same operators. Both carry
NumPy's dtypes, found as for pdarrays (ops.py: NumPy on one-element
arrays), and the server computes with the pdarray kernels, so a derived
column equals the same expression on pdarrays."""
from __future__ import annotations

import builtins
import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from . import client
from .dtypes import DTYPE_NAMES, dtype_name, int64, resolve_dtype
from .ops import BINARY, COMPARISONS, _numpy_says, as_scalar, pdarray_dtype, wire_scalar
from .pdarrayclass import pdarray

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["ColumnExpr"]

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "between", "isin")
_MAX_NAME = 200  # DS_NAME_MAX


def _msg(cmd, args):
    return client.generic_msg(cmd, args)


# ---- expressions ---------------------------------------------------------------------


def _np_dtype(store_dtype: str, column: str) -> np.dtype:
    """The pdarray dtype a store column computes as (datetimes: int64 seconds)."""
    if store_dtype == "datetime64[s]":
        return int64
    if store_dtype == "text":
        raise TypeError(f"column '{column}' is text: expressions take numbers, bool and "
                        f"datetime columns")
    return DTYPE_NAMES[store_dtype]


class ColumnExpr:
    """An expression over the columns of one dataset, to pass to
    Dataset.derive: column references (ds.col(name)) and scalars with
    + - * / // % ** < <= > >= == != & | ^ ~, abs(), .astype() and
    ak.where. Nothing is computed until it is derived.

    Attributes
    ----------
    dataset : Dataset
        The dataset whose columns it uses.
    dtype : numpy.dtype
        The result's dtype, as NumPy gives it for the columns' dtypes.
    """

    __array_ufunc__ = None
    __array_priority__ = 1001

    def __init__(self, dataset: "Dataset", node: dict, dtype) -> None:
        self.dataset = dataset
        self.node = node
        self.dtype = np.dtype(dtype)

    def __repr__(self) -> str:
        return f"ColumnExpr({_text(self.node)}, dtype={self.dtype}) on '{self.dataset.name}'"

    # what NumPy works out dtypes with (ops.proto for a column)
    def _proto(self):
        return np.ones(1, self.dtype)

    def astype(self, dtype) -> "ColumnExpr":
        dt = resolve_dtype(dtype)
        return ColumnExpr(self.dataset, {"astype": dtype_name(dt), "a": self.node}, dt)

    def __abs__(self):
        return ColumnExpr(self.dataset, {"unop": "abs", "a": self.node}, self.dtype)

    def __neg__(self):
        _numpy_says(lambda x: -x, self._proto())
        return ColumnExpr(self.dataset, {"unop": "neg", "a": self.node}, self.dtype)

    def __invert__(self):
        _numpy_says(lambda x: ~x, self._proto())
        return ColumnExpr(self.dataset, {"unop": "invert", "a": self.node}, self.dtype)

    __hash__ = None


def _expr_of(x, dataset=None):
    """x as (node, proto, dataset): a ColumnExpr, a pdarray read from a
    dataset (its lineage), or a scalar; None for anything else."""
    if isinstance(x, ColumnExpr):
        return x.node, x._proto(), x.dataset
    e = getattr(x, "_ds_expr", None)
    if isinstance(e, ColumnExpr):
        return e.node, e._proto(), e.dataset
    if isinstance(x, pdarray):
        return None
    s = as_scalar(x)
    if s is None:
        return None
    wire_scalar(s)  # OverflowError beyond uint64
    return {"scalar": wire_scalar(s)}, s, None


def _same_dataset(*ds):
    ds = [d for d in ds if d is not None]
    for d in ds[1:]:
        if (d.store.name, d.name) != (ds[0].store.name, ds[0].name):
            raise ValueError(f"an expression uses columns of '{ds[0].name}' and of "
                             f"'{d.name}': derive from one dataset's columns")
    return ds[0] if ds else None


def _binop_expr(x, y, op):
    ex, ey = _expr_of(x), _expr_of(y)
    if ex is None or ey is None:
        return NotImplemented
    ds = _same_dataset(ex[2], ey[2])
    if ds is None:
        return NotImplemented
    rt = pdarray_dtype(_numpy_says(BINARY[op], ex[1], ey[1]).dtype)
    ct = pdarray_dtype(np.result_type(ex[1], ey[1])) if op in COMPARISONS else rt
    node = {"binop": op, "ct": dtype_name(ct), "rt": dtype_name(rt), "a": ex[0], "b": ey[0]}
    return ColumnExpr(ds, node, rt)


def _ops(op):
    def fwd(self, other):
        return _binop_expr(self, other, op)

    def rev(self, other):
        return _binop_expr(other, self, op)
    return fwd, rev


for _op, _dunder in (("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "truediv"),
                     ("//", "floordiv"), ("%", "mod"), ("**", "pow"), ("&", "and"),
                     ("|", "or"), ("^", "xor"), ("<<", "lshift"), (">>", "rshift")):
    _f, _r = _ops(_op)
    setattr(ColumnExpr, f"__{_dunder}__", _f)
    setattr(ColumnExpr, f"__r{_dunder}__", _r)
for _op, _dunder in (("<", "lt"), ("<=", "le"), (">", "gt"), (">=", "ge"), ("==", "eq"),
                     ("!=", "ne")):
    setattr(ColumnExpr, f"__{_dunder}__", _ops(_op)[0])


def where_expr(condition, a, b):
    """ak.where over column expressions (ColumnExpr, or pdarrays read from
    a dataset) and scalars: the ColumnExpr, or None when no argument is a
    column expression or one is a plain pdarray."""
    es = [_expr_of(v) for v in (condition, a, b)]
    if builtins.any(e is None for e in es) or builtins.all(e[2] is None for e in es):
        return None
    ds = _same_dataset(*(e[2] for e in es))
    rt = pdarray_dtype(np.where(np.ones(1, np.bool_), es[1][1], es[2][1]).dtype)
    node = {"where": es[0][0], "a": es[1][0], "b": es[2][0], "rt": dtype_name(rt)}
    return ColumnExpr(ds, node, rt)


def where_hook(condition, a, b):
    """numeric.where's first step: ak.where on a lazy ColumnExpr is one too;
    None lets where compute (and then tag_where tags a pdarray result)."""
    if builtins.any(isinstance(v, ColumnExpr) for v in (condition, a, b)):
        e = where_expr(condition, a, b)
        if e is None:
            raise TypeError("ak.where on a column expression: the other arguments must be "
                            "column expressions of the same dataset or scalars")
        return e
    return None


def tag_where(result, condition, a, b):
    """The pdarray ak.where computed, with its lineage when its arguments
    were dataset columns (or scalars)."""
    try:
        e = where_expr(condition, a, b)
    except (TypeError, ValueError):
        e = None
    return _tag(result, e)


def _text(node) -> str:
    """An expression as Python-like text (for reprs and lineage)."""
    if "col" in node:
        return f"[{node['col']!r}]"
    if "scalar" in node:
        return node["scalar"]["value"]
    if "binop" in node:
        return f"({_text(node['a'])} {node['binop']} {_text(node['b'])})"
    if "unop" in node:
        return {"neg": "-", "invert": "~", "abs": "abs"}[node["unop"]] + f"({_text(node['a'])})"
    if "astype" in node:
        return f"{_text(node['a'])}.astype({node['astype']})"
    if "where" in node:
        return f"where({_text(node['where'])}, {_text(node['a'])}, {_text(node['b'])})"
    return "?"


class DatasetColumn(pdarray):
    """A column read from a dataset (ds["fare"]): a pdarray like any other,
    that also remembers its lineage (ColumnExpr), as do the results of
    arithmetic between such columns and scalars, so they can be derived."""

    _ds_expr: ColumnExpr


def _tag(p, expr):
    """Make pdarray p a DatasetColumn carrying expr (p keeps its data)."""
    if isinstance(p, pdarray) and isinstance(expr, ColumnExpr):
        p.__class__ = DatasetColumn
        p._ds_expr = expr
    return p


def _tagged(name, op, reverse=False):
    base = getattr(pdarray, name)

    def method(self, *args):
        r = base(self, *args)
        if r is NotImplemented:
            return r
        if op is None:  # unary
            e = {"__neg__": lambda x: -x, "__invert__": lambda x: ~x,
                 "__abs__": abs}[name](self._ds_expr)
        else:
            other = args[0]
            try:
                e = _binop_expr(other, self._ds_expr, op) if reverse else \
                    _binop_expr(self._ds_expr, other, op)
            except (TypeError, ValueError):
                e = None  # a plain pdarray result: no lineage
        return _tag(r, e if isinstance(e, ColumnExpr) else None)
    method.__name__ = name
    return method


for _op, _dunder in (("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "truediv"),
                     ("//", "floordiv"), ("%", "mod"), ("**", "pow"), ("&", "and"),
                     ("|", "or"), ("^", "xor"), ("<<", "lshift"), (">>", "rshift")):
    setattr(DatasetColumn, f"__{_dunder}__", _tagged(f"__{_dunder}__", _op))
    setattr(DatasetColumn, f"__r{_dunder}__", _tagged(f"__r{_dunder}__", _op, True))
for _op, _dunder in (("<", "lt"), ("<=", "le"), (">", "gt"), (">=", "ge"), ("==", "eq"),
                     ("!=", "ne")):
    setattr(DatasetColumn, f"__{_dunder}__", _tagged(f"__{_dunder}__", _op))
for _dunder in ("__neg__", "__invert__", "__abs__"):
    setattr(DatasetColumn, _dunder, _tagged(_dunder, None))
DatasetColumn.__hash__ = None


def _astype_tagged(self, dtype):
    return _tag(pdarray.astype(self, dtype), self._ds_expr.astype(dtype))


DatasetColumn.astype = _astype_tagged


def as_expr(x, dataset: "Dataset") -> ColumnExpr:
    """What Dataset.derive accepts: a ColumnExpr or a pdarray with lineage."""
    e = x if isinstance(x, ColumnExpr) else getattr(x, "_ds_expr", None)
    if not isinstance(e, ColumnExpr):
        raise TypeError("derive needs an expression of the dataset's columns: ds['a'] - "
                        "ds['b'], ds.col('a') * 2, ak.where(ds.col('a') > 0, ...); a pdarray "
                        "that was not computed from dataset columns has no recipe to store")
    if (e.dataset.store.name, e.dataset.name) != (dataset.store.name, dataset.name):
        raise ValueError(f"the expression uses columns of '{e.dataset.name}', not of "
                         f"'{dataset.name}'")
    if "col" not in json.dumps(e.node):
        raise ValueError("a derived column's expression must use at least one column")
    return e


# ---- filters --------------------------------------------------------------------------


def _seconds(v) -> int:
    """A date-time value as int64 seconds since the epoch (UTC)."""
    import pandas as pd
    ts = pd.Timestamp(v)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(np.datetime64(ts, "s").astype(np.int64))


def spell(v, dtype: str) -> str:
    """How a filter value is spelled in a derived dataset's name: ints in
    decimal ("10000", "-5"), floats as Python's repr ("10.0", "2.5e-07",
    "nan", "-inf": always with '.', 'e', or a word, so never like an int),
    bools "True"/"False", text as Python's repr ("'Manhattan'"), date-times
    as ISO 8601 seconds ("2017-01-01T00:00:00")."""
    if dtype == "text":
        return repr(str(v))
    if dtype == "datetime64[s]":
        return str(np.datetime64(_seconds(v), "s"))
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return repr(float(v))


def _value_args(v, dtype: str, column: str):
    """The server's description of comparing column (of store dtype) with v."""
    if dtype == "text":
        if not isinstance(v, str):
            raise TypeError(f"column '{column}' is text: compare it with a str, not "
                            f"{type(v).__name__}")
        return {"text": v}
    if dtype == "datetime64[s]":
        try:
            v = _seconds(v)
        except (TypeError, ValueError) as e:
            raise TypeError(f"column '{column}' holds date-times: {v!r} is not one "
                            f"({e})") from None
    s = as_scalar(v)
    if s is None or isinstance(v, str):
        raise TypeError(f"column '{column}' is {dtype}: compare it with a number, not "
                        f"{type(v).__name__}")
    proto = np.ones(1, _np_dtype(dtype, column))
    ct = pdarray_dtype(np.result_type(proto, s))
    return {"ct": dtype_name(ct), "value": wire_scalar(s)}


def _short(name: str) -> str:
    """A name of at most 200 bytes: longer ones keep their start and end
    with a hash of the whole (so different long names stay different)."""
    b = name.encode()
    if len(b) <= _MAX_NAME:
        return name
    h = hashlib.sha256(b).hexdigest()[:16]
    return b[:_MAX_NAME - 18].decode(errors="ignore") + "~" + h


def filter(ds: "Dataset", column: str, op: str, value: Any = None, value2: Any = None,
           ) -> "Dataset":  # noqa: A001 — the issue's name
    """ak.filter (dataset.filter documents it)."""
    from .dataset import Dataset
    if not isinstance(ds, Dataset):
        raise TypeError(f"ak.filter needs a Dataset, not {type(ds).__name__}")
    if op not in OPS:
        raise ValueError(f"unknown filter op {op!r}: one of {', '.join(OPS)}")
    cat = ds._catalog()
    dtypes = ds._columns(cat)
    if column not in dtypes:
        raise KeyError(f"dataset '{ds.name}' has no column '{column}' (it has "
                       f"{', '.join(dtypes)})")
    dt = dtypes[column]
    f = {"column": column, "op": op}
    if op == "between":
        if value2 is None and isinstance(value, (tuple, list)) and len(value) == 2:
            value, value2 = value
        if value2 is None:
            raise TypeError("between needs two values: filter(ds, col, 'between', lo, hi)")
        lo, hi = _value_args(value, dt, column), _value_args(value2, dt, column)
        if dt == "text":
            f.update(lo=lo["text"], hi=hi["text"])
        else:
            ct = pdarray_dtype(np.result_type(DTYPE_NAMES[lo["ct"]], DTYPE_NAMES[hi["ct"]]))
            f.update(ct=dtype_name(ct), lo=lo["value"], hi=hi["value"])
        spelled = f"{spell(value, dt)}_{spell(value2, dt)}"
    elif op == "isin":
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError("isin needs a list of values")
        vals = list(value)
        args = [_value_args(v, dt, column) for v in vals]
        if dt == "text":
            f["texts"] = [a["text"] for a in args]
        else:
            f["values"] = args
        spelled = "[" + ",".join(spell(v, dt) for v in vals) + "]"
    else:
        if value2 is not None:
            raise TypeError(f"{op} takes one value")
        f.update(_value_args(value, dt, column))
        spelled = spell(value, dt)
    name = _short(f"{ds.name}.{column}_{op}_{spelled}")
    return _derive_dataset(ds, name, "index", {"filter": f}, "index", "int64", cat)


def combine(a: "Dataset", b: "Dataset", how: str) -> "Dataset":
    """f1 & f2 / f1 | f2: rows in both / either of two index datasets of
    one base, as a new index dataset "<base>.(<f1>)&(<f2>)"."""
    from .dataset import Dataset
    if not isinstance(b, Dataset):
        return NotImplemented
    ia, ib = a._info(), b._info()
    if ia["kind"] != "index" or ib["kind"] != "index":
        raise TypeError("& and | combine filters (index datasets)")
    if ia["base"] != ib["base"] or a.store.name != b.store.name:
        raise ValueError(f"& and | combine filters of one base: '{a.name}' filters "
                         f"'{ia['base']}', '{b.name}' filters '{ib['base']}'")
    base = ia["base"]

    def part(n):
        return n[len(base) + 1:] if n.startswith(base + ".") else n
    name = _short(f"{base}.({part(a.name)}){how}({part(b.name)})")
    key = "and" if how == "&" else "or"
    return _derive_dataset(Dataset(a.store, base), name, "index", {key: [a.name, b.name]},
                           "index", "int64")


def _derive_dataset(base: "Dataset", name: str, kind: str, expr: dict, column: str,
                    dtype: str, cat: dict = None) -> "Dataset":
    """Make (or reuse) derived dataset `name`. `cat`: a catalog just read
    by Dataset._catalog (everything derived current then): a dataset of
    that name made alike in it needs no ds_derive (its batches are
    current, and the server would only find so)."""
    from .dataset import Dataset
    text = json.dumps(expr, sort_keys=True)
    d = (cat or {}).get(name)
    if not (d and d["kind"] == kind and d["base"] == base.name and d["expr"] == text and
            [(c["name"], c["dtype"]) for c in d["columns"]] == [(column, dtype)]):
        _msg("ds_derive", {"store": base.store.name, "name": name, "kind": kind,
                           "base": base.name, "expr": text, "column": column, "dtype": dtype})
    return Dataset(base.store, name)


def derive(ds: "Dataset", name: str, expression) -> None:
    """Dataset.derive (see there)."""
    if not isinstance(name, str) or not name or "[" in name or "]" in name:
        raise ValueError(f"a derived column's name is a non-empty str without '[' or ']', "
                         f"not {name!r}")
    e = as_expr(expression, ds)
    if name in ds.dtypes:
        raise ValueError(f"dataset '{ds.name}' already has a column '{name}'")
    store_dtype = dtype_name(e.dtype)
    _derive_dataset(ds, f"{ds.name}[{name}]", "column", {"derive": e.node}, name,
                    store_dtype)


def gather_dataset(ds: "Dataset", column: str, dtype: str) -> str:
    """The dataset holding `column` of index dataset ds gathered through
    its index (made and filled the first time)."""
    name = f"{ds.name}[{column}]"
    _derive_dataset(ds, name, "column", {"gather": column}, column, dtype)
    return name


def lineage(info: dict) -> str:
    """A derived dataset's lineage, in words."""
    e = json.loads(info["expr"])
    if "filter" in e:
        f = e["filter"]
        if f["op"] == "between":
            v = f"{f['lo']}..{f['hi']}"
        elif f["op"] == "isin":
            v = f.get("texts") or [x["value"]["value"] for x in f["values"]]
        else:
            v = f.get("text", f.get("value", {}).get("value") if "value" in f else None)
        return f"filter of '{info['base']}': {f['column']} {f['op']} {v}"
    if "and" in e or "or" in e:
        k = "and" if "and" in e else "or"
        return f"'{e[k][0]}' {'&' if k == 'and' else '|'} '{e[k][1]}' on '{info['base']}'"
    if "gather" in e:
        return f"column '{e['gather']}' of '{info['base']}' gathered through its index"
    if "derive" in e:
        return f"derived from '{info['base']}': {_text(e['derive'])}"
    return info["expr"]

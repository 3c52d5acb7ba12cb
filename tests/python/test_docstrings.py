# SPDX-License-Identifier: Apache-2.0
"""test_docstrings.py — the public functions and methods of the client have
type hints and NumPy-style docstrings (Parameters, Returns, Examples), and
every example in them is true: the docstrings are run with doctest against
a real kodiakd (and, for famarray.py, one attached to a famd)."""
import doctest
import inspect
import types
import typing

import numpy as np
import numpy.typing as npt
import pytest

import kodiak
from kodiak import (categorical, creation, dataset, ds_agg, dtypes, famarray, fpe, groupby,
                    hdfio, indexing, io, numeric, ops, paths, search, session, sorting, stats,
                    testing, ufuncs, wire)
from kodiak import random as ak_random
from fam_fixtures import FamCluster, connect

MODULES = [creation, numeric, sorting, groupby, famarray, dtypes, ops, indexing, wire, paths,
           io, categorical, dataset, ufuncs, fpe, testing, hdfio, search, stats, ak_random]
# the modules whose examples need no FAM
PLAIN_MODULES = [creation, numeric, sorting, groupby, dtypes, ops, indexing, wire, paths, io,
                 categorical, ufuncs, fpe, testing, hdfio, search, stats, ak_random]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
PUBLIC_DTYPE_HELPERS = [dtypes.resolve_dtype, dtypes.dtype_name, dtypes.scalar_dtype,
                        dtypes.is_scalar]
# the wire format and the paths both client.py and launcher.py use, and
# what joins them (session.py's examples start clusters: they are skipped)
PUBLIC_LAYOUT_HELPERS = [wire.set_credentials, wire.request_header, wire.parse_header,
                         wire.error_from_reply, wire.split_frames, paths.state_dir,
                         paths.default_connect_file, paths.state_file, paths.find_binary,
                         session.start, session.stop, session.shutdown]


def _methods(cls):
    """(qualified name, function) of the public methods cls defines itself,
    and of __getitem__ / __setitem__."""
    out = []
    for name, obj in vars(cls).items():
        if name.startswith("_") and name not in ("__getitem__", "__setitem__"):
            continue
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if inspect.isfunction(obj):
            out.append((f"{cls.__name__}.{name}", obj))
    return out


def _public():
    """Every (name, callable) this test holds to the docstring rules."""
    items = []
    for mod in (creation, numeric, sorting, groupby, famarray, io, categorical, dataset, ufuncs,
                fpe, testing, hdfio, search, stats, ak_random):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj):
                items.append((f"{mod.__name__}.{name}", obj))
    items += [(f"kodiak.dtypes.{f.__name__}", f) for f in PUBLIC_DTYPE_HELPERS]
    items += [(f"{f.__module__}.{f.__name__}", f) for f in PUBLIC_LAYOUT_HELPERS]
    for cls in (ops._OpsMixin, indexing._IndexMixin, famarray.FamArray, famarray.FamRegion,
                groupby.GroupBy, categorical.Categorical, dataset.DatasetStore,
                dataset.Dataset, ds_agg.DatasetGroupBy, ds_agg.DatasetSeriesGroupBy,
                ak_random.Generator):
        items += _methods(cls)
    return items


PUBLIC = _public()

# The names the hints use that the modules import only for type checkers
# (`if TYPE_CHECKING:`, so that no import cycle is made). Key and
# GroupResult are aliases made of the others.
HINT_NAMES = {"pdarray": kodiak.pdarray, "DTypeLike": npt.DTypeLike,
              "ArrayLike": npt.ArrayLike, "EllipsisType": types.EllipsisType,
              "FamArray": famarray.FamArray, "Key": typing.Any, "GroupResult": tuple,
              "pandas": __import__("pandas")}


def test_the_list_of_public_names_is_not_empty():
    names = {n for n, _ in PUBLIC}
    # a few of each kind, so a broken finder cannot pass by finding nothing
    for n in ("kodiak.creation.array", "kodiak.numeric.sqrt", "kodiak.sorting.argsort",
              "_OpsMixin.sum", "_IndexMixin.__getitem__", "FamArray.add",
              "FamRegion.create", "GroupBy.median", "kodiak.groupby.GroupBy"):
        assert n in names, n
    assert len(names) > 100


@pytest.mark.parametrize("name,obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_public_callable_has_numpy_style_docstring_and_hints(name, obj):
    is_class = inspect.isclass(obj)
    doc = inspect.getdoc(obj) or ""
    fn = obj.__init__ if is_class else obj
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    assert doc.strip(), f"{name} has no docstring"
    assert doc.splitlines()[0].strip(), f"{name}: the docstring starts with an empty line"
    if params:
        assert "\nParameters\n----------\n" in doc, f"{name}: no Parameters section"
        for p in params:
            assert p.name in doc.split("Parameters\n----------\n", 1)[1], \
                f"{name}: parameter {p.name} is not described"
            assert p.annotation is not inspect.Parameter.empty, \
                f"{name}: parameter {p.name} has no type hint"
    returns_none = sig.return_annotation in (None, "None")
    if not is_class:
        assert sig.return_annotation is not inspect.Signature.empty, \
            f"{name}: no return type hint"
        if not returns_none:
            assert "\nReturns\n-------\n" in doc or "\nYields\n------\n" in doc, \
                f"{name}: no Returns section"
    assert "\nExamples\n--------\n" in doc and ">>> " in doc, f"{name}: no Examples section"
    # every hint names a real type (a misspelt one fails here)
    typing.get_type_hints(fn, localns=HINT_NAMES)


def _run_doctests(modules, ak_module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    ran = 0
    for mod in modules:
        for test in finder.find(mod, globs={"ak": ak_module, "np": np}):
            if test.examples:
                runner.run(test)
                ran += len(test.examples)
    return runner.summarize(verbose=False), ran


def test_docstring_examples_are_true(ak, capsys):
    (failed, attempted), ran = _run_doctests(PLAIN_MODULES, ak)
    out = capsys.readouterr().out
    assert ran > 100 and attempted == ran
    assert failed == 0, out


@pytest.fixture(scope="module")
def fam_ak():
    """kodiak connected to a 1-rank kodiakd attached to one famd."""
    cluster = FamCluster(1, 1)
    try:
        yield connect(kodiak, cluster.server)
    finally:
        kodiak.disconnect()
        cluster.stop()


def test_famarray_docstring_examples_are_true(fam_ak, capsys):
    (failed, attempted), ran = _run_doctests([famarray, dataset, ds_agg], fam_ak)
    out = capsys.readouterr().out
    assert ran > 60 and attempted == ran
    assert failed == 0, out

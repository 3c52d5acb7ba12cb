# SPDX-License-Identifier: Apache-2.0
"""test_taxi_notebook.py — the taxi example, both ways it runs: the notebook
examples/taxi.ipynb executed cell by cell in a real Jupyter kernel
(ipykernel on /usr/bin/python3, driven by nbclient), and the script
examples/taxi_demo.py it is made from, as `make demo` runs it. Each starts
its own local cluster (ak.start) and writes its results to the JSON file
KODIAK_TAXI_RESULTS names; they must be pandas' answers, computed here from
the same shipped CSV files. The notebook must also be exactly what
scripts/notebook.py makes from the script (one workflow, never two drifting
copies), show its plot, and leave no process behind."""
import gzip
import json
import math
import os
import subprocess
import sys

import nbclient  # Debian's python3-nbclient and python3-ipykernel (scripts/setup.sh)
import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from conftest import BUILD, REPO

EXAMPLES = os.path.join(REPO, "examples")
SCRIPT = os.path.join(EXAMPLES, "taxi_demo.py")
NOTEBOOK = os.path.join(EXAMPLES, "taxi.ipynb")
DATA = os.path.join(REPO, "data", "taxi")
PYTHON = "/usr/bin/python3"
MONTH = 10_000  # rows of each month in the sample, in month order
FARE = 50  # the notebook's filter: fare_amount > 50

sys.path.insert(0, os.path.join(REPO, "scripts"))
import notebook  # noqa: E402 — scripts/notebook.py


@pytest.fixture(scope="module")
def want():
    """What the notebook must find, by pandas from the shipped files."""
    with gzip.open(os.path.join(DATA, "yellow_tripdata_2017_sample.csv.gz")) as f:
        df = pd.read_csv(f, parse_dates=["pickup_datetime", "dropoff_datetime"],
                         float_precision="round_trip")
    with gzip.open(os.path.join(DATA, "taxi_zone_lookup.csv.gz")) as f:
        zones = pd.read_csv(f).set_index("LocationID")
    big = df[df.fare_amount > FARE]
    dur = (big.dropoff_datetime - big.pickup_datetime).dt.total_seconds() / 60
    g = dur.groupby(big.pickup_location_id).agg(["count", "mean"])
    g = g.join(zones[["Borough", "Zone"]])
    return {"trip_rows": len(df), "trip_batches": len(df) // MONTH,
            "big_name": f"Trip.fare_amount_gt_{FARE}",
            "big_before": int((df.fare_amount.iloc[:11 * MONTH] > FARE).sum()),
            "big_after": len(big), "zone_rows": len(zones), "groups": g}


def check(got, want):
    """A results file against pandas."""
    for k in ("trip_rows", "trip_batches", "big_name", "big_before", "big_after", "zone_rows"):
        assert got[k] == want[k], (k, got[k], want[k])
    assert want["big_before"] < want["big_after"]  # December added trips: an update happened
    g = want["groups"]
    table = got["table"]
    assert sorted(int(k) for k in table) == sorted(g.index.tolist())
    for zone, (count, mean, borough, name) in table.items():
        w = g.loc[int(zone)]
        assert count == w["count"], zone
        assert math.isclose(mean, w["mean"], rel_tol=1e-12), (zone, mean, w["mean"])
        for a, b in ((borough, w.Borough), (name, w.Zone)):  # joined names, NaN where none
            assert (a == b) or (pd.isna(a) and pd.isna(b)), (zone, a, b)
    # the table comes sorted longest mean first, as the plot shows it
    means = [v[1] for v in table.values()]
    assert means == sorted(means, reverse=True)
    # after December every derived dataset covers 12 base batches, and its
    # latest update computed exactly the one new batch
    up = got["updates"]
    for name in (want["big_name"], want["big_name"] + "[duration]"):
        assert name in up, (name, sorted(up))
    for name, st in up.items():
        assert st["base_batches"] == want["trip_batches"] and st["last"] == 1, (name, st)
        assert st["batches"] == want["trip_batches"], (name, st)  # 11 first, then 1


def run_env(tmp_path, results):
    """The environment of a run: this build, this checkout's client, the
    results file, and a TMPDIR of the test's own (where the example makes
    its folder and state directory, so a leftover cluster can be found)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return {**os.environ, "KODIAK_BUILD": BUILD, "PYTHONPATH": os.path.join(REPO, "python"),
            "KODIAK_TAXI_RESULTS": str(results), "TMPDIR": str(tmp),
            "KODIAK_PROGRESS": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def leftovers(env):
    """Stop any cluster a failed run left in its TMPDIR; the state folders found."""
    found = []
    for d in os.listdir(env["TMPDIR"]):
        home = os.path.join(env["TMPDIR"], d, "home")
        if d.startswith("kodiak-taxi-") and os.path.isdir(home):
            found.append(home)
            subprocess.run([PYTHON, "-m", "kodiak", "down"], env={**env, "KODIAK_HOME": home},
                           capture_output=True, timeout=60)
    return found


def test_the_notebook_is_made_from_the_script():
    with open(SCRIPT) as f, open(NOTEBOOK) as g:
        assert g.read() == notebook.render(f.read()), (
            "examples/taxi.ipynb is stale: /usr/bin/python3 scripts/notebook.py "
            "examples/taxi_demo.py examples/taxi.ipynb")
    kinds = [k for k, _ in notebook.cells(open(SCRIPT).read())]
    assert kinds[0] == "markdown" and kinds.count("code") >= 8


def test_the_notebook_runs_in_a_jupyter_kernel_and_agrees_with_pandas(tmp_path, want,
                                                                     monkeypatch):
    results = tmp_path / "results.json"
    env = run_env(tmp_path, results)
    # Jupyter's and IPython's files (connection file, history) in the test's
    # folder, not in a home directory that may be missing or shared
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    # a kernel spec of our own: whatever kernels this machine lists, the
    # kernel is ipykernel on /usr/bin/python3 (which has numpy, pandas, zmq)
    spec_dir = tmp_path / "kernels" / "kodiak-python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (/usr/bin/python3)", "language": "python",
            "env": {k: env[k] for k in ("KODIAK_BUILD", "PYTHONPATH", "KODIAK_TAXI_RESULTS",
                                        "TMPDIR", "KODIAK_PROGRESS", "IPYTHONDIR",
                                        "PYDEVD_DISABLE_FILE_VALIDATION")}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(kernel_name="kodiak-python3",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, km=km, timeout=300, startup_timeout=120,
                                     resources={"metadata": {"path": EXAMPLES}})
    try:
        client.execute()  # raises CellExecutionError, with the cell and traceback, on an error
    finally:
        left = leftovers(env)
    got = json.loads(results.read_text())
    assert got["notebook"] and os.path.realpath(got["python"]) == os.path.realpath(PYTHON)
    check(got, want)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the plot is shown once, inline"
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) >= 3, "the tables are shown as pandas' HTML"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{want['big_before']:,} -> {want['big_after']:,} rows" in text
    assert "stopped kodiakd" in text and not left, "the notebook stopped its cluster"


def test_the_script_prints_the_tables_and_agrees_with_pandas(tmp_path, want):
    results = tmp_path / "results.json"
    png = tmp_path / "zones.png"
    env = run_env(tmp_path, results)
    try:
        r = subprocess.run([PYTHON, SCRIPT, str(png)], env=env, capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
    finally:
        left = leftovers(env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads(results.read_text())
    assert not got["notebook"]
    check(got, want)
    out = r.stdout
    assert f"{want['big_before']:,} -> {want['big_after']:,} rows" in out
    g = want["groups"]
    top = g[g["count"] >= 10].sort_values(["mean", "count"], ascending=False)
    assert top.Zone.iloc[0] in out and "mean_min" in out  # the tables, printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "stopped kodiakd" in out and not left
    assert not os.listdir(env["TMPDIR"]), "the script removed its files"

#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# %% [markdown]
# # A year of NYC taxi trips in fabric-attached memory
#
# The workflow Kodiak is for, on the taxi sample shipped in `data/taxi/`
# (120,000 real trips of 2017, 10,000 a month): months are ingested as batches
# into a dataset store kept in FAM, a filter keeps the expensive trips, their
# pick-up and drop-off times are gathered, a trip duration is derived, and
# the durations are grouped by pick-up zone, with the zones' names from the
# TLC's zone table. Then December arrives, and everything derived catches up
# by processing only the new batch.
#
# This notebook is generated from `examples/taxi_demo.py` (the same cells, run
# as a script by `make demo`): edit the script, then run
# `/usr/bin/python3 scripts/notebook.py examples/taxi_demo.py examples/taxi.ipynb`.

# %%
import atexit
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

try:
    HERE = os.path.dirname(os.path.abspath(__file__))  # run as a script
except NameError:
    HERE = os.getcwd()  # in Jupyter: the notebook's folder
REPO = os.path.dirname(HERE)
if os.path.isdir(os.path.join(REPO, "python", "kodiak")):
    sys.path.insert(0, os.path.join(REPO, "python"))  # this checkout's client

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")  # a script draws without a display
    display = print  # a script prints what the notebook displays
import matplotlib.pyplot as plt
import pandas as pd

import kodiak as ak

pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 12)

# %% [markdown]
# ## The data: one CSV file per month
#
# The sample is the 12 monthly samples one after the other (10,000 rows each,
# in month order), so month *m* is rows `10,000·(m-1)` to `10,000·m - 1`. We
# write each month to its own file, as the TLC publishes them, plus the zone
# table, in a temporary folder that the compute server reads directly.

# %%
DATA = os.path.join(REPO, "data", "taxi")
WORK = tempfile.mkdtemp(prefix="kodiak-taxi-")
os.chmod(WORK, 0o755)  # kodiakd reads these files itself

with gzip.open(os.path.join(DATA, "yellow_tripdata_2017_sample.csv.gz"), "rt",
               newline="") as f:
    header, *rows = f.readlines()
months = []
for m in range(12):
    path = os.path.join(WORK, f"yellow_tripdata_2017-{m + 1:02d}.csv")
    with open(path, "w", newline="") as g:
        g.write(header)
        g.writelines(rows[m * 10_000:(m + 1) * 10_000])
    months.append(path)
zone_csv = os.path.join(WORK, "taxi_zone_lookup.csv")
with gzip.open(os.path.join(DATA, "taxi_zone_lookup.csv.gz"), "rb") as f, \
        open(zone_csv, "wb") as g:
    g.write(f.read())
print(f"{len(months)} monthly files of {len(rows) // 12:,} trips, {len(header.split(','))} "
      f"columns, in {WORK}")

# %% [markdown]
# ## A local cluster
#
# `ak.start` starts two memory servers (famd, 256 MiB of FAM each) and a
# compute server (kodiakd) of two MPI ranks, and connects to it. It runs in a
# state folder of its own, so a cluster you started with `kodiak up` is left
# alone; it is stopped at the end (or when this process exits).

# %%
os.environ["KODIAK_HOME"] = os.path.join(WORK, "home")
os.environ.pop("KODIAK_CONNECT_FILE", None)


def cleanup():
    """Stop the cluster and remove the files (safe to call twice)."""
    done = ak.stop()
    shutil.rmtree(WORK, ignore_errors=True)
    return done


atexit.register(cleanup)
t0 = time.time()
info = ak.start(fam_servers=2, ranks=2, pool_size="256M")
print(f"kodiakd with {info['ranks']} ranks, 2 famd: ready in {time.time() - t0:.1f} s")

# %% [markdown]
# ## Ingest January to November as batches
#
# A dataset store keeps its tables in FAM as ordered batches; each file becomes
# one batch here (a batch holds up to a million rows). The compute ranks parse
# the files in parallel. `parse_dates` turns the two time columns into
# date-times (seconds since 1970 in FAM). The zone table goes into the same
# store: it is tiny, but every server attached to the store sees it.

# %%
store = ak.DatasetStore("taxi")
DATES = ["pickup_datetime", "dropoff_datetime"]
trip = store.ingest("Trip", months[:11], parse_dates=DATES)
zones = store.ingest("Zone", zone_csv)
print(f"Trip: {len(trip):,} rows in {trip.num_batches} batches; "
      f"Zone: {len(zones)} rows; store: {store.list()}")
display(trip)

# %% [markdown]
# ## Filter: the trips over $50
#
# `ak.filter` makes a *derived index dataset*, kept in the store beside its
# base: for each batch of `Trip`, the row numbers that pass. It has a name
# that says what it is, and the same call again finds it instead of computing
# it again.

# %%
big = ak.filter(trip, "fare_amount", "gt", 50)
print(f"{big.name}: {len(big):,} of {len(trip):,} trips ({big.lineage})")

# %% [markdown]
# ## Gather the times, derive the duration
#
# A column of `big` is the base's column gathered through the index, computed
# on the server batch by batch the first time it is asked for and kept in FAM
# after; reading it gives a distributed array (pdarray) of the compute server.
# `derive` adds a column computed from others, also batch by batch and kept
# in FAM: here the seconds between pick-up and drop-off. It is then a column
# of `big` like the others.

# %%
pickup, dropoff = big["pickup_datetime"], big["dropoff_datetime"]
big.derive("duration", dropoff - pickup)
duration = big["duration"]
print(f"{pickup.size:,} pick-up and drop-off times gathered; duration (int64 seconds): "
      f"mean {duration.mean() / 60:.1f} min, longest {duration.max() / 3600:.1f} h")
print("columns of big:", ", ".join(big.columns))

# %% [markdown]
# ## Group by pick-up zone
#
# The aggregation also runs on the server, batch by batch (each rank on its
# own batches), and gives what pandas' `groupby` gives. The zone names come
# from the zone table, joined in pandas: it has one row per zone.

# %%
zone_names = zones.to_pandas().set_index("LocationID")[["Borough", "Zone"]]


def by_zone():
    """Trips over $50 per pick-up zone: count and mean duration (minutes),
    with the zone's borough and name, longest first."""
    g = big.groupby("pickup_location_id")["duration"].agg(["count", "mean"])
    g["mean"] = g["mean"] / 60
    t = g.rename(columns={"count": "trips", "mean": "mean_min"}).join(zone_names)
    return t.sort_values(["mean_min", "trips"], ascending=False)


MIN_TRIPS = 10  # a mean of fewer trips says little
table = by_zone()
print(f"{len(table)} pick-up zones; the longest trips over $50, in zones with at least "
      f"{MIN_TRIPS} of them:")
display(table[table.trips >= MIN_TRIPS].head(10).round(1))

# %% [markdown]
# ## December arrives
#
# Appending a batch to `Trip` does not touch what was derived from it. At the
# next access, every derived dataset (the filter, the gathered columns, the
# duration) is brought up to date by processing only the batches it lacks,
# here the one new batch. `stats()` shows it: `base_batches` is how many base
# batches a dataset covers, `last` how many batches its latest update
# computed. `store.list(all=True)` also shows the store's internal datasets,
# one per gathered or derived column.

# %%
before = len(big)
store.ingest("Trip", months[11], parse_dates=DATES)
after = len(big)
print(f"Trip: {len(trip):,} rows in {trip.num_batches} batches; {big.name}: "
      f"{before:,} -> {after:,} rows")
table = by_zone()
updates = pd.DataFrame({name: store[name].stats() for name in store.list(all=True)
                        if store[name].kind != "base"}).T
display(updates)
display(table[table.trips >= MIN_TRIPS].head(10).round(1))

# %% [markdown]
# ## The zones with the longest expensive trips

# %%
top = table[table.trips >= MIN_TRIPS].head(15).iloc[::-1]
fig, ax = plt.subplots(figsize=(9, 5))
ax.barh([f"{z} ({b})" for z, b in zip(top.Zone, top.Borough)], top.mean_min)
ax.set_xlabel("mean duration of trips over $50 (minutes)")
ax.set_title(f"Trips over $50 by pick-up zone (zones with {MIN_TRIPS}+ of them)")
fig.tight_layout()
if IN_NOTEBOOK:
    plt.show()
elif len(sys.argv) > 1:
    fig.savefig(sys.argv[1])
    print(f"plot saved to {sys.argv[1]}")
else:
    print("(taxi_demo.py FILE.png saves the plot)")
plt.close(fig)

# %% [markdown]
# ## Results for the test, and stop
#
# When `KODIAK_TAXI_RESULTS` names a file, the key results are written there
# as JSON: `tests/python/test_taxi_notebook.py` runs this notebook and the
# script and compares them with pandas. Then the cluster is stopped.

# %%
out = os.environ.get("KODIAK_TAXI_RESULTS")
if out:
    with open(out, "w") as f:
        json.dump({"python": sys.executable, "notebook": IN_NOTEBOOK,
                   "trip_rows": len(trip), "trip_batches": trip.num_batches,
                   "big_name": big.name, "big_before": before, "big_after": after,
                   "zone_rows": len(zones),
                   "table": {str(k): [int(r.trips), float(r.mean_min), r.Borough, r.Zone]
                             for k, r in table.iterrows()},
                   "updates": {k: {c: int(v) for c, v in r.items()}
                               for k, r in updates.iterrows()}}, f)
for line in cleanup():
    print(line)

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# setup.sh — install the Debian packages Kodiak needs to build, test and run.
#
# Idempotent: packages already installed are skipped, and apt is not touched
# at all when nothing is missing. Python code runs on /usr/bin/python3 with
# Debian's packages (no PyPI on these machines).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libfabric-dev libfabric-bin            # fabric transport (shm, tcp)
  libopenmpi-dev openmpi-bin             # kodiakd's ranks
  libzmq3-dev                            # client <-> kodiakd
  libjson-c-dev                          # kodiakd's JSON request headers
  libhdf5-dev hdf5-tools python3-h5py    # HDF5 virtual file driver, famh5 checks (h5dump, h5diff), h5py
  zlib1g-dev                             # CRC32 of metadata and backups
  libcmocka-dev                          # C unit tests
  munge libmunge-dev                     # identity of TCP clients (famd --auth munge)
  python3 python3-numpy python3-pandas python3-zmq python3-pytest python3-tqdm
  python3-dask                           # bench/ds_bench.py: dask.dataframe.read_csv beside ingest
  python3-nbclient python3-ipykernel     # examples/taxi.ipynb run in a real Jupyter kernel by its test
  python3-matplotlib                     # the notebook's plot (inline; scripts draw with Agg)
  valgrind util-linux procps iproute2
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# check_build_types.sh SRC — the libraries and binaries build, warnings as
# errors (KODIAK_WERROR=ON), in the build types other than the one the
# tests run in: Release (-O3, where famd_bulk.c once failed with
# maybe-uninitialized) and MinSizeRel (-Os). Each in a fresh temporary
# build directory, removed afterwards. Registered as ctest build.types.
set -euo pipefail
src=$1
tmp=$(mktemp -d /tmp/kodiak-buildtypes.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for type in Release MinSizeRel; do
    dir="$tmp/$type"
    if ! cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=$type -DKODIAK_WERROR=ON \
            >"$tmp/$type.log" 2>&1 ||
       ! cmake --build "$dir" -j 2 --target fam famarray dataset famd kodiakd ds_mpi_example \
            >>"$tmp/$type.log" 2>&1; then
        echo "build type $type does not build with KODIAK_WERROR=ON:" >&2
        grep -E "error:|warning:" "$tmp/$type.log" | head -40 >&2 || tail -40 "$tmp/$type.log" >&2
        exit 1
    fi
    echo "build type $type: fam famarray dataset famd kodiakd ds_mpi_example built, no warnings"
done

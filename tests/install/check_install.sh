#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check_install.sh — `cmake --install` gives a usable libfam: headers, the
# shared library, famd and a pkg-config file named libfam. An OpenFAM-style
# C program is built from the installed tree alone (pkg-config) and run
# against the installed famd.
#   check_install.sh BUILD_DIR SOURCE_DIR PROVIDER
set -euo pipefail
# (no `producer | grep -q` below: grep -q leaves at the first match and the
# producer's next write dies of SIGPIPE, which pipefail makes a failure)
build=$1 src=$2 provider=${3:-shm}
tmp=$(mktemp -d)
famd_pid=""
cleanup() {
  [ -n "$famd_pid" ] && kill "$famd_pid" 2>/dev/null && wait "$famd_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in include/fam/fam.h include/fam/fam_c.h bin/famd; do
  [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
pc=$(find "$tmp/prefix" -name libfam.pc)
[ -n "$pc" ] || { echo "FAIL: libfam.pc not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
cc -std=c11 -Wall -Wextra -Werror "$src/examples/openfam_c_example.c" \
   $(pkg-config --cflags --libs libfam) -o "$tmp/example"

"$tmp/prefix/bin/famd" --port 0 --pool-size 16M --provider "$provider" >"$tmp/famd.out" 2>&1 &
famd_pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/famd.out" && break; sleep 0.05; done
addr=$(awk '/ready/ {print $3}' "$tmp/famd.out")
[ -n "$addr" ] || { echo "FAIL: installed famd did not start"; cat "$tmp/famd.out"; exit 1; }

out=$(LD_LIBRARY_PATH=$(pkg-config --variable=libdir libfam) \
      FAM_SERVERS=$addr FAM_PROVIDER=$provider "$tmp/example")
echo "$out"
grep -q "0 of 1024 values wrong, counter 10" <<<"$out" || { echo "FAIL: wrong output"; exit 1; }
grep -q "error 8 (FAM_ERR_NOTFOUND is 8)" <<<"$out" || { echo "FAIL: wrong error"; exit 1; }
# libfamarray: its header and pkg-config file build a program from the
# installed tree alone; it creates an array in FAM and reads it back
[ -e "$tmp/prefix/include/kodiak/famarray.h" ] || { echo "FAIL: famarray.h not installed"; exit 1; }
cat > "$tmp/fa.c" <<'EOF2'
#include <stdio.h>
#include <kodiak/famarray.h>
int main(void)
{
    fam_t *f;
    fam_region_t *r;
    fa_array_t *a;
    double v[3] = {1.5, 2.5, 3.5}, g[3];
    if (fam_initialize(NULL, &f) || fam_create_region(f, "far", 1 << 20, 0700, NULL, &r) ||
        fa_create(f, "far", "x", FA_FLOAT64, 3, 0600, &a) || fa_put(a, 0, 3, v) ||
        fa_get(a, 0, 3, g)) {
        printf("error: %s\n", fam_last_error());
        return 1;
    }
    printf("famarray %s %g\n", fa_dtype_name(fa_dtype(a)), g[0] + g[1] + g[2]);
    fa_close(a);
    fam_release_region(r);
    return fam_finalize(f);
}
EOF2
cc -std=c11 -Wall -Wextra -Werror "$tmp/fa.c" $(pkg-config --cflags --libs libfamarray) -o "$tmp/fa"
out=$(LD_LIBRARY_PATH=$(pkg-config --variable=libdir libfam) \
      FAM_SERVERS=$addr FAM_PROVIDER=$provider "$tmp/fa")
echo "$out"
[ "$out" = "famarray float64 7.5" ] || { echo "FAIL: wrong famarray output"; exit 1; }
# libdataset: the same, for a store with one dataset of one committed batch
[ -e "$tmp/prefix/include/kodiak/dataset.h" ] || { echo "FAIL: dataset.h not installed"; exit 1; }
cat >"$tmp/ds.c" <<'EOF2'
#include <kodiak/dataset.h>
#include <stdio.h>
int main(void)
{
    fam_t *f;
    ds_store_t *s;
    ds_batch_t *b;
    ds_info_t *in;
    ds_column_def_t c[] = {{"x", DS_FLOAT64}};
    double v[3] = {1.5, 2.5, 3.5}, g[3];
    if (fam_initialize(NULL, &f) || ds_open(f, "inst", DS_CREATE, 0600, &s) ||
        ds_create_dataset(s, "D", 1, c) || ds_batch_begin(s, "D", 3, &b) ||
        fa_put(ds_batch_array(b, 0), 0, 3, v) || ds_commit(s, "D", 1, &b) ||
        ds_info(s, "D", &in) || ds_read(s, in, 0, 0, 0, 3, g)) {
        fprintf(stderr, "%s\n", ds_last_error());
        return 1;
    }
    printf("dataset %s %zu %g\n", in->name, in->nbatches, g[0] + g[1] + g[2]);
    ds_free_info(in);
    ds_batch_close(b);
    ds_close(s);
    return fam_finalize(f) != 0;
}
EOF2
cc -std=c11 -Wall -Wextra -Werror "$tmp/ds.c" $(pkg-config --cflags --libs libdataset) -o "$tmp/ds"
out=$(LD_LIBRARY_PATH=$(pkg-config --variable=libdir libfam) \
      FAM_SERVERS=$addr FAM_PROVIDER=$provider "$tmp/ds")
echo "$out"
[ "$out" = "dataset D 1 7.5" ] || { echo "FAIL: wrong dataset output"; exit 1; }
# libh5fam: an HDF5 program built from the installed header and libh5fam.pc
# writes a file into FAM and reads it back; the installed famh5 lists it
[ -e "$tmp/prefix/include/kodiak/h5fam.h" ] || { echo "FAIL: h5fam.h not installed"; exit 1; }
[ -x "$tmp/prefix/bin/famh5" ] || { echo "FAIL: famh5 not installed"; exit 1; }
cat >"$tmp/h5.c" <<'EOF2'
#include <kodiak/h5fam.h>
#include <stdio.h>
int main(void)
{
    long long v[4] = {1, 2, 3, 4}, g[4] = {0};
    hsize_t n = 4;
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_fam(p, NULL, NULL);
    hid_t f = H5Fcreate("h5inst/a.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "v", H5T_NATIVE_LLONG, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0 || d < 0 || H5Dwrite(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        return 1;
    H5Dclose(d); H5Sclose(sp); H5Fclose(f);
    f = H5Fopen("h5inst/a.h5", H5F_ACC_RDONLY, p);
    d = H5Dopen2(f, "v", H5P_DEFAULT);
    if (d < 0 || H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, g) < 0) return 1;
    printf("h5fam %lld\n", g[0] + g[1] + g[2] + g[3]);
    H5Dclose(d); H5Fclose(f); H5Pclose(p);
    return 0;
}
EOF2
cc -std=c11 -Wall -Wextra -Werror "$tmp/h5.c" $(pkg-config --cflags --libs libh5fam) -o "$tmp/h5"
export LD_LIBRARY_PATH=$(pkg-config --variable=libdir libfam) FAM_SERVERS=$addr FAM_PROVIDER=$provider
"$tmp/prefix/bin/famh5" mkregion h5inst 8M
out=$("$tmp/h5")
echo "$out"
[ "$out" = "h5fam 10" ] || { echo "FAIL: wrong h5fam output"; exit 1; }
grep -q "h5inst/a.h5" <<<"$("$tmp/prefix/bin/famh5" ls h5inst)" || { echo "FAIL: famh5 ls"; exit 1; }
echo "install OK"

/* SPDX-License-Identifier: Apache-2.0 */
/* test_h5fam.c — the HDF5 driver "fam" against real famd: HDF5 programs
 * create, write, read and reopen files in FAM (contiguous and chunked
 * datasets, gzip, groups, attributes, hyperslabs); the driver's own rules
 * at its edges through HDF5's public H5FD calls (zeros past eof and in
 * holes, extent boundaries, truncate); one FAM get per small read; files
 * outlive a famd stop and a kill -9 (persistent pools); several processes
 * read one file at once; errors are messages on HDF5's error stack, never
 * crashes; a half-written file (writer killed, write failed) is never
 * read; another user gets what the region's bits allow.
 * Over one famd or two ($H5FAM_TEST_FAMDS, the region interleaved), once
 * per provider. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <grp.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "fixture.h"
#include "kodiak/h5fam.h"
#include "h5fam_internal.h"

static struct famd_proc srv[2];
static int nsrv;
static char servers[256];
static fam_t *f;           /* the test's own libfam connection */
static char pool[2][300];  /* persistent pools, so a restart keeps files */

#define POOL (512ull << 20)

static int setup(void **state)
{
    (void)state;
    const char *e = getenv("H5FAM_TEST_FAMDS");
    nsrv = e && atoi(e) == 2 ? 2 : 1;
    servers[0] = '\0';
    for (int i = 0; i < nsrv; i++) {
        snprintf(pool[i], sizeof pool[i], "%s/pool%d", test_tmpdir(), i);
        if (famd_start(&srv[i], POOL, pool[i])) return -1;
        if (i) strcat(servers, ",");
        strcat(servers, srv[i].addr);
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* tests read the stack themselves */
    return (f = client(servers)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    H5close();
    for (int i = 0; i < nsrv; i++) famd_stop(&srv[i]);
    return 0;
}

/* A region for one test (interleaved over both famd when there are two). */
static void make_region(const char *name, uint64_t size, mode_t perm)
{
    fam_region_attr_t at = {0};
    at.interleave = nsrv == 2 ? FAM_INTERLEAVE_ENABLE : FAM_INTERLEAVE_DISABLE;
    at.stripe_size = 64 << 10;
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, name, size, perm, &at, &r));
    fam_release_region(r);
}

static hid_t fapl(void)
{
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    assert_true(p >= 0);
    assert_true(H5Pset_fapl_fam(p, servers, test_provider()) >= 0);
    return p;
}

/* The innermost message on HDF5's error stack (the driver's own). */
static char last_msg[1024];
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *d)
{
    (void)d;
    if (n == 0) snprintf(last_msg, sizeof last_msg, "%s", e->desc);
    return 0;
}
static const char *h5_error(void)
{
    last_msg[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, NULL);
    return last_msg;
}

static void fill_i64(int64_t *v, size_t n, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n; i++)
        v[i] = ((int64_t)rand() << 31) ^ rand() ^ (int64_t)i;
}

/* ---- HDF5 programs ------------------------------------------------------- */

static void contiguous_dataset_round_trips_and_reopens(void **state)
{
    (void)state;
    make_region("h5a", 64 << 20, 0700);
    enum { N = 600000 }; /* 4.8 MB: spans extents 0, 1 and 2 */
    int64_t *v = malloc(N * 8), *back = malloc(N * 8);
    fill_i64(v, N, 7);
    hid_t p = fapl();
    hid_t fid = H5Fcreate("h5a/one.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p);
    assert_true(fid >= 0);
    hsize_t dims[1] = {N};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(fid, "x", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    assert_true(H5Fclose(fid) >= 0);

    fid = H5Fopen("h5a/one.h5", H5F_ACC_RDONLY, p);
    assert_true(fid >= 0);
    ds = H5Dopen2(fid, "x", H5P_DEFAULT);
    assert_true(ds >= 0);
    memset(back, 0, N * 8);
    assert_true(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(v, back, N * 8);
    /* a hyperslab: every 7th element of [1000, 1000 + 7*5000) */
    hsize_t start[1] = {1000}, stride[1] = {7}, count[1] = {5000};
    sp = H5Dget_space(ds);
    assert_true(H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, stride, count, NULL) >= 0);
    hsize_t mdims[1] = {5000};
    hid_t ms = H5Screate_simple(1, mdims, NULL);
    assert_true(H5Dread(ds, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, back) >= 0);
    for (int i = 0; i < 5000; i++) assert_int_equal(back[i], v[1000 + 7 * i]);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(ds);
    assert_true(H5Fclose(fid) >= 0);

    /* RDWR reopen, overwrite a slice, read it back after another reopen */
    fid = H5Fopen("h5a/one.h5", H5F_ACC_RDWR, p);
    assert_true(fid >= 0);
    ds = H5Dopen2(fid, "x", H5P_DEFAULT);
    sp = H5Dget_space(ds);
    hsize_t s2[1] = {N - 10}, c2[1] = {10};
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, s2, NULL, c2, NULL);
    ms = H5Screate_simple(1, c2, NULL);
    int64_t ten[10];
    for (int i = 0; i < 10; i++) ten[i] = -1 - i;
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, ten) >= 0);
    H5Sclose(ms); H5Sclose(sp); H5Dclose(ds);
    assert_true(H5Fclose(fid) >= 0);
    fid = H5Fopen("h5a/one.h5", H5F_ACC_RDONLY, p);
    ds = H5Dopen2(fid, "x", H5P_DEFAULT);
    assert_true(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    memcpy(v + N - 10, ten, sizeof ten);
    assert_memory_equal(v, back, N * 8);
    H5Dclose(ds);
    H5Fclose(fid);
    H5Pclose(p);
    free(v);
    free(back);
}

static void chunked_gzip_groups_and_attributes_round_trip(void **state)
{
    (void)state;
    make_region("h5b", 64 << 20, 0700);
    enum { R = 500, C = 300 };
    double *m = malloc(R * C * sizeof *m), *back = malloc(R * C * sizeof *m);
    for (int i = 0; i < R * C; i++) m[i] = (i % 97) * 0.5 + (i / C); /* compressible */
    hid_t p = fapl();
    hid_t fid = H5Fcreate("h5b/g.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p);
    assert_true(fid >= 0);
    hid_t g = H5Gcreate2(fid, "/sim/run1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g < 0); /* intermediate group missing: HDF5's own error */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    g = H5Gcreate2(fid, "/sim/run1", lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    hsize_t dims[2] = {R, C}, chunk[2] = {64, 64};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_deflate(dcpl, 6);
    hid_t ds = H5Dcreate2(g, "temp", H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
    hsize_t one = 3;
    hid_t asp = H5Screate_simple(1, &one, NULL);
    hid_t at = H5Acreate2(ds, "units", H5T_NATIVE_INT, asp, H5P_DEFAULT, H5P_DEFAULT);
    int av[3] = {4, 5, 6};
    assert_true(H5Awrite(at, H5T_NATIVE_INT, av) >= 0);
    H5Aclose(at); H5Sclose(asp);
    H5Dclose(ds); H5Pclose(dcpl); H5Sclose(sp); H5Gclose(g); H5Pclose(lcpl);
    assert_true(H5Fclose(fid) >= 0);

    fid = H5Fopen("h5b/g.h5", H5F_ACC_RDONLY, p);
    assert_true(fid >= 0);
    ds = H5Dopen2(fid, "/sim/run1/temp", H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t dc = H5Dget_create_plist(ds);
    unsigned flags; size_t nel = 1; unsigned cd[1]; char nm[32]; unsigned fc;
    assert_int_equal(H5Pget_filter2(dc, 0, &flags, &nel, cd, sizeof nm, nm, &fc),
                     H5Z_FILTER_DEFLATE);
    H5Pclose(dc);
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(m, back, R * C * sizeof *m);
    /* a 2-D block across chunk edges */
    hsize_t st[2] = {60, 100}, cnt[2] = {10, 70};
    sp = H5Dget_space(ds);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, st, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, back) >= 0);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 70; j++)
            assert_true(back[i * 70 + j] == m[(60 + i) * C + 100 + j]);
    H5Sclose(ms); H5Sclose(sp);
    at = H5Aopen(ds, "units", H5P_DEFAULT);
    int ab[3] = {0};
    assert_true(H5Aread(at, H5T_NATIVE_INT, ab) >= 0);
    assert_memory_equal(ab, av, sizeof av);
    H5Aclose(at); H5Dclose(ds);
    assert_true(H5Fclose(fid) >= 0);
    H5Pclose(p);
    free(m); free(back);
}

/* ---- the driver at its edges (H5FD calls) ---------------------------------- */

static void driver_reads_zeros_past_eof_and_in_holes_and_truncates(void **state)
{
    (void)state;
    make_region("h5c", 256 << 20, 0700);
    hid_t p = fapl();
    H5FD_t *fd = H5FDopen("h5c/raw", H5F_ACC_RDWR | H5F_ACC_CREAT | H5F_ACC_TRUNC,
                          p, HADDR_UNDEF);
    assert_non_null(fd);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), 0);
    /* straddle the end of extent 0 (1 MiB) and of extent 1 (3 MiB) */
    enum { N = 3 << 20 };
    uint8_t *buf = malloc(N), *back = malloc(N + 100);
    for (int i = 0; i < N; i++) buf[i] = (uint8_t)(i * 31 + 7);
    uint64_t at = (1 << 20) - 100;
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, 64 << 20);
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, at, N, buf) >= 0);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), at + N);
    memset(back, 0xee, N + 100);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, at, N + 100, back) >= 0);
    assert_memory_equal(buf, back, N);
    for (int i = 0; i < 100; i++) assert_int_equal(back[N + i], 0); /* past eof */
    /* a write far ahead leaves a hole of zeros (extents never written) */
    uint8_t tail[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 40 << 20, 10, tail) >= 0);
    memset(back, 0xee, 4096);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 20 << 20, 4096, back) >= 0);
    for (int i = 0; i < 4096; i++) assert_int_equal(back[i], 0);
    /* shrink to 2 MiB, then grow again: the old bytes must not come back */
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, 2 << 20);
    assert_true(H5FDtruncate(fd, H5P_DEFAULT, 0) >= 0);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), 2 << 20);
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, 64 << 20);
    uint8_t one = 0x55;
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, (3 << 20) + 5, 1, &one) >= 0);
    memset(back, 0xee, 1 << 20);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 2 << 20, 1 << 20, back) >= 0);
    for (int i = 0; i < 1 << 20; i++) assert_int_equal(back[i], 0);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, (3 << 20) + 5, 1, back) >= 0);
    assert_int_equal(back[0], 0x55);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, at, 1000, back) >= 0);
    assert_memory_equal(buf, back, 1000);
    assert_true(H5FDclose(fd) >= 0);
    /* eof persisted in the header */
    fd = H5FDopen("h5c/raw", H5F_ACC_RDONLY, p, HADDR_UNDEF);
    assert_non_null(fd);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), (3 << 20) + 6);
    assert_true(H5FDclose(fd) >= 0);
    /* the freed extents are gone from the region: 40 MiB was in extent 5 */
    fam_item_t *d;
    assert_int_equal(fam_lookup(f, "raw#5", "h5c", &d), FAM_ENOTFOUND);
    CHECK_OK(fam_lookup(f, "raw#1", "h5c", &d));
    fam_release(d);
    H5Pclose(p);
    free(buf); free(back);
}

/* Re-creating a file (H5F_ACC_TRUNC) keeps its extents, but nothing of
 * the old content is ever read: not past the new eof, not in gaps the new
 * file leaves; and the close frees the extents the new file does not reach. */
static void a_truncated_rewrite_reads_no_old_bytes(void **state)
{
    (void)state;
    make_region("h5t", 64 << 20, 0700);
    hid_t p = fapl();
    enum { N = 6 << 20 };
    uint8_t *old = malloc(N), *back = malloc(N);
    memset(old, 0xab, N);
    H5FD_t *fd = H5FDopen("h5t/re", H5F_ACC_RDWR | H5F_ACC_CREAT | H5F_ACC_TRUNC, p,
                          HADDR_UNDEF);
    assert_non_null(fd);
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, N);
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 0, N, old) >= 0);
    assert_true(H5FDclose(fd) >= 0);
    fam_item_t *d;
    CHECK_OK(fam_lookup(f, "re#2", "h5t", &d)); /* bytes 3..7 MiB */
    fam_release(d);

    fd = H5FDopen("h5t/re", H5F_ACC_RDWR | H5F_ACC_CREAT | H5F_ACC_TRUNC, p, HADDR_UNDEF);
    assert_non_null(fd);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), 0);
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, N);
    uint8_t a[100], b[100];
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 0, 100, a) >= 0);
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 2 << 20, 100, b) >= 0);
    memset(back, 0xee, N);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 0, N, back) >= 0);
    for (size_t i = 0; i < N; i++) {
        uint8_t want = i < 100 ? 1 : (i >= (2u << 20) && i < (2u << 20) + 100) ? 2 : 0;
        if (back[i] != want) fail_msg("byte %zu is 0x%x, not 0x%x", i, back[i], want);
    }
    /* HDF5's close-time truncate: the new file ends at 2 MiB + 100 */
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, (2 << 20) + 100);
    assert_true(H5FDtruncate(fd, H5P_DEFAULT, 1) >= 0);
    assert_true(H5FDclose(fd) >= 0);
    assert_int_equal(fam_lookup(f, "re#2", "h5t", &d), FAM_ENOTFOUND);
    fd = H5FDopen("h5t/re", H5F_ACC_RDONLY, p, HADDR_UNDEF);
    assert_non_null(fd);
    assert_int_equal(H5FDget_eof(fd, H5FD_MEM_DEFAULT), (2 << 20) + 100);
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, (2 << 20) + 100);
    assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 0, (2 << 20) + 100, back) >= 0);
    assert_int_equal(back[99], 1);
    assert_int_equal(back[100], 0);
    assert_int_equal(back[(2 << 20) + 99], 2);
    assert_true(H5FDclose(fd) >= 0);
    H5Pclose(p);
    free(old);
    free(back);
}

static void a_small_read_costs_one_fam_get(void **state)
{
    (void)state;
    make_region("h5d", 64 << 20, 0700);
    hid_t p = fapl();
    H5FD_t *fd = H5FDopen("h5d/rt", H5F_ACC_RDWR | H5F_ACC_CREAT | H5F_ACC_TRUNC,
                          p, HADDR_UNDEF);
    assert_non_null(fd);
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, 16 << 20);
    uint8_t *buf = calloc(1, 8 << 20);
    assert_true(H5FDwrite(fd, H5FD_MEM_DRAW, H5P_DEFAULT, 0, 8 << 20, buf) >= 0);
    uint8_t b[64];
    /* first touch of each extent looks it up; after that one get a read */
    for (int k = 0; k < 4; k++)
        assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT, (1u << k) << 20, 8, b) >= 0);
    h5fam_reset_stats();
    for (int i = 0; i < 1000; i++)
        assert_true(H5FDread(fd, H5FD_MEM_DRAW, H5P_DEFAULT,
                             (uint64_t)(i * 7919) % ((8 << 20) - 64), 64, b) >= 0);
    h5fam_stats_t st;
    h5fam_get_stats(&st);
    assert_int_equal(st.reads, 1000);
    /* a read straddling an extent end takes two gets; none more */
    assert_true(st.fam_gets >= 1000 && st.fam_gets <= 1010);
    assert_int_equal(st.fam_other, 0);
    assert_true(H5FDclose(fd) >= 0);
    H5Pclose(p);
    free(buf);
}

/* ---- persistence, sharing --------------------------------------------------- */

static void write_small_file(hid_t p, const char *name, int seed)
{
    hid_t fid = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, p);
    assert_true(fid >= 0);
    enum { N = 200000 };
    int64_t *v = malloc(N * 8);
    fill_i64(v, N, seed);
    hsize_t dims[1] = {N};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(fid, "v", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds); H5Sclose(sp);
    assert_true(H5Fclose(fid) >= 0);
    free(v);
}

/* 0 when the file holds what write_small_file(seed) wrote (no cmocka: it
 * runs in child processes too). */
static int check_small_file(hid_t p, const char *name, int seed)
{
    enum { N = 200000 };
    hid_t fid = H5Fopen(name, H5F_ACC_RDONLY, p);
    if (fid < 0) return 1;
    hid_t ds = H5Dopen2(fid, "v", H5P_DEFAULT);
    int64_t *v = malloc(N * 8), *back = malloc(N * 8);
    fill_i64(v, N, seed);
    int bad = ds < 0 ||
              H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) < 0 ||
              memcmp(v, back, N * 8) != 0;
    if (ds >= 0) H5Dclose(ds);
    if (H5Fclose(fid) < 0) bad = 1;
    free(v); free(back);
    return bad ? 2 : 0;
}

static void files_outlive_a_famd_restart(void **state)
{
    (void)state;
    fam_region_attr_t at = {0};
    at.memory_type = FAM_MEMORY_PERSISTENT;
    at.interleave = nsrv == 2 ? FAM_INTERLEAVE_ENABLE : FAM_INTERLEAVE_DISABLE;
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "h5keep", 32 << 20, 0700, &at, &r));
    fam_release_region(r);
    hid_t p = fapl();
    write_small_file(p, "h5keep/k.h5", 11);
    H5Pclose(p);
    H5close(); /* drops the driver's connection before the servers go */
    fam_finalize(f);
    for (int i = 0; i < nsrv; i++) {
        famd_stop(&srv[i]);
        assert_int_equal(famd_restart(&srv[i], POOL), 0);
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    assert_non_null(f = client(servers));
    p = fapl();
    assert_int_equal(check_small_file(p, "h5keep/k.h5", 11), 0);
    /* and across kill -9 of every famd */
    write_small_file(p, "h5keep/k2.h5", 12);
    H5Pclose(p);
    H5close();
    fam_finalize(f);
    for (int i = 0; i < nsrv; i++) {
        famd_kill9(&srv[i]);
        assert_int_equal(famd_restart(&srv[i], POOL), 0);
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    assert_non_null(f = client(servers));
    p = fapl();
    assert_int_equal(check_small_file(p, "h5keep/k.h5", 11), 0);
    assert_int_equal(check_small_file(p, "h5keep/k2.h5", 12), 0);
    H5Pclose(p);
}

static void several_processes_read_one_file_at_once(void **state)
{
    (void)state;
    make_region("h5e", 32 << 20, 0700);
    hid_t p = fapl();
    write_small_file(p, "h5e/shared.h5", 23);
    enum { KIDS = 3 };
    pid_t kid[KIDS];
    int go[2];
    assert_int_equal(pipe(go), 0);
    for (int i = 0; i < KIDS; i++) {
        kid[i] = fork();
        assert_true(kid[i] >= 0);
        if (kid[i] == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0) _exit(9); /* all start together */
            int bad = 0;
            for (int rep = 0; rep < 5 && !bad; rep++)
                bad = check_small_file(p, "h5e/shared.h5", 23);
            _exit(bad);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int i = 0; i < KIDS; i++) {
        int st;
        assert_int_equal(waitpid(kid[i], &st, 0), kid[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    H5Pclose(p);
}

/* ---- errors -------------------------------------------------------------- */

static void errors_name_the_file_and_the_cause(void **state)
{
    (void)state;
    make_region("h5f", 16 << 20, 0700);
    hid_t p = fapl();
    assert_true(H5Fopen("nosuchregion/a.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "no such FAM region"));
    assert_true(H5Fopen("h5f/missing.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "no such file in FAM region 'h5f'"));
    assert_true(H5Fcreate("noslash.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p) < 0);
    assert_non_null(strstr(h5_error(), "REGION/NAME"));
    assert_true(H5Fcreate("h5f/looks#12", H5F_ACC_TRUNC, H5P_DEFAULT, p) < 0);
    assert_non_null(strstr(h5_error(), "#<digits>"));

    /* a damaged header: not read as a file */
    write_small_file(p, "h5f/bad.h5", 1);
    fam_item_t *h;
    CHECK_OK(fam_lookup(f, "bad.h5", "h5f", &h));
    uint8_t junk = 'X';
    CHECK_OK(fam_put_blocking(f, &junk, h, 20, 1)); /* inside eof: CRC fails */
    assert_true(H5Fopen("h5f/bad.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "CRC"));
    CHECK_OK(fam_put_blocking(f, "NOTMAGIC", h, 0, 8));
    assert_true(H5Fopen("h5f/bad.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "magic"));
    fam_release(h);

    /* a file whose data was cut short: HDF5 sees the eof before its eoa */
    write_small_file(p, "h5f/short.h5", 2);
    H5FD_t *fd = H5FDopen("h5f/short.h5", H5F_ACC_RDWR, p, HADDR_UNDEF);
    assert_non_null(fd);
    H5FDset_eoa(fd, H5FD_MEM_DEFAULT, 4096);
    assert_true(H5FDtruncate(fd, H5P_DEFAULT, 0) >= 0);
    assert_true(H5FDclose(fd) >= 0);
    assert_true(H5Fopen("h5f/short.h5", H5F_ACC_RDONLY, p) < 0);

    /* the region is full: the write fails, and the file stays marked
     * unfinished after its close: readers refuse it */
    hid_t fid = H5Fcreate("h5f/full.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p);
    assert_true(fid >= 0);
    hsize_t dims[1] = {4 << 20}; /* 32 MiB into a 16 MiB region */
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(fid, "big", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    assert_true(ds >= 0);
    int64_t *v = calloc(4 << 20, 8);
    herr_t w = H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    assert_true(w < 0);
    assert_non_null(strstr(h5_error(), "full"));
    H5Dclose(ds); H5Sclose(sp);
    H5Fclose(fid); /* its result is HDF5's: the failed write was reported */
    assert_true(H5Fopen("h5f/full.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "may be incomplete"));
    free(v);

    /* a writer elsewhere holds the file: readers and writers are refused;
     * a writer that died on this host is taken over by the next writer */
    write_small_file(p, "h5f/held.h5", 3);
    CHECK_OK(fam_lookup(f, "held.h5", "h5f", &h));
    uint64_t tag = h5fam_writer_tag_for(getppid()), old;
    CHECK_OK(fam_compare_swap_uint64(f, h, 64, 0, tag, &old));
    assert_int_equal(old, 0);
    assert_true(H5Fopen("h5f/held.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "being written"));
    assert_true(H5Fopen("h5f/held.h5", H5F_ACC_RDWR, p) < 0);
    assert_non_null(strstr(h5_error(), "has it open for writing"));
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    waitpid(gone, NULL, 0);
    CHECK_OK(fam_compare_swap_uint64(f, h, 64, tag,
                                     h5fam_writer_tag_for(gone), &old));
    assert_true(H5Fopen("h5f/held.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "which is gone"));
    fid = H5Fopen("h5f/held.h5", H5F_ACC_RDWR, p);
    assert_true(fid >= 0);
    assert_true(H5Fclose(fid) >= 0);
    assert_int_equal(check_small_file(p, "h5f/held.h5", 3), 0);
    fam_release(h);
    H5Pclose(p);
}

/* 0 when a new process can open the file read-only, 1 when refused with
 * the "being written" message, 2 otherwise. */
static int reader_elsewhere(hid_t p, const char *name)
{
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        hid_t fid = H5Fopen(name, H5F_ACC_RDONLY, p);
        if (fid >= 0) _exit(H5Fclose(fid) < 0 ? 2 : 0);
        _exit(strstr(h5_error(), "being written") ? 1 : 2);
    }
    int st;
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* HDF5 opens a file again in the process that writes it (its tentative
 * open, a second H5Fopen): that handle's close must not give up the
 * writer's claim while the first is open. */
static void a_second_handle_in_the_writing_process_keeps_the_claim(void **state)
{
    (void)state;
    make_region("h5s", 16 << 20, 0700);
    hid_t p = fapl();
    hid_t w = H5Fcreate("h5s/two.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p);
    assert_true(w >= 0);
    hsize_t n = 1000;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t ds = H5Dcreate2(w, "v", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    int v[1000];
    for (int i = 0; i < 1000; i++) v[i] = i * 3;
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds); H5Sclose(sp);
    assert_true(H5Fflush(w, H5F_SCOPE_GLOBAL) >= 0);
    hid_t r = H5Fopen("h5s/two.h5", H5F_ACC_RDONLY, p); /* shared by HDF5 */
    assert_true(r >= 0);
    hid_t w2 = H5Fopen("h5s/two.h5", H5F_ACC_RDWR, p);
    assert_true(w2 >= 0);
    assert_true(H5Fclose(r) >= 0);
    assert_true(H5Fclose(w2) >= 0);
    assert_int_equal(reader_elsewhere(p, "h5s/two.h5"), 1); /* still claimed */
    assert_true(H5Fclose(w) >= 0);
    assert_int_equal(reader_elsewhere(p, "h5s/two.h5"), 0);
    H5Pclose(p);
}

/* A writer killed (-9) in the middle of writing: readers refuse the file
 * and say its writer is gone; the next writer takes it over. */
static void a_writer_killed_mid_write_leaves_a_file_readers_refuse(void **state)
{
    (void)state;
    make_region("h5k", 64 << 20, 0700);
    hid_t p = fapl();
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        close(ready[0]);
        hid_t fid = H5Fcreate("h5k/dying.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p);
        if (fid < 0) _exit(1);
        hsize_t dims[1] = {1 << 20};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        hid_t ds = H5Dcreate2(fid, "x", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        int64_t *v = calloc(1 << 20, 8);
        if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            _exit(2);
        H5Fflush(fid, H5F_SCOPE_GLOBAL);
        if (write(ready[1], "x", 1) != 1) _exit(3);
        for (;;) pause(); /* killed here, the file still open */
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    assert_true(H5Fopen("h5k/dying.h5", H5F_ACC_RDONLY, p) < 0);
    assert_non_null(strstr(h5_error(), "which is gone"));
    write_small_file(p, "h5k/dying.h5", 31); /* H5Fcreate takes it over */
    assert_int_equal(check_small_file(p, "h5k/dying.h5", 31), 0);
    H5Pclose(p);
}

/* Another user (uid 65534, a child that drops root before connecting):
 * over tcp it reads a file in a 0755 region, and is refused writing it and
 * anything in a 0700 region, with "no permission"; over shm it cannot
 * reach root's famd at all, and the message says so. */
static void another_user_gets_what_the_region_bits_allow(void **state)
{
    (void)state;
    make_region("h5open", 16 << 20, 0755);
    make_region("h5priv", 16 << 20, 0700);
    hid_t p = fapl();
    write_small_file(p, "h5open/pub.h5", 41);
    write_small_file(p, "h5priv/sec.h5", 42);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) _exit(10);
        int tcp = !strcmp(test_provider(), "tcp");
        if (tcp) {
            if (check_small_file(p, "h5open/pub.h5", 41)) _exit(11);
            if (H5Fopen("h5open/pub.h5", H5F_ACC_RDWR, p) >= 0) _exit(12);
            if (!strstr(h5_error(), "no permission")) _exit(13);
            if (H5Fopen("h5priv/sec.h5", H5F_ACC_RDONLY, p) >= 0) _exit(14);
            if (!strstr(h5_error(), "no permission")) _exit(15);
            if (H5Fcreate("h5open/mine.h5", H5F_ACC_TRUNC, H5P_DEFAULT, p) >= 0) _exit(16);
            if (!strstr(h5_error(), "no permission")) _exit(17);
        } else {
            if (H5Fopen("h5open/pub.h5", H5F_ACC_RDONLY, p) >= 0) _exit(18);
            if (!strstr(h5_error(), "no connection to the memory servers")) _exit(19);
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* root's files are untouched and not claimed */
    assert_int_equal(check_small_file(p, "h5open/pub.h5", 41), 0);
    assert_int_equal(check_small_file(p, "h5priv/sec.h5", 42), 0);
    H5Pclose(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(contiguous_dataset_round_trips_and_reopens),
        cmocka_unit_test(chunked_gzip_groups_and_attributes_round_trip),
        cmocka_unit_test(driver_reads_zeros_past_eof_and_in_holes_and_truncates),
        cmocka_unit_test(a_truncated_rewrite_reads_no_old_bytes),
        cmocka_unit_test(a_small_read_costs_one_fam_get),
        cmocka_unit_test(several_processes_read_one_file_at_once),
        cmocka_unit_test(errors_name_the_file_and_the_cause),
        cmocka_unit_test(a_writer_killed_mid_write_leaves_a_file_readers_refuse),
        cmocka_unit_test(a_second_handle_in_the_writing_process_keeps_the_claim),
        cmocka_unit_test(another_user_gets_what_the_region_bits_allow),
        cmocka_unit_test(files_outlive_a_famd_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_famh5.c — famh5 put/get/ls/rm against two real famd (an interleaved
 * region): a file made by HDF5 on local disk, copied into FAM and back, is
 * byte-identical, h5diff-identical and readable by h5dump; the copy in FAM
 * reads through the driver; ls shows it with its size; rm frees the header
 * and every extent; failures exit 1 with a message. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "fixture.h"
#include "kodiak/h5fam.h"

static struct famd_proc srv[2];
static char servers[256];
static fam_t *f;

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (famd_start(&srv[i], 256 << 20, NULL)) return -1;
    snprintf(servers, sizeof servers, "%s,%s", srv[0].addr, srv[1].addr);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return (f = client(servers)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    H5close();
    for (int i = 0; i < 2; i++) famd_stop(&srv[i]);
    return 0;
}

/* Run a shell command; its exit status, its output (stdout and stderr) in out. */
static int run(char *out, size_t max, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, max - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    rewind(fp);
    char *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, fp), *n);
    fclose(fp);
    return b;
}

/* A local HDF5 file with a group, a chunked gzip dataset, an attribute
 * and a contiguous dataset of 3 MB (several extents once in FAM). */
static void make_local(const char *path)
{
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fid >= 0);
    hid_t g = H5Gcreate2(fid, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    enum { N = 400000 };
    int64_t *v = malloc(N * 8);
    for (int i = 0; i < N; i++) v[i] = (int64_t)i * i - 12345;
    hsize_t dims[1] = {N}, chunk[1] = {8192};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t ds = H5Dcreate2(g, "squares", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    double pi = 3.25;
    hid_t as = H5Screate(H5S_SCALAR);
    hid_t at = H5Acreate2(ds, "scale", H5T_NATIVE_DOUBLE, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(at, H5T_NATIVE_DOUBLE, &pi);
    H5Aclose(at); H5Sclose(as); H5Dclose(ds); H5Pclose(dcpl);
    ds = H5Dcreate2(fid, "plain", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds); H5Sclose(sp); H5Gclose(g);
    assert_true(H5Fclose(fid) >= 0);
    free(v);
}

static void put_get_round_trip_is_identical_and_rm_frees_everything(void **state)
{
    (void)state;
    char src[300], back[300], out[8192];
    /* mkregion: an interleaved region of 64 MiB, mode 0750 */
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s mkregion -i -m 750 files 64M",
                         FAMH5_BIN, servers, test_provider()), 0);
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, "files", &r));
    fam_stat_t rst;
    CHECK_OK(fam_stat_region(f, r, &rst));
    assert_int_equal(rst.size, 64 << 20);
    assert_int_equal(rst.perm, 0750);
    assert_int_equal(rst.interleave, FAM_INTERLEAVE_ENABLE);
    assert_int_equal(rst.num_servers, 2);
    snprintf(src, sizeof src, "%s/src.h5", test_tmpdir());
    snprintf(back, sizeof back, "%s/back.h5", test_tmpdir());
    make_local(src);
    const char *T = FAMH5_BIN;
    const char *P = test_provider();

    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s put %s files/a.h5", T,
                         servers, P, src), 0);
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s get files/a.h5 %s", T,
                         servers, P, back), 0);
    size_t n1, n2;
    char *a = slurp(src, &n1), *b = slurp(back, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(b);
    assert_int_equal(run(out, sizeof out, "%s %s %s", H5DIFF_BIN, src, back), 0);
    assert_int_equal(run(out, sizeof out, "%s -H %s", H5DUMP_BIN, back), 0);
    assert_non_null(strstr(out, "DATASET \"squares\""));
    assert_non_null(strstr(out, "ATTRIBUTE \"scale\""));

    /* ls: the file with its size, not its extents */
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s ls files", T, servers, P), 0);
    char want[300];
    snprintf(want, sizeof want, "%zu  files/a.h5\n", n1);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "#"));

    /* the copy in FAM reads through the driver */
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_fam(p, servers, P);
    hid_t fid = H5Fopen("files/a.h5", H5F_ACC_RDONLY, p);
    assert_true(fid >= 0);
    hid_t ds = H5Dopen2(fid, "/grp/squares", H5P_DEFAULT);
    int64_t v[5];
    hsize_t st[1] = {399995}, cnt[1] = {5};
    hid_t sp = H5Dget_space(ds);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, st, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(1, cnt, NULL);
    assert_true(H5Dread(ds, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, v) >= 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(v[i], (int64_t)(399995 + i) * (399995 + i) - 12345);
    H5Sclose(ms); H5Sclose(sp); H5Dclose(ds);
    assert_true(H5Fclose(fid) >= 0);
    H5Pclose(p);

    /* rm: header and extents gone; get then fails with a message */
    fam_item_t *d;
    CHECK_OK(fam_lookup(f, "a.h5#1", "files", &d));
    fam_release(d);
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s rm files/a.h5", T,
                         servers, P), 0);
    assert_int_equal(fam_lookup(f, "a.h5", "files", &d), FAM_ENOTFOUND);
    for (int k = 0; k < 3; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "a.h5#%d", k);
        assert_int_equal(fam_lookup(f, nm, "files", &d), FAM_ENOTFOUND);
    }
    fam_stat_t rs;
    CHECK_OK(fam_stat_region(f, r, &rs));
    assert_int_equal(rs.used, 0);
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s get files/a.h5 %s", T,
                         servers, P, back), 1);
    assert_non_null(strstr(out, "no such file"));
    /* the earlier copy out is untouched by the failed get */
    b = slurp(back, &n2);
    assert_memory_equal(a, b, n1);
    free(a); free(b);
    fam_release_region(r);
}

static void failures_exit_1_with_a_message(void **state)
{
    (void)state;
    char out[4096];
    const char *T = FAMH5_BIN, *P = test_provider();
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s put /nonexistent/x.h5 files/x.h5",
                         T, servers, P), 1);
    assert_non_null(strstr(out, "/nonexistent/x.h5"));
    char src[300];
    snprintf(src, sizeof src, "%s/src2.h5", test_tmpdir());
    make_local(src);
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s put %s noregion/x.h5", T,
                         servers, P, src), 1);
    assert_non_null(strstr(out, "no such FAM region"));
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s ls noregion", T, servers, P), 1);
    assert_int_equal(run(out, sizeof out, "%s -s %s -p %s rm noregion/x.h5", T,
                         servers, P), 1);
    assert_int_equal(run(out, sizeof out, "%s frobnicate", T), 2);
    assert_non_null(strstr(out, "usage"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_round_trip_is_identical_and_rm_frees_everything),
        cmocka_unit_test(failures_exit_1_with_a_message),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

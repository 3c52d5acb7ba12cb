/* SPDX-License-Identifier: Apache-2.0 */
/* test_ds_mpi_example.c — examples/ds_mpi_example under `mpirun -np 2`
 * against two famd: its appends are in the store (read back here with
 * libdataset, a separate process, as kodiakd or Python would), and the
 * checksums it prints equal those computed here from the rule the
 * example documents. Also: a second run with --one-commit appends both
 * ranks' batches in one catalog version; --read of everything reports a
 * dataset written by another program; a dataset of another schema is
 * refused and left alone. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "fixture.h"
#include "kodiak/dataset.h"

static struct famd_proc s1, s2;
static char both[200];
static fam_t *f;

static int setup(void **state)
{
    (void)state;
    if (famd_start(&s1, 64 << 20, NULL) || famd_start(&s2, 64 << 20, NULL)) return -1;
    snprintf(both, sizeof both, "%s,%s", s1.addr, s2.addr);
    return (f = client(both)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&s1);
    famd_stop(&s2);
    return 0;
}

/* Run the example with 2 ranks and these arguments; its exit status, its
 * stdout in out. */
static int run_example(char *out, size_t cap, ...)
{
    const char *args[16];
    int n = 0;
    args[n++] = MPIEXEC;
    args[n++] = "-np"; args[n++] = "2";
    args[n++] = "--oversubscribe"; args[n++] = "--bind-to"; args[n++] = "none";
    args[n++] = EXAMPLE_BIN;
    va_list ap;
    va_start(ap, cap);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 15) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        setenv("FAM_SERVERS", both, 1);
        setenv("FAM_PROVIDER", test_provider(), 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        execv(MPIEXEC, (char **)args);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t k;
    while (got < cap - 1 && (k = read(p[0], out + got, cap - 1 - got)) > 0) got += (size_t)k;
    out[got] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* What the example must print for `runs` runs of ROWS rows on 2 ranks,
 * computed from its documented rule. */
static void expected(char *buf, size_t cap, const char *name, uint64_t rows, int runs,
                     uint64_t version)
{
    uint64_t idsum = 0, ranksum = 0, crcsum = 0, missing = 0, total = 0;
    double fare = 0;
    for (int run = 0; run < runs; run++)
        for (int r = 0; r < 2; r++)
            for (uint64_t i = 0; i < rows + (uint64_t)r; i++) {
                idsum += (uint64_t)r * 1000000000u + i;
                fare += (double)(i % 1000) * 0.25 + r;
                ranksum += (uint64_t)r;
                total++;
                if (i % 4 == 3) {
                    missing++;
                    continue;
                }
                char z[32];
                snprintf(z, sizeof z, "zone-%d-%d", r, (int)(i % 4));
                crcsum += (uint32_t)crc32(0L, (const Bytef *)z, (uInt)strlen(z));
            }
    snprintf(buf, cap,
             "dataset %s (base): %" PRIu64 " rows in %d batches, catalog version %" PRIu64 "\n"
             "  id int64 sum=%" PRId64 "\n"
             "  fare float64 sum=%.17g\n"
             "  rank int64 sum=%" PRId64 "\n"
             "  zone text sum=%" PRIu64 " missing=%" PRIu64 "\n",
             name, total, 2 * runs, version, (int64_t)idsum, fare, (int64_t)ranksum, crcsum,
             missing);
}

/* The batches in the store hold what the example documents. */
static void check_store(const char *name, uint64_t rows, int runs)
{
    ds_store_t *s;
    CHECK_OK(ds_open(f, "ex", 0, 0, &s));
    ds_info_t *in;
    CHECK_OK(ds_info(s, name, &in));
    assert_int_equal(in->nbatches, 2 * runs);
    int seen[2] = {0, 0};
    for (size_t b = 0; b < in->nbatches; b++) {
        uint64_t n = in->batches[b].rows;
        int64_t *id = malloc(n * 8), *rk = malloc(n * 8), *z = malloc(n * 8);
        double *fare = malloc(n * 8);
        CHECK_OK(ds_read(s, in, b, 0, 0, n, id));
        CHECK_OK(ds_read(s, in, b, 1, 0, n, fare));
        CHECK_OK(ds_read(s, in, b, 2, 0, n, rk));
        CHECK_OK(ds_read(s, in, b, 3, 0, n, z));
        int r = (int)rk[0];
        assert_true(r == 0 || r == 1);
        seen[r]++;
        assert_int_equal(n, rows + (uint64_t)r);
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(id[i], (int64_t)r * 1000000000 + (int64_t)i);
            assert_true(fare[i] == (double)(i % 1000) * 0.25 + r);
            assert_int_equal(rk[i], r);
            assert_int_equal(z[i], i % 4 == 3 ? -1 : (int64_t)(i % 4));
        }
        char **cats;
        size_t nc;
        CHECK_OK(ds_read_categories(s, in, b, 3, &cats, &nc));
        assert_int_equal(nc, 3);
        for (size_t j = 0; j < nc; j++) {
            char want[32];
            snprintf(want, sizeof want, "zone-%d-%zu", r, j);
            assert_string_equal(cats[j], want);
        }
        ds_free_names(cats, nc);
        free(id); free(rk); free(z); free(fare);
    }
    assert_int_equal(seen[0], runs);
    assert_int_equal(seen[1], runs);
    ds_free_info(in);
    ds_close(s);
}

static void each_rank_appends_its_batch_and_the_checksums_match(void **state)
{
    (void)state;
    char out[8192], want[2048], line[256];
    /* version 1: the dataset; 2 and 3: one commit per rank */
    assert_int_equal(run_example(out, sizeof out, "ex", "Trips", "3001", NULL), 0);
    expected(want, sizeof want, "Trips", 3001, 1, 3);
    snprintf(line, sizeof line, "appended 2 batches to Trips\n");
    assert_true(strncmp(out, line, strlen(line)) == 0);
    assert_string_equal(out + strlen(line), want);
    check_store("Trips", 3001, 1);
    /* again, both batches in one commit: version 4 */
    assert_int_equal(run_example(out, sizeof out, "--one-commit", "ex", "Trips", "3001", NULL), 0);
    expected(want, sizeof want, "Trips", 3001, 2, 4);
    assert_string_equal(out + strlen(line), want);
    check_store("Trips", 3001, 2);
    /* read only */
    assert_int_equal(run_example(out, sizeof out, "--read", "ex", "Trips", NULL), 0);
    assert_string_equal(out, want);
}

static void read_mode_reports_every_dataset_of_the_store(void **state)
{
    (void)state;
    /* a dataset written by another program (this one), with other dtypes */
    ds_store_t *s;
    CHECK_OK(ds_open(f, "ex2", DS_CREATE, 0644, &s));
    const ds_column_def_t c[] = {{"u", DS_UINT64}, {"ok", DS_BOOL}, {"t", DS_DATETIME}};
    CHECK_OK(ds_create_dataset(s, "Other", 3, c));
    ds_batch_t *b;
    CHECK_OK(ds_batch_begin(s, "Other", 5, &b));
    uint64_t u[5] = {UINT64_MAX, 2, 3, 4, 5};
    uint8_t ok[5] = {1, 0, 1, 1, 0};
    int64_t t[5] = {-10, 20, 30, 40, 50};
    CHECK_OK(fa_put(ds_batch_array(b, 0), 0, 5, u));
    CHECK_OK(fa_put(ds_batch_array(b, 1), 0, 5, ok));
    CHECK_OK(fa_put(ds_batch_array(b, 2), 0, 5, t));
    CHECK_OK(ds_commit(s, "Other", 1, &b));
    ds_batch_close(b);
    ds_close(s);
    char out[8192], want[2048];
    assert_int_equal(run_example(out, sizeof out, "ex2", "Trips", "10", NULL), 0);
    assert_int_equal(run_example(out, sizeof out, "--read", "ex2", NULL), 0);
    uint64_t usum = UINT64_MAX + 2 + 3 + 4 + 5; /* wraps, as documented */
    char other[512];
    snprintf(other, sizeof other,
             "dataset Other (base): 5 rows in 1 batches, catalog version 5\n"
             "  u uint64 sum=%" PRIu64 "\n  ok bool sum=3\n  t datetime64[s] sum=130\n", usum);
    expected(want, sizeof want, "Trips", 10, 1, 5);
    char both_out[4096];
    snprintf(both_out, sizeof both_out, "%s%s", other, want);
    assert_string_equal(out, both_out);
}

static void a_dataset_of_another_schema_is_refused_and_left_alone(void **state)
{
    (void)state;
    ds_store_t *s;
    CHECK_OK(ds_open(f, "ex3", DS_CREATE, 0644, &s));
    const ds_column_def_t c[] = {{"id", DS_FLOAT64}};
    CHECK_OK(ds_create_dataset(s, "Trips", 1, c));
    char out[8192];
    assert_int_not_equal(run_example(out, sizeof out, "ex3", "Trips", "10", NULL), 0);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "Trips", &in));
    assert_int_equal(in->ncols, 1);
    assert_int_equal(in->nbatches, 0);
    ds_free_info(in);
    ds_close(s);
    assert_int_not_equal(run_example(out, sizeof out, "ex3", "Trips", "-4", NULL), 0);
    assert_int_not_equal(run_example(out, sizeof out, "--read", "nosuchstore", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_rank_appends_its_batch_and_the_checksums_match),
        cmocka_unit_test(read_mode_reports_every_dataset_of_the_store),
        cmocka_unit_test(a_dataset_of_another_schema_is_refused_and_left_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

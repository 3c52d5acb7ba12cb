/* SPDX-License-Identifier: Apache-2.0 */
/* test_ds_tool.c — kodiak-ds against a store this test makes with
 * libdataset on two famd: list and info say what the catalog holds,
 * verify passes a sound store and names the problem in a damaged one,
 * reclaim frees a dead writer's batch only when it is old enough, destroy
 * removes the store, and bad usage exits 2. */
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

#include "fixture.h"
#include "kodiak/dataset.h"

static struct famd_proc s1, s2;
static char both[200];
static fam_t *f;

static int setup(void **state)
{
    (void)state;
    if (famd_start(&s1, 32 << 20, NULL) || famd_start(&s2, 32 << 20, NULL)) return -1;
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

/* Run kodiak-ds with these arguments; exit status, stdout in out, stderr in err. */
static int tool(char *out, size_t cap, char *err, size_t ecap, ...)
{
    const char *args[8];
    int n = 0;
    args[n++] = TOOL_BIN;
    va_list ap;
    va_start(ap, ecap);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 7) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        setenv("FAM_SERVERS", both, 1);
        setenv("FAM_PROVIDER", test_provider(), 1);
        execv(TOOL_BIN, (char **)args);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t got = 0, egot = 0;
    ssize_t k;
    while (got < cap - 1 && (k = read(po[0], out + got, cap - 1 - got)) > 0) got += (size_t)k;
    while (egot < ecap - 1 && (k = read(pe[0], err + egot, ecap - 1 - egot)) > 0) egot += (size_t)k;
    out[got] = '\0';
    err[egot] = '\0';
    close(po[0]);
    close(pe[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void the_tool_lists_verifies_reclaims_and_destroys(void **state)
{
    (void)state;
    ds_store_t *s;
    CHECK_OK(ds_open(f, "tool", DS_CREATE, 0600, &s));
    const ds_column_def_t c[] = {{"fare", DS_FLOAT64}, {"zone", DS_TEXT}};
    CHECK_OK(ds_create_dataset(s, "Trip", 2, c));
    const uint64_t rows[2] = {5, 7};
    ds_batch_t *b[2];
    for (int i = 0; i < 2; i++) {
        CHECK_OK(ds_batch_begin(s, "Trip", rows[i], &b[i]));
        const char *cats[] = {"a", "b", "c"};
        CHECK_OK(ds_batch_set_categories(b[i], 1, (size_t)(2 + i), cats));
    }
    CHECK_OK(ds_commit(s, "Trip", 2, b));
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    ds_dataset_def_t d = {.name = "Trip.fare_gt_1", .kind = DS_KIND_INDEX, .base = "Trip",
                          .expr = "fare gt 1", .ncols = 1, .cols = ic};
    ds_txn_t *t;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &d));
    CHECK_OK(ds_txn_set_progress(t, "Trip.fare_gt_1", 2));
    CHECK_OK(ds_txn_commit(t, NULL));
    ds_batch_t *orphan; /* a writer that never commits */
    CHECK_OK(ds_batch_begin(s, "Trip", 3, &orphan));

    char out[8192], err[4096], want[2048];
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "list", "tool", NULL), 0);
    assert_string_equal(out, "Trip base 12 2\nTrip.fare_gt_1 index 0 0\n");
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "info", "tool", "Trip", NULL), 0);
    snprintf(want, sizeof want,
             "dataset Trip (base), catalog version 3\n12 rows in 2 batches\n"
             "column fare float64\ncolumn zone text\n"
             "batch 0 %s rows 5 first_row 0 zone:2_categories\n"
             "batch 1 %s rows 7 first_row 5 zone:3_categories\n",
             ds_batch_id(b[0]), ds_batch_id(b[1]));
    assert_string_equal(out, want);
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "info", "tool", "Trip.fare_gt_1",
                          NULL), 0);
    assert_non_null(strstr(out, "base Trip, expression \"fare gt 1\", 2 base batches processed\n"));
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "verify", "tool", "--codes", NULL), 0);
    assert_string_equal(out, "ok: 4 arrays checked\n");

    /* reclaim: the orphan is young at the default age, freed at age 0 */
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "reclaim", "tool", NULL), 0);
    assert_non_null(strstr(out, "freed 0 arrays, 0 category lists, 0 snapshots; kept 2 younger"));
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "reclaim", "tool", "0", NULL), 0);
    assert_string_equal(out, "freed 2 arrays, 0 category lists, 0 snapshots; kept 0 younger "
                             "than 0 s\n");
    ds_batch_close(orphan);

    /* a code past its batch's categories: verify --codes names it */
    int64_t bad = 3;
    CHECK_OK(fa_put(ds_batch_array(b[1], 1), 6, 1, &bad)); /* batch 1 has 3 categories */
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "verify", "tool", NULL), 0);
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "verify", "tool", "--codes", NULL), 1);
    assert_non_null(strstr(err, "row 6 has code 3"));
    for (int i = 0; i < 2; i++) ds_batch_close(b[i]);
    ds_close(s);

    /* usage and missing stores */
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "frobnicate", "tool", NULL), 2);
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "reclaim", "tool", "-5", NULL), 2);
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "list", "nosuch", NULL), 1);
    assert_non_null(strstr(err, "nosuch"));
    assert_int_equal(tool(out, sizeof out, err, sizeof err, "destroy", "tool", NULL), 0);
    assert_int_equal(ds_open(f, "tool", 0, 0, &s), FAM_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_tool_lists_verifies_reclaims_and_destroys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_fa_mpi_example.c — examples/fa_mpi_example under `mpirun -np 2`
 * against two famd leaves what it says in FAM: squares[i] = i*i and
 * total[0] = their sum, read back here with libfamarray (a separate
 * process, as kodiakd or Python would). Also: a second run reuses the
 * arrays and resets the total, a missing region is created, and arrays
 * of the wrong shape are refused without being touched. */
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
#include "kodiak/famarray.h"

static struct famd_proc s1, s2;
static char both[200];
static fam_t *f;

static int setup(void **state)
{
    (void)state;
    if (famd_start(&s1, 96 << 20, NULL) || famd_start(&s2, 96 << 20, NULL)) return -1;
    snprintf(both, sizeof both, "%s,%s", s1.addr, s2.addr);
    if (!(f = client(both))) return -1;
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE};
    fam_region_t *r;
    if (fam_create_region(f, "mpi", 64 << 20, 0755, &at, &r)) return -1;
    fam_release_region(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&s1);
    famd_stop(&s2);
    return 0;
}

/* Run the example with 2 ranks; its exit status, its stdout in out. */
static int run_example(const char *region, const char *n, char *out, size_t cap)
{
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
        execl(MPIEXEC, MPIEXEC, "-np", "2", "--oversubscribe", "--bind-to", "none",
              EXAMPLE_BIN, region, n, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t k;
    while (got < cap - 1 && (k = read(p[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)k;
    out[got] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* sum of i*i for i < n, wrapping as int64 does */
static int64_t sum_squares(uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++) s += i * i;
    return (int64_t)s;
}

static void check_arrays(const char *region, uint64_t n)
{
    fa_array_t *sq, *tot;
    CHECK_OK(fa_open(f, region, "squares", &sq));
    CHECK_OK(fa_open(f, region, "total", &tot));
    assert_int_equal(fa_dtype(sq), FA_INT64);
    assert_int_equal(fa_size(sq), n);
    assert_int_equal(fa_size(tot), 1);
    int64_t *v = malloc(n * 8 + 8), total;
    CHECK_OK(fa_get(sq, 0, n, v));
    for (uint64_t i = 0; i < n; i++)
        if (v[i] != (int64_t)(i * i))
            fail_msg("squares[%" PRIu64 "] = %" PRId64, i, v[i]);
    CHECK_OK(fa_get(tot, 0, 1, &total));
    assert_int_equal(total, sum_squares(n));
    free(v);
    fa_close(sq);
    fa_close(tot);
}

static void example_leaves_squares_and_their_sum(void **state)
{
    (void)state;
    char out[4096], want[64];
    uint64_t n = 300001; /* odd: the ranks' blocks differ; crosses stripes */
    assert_int_equal(run_example("mpi", "300001", out, sizeof out), 0);
    snprintf(want, sizeof want, "total = %" PRId64 "\n", sum_squares(n));
    assert_string_equal(out, want);
    check_arrays("mpi", n);
    /* again: the arrays are reused and the total starts from 0 */
    assert_int_equal(run_example("mpi", "300001", out, sizeof out), 0);
    assert_string_equal(out, want);
    check_arrays("mpi", n);
}

static void example_creates_a_missing_region(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_example("mpi-new", "7", out, sizeof out), 0);
    assert_string_equal(out, "total = 91\n"); /* 0+1+4+9+16+25+36 */
    check_arrays("mpi-new", 7);
}

static void example_refuses_arrays_of_another_shape(void **state)
{
    (void)state;
    char out[4096];
    /* "squares" exists in "mpi" with 300001 elements (first test) */
    assert_int_not_equal(run_example("mpi", "5", out, sizeof out), 0);
    check_arrays("mpi", 300001);
    assert_int_not_equal(run_example("mpi", "not-a-number", out, sizeof out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_leaves_squares_and_their_sum),
        cmocka_unit_test(example_creates_a_missing_region),
        cmocka_unit_test(example_refuses_arrays_of_another_shape),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

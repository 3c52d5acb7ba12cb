/* SPDX-License-Identifier: Apache-2.0 */
/* ds_catalog_bench.c — what the dataset store's catalog and batch layer
 * cost, beside the libfam/libfamarray operations underneath, same run.
 *
 *   ds_catalog_bench [--providers shm,tcp] [--rows 1000000] [--trials 5]
 *
 * For each provider it starts two famd (volatile pools, the store's region
 * interleaved over both) and prints:
 *   - append: a batch of --rows rows x 4 columns (int64, float64, int64,
 *     int64 codes) begun, written and committed, in MB/s of column data,
 *     beside fa_create + fa_put of the same four arrays (no catalog);
 *   - read: one column of that batch with ds_read beside fa_get;
 *   - commit latency of a 1-row batch (verification + snapshot + CAS) with
 *     catalogs of 0, 100 and 1000 batches, beside one 128-bit CAS;
 *   - ds_info of a 1000-batch dataset, head unchanged (cached) and after
 *     another process's commit (snapshot fetched and parsed);
 *   - concurrent commits: P processes each committing 20 one-row batches,
 *     in commits/s over all of them (every commit retried until it lands).
 * Each cell is the median of --trials. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "kodiak/dataset.h"

static fam_t *f;
static char servers[200];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

#define OK(call)                                                                \
    do {                                                                        \
        int rc_ = (call);                                                       \
        if (rc_ < 0) {                                                          \
            fprintf(stderr, "%s failed: %s\n", #call, ds_last_error());         \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static const ds_column_def_t cols[] = {
    {"a", DS_INT64}, {"b", DS_FLOAT64}, {"c", DS_INT64}, {"d", DS_INT64}};

static ds_batch_t *small_batch(ds_store_t *s, const char *ds)
{
    ds_batch_t *b;
    OK(ds_batch_begin(s, ds, 1, &b));
    return b;
}

static void bench_provider(int trials, uint64_t rows)
{
    struct famd_proc p1, p2;
    if (famd_start(&p1, 1ull << 30, NULL) || famd_start(&p2, 1ull << 30, NULL)) {
        fprintf(stderr, "cannot start famd\n");
        exit(1);
    }
    snprintf(servers, sizeof servers, "%s,%s", p1.addr, p2.addr);
    if (!(f = client(servers))) exit(1);
    ds_store_t *s;
    OK(ds_open(f, "bench", DS_CREATE, 0600, &s));
    OK(ds_create_dataset(s, "Big", 4, cols));
    OK(ds_create_dataset(s, "Small", 4, cols));
    const char *prov = test_provider();
    double mb = 4.0 * 8 * (double)rows / 1e6;
    int64_t *buf = malloc(rows * 8);
    for (uint64_t i = 0; i < rows; i++) buf[i] = (int64_t)i;

    /* append vs bare arrays */
    double *ta = calloc((size_t)trials, sizeof *ta), *tb = calloc((size_t)trials, sizeof *tb);
    fa_array_t **bare = calloc(4 * (size_t)trials, sizeof *bare);
    for (int t = 0; t < trials; t++) {
        double t0 = now_s();
        ds_batch_t *b;
        OK(ds_batch_begin(s, "Big", rows, &b));
        for (int c = 0; c < 4; c++) OK(fa_put(ds_batch_array(b, (size_t)c), 0, rows, buf));
        OK(ds_commit(s, "Big", 1, &b));
        ds_batch_close(b);
        ta[t] = now_s() - t0;
        t0 = now_s();
        fa_array_t **a = bare + 4 * t; /* kept: both sides take fresh pool memory */
        for (int c = 0; c < 4; c++) {
            char nm[64];
            snprintf(nm, sizeof nm, "bare.%d.%d", t, c);
            OK(fa_create(f, "ds.bench", nm, c == 1 ? FA_FLOAT64 : FA_INT64, rows, 0600, &a[c]));
            OK(fa_put(a[c], 0, rows, buf));
        }
        tb[t] = now_s() - t0;
    }
    for (int i = 0; i < 4 * trials; i++) fa_destroy(bare[i]);
    free(bare);
    double a_ds = median(ta, trials), a_bare = median(tb, trials);
    printf("%-4s append %" PRIu64 " rows x 4 cols    %8.0f MB/s   fa_create+fa_put %8.0f MB/s   %5.2f\n",
           prov, rows, mb / a_ds, mb / a_bare, a_bare / a_ds);

    /* read one column */
    ds_info_t *in;
    OK(ds_info(s, "Big", &in));
    fa_array_t *arr;
    OK(fa_open(f, "ds.bench", in->batches[0].arrays[0], &arr));
    for (int t = 0; t < trials; t++) {
        double t0 = now_s();
        OK(ds_read(s, in, 0, 0, 0, rows, buf));
        ta[t] = now_s() - t0;
        t0 = now_s();
        OK(fa_get(arr, 0, rows, buf));
        tb[t] = now_s() - t0;
    }
    fa_close(arr);
    ds_free_info(in);
    double r_ds = median(ta, trials), r_bare = median(tb, trials);
    printf("%-4s ds_read %" PRIu64 " int64           %8.0f MB/s   fa_get           %8.0f MB/s   %5.2f\n",
           prov, rows, 8e-6 * (double)rows / r_ds, 8e-6 * (double)rows / r_bare, r_bare / r_ds);

    /* commit latency vs catalog size, beside one CAS */
    fam_item_t *head;
    OK(fam_lookup(f, "head", "ds.bench", &head));
    for (int t = 0; t < trials; t++) {
        uint64_t zero[2] = {0, 0}, old[2];
        double t0 = now_s();
        OK(fam_compare_swap_int128(f, head, 0, zero, zero, old));
        tb[t] = now_s() - t0;
    }
    double cas = median(tb, trials);
    fam_release(head);
    size_t have = 0;
    const size_t sizes[] = {0, 100, 1000};
    for (size_t k = 0; k < 3; k++) {
        while (have < sizes[k]) { /* grow the catalog: 100 batches per commit */
            ds_batch_t *bs[100];
            size_t m = sizes[k] - have < 100 ? sizes[k] - have : 100;
            for (size_t i = 0; i < m; i++) bs[i] = small_batch(s, "Small");
            OK(ds_commit(s, "Small", m, bs));
            for (size_t i = 0; i < m; i++) ds_batch_close(bs[i]);
            have += m;
        }
        for (int t = 0; t < trials; t++) {
            ds_batch_t *b = small_batch(s, "Small");
            double t0 = now_s();
            OK(ds_commit(s, "Small", 1, &b));
            ta[t] = now_s() - t0;
            ds_batch_close(b);
            have++;
        }
        printf("%-4s commit 1 batch, catalog of %4zu  %8.2f ms     one 128-bit CAS  %8.3f ms\n",
               prov, sizes[k], 1e3 * median(ta, trials), 1e3 * cas);
    }

    /* ds_info: cached and after a change */
    ds_store_t *s2;
    OK(ds_open(f, "bench", 0, 0, &s2));
    for (int t = 0; t < trials; t++) {
        OK(ds_info(s2, "Small", &in));
        ds_free_info(in);
        double t0 = now_s();
        OK(ds_info(s2, "Small", &in));
        ta[t] = now_s() - t0;
        ds_free_info(in);
        ds_batch_t *b = small_batch(s, "Small");
        OK(ds_commit(s, "Small", 1, &b));
        ds_batch_close(b);
        t0 = now_s();
        OK(ds_info(s2, "Small", &in));
        tb[t] = now_s() - t0;
        ds_free_info(in);
    }
    printf("%-4s ds_info of %zu batches: head unchanged %6.3f ms, after a commit %6.2f ms\n",
           prov, have + (size_t)trials, 1e3 * median(ta, trials), 1e3 * median(tb, trials));
    ds_close(s2);

    /* concurrent commits */
    for (int P = 1; P <= 4; P *= 2) {
        for (int t = 0; t < trials && t < 3; t++) {
            double t0 = now_s();
            pid_t pids[4];
            for (int p = 0; p < P; p++)
                if ((pids[p] = fork()) == 0) {
                    fam_t *g = client(servers);
                    ds_store_t *gs;
                    if (!g || ds_open(g, "bench", 0, 0, &gs)) _exit(2);
                    for (int i = 0; i < 20; i++) {
                        ds_batch_t *b;
                        if (ds_batch_begin(gs, "Small", 1, &b) || ds_commit(gs, "Small", 1, &b))
                            _exit(3);
                        ds_batch_close(b);
                    }
                    ds_close(gs);
                    fam_finalize(g);
                    _exit(0);
                }
            for (int p = 0; p < P; p++) {
                int st;
                waitpid(pids[p], &st, 0);
                if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                    fprintf(stderr, "writer failed\n");
                    exit(1);
                }
            }
            ta[t] = now_s() - t0;
        }
        printf("%-4s %d writer(s) x 20 commits            %8.0f commits/s (process start included)\n",
               prov, P, 20.0 * P / median(ta, trials < 3 ? trials : 3));
    }
    free(ta);
    free(tb);
    free(buf);
    ds_close(s);
    fam_finalize(f);
    famd_stop(&p1);
    famd_stop(&p2);
}

int main(int argc, char **argv)
{
    const char *provs = "shm,tcp";
    int trials = 5;
    uint64_t rows = 1000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--providers")) provs = argv[i + 1];
        else if (!strcmp(argv[i], "--trials")) trials = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows")) rows = strtoull(argv[i + 1], NULL, 10);
    }
    if (trials < 1 || rows < 1) return 2;
    printf("# ds_catalog_bench: 2 famd, region interleaved, median of %d; ratio = bare time / ds time\n",
           trials);
    char *list = strdup(provs);
    for (char *save, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        setenv("FAM_TEST_PROVIDER", p, 1);
        bench_provider(trials, rows);
    }
    free(list);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* h5_bench.c — HDF5 through the driver "fam" beside the sec2 driver on
 * /dev/shm and beside bare libfam put/get of the same bytes, same run.
 *
 *   h5_bench [--providers shm,tcp] [--mib 1024] [--famds 1] [--trials 3]
 *            [--reads 5000]
 *
 * For each provider it starts --famds famd (volatile pools; with 2 the
 * region is interleaved) and prints, in MB/s of dataset bytes:
 *   - write and read of one --mib MiB int64 dataset, contiguous, and
 *     chunked in 1 MiB chunks (no filter): H5Fcreate + H5Dwrite + H5Fclose,
 *     and H5Fopen + H5Dread + H5Fclose; the ratio is against bare libfam
 *     (fam_put_blocking / fam_get_blocking of the same bytes into one
 *     item of the same region) — and the same HDF5 calls with sec2 on a
 *     /dev/shm file beside it;
 *   - rewrite: the existing file opened for writing and its dataset written
 *     again (H5Fopen RDWR + H5Dwrite + H5Fclose), beside a bare put of the
 *     same bytes into the item already written;
 *   - --reads random 8-element hyperslab reads of the contiguous dataset
 *     (file open, dataset open), in µs per read, with FAM requests per read
 *     counted by the driver (h5fam_get_stats), beside one 64-byte
 *     fam_get_blocking and beside the same reads with sec2 on /dev/shm, and
 *     the bytes HDF5 asked the driver for per read (its raw-data sieve:
 *     4 KiB as H5Pset_fapl_fam sets it; H5_BENCH_SIEVE=BYTES sets another).
 * Each cell is the median of --trials; each trial runs every case once,
 * so a busy spell of a shared machine falls on all columns alike. Compare
 * columns of one run, not runs. H5_BENCH_VERBOSE=1 prints every trial. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "kodiak/h5fam.h"

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

static void die(const char *what)
{
    fprintf(stderr, "h5_bench: %s failed", what);
    if (fam_last_error()[0]) fprintf(stderr, ": %s", fam_last_error());
    fprintf(stderr, "\n");
    H5Eprint2(H5E_DEFAULT, stderr);
    exit(1);
}

/* Write then read one dataset with the given fapl, then (rw != NULL)
 * write the existing file's dataset again; times in w, r and rw. */
static void h5_write_read(hid_t fapl, const char *name, int chunked, int64_t *buf,
                          int64_t *back, uint64_t n, double *w, double *r, double *rw)
{
    double t0 = now_s();
    hid_t fid = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fid < 0) die("H5Fcreate");
    hsize_t dims[1] = {n}, chunk[1] = {(1u << 20) / 8};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) H5Pset_chunk(dcpl, 1, chunk);
    hid_t ds = H5Dcreate2(fid, "v", H5T_NATIVE_INT64, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        die("H5Dwrite");
    H5Dclose(ds); H5Pclose(dcpl); H5Sclose(sp);
    if (H5Fclose(fid) < 0) die("H5Fclose");
    *w = now_s() - t0;
    t0 = now_s();
    fid = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    if (fid < 0) die("H5Fopen");
    ds = H5Dopen2(fid, "v", H5P_DEFAULT);
    if (ds < 0 || H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) < 0)
        die("H5Dread");
    H5Dclose(ds);
    H5Fclose(fid);
    *r = now_s() - t0;
    if (memcmp(buf, back, n * 8)) die("read-back comparison");
    if (!rw) return;
    t0 = now_s(); /* the rewrite: open for writing, the same bytes again */
    fid = H5Fopen(name, H5F_ACC_RDWR, fapl);
    if (fid < 0) die("H5Fopen for the rewrite");
    ds = H5Dopen2(fid, "v", H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        die("H5Dwrite (rewrite)");
    H5Dclose(ds);
    if (H5Fclose(fid) < 0) die("H5Fclose (rewrite)");
    *rw = now_s() - t0;
}

static void bench_provider(const char *prov, int nfamd, uint64_t mib, int trials,
                           int nreads)
{
    setenv("FAM_TEST_PROVIDER", prov, 1);
    struct famd_proc p[2];
    char servers[256] = "";
    uint64_t pool = (mib << 20) + (mib << 19) + (256u << 20);
    for (int i = 0; i < nfamd; i++) {
        if (famd_start(&p[i], pool / (uint64_t)nfamd + (128u << 20), NULL)) die("famd_start");
        if (i) strcat(servers, ",");
        strcat(servers, p[i].addr);
    }
    /* the fixture's client() has a short test timeout; a 1 GiB put on a
     * shared machine may need longer */
    fam_options_t fo = {0};
    fo.servers = servers;
    fo.provider = prov;
    fo.timeout_ms = 120000;
    fam_t *f;
    if (fam_initialize(&fo, &f) < 0) die("fam_initialize");
    fam_region_attr_t at = {0};
    at.interleave = nfamd == 2 ? FAM_INTERLEAVE_ENABLE : FAM_INTERLEAVE_DISABLE;
    fam_region_t *r;
    if (fam_create_region(f, "bench", pool, 0700, &at, &r) < 0) die("fam_create_region");

    uint64_t bytes = mib << 20, n = bytes / 8;
    int64_t *buf = malloc(bytes), *back = malloc(bytes);
    if (!buf || !back) die("malloc");
    for (uint64_t i = 0; i < n; i++) buf[i] = (int64_t)(i * 2654435761u);
    memset(back, 0, bytes); /* fault the pages in before timing */

    /* trials interleave the five cases (bare, fam and sec2, contiguous and
     * chunked), so a busy spell of the shared machine hits all columns */
    double tw[5][8], tr[5][8], trw[5][8], bw[5], br[5], brw[5];
    hid_t ffam = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_fam(ffam, servers, prov);
    /* H5_BENCH_SIEVE=BYTES: another raw-data sieve than the driver's 4 KiB
     * (65536 is HDF5's own default) */
    if (getenv("H5_BENCH_SIEVE") && *getenv("H5_BENCH_SIEVE"))
        H5Pset_sieve_buf_size(ffam, (size_t)atol(getenv("H5_BENCH_SIEVE")));
    hid_t fsec2 = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_sec2(fsec2);
    char shm[128];
    snprintf(shm, sizeof shm, "/dev/shm/h5_bench-%d.h5", (int)getpid());
    for (int k = 0; k < trials; k++) {
        fam_item_t *d;
        if (fam_allocate(f, "bare", bytes, 0600, r, &d) < 0) die("fam_allocate");
        double t0 = now_s();
        if (fam_put_blocking(f, buf, d, 0, bytes) < 0) die("fam_put_blocking");
        tw[0][k] = now_s() - t0;
        t0 = now_s();
        if (fam_get_blocking(f, back, d, 0, bytes) < 0) die("fam_get_blocking");
        tr[0][k] = now_s() - t0;
        t0 = now_s(); /* bare rewrite: the same bytes into the same item */
        if (fam_put_blocking(f, buf, d, 0, bytes) < 0) die("fam_put_blocking");
        trw[0][k] = now_s() - t0;
        fam_deallocate(f, d);
        for (int chunked = 0; chunked < 2; chunked++) {
            int c = 1 + 2 * chunked;
            h5_write_read(ffam, "bench/b.h5", chunked, buf, back, n, &tw[c][k], &tr[c][k],
                          &trw[c][k]);
            /* give its extents back, so the next bare item fits */
            H5FD_t *e = H5FDopen("bench/b.h5", H5F_ACC_RDWR | H5F_ACC_TRUNC, ffam,
                                 HADDR_UNDEF);
            if (!e || H5FDtruncate(e, H5P_DEFAULT, 1) < 0 || H5FDclose(e) < 0)
                die("emptying bench/b.h5"); /* eoa 0: every extent freed */
            h5_write_read(fsec2, shm, chunked, buf, back, n, &tw[c + 1][k], &tr[c + 1][k],
                          &trw[c + 1][k]);
            unlink(shm);
            if (getenv("H5_BENCH_VERBOSE"))
                fprintf(stderr, "trial %d %s: bare %.3f/%.3f s, fam %.3f/%.3f s, "
                        "sec2 %.3f/%.3f s (write/read)\n", k,
                        chunked ? "chunked" : "contiguous", tw[0][k], tr[0][k],
                        tw[c][k], tr[c][k], tw[c + 1][k], tr[c + 1][k]);
        }
    }
    for (int c = 0; c < 5; c++) {
        bw[c] = median(tw[c], trials);
        br[c] = median(tr[c], trials);
        brw[c] = median(trw[c], trials);
    }
    double mb = (double)bytes / 1e6;
    char load[64] = "?";
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (!fgets(load, sizeof load, la)) strcpy(load, "?");
        fclose(la);
        load[strcspn(load, " ")] = '\0';
    }
    printf("\n%s, %d famd, %" PRIu64 " MiB int64 dataset, median of %d; load average "
           "after the run %s on %ld cores\n", prov, nfamd, mib, trials, load,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-26s %12s %14s %8s %16s\n", "op", "fam driver", "bare libfam", "ratio",
           "sec2 /dev/shm");
    const char *lay[2] = {"contiguous", "chunked 1 MiB"};
    for (int c = 0; c < 2; c++) {
        printf("write %-20s %8.0f MB/s %9.0f MB/s %8.2f %11.0f MB/s\n", lay[c],
               mb / bw[1 + 2 * c], mb / bw[0], bw[0] / bw[1 + 2 * c], mb / bw[2 + 2 * c]);
        printf("read  %-20s %8.0f MB/s %9.0f MB/s %8.2f %11.0f MB/s\n", lay[c],
               mb / br[1 + 2 * c], mb / br[0], br[0] / br[1 + 2 * c], mb / br[2 + 2 * c]);
        printf("rewrite %-18s %8.0f MB/s %9.0f MB/s %8.2f %11.0f MB/s\n", lay[c],
               mb / brw[1 + 2 * c], mb / brw[0], brw[0] / brw[1 + 2 * c],
               mb / brw[2 + 2 * c]);
    }

    /* small hyperslab reads of the contiguous dataset, through the fam
     * driver and through sec2 on /dev/shm (HDF5's own cost per H5Dread) */
    double per = 0, per_sec2 = 0;
    h5fam_stats_t s;
    for (int side = 0; side < 2; side++) {
        const char *name = side ? shm : "bench/b.h5";
        hid_t fapl = side ? fsec2 : ffam;
        h5_write_read(fapl, name, 0, buf, back, n, &tw[1][0], &tr[1][0], NULL);
        hid_t fid = H5Fopen(name, H5F_ACC_RDONLY, fapl);
        hid_t ds = H5Dopen2(fid, "v", H5P_DEFAULT);
        hid_t sp = H5Dget_space(ds);
        hsize_t cnt[1] = {8};
        hid_t ms = H5Screate_simple(1, cnt, NULL);
        int64_t small[8];
        srand(3);
        for (int warm = 0; warm < 200; warm++) { /* every extent looked up once */
            hsize_t st[1] = {(hsize_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % (n - 8))};
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, st, NULL, cnt, NULL);
            H5Dread(ds, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, small);
        }
        h5fam_reset_stats();
        double t0 = now_s();
        for (int i = 0; i < nreads; i++) {
            hsize_t st[1] = {(hsize_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % (n - 8))};
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, st, NULL, cnt, NULL);
            if (H5Dread(ds, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, small) < 0) die("H5Dread");
            if (small[0] != buf[st[0]]) die("small read comparison");
        }
        *(side ? &per_sec2 : &per) = (now_s() - t0) / nreads;
        if (!side) h5fam_get_stats(&s);
        H5Sclose(ms); H5Sclose(sp); H5Dclose(ds); H5Fclose(fid);
    }
    unlink(shm);
    fam_item_t *d;
    int64_t small[8];
    if (fam_allocate(f, "small", 1 << 20, 0600, r, &d) < 0) die("fam_allocate");
    double t0 = now_s();
    for (int i = 0; i < nreads; i++)
        if (fam_get_blocking(f, small, d, (uint64_t)(rand() % ((1 << 20) - 64)), 64) < 0)
            die("fam_get_blocking");
    double bare = (now_s() - t0) / nreads;
    /* what a sieve-sized get costs: the driver's 4 KiB, HDF5's 64 KiB */
    double sieve_get[2];
    static char sieve_buf[65536];
    for (int z = 0; z < 2; z++) {
        size_t len = z ? 65536 : 4096;
        t0 = now_s();
        for (int i = 0; i < nreads; i++)
            if (fam_get_blocking(f, sieve_buf, d,
                                 (uint64_t)(rand() % ((1 << 20) - (int)len)), len) < 0)
                die("fam_get_blocking");
        sieve_get[z] = (now_s() - t0) / nreads;
    }
    fam_deallocate(f, d);
    printf("%-26s %8.1f us    %9.1f us %8.2f %11.1f us\n", "8-element hyperslab read",
           per * 1e6, bare * 1e6, per / bare, per_sec2 * 1e6);
    printf("  (bare: one 64-byte fam_get_blocking; ratio here is time, lower is better)\n"
           "  FAM requests per hyperslab read: %.2f (gets %.2f, other %.2f)\n",
           (double)(s.fam_gets + s.fam_other) / nreads, (double)s.fam_gets / nreads,
           (double)s.fam_other / nreads);
    printf("  bytes read per hyperslab read: %.0f (the 64 asked for, or HDF5's sieve buffer)\n",
           (double)s.read_bytes / nreads);
    printf("  one bare get of 4 KiB: %.1f us, of 64 KiB: %.1f us (a sieve buffer's fill)\n",
           sieve_get[0] * 1e6, sieve_get[1] * 1e6);
    H5Pclose(ffam);
    H5Pclose(fsec2);
    H5close(); /* the driver's connection goes before the servers */
    free(buf);
    free(back);
    fam_release_region(r);
    fam_finalize(f);
    for (int i = 0; i < nfamd; i++) famd_stop(&p[i]);
}

int main(int argc, char **argv)
{
    char provs[64] = "shm,tcp";
    uint64_t mib = 1024;
    int trials = 3, nfamd = 1, nreads = 5000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--providers") && i + 1 < argc)
            snprintf(provs, sizeof provs, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = strtoull(argv[++i], 0, 10);
        else if (!strcmp(argv[i], "--trials") && i + 1 < argc) trials = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--famds") && i + 1 < argc) nfamd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reads") && i + 1 < argc) nreads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: h5_bench [--providers shm,tcp] [--mib N] "
                    "[--famds 1|2] [--trials N] [--reads N]\n");
            return 2;
        }
    }
    if (trials < 1 || trials > 8 || mib < 2 || nfamd < 1 || nfamd > 2 || nreads < 1) {
        fprintf(stderr, "h5_bench: --trials 1..8, --mib >= 2, --famds 1 or 2\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (char *save, *pv = strtok_r(provs, ",", &save); pv; pv = strtok_r(NULL, ",", &save))
        bench_provider(pv, nfamd, mib, trials, nreads);
    return 0;
}

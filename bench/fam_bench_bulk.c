/* SPDX-License-Identifier: Apache-2.0 */
/* fam_bench_bulk.c — bulk work at memory speed: indexed gather and scatter
 * of 8-byte elements, GUPS and copy, each beside a plain C loop on local
 * memory measured in the same run. Called by fam_bench (--bulk).
 *
 * Gather/scatter: N random indices (default 10^7) into one data item of
 * --bulk-bytes (default 1 GiB), in M elements/s, for: a C loop over an
 * array of the same size in the same kind of memory as famd's volatile
 * pool (anonymous, transparent huge pages asked for with madvise), so the
 * ratio shows what FAM costs and not the page size (a row with 4 KiB
 * pages shows what the page size alone is worth); the same-host fast path (a famd whose
 * pool is a file in /dev/shm, mapped by the client); famd over libfabric
 * shm; famd over tcp; and the naive path of one RMA per element (measured
 * on the first --naive indices only: it is ~100x slower).
 *
 * GUPS (HPCC RandomAccess's update: table[i] ^= value at random i): the
 * same N updates done as bulk atomics (fam_atomic_index, FAM_AOP_XOR) by
 * famd, and by the fast path, beside the C loop; in giga-updates/s.
 *
 * Copy: fam_copy of --copy-bytes between items on two memory servers
 * (famd writes to famd), in GB/s, beside memcpy of the same size. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fam/fam.h"
#include "fam_bench_bulk.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A famd of our own: started with --port 0, its address read from its
 * ready line; stopped with SIGTERM. */
struct server {
    pid_t pid;
    char addr[64];
};

static int start_famd(const char *bin, const char *provider, uint64_t pool,
                      const char *pool_file, struct server *s)
{
    int fds[2];
    if (pipe(fds)) return -1;
    char size[32];
    snprintf(size, sizeof size, "%llu", (unsigned long long)pool);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (pool_file)
            execl(bin, bin, "--port", "0", "--pool-size", size, "--provider",
                  provider, "--pool-file", pool_file, (char *)NULL);
        else
            execl(bin, bin, "--port", "0", "--pool-size", size, "--provider",
                  provider, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok || sscanf(line, "famd ready %63s", s->addr) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    s->pid = pid;
    return 0;
}

static void stop_famd(struct server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static uint64_t xs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    xs ^= xs << 13;
    xs ^= xs >> 7;
    xs ^= xs << 17;
    return xs;
}

/* Rates of one configuration, in elements (or updates) per second. */
struct rates {
    double gather, scatter, gups;
};

static double best(double a, double b) { return a > b ? a : b; }

/* Memory for the C loop: anonymous, with huge pages asked for as famd asks
 * for its volatile pool's (famd_pool.c), or 4 KiB pages (MADV_NOHUGEPAGE). */
static uint64_t *local_array(size_t bytes, int huge)
{
    void *a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) return NULL;
    madvise(a, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return a;
}

/* The C loop on local memory: the baseline. */
static struct rates c_loop(uint64_t elems, const uint64_t *idx, uint64_t n,
                           uint64_t *vals, int trials, int huge)
{
    struct rates r = {0};
    uint64_t *a = local_array(elems * 8, huge);
    if (!a) return r;
    for (uint64_t i = 0; i < elems; i++) a[i] = i;
    for (int t = 0; t < trials; t++) {
        double t0 = now_s();
        for (uint64_t i = 0; i < n; i++) vals[i] = a[idx[i]];
        double t1 = now_s();
        for (uint64_t i = 0; i < n; i++) a[idx[i]] = vals[i];
        double t2 = now_s();
        for (uint64_t i = 0; i < n; i++) a[idx[i]] ^= vals[i];
        double t3 = now_s();
        r.gather = best(r.gather, (double)n / (t1 - t0));
        r.scatter = best(r.scatter, (double)n / (t2 - t1));
        r.gups = best(r.gups, (double)n / (t3 - t2));
    }
    munmap(a, elems * 8);
    return r;
}

/* One famd configuration: gather, scatter, xor updates through libfam. */
static int through_fam(fam_t *f, fam_item_t *d, const uint64_t *idx, uint64_t n,
                       uint64_t *vals, int trials, struct rates *r)
{
    memset(r, 0, sizeof *r);
    for (int t = 0; t < trials; t++) {
        double t0 = now_s();
        if (fam_gather_blocking_index(f, vals, d, n, idx, 8)) return -1;
        double t1 = now_s();
        if (fam_scatter_blocking_index(f, vals, d, n, idx, 8)) return -1;
        double t2 = now_s();
        if (fam_atomic_index(f, d, FAM_AOP_XOR, FAM_UINT64, n, idx, vals, NULL))
            return -1;
        double t3 = now_s();
        r->gather = best(r->gather, (double)n / (t1 - t0));
        r->scatter = best(r->scatter, (double)n / (t2 - t1));
        r->gups = best(r->gups, (double)n / (t3 - t2));
    }
    return 0;
}

/* The naive path: one RMA per element, as before bulk requests. */
static int naive(fam_t *f, fam_item_t *d, const uint64_t *idx, uint64_t n,
                 uint64_t *vals, struct rates *r)
{
    memset(r, 0, sizeof *r);
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++)
        if (fam_get_nonblocking(f, &vals[i], d, idx[i] * 8, 8)) return -1;
    if (fam_quiet(f)) return -1;
    double t1 = now_s();
    for (uint64_t i = 0; i < n; i++)
        if (fam_put_nonblocking(f, &vals[i], d, idx[i] * 8, 8)) return -1;
    if (fam_quiet(f)) return -1;
    double t2 = now_s();
    for (uint64_t i = 0; i < n; i++)
        if (fam_xor_uint64(f, d, idx[i] * 8, vals[i])) return -1;
    double t3 = now_s();
    r->gather = (double)n / (t1 - t0);
    r->scatter = (double)n / (t2 - t1);
    r->gups = (double)n / (t3 - t2);
    return 0;
}

/* Connect, make a region and an item of `bytes`, touch every page. */
static fam_t *open_item(const char *servers, const char *provider, const char *model,
                        uint64_t bytes, int interleave, fam_item_t **d)
{
    fam_options_t o = {.servers = servers, .provider = provider, .model = model,
                       .timeout_ms = 120000};
    fam_t *f;
    if (fam_initialize(&o, &f)) return NULL;
    fam_region_attr_t a = {.interleave = interleave ? FAM_INTERLEAVE_ENABLE
                                                    : FAM_INTERLEAVE_DISABLE};
    fam_region_t *r;
    if (fam_create_region(f, "bench", bytes + (bytes >> 4) + (64 << 20), 0700, &a, &r) ||
        fam_allocate(f, "table", bytes, 0600, r, d)) {
        fprintf(stderr, "fam_bench: %s\n", fam_last_error());
        fam_finalize(f);
        return NULL;
    }
    char *zero = calloc(1, 4 << 20);
    for (uint64_t at = 0; at < bytes; at += 4 << 20) /* fault the pages in */
        fam_put_blocking(f, zero, *d, at, bytes - at < (4u << 20) ? bytes - at : 4u << 20);
    free(zero);
    return f;
}

static void row(const char *what, const char *path, double v, double base,
                const char *unit)
{
    printf("%-22s %-26s %10.2f %-5s %10.2f %8.2f\n", what, path, v, unit, base,
           base > 0 ? v / base : 0);
}

int fam_bench_bulk(const struct bulk_opts *o)
{
    uint64_t elems = o->bytes / 8, n = o->n;
    uint64_t *idx = malloc(n * 8), *vals = malloc(n * 8);
    if (!idx || !vals) return 1;
    for (uint64_t i = 0; i < n; i++) {
        idx[i] = rnd() % elems;
        vals[i] = rnd();
    }
    printf("\n== bulk work: %llu random 8-byte elements of a %.2f GiB item ==\n",
           (unsigned long long)n, (double)o->bytes / (1u << 30));
    printf("%-22s %-26s %10s %-5s %10s %8s\n", "op", "path", "rate", "",
           "C loop", "ratio");
    struct rates base = c_loop(elems, idx, n, vals, o->trials, 1);
    struct rates small = c_loop(elems, idx, n, vals, o->trials, 0);

    struct { const char *name, *provider, *model; int file; } cfg[] = {
        {"fast path (mapped)", "shm", "shared_memory", 1},
        {"famd, libfabric shm", "shm", "memory_server", 0},
        {"famd, libfabric tcp", "tcp", "memory_server", 0},
    };
    struct rates got[3], slow = {0};
    int have[3] = {0}, have_slow = 0;
    for (int c = 0; c < 3; c++) {
        if (!strstr(o->providers, cfg[c].provider)) continue;
        char pool_file[128];
        snprintf(pool_file, sizeof pool_file, "/dev/shm/kodiak-bench-%d.pool", (int)getpid());
        struct server s = {0};
        if (start_famd(o->famd, cfg[c].provider, o->bytes + (o->bytes >> 4) + (128 << 20),
                       cfg[c].file ? pool_file : NULL, &s)) {
            fprintf(stderr, "fam_bench: cannot start famd\n");
            continue;
        }
        fam_item_t *d;
        fam_t *f = open_item(s.addr, cfg[c].provider, cfg[c].model, o->bytes, 0, &d);
        if (f) {
            if (cfg[c].file && fam_num_local_servers(f) != 1)
                fprintf(stderr, "fam_bench: the fast path did not map the pool\n");
            have[c] = through_fam(f, d, idx, n, vals, o->trials, &got[c]) == 0;
            if (c == 1 && o->naive) /* one RMA per element, over shm */
                have_slow = naive(f, d, idx, o->naive < n ? o->naive : n, vals, &slow) == 0;
            fam_finalize(f);
        }
        stop_famd(&s);
        if (cfg[c].file) unlink(pool_file);
    }
    const char *ops[3] = {"gather (M elem/s)", "scatter (M elem/s)", "GUPS xor (M upd/s)"};
    for (int k = 0; k < 3; k++) {
        double b = k == 0 ? base.gather : k == 1 ? base.scatter : base.gups;
        double sm = k == 0 ? small.gather : k == 1 ? small.scatter : small.gups;
        row(ops[k], "C loop, local, huge pages", b / 1e6, b / 1e6, "M/s");
        row(ops[k], "C loop, local, 4 KiB pages", sm / 1e6, b / 1e6, "M/s");
        for (int c = 0; c < 3; c++) {
            if (!have[c]) continue;
            double v = k == 0 ? got[c].gather : k == 1 ? got[c].scatter : got[c].gups;
            row(ops[k], cfg[c].name, v / 1e6, b / 1e6, "M/s");
        }
        if (have_slow) {
            double v = k == 0 ? slow.gather : k == 1 ? slow.scatter : slow.gups;
            row(ops[k], "naive: 1 RMA/element, shm", v / 1e6, b / 1e6, "M/s");
        }
    }

    /* copy between two memory servers */
    uint64_t cb = o->copy_bytes;
    /* memcpy between buffers like famd's pool (huge pages) */
    char *src = (char *)local_array(cb, 1), *dst = (char *)local_array(cb, 1);
    if (!src || !dst) return 1;
    memset(src, 1, cb);
    memset(dst, 2, cb);
    double mt = 1e9;
    for (int t = 0; t < o->trials; t++) {
        double t0 = now_s();
        memcpy(dst, src, cb);
        double t1 = now_s();
        if (t1 - t0 < mt) mt = t1 - t0;
    }
    munmap(src, cb);
    munmap(dst, cb);
    double mem_gbs = (double)cb / mt / 1e9;
    const char *provs[2] = {"shm", "tcp"};
    for (int p = 0; p < 2; p++) {
        if (!strstr(o->providers, provs[p])) continue;
        struct server a = {0}, b = {0};
        uint64_t pool = cb + (64 << 20);
        if (start_famd(o->famd, provs[p], pool, NULL, &a) ||
            start_famd(o->famd, provs[p], pool, NULL, &b)) {
            stop_famd(&a);
            continue;
        }
        char both[160];
        snprintf(both, sizeof both, "%s,%s", a.addr, b.addr);
        fam_options_t fo = {.servers = both, .provider = provs[p], .timeout_ms = 120000};
        fam_t *f;
        double gbs = 0;
        if (fam_initialize(&fo, &f) == 0) {
            /* two plain regions on different home servers */
            fam_region_t *r[2] = {0};
            fam_item_t *it[2] = {0};
            char rname[2][32];
            int made = 0;
            for (int i = 0; i < 64 && made < 2; i++) {
                char name[32];
                snprintf(name, sizeof name, "copy%d", i);
                fam_region_t *rr;
                if (fam_create_region(f, name, cb + (16 << 20), 0700, NULL, &rr)) break;
                fam_item_t *d;
                if (fam_allocate(f, "x", cb, 0600, rr, &d)) break;
                /* keep the first, then the first whose home differs: a
                 * copy to the same server is a memmove, not what we time */
                if (made == 1) {
                    /* same-home test: a 1-server client of a's address sees both */
                    fam_options_t so = {.servers = a.addr, .provider = provs[p]};
                    fam_t *g;
                    int same = 0;
                    if (fam_initialize(&so, &g) == 0) {
                        fam_region_t *x, *y;
                        int s1 = fam_lookup_region(g, rname[0], &x) == 0;
                        int s2 = fam_lookup_region(g, name, &y) == 0;
                        same = s1 == s2;
                        if (s1) fam_release_region(x);
                        if (s2) fam_release_region(y);
                        fam_finalize(g);
                    }
                    if (same) {
                        fam_destroy_region(f, rr);
                        continue;
                    }
                }
                r[made] = rr;
                snprintf(rname[made], sizeof rname[made], "%s", name);
                it[made++] = d;
            }
            if (made == 2) {
                char *fill = malloc(4 << 20);
                memset(fill, 3, 4 << 20);
                for (uint64_t at = 0; at < cb; at += 4 << 20) {
                    fam_put_blocking(f, fill, it[0], at, 4 << 20);
                    fam_put_blocking(f, fill, it[1], at, 4 << 20);
                }
                free(fill);
                double bt = 1e9;
                for (int t = 0; t < o->trials; t++) {
                    fam_copy_t *h;
                    double t0 = now_s();
                    if (fam_copy(f, it[0], 0, it[1], 0, cb, &h) || fam_copy_wait(f, h)) {
                        fprintf(stderr, "fam_bench: copy: %s\n", fam_last_error());
                        break;
                    }
                    double t1 = now_s();
                    if (t1 - t0 < bt) bt = t1 - t0;
                }
                gbs = bt < 1e9 ? (double)cb / bt / 1e9 : 0;
            }
            for (int i = 0; i < made; i++) fam_destroy_region(f, r[i]);
            fam_finalize(f);
        }
        stop_famd(&a);
        stop_famd(&b);
        char path[64];
        snprintf(path, sizeof path, "famd to famd, %s", provs[p]);
        if (gbs > 0) {
            printf("%-22s %-26s %10.2f %-5s %10.2f %8.2f\n", "copy (GB/s)", path,
                   gbs, "GB/s", mem_gbs, gbs / mem_gbs);
        }
    }
    printf("(copy baseline: memcpy of %.0f MiB in this process, huge pages as famd's pool)\n",
           (double)cb / (1 << 20));
    free(idx);
    free(vals);
    return 0;
}

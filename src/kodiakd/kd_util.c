/* SPDX-License-Identifier: Apache-2.0 */
/* kd_util.c — what every command handler uses: dtypes, block distribution,
 * errors agreed between ranks, argument parsing, the symbol table, array
 * memory, reply building, and moving a request frame to the ranks and back.
 *
 * Array memory comes from mmap with huge pages when large; freed large
 * buffers are kept in a small cache and handed out again, because touching
 * fresh pages (a page fault per 4 KiB, zeroing) costs more than the
 * arithmetic of an element-wise operation. */
#define _GNU_SOURCE
#include "kd.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <fenv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

kd_server kd_srv;

/* ---- dtypes ------------------------------------------------------------------- */

static const char *dtype_names[KD_NDTYPES] = {"int64", "uint64", "float64", "bool"};

const char *kd_dtype_name(kd_dtype t)
{
    return (unsigned)t < KD_NDTYPES ? dtype_names[t] : "?";
}

int kd_dtype_parse(const char *s, kd_dtype *t)
{
    for (int i = 0; i < KD_NDTYPES; i++)
        if (s && strcmp(s, dtype_names[i]) == 0) {
            *t = (kd_dtype)i;
            return 0;
        }
    return -1;
}

size_t kd_dtype_size(kd_dtype t)
{
    return t == KD_BOOL ? 1 : 8;
}

MPI_Datatype kd_dtype_mpi(kd_dtype t)
{
    switch (t) {
    case KD_INT64: return MPI_INT64_T;
    case KD_UINT64: return MPI_UINT64_T;
    case KD_FLOAT64: return MPI_DOUBLE;
    default: return MPI_UINT8_T;
    }
}

/* ---- distribution ---------------------------------------------------------------- */

void kd_block(int64_t size, int nranks, int rank, int64_t *lo, int64_t *hi)
{
    *lo = (int64_t)((__int128)size * rank / nranks);
    *hi = (int64_t)((__int128)size * (rank + 1) / nranks);
}

int kd_owner(int64_t size, int nranks, int64_t i)
{
    /* the r with lo(r) <= i < lo(r+1); start from the estimate and fix it */
    int r = size ? (int)((__int128)i * nranks / size) : 0;
    int64_t lo, hi;
    for (;;) {
        kd_block(size, nranks, r, &lo, &hi);
        if (i < lo)
            r--;
        else if (i >= hi && r < nranks - 1)
            r++;
        else
            return r;
    }
}

/* ---- errors ------------------------------------------------------------------------ */

int kd_fail(kd_cmd *c, const char *type, const char *fmt, ...)
{
    if (!c->failed) { /* keep the first error: it is the cause */
        c->failed = 1;
        snprintf(c->err_type, sizeof c->err_type, "%s", type);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void kd_quiet_barrier(MPI_Comm comm)
{
    MPI_Request rq;
    MPI_Ibarrier(comm, &rq);
    /* sleeps of 10 us doubling to 80 us while the wait is short (a
     * commit, a batch: a rank woke up to 0.5 ms after the others were
     * there, several times per command), to 640 us after 20 ms (long
     * waits cost no core) */
    long sleep_ns = 10000;
    double t0 = MPI_Wtime();
    for (int spins = 0;; spins++) {
        int done = 0;
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        if (spins < 100)
            continue;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < (MPI_Wtime() - t0 < 0.02 ? 80000 : 640000))
            sleep_ns *= 2;
    }
}

void kd_test_hold(const char *env, const char *what)
{
    const char *e = getenv(env);
    long ms = e ? strtol(e, NULL, 10) : 0;
    if (ms <= 0 || ms > 60000)
        return;
    fprintf(stderr, "kodiakd: test hold: %s, %ld ms (%s)\n", what, ms, env);
    fflush(stderr);
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
}

int kd_agree(kd_cmd *c, int rc)
{
    int mine = rc ? c->rank : c->nranks, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm);
    if (first == c->nranks)
        return 0;
    if (first != 0) {
        char buf[sizeof c->err_type + sizeof c->err_msg];
        if (c->rank == first) {
            memcpy(buf, c->err_type, sizeof c->err_type);
            memcpy(buf + sizeof c->err_type, c->err_msg, sizeof c->err_msg);
            MPI_Send(buf, sizeof buf, MPI_CHAR, 0, KD_TAG_ERROR, c->comm);
        } else if (c->rank == 0) {
            MPI_Recv(buf, sizeof buf, MPI_CHAR, first, KD_TAG_ERROR, c->comm, MPI_STATUS_IGNORE);
            memcpy(c->err_type, buf, sizeof c->err_type);
            memcpy(c->err_msg, buf + sizeof c->err_type, sizeof c->err_msg);
            c->err_type[sizeof c->err_type - 1] = '\0';
            c->err_msg[sizeof c->err_msg - 1] = '\0';
        }
    }
    c->failed = 1;
    return -1;
}

/* ---- arguments ------------------------------------------------------------------------ */

bool kd_has_arg(kd_cmd *c, const char *key)
{
    json_object *v;
    return c->args && json_object_object_get_ex(c->args, key, &v) && v != NULL;
}

static json_object *arg(kd_cmd *c, const char *key, json_type want, const char *what)
{
    json_object *v = NULL;
    if (!c->args || !json_object_object_get_ex(c->args, key, &v) || !v) {
        kd_fail(c, "TypeError", "%s: missing argument '%s'", c->cmd, key);
        return NULL;
    }
    if (!json_object_is_type(v, want) &&
        !(want == json_type_double && json_object_is_type(v, json_type_int))) {
        kd_fail(c, "TypeError", "%s: argument '%s' must be %s", c->cmd, key, what);
        return NULL;
    }
    return v;
}

int kd_arg_i64(kd_cmd *c, const char *key, int64_t *v)
{
    json_object *o = arg(c, key, json_type_int, "an integer");
    if (!o)
        return -1;
    errno = 0;
    *v = json_object_get_int64(o);
    /* json-c clamps numbers past int64 to INT64_MAX (keeping up to
     * UINT64_MAX as uint64): 2^63 or 10^30 must not pass for INT64_MAX */
    if (errno || (*v == INT64_MAX && json_object_get_uint64(o) != (uint64_t)INT64_MAX))
        return kd_fail(c, "ValueError", "%s: argument '%s' is out of range", c->cmd, key);
    return 0;
}

int kd_arg_f64(kd_cmd *c, const char *key, double *v)
{
    json_object *o = arg(c, key, json_type_double, "a number");
    if (!o)
        return -1;
    *v = json_object_get_double(o);
    return 0;
}

int kd_arg_bool(kd_cmd *c, const char *key, bool *v)
{
    json_object *o = arg(c, key, json_type_boolean, "true or false");
    if (!o)
        return -1;
    *v = json_object_get_boolean(o);
    return 0;
}

int kd_arg_str(kd_cmd *c, const char *key, const char **v)
{
    json_object *o = arg(c, key, json_type_string, "a string");
    if (!o)
        return -1;
    *v = json_object_get_string(o);
    /* a \u0000 inside would make C see a shorter, different string */
    if ((size_t)json_object_get_string_len(o) != strlen(*v))
        return kd_fail(c, "ValueError", "%s: argument '%s' contains a NUL character",
                       c->cmd, key);
    return 0;
}

int kd_arg_dtype(kd_cmd *c, const char *key, kd_dtype *t)
{
    const char *s;
    if (kd_arg_str(c, key, &s))
        return -1;
    if (kd_dtype_parse(s, t))
        return kd_fail(c, "TypeError", "%s: unsupported dtype '%.40s' (int64, uint64, "
                       "float64 or bool)", c->cmd, s);
    return 0;
}

static int parse_scalar_text(const char *txt, kd_dtype t, kd_scalar *s)
{
    char *end;
    errno = 0;
    s->dtype = t;
    if (isspace((unsigned char)txt[0])) /* strtoll and strtod would skip it */
        return -1;
    switch (t) {
    case KD_INT64:
        s->v.i = strtoll(txt, &end, 10);
        break;
    case KD_UINT64:
        if (strchr(txt, '-'))
            return -1;
        s->v.u = strtoull(txt, &end, 10);
        break;
    case KD_FLOAT64:
        s->v.f = strtod(txt, &end);
        if (errno == ERANGE)
            errno = 0; /* overflow gives inf, underflow 0: what Python has */
        break;
    default:
        if (!strcmp(txt, "True") || !strcmp(txt, "true") || !strcmp(txt, "1"))
            s->v.b = true;
        else if (!strcmp(txt, "False") || !strcmp(txt, "false") || !strcmp(txt, "0"))
            s->v.b = false;
        else
            return -1;
        return 0;
    }
    return (errno || end == txt || *end) ? -1 : 0;
}

int kd_arg_scalar(kd_cmd *c, const char *key, kd_scalar *s)
{
    json_object *o = arg(c, key, json_type_object, "a scalar {dtype, value}");
    if (!o)
        return -1;
    json_object *dt, *val;
    kd_dtype t;
    if (!json_object_object_get_ex(o, "dtype", &dt) || !json_object_object_get_ex(o, "value", &val) ||
        !json_object_is_type(val, json_type_string) ||
        kd_dtype_parse(json_object_get_string(dt), &t))
        return kd_fail(c, "TypeError", "%s: argument '%s' must be a scalar {dtype, value}",
                       c->cmd, key);
    if ((size_t)json_object_get_string_len(val) != strlen(json_object_get_string(val)) ||
        parse_scalar_text(json_object_get_string(val), t, s))
        return kd_fail(c, "ValueError", "%s: '%.40s' is not a valid %s", c->cmd,
                       json_object_get_string(val), kd_dtype_name(t));
    return 0;
}

int kd_arg_array(kd_cmd *c, const char *key, kd_array **a)
{
    const char *name;
    if (kd_arg_str(c, key, &name))
        return -1;
    *a = kd_lookup(name);
    if (!*a)
        return kd_fail(c, "KeyError", "unknown array name '%.80s' (deleted, or from "
                       "another server?)", name);
    return 0;
}

int kd_arg_array_list(kd_cmd *c, const char *key, kd_array ***out, int *n)
{
    json_object *o = arg(c, key, json_type_array, "a list of array names");
    if (!o)
        return -1;
    size_t len = json_object_array_length(o);
    if (len > 1024)
        return kd_fail(c, "ValueError", "%s: at most 1024 arrays in '%s'", c->cmd, key);
    kd_array **v = calloc(len ? len : 1, sizeof *v);
    if (!v)
        return kd_fail(c, "MemoryError", "out of memory");
    for (size_t i = 0; i < len; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(o, i));
        v[i] = name ? kd_lookup(name) : NULL;
        if (!v[i]) {
            free(v);
            return kd_fail(c, "KeyError", "unknown array name '%.80s'", name ? name : "?");
        }
    }
    *out = v;
    *n = (int)len;
    return 0;
}

void kd_scalar_cast(const kd_scalar *s, kd_dtype t, void *out)
{
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    bool b = false;
    switch (s->dtype) {
    case KD_INT64: i = s->v.i; u = (uint64_t)i; f = (double)i; b = i != 0; break;
    case KD_UINT64: u = s->v.u; i = (int64_t)u; f = (double)u; b = u != 0; break;
    case KD_FLOAT64:
        f = s->v.f;
        i = kd_f64_to_i64(f);
        u = kd_f64_to_u64(f);
        b = f != 0;
        break;
    default: b = s->v.b; i = b; u = b; f = b; break;
    }
    switch (t) {
    case KD_INT64: *(int64_t *)out = i; break;
    case KD_UINT64: *(uint64_t *)out = u; break;
    case KD_FLOAT64: *(double *)out = f; break;
    default: *(uint8_t *)out = b; break;
    }
}

void kd_cast(const void *src, kd_dtype st, void *dst, kd_dtype dt, int64_t n)
{
#define CAST(ST, DT, EXPR)                                                          \
    do {                                                                            \
        const ST *s_ = src;                                                         \
        DT *d_ = dst;                                                               \
        for (int64_t i = 0; i < n; i++) {                                           \
            ST v = s_[i];                                                           \
            d_[i] = (EXPR);                                                         \
        }                                                                           \
    } while (0)
    if (st == dt) {
        memmove(dst, src, (size_t)n * kd_dtype_size(st));
        return;
    }
    switch (st * KD_NDTYPES + dt) {
    case KD_INT64 * KD_NDTYPES + KD_UINT64: CAST(int64_t, uint64_t, (uint64_t)v); break;
    case KD_INT64 * KD_NDTYPES + KD_FLOAT64: CAST(int64_t, double, (double)v); break;
    case KD_INT64 * KD_NDTYPES + KD_BOOL: CAST(int64_t, uint8_t, v != 0); break;
    case KD_UINT64 * KD_NDTYPES + KD_INT64: CAST(uint64_t, int64_t, (int64_t)v); break;
    case KD_UINT64 * KD_NDTYPES + KD_FLOAT64: CAST(uint64_t, double, (double)v); break;
    case KD_UINT64 * KD_NDTYPES + KD_BOOL: CAST(uint64_t, uint8_t, v != 0); break;
    case KD_FLOAT64 * KD_NDTYPES + KD_INT64: CAST(double, int64_t, kd_f64_to_i64(v)); break;
    case KD_FLOAT64 * KD_NDTYPES + KD_UINT64: CAST(double, uint64_t, kd_f64_to_u64(v)); break;
    case KD_FLOAT64 * KD_NDTYPES + KD_BOOL: CAST(double, uint8_t, v != 0); break;
    case KD_BOOL * KD_NDTYPES + KD_INT64: CAST(uint8_t, int64_t, v != 0); break;
    case KD_BOOL * KD_NDTYPES + KD_UINT64: CAST(uint8_t, uint64_t, v != 0); break;
    case KD_BOOL * KD_NDTYPES + KD_FLOAT64: CAST(uint8_t, double, v != 0); break;
    default: break;
    }
#undef CAST
}

/* ---- memory ------------------------------------------------------------------------------ */

#define KD_BIG (2u << 20)
#define KD_CACHE 32
#define KD_AHEAD 8                   /* buffers of one size made ahead at most */
#define KD_AHEAD_BYTES (64u << 20)   /* bytes made ahead and not yet taken, at most */

/* freed big buffers kept for reuse, and buffers made ahead: size (a
 * multiple of 2 MiB), address, when it was freed or made (the oldest gives
 * way to a newer one), whether it was made ahead and not yet taken. Shared
 * by the rank's thread and its ahead thread, under cache_mu. */
static struct { void *p; size_t bytes; uint64_t stamp; int ahead; } cache[KD_CACHE];
static size_t cache_bytes;
static uint64_t cache_clock;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* Big buffers made ahead. Memory new to the process costs about 3 ms per
 * MiB on this machine (the virtual machine's host backs each page at its
 * first touch: docs/PERFORMANCE.md, s10), and an ingest of 1 rank spent a
 * quarter of its time faulting in the buffers its column cache keeps
 * (s11). Where this host has more cores than kodiakd ranks, each rank runs
 * a thread that, once a command has needed a fresh buffer of one size
 * twice running (kd_alloc_bytes mapped one, or took one made ahead: a
 * command that keeps asking for new memory of one size, as an ingest of a
 * file does), maps and faults in up to KD_AHEAD more of that size into
 * the cache on the spare core, KD_AHEAD_BYTES at most, uncharged as the
 * cache is. It stops when the command ends (kd_ahead_idle): the commands
 * after an ingest, often short ones that take one buffer or none, have
 * that core to themselves and the memory servers (with the thread going
 * on, ds_update_bench's queries from scratch after an ingest took 36-39
 * ms instead of 28-29). It only ever adds ready
 * buffers to the cache: what a buffer holds is never read before it is
 * written (a buffer from the cache may hold anything already).
 * KD_AHEAD=0 / 1 in kodiakd's environment: never / whatever the cores. */
static struct {
    pthread_cond_t cv;       /* kd_alloc_bytes missed: the thread looks */
    size_t size;             /* the size to make ahead (0: none now) */
    size_t ev_size;          /* this command: the size it last needed fresh */
    int events;              /* how many times running (kd_alloc_bytes) */
    int on;                  /* the thread runs */
    uint64_t made, taken;    /* buffers made ahead; of them, taken */
} ahead = {.cv = PTHREAD_COND_INITIALIZER};

static size_t round_big(size_t bytes)
{
    return (bytes + KD_BIG - 1) / KD_BIG * KD_BIG;
}

/* Under cache_mu: keep buffer p of n bytes in slot i (free). */
static void cache_put(int i, void *p, size_t n, int made_ahead)
{
    cache[i].p = p;
    cache[i].bytes = n;
    cache[i].stamp = ++cache_clock;
    cache[i].ahead = made_ahead;
    cache_bytes += n;
}

/* Under cache_mu: whether the thread should make a buffer of ahead.size. */
static bool ahead_wanted(void)
{
    if (!ahead.size)
        return false;
    int ready = 0, free_slot = 0;
    size_t pending = 0;
    for (int i = 0; i < KD_CACHE; i++) {
        if (!cache[i].p)
            free_slot = 1;
        else if (cache[i].ahead) {
            pending += cache[i].bytes;
            ready += cache[i].bytes == ahead.size;
        }
    }
    return free_slot && ready < KD_AHEAD && pending + ahead.size <= KD_AHEAD_BYTES &&
           cache_bytes + ahead.size <= kd_srv.mem_limit / 4;
}

/* Fault in [p, p + n) 2 MiB at a time (the address-space lock is held for
 * one step at most, so the rank's own mmap waits little). */
static void populate(char *p, size_t n)
{
    for (size_t at = 0; at < n; at += KD_BIG) {
#ifdef MADV_POPULATE_WRITE
        if (madvise(p + at, KD_BIG, MADV_POPULATE_WRITE) == 0)
            continue;
#endif
        for (size_t k = 0; k < KD_BIG; k += 4096)
            ((volatile char *)p)[at + k] = 0;
    }
}

static void *ahead_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cache_mu);
    for (;;) {
        while (!ahead_wanted())
            pthread_cond_wait(&ahead.cv, &cache_mu);
        size_t n = ahead.size;
        pthread_mutex_unlock(&cache_mu);
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            madvise(p, n, MADV_HUGEPAGE);
            populate(p, n);
        }
        pthread_mutex_lock(&cache_mu);
        int slot = -1;
        for (int i = 0; p != MAP_FAILED && slot < 0 && i < KD_CACHE; i++)
            if (!cache[i].p)
                slot = i;
        if (slot >= 0 && cache_bytes + n <= kd_srv.mem_limit / 4) {
            cache_put(slot, p, n, 1);
            ahead.made++;
        } else if (p != MAP_FAILED) {
            munmap(p, n);
        }
        if (p == MAP_FAILED) { /* out of memory: until the next miss */
            ahead.size = 0;
        }
    }
    return NULL;
}

/* Under cache_mu: kd_alloc_bytes needed a fresh buffer of `size` (it
 * missed, or took one made ahead); the second such need of one size in a
 * command sets the thread making them. */
static void ahead_event(size_t size)
{
    if (!ahead.on)
        return;
    if (ahead.ev_size != size) {
        ahead.ev_size = size;
        ahead.events = 0;
    }
    if (++ahead.events >= 2 && ahead.size != size) {
        ahead.size = size;
        pthread_cond_signal(&ahead.cv);
    } else if (ahead.size == size) {
        pthread_cond_signal(&ahead.cv); /* one fewer ready */
    }
}

void kd_ahead_start(int ranks_here)
{
    const char *e = getenv("KD_AHEAD");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    bool on = e ? strcmp(e, "0") != 0 : cpus > ranks_here;
    pthread_t t;
    if (!on || pthread_create(&t, NULL, ahead_main, NULL) != 0)
        return;
    pthread_detach(t);
    pthread_mutex_lock(&cache_mu);
    ahead.on = 1;
    pthread_mutex_unlock(&cache_mu);
}

void kd_ahead_idle(void)
{
    pthread_mutex_lock(&cache_mu);
    ahead.size = 0; /* the buffer being made is the last, until the next
                       command needs two fresh ones of a size */
    ahead.ev_size = 0;
    ahead.events = 0;
    pthread_mutex_unlock(&cache_mu);
}

void kd_ahead_counts(uint64_t *made, uint64_t *taken)
{
    pthread_mutex_lock(&cache_mu);
    *made = ahead.made;
    *taken = ahead.taken;
    pthread_mutex_unlock(&cache_mu);
}

void *kd_alloc_bytes(size_t bytes)
{
    if (bytes < KD_BIG) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes ? bytes : 64))
            return NULL;
        return p;
    }
    size_t want = round_big(bytes);
    pthread_mutex_lock(&cache_mu);
    for (int i = 0; i < KD_CACHE; i++)
        if (cache[i].p && cache[i].bytes == want) {
            void *p = cache[i].p;
            if (cache[i].ahead) {
                ahead.taken++;
                ahead_event(want);
            }
            cache[i].p = NULL;
            cache[i].ahead = 0;
            cache_bytes -= want;
            pthread_mutex_unlock(&cache_mu);
            return p;
        }
    ahead_event(want);
    pthread_mutex_unlock(&cache_mu);
    void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, want, MADV_HUGEPAGE);
    return p;
}

void kd_free_bytes(void *p, size_t bytes)
{
    if (!p)
        return;
    if (bytes < KD_BIG) {
        free(p);
        return;
    }
    size_t have = round_big(bytes);
    /* keep it, under a quarter of the limit: the oldest kept buffers give
     * way (a command's window, freed last, is the likeliest to be asked
     * for again: an ingest's many small buffers must not lock it out) */
    if (have > kd_srv.mem_limit / 4) {
        munmap(p, have);
        return;
    }
    void *drop = NULL;
    size_t drop_bytes = 0;
    pthread_mutex_lock(&cache_mu);
    for (;;) {
        int free_slot = -1, oldest = -1;
        for (int i = 0; i < KD_CACHE; i++) {
            if (!cache[i].p)
                free_slot = i;
            else if (oldest < 0 || cache[i].stamp < cache[oldest].stamp)
                oldest = i;
        }
        if (free_slot >= 0 && cache_bytes + have <= kd_srv.mem_limit / 4) {
            cache_put(free_slot, p, have, 0);
            break;
        }
        /* oldest >= 0: the cache is not empty; at most one unmapped
         * outside the lock, the rest (rare) inside */
        if (drop)
            munmap(drop, drop_bytes);
        drop = cache[oldest].p;
        drop_bytes = cache[oldest].bytes;
        cache_bytes -= cache[oldest].bytes;
        cache[oldest].p = NULL;
        cache[oldest].ahead = 0;
    }
    pthread_mutex_unlock(&cache_mu);
    if (drop)
        munmap(drop, drop_bytes);
}

static void cache_drop(void)
{
    pthread_mutex_lock(&cache_mu);
    for (int i = 0; i < KD_CACHE; i++)
        if (cache[i].p) {
            munmap(cache[i].p, cache[i].bytes);
            cache[i].p = NULL;
            cache[i].ahead = 0;
        }
    cache_bytes = 0;
    ahead.size = 0; /* nothing made ahead until the next miss */
    pthread_mutex_unlock(&cache_mu);
}

/* ---- arrays and the symbol table ---------------------------------------------------------- */

static unsigned bucket_of(const char *name)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % (sizeof kd_srv.table / sizeof kd_srv.table[0]);
}

kd_array *kd_lookup(const char *name)
{
    for (kd_array *a = kd_srv.table[bucket_of(name)]; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

void kd_symtab_insert(kd_array *a)
{
    unsigned b = bucket_of(a->name);
    a->next = kd_srv.table[b];
    kd_srv.table[b] = a;
    kd_srv.narrays++;
}

void kd_array_free(kd_array *a)
{
    kd_free_bytes(a->data, a->n * kd_dtype_size(a->dtype));
    kd_srv.mem_used -= a->bytes;
    free(a);
}

int kd_delete(const char *name)
{
    kd_array **pp = &kd_srv.table[bucket_of(name)];
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            kd_array *a = *pp;
            *pp = a->next;
            kd_srv.narrays--;
            kd_array_free(a);
            return 0;
        }
    return -1;
}

void kd_symtab_clear(void)
{
    for (size_t b = 0; b < sizeof kd_srv.table / sizeof kd_srv.table[0]; b++)
        while (kd_srv.table[b]) {
            kd_array *a = kd_srv.table[b];
            kd_srv.table[b] = a->next;
            kd_array_free(a);
        }
    kd_srv.narrays = 0;
    cache_drop();
    kd_dsagg_cache_clear();
    kd_dsc_clear();
}

static int by_name(const void *x, const void *y)
{
    const kd_array *a = *(kd_array *const *)x, *b = *(kd_array *const *)y;
    /* id_<n> names sort by n */
    size_t la = strlen(a->name), lb = strlen(b->name);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a->name, b->name);
}

int kd_symtab_list(kd_array ***out, int64_t *n)
{
    kd_array **v = malloc(sizeof *v * (size_t)(kd_srv.narrays ? kd_srv.narrays : 1));
    if (!v)
        return -1;
    int64_t k = 0;
    for (size_t b = 0; b < sizeof kd_srv.table / sizeof kd_srv.table[0]; b++)
        for (kd_array *a = kd_srv.table[b]; a; a = a->next)
            v[k++] = a;
    qsort(v, (size_t)k, sizeof *v, by_name);
    *out = v;
    *n = k;
    return 0;
}

kd_array *kd_new_array(kd_cmd *c, kd_dtype t, int64_t size)
{
    int rc = 0;
    kd_array *a = NULL;
    if (size < 0 || size > (INT64_MAX / 16)) {
        rc = kd_fail(c, "ValueError", "array size %lld is invalid", (long long)size);
    } else {
        int64_t lo, hi;
        kd_block(size, c->nranks, c->rank, &lo, &hi);
        size_t bytes = (size_t)(hi - lo) * kd_dtype_size(t);
        if (kd_srv.mem_used + bytes > kd_srv.mem_limit)
            kd_dsagg_cache_trim(bytes); /* cached partial results give way to arrays */
        if (kd_srv.mem_used + bytes > kd_srv.mem_limit)
            kd_dsc_trim(bytes); /* and so do cached column rows */
        if (kd_srv.mem_used + bytes > kd_srv.mem_limit) {
            rc = kd_fail(c, "MemoryError",
                         "cannot allocate %lld %s elements: rank %d would hold %llu bytes "
                         "of arrays, over its memory limit of %llu bytes (%llu in use)",
                         (long long)size, kd_dtype_name(t), c->rank,
                         (unsigned long long)(kd_srv.mem_used + bytes),
                         (unsigned long long)kd_srv.mem_limit,
                         (unsigned long long)kd_srv.mem_used);
        } else if (!(a = calloc(1, sizeof *a)) || !(a->data = kd_alloc_bytes(bytes))) {
            free(a);
            a = NULL;
            rc = kd_fail(c, "MemoryError", "rank %d is out of memory for %zu bytes",
                         c->rank, bytes);
        } else {
            a->dtype = t;
            a->size = size;
            a->lo = lo;
            a->n = hi - lo;
            a->bytes = bytes;
            kd_srv.mem_used += bytes;
            a->next = c->temps;
            c->temps = a;
        }
    }
    if (kd_agree(c, rc)) {
        /* it stays on c->temps and is freed with the failed command */
        return NULL;
    }
    return a;
}

static json_object *array_json(const kd_array *a)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(a->name));
    json_object_object_add(o, "dtype", json_object_new_string(kd_dtype_name(a->dtype)));
    json_object_object_add(o, "size", json_object_new_int64(a->size));
    return o;
}

void kd_result_array(kd_cmd *c, const char *key, kd_array *a)
{
    if (!a->name[0]) /* a temp: it gets a name now and is registered on success */
        snprintf(a->name, sizeof a->name, "id_%llu", (unsigned long long)++kd_srv.next_id);
    kd_result_set(c, key, array_json(a));
}

/* ---- reply ----------------------------------------------------------------------------------- */

void kd_result_set(kd_cmd *c, const char *key, json_object *v)
{
    if (c->rank != 0 || !c->result) {
        json_object_put(v);
        return;
    }
    json_object_object_add(c->result, key, v);
}

int kd_fpe_flags(void)
{
    int e = fetestexcept(FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW | FE_INVALID);
    return (e & FE_DIVBYZERO ? KD_FPE_DIVIDE : 0) | (e & FE_OVERFLOW ? KD_FPE_OVERFLOW : 0) |
           (e & FE_UNDERFLOW ? KD_FPE_UNDERFLOW : 0) | (e & FE_INVALID ? KD_FPE_INVALID : 0);
}

void kd_fpe_report(kd_cmd *c, int flags, const char *ufunc)
{
    int all = 0;
    MPI_Allreduce(&flags, &all, 1, MPI_INT, MPI_BOR, c->comm);
    if (!all || c->rank != 0 || !c->result)
        return;
    static const char *names[] = {"divide", "over", "under", "invalid"};
    json_object *o = json_object_new_object(), *l = json_object_new_array(), *list;
    for (int k = 0; k < 4; k++)
        if (all & (1 << k))
            json_object_array_add(l, json_object_new_string(names[k]));
    json_object_object_add(o, "ufunc", json_object_new_string(ufunc));
    json_object_object_add(o, "flags", l);
    if (!json_object_object_get_ex(c->result, "fpe", &list)) {
        list = json_object_new_array();
        json_object_object_add(c->result, "fpe", list);
    }
    json_object_array_add(list, o);
}

void kd_result_i64(kd_cmd *c, const char *key, int64_t v)
{
    kd_result_set(c, key, json_object_new_int64(v));
}

void kd_result_f64(kd_cmd *c, const char *key, double v)
{
    kd_result_set(c, key, json_object_new_double(v));
}

void kd_result_scalar(kd_cmd *c, const char *key, const kd_scalar *s)
{
    char txt[64];
    switch (s->dtype) {
    case KD_INT64: snprintf(txt, sizeof txt, "%lld", (long long)s->v.i); break;
    case KD_UINT64: snprintf(txt, sizeof txt, "%llu", (unsigned long long)s->v.u); break;
    case KD_FLOAT64: snprintf(txt, sizeof txt, "%.17g", s->v.f); break;
    default: snprintf(txt, sizeof txt, "%s", s->v.b ? "True" : "False"); break;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "dtype", json_object_new_string(kd_dtype_name(s->dtype)));
    json_object_object_add(o, "value", json_object_new_string(txt));
    kd_result_set(c, key, o);
}

void kd_result_frame(kd_cmd *c, void *buf, size_t len)
{
    if (c->rank != 0 || c->nout == KD_MAX_FRAMES) {
        free(buf);
        return;
    }
    c->out[c->nout] = buf;
    c->out_len[c->nout] = len;
    c->nout++;
}

/* ---- frames to blocks and back ---------------------------------------------------------------- */

/* per-rank counts and displacements in elements; fails if one is over INT_MAX */
static int block_layout(kd_cmd *c, int64_t size, int **counts, int **displs)
{
    int *cn = malloc(sizeof(int) * (size_t)c->nranks), *ds = malloc(sizeof(int) * (size_t)c->nranks);
    if (!cn || !ds) {
        free(cn);
        free(ds);
        return kd_fail(c, "MemoryError", "out of memory");
    }
    for (int r = 0; r < c->nranks; r++) {
        int64_t lo, hi;
        kd_block(size, c->nranks, r, &lo, &hi);
        if (hi > INT32_MAX) {
            free(cn);
            free(ds);
            return kd_fail(c, "ValueError", "arrays over 2^31 elements cannot be moved "
                           "to or from the client in one message");
        }
        cn[r] = (int)(hi - lo);
        ds[r] = (int)lo;
    }
    *counts = cn;
    *displs = ds;
    return 0;
}

/* Send rank r its block of an array that arrived in several frames, straight
 * from the frames (an MPI datatype of absolute addresses: no joined copy on
 * rank 0); rank 0 copies its own block. Bytes [lo, hi) of the array; len
 * and at have room for one segment per frame. */
static void send_block_from_frames(kd_cmd *c, int idx, int r, size_t lo, size_t hi,
                                   kd_array *a, int *len, MPI_Aint *at)
{
    int nseg = 0;
    size_t off = 0, done = 0;
    for (int i = idx; i < c->nframes && off < hi; off += c->frame_len[i], i++) {
        size_t fl = c->frame_len[i];
        if (off + fl <= lo || fl == 0)
            continue;
        size_t s = lo > off ? lo - off : 0;              /* first byte in this frame */
        size_t e = hi < off + fl ? hi - off : fl;        /* one past the last */
        const char *p = (const char *)c->frame[i] + s;
        if (r == 0) {
            memcpy((char *)a->data + done, p, e - s);
        } else {
            len[nseg] = (int)(e - s);                    /* a frame is <= KD_FRAME_MAX */
            MPI_Get_address(p, &at[nseg]);
            nseg++;
        }
        done += e - s;
    }
    if (r != 0) {
        MPI_Datatype t;
        MPI_Type_create_hindexed(nseg, len, at, MPI_BYTE, &t);
        MPI_Type_commit(&t);
        MPI_Send(MPI_BOTTOM, 1, t, r, KD_TAG_FRAMES, c->comm);
        MPI_Type_free(&t);
    }
}

int kd_scatter_frame(kd_cmd *c, int idx, kd_array *a)
{
    int rc = 0;
    size_t w = kd_dtype_size(a->dtype);
    size_t want = (size_t)a->size * w, got = 0;
    int many = 0; /* the array came in more than one frame */
    int *len = NULL;      /* rank 0, many: segment lengths and addresses */
    MPI_Aint *at = NULL;
    if (c->rank == 0) {
        for (int i = idx; i < c->nframes; i++)
            got += c->frame_len[i];
        if (idx >= c->nframes && want > 0)
            rc = kd_fail(c, "ValueError", "%s: binary frame %d is missing", c->cmd, idx);
        else if (got != want)
            rc = kd_fail(c, "ValueError", "%s: binary frames of %zu bytes do not hold "
                         "%lld %s elements (%zu bytes)", c->cmd, got,
                         (long long)a->size, kd_dtype_name(a->dtype), want);
        many = c->nframes - idx > 1;
        if (!rc && many) {
            len = malloc(sizeof *len * (size_t)(c->nframes - idx));
            at = malloc(sizeof *at * (size_t)(c->nframes - idx));
            if (!len || !at)
                rc = kd_fail(c, "MemoryError", "%s: out of memory for %d frames", c->cmd,
                             c->nframes - idx);
        }
    }
    int *counts = NULL, *displs = NULL;
    if (!rc)
        rc = block_layout(c, a->size, &counts, &displs);
    if (kd_agree(c, rc)) {
        free(counts);
        free(displs);
        free(len);
        free(at);
        return -1;
    }
    MPI_Bcast(&many, 1, MPI_INT, 0, c->comm);
    if (!many) {
        MPI_Scatterv(c->rank == 0 && c->nframes > idx ? c->frame[idx] : NULL, counts, displs,
                     kd_dtype_mpi(a->dtype), a->data, (int)a->n, kd_dtype_mpi(a->dtype), 0,
                     c->comm);
    } else if (c->rank == 0) {
        for (int r = c->nranks - 1; r >= 0; r--) { /* own block last */
            int64_t lo, hi;
            kd_block(a->size, c->nranks, r, &lo, &hi);
            send_block_from_frames(c, idx, r, (size_t)lo * w, (size_t)hi * w, a, len, at);
        }
    } else {
        MPI_Datatype elt;
        MPI_Type_contiguous((int)w, MPI_BYTE, &elt);
        MPI_Type_commit(&elt);
        MPI_Recv(a->data, (int)a->n, elt, 0, KD_TAG_FRAMES, c->comm, MPI_STATUS_IGNORE);
        MPI_Type_free(&elt);
    }
    free(counts);
    free(displs);
    free(len);
    free(at);
    /* bool frames from the client may hold any byte: normalise to 0/1 */
    if (a->dtype == KD_BOOL) {
        uint8_t *p = a->data;
        for (int64_t i = 0; i < a->n; i++)
            p[i] = p[i] != 0;
    }
    return 0;
}

int kd_gather_all(kd_cmd *c, kd_array *a, void **buf)
{
    int rc = 0;
    void *out = NULL;
    if (c->rank == 0) {
        out = malloc((size_t)a->size * kd_dtype_size(a->dtype) + 1);
        if (!out)
            rc = kd_fail(c, "MemoryError", "rank 0 is out of memory for %lld elements",
                         (long long)a->size);
    }
    int *counts = NULL, *displs = NULL;
    if (!rc)
        rc = block_layout(c, a->size, &counts, &displs);
    if (kd_agree(c, rc)) {
        free(out);
        free(counts);
        free(displs);
        return -1;
    }
    MPI_Gatherv(a->data, (int)a->n, kd_dtype_mpi(a->dtype), out, counts, displs,
                kd_dtype_mpi(a->dtype), 0, c->comm);
    free(counts);
    free(displs);
    *buf = out;
    return 0;
}

int64_t kd_exchange_counts(MPI_Comm comm, int p, const int *scnt, int *sdsp, int *rcnt,
                           int *rdsp)
{
    MPI_Alltoall(scnt, 1, MPI_INT, rcnt, 1, MPI_INT, comm);
    int64_t so = 0, ro = 0;
    for (int r = 0; r < p; r++) {
        sdsp[r] = (int)so;
        so += scnt[r];
        rdsp[r] = (int)ro;
        ro += rcnt[r];
    }
    return ro;
}

uint64_t kd_hash_bytes(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

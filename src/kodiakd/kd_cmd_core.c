/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_core.c — the server's own commands (connect, shutdown, symbols,
 * memory) and the creation of pdarrays: from the client's bytes, constants,
 * ranges, and random numbers.
 *
 * Random numbers are counter based: element i of randint(..., seed=s) is a
 * hash of (s, i), so an array is the same whatever the number of ranks. */
#define _GNU_SOURCE
#include "kd.h"

#include <sys/uio.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- server commands ------------------------------------------------------------ */

static int cmd_connect(kd_cmd *c)
{
    int64_t v;
    if (kd_arg_i64(c, "version", &v))
        return -1;
    if (v != KD_PROTOCOL_VERSION)
        return kd_fail(c, "RuntimeError", "client speaks protocol version %lld but this "
                       "kodiakd speaks version %d: use the kodiak package of the same "
                       "release as the server", (long long)v, KD_PROTOCOL_VERSION);
    kd_result_i64(c, "version", KD_PROTOCOL_VERSION);
    kd_result_i64(c, "ranks", c->nranks);
    kd_result_i64(c, "memory_limit", (int64_t)kd_srv.mem_limit);
    kd_result_i64(c, "pid", (int64_t)getpid());
    kd_result_i64(c, "max_frame", KD_FRAME_MAX);
    kd_result_f64(c, "request_timeout", kd_srv.request_timeout); /* seconds, 0: none */
    return 0;
}

static int cmd_shutdown(kd_cmd *c)
{
    c->shutdown = true;
    return 0;
}

static int cmd_list_symbols(kd_cmd *c)
{
    kd_array **v;
    int64_t n;
    if (kd_symtab_list(&v, &n))
        return kd_fail(c, "MemoryError", "out of memory");
    json_object *list = json_object_new_array();
    for (int64_t i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(v[i]->name));
        json_object_object_add(o, "dtype", json_object_new_string(kd_dtype_name(v[i]->dtype)));
        json_object_object_add(o, "size", json_object_new_int64(v[i]->size));
        json_object_array_add(list, o);
    }
    free(v);
    kd_result_set(c, "symbols", list);
    return 0;
}

static int cmd_delete(kd_cmd *c)
{
    const char *name;
    if (kd_arg_str(c, "name", &name))
        return -1;
    if (kd_delete(name))
        return kd_fail(c, "KeyError", "unknown array name '%.80s'", name);
    return 0;
}

/* bytes used and limit of every rank: [{rank, used, limit, available}] */
static int cmd_memory(kd_cmd *c)
{
    uint64_t mine[5] = {kd_srv.mem_used, kd_srv.mem_limit, 0, 0, 0};
    long av = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    mine[2] = av > 0 ? (uint64_t)av * (uint64_t)psz : 0;
    kd_ahead_counts(&mine[3], &mine[4]);
    uint64_t *all = c->rank == 0 ? malloc(sizeof mine * (size_t)c->nranks) : NULL;
    int rc = (c->rank == 0 && !all) ? kd_fail(c, "MemoryError", "out of memory") : 0;
    if (kd_agree(c, rc))
        return -1;
    MPI_Gather(mine, 5, MPI_UINT64_T, all, 5, MPI_UINT64_T, 0, c->comm);
    if (c->rank == 0) {
        json_object *list = json_object_new_array();
        for (int r = 0; r < c->nranks; r++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "rank", json_object_new_int(r));
            json_object_object_add(o, "used", json_object_new_int64((int64_t)all[5 * r]));
            json_object_object_add(o, "limit", json_object_new_int64((int64_t)all[5 * r + 1]));
            json_object_object_add(o, "available", json_object_new_int64((int64_t)all[5 * r + 2]));
            /* big buffers made ahead by the rank's thread, and of them taken */
            json_object_object_add(o, "ahead_made", json_object_new_int64((int64_t)all[5 * r + 3]));
            json_object_object_add(o, "ahead_taken", json_object_new_int64((int64_t)all[5 * r + 4]));
            json_object_array_add(list, o);
        }
        kd_result_set(c, "ranks", list);
    }
    free(all);
    return 0;
}

/* ---- moving whole arrays ------------------------------------------------------------ */

/* The same-host memory path. A client connected to rank 0's Unix socket
 * names the address and size of its NumPy buffer; each rank then copies its
 * own block straight from or to that buffer with process_vm_readv/writev,
 * in parallel and without passing through rank 0 or ZeroMQ.
 *
 * Which process is copied from or to comes only from the kernel: the pid
 * SO_PEERCRED gave for the Unix-socket connection the request came on
 * (c->peer_pid). A request cannot name another process: a "pid" in it that
 * is not the sender's own is refused with a PermissionError. The sender
 * must run as kodiakd's own user, and the process is looked at again just
 * before the copy (all its uids must still be that user's, so a pid reused
 * by someone else's process after the client left is not touched). The
 * copy stays inside the buffer the request named (addr, nbytes).
 * If any rank cannot copy (another host, no Unix socket, another user),
 * nothing fails: the reply says {"vm": false} and the client sends or asks
 * for frames instead. */
static int vm_allowed(kd_cmd *c, json_object *vm, uint64_t need, pid_t *pid, uint64_t *addr)
{
    json_object *o;
    const char *boot = NULL;
    if (!json_object_is_type(vm, json_type_object))
        return kd_fail(c, "TypeError", "argument 'vm' must be an object");
    if (json_object_object_get_ex(vm, "pid", &o) &&
        (!json_object_is_type(o, json_type_int) || c->peer_pid <= 0 ||
         json_object_get_int64(o) != c->peer_pid)) {
        if (c->peer_pid <= 0)
            return kd_fail(c, "PermissionError", "the same-host memory path copies only "
                           "to or from the requesting process, known from the Unix socket "
                           "connection; this request came over TCP and may not name "
                           "pid %.20s", json_object_get_string(o));
        return kd_fail(c, "PermissionError", "the same-host memory path copies only to or "
                       "from the requesting process (pid %d, from the Unix socket), not "
                       "pid %.20s", c->peer_pid, json_object_get_string(o));
    }
    if (!json_object_object_get_ex(vm, "addr", &o) || !json_object_is_type(o, json_type_int))
        return kd_fail(c, "TypeError", "argument 'vm' needs an integer 'addr'");
    *addr = (uint64_t)json_object_get_int64(o);
    if (!json_object_object_get_ex(vm, "nbytes", &o) || !json_object_is_type(o, json_type_int))
        return kd_fail(c, "TypeError", "argument 'vm' needs an integer 'nbytes'");
    int64_t nbytes = json_object_get_int64(o);
    if (nbytes < 0 || (uint64_t)nbytes < need || *addr + need < *addr)
        return kd_fail(c, "ValueError", "the buffer named for the memory path (%lld bytes "
                       "at 0x%llx) cannot hold the %llu bytes of the array",
                       (long long)nbytes, (unsigned long long)*addr,
                       (unsigned long long)need);
    if (json_object_object_get_ex(vm, "boot_id", &o))
        boot = json_object_get_string(o);
    *pid = 0;
    if (c->peer_pid <= 0 || c->peer_uid != (unsigned)geteuid() || !boot)
        return 0; /* not for this client: frames instead */
    char mine[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return 0;
    if (!fgets(mine, sizeof mine, f))
        mine[0] = '\0';
    fclose(f);
    mine[strcspn(mine, "\n")] = '\0';
    if (strcmp(mine, boot) != 0) /* this rank runs on another host */
        return 0;
    *pid = c->peer_pid;
    return 0;
}

/* Whether every uid of process `pid` (real, effective, saved, fs) is ours. */
static bool process_is_ours(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ours = false;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Uid:", 4) == 0) {
            unsigned u[4];
            unsigned me = (unsigned)geteuid();
            ours = sscanf(line + 4, "%u %u %u %u", &u[0], &u[1], &u[2], &u[3]) == 4 &&
                   u[0] == me && u[1] == me && u[2] == me && u[3] == me;
            break;
        }
    fclose(f);
    return ours;
}

/* Copy this rank's block of `a` from (to_client false) or to the client's
 * buffer; collective. 1 if every rank did its part, 0 if the client must
 * use frames, -1 (an error on every rank) if the request is refused. */
static int vm_copy(kd_cmd *c, kd_array *a, bool to_client)
{
    json_object *vm = NULL;
    int mine = 0, all = 0;
    pid_t pid = 0;
    uint64_t addr = 0;
    size_t w = kd_dtype_size(a->dtype);
    json_object_object_get_ex(c->args, "vm", &vm);
    /* the checks read only the request and the peer: the same on every rank */
    if (vm_allowed(c, vm, (uint64_t)a->size * w, &pid, &addr))
        return -1;
    if (pid > 0 && process_is_ours(pid)) {
        size_t len = (size_t)a->n * w, done = 0;
        mine = 1;
        while (done < len) {
            struct iovec local = {(char *)a->data + done, len - done};
            struct iovec remote = {(void *)(uintptr_t)(addr + (uint64_t)a->lo * w + done),
                                   len - done};
            ssize_t r = to_client ? process_vm_writev(pid, &local, 1, &remote, 1, 0)
                                  : process_vm_readv(pid, &local, 1, &remote, 1, 0);
            if (r <= 0) {
                mine = 0;
                break;
            }
            done += (size_t)r;
        }
    }
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, c->comm);
    return all == 1;
}

/* array(dtype, size) + one frame of raw little-endian elements */
static int cmd_array(kd_cmd *c)
{
    kd_dtype t;
    int64_t size;
    if (kd_arg_dtype(c, "dtype", &t) || kd_arg_i64(c, "size", &size))
        return -1;
    kd_array *a = kd_new_array(c, t, size);
    if (!a)
        return -1;
    if (kd_has_arg(c, "vm")) {
        int rc = vm_copy(c, a, false);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            kd_result_set(c, "vm", json_object_new_boolean(0));
            return 0; /* the temp is freed; the client sends frames */
        }
        if (a->dtype == KD_BOOL) { /* any byte from the client: make it 0/1 */
            uint8_t *p = a->data;
            for (int64_t i = 0; i < a->n; i++)
                p[i] = p[i] != 0;
        }
    } else if (kd_scatter_frame(c, 0, a)) {
        return -1;
    }
    kd_result_array(c, "array", a);
    return 0;
}

static int cmd_to_ndarray(kd_cmd *c)
{
    kd_array *a;
    void *buf;
    if (kd_arg_array(c, "array", &a))
        return -1;
    if (kd_has_arg(c, "vm")) {
        int rc = vm_copy(c, a, true);
        if (rc < 0)
            return -1;
        kd_result_set(c, "vm", json_object_new_boolean(rc));
        return 0;
    }
    if (kd_gather_all(c, a, &buf))
        return -1;
    if (c->rank == 0)
        kd_result_frame(c, buf, (size_t)a->size * kd_dtype_size(a->dtype));
    return 0;
}

/* ---- constants and ranges -------------------------------------------------------------- */

static void fill(kd_array *a, const void *value)
{
    size_t w = kd_dtype_size(a->dtype);
    if (w == 1) {
        memset(a->data, *(const uint8_t *)value, (size_t)a->n);
        return;
    }
    uint64_t v;
    memcpy(&v, value, 8);
    uint64_t *p = a->data;
    for (int64_t i = 0; i < a->n; i++)
        p[i] = v;
}

/* full(dtype, size, value) */
static int cmd_full(kd_cmd *c)
{
    kd_dtype t;
    int64_t size;
    kd_scalar s;
    if (kd_arg_dtype(c, "dtype", &t) || kd_arg_i64(c, "size", &size) ||
        kd_arg_scalar(c, "value", &s))
        return -1;
    if (size < 0)
        return kd_fail(c, "ValueError", "negative dimensions are not allowed");
    uint64_t v = 0;
    kd_scalar_cast(&s, t, &v);
    kd_array *a = kd_new_array(c, t, size);
    if (!a)
        return -1;
    fill(a, &v);
    kd_result_array(c, "array", a);
    return 0;
}

/* arange(start, stop, step, dtype): like numpy.arange for integers */
static int cmd_arange(kd_cmd *c)
{
    int64_t start, stop, step;
    kd_dtype t = KD_INT64;
    if (kd_arg_i64(c, "start", &start) || kd_arg_i64(c, "stop", &stop) ||
        kd_arg_i64(c, "step", &step))
        return -1;
    if (kd_has_arg(c, "dtype") && kd_arg_dtype(c, "dtype", &t))
        return -1;
    if (step == 0)
        return kd_fail(c, "ZeroDivisionError", "arange: step must not be zero");
    __int128 span = (__int128)stop - start, n;
    if (step > 0)
        n = span <= 0 ? 0 : (span + step - 1) / step;
    else
        n = span >= 0 ? 0 : (-span + (-(__int128)step) - 1) / (-(__int128)step);
    if (n > INT64_MAX / 16)
        return kd_fail(c, "ValueError", "arange: too many elements");
    kd_array *a = kd_new_array(c, t, (int64_t)n);
    if (!a)
        return -1;
    for (int64_t i = 0; i < a->n; i++) {
        int64_t v = (int64_t)((uint64_t)start + (uint64_t)(a->lo + i) * (uint64_t)step);
        switch (t) {
        case KD_FLOAT64: ((double *)a->data)[i] = (double)v; break;
        case KD_BOOL: ((uint8_t *)a->data)[i] = v != 0; break;
        default: ((int64_t *)a->data)[i] = v; break;
        }
    }
    kd_result_array(c, "array", a);
    return 0;
}

/* linspace(start, stop, num, endpoint): numpy.linspace's arithmetic */
static int cmd_linspace(kd_cmd *c)
{
    double start, stop;
    int64_t num;
    bool endpoint = true;
    if (kd_arg_f64(c, "start", &start) || kd_arg_f64(c, "stop", &stop) ||
        kd_arg_i64(c, "num", &num))
        return -1;
    if (kd_has_arg(c, "endpoint") && kd_arg_bool(c, "endpoint", &endpoint))
        return -1;
    if (num < 0)
        return kd_fail(c, "ValueError", "Number of samples, %lld, must be non-negative.",
                       (long long)num);
    kd_array *a = kd_new_array(c, KD_FLOAT64, num);
    if (!a)
        return -1;
    int64_t div = endpoint ? num - 1 : num;
    double delta = stop - start, *y = a->data;
    double step = div > 0 ? delta / (double)div : NAN;
    for (int64_t i = 0; i < a->n; i++) {
        double k = (double)(a->lo + i);
        if (div > 0 && step != 0)
            y[i] = k * step + start;
        else if (div > 0)
            y[i] = k / (double)div * delta + start;
        else
            y[i] = k * delta + start; /* num == 1 (or 0): numpy gives start */
        if (endpoint && num > 1 && a->lo + i == num - 1)
            y[i] = stop;
    }
    kd_result_array(c, "array", a);
    return 0;
}

/* ---- random numbers ------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* the i-th 64-bit random number of the stream `key` */
static inline uint64_t rnd(uint64_t key, uint64_t i)
{
    return mix64(key + (i + 1) * 0x9e3779b97f4a7c15ull);
}

/* a double in [0, 1) */
static inline double rnd01(uint64_t key, uint64_t i)
{
    return (double)(rnd(key, i) >> 11) * 0x1.0p-53;
}

static int seed_key(kd_cmd *c, uint64_t *key)
{
    int64_t seed;
    if (kd_arg_i64(c, "seed", &seed))
        return -1;
    *key = mix64((uint64_t)seed ^ 0x6a09e667f3bcc909ull);
    return 0;
}

/* randint(low, high, size, dtype, seed): integers in [low, high); float64
 * gives uniform reals, bool gives True/False */
static int cmd_randint(kd_cmd *c)
{
    kd_dtype t;
    int64_t size;
    kd_scalar lo_s, hi_s;
    uint64_t key;
    if (kd_arg_dtype(c, "dtype", &t) || kd_arg_i64(c, "size", &size) ||
        kd_arg_scalar(c, "low", &lo_s) || kd_arg_scalar(c, "high", &hi_s) || seed_key(c, &key))
        return -1;
    if (size < 0)
        return kd_fail(c, "ValueError", "negative dimensions are not allowed");
    double flo = 0, fhi = 0;
    int64_t ilo = 0, ihi = 0;
    uint64_t ulo = 0, uhi = 0;
    kd_scalar_cast(&lo_s, KD_FLOAT64, &flo);
    kd_scalar_cast(&hi_s, KD_FLOAT64, &fhi);
    kd_scalar_cast(&lo_s, KD_INT64, &ilo);
    kd_scalar_cast(&hi_s, KD_INT64, &ihi);
    kd_scalar_cast(&lo_s, KD_UINT64, &ulo);
    kd_scalar_cast(&hi_s, KD_UINT64, &uhi);
    /* "closed": high itself may come out. The client sends high - 1 with it
     * when high is one past the dtype's largest value (2**64 for uint64,
     * 2**63 for int64), which the wire's scalars cannot carry. */
    bool closed = false;
    if (kd_has_arg(c, "closed") && kd_arg_bool(c, "closed", &closed))
        return -1;
    if (closed && t != KD_INT64 && t != KD_UINT64)
        return kd_fail(c, "ValueError", "randint: 'closed' is for integer dtypes");
    bool empty_range = false;
    if (t == KD_INT64)
        empty_range = closed ? ilo > ihi : ilo >= ihi;
    else if (t == KD_UINT64)
        empty_range = (closed ? ulo > uhi : ulo >= uhi) || (lo_s.dtype == KD_INT64 && lo_s.v.i < 0);
    else if (t == KD_FLOAT64)
        empty_range = !(flo < fhi) && !(flo == fhi);
    if (empty_range && size > 0)
        return kd_fail(c, "ValueError", "randint: low >= high");
    kd_array *a = kd_new_array(c, t, size);
    if (!a)
        return -1;
    for (int64_t i = 0; i < a->n; i++) {
        uint64_t g = (uint64_t)(a->lo + i);
        switch (t) {
        case KD_INT64: {
            uint64_t span = (uint64_t)ihi - (uint64_t)ilo + closed; /* 0: all 2^64 values */
            uint64_t r = rnd(key, g);
            uint64_t off = span ? (uint64_t)(((unsigned __int128)r * span) >> 64) : r;
            ((int64_t *)a->data)[i] = (int64_t)((uint64_t)ilo + off);
            break;
        }
        case KD_UINT64: {
            uint64_t span = uhi - ulo + closed;
            uint64_t r = rnd(key, g);
            ((uint64_t *)a->data)[i] = ulo + (span ? (uint64_t)(((unsigned __int128)r * span) >> 64) : r);
            break;
        }
        case KD_FLOAT64:
            ((double *)a->data)[i] = flo + (fhi - flo) * rnd01(key, g);
            break;
        default:
            ((uint8_t *)a->data)[i] = (uint8_t)(rnd(key, g) >> 63);
            break;
        }
    }
    kd_result_array(c, "array", a);
    return 0;
}

/* uniform(low, high, size, seed): float64 in [low, high) */
static int cmd_uniform(kd_cmd *c)
{
    double lo, hi;
    int64_t size;
    uint64_t key;
    if (kd_arg_f64(c, "low", &lo) || kd_arg_f64(c, "high", &hi) ||
        kd_arg_i64(c, "size", &size) || seed_key(c, &key))
        return -1;
    if (size < 0)
        return kd_fail(c, "ValueError", "negative dimensions are not allowed");
    kd_array *a = kd_new_array(c, KD_FLOAT64, size);
    if (!a)
        return -1;
    double *y = a->data;
    for (int64_t i = 0; i < a->n; i++)
        y[i] = lo + (hi - lo) * rnd01(key, (uint64_t)(a->lo + i));
    kd_result_array(c, "array", a);
    return 0;
}

/* standard_normal(size, seed): Box-Muller on two numbers of the stream */
static int cmd_standard_normal(kd_cmd *c)
{
    int64_t size;
    uint64_t key;
    if (kd_arg_i64(c, "size", &size) || seed_key(c, &key))
        return -1;
    if (size < 0)
        return kd_fail(c, "ValueError", "negative dimensions are not allowed");
    kd_array *a = kd_new_array(c, KD_FLOAT64, size);
    if (!a)
        return -1;
    double *y = a->data;
    for (int64_t i = 0; i < a->n; i++) {
        uint64_t g = (uint64_t)(a->lo + i);
        double u1 = 1.0 - rnd01(key, 2 * g); /* (0, 1]: log is finite */
        double u2 = rnd01(key, 2 * g + 1);
        y[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    kd_result_array(c, "array", a);
    return 0;
}

void kd_register_core(void)
{
    kd_register("connect", cmd_connect);
    kd_register("shutdown", cmd_shutdown);
    kd_register("list_symbols", cmd_list_symbols);
    kd_register("delete", cmd_delete);
    kd_register("memory", cmd_memory);
    kd_register("array", cmd_array);
    kd_register("to_ndarray", cmd_to_ndarray);
    kd_register("full", cmd_full);
    kd_register("arange", cmd_arange);
    kd_register("linspace", cmd_linspace);
    kd_register("randint", cmd_randint);
    kd_register("uniform", cmd_uniform);
    kd_register("standard_normal", cmd_standard_normal);
}

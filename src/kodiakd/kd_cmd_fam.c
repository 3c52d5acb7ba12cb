/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_fam.c — FAM arrays in kodiakd: regions, typed arrays that live in
 * fabric-attached memory (libfamarray), and moving data between them and
 * pdarrays.
 *
 * Every rank has its own libfam connection, opened on the first FAM command
 * (servers from $FAM_SERVERS, provider from $FAM_PROVIDER, else chosen
 * per famd: fam.h), and its own small cache of open FAM array handles. A
 * data command runs on every rank for that rank's share only: its block of
 * the index and value pdarrays, or its block of a slice's elements. Each
 * rank talks to the memory servers itself with libfamarray's bulk calls; rank 0 does not
 * funnel data. Metadata changes (create, delete, regions) are made once, by
 * rank 0, and then every rank (re)opens what it needs.
 *
 * Nothing is written before every rank has checked its share: an index out
 * of range anywhere fails the whole command on every rank (kd_agree) and
 * leaves the FAM array as it was.
 *
 * Commands (arguments; "region" and "name" name a FAM array):
 *   fam_region        {region, size?, create}     -> {region, size, servers, created}
 *   fam_region_list   {region}                    -> {names: [...]}
 *   fam_region_destroy{region}
 *   fam_create        {region, name, dtype, size} -> {fam: {region,name,dtype,size}}
 *   fam_lookup        {region, name}              -> {fam}
 *   fam_delete        {region, name}
 *   fam_scatter       {region, name, index, values | value}
 *   fam_gather        {region, name, index}       -> array
 *   fam_get_item      {region, name, index}       -> value
 *   fam_get_slice     {region, name, start, stop, step} -> array
 *   fam_put_slice     {region, name, start, stop, step, values | value}
 *   fam_add           {region, name, index, values | value}
 *   fam_fetch_add     {region, name, index, values | value} -> array
 *   fam_from_pdarray  {array, region, name}       -> {fam}
 *   fam_to_pdarray    {region, name}              -> array
 * (start, stop, step) are already normalised as Python's slice.indices().
 *
 * The handle cache is checked before each use (one stat round trip): if
 * another program deleted the array, the name is opened again (it may name
 * a new array now) or the command fails with KeyError. A transport error
 * (a memory server restarted, an RMA that never completed) makes the rank
 * drop its connection and open a new one: at once when a cached handle's
 * check finds it, else at the next FAM command. */
#define _GNU_SOURCE
#include "kd.h"

#include <fam/fam.h>
#include <kodiak/famarray.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Elements per libfamarray call: bounds the temporaries and the size of one
 * bulk request, and lets a long scatter start moving before it is all
 * converted. */
#define FAM_CHUNK (1 << 20)
#define FAM_REGION_DEFAULT (1ull << 30) /* a new region's size limit */
#define FAM_ITEM_MODE 0644
#define FAM_REGION_MODE 0755

/* ---- the connection and the handle cache ------------------------------------------ */

static fam_t *kd_fam; /* this rank's connection; NULL until the first command */

/* KD_FAM_REST=0 in the environment: no fam_rest after commands (the
 * benchmarks' A/B) */
static int getenv_rest_off(void)
{
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("KD_FAM_REST");
        off = e && !strcmp(e, "0");
    }
    return off;
}

/* One open FAM array. The cache is tiny and searched linearly: a command
 * names one array, and opening one costs a round trip to a memory server. */
struct fam_slot {
    char region[FAM_NAME_MAX + 1];
    char name[FAM_NAME_MAX + 1];
    fa_array_t *a;  /* NULL: free slot */
    uint64_t used;  /* tick of the last use, for eviction */
};
#define FAM_CACHE 32
static struct fam_slot cache[FAM_CACHE];
static uint64_t cache_tick;

static struct fam_slot *cache_find(const char *region, const char *name)
{
    for (int i = 0; i < FAM_CACHE; i++)
        if (cache[i].a && strcmp(cache[i].region, region) == 0 &&
            strcmp(cache[i].name, name) == 0) {
            cache[i].used = ++cache_tick;
            return &cache[i];
        }
    return NULL;
}

static void cache_drop(const char *region, const char *name)
{
    struct fam_slot *s = cache_find(region, name);
    if (s) {
        fa_close(s->a);
        s->a = NULL;
    }
}

static void cache_drop_region(const char *region)
{
    for (int i = 0; i < FAM_CACHE; i++)
        if (cache[i].a && strcmp(cache[i].region, region) == 0) {
            fa_close(cache[i].a);
            cache[i].a = NULL;
        }
}

static void cache_put(const char *region, const char *name, fa_array_t *a)
{
    cache_drop(region, name);
    struct fam_slot *s = &cache[0];
    for (int i = 0; i < FAM_CACHE; i++) {
        if (!cache[i].a) {
            s = &cache[i];
            break;
        }
        if (cache[i].used < s->used)
            s = &cache[i];
    }
    if (s->a)
        fa_close(s->a); /* the least recently used */
    snprintf(s->region, sizeof s->region, "%s", region);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->a = a;
    s->used = ++cache_tick;
}

/* A libfam error code as the Python exception the client raises. */
static const char *fam_pytype(int rc)
{
    switch (rc) {
    case FAM_EINVAL: return "ValueError";
    case FAM_ENOTFOUND: return "KeyError";
    case FAM_EEXIST: return "FileExistsError";
    case FAM_EPERM: return "PermissionError";
    case FAM_EOUTOFRANGE: return "IndexError";
    case FAM_ENOSPACE: case FAM_ENOMEM: return "MemoryError";
    case FAM_EUNREACHABLE: case FAM_ETIMEOUT: return "ConnectionError";
    case FAM_ENOTSUP: return "NotImplementedError";
    default: return "RuntimeError";
    }
}

/* Set when a libfam call of this rank failed at the transport: a memory
 * server restarted (its connection is closed), an operation never completed
 * (the shm provider does not answer RMA with a revoked key, and that
 * connection serves nothing after it), or the fabric reported an error. The
 * next FAM command drops the connection and opens a new one. (libfam
 * reconnects by itself too, but one server at a time, as each is next used:
 * after a restart of several famds a command would still meet the others'
 * dead connections. A fresh fam_t has them all at once.) */
static bool kd_fam_broken;

static bool transport_error(int rc)
{
    return rc == FAM_EUNREACHABLE || rc == FAM_ETIMEOUT || rc == FAM_EFABRIC;
}

static int fam_fail_rc(kd_cmd *c, int rc, const char *what)
{
    if (transport_error(rc)) {
        kd_fam_broken = true;
        return kd_fail(c, fam_pytype(rc), "%s: %s (rank %d reconnects to the memory "
                       "servers at the next FAM command)", what, fam_last_error(), c->rank);
    }
    if (rc == FAM_ENOTFOUND) /* libfam's and libfamarray's say what is missing, and where */
        return kd_fail(c, fam_pytype(rc), "%s", fam_last_error());
    return kd_fail(c, fam_pytype(rc), "%s: %s", what, fam_last_error());
}

/* Forget this rank's connection and every handle opened through it. */
static void fam_reset(void)
{
    kd_ds_reset(); /* the dataset store's handles use this connection */
    for (int i = 0; i < FAM_CACHE; i++)
        if (cache[i].a) {
            fa_close(cache[i].a);
            cache[i].a = NULL;
        }
    fam_finalize(kd_fam);
    kd_fam = NULL;
    kd_fam_broken = false;
}

/* What kodiakd's ranks ask famd to poll for after their activity, in us
 * (FAM_SPIN_US, when the environment does not set it). */
#define KD_FAM_SPIN_US "100"

/* At kodiakd's exit: close this rank's handles and its libfam connection,
 * which also removes its shm endpoint's 16 MiB file under /dev/shm. */
void kd_fam_shutdown(void)
{
    if (kd_fam) {
        kd_ds_shutdown();
        fam_reset();
    }
}

/* Connect this rank to the memory servers if it is not yet (or again, after
 * a transport error). Not collective: 0 or -1 with the error recorded. */
static int fam_init_rank(kd_cmd *c)
{
    int rc = 0;
    if (kd_fam && kd_fam_broken)
        fam_reset();
    if (!kd_fam) {
        const char *servers = getenv("FAM_SERVERS");
        if (!servers || !*servers) {
            rc = kd_fail(c, "RuntimeError",
                         "no memory servers configured: kodiakd's ranks need "
                         "FAM_SERVERS=host:port[,host:port...] in their environment "
                         "(ak.start() and `kodiak up` set it; with mpirun, pass "
                         "-x FAM_SERVERS)");
        } else {
            fam_options_t o;
            memset(&o, 0, sizeof o);
            /* famd polls this long after the ranks' activity, not its
             * 2 ms --spin-us, unless the user chose (FAM_SPIN_US): two famds
             * spinning 2 ms after every request took the cores that the
             * ranks' collectives and the next commands needed on a small
             * host (docs/PERFORMANCE.md, s12) */
            setenv("FAM_SPIN_US", KD_FAM_SPIN_US, 0);
            int r = fam_initialize(&o, &kd_fam);
            if (r) {
                kd_fam = NULL;
                rc = kd_fail(c, fam_pytype(r), "rank %d cannot reach the memory servers "
                             "(FAM_SERVERS=%.200s): %s", c->rank, servers, fam_last_error());
            } else {
                /* which provider libfam took for each famd (docs/DEPLOY.md):
                 * one line per server, once per connection, in the log */
                for (int i = 0; i < fam_num_servers(kd_fam); i++) {
                    fam_server_info_t si;
                    if (fam_server_info(kd_fam, i, &si) == 0)
                        fprintf(stderr, "kodiakd rank %d: memory server %s:%d over "
                                "%s%s%s\n", c->rank, si.host, si.port, si.provider,
                                si.local ? " (this host)" : "",
                                si.mapped ? " (pool mapped)" : "");
                }
            }
        }
    }
    return rc;
}

/* Collective: every rank connected, or all fail. */
static int fam_ready(kd_cmd *c)
{
    return kd_agree(c, fam_init_rank(c));
}

fam_t *kd_fam_connect(kd_cmd *c)
{
    return fam_ready(c) ? NULL : kd_fam;
}

void kd_fam_rest(void)
{
    if (kd_fam && !getenv_rest_off())
        fam_rest(kd_fam);
}

int kd_fam_error(kd_cmd *c, int rc, const char *what)
{
    return fam_fail_rc(c, rc, what);
}

/* ---- arguments ----------------------------------------------------------------------- */

static int name_arg(kd_cmd *c, const char *key, const char **v)
{
    if (kd_arg_str(c, key, v))
        return -1;
    size_t n = strlen(*v);
    if (n == 0 || n > FAM_NAME_MAX)
        return kd_fail(c, "ValueError", "%s: a FAM %s name must have 1 to %d bytes, "
                       "not %zu", c->cmd, key, FAM_NAME_MAX, n);
    return 0;
}

static kd_dtype kd_of_fa(fa_dtype_t t)
{
    switch (t) {
    case FA_INT64: return KD_INT64;
    case FA_UINT64: return KD_UINT64;
    case FA_FLOAT64: return KD_FLOAT64;
    default: return KD_BOOL;
    }
}

static fa_dtype_t fa_of_kd(kd_dtype t)
{
    switch (t) {
    case KD_INT64: return FA_INT64;
    case KD_UINT64: return FA_UINT64;
    case KD_FLOAT64: return FA_FLOAT64;
    default: return FA_BOOL;
    }
}

/* The FAM array the command names, open on every rank. Collective.
 * fresh: reopen even if cached (a lookup by the client). */
static int array_arg(kd_cmd *c, bool fresh, fa_array_t **out, const char **region,
                     const char **name)
{
    if (name_arg(c, "region", region) || name_arg(c, "name", name))
        return -1;
    if (fam_ready(c))
        return -1;
    int rc = 0;
    struct fam_slot *s = fresh ? NULL : cache_find(*region, *name);
    if (s) {
        /* Is it still the array this handle opened? Another program may have
         * deleted it (and made a new one under the name): RMA with the old
         * key would never complete over shm. One stat round trip. */
        fam_stat_t st;
        int r = fam_stat(kd_fam, fa_item(s->a), &st);
        if (r && transport_error(r)) { /* a memory server restarted: reconnect once */
            fam_reset();
            if (fam_init_rank(c) == 0)
                r = FAM_ENOTFOUND; /* reopen below, on the new connection */
            else
                rc = -1;
        }
        if (r == 0)
            *out = s->a;
        else
            s = NULL;
    }
    if (!s && !rc) {
        cache_drop(*region, *name);
        fa_array_t *a = NULL;
        int r = fa_open(kd_fam, *region, *name, &a);
        if (r) {
            char what[600];
            snprintf(what, sizeof what, "FAM array '%.255s' in region '%.255s'", *name, *region);
            rc = fam_fail_rc(c, r, what);
        } else {
            cache_put(*region, *name, a);
            *out = a;
        }
    }
    return kd_agree(c, rc);
}

static void result_fam(kd_cmd *c, fa_array_t *a)
{
    if (c->rank != 0)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "region", json_object_new_string(fa_region(a)));
    json_object_object_add(o, "name", json_object_new_string(fa_name(a)));
    json_object_object_add(o, "dtype", json_object_new_string(fa_dtype_name(fa_dtype(a))));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)fa_size(a)));
    kd_result_set(c, "fam", o);
}

/* ---- indices and values ---------------------------------------------------------------- */

/* Check this rank's block of an index pdarray against a FAM array of `size`
 * elements (negative int64 indices count from the end, as NumPy's). Local:
 * the caller agrees. *neg: some index is negative (needs converting). */
static int check_index(kd_cmd *c, const kd_array *idx, uint64_t size, bool *neg)
{
    *neg = false;
    if (idx->dtype == KD_UINT64) {
        const uint64_t *p = idx->data;
        uint64_t hi = 0;
        for (int64_t i = 0; i < idx->n; i++)
            hi = p[i] > hi ? p[i] : hi;
        if (idx->n && hi >= size)
            return kd_fail(c, "IndexError", "index %llu is out of bounds for FAM array of "
                           "size %llu", (unsigned long long)hi, (unsigned long long)size);
        return 0;
    }
    const int64_t *p = idx->data;
    int64_t lo = 0, hi = 0;
    for (int64_t i = 0; i < idx->n; i++) {
        lo = p[i] < lo ? p[i] : lo;
        hi = p[i] > hi ? p[i] : hi;
    }
    /* size < 2^63: a FAM array of 2^63 elements cannot exist */
    int64_t s = (int64_t)size;
    if (idx->n && (hi >= s || lo < -s)) {
        int64_t bad = hi >= s ? hi : lo;
        return kd_fail(c, "IndexError", "index %lld is out of bounds for FAM array of "
                       "size %llu", (long long)bad, (unsigned long long)size);
    }
    *neg = lo < 0;
    return 0;
}

/* Indices [k0, k0 + m) of this rank's block as uint64 element numbers:
 * the block itself when no conversion is needed, else converted into buf. */
static const uint64_t *index_chunk(const kd_array *idx, bool neg, uint64_t size, int64_t k0,
                                   int64_t m, uint64_t *buf)
{
    if (!neg)
        return (const uint64_t *)idx->data + k0;
    const int64_t *p = (const int64_t *)idx->data + k0;
    for (int64_t i = 0; i < m; i++)
        buf[i] = (uint64_t)(p[i] < 0 ? p[i] + (int64_t)size : p[i]);
    return buf;
}

/* The right-hand side of a write: a pdarray of the FAM array's dtype with
 * `count` elements ("values"), or a scalar cast to that dtype ("value"). */
typedef struct {
    const kd_array *arr; /* NULL for a scalar */
    uint8_t bits[8];     /* the scalar in the FAM array's dtype */
} fam_values;

static int values_arg(kd_cmd *c, kd_dtype t, int64_t count, fam_values *v)
{
    memset(v, 0, sizeof *v);
    if (kd_has_arg(c, "values")) {
        kd_array *a;
        if (kd_arg_array(c, "values", &a))
            return -1;
        if (a->dtype != t)
            return kd_fail(c, "TypeError", "%s: values are %s but the FAM array holds %s "
                           "(cast them first: values.astype(...))", c->cmd,
                           kd_dtype_name(a->dtype), kd_dtype_name(t));
        if (a->size != count)
            return kd_fail(c, "ValueError", "%s: %lld values for %lld elements (shape "
                           "mismatch)", c->cmd, (long long)a->size, (long long)count);
        v->arr = a;
        return 0;
    }
    kd_scalar s;
    if (kd_arg_scalar(c, "value", &s))
        return -1;
    kd_scalar_cast(&s, t, v->bits);
    return 0;
}

/* Values [k0, k0 + m) of this rank's block: the block itself, or the
 * scalar repeated into buf, which holds cap elements (the largest m this
 * rank asks for: the chunk, or fewer for a short range, so `fa[0] = 5`
 * fills one element, not a whole chunk). */
static const void *values_chunk(const fam_values *v, kd_dtype t, int64_t k0, int64_t cap,
                                void *buf, bool *filled)
{
    size_t w = kd_dtype_size(t);
    if (v->arr)
        return (const char *)v->arr->data + (size_t)k0 * w;
    if (!*filled) { /* the same scalar every time: fill once */
        if (w == 1)
            memset(buf, v->bits[0], (size_t)cap);
        else
            for (int64_t i = 0; i < cap; i++)
                memcpy((char *)buf + (size_t)i * 8, v->bits, 8);
        *filled = true;
    }
    return buf;
}

static int index_pdarray_arg(kd_cmd *c, kd_array **idx)
{
    if (kd_arg_array(c, "index", idx))
        return -1;
    if ((*idx)->dtype != KD_INT64 && (*idx)->dtype != KD_UINT64)
        return kd_fail(c, "IndexError", "arrays used as indices of a FAM array must be "
                       "int64 or uint64, not %s", kd_dtype_name((*idx)->dtype));
    return 0;
}

/* ---- regions ------------------------------------------------------------------------------- */

static int cmd_fam_region(kd_cmd *c)
{
    const char *region;
    bool create = true;
    int64_t size = (int64_t)FAM_REGION_DEFAULT;
    if (name_arg(c, "region", &region))
        return -1;
    if (kd_has_arg(c, "create") && kd_arg_bool(c, "create", &create))
        return -1;
    if (kd_has_arg(c, "size") && kd_arg_i64(c, "size", &size))
        return -1;
    if (size <= 0)
        return kd_fail(c, "ValueError", "fam_region: size must be positive, not %lld",
                       (long long)size);
    if (fam_ready(c))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        fam_region_t *r = NULL;
        bool created = false;
        int e = fam_lookup_region(kd_fam, region, &r);
        if (e == FAM_ENOTFOUND && create) {
            fam_region_attr_t attr;
            memset(&attr, 0, sizeof attr);
            attr.interleave = FAM_INTERLEAVE_ENABLE;
            e = fam_create_region(kd_fam, region, (uint64_t)size, FAM_REGION_MODE, &attr, &r);
            created = e == 0;
            if (e == FAM_EEXIST) /* another client made it just now */
                e = fam_lookup_region(kd_fam, region, &r);
        }
        fam_stat_t st;
        if (!e)
            e = fam_stat_region(kd_fam, r, &st);
        if (e) {
            char what[300];
            snprintf(what, sizeof what, "FAM region '%.255s'", region);
            rc = fam_fail_rc(c, e, what);
        } else {
            kd_result_set(c, "region", json_object_new_string(region));
            kd_result_i64(c, "size", (int64_t)st.size);
            kd_result_i64(c, "used", (int64_t)st.used);
            kd_result_i64(c, "servers", (int64_t)st.num_servers);
            kd_result_set(c, "created", json_object_new_boolean(created));
        }
        if (r)
            fam_release_region(r);
    }
    return rc;
}

static int cmd_fam_region_list(kd_cmd *c)
{
    const char *region;
    if (name_arg(c, "region", &region) || fam_ready(c))
        return -1;
    if (c->rank != 0)
        return 0;
    char **names = NULL;
    size_t n = 0;
    int e = fa_list(kd_fam, region, &names, &n);
    if (e) {
        char what[300];
        snprintf(what, sizeof what, "FAM region '%.255s'", region);
        return fam_fail_rc(c, e, what);
    }
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(list, json_object_new_string(names[i]));
    fa_free_names(names, n);
    kd_result_set(c, "names", list);
    return 0;
}

static int cmd_fam_region_destroy(kd_cmd *c)
{
    const char *region;
    if (name_arg(c, "region", &region) || fam_ready(c))
        return -1;
    cache_drop_region(region);
    if (c->rank != 0)
        return 0;
    fam_region_t *r = NULL;
    int e = fam_lookup_region(kd_fam, region, &r);
    if (!e)
        e = fam_destroy_region(kd_fam, r); /* frees r */
    else if (r)
        fam_release_region(r);
    if (e) {
        char what[300];
        snprintf(what, sizeof what, "FAM region '%.255s'", region);
        return fam_fail_rc(c, e, what);
    }
    return 0;
}

/* ---- creating, finding, deleting ---------------------------------------------------------- */

/* Rank 0 creates; then every other rank opens it. Collective. */
static int create_everywhere(kd_cmd *c, const char *region, const char *name, kd_dtype t,
                             int64_t size, fa_array_t **out)
{
    int rc = 0;
    *out = NULL;
    if (c->rank == 0) {
        cache_drop(region, name);
        int e = fa_create(kd_fam, region, name, fa_of_kd(t), (uint64_t)size, FAM_ITEM_MODE, out);
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "cannot create FAM array '%.255s' in region '%.255s'",
                     name, region);
            rc = fam_fail_rc(c, e, what);
        } else {
            cache_put(region, name, *out);
        }
    }
    if (kd_agree(c, rc))
        return -1;
    if (c->rank != 0) {
        cache_drop(region, name);
        int e = fa_open(kd_fam, region, name, out);
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "FAM array '%.255s' in region '%.255s'", name, region);
            rc = fam_fail_rc(c, e, what);
        } else {
            cache_put(region, name, *out);
        }
    }
    return kd_agree(c, rc);
}

static int cmd_fam_create(kd_cmd *c)
{
    const char *region, *name;
    kd_dtype t;
    int64_t size;
    if (name_arg(c, "region", &region) || name_arg(c, "name", &name) ||
        kd_arg_dtype(c, "dtype", &t) || kd_arg_i64(c, "size", &size))
        return -1;
    if (size < 0 || size > (INT64_MAX / 16))
        return kd_fail(c, "ValueError", "fam_create: size %lld is invalid", (long long)size);
    if (fam_ready(c))
        return -1;
    fa_array_t *a;
    if (create_everywhere(c, region, name, t, size, &a))
        return -1;
    result_fam(c, a);
    return 0;
}

static int cmd_fam_lookup(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    if (array_arg(c, true, &a, &region, &name))
        return -1;
    result_fam(c, a);
    return 0;
}

static int cmd_fam_delete(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    if (array_arg(c, false, &a, &region, &name))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        struct fam_slot *s = cache_find(region, name);
        if (s)
            s->a = NULL; /* fa_destroy frees the handle */
        int e = fa_destroy(a);
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "cannot delete FAM array '%.255s' in region '%.255s'",
                     name, region);
            rc = fam_fail_rc(c, e, what);
        }
    } else {
        cache_drop(region, name);
    }
    return rc;
}

/* ---- indexed: scatter, gather, add --------------------------------------------------------- */

enum fam_op { OP_SCATTER, OP_ADD, OP_FETCH_ADD };

static int indexed_write(kd_cmd *c, enum fam_op op)
{
    fa_array_t *a;
    const char *region, *name;
    kd_array *idx;
    if (array_arg(c, false, &a, &region, &name) || index_pdarray_arg(c, &idx))
        return -1;
    kd_dtype t = kd_of_fa(fa_dtype(a));
    uint64_t size = fa_size(a);
    if (op != OP_SCATTER && t == KD_BOOL)
        return kd_fail(c, "TypeError", "%s: atomic add needs an int64, uint64 or float64 "
                       "FAM array; '%.255s' holds bool", c->cmd, name);
    fam_values v;
    if (values_arg(c, t, idx->size, &v))
        return -1;
    bool neg;
    if (kd_agree(c, check_index(c, idx, size, &neg)))
        return -1;
    kd_array *old = NULL;
    if (op == OP_FETCH_ADD && !(old = kd_new_array(c, t, idx->size)))
        return -1;
    size_t w = kd_dtype_size(t);
    int64_t n = idx->n, cap = n < FAM_CHUNK ? n : FAM_CHUNK;
    uint64_t *ibuf = neg && cap ? malloc((size_t)cap * 8) : NULL;
    void *vbuf = !v.arr && cap ? malloc((size_t)cap * w) : NULL;
    int rc = 0;
    if ((neg && cap && !ibuf) || (!v.arr && cap && !vbuf))
        rc = kd_fail(c, "MemoryError", "rank %d is out of memory", c->rank);
    bool filled = false;
    /* fetch_add returns what a sequential loop over the whole index list
     * would see, as NumPy's order of updates, and a scatter of values keeps
     * the last value of a repeated index, as NumPy: with repeated indices
     * in the blocks of several ranks, the ranks take turns in rank order
     * (each rank's own writes are applied in its index order by the memory
     * servers). add, and a scatter of one scalar, need no order: their
     * ranks run at once. Taking turns costs little here: the memory servers
     * do the work, and a turn keeps both of them busy (10^7 indices over
     * 2 famds: 0.49-0.57 s in turns at 2 ranks, against 0.9-1.4 s when the
     * client first removed the repeats with an argsort). */
    int turns = op == OP_FETCH_ADD || (op == OP_SCATTER && v.arr) ? c->nranks : 1;
    for (int turn = 0; turn < turns; turn++) {
        bool mine = turns == 1 || turn == c->rank;
        for (int64_t k0 = 0; mine && k0 < n && !rc; k0 += FAM_CHUNK) {
            int64_t m = n - k0 < FAM_CHUNK ? n - k0 : FAM_CHUNK;
            const uint64_t *ix = index_chunk(idx, neg, size, k0, m, ibuf);
            const void *vals = values_chunk(&v, t, k0, cap, vbuf, &filled);
            int e;
            if (op == OP_SCATTER)
                e = fa_scatter(a, (uint64_t)m, ix, vals);
            else if (op == OP_ADD)
                e = fa_add(a, (uint64_t)m, ix, vals);
            else
                e = fa_fetch_add(a, (uint64_t)m, ix, vals, (char *)old->data + (size_t)k0 * w);
            if (e) {
                char what[600];
                snprintf(what, sizeof what, "%s into FAM array '%.255s' (rank %d)", c->cmd,
                         name, c->rank);
                rc = fam_fail_rc(c, e, what);
            }
        }
        if (turns > 1)
            kd_quiet_barrier(c->comm);
    }
    free(ibuf);
    free(vbuf);
    if (kd_agree(c, rc))
        return -1;
    if (old)
        kd_result_array(c, "array", old);
    return 0;
}

static int cmd_fam_scatter(kd_cmd *c) { return indexed_write(c, OP_SCATTER); }
static int cmd_fam_add(kd_cmd *c) { return indexed_write(c, OP_ADD); }
static int cmd_fam_fetch_add(kd_cmd *c) { return indexed_write(c, OP_FETCH_ADD); }

static int cmd_fam_gather(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    kd_array *idx;
    if (array_arg(c, false, &a, &region, &name) || index_pdarray_arg(c, &idx))
        return -1;
    kd_dtype t = kd_of_fa(fa_dtype(a));
    uint64_t size = fa_size(a);
    bool neg;
    if (kd_agree(c, check_index(c, idx, size, &neg)))
        return -1;
    kd_array *r = kd_new_array(c, t, idx->size);
    if (!r)
        return -1;
    size_t w = kd_dtype_size(t);
    int64_t n = idx->n, cap = n < FAM_CHUNK ? n : FAM_CHUNK;
    uint64_t *ibuf = neg && cap ? malloc((size_t)cap * 8) : NULL;
    int rc = neg && cap && !ibuf ? kd_fail(c, "MemoryError", "rank %d is out of memory",
                                            c->rank) : 0;
    for (int64_t k0 = 0; k0 < n && !rc; k0 += FAM_CHUNK) {
        int64_t m = n - k0 < FAM_CHUNK ? n - k0 : FAM_CHUNK;
        const uint64_t *ix = index_chunk(idx, neg, size, k0, m, ibuf);
        int e = fa_gather(a, (uint64_t)m, ix, (char *)r->data + (size_t)k0 * w);
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "gather from FAM array '%.255s' (rank %d)", name,
                     c->rank);
            rc = fam_fail_rc(c, e, what);
        }
    }
    free(ibuf);
    if (kd_agree(c, rc))
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

static int cmd_fam_get_item(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    int64_t i;
    if (array_arg(c, false, &a, &region, &name) || kd_arg_i64(c, "index", &i))
        return -1;
    int64_t size = (int64_t)fa_size(a);
    if (i < -size || i >= size)
        return kd_fail(c, "IndexError", "index %lld is out of bounds for FAM array '%.255s' "
                       "of size %lld", (long long)i, name, (long long)size);
    if (i < 0)
        i += size;
    if (c->rank != 0)
        return 0;
    kd_dtype t = kd_of_fa(fa_dtype(a));
    uint8_t buf[8] = {0};
    int e = fa_get(a, (uint64_t)i, 1, buf);
    if (e)
        return fam_fail_rc(c, e, "read of one element");
    kd_scalar s;
    s.dtype = t;
    switch (t) {
    case KD_INT64: memcpy(&s.v.i, buf, 8); break;
    case KD_UINT64: memcpy(&s.v.u, buf, 8); break;
    case KD_FLOAT64: memcpy(&s.v.f, buf, 8); break;
    default: s.v.b = buf[0] != 0; break;
    }
    kd_result_scalar(c, "value", &s);
    return 0;
}

/* ---- slices --------------------------------------------------------------------------------- */

/* Check (start, stop, step) against `size` and give the slice's length. */
static int slice_args(kd_cmd *c, uint64_t size, int64_t *start, int64_t *step, int64_t *len)
{
    int64_t stop;
    if (kd_arg_i64(c, "start", start) || kd_arg_i64(c, "stop", &stop) ||
        kd_arg_i64(c, "step", step))
        return -1;
    if (*step == 0)
        return kd_fail(c, "ValueError", "slice step cannot be zero");
    __int128 n;
    if (*step > 0)
        n = *start < stop ? ((__int128)stop - *start - 1) / *step + 1 : 0;
    else
        n = *start > stop ? ((__int128)*start - stop - 1) / -(__int128)*step + 1 : 0;
    if (n > 0) {
        __int128 last = (__int128)*start + (n - 1) * (__int128)*step;
        if (*start < 0 || (uint64_t)*start >= size || last < 0 || last >= (__int128)size)
            return kd_fail(c, "IndexError", "slice %lld:%lld:%lld is out of bounds for a FAM "
                           "array of size %llu (give it normalised, as slice.indices does)",
                           (long long)*start, (long long)stop, (long long)*step,
                           (unsigned long long)size);
    }
    *len = (int64_t)n;
    return 0;
}

/* Element numbers start + (k0 + i) * step, i < m, into buf. */
static void slice_index(int64_t start, int64_t step, int64_t k0, int64_t m, uint64_t *buf)
{
    int64_t x = start + k0 * step;
    for (int64_t i = 0; i < m; i++, x += step)
        buf[i] = (uint64_t)x;
}

static int cmd_fam_get_slice(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    int64_t start, step, len;
    if (array_arg(c, false, &a, &region, &name) ||
        slice_args(c, fa_size(a), &start, &step, &len))
        return -1;
    kd_dtype t = kd_of_fa(fa_dtype(a));
    kd_array *r = kd_new_array(c, t, len);
    if (!r)
        return -1;
    size_t w = kd_dtype_size(t);
    int64_t n = r->n, cap = n < FAM_CHUNK ? n : FAM_CHUNK;
    uint64_t *ibuf = step != 1 && cap ? malloc((size_t)cap * 8) : NULL;
    int rc = step != 1 && cap && !ibuf ? kd_fail(c, "MemoryError", "rank %d is out of "
                                                  "memory", c->rank) : 0;
    for (int64_t k0 = 0; k0 < n && !rc; k0 += FAM_CHUNK) {
        int64_t m = n - k0 < FAM_CHUNK ? n - k0 : FAM_CHUNK;
        void *dst = (char *)r->data + (size_t)k0 * w;
        int e;
        if (step == 1) {
            e = fa_get(a, (uint64_t)(start + r->lo + k0), (uint64_t)m, dst);
        } else {
            slice_index(start, step, r->lo + k0, m, ibuf);
            e = fa_gather(a, (uint64_t)m, ibuf, dst);
        }
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "read from FAM array '%.255s' (rank %d)", name, c->rank);
            rc = fam_fail_rc(c, e, what);
        }
    }
    free(ibuf);
    if (kd_agree(c, rc))
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

/* Write this rank's block [lo, lo + n) of a slice's elements from `v`. */
static int put_range(kd_cmd *c, fa_array_t *a, const char *name, int64_t start, int64_t step,
                     int64_t lo, int64_t n, const fam_values *v)
{
    kd_dtype t = kd_of_fa(fa_dtype(a));
    size_t w = kd_dtype_size(t);
    int64_t cap = n < FAM_CHUNK ? n : FAM_CHUNK;
    uint64_t *ibuf = step != 1 && cap ? malloc((size_t)cap * 8) : NULL;
    void *vbuf = !v->arr && cap ? malloc((size_t)cap * w) : NULL;
    int rc = 0;
    if ((step != 1 && cap && !ibuf) || (!v->arr && cap && !vbuf))
        rc = kd_fail(c, "MemoryError", "rank %d is out of memory", c->rank);
    bool filled = false;
    for (int64_t k0 = 0; k0 < n && !rc; k0 += FAM_CHUNK) {
        int64_t m = n - k0 < FAM_CHUNK ? n - k0 : FAM_CHUNK;
        const void *vals = values_chunk(v, t, k0, cap, vbuf, &filled);
        int e;
        if (step == 1) {
            e = fa_put(a, (uint64_t)(start + lo + k0), (uint64_t)m, vals);
        } else {
            slice_index(start, step, lo + k0, m, ibuf);
            e = fa_scatter(a, (uint64_t)m, ibuf, vals);
        }
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "write into FAM array '%.255s' (rank %d)", name,
                     c->rank);
            rc = fam_fail_rc(c, e, what);
        }
    }
    free(ibuf);
    free(vbuf);
    return rc;
}

static int cmd_fam_put_slice(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    int64_t start, step, len;
    if (array_arg(c, false, &a, &region, &name) ||
        slice_args(c, fa_size(a), &start, &step, &len))
        return -1;
    fam_values v;
    if (values_arg(c, kd_of_fa(fa_dtype(a)), len, &v))
        return -1;
    /* a pdarray of the slice's length has the same blocks as the slice */
    int64_t lo, hi;
    kd_block(len, c->nranks, c->rank, &lo, &hi);
    return kd_agree(c, put_range(c, a, name, start, step, lo, hi - lo, &v));
}

/* ---- whole arrays ---------------------------------------------------------------------------- */

static int cmd_fam_from_pdarray(kd_cmd *c)
{
    kd_array *p;
    const char *region, *name;
    if (kd_arg_array(c, "array", &p) || name_arg(c, "region", &region) ||
        name_arg(c, "name", &name) || fam_ready(c))
        return -1;
    fa_array_t *a;
    if (create_everywhere(c, region, name, p->dtype, p->size, &a))
        return -1;
    fam_values v = {.arr = p};
    int rc = put_range(c, a, name, 0, 1, p->lo, p->n, &v);
    if (kd_agree(c, rc)) {
        /* leave no half-written array behind */
        if (c->rank == 0) {
            struct fam_slot *s = cache_find(region, name);
            if (s)
                s->a = NULL;
            fa_destroy(a);
        } else {
            cache_drop(region, name);
        }
        return -1;
    }
    result_fam(c, a);
    return 0;
}

static int cmd_fam_to_pdarray(kd_cmd *c)
{
    fa_array_t *a;
    const char *region, *name;
    if (array_arg(c, false, &a, &region, &name))
        return -1;
    kd_dtype t = kd_of_fa(fa_dtype(a));
    uint64_t size = fa_size(a);
    if (size > (uint64_t)(INT64_MAX / 16))
        return kd_fail(c, "MemoryError", "FAM array '%.255s' is too large", name);
    kd_array *r = kd_new_array(c, t, (int64_t)size);
    if (!r)
        return -1;
    size_t w = kd_dtype_size(t);
    int rc = 0;
    for (int64_t k0 = 0; k0 < r->n && !rc; k0 += FAM_CHUNK) {
        int64_t m = r->n - k0 < FAM_CHUNK ? r->n - k0 : FAM_CHUNK;
        int e = fa_get(a, (uint64_t)(r->lo + k0), (uint64_t)m, (char *)r->data + (size_t)k0 * w);
        if (e) {
            char what[600];
            snprintf(what, sizeof what, "read from FAM array '%.255s' (rank %d)", name, c->rank);
            rc = fam_fail_rc(c, e, what);
        }
    }
    if (kd_agree(c, rc))
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

void kd_register_fam(void)
{
    kd_register("fam_region", cmd_fam_region);
    kd_register("fam_region_list", cmd_fam_region_list);
    kd_register("fam_region_destroy", cmd_fam_region_destroy);
    kd_register("fam_create", cmd_fam_create);
    kd_register("fam_lookup", cmd_fam_lookup);
    kd_register("fam_delete", cmd_fam_delete);
    kd_register("fam_scatter", cmd_fam_scatter);
    kd_register("fam_gather", cmd_fam_gather);
    kd_register("fam_get_item", cmd_fam_get_item);
    kd_register("fam_get_slice", cmd_fam_get_slice);
    kd_register("fam_put_slice", cmd_fam_put_slice);
    kd_register("fam_add", cmd_fam_add);
    kd_register("fam_fetch_add", cmd_fam_fetch_add);
    kd_register("fam_from_pdarray", cmd_fam_from_pdarray);
    kd_register("fam_to_pdarray", cmd_fam_to_pdarray);
}

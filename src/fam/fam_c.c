/* SPDX-License-Identifier: Apache-2.0 */
/* fam_c.c — OpenFAM's C API (c_fam_*) as thin wrappers over libfam.
 *
 * A c_fam handle is a struct cfam; a context is another struct cfam that
 * shares its parent's connection. Region and item descriptors are libfam's
 * own. Failures are turned into OpenFAM's convention: -1 or NULL, with the
 * Fam_Error number and the message kept per thread for c_fam_error() and
 * c_fam_error_msg() until the next failure. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fam/fam_c.h"
#include "fam_internal.h"

#define CFAM_MAGIC 0x4346414du /* "CFAM" */

/* What a c_fam or c_fam_context points to. */
struct cfam {
    uint32_t magic;       /* CFAM_MAGIC while alive */
    int is_context;       /* 1 for a context (shares parent's connection) */
    struct cfam *parent;  /* contexts: the c_fam they came from */
    fam_t *f;             /* the connection; NULL before initialize */
    char *opt[13];        /* option strings as given (or defaults) */
    fam_memory_type_t default_memtype;
};

static _Thread_local int err_no;
static _Thread_local char err_msg[1024];

static int to_fam_error(int code)
{
    switch (code) {
    case FAM_EINVAL: return FAM_ERR_INVALID;
    case FAM_ENOTFOUND: return FAM_ERR_NOTFOUND;
    case FAM_EEXIST: return FAM_ERR_ALREADYEXIST;
    case FAM_EPERM: return FAM_ERR_NOPERM;
    case FAM_EOUTOFRANGE: return FAM_ERR_OUTOFRANGE;
    case FAM_ENOSPACE: return FAM_ERR_NO_SPACE;
    case FAM_EUNREACHABLE: return FAM_ERR_RPC;
    case FAM_EPROTO: return FAM_ERR_RPC;
    case FAM_ENOMEM: return FAM_ERR_MEMORY;
    case FAM_EFABRIC: return FAM_ERR_LIBFABRIC;
    case FAM_ENOTSUP: return FAM_ERR_UNIMPL;
    case FAM_EBUSY: return FAM_ERR_RESOURCE;
    case FAM_ETIMEOUT: return FAM_ERR_TIMEOUT;
    default: return FAM_ERR_UNKNOWN;
    }
}

/* Record a libfam failure for c_fam_error(); returns -1. */
static int failed(int code)
{
    err_no = to_fam_error(code);
    snprintf(err_msg, sizeof err_msg, "%s", fam_last_error()[0]
             ? fam_last_error() : fam_strerror(code));
    return -1;
}

static int cfail(int fam_error, const char *msg)
{
    err_no = fam_error;
    snprintf(err_msg, sizeof err_msg, "%s", msg);
    return -1;
}

int c_fam_error(void) { return err_no; }
const char *c_fam_error_msg(void) { return err_msg; }

/* The connection behind a c_fam or context, or NULL (error recorded). */
static fam_t *conn(c_fam *obj)
{
    struct cfam *c = obj;
    if (!c || c->magic != CFAM_MAGIC) {
        cfail(FAM_ERR_NULLPTR, "not a c_fam handle");
        return NULL;
    }
    fam_t *f = c->is_context ? c->parent->f : c->f;
    if (!f) cfail(FAM_ERR_NOT_CREATED, "c_fam_initialize has not succeeded");
    return f;
}

#define RC(call) ((rc_ = (call)) < 0 ? failed(rc_) : 0)

/* ---- set-up ---------------------------------------------------------------- */

static const char *opt_names[13] = {
    "DEFAULT_REGION_NAME", "CIS_SERVER", "GRPC_PORT", "LIBFABRIC_PROVIDER",
    "FAM_THREAD_MODEL", "CIS_INTERFACE_TYPE", "OPENFAM_MODEL",
    "FAM_CONTEXT_MODEL", "NUM_CONSUMER", "RUNTIME", "FAM_DEFAULT_MEMORY_TYPE",
    "IF_DEVICE", "MEMORY_SERVERS"};

/* c_fam_list_options' names, in OpenFAM's order (VERSION first), then our
 * MEMORY_SERVERS. VERSION, PE_COUNT and PE_ID are computed on request. */
static const char *list_names[] = {
    "VERSION", "DEFAULT_REGION_NAME", "CIS_SERVER", "GRPC_PORT", "LIBFABRIC_PROVIDER",
    "FAM_THREAD_MODEL", "CIS_INTERFACE_TYPE", "OPENFAM_MODEL", "FAM_CONTEXT_MODEL",
    "PE_COUNT", "PE_ID", "RUNTIME", "NUM_CONSUMER", "FAM_DEFAULT_MEMORY_TYPE",
    "IF_DEVICE", "MEMORY_SERVERS"};
#define N_LIST (sizeof list_names / sizeof list_names[0])
#define CFAM_VERSION "0.1.0"

/* This process's place among cooperating processes, as an MPI or PMI
 * launcher tells it (OpenFAM's PE_ID / PE_COUNT); 0 of 1 when alone. */
static int pe_value(int count)
{
    const char *keys[2][3] = {{"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"},
                              {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL}};
    for (int i = 0; i < 3; i++) {
        const char *v = keys[count][i] ? getenv(keys[count][i]) : NULL;
        if (v && *v) return atoi(v);
    }
    return count ? 1 : 0;
}

c_fam *c_fam_create(void)
{
    struct cfam *c = calloc(1, sizeof *c);
    if (!c) { cfail(FAM_ERR_MEMORY, "out of memory"); return NULL; }
    c->magic = CFAM_MAGIC;
    return c;
}

int c_fam_initialize(c_fam *fam_obj, const char *group_name, c_fam_options *o)
{
    (void)group_name;
    struct cfam *c = fam_obj;
    if (!c || c->magic != CFAM_MAGIC) return cfail(FAM_ERR_NULLPTR, "not a c_fam handle");
    if (c->is_context) return cfail(FAM_ERR_NOPERM, "cannot initialize a context");
    if (c->f) return 0; /* already initialized */
    /* "sockets" is OpenFAM's default provider, which famd does not serve:
     * it means "whatever the memory servers use" (FAM_PROVIDER, else shm) */
    const char *prov = o && o->libfabricProvider && *o->libfabricProvider &&
                       strcmp(o->libfabricProvider, "sockets") != 0
                       ? o->libfabricProvider : getenv("FAM_PROVIDER");
    if (!prov || !*prov) prov = "shm";
    if (strncmp(prov, "tcp", 3) == 0) prov = "tcp"; /* "tcp;ofi_rxm" */
    const char *mt = o ? o->fam_default_memory_type : NULL;
    c->default_memtype = FAM_MEMORY_DEFAULT;
    if (mt && *mt) {
        if (strcmp(mt, "volatile") == 0) c->default_memtype = FAM_MEMORY_VOLATILE;
        else if (strcmp(mt, "persistent") == 0) c->default_memtype = FAM_MEMORY_PERSISTENT;
        else return cfail(FAM_ERR_INVALID, "fam_default_memory_type must be "
                          "\"volatile\" or \"persistent\"");
    }
    char *given[12] = {0};
    if (o) {
        char *v[12] = {o->defaultRegionName, o->cisServer, o->grpcPort,
                       o->libfabricProvider, o->famThreadModel,
                       o->cisInterfaceType, o->openFamModel, o->famContextModel,
                       o->numConsumer, o->runtime, o->fam_default_memory_type,
                       o->if_device};
        memcpy(given, v, sizeof v);
    }
    const char *defaults[12] = {"Default", "127.0.0.1", "8787", prov,
                                "FAM_THREAD_MULTIPLE", "rpc", "memory_server",
                                "FAM_CONTEXT_DEFAULT", "1", "NONE", "volatile", ""};
    for (int i = 0; i < 12; i++) {
        free(c->opt[i]);
        c->opt[i] = strdup(given[i] ? given[i] : defaults[i]);
    }
    const char *servers = getenv("FAM_SERVERS");
    free(c->opt[12]);
    c->opt[12] = strdup(servers ? servers : "");
    if (!servers || !*servers)
        return cfail(FAM_ERR_MEMSERV_LIST_EMPTY, "no memory servers: set FAM_SERVERS "
                     "to host:port[,host:port...]");
    fam_options_t fo = {.servers = servers, .provider = prov};
    int rc_;
    return RC(fam_initialize(&fo, &c->f));
}

int c_fam_finalize(c_fam *fam_obj, const char *group_name)
{
    (void)group_name;
    struct cfam *c = fam_obj;
    if (!conn(c)) return -1;
    if (c->is_context) return cfail(FAM_ERR_NOPERM, "cannot finalize a context");
    int rc_ = fam_finalize(c->f);
    c->f = NULL;
    return rc_ < 0 ? failed(rc_) : 0;
}

void c_fam_delete(c_fam *fam_obj)
{
    struct cfam *c = fam_obj;
    if (!c || c->magic != CFAM_MAGIC) return;
    if (c->f && !c->is_context) fam_finalize(c->f);
    for (int i = 0; i < 13; i++) free(c->opt[i]);
    c->magic = 0;
    free(c);
}

int c_fam_abort(c_fam *fam_obj, int status)
{
    struct cfam *c = fam_obj;
    if (c && c->magic == CFAM_MAGIC && c->f && !c->is_context) fam_finalize(c->f);
    exit(status); /* what the caller asked for: end the program */
}

const char **c_fam_list_options(c_fam *fam_obj)
{
    (void)fam_obj;
    size_t n = N_LIST, bytes = (n + 1) * sizeof(char *);
    for (size_t i = 0; i < n; i++) bytes += strlen(list_names[i]) + 1;
    char **list = malloc(bytes); /* one block: the caller frees it once */
    if (!list) { cfail(FAM_ERR_MEMORY, "out of memory"); return NULL; }
    char *p = (char *)(list + n + 1);
    for (size_t i = 0; i < n; i++) {
        list[i] = p;
        p = stpcpy(p, list_names[i]) + 1;
    }
    list[n] = NULL;
    return (const char **)list;
}

const void *c_fam_get_option(c_fam *fam_obj, const char *name)
{
    struct cfam *c = fam_obj;
    if (!c || c->magic != CFAM_MAGIC || !name) {
        cfail(FAM_ERR_INVALID, "bad handle or option name");
        return NULL;
    }
    if (c->is_context) c = c->parent;
    if (strcmp(name, "VERSION") == 0) return strdup(CFAM_VERSION);
    if (strcmp(name, "PE_COUNT") == 0 || strcmp(name, "PE_ID") == 0) {
        int *v = malloc(sizeof *v); /* the caller frees it, as OpenFAM's */
        if (!v) { cfail(FAM_ERR_MEMORY, "out of memory"); return NULL; }
        *v = pe_value(strcmp(name, "PE_COUNT") == 0);
        return v;
    }
    for (int i = 0; i < 13; i++)
        if (strcmp(name, opt_names[i]) == 0) {
            if (!c->opt[i]) break;
            return strdup(c->opt[i]); /* the caller frees it */
        }
    char msg[300];
    snprintf(msg, sizeof msg, "unknown option '%s' (or not initialized)", name);
    cfail(FAM_ERR_INVALID, msg);
    return NULL;
}

c_fam_context *c_fam_context_open(c_fam *fam_obj)
{
    struct cfam *c = fam_obj;
    if (!conn(c)) return NULL;
    if (c->is_context) { cfail(FAM_ERR_NOPERM, "cannot open a context from a context"); return NULL; }
    struct cfam *x = calloc(1, sizeof *x);
    if (!x) { cfail(FAM_ERR_MEMORY, "out of memory"); return NULL; }
    x->magic = CFAM_MAGIC;
    x->is_context = 1;
    x->parent = c;
    return x;
}

int c_fam_context_close(c_fam *fam_obj, c_fam_context *ctx)
{
    struct cfam *c = fam_obj, *x = ctx;
    if (!conn(c)) return -1;
    if (!x || x->magic != CFAM_MAGIC || !x->is_context || x->parent != c)
        return cfail(FAM_ERR_INVALID, "not a context of this c_fam");
    fam_quiet(c->f);
    x->magic = 0;
    free(x);
    return 0;
}

/* ---- regions ----------------------------------------------------------------- */

c_fam_region_desc *c_fam_create_region(c_fam *fam_obj, const char *name,
                                       size_t size, mode_t perm,
                                       c_fam_Region_Attributes *a)
{
    fam_t *f = conn(fam_obj);
    if (!f) return NULL;
    struct cfam *c = fam_obj;
    if (c->is_context) c = c->parent;
    if (name && strlen(name) > FAM_NAME_MAX) {
        cfail(FAM_ERR_NAME_TOO_LONG, "region name is too long");
        return NULL;
    }
    fam_region_attr_t attr = {.memory_type = c->default_memtype};
    if (a) { /* unknown enum values (e.g. an uninitialized struct) mean default */
        if (a->memoryType == VOLATILE) attr.memory_type = FAM_MEMORY_VOLATILE;
        if (a->memoryType == PERSISTENT) attr.memory_type = FAM_MEMORY_PERSISTENT;
        if (a->interleaveEnable == ENABLE) attr.interleave = FAM_INTERLEAVE_ENABLE;
        if (a->interleaveEnable == DISABLE) attr.interleave = FAM_INTERLEAVE_DISABLE;
    }
    fam_region_t *r = NULL;
    int rc_;
    if (RC(fam_create_region(f, name, size, perm & 0777, &attr, &r))) return NULL;
    return r;
}

c_fam_region_desc *c_fam_lookup_region(c_fam *fam_obj, const char *name)
{
    fam_t *f = conn(fam_obj);
    fam_region_t *r = NULL;
    int rc_;
    if (!f || RC(fam_lookup_region(f, name, &r))) return NULL;
    return r;
}

/* The descriptor memory is kept (OpenFAM programs may still hold it); using
 * it afterwards fails with FAM_ERR_NOTFOUND. */
int c_fam_destroy_region(c_fam *fam_obj, c_fam_region_desc *rd)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    if (!rd) return cfail(FAM_ERR_NULLPTR, "region descriptor is NULL");
    int rc_;
    return RC(fam_region_destroy_keep(f, rd));
}

int c_fam_resize_region(c_fam *fam_obj, c_fam_region_desc *rd, uint64_t size)
{
    fam_t *f = conn(fam_obj);
    int rc_;
    return !f ? -1 : RC(fam_resize_region(f, rd, size));
}

int c_fam_change_permissions_region(c_fam *fam_obj, c_fam_region_desc *rd, mode_t perm)
{
    fam_t *f = conn(fam_obj);
    int rc_;
    return !f ? -1 : RC(fam_change_region_permissions(f, rd, perm & 0777));
}

static void to_c_stat(const fam_stat_t *s, char *name, c_fam_stat *out)
{
    memset(out, 0, sizeof *out);
    out->size = s->size;
    out->perm = s->perm;
    out->name = name;
    out->uid = s->uid;
    out->gid = s->gid;
    out->region_attributes.memoryType =
        s->memory_type == FAM_MEMORY_PERSISTENT ? PERSISTENT : VOLATILE;
    out->region_attributes.interleaveEnable =
        s->interleave == FAM_INTERLEAVE_ENABLE ? ENABLE : DISABLE;
    out->region_attributes.redundancyLevel = NONE;
    out->num_memservers = s->num_servers;
    out->interleaveSize = s->stripe_size;
}

int c_fam_stat_region(c_fam *fam_obj, c_fam_region_desc *rd, c_fam_stat *st)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    if (!rd || !st) return cfail(FAM_ERR_NULLPTR, "NULL descriptor or stat");
    fam_stat_t s;
    int rc_;
    if (RC(fam_stat_region(f, rd, &s))) return -1;
    to_c_stat(&s, ((fam_region_t *)rd)->name, st);
    return 0;
}

/* ---- data items ----------------------------------------------------------------- */

c_fam_desc *c_fam_allocate_named(c_fam *fam_obj, const char *name, size_t size,
                                 mode_t perm, c_fam_region_desc *rd)
{
    fam_t *f = conn(fam_obj);
    if (!f) return NULL;
    if (name && strlen(name) > FAM_NAME_MAX) {
        cfail(FAM_ERR_NAME_TOO_LONG, "data item name is too long");
        return NULL;
    }
    fam_item_t *d = NULL;
    int rc_;
    if (RC(fam_allocate(f, name, size, perm & 0777, rd, &d))) return NULL;
    return d;
}

c_fam_desc *c_fam_allocate(c_fam *fam_obj, size_t size, mode_t perm,
                           c_fam_region_desc *rd)
{
    return c_fam_allocate_named(fam_obj, NULL, size, perm, rd);
}

c_fam_desc *c_fam_lookup(c_fam *fam_obj, const char *name, const char *region)
{
    fam_t *f = conn(fam_obj);
    fam_item_t *d = NULL;
    int rc_;
    if (!f || RC(fam_lookup(f, name, region, &d))) return NULL;
    return d;
}

/* As for regions, the descriptor memory stays until c_fam_close. */
int c_fam_deallocate(c_fam *fam_obj, c_fam_desc *desc)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    if (!desc) return cfail(FAM_ERR_NULLPTR, "descriptor is NULL");
    int rc_;
    return RC(fam_deallocate_keep(f, desc));
}

int c_fam_close(c_fam *fam_obj, c_fam_desc *desc)
{
    (void)fam_obj;
    fam_release(desc);
    return 0;
}

int c_fam_change_permissions_data(c_fam *fam_obj, c_fam_desc *desc, mode_t perm)
{
    fam_t *f = conn(fam_obj);
    int rc_;
    return !f ? -1 : RC(fam_change_permissions(f, desc, perm & 0777));
}

int c_fam_stat_data(c_fam *fam_obj, c_fam_desc *desc, c_fam_stat *st)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    if (!desc || !st) return cfail(FAM_ERR_NULLPTR, "NULL descriptor or stat");
    fam_stat_t s;
    int rc_;
    if (RC(fam_stat(f, desc, &s))) return -1;
    to_c_stat(&s, ((fam_item_t *)desc)->name, st);
    memset(&st->region_attributes, 0, sizeof st->region_attributes);
    return 0;
}

/* ---- data path -------------------------------------------------------------------- */

#define WRAP(proto, call)                                \
    int proto                                            \
    {                                                    \
        fam_t *f = conn(fam_obj);                        \
        int rc_;                                         \
        return !f ? -1 : RC(call);                       \
    }

WRAP(c_fam_put_nonblocking(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t off, size_t n),
     fam_put_nonblocking(f, l, d, off, n))
WRAP(c_fam_get_nonblocking(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t off, size_t n),
     fam_get_nonblocking(f, l, d, off, n))
WRAP(c_fam_put_blocking(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t off, size_t n),
     fam_put_blocking(f, l, d, off, n))
WRAP(c_fam_get_blocking(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t off, size_t n),
     fam_get_blocking(f, l, d, off, n))
WRAP(c_fam_gather_blocking_stride(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                  uint64_t first, uint64_t stride, uint64_t es),
     fam_gather_blocking_stride(f, l, d, n, first, stride, es))
WRAP(c_fam_gather_nonblocking_stride(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                     uint64_t first, uint64_t stride, uint64_t es),
     fam_gather_nonblocking_stride(f, l, d, n, first, stride, es))
WRAP(c_fam_gather_blocking_index(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                 uint64_t *idx, uint64_t es),
     fam_gather_blocking_index(f, l, d, n, idx, es))
WRAP(c_fam_gather_nonblocking_index(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                    uint64_t *idx, uint64_t es),
     fam_gather_nonblocking_index(f, l, d, n, idx, es))
WRAP(c_fam_scatter_blocking_stride(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                   uint64_t first, uint64_t stride, uint64_t es),
     fam_scatter_blocking_stride(f, l, d, n, first, stride, es))
WRAP(c_fam_scatter_nonblocking_stride(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                      uint64_t first, uint64_t stride, uint64_t es),
     fam_scatter_nonblocking_stride(f, l, d, n, first, stride, es))
WRAP(c_fam_scatter_blocking_index(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                  uint64_t *idx, uint64_t es),
     fam_scatter_blocking_index(f, l, d, n, idx, es))
WRAP(c_fam_scatter_nonblocking_index(c_fam *fam_obj, void *l, c_fam_desc *d, uint64_t n,
                                     uint64_t *idx, uint64_t es),
     fam_scatter_nonblocking_index(f, l, d, n, idx, es))
WRAP(c_fam_quiet(c_fam *fam_obj), fam_quiet(f))
WRAP(c_fam_fence(c_fam *fam_obj), fam_fence(f))

int c_fam_progress(c_fam *fam_obj, uint64_t *value)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    int64_t n = fam_progress(f);
    if (n < 0) return failed((int)n);
    if (value) *value = (uint64_t)n;
    return 0;
}

void *c_fam_map(c_fam *fam_obj, c_fam_desc *desc)
{
    (void)fam_obj; (void)desc;
    cfail(FAM_ERR_UNIMPL, "c_fam_map is not available in the memory-server model");
    return NULL;
}

int c_fam_unmap(c_fam *fam_obj, void *p, c_fam_desc *desc)
{
    (void)fam_obj; (void)p; (void)desc;
    return cfail(FAM_ERR_UNIMPL, "c_fam_unmap is not available in the memory-server model");
}

void *c_fam_copy(c_fam *fam_obj, c_fam_desc *src, uint64_t so, c_fam_desc *dst,
                 uint64_t doff, size_t n)
{
    fam_t *f = conn(fam_obj);
    fam_copy_t *h = NULL;
    int rc_;
    if (!f || RC(fam_copy(f, src, so, dst, doff, n, &h))) return NULL;
    return h;
}

int c_fam_copy_wait(c_fam *fam_obj, void *wait_obj)
{
    fam_t *f = conn(fam_obj);
    int rc_;
    return !f ? -1 : RC(fam_copy_wait(f, wait_obj));
}

/* Backup, restore and delete do their work in the call; the wait object
 * only remembers that it succeeded. A failure returns NULL at once, with
 * c_fam_error() set (a missing backup is FAM_BACKUP_NOTFOUND). */
#define CWAIT_MAGIC 0x57414954u
struct cwait {
    uint32_t magic;
};

static void *backup_result(int rc)
{
    if (rc < 0) {
        failed(rc);
        if (rc == FAM_ENOTFOUND && strstr(fam_last_error(), "backup"))
            err_no = FAM_BACKUP_NOTFOUND;
        return NULL;
    }
    struct cwait *w = malloc(sizeof *w);
    if (!w) { cfail(FAM_ERR_MEMORY, "out of memory"); return NULL; }
    w->magic = CWAIT_MAGIC;
    return w;
}

static int backup_wait(void *w)
{
    struct cwait *c = w;
    if (!c || c->magic != CWAIT_MAGIC) return cfail(FAM_ERR_INVALID, "not a wait object");
    c->magic = 0;
    free(c);
    return 0;
}

void *c_fam_backup(c_fam *o, c_fam_desc *d, const char *n, c_fam_backup_options *b)
{
    (void)b;
    fam_t *f = conn(o);
    return f ? backup_result(fam_backup(f, d, n)) : NULL;
}
int c_fam_backup_wait(c_fam *o, void *w) { (void)o; return backup_wait(w); }
void *c_fam_restore(c_fam *o, const char *n, c_fam_desc *d)
{
    fam_t *f = conn(o);
    return f ? backup_result(fam_restore(f, n, d)) : NULL;
}
void *c_fam_restore_region(c_fam *o, const char *n, c_fam_region_desc *r,
                           const char *item, mode_t perm, c_fam_desc **d)
{
    fam_t *f = conn(o);
    if (!f) return NULL;
    if (!d) { cfail(FAM_ERR_NULLPTR, "descriptor pointer is NULL"); return NULL; }
    fam_item_t *out = NULL;
    void *w = backup_result(fam_restore_new(f, n, r, item, perm & 0777, &out));
    if (w) *d = out;
    return w;
}
int c_fam_restore_wait(c_fam *o, void *w) { (void)o; return backup_wait(w); }
void *c_fam_delete_backup(c_fam *o, const char *n)
{
    fam_t *f = conn(o);
    return f ? backup_result(fam_delete_backup(f, n)) : NULL;
}
int c_fam_delete_backup_wait(c_fam *o, void *w) { (void)o; return backup_wait(w); }

/* ---- atomics ------------------------------------------------------------------------ */

#define A1(op, N, T)                                                              \
    int c_fam_##op##_##N(c_fam *fam_obj, c_fam_desc *d, uint64_t off, T v)       \
    { fam_t *f = conn(fam_obj); int rc_; return !f ? -1 : RC(fam_##op##_##N(f, d, off, v)); }
#define A2(op, N, T)                                                              \
    int c_fam_##op##_##N(c_fam *fam_obj, c_fam_desc *d, uint64_t off, T v, T *r) \
    { fam_t *f = conn(fam_obj); int rc_; return !f ? -1 : RC(fam_##op##_##N(f, d, off, v, r)); }
#define ARITH(N, T)                                                               \
    A1(set, N, T) A1(add, N, T) A1(subtract, N, T) A1(min, N, T) A1(max, N, T)   \
    A2(swap, N, T) A2(fetch_add, N, T) A2(fetch_subtract, N, T)                   \
    A2(fetch_min, N, T) A2(fetch_max, N, T)                                       \
    int c_fam_fetch_##N(c_fam *fam_obj, c_fam_desc *d, uint64_t off, T *v)       \
    { fam_t *f = conn(fam_obj); int rc_; return !f ? -1 : RC(fam_fetch_##N(f, d, off, v)); }
#define CSWAP(N, T)                                                               \
    int c_fam_compare_swap_##N(c_fam *fam_obj, c_fam_desc *d, uint64_t off,      \
                               T o, T n, T *r)                                    \
    { fam_t *f = conn(fam_obj); int rc_; return !f ? -1 : RC(fam_compare_swap_##N(f, d, off, o, n, r)); }
#define BITS(N, T)                                                                \
    A1(and, N, T) A1(or, N, T) A1(xor, N, T)                                      \
    A2(fetch_and, N, T) A2(fetch_or, N, T) A2(fetch_xor, N, T)

ARITH(int32, int32_t)
ARITH(int64, int64_t)
ARITH(uint32, uint32_t)
ARITH(uint64, uint64_t)
ARITH(float, float)
ARITH(double, double)
CSWAP(int32, int32_t)
CSWAP(int64, int64_t)
CSWAP(uint32, uint32_t)
CSWAP(uint64, uint64_t)
BITS(uint32, uint32_t)
BITS(uint64, uint64_t)

/* 128-bit: done by famd with a 16-byte compare-and-swap. */
static void split(int128_t v, uint64_t out[2])
{
    out[0] = (uint64_t)v;
    out[1] = (uint64_t)((unsigned __int128)v >> 64);
}

static int128_t join(const uint64_t in[2])
{
    return (int128_t)(((unsigned __int128)in[1] << 64) | in[0]);
}

int c_fam_compare_swap_int128(c_fam *fam_obj, c_fam_desc *d, uint64_t off,
                              int128_t old_val, int128_t new_val, int128_t *ret)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    if (!ret) return cfail(FAM_ERR_NULLPTR, "result pointer is NULL");
    uint64_t e[2], n[2], o[2];
    split(old_val, e);
    split(new_val, n);
    int rc_;
    if (RC(fam_compare_swap_int128(f, d, off, e, n, o))) return -1;
    *ret = join(o);
    return 0;
}

int c_fam_fetch_int128(c_fam *fam_obj, c_fam_desc *d, uint64_t off, int128_t *value)
{
    fam_t *f = conn(fam_obj);
    if (!f) return -1;
    fam_item_t *item = d;
    if (item && !item->writable) {
        /* opened read-only: a compare-and-swap needs write permission, so
         * read the 16 aligned bytes instead (one RMA; a reader racing a
         * 128-bit update may see one half of it) */
        if (!value) return cfail(FAM_ERR_NULLPTR, "result pointer is NULL");
        if (off % 16) return cfail(FAM_ERR_INVALID, "int128 offset must be a multiple of 16");
        uint64_t o[2];
        int rc_;
        if (RC(fam_get_blocking(f, o, item, off, 16))) return -1;
        *value = join(o);
        return 0;
    }
    /* compare-and-swap 0 with 0 returns the value and changes nothing */
    return c_fam_compare_swap_int128(fam_obj, d, off, 0, 0, value);
}

int c_fam_set_int128(c_fam *fam_obj, c_fam_desc *d, uint64_t off, int128_t value)
{
    int128_t seen = 0, expect = 0;
    for (;;) { /* swap in the new value against whatever is there */
        if (c_fam_compare_swap_int128(fam_obj, d, off, expect, value, &seen))
            return -1;
        if (seen == expect) return 0;
        expect = seen;
    }
}

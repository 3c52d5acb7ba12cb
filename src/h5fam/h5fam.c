/* SPDX-License-Identifier: Apache-2.0 */
/* h5fam.c — the HDF5 virtual file driver "fam": an HDF5 file's bytes in FAM.
 *
 * HDF5 keeps doing its own format; this driver only stores bytes. A file
 * "REGION/NAME" is, inside FAM region REGION:
 *   NAME      the header item (H5FAM_HDR_ITEM bytes): magic, version, the
 *             logical end of file (eof), how far the extents may hold
 *             non-zero bytes (hwm), the extent geometry, how many extents
 *             were ever allocated, a CRC of all that, and the writer word;
 *   NAME#k    extent k: bytes [start(k), start(k) + size(k)) of the file.
 * Extent sizes double from `base` (1 MiB) up to `maxext` (64 MiB), then
 * stay there: a small file costs little, a large one few items, a byte is
 * found by arithmetic (no table), nothing is ever copied when the file
 * grows, and a read of a few bytes is one get (two when it straddles an
 * extent end). A large read or write is one blocking get or put per
 * extent it touches. Opening with H5F_ACC_TRUNC keeps the extents (eof
 * goes to 0; the stale bytes below hwm are cleared as writes reach past
 * eof), so rewriting a file does not allocate and touch new memory. Extents are allocated when first written, so a sparse file
 * stays sparse. Each extent is an ordinary item, so it is striped over
 * the memory servers when the region is interleaved.
 *
 * The logical eof lives in the header, apart from the capacity (the
 * extents): reads past it give zeros. A writer claims the file by
 * compare-and-swap of the writer word (0 -> its tag: host and pid) when it
 * opens it for writing, and gives it back at a clean close after writing
 * the final header. A reader refuses a file whose writer word is set: it
 * is being written, or its writer died before closing, so it may be
 * incomplete: a half-written file is never read as written. A writer may
 * take over a claim whose process is gone on this host (as a lock on a
 * local file is released when its holder dies).
 *
 * One libfam connection per (servers, provider, process) is shared by all
 * files of the process and closed when HDF5 shuts the driver down. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fam/fam.h"
#include "kodiak/h5fam.h"
#include "h5fam_internal.h"

/* ---- counters ------------------------------------------------------------ */
static h5fam_stats_t h5fam_stats_g;
#define COUNT(field) __atomic_fetch_add(&h5fam_stats_g.field, 1, __ATOMIC_RELAXED)

void h5fam_get_stats(h5fam_stats_t *out)
{
    out->reads = __atomic_load_n(&h5fam_stats_g.reads, __ATOMIC_RELAXED);
    out->writes = __atomic_load_n(&h5fam_stats_g.writes, __ATOMIC_RELAXED);
    out->fam_gets = __atomic_load_n(&h5fam_stats_g.fam_gets, __ATOMIC_RELAXED);
    out->fam_puts = __atomic_load_n(&h5fam_stats_g.fam_puts, __ATOMIC_RELAXED);
    out->fam_other = __atomic_load_n(&h5fam_stats_g.fam_other, __ATOMIC_RELAXED);
    out->read_bytes = __atomic_load_n(&h5fam_stats_g.read_bytes, __ATOMIC_RELAXED);
    out->write_bytes = __atomic_load_n(&h5fam_stats_g.write_bytes, __ATOMIC_RELAXED);
}

void h5fam_reset_stats(void)
{
    memset(&h5fam_stats_g, 0, sizeof h5fam_stats_g);
}

/* ---- errors -------------------------------------------------------------- */
/* Push a message on HDF5's error stack (major: the file driver layer). */
#define PUSH(minor, ...) h5fam_push(__func__, __LINE__, (minor), __VA_ARGS__)
static void h5fam_push(const char *func, unsigned line, hid_t minor,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void h5fam_push(const char *func, unsigned line, hid_t minor,
                       const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    H5Epush2(H5E_DEFAULT, __FILE__, func, line, H5E_ERR_CLS, H5E_VFL, minor,
             "%s", msg);
}

/* The HDF5 minor error code that fits a libfam failure. */
static hid_t minor_of(int rc)
{
    switch (rc) {
    case FAM_ENOTFOUND: return H5E_NOTFOUND;
    case FAM_EPERM: return H5E_CANTOPENFILE;
    case FAM_ENOSPACE: return H5E_NOSPACE;
    default: return H5E_SYSERRSTR;
    }
}

/* ---- connections ------------------------------------------------------------ */
struct h5fam_conn {
    char servers[H5FAM_SERVERS_MAX]; /* as given to the fapl ("" = $FAM_SERVERS) */
    char provider[H5FAM_PROVIDER_MAX]; /* likewise ("" = $FAM_PROVIDER) */
    pid_t pid;                       /* process that opened it (not a fork child) */
    fam_t *f;                        /* the libfam connection */
    struct h5fam_conn *next;
};
static struct h5fam_conn *h5fam_conns;

fam_t *h5fam_connect(const h5fam_fapl_t *fa, int *rc_out)
{
    pid_t me = getpid();
    for (struct h5fam_conn *c = h5fam_conns; c; c = c->next)
        if (c->pid == me && !strcmp(c->servers, fa->servers) &&
            !strcmp(c->provider, fa->provider))
            return c->f;
    struct h5fam_conn *c = calloc(1, sizeof *c);
    if (!c) { *rc_out = FAM_ENOMEM; return NULL; }
    fam_options_t o = {0};
    o.servers = fa->servers[0] ? fa->servers : NULL;
    o.provider = fa->provider[0] ? fa->provider : NULL;
    int rc = fam_initialize(&o, &c->f);
    if (rc < 0) { free(c); *rc_out = rc; return NULL; }
    memcpy(c->servers, fa->servers, sizeof c->servers);
    memcpy(c->provider, fa->provider, sizeof c->provider);
    c->pid = me;
    c->next = h5fam_conns;
    h5fam_conns = c;
    return c->f;
}

static herr_t h5fam_terminate(void);

/* ---- names and geometry ---------------------------------------------------- */
int h5fam_split_name(const char *full, char *region, char *name)
{
    const char *slash = full ? strchr(full, '/') : NULL;
    if (!slash || slash == full || !slash[1]) return -1;
    size_t rl = (size_t)(slash - full), nl = strlen(slash + 1);
    if (rl > FAM_NAME_MAX || nl > H5FAM_NAME_MAX) return -1;
    /* "x#3" would read as an extent of "x" (famh5 ls hides those) */
    const char *hash = strrchr(slash + 1, '#');
    if (hash && hash[1] && strspn(hash + 1, "0123456789") == strlen(hash + 1))
        return -1;
    memcpy(region, full, rl);
    region[rl] = '\0';
    memcpy(name, slash + 1, nl + 1);
    return 0;
}

void h5fam_extent_name(char *out, const char *name, uint64_t k)
{
    snprintf(out, FAM_NAME_MAX + 1, "%s#%" PRIu64, name, k);
}

/* First byte of extent k and its size. */
uint64_t h5fam_ext_start(const h5fam_hdr_t *h, uint64_t k)
{
    uint64_t nb = h->maxext / h->base; /* doubling steps: base << K == maxext */
    unsigned K = (unsigned)__builtin_ctzll(nb);
    if (k <= K) return h->base * ((1ull << k) - 1);
    return h->base * (nb - 1) + (k - K) * h->maxext;
}

uint64_t h5fam_ext_size(const h5fam_hdr_t *h, uint64_t k)
{
    uint64_t nb = h->maxext / h->base;
    unsigned K = (unsigned)__builtin_ctzll(nb);
    return k < K ? h->base << k : h->maxext;
}

uint64_t h5fam_ext_of(const h5fam_hdr_t *h, uint64_t addr)
{
    uint64_t nb = h->maxext / h->base;
    unsigned K = (unsigned)__builtin_ctzll(nb);
    uint64_t grow_end = h->base * (nb - 1);
    if (addr < grow_end) /* k = floor(log2(addr / base + 1)) */
        return 63u - (unsigned)__builtin_clzll(addr / h->base + 1);
    return K + (addr - grow_end) / h->maxext;
}

/* ---- the header ---------------------------------------------------------- */
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static uint32_t get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }

void h5fam_hdr_encode(const h5fam_hdr_t *h, uint8_t out[H5FAM_HDR_BYTES])
{
    memset(out, 0, H5FAM_HDR_BYTES);
    memcpy(out, H5FAM_MAGIC, 8);
    put_u32(out + 8, H5FAM_VERSION);
    put_u64(out + 16, h->eof);
    put_u64(out + 24, h->hwm);
    put_u64(out + 32, h->base);
    put_u64(out + 40, h->maxext);
    put_u64(out + 48, h->next);
    put_u32(out + 56, (uint32_t)crc32(0, out, 56));
    put_u64(out + H5FAM_WRITER_OFF, h->writer);
}

int h5fam_hdr_decode(const uint8_t in[H5FAM_HDR_BYTES], h5fam_hdr_t *h,
                     char *why, size_t whylen)
{
    if (memcmp(in, H5FAM_MAGIC, 8)) {
        snprintf(why, whylen, "its header item does not start with the h5fam "
                 "magic (not an HDF5 file kept by the fam driver, or damaged)");
        return -1;
    }
    if (get_u32(in + 8) != H5FAM_VERSION) {
        snprintf(why, whylen, "its header has version %u; this driver reads "
                 "version %u", get_u32(in + 8), H5FAM_VERSION);
        return -1;
    }
    if (get_u32(in + 56) != (uint32_t)crc32(0, in, 56)) {
        snprintf(why, whylen, "its header fails its CRC check (damaged)");
        return -1;
    }
    h->eof = get_u64(in + 16);
    h->hwm = get_u64(in + 24);
    h->base = get_u64(in + 32);
    h->maxext = get_u64(in + 40);
    h->next = get_u64(in + 48);
    h->writer = get_u64(in + H5FAM_WRITER_OFF);
    if (h->base < 4096 || (h->base & (h->base - 1)) || h->maxext < h->base ||
        (h->maxext & (h->maxext - 1)) || h->maxext > (1ull << 40) ||
        h->eof > H5FAM_MAXADDR || h->next > (1ull << 32)) {
        snprintf(why, whylen, "its header holds an impossible geometry "
                 "(extents %" PRIu64 "..%" PRIu64 " bytes, eof %" PRIu64
                 ", %" PRIu64 " extents)", h->base, h->maxext, h->eof, h->next);
        return -1;
    }
    return 0;
}

uint64_t h5fam_writer_tag(void)
{
    return h5fam_writer_tag_for(getpid());
}

uint64_t h5fam_writer_tag_for(pid_t pid)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    uint32_t hh = (uint32_t)crc32(0, (const uint8_t *)host, (uInt)strlen(host));
    return (1ull << 63) | ((uint64_t)(hh & 0x7fffffffu) << 32) | (uint32_t)pid;
}

/* Is the process named by a writer tag known to be gone (on this host)? */
int h5fam_writer_dead(uint64_t tag)
{
    uint64_t mine = h5fam_writer_tag();
    if (((tag >> 32) & 0x7fffffffu) != ((mine >> 32) & 0x7fffffffu)) return 0;
    pid_t pid = (pid_t)(uint32_t)tag;
    return kill(pid, 0) < 0 && errno == ESRCH;
}

/* ---- this process's claims ---------------------------------------------------
 * HDF5 may open one file several times in a process (its tentative open
 * before it finds the file already open, h5py's reopen): the writer word
 * holds one claim per process, counted here, and goes back to 0 only when
 * the last handle of the process closes. */
struct h5fam_claim {
    char key[H5FAM_SERVERS_MAX + 2 * FAM_NAME_MAX + 4]; /* servers\nregion\nname */
    pid_t pid;                   /* the claiming process (not a fork child) */
    int count;                   /* handles open for writing */
    int failed;                  /* a write through one of them failed */
    struct h5fam_claim *next;
};
static struct h5fam_claim *h5fam_claims;

static struct h5fam_claim *claim_find(const char *key)
{
    for (struct h5fam_claim *c = h5fam_claims; c; c = c->next)
        if (c->pid == getpid() && !strcmp(c->key, key)) return c;
    return NULL;
}

static struct h5fam_claim *claim_add(const char *key)
{
    struct h5fam_claim *c = claim_find(key);
    if (c) { c->count++; return c; }
    if (!(c = calloc(1, sizeof *c))) return NULL;
    snprintf(c->key, sizeof c->key, "%s", key);
    c->pid = getpid();
    c->count = 1;
    c->next = h5fam_claims;
    h5fam_claims = c;
    return c;
}

/* One handle fewer; returns how many are left (and frees the entry at 0),
 * with *failed set when some handle's write failed. */
static int claim_drop(const char *key, int *failed)
{
    for (struct h5fam_claim **pp = &h5fam_claims; *pp; pp = &(*pp)->next) {
        struct h5fam_claim *c = *pp;
        if (c->pid != getpid() || strcmp(c->key, key)) continue;
        *failed = c->failed;
        if (--c->count > 0) return c->count;
        *pp = c->next;
        free(c);
        return 0;
    }
    *failed = 0;
    return 0;
}

/* ---- the driver's file -------------------------------------------------- */
typedef struct h5fam_file {
    H5FD_t pub;                     /* HDF5's part; must come first */
    h5fam_fapl_t fa;                /* servers and provider it was opened with */
    fam_t *f;                       /* shared connection (not owned) */
    char region[FAM_NAME_MAX + 1];  /* FAM region */
    char name[H5FAM_NAME_MAX + 1];  /* header item's name */
    fam_region_t *r;                /* the region (for allocations) */
    fam_item_t *hdr_item;           /* the header item */
    h5fam_hdr_t h;                  /* header as this process knows it */
    mode_t perm;                    /* bits for new extents: the region's */
    int rw;                         /* opened for writing (holds the claim) */
    int hdr_dirty;                  /* h differs from what FAM holds */
    int failed;                     /* a write failed: never mark it closed */
    char key[H5FAM_SERVERS_MAX + 2 * FAM_NAME_MAX + 4]; /* for the claims list */
    haddr_t eoa;                    /* HDF5's end of allocated space */
    fam_item_t **ext;               /* extent descriptors (NULL: not looked up) */
    uint8_t *ext_absent;            /* 1: looked up and not there */
    uint64_t ext_cap;               /* entries in ext and ext_absent */
} h5fam_file_t;

static int write_header(h5fam_file_t *fl)
{
    uint8_t buf[H5FAM_HDR_BYTES];
    h5fam_hdr_encode(&fl->h, buf);
    COUNT(fam_puts);
    int rc = fam_put_blocking(fl->f, buf, fl->hdr_item, 0, H5FAM_WRITER_OFF);
    if (rc < 0) {
        PUSH(H5E_WRITEERROR, "could not write the header of '%s/%s': %s",
             fl->region, fl->name, fam_last_error());
        return -1;
    }
    fl->hdr_dirty = 0;
    return 0;
}

static int grow_ext_table(h5fam_file_t *fl, uint64_t k)
{
    if (k < fl->ext_cap) return 0;
    uint64_t cap = fl->ext_cap ? fl->ext_cap : 16;
    while (cap <= k) cap *= 2;
    fam_item_t **e = realloc(fl->ext, cap * sizeof *e);
    if (!e) return -1;
    fl->ext = e;
    uint8_t *a = realloc(fl->ext_absent, cap);
    if (!a) return -1;
    fl->ext_absent = a;
    memset(fl->ext + fl->ext_cap, 0, (cap - fl->ext_cap) * sizeof *e);
    memset(fl->ext_absent + fl->ext_cap, 0, cap - fl->ext_cap);
    fl->ext_cap = cap;
    return 0;
}

/* Descriptor of extent k, or NULL with *absent set when it holds nothing
 * (never written: reads give zeros). create: allocate it if missing.
 * Returns -1 (error pushed) on failure. */
static int get_extent(h5fam_file_t *fl, uint64_t k, int create, fam_item_t **out)
{
    *out = NULL;
    if (grow_ext_table(fl, k)) {
        PUSH(H5E_CANTALLOC, "out of memory for the extent table of '%s/%s'",
             fl->region, fl->name);
        return -1;
    }
    if (fl->ext[k]) { *out = fl->ext[k]; return 0; }
    char nm[FAM_NAME_MAX + 1];
    h5fam_extent_name(nm, fl->name, k);
    int rc;
    if (k < fl->h.next && !fl->ext_absent[k]) {
        COUNT(fam_other);
        rc = fam_lookup(fl->f, nm, fl->region, &fl->ext[k]);
        if (rc == 0) { *out = fl->ext[k]; return 0; }
        if (rc != FAM_ENOTFOUND) {
            PUSH(minor_of(rc), "could not open extent '%s' of '%s/%s': %s", nm,
                 fl->region, fl->name, fam_last_error());
            return -1;
        }
        fl->ext_absent[k] = 1;
    }
    if (!create) return 0;
    if (!fl->rw) {
        PUSH(H5E_WRITEERROR, "'%s/%s' is open read-only", fl->region, fl->name);
        return -1;
    }
    uint64_t size = h5fam_ext_size(&fl->h, k);
    COUNT(fam_other);
    rc = fam_allocate(fl->f, nm, size, fl->perm, fl->r, &fl->ext[k]);
    if (rc == FAM_EEXIST) {
        /* left by a writer that died before recording it: its bytes are
         * not this file's, so start it again from zeros */
        fam_item_t *old;
        COUNT(fam_other);
        if (fam_lookup(fl->f, nm, fl->region, &old) == 0) {
            COUNT(fam_other);
            fam_deallocate(fl->f, old);
        }
        COUNT(fam_other);
        rc = fam_allocate(fl->f, nm, size, fl->perm, fl->r, &fl->ext[k]);
    }
    if (rc < 0) {
        fl->ext[k] = NULL;
        PUSH(minor_of(rc), "could not allocate extent %" PRIu64 " (%" PRIu64
             " bytes) of '%s/%s'%s: %s", k, size, fl->region, fl->name,
             rc == FAM_ENOSPACE ? " (the region or the memory pool is full)" : "",
             fam_last_error());
        return -1;
    }
    fl->ext_absent[k] = 0;
    if (k >= fl->h.next) { /* record it before any byte goes in */
        fl->h.next = k + 1;
        if (write_header(fl)) return -1;
    }
    *out = fl->ext[k];
    return 0;
}

static const uint8_t h5fam_zeros[1 << 16];

/* Write zeros over [from, to) where extents exist (bytes past eof that an
 * earlier, longer version of the file left there). */
static int zero_range(h5fam_file_t *fl, uint64_t from, uint64_t to)
{
    while (from < to) {
        uint64_t k = h5fam_ext_of(&fl->h, from);
        uint64_t s = h5fam_ext_start(&fl->h, k), e = s + h5fam_ext_size(&fl->h, k);
        uint64_t end = e < to ? e : to;
        fam_item_t *d;
        if (get_extent(fl, k, 0, &d)) return -1;
        for (uint64_t p = from; d && p < end;) {
            uint64_t n = end - p < sizeof h5fam_zeros ? end - p : sizeof h5fam_zeros;
            COUNT(fam_puts);
            if (fam_put_nonblocking(fl->f, h5fam_zeros, d, p - s, n) < 0) {
                PUSH(H5E_WRITEERROR, "could not clear bytes of '%s/%s': %s",
                     fl->region, fl->name, fam_last_error());
                return -1;
            }
            p += n;
        }
        from = end;
    }
    if (fam_quiet(fl->f) < 0) {
        PUSH(H5E_WRITEERROR, "could not clear bytes of '%s/%s': %s",
             fl->region, fl->name, fam_last_error());
        return -1;
    }
    return 0;
}

/* Deallocate every extent from k on. */
static int free_extents_from(h5fam_file_t *fl, uint64_t k0)
{
    for (uint64_t k = k0; k < fl->h.next; k++) {
        fam_item_t *d;
        if (get_extent(fl, k, 0, &d)) return -1;
        if (!d) continue;
        COUNT(fam_other);
        int rc = fam_deallocate(fl->f, d);
        fl->ext[k] = NULL;
        if (rc < 0) {
            PUSH(minor_of(rc), "could not free extent %" PRIu64 " of '%s/%s': %s",
                 k, fl->region, fl->name, fam_last_error());
            return -1;
        }
    }
    for (uint64_t k = k0; k < fl->ext_cap; k++) fl->ext_absent[k] = 0;
    if (k0 < fl->h.next) {
        fl->h.next = k0;
        uint64_t s = h5fam_ext_start(&fl->h, k0);
        if (fl->h.hwm > s) fl->h.hwm = s;
        if (fl->h.eof > s) fl->h.eof = s;
        fl->hdr_dirty = 1;
    }
    return 0;
}

static void release_all(h5fam_file_t *fl)
{
    for (uint64_t k = 0; k < fl->ext_cap; k++)
        if (fl->ext[k]) fam_release(fl->ext[k]);
    free(fl->ext);
    free(fl->ext_absent);
    if (fl->hdr_item) fam_release(fl->hdr_item);
    if (fl->r) fam_release_region(fl->r);
    free(fl);
}

/* ---- callbacks ------------------------------------------------------------ */
static H5FD_t *h5fam_open(const char *full, unsigned flags, hid_t fapl,
                          haddr_t maxaddr)
{
    h5fam_file_t *fl = calloc(1, sizeof *fl);
    if (!fl) {
        PUSH(H5E_CANTALLOC, "out of memory opening '%s'", full ? full : "(null)");
        return NULL;
    }
    if (h5fam_split_name(full, fl->region, fl->name)) {
        PUSH(H5E_BADVALUE, "'%s' is not a fam file name: it must be REGION/NAME "
             "(region name at most %d bytes, file name at most %d, not "
             "ending in #<digits>)",
             full ? full : "(null)", FAM_NAME_MAX, H5FAM_NAME_MAX);
        free(fl);
        return NULL;
    }
    if (maxaddr == 0 || maxaddr > H5FAM_MAXADDR) maxaddr = H5FAM_MAXADDR;
    const h5fam_fapl_t *fa = H5Pget_driver_info(fapl);
    if (fa) fl->fa = *fa;
    fl->rw = (flags & H5F_ACC_RDWR) != 0;
    snprintf(fl->key, sizeof fl->key, "%s\n%s\n%s", fl->fa.servers, fl->region,
             fl->name);
    int rc = 0;
    int claimed = 0; /* this open added a handle to the process's claim */
    fl->f = h5fam_connect(&fl->fa, &rc);
    if (!fl->f) {
        PUSH(H5E_CANTOPENFILE, "cannot open '%s': no connection to the memory "
             "servers (%s): %s", full, fl->fa.servers[0] ? fl->fa.servers :
             "$FAM_SERVERS", fam_last_error());
        goto fail;
    }
    COUNT(fam_other);
    rc = fam_lookup_region(fl->f, fl->region, &fl->r);
    if (rc < 0) {
        PUSH(minor_of(rc), "cannot open '%s': %s%s", full,
             rc == FAM_ENOTFOUND ? "no such FAM region (create the region first): " :
             rc == FAM_EPERM ? "no permission on its FAM region: " : "",
             fam_last_error());
        fl->r = NULL;
        goto fail;
    }
    uint64_t tag = h5fam_writer_tag();
    COUNT(fam_other);
    rc = fam_lookup(fl->f, fl->name, fl->region, &fl->hdr_item);
    if (rc == FAM_ENOTFOUND) {
        fl->hdr_item = NULL;
        if (!(flags & H5F_ACC_CREAT) || !fl->rw) {
            PUSH(H5E_NOTFOUND, "cannot open '%s': no such file in FAM region '%s'",
                 full, fl->region);
            goto fail;
        }
        fam_stat_t st;
        COUNT(fam_other);
        if ((rc = fam_stat_region(fl->f, fl->r, &st)) < 0) {
            PUSH(minor_of(rc), "cannot create '%s': %s", full, fam_last_error());
            goto fail;
        }
        fl->perm = st.perm & 0666;
        COUNT(fam_other);
        rc = fam_allocate(fl->f, fl->name, H5FAM_HDR_ITEM, fl->perm, fl->r,
                          &fl->hdr_item);
        if (rc < 0) {
            fl->hdr_item = NULL;
            PUSH(minor_of(rc), "cannot create '%s': %s%s", full,
                 rc == FAM_EPERM ? "no permission to write its FAM region: " :
                 rc == FAM_ENOSPACE ? "the region or the memory pool is full: " : "",
                 fam_last_error());
            goto fail;
        }
        fl->h.base = H5FAM_EXT_BASE;
        fl->h.maxext = H5FAM_EXT_MAX;
        fl->h.writer = tag;
        if (!claim_add(fl->key)) {
            PUSH(H5E_CANTALLOC, "out of memory creating '%s'", full);
            COUNT(fam_other);
            fam_deallocate(fl->f, fl->hdr_item);
            fl->hdr_item = NULL;
            goto fail;
        }
        claimed = 1;
        uint8_t buf[H5FAM_HDR_BYTES];
        h5fam_hdr_encode(&fl->h, buf);
        COUNT(fam_puts);
        if ((rc = fam_put_blocking(fl->f, buf, fl->hdr_item, 0, H5FAM_HDR_BYTES)) < 0) {
            PUSH(H5E_WRITEERROR, "cannot create '%s': %s", full, fam_last_error());
            COUNT(fam_other);
            fam_deallocate(fl->f, fl->hdr_item);
            fl->hdr_item = NULL;
            int failed;
            claim_drop(fl->key, &failed);
            goto fail;
        }
    } else if (rc < 0) {
        fl->hdr_item = NULL;
        PUSH(minor_of(rc), "cannot open '%s': %s%s", full,
             rc == FAM_EPERM ? "no permission: " : "", fam_last_error());
        goto fail;
    } else {
        if ((flags & H5F_ACC_CREAT) && (flags & H5F_ACC_EXCL)) {
            PUSH(H5E_FILEEXISTS, "cannot create '%s': the file exists", full);
            goto fail;
        }
        fam_stat_t st;
        COUNT(fam_other);
        if ((rc = fam_stat(fl->f, fl->hdr_item, &st)) < 0) {
            PUSH(minor_of(rc), "cannot open '%s': %s", full, fam_last_error());
            goto fail;
        }
        fl->perm = st.perm;
        if (st.size < H5FAM_HDR_BYTES) {
            PUSH(H5E_BADFILE, "cannot open '%s': its header item has %" PRIu64
                 " bytes, not an h5fam header", full, st.size);
            goto fail;
        }
        if (fl->rw && claim_find(fl->key)) {
            claim_add(fl->key); /* this process holds it already */
            claimed = 1;
        } else if (fl->rw) {
            uint64_t old = 0;
            COUNT(fam_other);
            rc = fam_compare_swap_uint64(fl->f, fl->hdr_item, H5FAM_WRITER_OFF,
                                         0, tag, &old);
            if (rc == 0 && old != 0 && old != tag && h5fam_writer_dead(old)) {
                /* its writer is gone from this host: take it over */
                uint64_t dead = old;
                COUNT(fam_other);
                rc = fam_compare_swap_uint64(fl->f, fl->hdr_item,
                                             H5FAM_WRITER_OFF, dead, tag, &old);
                if (rc == 0 && old == dead) old = 0;
            }
            if (rc < 0) {
                PUSH(minor_of(rc), "cannot open '%s' for writing: %s%s", full,
                     rc == FAM_EPERM ? "no permission: " : "", fam_last_error());
                goto fail;
            }
            /* old == tag: left by an earlier process with our pid, now gone */
            if (old != 0 && old != tag) {
                PUSH(H5E_CANTLOCKFILE, "cannot open '%s' for writing: process %u "
                     "on another host or still running has it open for writing",
                     full, (unsigned)(uint32_t)old);
                goto fail;
            }
            if (!claim_add(fl->key)) {
                PUSH(H5E_CANTALLOC, "out of memory opening '%s'", full);
                goto fail_unclaim;
            }
            claimed = 1;
        }
        uint8_t buf[H5FAM_HDR_BYTES];
        COUNT(fam_gets);
        if ((rc = fam_get_blocking(fl->f, buf, fl->hdr_item, 0, H5FAM_HDR_BYTES)) < 0) {
            PUSH(minor_of(rc), "cannot open '%s': %s%s", full,
                 rc == FAM_EPERM ? "no permission: " : "", fam_last_error());
            goto fail_unclaim;
        }
        char why[256];
        if (h5fam_hdr_decode(buf, &fl->h, why, sizeof why)) {
            PUSH(H5E_BADFILE, "cannot open '%s': %s", full, why);
            goto fail_unclaim;
        }
        if (!fl->rw && fl->h.writer != 0 &&
            !(fl->h.writer == tag && claim_find(fl->key))) { /* ours: HDF5 shares it */
            PUSH(H5E_CANTOPENFILE, "cannot open '%s': it is being written (process "
                 "%u%s), or its writer died before closing it, so it may be "
                 "incomplete", full, (unsigned)(uint32_t)fl->h.writer,
                 h5fam_writer_dead(fl->h.writer) ? ", which is gone" : "");
            goto fail;
        }
        if (flags & H5F_ACC_TRUNC) {
            /* Keep the extents: their memory is already touched, so a
             * rewrite runs at the speed of a warm put. Bytes below hwm may
             * be stale; every byte below eof has been written or zeroed
             * (writes past eof clear the gap first), so nothing stale is
             * ever read. HDF5's truncate at close frees what the new file
             * does not reach. */
            fl->h.eof = 0;
            if (write_header(fl)) goto fail_unclaim;
        }
    }
    fl->eoa = 0;
    fl->pub.maxaddr = maxaddr;
    return &fl->pub;

fail_unclaim:
    if (fl->rw && fl->hdr_item) {
        int failed = 0;
        if ((!claimed || claim_drop(fl->key, &failed) == 0) && !failed) {
            uint64_t old;
            COUNT(fam_other);
            fam_compare_swap_uint64(fl->f, fl->hdr_item, H5FAM_WRITER_OFF, tag, 0,
                                    &old);
        }
    }
fail:
    release_all(fl);
    return NULL;
}

static herr_t h5fam_close(H5FD_t *file)
{
    h5fam_file_t *fl = (h5fam_file_t *)file;
    herr_t ret = 0;
    if (fl->rw) {
        struct h5fam_claim *c = claim_find(fl->key);
        if (c && fl->failed) c->failed = 1;
        int failed = 0;
        int left = claim_drop(fl->key, &failed);
        if (fl->hdr_dirty && write_header(fl)) failed = 1;
        /* The claim goes back to 0 only when the last handle of this
         * process closes and every write landed; otherwise it stays, and
         * readers refuse the file as possibly incomplete. The failed write
         * was already reported; failing the close too would leave HDF5
         * 1.10.8 with a half-closed file that crashes H5close (seen in
         * test_h5fam). */
        uint64_t old = 0;
        if (left == 0 && !failed) {
            COUNT(fam_other);
            if (fam_compare_swap_uint64(fl->f, fl->hdr_item, H5FAM_WRITER_OFF,
                                        h5fam_writer_tag(), 0, &old) < 0) {
                PUSH(H5E_CANTCLOSEFILE, "could not mark '%s/%s' closed: %s",
                     fl->region, fl->name, fam_last_error());
                ret = -1;
            }
        }
    }
    release_all(fl);
    return ret;
}

static int h5fam_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const h5fam_file_t *x = (const h5fam_file_t *)a, *y = (const h5fam_file_t *)b;
    int c = strcmp(x->fa.servers, y->fa.servers);
    if (!c) c = strcmp(x->region, y->region);
    if (!c) c = strcmp(x->name, y->name);
    return c < 0 ? -1 : c > 0;
}

static herr_t h5fam_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    /* as sec2, less what needs a POSIX descriptor: HDF5 gathers metadata
     * and small raw data into large blocks, so writes are few and large */
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA |
             H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_AGGREGATE_SMALLDATA;
    return 0;
}

static haddr_t h5fam_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const h5fam_file_t *)file)->eoa;
}

static herr_t h5fam_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((h5fam_file_t *)file)->eoa = addr;
    return 0;
}

static haddr_t h5fam_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const h5fam_file_t *)file)->h.eof;
}

static herr_t h5fam_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    if (!handle) {
        PUSH(H5E_BADVALUE, "file handle pointer is NULL");
        return -1;
    }
    *handle = ((h5fam_file_t *)file)->hdr_item;
    return 0;
}

static herr_t h5fam_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl,
                         haddr_t addr, size_t size, void *buf)
{
    (void)type; (void)dxpl;
    h5fam_file_t *fl = (h5fam_file_t *)file;
    COUNT(reads);
    __atomic_fetch_add(&h5fam_stats_g.read_bytes, size, __ATOMIC_RELAXED);
    if (addr > H5FAM_MAXADDR || size > H5FAM_MAXADDR - addr) {
        PUSH(H5E_OVERFLOW, "read of %zu bytes at %" PRIuHADDR " is past the "
             "largest address of '%s/%s'", size, addr, fl->region, fl->name);
        return -1;
    }
    uint8_t *out = buf;
    uint64_t eof = fl->h.eof;
    uint64_t in = addr >= eof ? 0 : (eof - addr < size ? eof - addr : size);
    if (in < size) memset(out + in, 0, size - in); /* past eof: zeros */
    uint64_t a = addr, end = addr + in;
    while (a < end) {
        uint64_t k = h5fam_ext_of(&fl->h, a);
        uint64_t s = h5fam_ext_start(&fl->h, k), e = s + h5fam_ext_size(&fl->h, k);
        uint64_t n = (e < end ? e : end) - a;
        fam_item_t *d;
        if (get_extent(fl, k, 0, &d)) return -1;
        if (!d) {
            memset(out + (a - addr), 0, n); /* never written */
        } else {
            /* one blocking get per extent part: measured on shm, a 1 GiB
             * read as 21 gets issued together ran at about half the speed
             * of the same gets one after another (docs/H5FAM.md) */
            COUNT(fam_gets);
            int rc = fam_get_blocking(fl->f, out + (a - addr), d, a - s, n);
            if (rc < 0) {
                PUSH(minor_of(rc), "read of %" PRIu64 " bytes at %" PRIu64
                     " of '%s/%s' failed: %s", n, a, fl->region, fl->name,
                     fam_last_error());
                return -1;
            }
        }
        a += n;
    }
    return 0;
}

static herr_t h5fam_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl,
                          haddr_t addr, size_t size, const void *buf)
{
    (void)type; (void)dxpl;
    h5fam_file_t *fl = (h5fam_file_t *)file;
    COUNT(writes);
    __atomic_fetch_add(&h5fam_stats_g.write_bytes, size, __ATOMIC_RELAXED);
    if (!fl->rw) {
        PUSH(H5E_WRITEERROR, "'%s/%s' is open read-only", fl->region, fl->name);
        return -1;
    }
    int failed_before = fl->failed;
    fl->failed = 1; /* until this write is whole */
    if (addr > H5FAM_MAXADDR || size > H5FAM_MAXADDR - addr) {
        PUSH(H5E_OVERFLOW, "write of %zu bytes at %" PRIuHADDR " is past the "
             "largest address of '%s/%s'", size, addr, fl->region, fl->name);
        return -1;
    }
    /* bytes between eof and this write that a longer past version left */
    if (addr > fl->h.eof && fl->h.hwm > fl->h.eof &&
        zero_range(fl, fl->h.eof, addr < fl->h.hwm ? addr : fl->h.hwm))
        return -1;
    const uint8_t *src = buf;
    uint64_t a = addr, end = addr + size;
    while (a < end) {
        uint64_t k = h5fam_ext_of(&fl->h, a);
        uint64_t s = h5fam_ext_start(&fl->h, k), e = s + h5fam_ext_size(&fl->h, k);
        uint64_t n = (e < end ? e : end) - a;
        fam_item_t *d;
        if (get_extent(fl, k, 1, &d)) return -1;
        COUNT(fam_puts);
        int rc = fam_put_blocking(fl->f, src + (a - addr), d, a - s, n);
        if (rc < 0) {
            PUSH(minor_of(rc), "write of %" PRIu64 " bytes at %" PRIu64
                 " of '%s/%s' failed: %s", n, a, fl->region, fl->name,
                 fam_last_error());
            return -1;
        }
        a += n;
    }
    if (end > fl->h.eof) { fl->h.eof = end; fl->hdr_dirty = 1; }
    if (end > fl->h.hwm) { fl->h.hwm = end; fl->hdr_dirty = 1; }
    fl->failed = failed_before;
    return 0;
}

static herr_t h5fam_flush(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl; (void)closing;
    h5fam_file_t *fl = (h5fam_file_t *)file;
    if (fl->rw && fl->hdr_dirty) return write_header(fl) ? -1 : 0;
    return 0;
}

static herr_t h5fam_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl; (void)closing;
    h5fam_file_t *fl = (h5fam_file_t *)file;
    if (!fl->rw) return 0;
    uint64_t eoa = fl->eoa;
    if (eoa > fl->h.eof) { /* grow: the new bytes read as zeros */
        if (fl->h.hwm > fl->h.eof &&
            zero_range(fl, fl->h.eof, eoa < fl->h.hwm ? eoa : fl->h.hwm))
            return -1;
        fl->h.eof = eoa;
        fl->hdr_dirty = 1;
    } else {
        /* shrink (or a rewrite that stayed shorter than the file it
         * replaced): free the extents wholly past the new end */
        uint64_t k = eoa == 0 ? 0 : h5fam_ext_of(&fl->h, eoa - 1) + 1;
        if (k < fl->h.next && free_extents_from(fl, k)) return -1;
        if (fl->h.eof != eoa) { fl->h.eof = eoa; fl->hdr_dirty = 1; }
    }
    return fl->hdr_dirty && write_header(fl) ? -1 : 0;
}

static herr_t h5fam_lock(H5FD_t *file, hbool_t rw)
{
    /* writers are excluded by the claim taken in open (a FAM atomic that
     * works across hosts, unlike flock); readers check it there too */
    (void)file; (void)rw;
    return 0;
}

static herr_t h5fam_unlock(H5FD_t *file)
{
    (void)file;
    return 0;
}

/* ---- the fapl ---------------------------------------------------------------- */
static void *h5fam_fapl_get(H5FD_t *file)
{
    h5fam_fapl_t *c = malloc(sizeof *c);
    if (c) *c = ((h5fam_file_t *)file)->fa;
    return c;
}

static void *h5fam_fapl_copy(const void *fa)
{
    h5fam_fapl_t *c = malloc(sizeof *c);
    if (c) memcpy(c, fa, sizeof *c);
    return c;
}

static herr_t h5fam_fapl_free(void *fa)
{
    free(fa);
    return 0;
}

static const H5FD_class_t h5fam_class = {
    .name = "fam",
    .maxaddr = H5FAM_MAXADDR,
    .fc_degree = H5F_CLOSE_WEAK,
    .terminate = h5fam_terminate,
    .fapl_size = sizeof(h5fam_fapl_t),
    .fapl_get = h5fam_fapl_get,
    .fapl_copy = h5fam_fapl_copy,
    .fapl_free = h5fam_fapl_free,
    .open = h5fam_open,
    .close = h5fam_close,
    .cmp = h5fam_cmp,
    .query = h5fam_query,
    .get_eoa = h5fam_get_eoa,
    .set_eoa = h5fam_set_eoa,
    .get_eof = h5fam_get_eof,
    .get_handle = h5fam_get_handle,
    .read = h5fam_read,
    .write = h5fam_write,
    .flush = h5fam_flush,
    .truncate = h5fam_truncate,
    .lock = h5fam_lock,
    .unlock = h5fam_unlock,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

static hid_t h5fam_id = H5I_INVALID_HID;

hid_t h5fam_init(void)
{
    if (H5Iget_type(h5fam_id) != H5I_VFL)
        h5fam_id = H5FDregister(&h5fam_class);
    return h5fam_id;
}

static herr_t h5fam_terminate(void)
{
    for (struct h5fam_conn *c = h5fam_conns, *n; c; c = n) {
        n = c->next;
        if (c->pid == getpid()) fam_finalize(c->f);
        free(c);
    }
    h5fam_conns = NULL;
    h5fam_id = H5I_INVALID_HID;
    return 0;
}

herr_t H5Pset_fapl_fam(hid_t fapl, const char *servers, const char *provider)
{
    h5fam_fapl_t fa;
    memset(&fa, 0, sizeof fa);
    if (servers && strlen(servers) >= sizeof fa.servers) {
        PUSH(H5E_BADVALUE, "server list of %zu bytes is longer than %zu",
             strlen(servers), sizeof fa.servers - 1);
        return -1;
    }
    if (provider && strlen(provider) >= sizeof fa.provider) {
        PUSH(H5E_BADVALUE, "provider name '%s' is too long", provider);
        return -1;
    }
    if (servers) strcpy(fa.servers, servers);
    if (provider) strcpy(fa.provider, provider);
    hid_t id = h5fam_init();
    if (id < 0) {
        PUSH(H5E_CANTREGISTER, "could not register the fam driver");
        return -1;
    }
    if (H5Pset_driver(fapl, id, &fa) < 0) return -1;
    /* HDF5's data sieve reads a whole sieve buffer (64 KiB by default) for
     * any small read of a contiguous dataset. From a page-cached local file
     * that costs little; from FAM every byte crosses the fabric: an 8-element
     * hyperslab read fetched 65,446 bytes and took 42.7 us on shm against
     * 1.5 us for one 64-byte get (docs/PERFORMANCE.md, issue 15). A 4 KiB
     * sieve keeps nearby small reads served from one get and makes a lone
     * one cost about one small get. A caller may set another size after
     * this call (H5Pset_sieve_buf_size). */
    return H5Pset_sieve_buf_size(fapl, H5FAM_SIEVE_BYTES);
}

herr_t h5fam_remove(hid_t fapl, const char *full, int force)
{
    char region[FAM_NAME_MAX + 1], name[H5FAM_NAME_MAX + 1];
    if (h5fam_split_name(full, region, name)) {
        PUSH(H5E_BADVALUE, "'%s' is not a fam file name (REGION/NAME)",
             full ? full : "(null)");
        return -1;
    }
    h5fam_fapl_t fa;
    memset(&fa, 0, sizeof fa);
    const h5fam_fapl_t *given = fapl >= 0 ? H5Pget_driver_info(fapl) : NULL;
    if (given) fa = *given;
    int rc = 0;
    fam_t *f = h5fam_connect(&fa, &rc);
    if (!f) {
        PUSH(H5E_CANTOPENFILE, "cannot remove '%s': no connection to the memory "
             "servers: %s", full, fam_last_error());
        return -1;
    }
    fam_item_t *hd;
    COUNT(fam_other);
    if ((rc = fam_lookup(f, name, region, &hd)) < 0) {
        PUSH(minor_of(rc), "cannot remove '%s': %s", full, fam_last_error());
        return -1;
    }
    uint8_t buf[H5FAM_HDR_BYTES];
    h5fam_hdr_t h;
    char why[256] = "";
    COUNT(fam_gets);
    if (fam_item_size(hd) < H5FAM_HDR_BYTES ||
        fam_get_blocking(f, buf, hd, 0, H5FAM_HDR_BYTES) < 0 ||
        h5fam_hdr_decode(buf, &h, why, sizeof why)) {
        PUSH(H5E_BADFILE, "cannot remove '%s': no readable h5fam header %s", full, why);
        fam_release(hd);
        return -1;
    }
    /* the writer word: free, ours (this process), or a dead writer's */
    uint64_t tag = h5fam_writer_tag(), old = 0;
    COUNT(fam_other);
    rc = fam_compare_swap_uint64(f, hd, H5FAM_WRITER_OFF, 0, tag, &old);
    if (rc < 0 || (old && old != tag && !force && !h5fam_writer_dead(old))) {
        if (rc < 0)
            PUSH(minor_of(rc), "cannot claim '%s': %s", full, fam_last_error());
        else
            PUSH(H5E_CANTDELETE, "'%s' is open for writing by process %u (or its "
                 "writer died on another host): rm -f removes it anyway", full,
                 (unsigned)(uint32_t)old);
        fam_release(hd);
        return -1;
    }
    for (uint64_t k = 0; k < h.next; k++) {
        char nm[FAM_NAME_MAX + 1];
        h5fam_extent_name(nm, name, k);
        fam_item_t *d;
        COUNT(fam_other);
        rc = fam_lookup(f, nm, region, &d);
        if (rc == FAM_ENOTFOUND) continue;
        COUNT(fam_other);
        if (rc < 0 || (rc = fam_deallocate(f, d)) < 0) {
            PUSH(minor_of(rc), "cannot remove extent '%s' of '%s': %s", nm, full,
                 fam_last_error());
            fam_release(hd);
            return -1;
        }
    }
    COUNT(fam_other);
    if ((rc = fam_deallocate(f, hd)) < 0) {
        PUSH(minor_of(rc), "cannot remove '%s': %s", full, fam_last_error());
        return -1;
    }
    return 0;
}

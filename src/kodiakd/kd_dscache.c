/* SPDX-License-Identifier: Apache-2.0 */
/* kd_dscache.c — kodiakd's cache of column data of dataset batches: the
 * rows a rank has just written to a batch's FAM array (an ingest, a
 * derived batch it computed) are kept in its memory, so
 * the next command on them (a filter on the ingested data, a derive
 * through the index it just wrote, a group-by of the column it just
 * derived) reads no FAM for them.
 *
 * Why a kept piece is never stale: it is found by the store's region and
 * the FAM array's name, and a batch's arrays are named after its batch id
 * ("b.<id>.<col>", 8 hex digits of creation time and 16 random ones,
 * made when the batch is begun). The data of a batch is written once
 * before it is committed and never changed after (libdataset has no call
 * that rewrites a committed batch), a dropped and recreated dataset, or
 * one appended to by another server, has new batch ids, and a batch that
 * is never committed is never named by the catalog, so its pieces are
 * never asked for (they age out). What is kept for an array is therefore
 * what FAM holds there for as long as the catalog can name it.
 *
 * A piece is rows [off, off + n) of one array. The cache is bounded by
 * 1/KD_DSC_SHARE of --memory-limit, charged to it (kd_srv.mem_used), the
 * least recently used piece evicted first, and gives way to arrays and
 * windows (kd_dsc_trim). Pieces written are kept evicting older ones;
 * pieces read from FAM only with KD_DS_COLCACHE=reads, and only when they
 * fit without evicting (a scan over more than fits would otherwise evict
 * each piece before it is used). KD_DS_COLCACHE=0 in kodiakd's
 * environment turns it off (the tests compare both ways). Local to each
 * rank; no collectives. */
#include "kd_ds.h"
#include "kd_lru.h"

#include <stdlib.h>
#include <string.h>

#define KD_DSC_SHARE 8        /* at most 1/8 of --memory-limit */
#define KD_DSC_BUCKETS 4096   /* hash chains (by array) */

typedef struct kd_dsc_piece {
    kd_lru_node lru;                    /* its place in the LRU list */
    struct kd_dsc_piece *chain;         /* next in its hash bucket */
    uint64_t hash;                      /* of key */
    size_t klen;                        /* bytes of key */
    char *key;                          /* region, NUL, array name */
    uint64_t off;                       /* first row held */
    uint64_t n;                         /* rows held */
    size_t w;                           /* bytes per row */
    char *data;                         /* n * w bytes */
    size_t bytes;                       /* all of it, charged to --memory-limit */
} kd_dsc_piece;

static struct {
    kd_dsc_piece *bucket[KD_DSC_BUCKETS]; /* hash chains */
    kd_lru lru;                           /* every piece, most recently used first */
    uint64_t bytes;                       /* held (and charged) */
    kd_dsc_stats st;                      /* counters */
    int on;                               /* -1 not yet read from the environment */
} dsc = {.on = -1};

static bool dsc_on(void)
{
    if (dsc.on < 0) {
        const char *e = getenv("KD_DS_COLCACHE");
        dsc.on = !(e && !strcmp(e, "0"));
    }
    return dsc.on && kd_dsc_limit() > 0;
}

/* Whether rows read from FAM are kept too (KD_DS_COLCACHE=reads): off by
 * default, since keeping them costs a fresh buffer (page faults) and a
 * copy on every read: a server reading a dataset it did not write ran
 * ds_bench's queries 1.4x slower with it (docs/PERFORMANCE.md, colc14). */
static bool dsc_keep_reads(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("KD_DS_COLCACHE");
        on = e && !strcmp(e, "reads");
    }
    return on;
}

uint64_t kd_dsc_limit(void)
{
    return kd_srv.mem_limit / KD_DSC_SHARE;
}

uint64_t kd_dsc_bytes(void)
{
    return dsc.bytes;
}

void kd_dsc_get_stats(kd_dsc_stats *out)
{
    *out = dsc.st;
    out->bytes = dsc.bytes;
}

/* the key of column k of batch b of `in`: region, NUL, array name */
static size_t dsc_key(ds_store_t *s, const char *array, char *buf, size_t cap)
{
    const char *r = ds_store_region(s);
    size_t lr = strlen(r ? r : ""), la = strlen(array);
    if (lr + 1 + la > cap)
        return 0;
    memcpy(buf, r ? r : "", lr);
    buf[lr] = 0;
    memcpy(buf + lr + 1, array, la);
    return lr + 1 + la;
}

/* the least recently used piece, NULL if none */
static kd_dsc_piece *dsc_oldest(void)
{
    return KD_LRU_ENTRY(dsc.lru.oldest, kd_dsc_piece, lru);
}

static void dsc_unlink(kd_dsc_piece *p)
{
    kd_dsc_piece **pp = &dsc.bucket[p->hash % KD_DSC_BUCKETS];
    while (*pp != p)
        pp = &(*pp)->chain;
    *pp = p->chain;
    kd_lru_remove(&dsc.lru, &p->lru);
    dsc.bytes -= p->bytes;
    kd_srv.mem_used -= p->bytes;
    free(p->key);
    kd_free_bytes(p->data, (size_t)p->n * p->w);
    free(p);
}

void kd_dsc_trim(uint64_t need)
{
    while (dsc_oldest() &&
           (need == UINT64_MAX || kd_srv.mem_used + need > kd_srv.mem_limit)) {
        dsc_unlink(dsc_oldest());
        dsc.st.evicted++;
    }
}

void kd_dsc_clear(void)
{
    while (dsc_oldest())
        dsc_unlink(dsc_oldest());
}

static bool same_key(const kd_dsc_piece *p, uint64_t h, const char *key, size_t klen)
{
    return p->hash == h && p->klen == klen && memcmp(p->key, key, klen) == 0;
}

static void dsc_touch(kd_dsc_piece *p)
{
    kd_lru_touch(&dsc.lru, &p->lru);
}

/* The piece of key holding row r, or NULL; *next (may be NULL) gets the
 * first row after r that a piece of key holds (UINT64_MAX if none). */
static kd_dsc_piece *dsc_find(const char *key, size_t klen, uint64_t h, uint64_t r,
                              uint64_t *next)
{
    uint64_t nx = UINT64_MAX;
    for (kd_dsc_piece *p = dsc.bucket[h % KD_DSC_BUCKETS]; p; p = p->chain) {
        if (!same_key(p, h, key, klen))
            continue;
        if (p->off <= r && r - p->off < p->n)
            return p;
        if (p->off > r && p->off < nx)
            nx = p->off;
    }
    if (next)
        *next = nx;
    return NULL;
}

/* Keep rows [off, off + n) of the array (w bytes each) from data. evict:
 * older pieces may give way; else only what fits in the room left. */
static void dsc_put(const char *key, size_t klen, size_t w, uint64_t off, uint64_t n,
                    const void *data, bool evict)
{
    if (!n || !dsc_on())
        return;
    size_t db = (size_t)n * w, bytes = sizeof(kd_dsc_piece) + klen + db;
    uint64_t h = kd_hash_bytes(key, klen);
    if (bytes > kd_dsc_limit())
        return;
    /* a piece that already holds all of it: nothing to add; pieces the
     * new one holds all of: replaced (the same rows, the same values) */
    for (kd_dsc_piece *p = dsc.bucket[h % KD_DSC_BUCKETS], *nx; p; p = nx) {
        nx = p->chain;
        if (!same_key(p, h, key, klen))
            continue;
        if (p->off <= off && p->off + p->n >= off + n) {
            dsc_touch(p);
            return;
        }
        if (p->off >= off && p->off + p->n <= off + n)
            dsc_unlink(p);
    }
    while (dsc_oldest() && (dsc.bytes + bytes > kd_dsc_limit() ||
                            kd_srv.mem_used + bytes > kd_srv.mem_limit)) {
        if (!evict)
            return;
        dsc_unlink(dsc_oldest());
        dsc.st.evicted++;
    }
    if (dsc.bytes + bytes > kd_dsc_limit() || kd_srv.mem_used + bytes > kd_srv.mem_limit)
        return;
    kd_dsc_piece *p = calloc(1, sizeof *p);
    char *k = malloc(klen);
    /* kd_alloc_bytes: a piece of 2 MiB or more in huge pages (the gathers
     * through an index jump about it: far fewer TLB misses), and one freed
     * is taken again already mapped in */
    char *d = kd_alloc_bytes(db);
    if (!p || !k || !d) {
        free(p);
        free(k);
        kd_free_bytes(d, db);
        return;
    }
    memcpy(k, key, klen);
    memcpy(d, data, db);
    p->key = k;
    p->klen = klen;
    p->hash = h;
    p->off = off;
    p->n = n;
    p->w = w;
    p->data = d;
    p->bytes = bytes;
    kd_dsc_piece **head = &dsc.bucket[h % KD_DSC_BUCKETS];
    p->chain = *head;
    *head = p;
    kd_lru_push(&dsc.lru, &p->lru);
    dsc.bytes += bytes;
    kd_srv.mem_used += bytes;
    dsc.st.kept_rows += n;
}

void kd_dsc_wrote(ds_store_t *s, const char *array, size_t w, uint64_t off, uint64_t n,
                  const void *data)
{
    char key[1024];
    size_t klen = dsc_key(s, array, key, sizeof key);
    if (klen)
        dsc_put(key, klen, w, off, n, data, true);
}

/* column k of batch b of `in`: its key, and its width; 0 when there is none */
static size_t cell_key(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, char *key,
                       size_t cap, size_t *w)
{
    if (!dsc_on() || b >= in->nbatches || k >= in->ncols || !in->batches[b].arrays ||
        !in->batches[b].arrays[k])
        return 0;
    *w = fa_dtype_size(ds_dtype_storage(in->cols[k].dtype));
    return dsc_key(s, in->batches[b].arrays[k], key, cap);
}

int kd_dsc_read(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, uint64_t off,
                uint64_t m, void *dst)
{
    char key[1024];
    size_t w = 0, klen = cell_key(s, in, b, k, key, sizeof key, &w);
    if (!klen || b >= in->nbatches || off > in->batches[b].rows ||
        m > in->batches[b].rows - off)
        return m ? ds_read(s, in, b, k, off, m, dst) : 0; /* (its checks and errors) */
    uint64_t h = kd_hash_bytes(key, klen);
    char *out = dst;
    for (uint64_t at = off; at < off + m;) {
        uint64_t next, end;
        kd_dsc_piece *p = dsc_find(key, klen, h, at, &next);
        if (p) {
            end = p->off + p->n < off + m ? p->off + p->n : off + m;
            memcpy(out + (at - off) * w, p->data + (at - p->off) * w, (size_t)(end - at) * w);
            dsc_touch(p);
            dsc.st.hit_rows += end - at;
        } else {
            end = next < off + m ? next : off + m;
            int rc = ds_read(s, in, b, k, at, end - at, out + (at - off) * w);
            if (rc)
                return rc;
            dsc.st.read_rows += end - at;
            if (dsc_keep_reads())
                dsc_put(key, klen, w, at, end - at, out + (at - off) * w, false);
        }
        at = end;
    }
    return 0;
}

int kd_dsc_local(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, uint64_t at,
                 uint64_t m, const void **ptr, uint64_t *run)
{
    char key[1024];
    size_t w = 0, klen = cell_key(s, in, b, k, key, sizeof key, &w);
    kd_dsc_piece *p = klen && m ? dsc_find(key, klen, kd_hash_bytes(key, klen), at, NULL) : NULL;
    if (!p)
        return ds_local(s, in, b, k, at, m, ptr, run);
    uint64_t end = p->off + p->n < at + m ? p->off + p->n : at + m;
    *ptr = p->data + (at - p->off) * w;
    *run = end - at;
    dsc_touch(p);
    dsc.st.hit_rows += end - at;
    return 0;
}

/* Rows ahead that gather_run asks the memory for while it copies a row:
 * the rows are scattered over a piece of megabytes, each a cache miss,
 * and asking early keeps several misses in flight. */
#define KD_DSC_AHEAD 32

/* Copy rows[i], rows[i + 1], ... into out (w bytes each, at their
 * positions) for as long as piece p holds them; the index after the last
 * one copied (> i: p holds rows[i]). Each row copied as the loop it
 * replaced did; only the prefetches are added. */
static uint64_t gather_run(const kd_dsc_piece *p, const uint64_t *rows, uint64_t n, uint64_t i,
                           size_t w, char *out)
{
    const uint64_t off = p->off, m = p->n;
    const char *data = p->data;
    for (; i < n && rows[i] - off < m && rows[i] >= off; i++) {
        if (i + KD_DSC_AHEAD < n) {
            uint64_t q = rows[i + KD_DSC_AHEAD];
            if (q >= off && q - off < m)
                __builtin_prefetch(data + (q - off) * w);
        }
        if (w == 8)
            memcpy(out + i * 8, data + (rows[i] - off) * 8, 8);
        else
            memcpy(out + i * w, data + (rows[i] - off) * w, w);
    }
    return i;
}

int kd_dsc_gather(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, uint64_t n,
                  const uint64_t *rows, void *dst)
{
    char key[1024];
    size_t w = 0, klen = cell_key(s, in, b, k, key, sizeof key, &w);
    if (!klen || !n)
        return n ? ds_gather(s, in, b, k, n, rows, dst) : 0;
    uint64_t nb = in->batches[b].rows;
    for (uint64_t i = 0; i < n; i++)
        if (rows[i] >= nb)
            return ds_gather(s, in, b, k, n, rows, dst); /* (its error) */
    uint64_t h = kd_hash_bytes(key, klen);
    uint64_t first;
    if (!dsc_find(key, klen, h, 0, &first) && first == UINT64_MAX) {
        dsc.st.read_rows += n; /* nothing kept of this array */
        return ds_gather(s, in, b, k, n, rows, dst);
    }
    /* the rows the cache holds, from it; the others by one indexed read */
    uint64_t *miss = NULL, *where = NULL, nm = 0;
    char *out = dst;
    kd_dsc_piece *p = NULL;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = rows[i];
        if (!p || r < p->off || r - p->off >= p->n)
            p = dsc_find(key, klen, h, r, NULL);
        if (p) {
            i = gather_run(p, rows, n, i, w, out) - 1; /* the rows from i that p holds */
            continue;
        }
        if (!miss) {
            miss = malloc(sizeof *miss * (size_t)(n - i));
            where = malloc(sizeof *where * (size_t)(n - i));
            if (!miss || !where) {
                free(miss);
                free(where);
                return ds_gather(s, in, b, k, n, rows, dst); /* all of it from FAM */
            }
        }
        miss[nm] = r;
        where[nm++] = i;
    }
    int rc = 0;
    if (nm) {
        char *tmp = malloc((size_t)nm * w);
        rc = tmp ? ds_gather(s, in, b, k, nm, miss, tmp) : ds_gather(s, in, b, k, n, rows, dst);
        if (tmp && !rc)
            for (uint64_t j = 0; j < nm; j++)
                memcpy(out + where[j] * w, tmp + j * w, w);
        free(tmp);
        dsc.st.read_rows += nm;
    }
    dsc.st.hit_rows += n - nm;
    if (p)
        dsc_touch(p);
    free(miss);
    free(where);
    return rc;
}

void kd_dsc_warm(ds_store_t *s, const ds_info_t *in, size_t b)
{
    char key[1024];
    if (!dsc_on() || b >= in->nbatches)
        return;
    uint64_t rows = in->batches[b].rows;
    for (size_t k = 0; k < in->ncols; k++) {
        size_t w = 0, klen = cell_key(s, in, b, k, key, sizeof key, &w);
        if (!klen)
            continue;
        uint64_t h = kd_hash_bytes(key, klen);
        for (uint64_t at = 0; at < rows;) {
            uint64_t next, end;
            kd_dsc_piece *p = dsc_find(key, klen, h, at, &next);
            if (p) {
                at = p->off + p->n;
                continue;
            }
            end = next < rows ? next : rows;
            if ((end - at) * w + sizeof(kd_dsc_piece) + klen > kd_dsc_limit())
                return; /* would not be kept */
            char *buf = malloc((size_t)(end - at) * w);
            if (!buf || ds_read(s, in, b, k, at, end - at, buf)) {
                free(buf);
                return; /* (a cache: nothing is wrong, the rows are read when needed) */
            }
            dsc.st.read_rows += end - at;
            dsc_put(key, klen, w, at, end - at, buf, true);
            free(buf);
            at = end;
        }
    }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* ds_internal.h — libdataset's private structures, shared by its files.
 *
 * What a store is in FAM (region "ds.<store>", interleaved over every
 * memory server; docs/DATASET.md has the whole story):
 *
 *   "head"              4 KiB. Bytes 0..15: the head word {u64 version,
 *                       u64 nonce}, changed only by 128-bit compare-and-
 *                       swap; {0, 0} is the empty catalog. Bytes 16..23:
 *                       magic "KDDSHEAD", 24..27: u32 layout version.
 *   "c.<v>.<n>"         an immutable catalog snapshot (v, n: 16 hex digits
 *                       each, the head word that names it): a 64-byte
 *                       header {magic "KDDSCAT1", u64 version, u64 nonce,
 *                       u64 body length, u32 crc32 of the body, u32 format}
 *                       then the body, JSON (ds_catalog.c).
 *   "b.<id>.<col>"      the FAM array of column col of batch id.
 *   "k.<id>.<col>"      the categories of text column col of batch id: a
 *                       32-byte header {magic "KDDSCATG", u64 count, u64
 *                       string bytes, u32 crc32 of what follows, u32 0},
 *                       count u64 end offsets, the strings (no NULs).
 *
 * A batch id is 8 hex digits of its creation time (seconds since 1970)
 * and 16 random hex digits; a snapshot's nonce holds its creation time in
 * its upper 32 bits. ds_reclaim reads ages from the names. All integers
 * in FAM are little-endian. */
#ifndef DS_INTERNAL_H
#define DS_INTERNAL_H

#include <stdint.h>

#include "kodiak/dataset.h"

#define DS_HEAD_ITEM "head"
#define DS_HEAD_BYTES 4096
#define DS_HEAD_MAGIC "KDDSHEAD"
#define DS_LAYOUT 1u             /* head layout version */
#define DS_SNAP_MAGIC "KDDSCAT1"
#define DS_SNAP_HEADER 64
#define DS_FORMAT 1u             /* catalog body format */
#define DS_CATS_MAGIC "KDDSCATG"
#define DS_CATS_HEADER 32
#define DS_KEEP 8                /* snapshots kept behind the head for slow readers */
#define DS_RETIRED_MAX 8         /* retired snapshots a handle holds for ds_cleanup */
#define DS_REGION_PREFIX "ds."
/* The region's size is a limit, not a reservation (famd): make it large,
 * so that the pools, not the region, bound the store. */
#define DS_REGION_LIMIT (1ull << 50)
#define DS_COMMIT_DEADLINE_MS 120000 /* one commit, retries included */
#define DS_READ_TRIES 1000           /* catalog reads racing with commits */
#define DS_SNAPSHOT_GRACE 60         /* s: least age of a snapshot above the head that
                                      * ds_reclaim frees (a commit may be in flight) */
#define DS_OPEN_CACHE 32             /* arrays kept open per store handle for ds_read */

/* A column in the in-memory catalog. */
struct ds_ccol {
    char *name;
    ds_dtype_t dtype;
};

/* A committed batch in the in-memory catalog. */
struct ds_cbatch {
    char id[DS_BATCH_ID_LEN + 1];
    uint64_t rows;
    uint64_t *ncat; /* ncols category counts; NULL when the dataset has no text column */
};

/* A dataset in the in-memory catalog. */
struct ds_cset {
    char *name;
    ds_kind_t kind;
    char *base;            /* "" for a base dataset */
    char *expr;            /* "" for a base dataset */
    uint64_t base_batches; /* derived: base batches processed */
    size_t ncols;
    struct ds_ccol *cols;
    int has_text;          /* some column is DS_TEXT (batches carry ncat) */
    size_t nb, cap;        /* batches, allocated */
    struct ds_cbatch *b;
};

/* One catalog version, parsed. */
struct ds_cat {
    uint64_t version, nonce;  /* the head word naming it ({0,0}: empty) */
    size_t nhist;             /* snapshots kept behind it, newest first */
    uint64_t hist_v[DS_KEEP], hist_n[DS_KEEP];
    size_t nds, cap;          /* datasets, allocated */
    struct ds_cset *ds;
};

/* An attached store (ds_store_t). */
struct ds_store {
    fam_t *f;                 /* the caller's connection (not owned) */
    fam_item_t *head;         /* the head item (owned) */
    mode_t mode;              /* permission bits for what we create */
    char name[DS_STORE_NAME_MAX + 1];
    char region[DS_STORE_NAME_MAX + sizeof DS_REGION_PREFIX];
    struct ds_cat *cache;     /* the last catalog read (owned), or NULL */
    int pinned;               /* ds_pin: ds_info answers from cache, unasked */
    int defer;                /* ds_defer_cleanup: retired snapshots wait */
    size_t nretired;          /* for ds_cleanup: their names */
    char retired[DS_RETIRED_MAX][64];
    struct ds_cat *staged;    /* ds_txn_stage: the datasets its transaction
                               * touches, as it leaves them; ds_info answers
                               * from here first (owned) */
    const struct ds_txn *staged_by; /* the transaction it shows, until its end */
    /* arrays ds_read opened lately, reused by name (names are never
     * reused: a dropped array fails its next read with FAM_ENOTFOUND) */
    fa_array_t *open[DS_OPEN_CACHE];
    unsigned next_open;       /* the slot the next opened array takes */
    fam_region_t *rgn;        /* the region, looked up once for ds_batch_begin
                               * and catalog snapshots (NULL until then, or
                               * after a failure) */
};

/* A batch being written (ds_batch_t). */
struct ds_batch {
    ds_store_t *s;
    char id[DS_BATCH_ID_LEN + 1];
    uint64_t rows;
    size_t ncols;
    ds_dtype_t *dtypes;       /* ncols */
    fa_array_t **arrays;      /* ncols open arrays */
    char (*names)[40];        /* ncols array names */
};

/* ---- ds_catalog.c ---- */
void ds_cat_free(struct ds_cat *c);
struct ds_cset *ds_cat_find(const struct ds_cat *c, const char *name);
/* The current catalog (owned by s: valid until the next call on s). */
int ds_cat_current(ds_store_t *s, const struct ds_cat **out);
/* A private copy of the current catalog, to change and commit. */
int ds_cat_load_copy(ds_store_t *s, struct ds_cat **out);
int ds_cat_copy(const struct ds_cat *c, struct ds_cat **out); /* deep; 0 or FAM_ENOMEM */
int ds_cat_add_copy(struct ds_cat *c, const struct ds_cset *d); /* deep; 0 or FAM_ENOMEM */
/* Write c as version (base->version + 1) and swing the head from
 * base's word to it. 0, 1 if the head moved (nothing changed: try
 * again), or an error. On success the snapshot that fell off the kept history is
 * freed. */
int ds_cat_publish(ds_store_t *s, struct ds_cat *c, uint64_t *version);
/* Read the head word. */
int ds_head_read(ds_store_t *s, uint64_t *version, uint64_t *nonce);
/* Add a dataset (names copied). */
int ds_cat_add(struct ds_cat *c, const ds_dataset_def_t *def);
void ds_cset_clear(struct ds_cset *d);
int64_t ds_now_ms(void);       /* monotonic milliseconds */
void ds_sleep_ms(unsigned ms);
void ds_kill_point(const char *op, int step); /* DS_TEST_KILL_AT, for tests */

/* ---- ds_store.c ---- */
int ds_check_name(const char *name, size_t max, const char *what);
int ds_check_id(const char *id);
uint64_t ds_id_time(const char *id); /* creation time encoded in a batch id */
void ds_array_name(char *buf, size_t len, const char *id, size_t col);
void ds_cats_name(char *buf, size_t len, const char *id, size_t col);
void ds_snap_name(char *buf, size_t len, uint64_t version, uint64_t nonce);
uint64_t ds_random64(void);
uint64_t ds_now(void);         /* seconds since 1970 */
/* A growing output buffer (catalog JSON, catalog exports): ds_jput appends
 * n bytes and keeps a NUL after them; err turns 1 on the first failed
 * allocation, after which nothing more is appended. */
struct jbuf {
    char *p;
    size_t n, cap;
    int err;
};
void ds_jput(struct jbuf *b, const char *s, size_t n);
void ds_put_u32(uint8_t *p, uint32_t v);
void ds_put_u64(uint8_t *p, uint64_t v);
uint32_t ds_get_u32(const uint8_t *p);
uint64_t ds_get_u64(const uint8_t *p);
/* Delete item `name` of the store's region; ENOTFOUND counts as done. */
int ds_delete_item(ds_store_t *s, const char *name);
/* op(s, region, arg) in the store's region, through the descriptor the
 * handle keeps (s->rgn: one lookup per handle, not one per call; a lookup
 * asks every memory server). A failure other than FAM_EEXIST with a kept
 * descriptor may come from a store destroyed and made again since: looked
 * up again and tried once more. op's result. */
int ds_in_region(ds_store_t *s, int (*op)(ds_store_t *s, fam_region_t *r, void *arg),
                 void *arg);

#endif

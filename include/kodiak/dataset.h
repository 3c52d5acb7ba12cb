/* SPDX-License-Identifier: Apache-2.0 */
/* dataset.h — the FAM dataset store (libdataset): tables kept in FAM as
 * ordered batches of FAM arrays, with a catalog that lives in FAM too.
 *
 * A store is named ("taxi"). Everything it holds is in one FAM region,
 * "ds.<store>", interleaved over every memory server the client lists: the
 * catalog and every batch array. There are no side files: a process that
 * knows the store's name and the memory servers attaches to it.
 *
 * A dataset is a list of columns (name, dtype) and an ordered list of
 * batches; a batch is a number of rows stored as one FAM array per column
 * (libfamarray, include/kodiak/famarray.h). A text column is stored as int64
 * codes into a list of categories that belongs to the batch: appends from
 * several processes never have to agree on one dictionary; a reader that
 * wants one unifies the batches' lists (codes are -1 for a missing value).
 *
 * Every change to the catalog (new dataset, new batches, drop) is one
 * atomic commit: readers see a complete earlier or later catalog, never a
 * partial one; two processes committing at the same time both succeed, in
 * some order, with nothing lost (a compare-and-swap on a head word in FAM,
 * no lock: docs/DATASET.md). Appending is two steps: a batch's arrays are
 * created and written first (by any number of processes: ds_batch_begin,
 * then fa_put by whoever holds the data), then committed, possibly many
 * batches in one commit. A writer that dies before its commit leaves
 * arrays the catalog does not name: invisible, freed by ds_reclaim.
 *
 * Every function returns 0 or a negative FAM_E* code (fam.h); the message
 * is in ds_last_error() (the same as fam_last_error()). Everything read from
 * FAM is checked (sizes, counts, names, dtypes, checksums): a damaged or
 * hostile catalog gives FAM_EIO with a message, never a crash. Handles are
 * not thread safe; use one per thread. */
#ifndef KODIAK_DATASET_H
#define KODIAK_DATASET_H

#include <fam/fam.h>
#include <kodiak/famarray.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ---------------------------------------------------------------- */
#define DS_STORE_NAME_MAX 64        /* store names: letters, digits, '_', '-', '.' */
#define DS_NAME_MAX 200             /* dataset and column names: printable bytes */
#define DS_EXPR_MAX 4096            /* a derived dataset's expression text */
#define DS_MAX_COLUMNS 1024         /* columns per dataset */
#define DS_MAX_DATASETS 4096        /* datasets per store */
#define DS_MAX_BATCHES 1000000      /* batches per dataset */
#define DS_MAX_COMMIT_BATCHES 65536 /* batches in one commit */
#define DS_CATALOG_MAX (256u << 20) /* bytes of one serialised catalog */
#define DS_CATEGORY_MAX 65535       /* bytes of one category string */
#define DS_CATEGORIES_MAX (1u << 30) /* bytes of one batch column's categories */
#define DS_BATCH_ID_LEN 24          /* "<8 hex: creation time><16 hex: random>" */
/* A batch must be committed within this many seconds of ds_batch_begin
 * (ds_commit refuses older ones), so ds_reclaim with at least this age can
 * never free the arrays of a batch a live writer is still going to commit. */
#define DS_BATCH_LIFETIME (24 * 3600)
/* The age at which ds_reclaim may free an uncommitted batch while writers
 * run: the commit deadline plus an hour for clocks and slow commits. */
#define DS_RECLAIM_AGE (DS_BATCH_LIFETIME + 3600)

/* ---- types ----------------------------------------------------------------- */
typedef enum ds_dtype {
    DS_INT64 = 1, /* int64 array */
    DS_UINT64,    /* uint64 array */
    DS_FLOAT64,   /* float64 array */
    DS_BOOL,      /* bool array (one byte, 0 or 1) */
    DS_TEXT,      /* int64 codes into the batch's categories; -1 = missing */
    DS_DATETIME   /* int64 seconds since 1970-01-01 UTC ("datetime64[s]") */
} ds_dtype_t;

typedef enum ds_kind {
    DS_KIND_BASE = 1, /* rows ingested from outside */
    DS_KIND_INDEX,    /* derived: per base batch, the row numbers (int64)
                       * of that batch that pass `expr` */
    DS_KIND_COLUMN    /* derived: per base batch, values computed by `expr` */
} ds_kind_t;

typedef struct ds_store ds_store_t; /* an attached store */
typedef struct ds_batch ds_batch_t; /* a batch being written (not yet committed) */
typedef struct ds_txn ds_txn_t;     /* a catalog change being prepared */

/* A column of a dataset definition. */
typedef struct ds_column_def {
    const char *name; /* 1..DS_NAME_MAX printable bytes, unique in the dataset */
    ds_dtype_t dtype;
} ds_column_def_t;

/* A dataset definition (ds_create_dataset, ds_txn_create). */
typedef struct ds_dataset_def {
    const char *name;             /* 1..DS_NAME_MAX printable bytes */
    ds_kind_t kind;               /* 0 means DS_KIND_BASE */
    const char *base;             /* derived: the base dataset's name; else NULL */
    const char *expr;             /* derived: predicate or expression text; else NULL */
    size_t ncols;                 /* 1..DS_MAX_COLUMNS */
    const ds_column_def_t *cols;  /* ncols columns */
} ds_dataset_def_t;

/* A batch as a plain value, to pass between processes (e.g. MPI_Gather
 * as bytes): one process begins a batch, others fill its arrays, one of
 * them commits (ds_commit_refs) or attaches to it (ds_batch_attach). */
typedef struct ds_batch_ref {
    char id[DS_BATCH_ID_LEN + 1]; /* ds_batch_id(), NUL-terminated */
    uint64_t rows;                /* rows in the batch */
} ds_batch_ref_t;

/* A column as the catalog describes it. */
typedef struct ds_column_info {
    char *name;
    ds_dtype_t dtype;
} ds_column_info_t;

/* A committed batch. */
typedef struct ds_batch_info {
    char id[DS_BATCH_ID_LEN + 1];
    uint64_t rows;       /* rows in this batch */
    uint64_t first_row;  /* rows in the batches before it */
    char **arrays;       /* ncols FAM array names in the store's region */
    uint64_t *ncat;      /* ncols: categories of each text column (0 for others) */
} ds_batch_info_t;

/* One dataset, as one catalog version holds it (ds_info). */
typedef struct ds_info {
    char *name;
    ds_kind_t kind;
    char *base;               /* derived: the base dataset; "" for a base one */
    char *expr;               /* derived: the expression; "" for a base one */
    uint64_t base_batches;    /* derived: base batches processed so far */
    uint64_t version;         /* the catalog version this was read from */
    uint64_t rows;            /* total over the batches */
    size_t ncols;
    ds_column_info_t *cols;   /* ncols */
    size_t nbatches;
    ds_batch_info_t *batches; /* nbatches, in order */
} ds_info_t;

/* ---- names and errors ------------------------------------------------------- */
/* "int64", "uint64", "float64", "bool", "text", "datetime64[s]"; NULL if unknown. */
const char *ds_dtype_name(ds_dtype_t t);
/* The names above ("category" is taken for "text"); FAM_EINVAL otherwise. */
int ds_dtype_parse(const char *name, ds_dtype_t *t);
/* The famarray dtype a column of this dtype is stored as; 0 if unknown. */
fa_dtype_t ds_dtype_storage(ds_dtype_t t);
/* "base", "index", "column"; NULL if unknown. */
const char *ds_kind_name(ds_kind_t k);
const char *ds_strerror(int code);  /* as fam_strerror */
const char *ds_last_error(void);    /* this thread's last failure message */

/* ---- stores ---------------------------------------------------------------- */
#define DS_CREATE 1 /* ds_open: create the store if it does not exist */

/* Attach to store `store` (creating it with DS_CREATE; `mode` gives the
 * permission bits of what is created: region and items). FAM_ENOTFOUND if
 * there is no such store and DS_CREATE is not given; FAM_EINVAL if the
 * region exists but is not a dataset store. The store keeps `f` (not
 * owned): close the store before fam_finalize. */
int ds_open(fam_t *f, const char *store, int flags, mode_t mode, ds_store_t **out);
void ds_close(ds_store_t *s);
/* Destroy a whole store (its region and everything in it). */
int ds_destroy_store(fam_t *f, const char *store);
const char *ds_store_name(const ds_store_t *s);
/* The FAM region holding the store ("ds.<store>"): fa_open(f, this, name). */
const char *ds_store_region(const ds_store_t *s);
fam_t *ds_store_fam(const ds_store_t *s);
/* The current catalog version (0: nothing committed yet). */
int ds_version(ds_store_t *s, uint64_t *version);
/* The version of the catalog this handle read or committed last, without
 * asking FAM (0: none yet): what ds_version said at that moment. */
uint64_t ds_version_seen(const ds_store_t *s);
/* 0 if the store this handle was opened on still exists; FAM_ENOTFOUND if
 * it was destroyed since (and perhaps made again under its name: open it
 * afresh then). One request to a memory server, answered at once (a read
 * of a destroyed store's head waits for libfam's timeout). */
int ds_check(ds_store_t *s);

/* ---- reading the catalog ----------------------------------------------------- */
/* Dataset names, in creation order, from one catalog version; free with
 * ds_free_names. */
int ds_list(ds_store_t *s, char ***names, size_t *n);
void ds_free_names(char **names, size_t n);
/* The derived datasets that are behind, in creation order, from one
 * catalog version: those whose base_batches differ from the batches of
 * the base dataset at the root of their lineage (followed through at most
 * `depth` bases; a lineage that does not reach a base dataset by then, or
 * whose root is gone, is left out). Free with ds_free_names. Cheaper than
 * ds_info of every dataset: nothing is copied but the names returned. */
int ds_list_behind(ds_store_t *s, unsigned depth, char ***names, size_t *n);
/* The datasets of `name`'s family, in creation order, from one catalog
 * version: those whose lineage tops out where `name`'s does (following
 * bases up to a base dataset, or to the last one whose base is not in the
 * catalog, as after a drop). Only the names are copied: with ds_pin, then
 * ds_info of each, a family is read without copying the rest of the
 * store. FAM_ENOTFOUND if there is no `name`. Free with ds_free_names. */
int ds_list_family(ds_store_t *s, const char *name, char ***names, size_t *n);
/* One consistent read of dataset `name`. FAM_ENOTFOUND if there is none.
 * The info stays valid (its arrays are never changed once committed) until
 * the dataset is dropped. Free with ds_free_info. */
int ds_info(ds_store_t *s, const char *name, ds_info_t **out);
void ds_free_info(ds_info_t *info);
/* Hold this process's view of the catalog steady: until ds_unpin,
 * ds_info answers from the version this handle read last, without a round
 * trip to FAM each time to ask whether it changed (many lookups while
 * computing batches of one plan). Everything else (reads' checks,
 * commits, aborts, reclaims, snapshots) still reads the current version.
 * A dataset dropped meanwhile by another process may still be listed:
 * reading its batches then fails. */
void ds_pin(ds_store_t *s);
void ds_unpin(ds_store_t *s);
/* Give `dst`, another handle of this process on the same store, the
 * catalog `src` read or committed last (a copy), when it is newer than
 * dst's: dst's next read then needs no fetch and parse while the head
 * still names that version (a handle uses its catalog only then, so this
 * never makes a read stale). A pinned dst is left as it is. 0, FAM_EINVAL
 * (not one store by name) or FAM_ENOMEM. */
int ds_share_catalog(ds_store_t *dst, const ds_store_t *src);
/* A catalog handed between processes that each hold a handle on this
 * store (an MPI job's ranks): one reads it from FAM and hands it to the
 * others over the job's own channel, instead of each reading it.
 * ds_catalog_export packs the version the handle holds (with `fresh`,
 * brought current first: one read of the head, the snapshot only when it
 * changed; without, what the handle read or committed last, no request at
 * all) into *buf (malloc'd, the caller frees; buf NULL: only the version
 * and nonce naming it). ds_catalog_held says which version a handle holds
 * ({0, 0}: none). ds_catalog_import makes the handle hold the version in
 * buf, checked as it is unpacked: FAM_EINVAL when buf is not an export of
 * this store or is damaged, FAM_EBUSY when the handle is pinned; either
 * way the handle keeps what it held. An import never makes a read stale:
 * an unpinned handle still reads the head before a lookup and fetches the
 * snapshot when the head names another version. */
int ds_catalog_export(ds_store_t *s, int fresh, void **buf, size_t *len, uint64_t *version,
                      uint64_t *nonce);
void ds_catalog_held(const ds_store_t *s, uint64_t *version, uint64_t *nonce);
int ds_catalog_import(ds_store_t *s, const void *buf, size_t len);
/* One catalog version, held, to read several datasets consistently (a
 * derived dataset and its base at the same version): ds_snapshot_list and
 * ds_snapshot_info work as ds_list and ds_info on that version, whatever
 * is committed meanwhile. */
typedef struct ds_snapshot ds_snapshot_t;
int ds_snapshot(ds_store_t *s, ds_snapshot_t **out);
uint64_t ds_snapshot_version(const ds_snapshot_t *snap);
int ds_snapshot_list(const ds_snapshot_t *snap, char ***names, size_t *n);
int ds_snapshot_info(const ds_snapshot_t *snap, const char *name, ds_info_t **out);
void ds_snapshot_free(ds_snapshot_t *snap);
/* Elements [start, start + count) of column `col` of batch `batch` of the
 * dataset `info` describes, into buf (count elements of the column's
 * storage dtype). FAM_EOUTOFRANGE past the batch's rows. */
int ds_read(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col,
            uint64_t start, uint64_t count, void *buf);
/* The elements at rows[0..n) of column `col` of batch `batch`, into buf
 * (n elements of the storage dtype): an indexed read, cheaper than a
 * range when the rows are few and far apart. FAM_EOUTOFRANGE for a row
 * past the batch's end. */
int ds_gather(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col, uint64_t n,
              const uint64_t *rows, void *buf);
/* Reading in place when the store's memory server is on this host:
 * *ptr gets where row `start` of column `col` of batch `batch` is in this
 * process (storage dtype) and *run how many of the count rows from there
 * are contiguous. FAM_ENOTSUP when they are not mapped here: ds_read. */
int ds_local(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col, uint64_t start,
             uint64_t count, const void **ptr, uint64_t *run);
/* Rows [first, first + count) of the whole dataset (counted over its
 * batches in order) of column `col`, into buf: a read that may span
 * batches (head(n), a slice). Text columns give each batch's own codes. */
int ds_read_rows(ds_store_t *s, const ds_info_t *info, size_t col, uint64_t first,
                 uint64_t count, void *buf);
/* The categories of text column `col` of batch `batch`: *cats is an array
 * of *n malloc'd strings (free with ds_free_names). */
int ds_read_categories(ds_store_t *s, const ds_info_t *info, size_t batch,
                       size_t col, char ***cats, size_t *n);

/* One categorical column over all batches: the union of the batches'
 * categories, sorted bytewise (the order pandas gives string categories),
 * and for each batch b a map from its codes to positions in the union:
 * maps[b][code] for code < info->batches[b].ncat[col]. */
typedef struct ds_categories {
    size_t n;          /* categories in the union */
    char **cats;       /* n strings, sorted, distinct */
    size_t nbatches;   /* info->nbatches */
    int64_t **maps;    /* nbatches maps (NULL for a batch without categories) */
} ds_categories_t;
/* Read every batch's categories of text column `col` and unify them.
 * Free with ds_free_categories. */
int ds_unify_categories(ds_store_t *s, const ds_info_t *info, size_t col,
                        ds_categories_t **out);
void ds_free_categories(ds_categories_t *c);

/* ---- changing the catalog ---------------------------------------------------- */
/* Create base dataset `name` with these columns. If it exists with the
 * same columns (names and dtypes, in order) and kind, this is a success
 * that changes nothing; with others, FAM_EEXIST. */
int ds_create_dataset(ds_store_t *s, const char *name, size_t ncols,
                      const ds_column_def_t *cols);
/* Remove dataset `name` from the catalog, with every dataset derived from
 * it (directly or down a chain: filters, their gathered and derived
 * columns), in one commit, then free their arrays. FAM_ENOTFOUND if there
 * is none. (Lineage is by name and batch count: a derived dataset left
 * behind would look current over a dataset made again under the name.)
 * ds_txn_drop does the same within a transaction. */
int ds_drop(ds_store_t *s, const char *name);

/* Begin a batch of `rows` rows of dataset `dataset`: creates one array per
 * column (zero-filled) under names unique to the batch. Write them with
 * fa_put on ds_batch_array() (or fa_open the names from another process),
 * set each text column's categories, then ds_commit (or ds_batch_abort). */
int ds_batch_begin(ds_store_t *s, const char *dataset, uint64_t rows,
                   ds_batch_t **out);
/* A handle on a batch another process began (its arrays opened). */
int ds_batch_attach(ds_store_t *s, const char *dataset, const ds_batch_ref_t *ref,
                    ds_batch_t **out);
/* The same for columns of these dtypes, for a dataset that is not in the
 * catalog yet: an ingest into a new dataset begins its batches this way
 * and commits ds_txn_create + ds_txn_append in one transaction, so a
 * failed ingest leaves no trace, not even an empty dataset. */
int ds_batch_begin_dtypes(ds_store_t *s, size_t ncols, const ds_dtype_t *dtypes,
                          uint64_t rows, ds_batch_t **out);
int ds_batch_attach_dtypes(ds_store_t *s, size_t ncols, const ds_dtype_t *dtypes,
                           const ds_batch_ref_t *ref, ds_batch_t **out);
fa_array_t *ds_batch_array(ds_batch_t *b, size_t col); /* NULL if col is out of range */
const char *ds_batch_array_name(const ds_batch_t *b, size_t col);
const char *ds_batch_id(const ds_batch_t *b);
uint64_t ds_batch_rows(const ds_batch_t *b);
size_t ds_batch_ncols(const ds_batch_t *b);
void ds_batch_ref(const ds_batch_t *b, ds_batch_ref_t *ref);
/* Set the categories of text column `col` (n strings, each at most
 * DS_CATEGORY_MAX bytes; duplicates are allowed but pointless). Codes in
 * the column's array index this list. Once per column per batch. */
int ds_batch_set_categories(ds_batch_t *b, size_t col, size_t n,
                            const char *const *cats);
/* Forget the handle (the batch's arrays stay, committed or not). */
void ds_batch_close(ds_batch_t *b);
/* Delete the batch's arrays and categories. The handle is freed whatever
 * the outcome: FAM_EBUSY (nothing deleted) if the batch is committed; an
 * unreadable catalog, or a part that could not be deleted, is an error and
 * leaves the rest for ds_reclaim. */
int ds_batch_abort(ds_batch_t *b);

/* Append n batches to `dataset` in ONE atomic catalog change: all become
 * visible at once, after the batches already there, or none do. Checks
 * first that every batch's arrays exist with the dataset's dtypes and the
 * batch's rows (and no more columns), that every text column has its
 * categories, that no batch is committed twice (FAM_EEXIST) and that none
 * is older than DS_BATCH_LIFETIME (FAM_EINVAL). Handles stay open (close
 * them after). Never write a batch's arrays once it is committed: readers
 * rely on committed data not changing. */
int ds_commit(ds_store_t *s, const char *dataset, size_t n, ds_batch_t *const *batches);
int ds_commit_refs(ds_store_t *s, const char *dataset, size_t n,
                   const ds_batch_ref_t *refs);

/* Several changes in one atomic commit (for ingest into a new dataset,
 * and for derived datasets: create + batches + progress at once). The
 * operations are replayed on the newest catalog at commit time; the
 * commit retries on conflict until it succeeds or an operation fails
 * against the newer catalog. */
int ds_txn_begin(ds_store_t *s, ds_txn_t **out);
int ds_txn_create(ds_txn_t *t, const ds_dataset_def_t *def);
int ds_txn_append(ds_txn_t *t, const char *dataset, size_t n, const ds_batch_ref_t *refs);
/* The same for batches the caller began itself, or a process of the same
 * program did (kodiakd's ranks): each with ds_batch_begin_dtypes (or
 * ds_batch_begin) for these `ncols` dtypes, with refs[i].rows rows, all
 * written, categories set, not aborted. ds_txn_append looks every array
 * of every batch up in FAM at commit (two requests to a memory server per
 * column per batch, most of a commit's time); this one does not: the
 * commit checks that the dataset's columns then have these dtypes (it may
 * have been dropped and made again meanwhile), the batches' ages and the
 * text columns' categories, and trusts the rest. Vouching for a batch that
 * is not as described commits a dataset whose reads of it fail. */
int ds_txn_append_begun(ds_txn_t *t, const char *dataset, size_t ncols,
                        const ds_dtype_t *dtypes, size_t n, const ds_batch_ref_t *refs);
/* Record that derived dataset `dataset` has processed `base_batches`
 * batches of its base. */
int ds_txn_set_progress(ds_txn_t *t, const char *dataset, uint64_t base_batches);
/* Make the commit fail with FAM_EBUSY (no retry) unless `dataset` then has
 * exactly `nbatches` batches: two processes bringing one derived dataset
 * up to date at once leave one result. */
int ds_txn_expect_batches(ds_txn_t *t, const char *dataset, uint64_t nbatches);
int ds_txn_drop(ds_txn_t *t, const char *dataset);
/* Each commit retires the oldest catalog snapshot kept (DS_KEEP behind
 * the head) and deletes it: one or two requests to a memory server. With
 * ds_defer_cleanup(s, 1) this handle's commits leave the deletions (up to
 * 8; more are done at once) for ds_cleanup, which a server calls after it
 * has answered (kodiakd: after each reply). Meanwhile the retired snapshot
 * stays readable; if the process dies first, ds_reclaim frees it. Off by
 * default; turning it off cleans up. ds_cleanup returns how many it
 * deleted; ds_close cleans up too. */
void ds_defer_cleanup(ds_store_t *s, int on);
size_t ds_cleanup(ds_store_t *s);
/* Let t's handle answer ds_info as if t were committed, until t is
 * committed or aborted: t's operations applied to the catalog ds_info
 * would answer from now (a pinned handle's, or the current one). A caller
 * making a derived dataset from another one whose new batches t holds
 * computes it from them and commits both at once. Only ds_info is
 * answered so; everything else (reads' checks, commits, aborts,
 * reclaims, snapshots, exports) still sees what is committed. Staging
 * again after more operations shows them too. A transaction with a drop
 * is not staged (FAM_EINVAL). 0; FAM_EBUSY while the handle shows another
 * transaction; or what an operation fails with against that catalog (the
 * handle is then left as it was). */
int ds_txn_stage(ds_txn_t *t);
/* Commit and free t (whatever happens). *version (may be NULL) gets the
 * catalog version made (or the current one, when nothing changed: a
 * create of what exists alike, expectations only). */
int ds_txn_commit(ds_txn_t *t, uint64_t *version);
void ds_txn_abort(ds_txn_t *t); /* free t, change nothing */

/* ---- checking ----------------------------------------------------------------- */
#define DS_VERIFY_CODES 1 /* ds_verify: also read every text column's codes */
/* A consistency check of the current catalog against FAM: every batch of
 * every dataset has its arrays, of the catalog's dtype and rows, and
 * readable categories of the counted length; with DS_VERIFY_CODES every
 * code is -1 or below its batch's category count. 0 if all is right;
 * FAM_EIO naming the first problem; *checked (may be NULL) counts the
 * arrays checked. Run it after a crash, beside ds_reclaim. */
int ds_verify(ds_store_t *s, int flags, size_t *checked);

/* ---- cleanup ------------------------------------------------------------------ */
/* What ds_reclaim found and freed. */
typedef struct ds_reclaim_stats {
    size_t arrays;    /* batch arrays no committed batch names */
    size_t categories; /* category lists no committed batch names */
    size_t snapshots; /* old or abandoned catalog snapshots */
    size_t kept_young; /* unreferenced items left because they are younger than min_age */
} ds_reclaim_stats_t;
/* Free what a crashed writer or dropper left: items of the store's region
 * that the current catalog does not reference and that were created more
 * than min_age_seconds ago, and catalog snapshots older than the few kept
 * behind the head for slow readers (a snapshot above the head, which a
 * commit may be about to use, is kept at least 60 s whatever the age). With min_age_seconds >=
 * DS_RECLAIM_AGE it never frees a batch a live writer can still commit;
 * smaller ages are for when no writer is running. stats may be NULL. */
int ds_reclaim(ds_store_t *s, uint64_t min_age_seconds, ds_reclaim_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* kd_ds.h — what kodiakd's dataset commands share (kd_cmd_ds.c, the derived
 * datasets of kd_cmd_dsderive.c, aggregation): the store handles, and one
 * way to read "column c of batch b of dataset d" whatever d is (a base
 * dataset, a derived index dataset whose columns are gathered from its base
 * through the index, a dataset with derived columns).
 *
 * Batch b of a derived dataset always stands for batch b of the base
 * dataset at the root of its lineage: an index dataset holds, for each base
 * batch, the int64 row numbers (within that batch of its base) that pass
 * its predicate; a derived column "x" of dataset D is the dataset named
 * "D[x]" (kind column, base D) with one batch per batch of D. */
#ifndef KD_DS_H
#define KD_DS_H

#include "kd.h"

#include <kodiak/dataset.h>

/* Collective: this rank's handle on store `name` (attached on every rank,
 * not created). 0, or -1 on every rank with the error set. */
int kd_ds_store(kd_cmd *c, const char *name, ds_store_t **out);
/* After a failed libdataset call on a store: forget the handle. */
void kd_ds_store_forget(const char *name);
/* Delete the catalog snapshots this rank's commits retired (libdataset's
 * ds_defer_cleanup), after a command: rank 0 once its reply is sent. */
void kd_ds_cleanup(void);
/* Collective: every rank's handle s holds the catalog version rank 0's
 * holds (with `fresh`, rank 0 reads the head first), handed over MPI as a
 * ds_catalog_export buffer, not read from FAM by each rank. A rank whose
 * handle holds a newer version keeps it. Never fails: on any trouble a
 * rank reads for itself at its next lookup, as without it.
 * KD_DS_CATSYNC=0 in kodiakd's environment turns it off (the tests
 * compare both ways). */
void kd_ds_sync(kd_cmd *c, ds_store_t *s, bool fresh);
/* This rank's catalogs imported and exported by kd_ds_sync since start. */
void kd_ds_sync_counts(uint64_t *imports, uint64_t *exports);
/* Rank 0: the reply of ds_list, {version, datasets: [info...]}, read from
 * one catalog version; with if_not, only {version} when that version is
 * `known` (the caller has its list); with family_of (else NULL), only the
 * datasets whose lineage tops out where that dataset's does (its base, the
 * base's other derived datasets, its own). 0, or -1 with the error set. */
int kd_ds_list_result(kd_cmd *c, ds_store_t *s, const char *name, bool if_not,
                      uint64_t known, const char *family_of);

/* One column of one batch, in memory on the calling rank. */
typedef struct kd_ds_col {
    ds_dtype_t dtype; /* the column's dtype (text: int64 codes, -1 missing) */
    uint64_t n;       /* elements */
    void *data;       /* n elements of the storage dtype (malloc'd; may be NULL if n == 0) */
    char **cats;      /* text: the ncats categories the codes index (malloc'd), else NULL */
    size_t ncats;
} kd_ds_col;

/* Local (not collective; any rank, any batch): column `column` of batch
 * `batch` of dataset `dataset` as the catalog is now, into *out. The
 * column is, in this order: a column the dataset stores; the derived
 * column dataset "<dataset>[<column>]" when it has that batch; for an index
 * dataset, the column of its base (recursively) gathered through batch
 * `batch` of the index. Call kd_ds_refresh first so that derived items
 * cover the batch. 0, or -1 with the error set on this rank only (KeyError
 * for an unknown column, IndexError for a batch the dataset does not have
 * yet, RuntimeError/IOError for a damaged store): pass it to kd_agree.
 * Free with kd_ds_col_free. */
int kd_ds_read_batch(kd_cmd *c, ds_store_t *s, const char *dataset, const char *column,
                     size_t batch, kd_ds_col *out);
void kd_ds_col_free(kd_ds_col *col);
/* Collective: bring every derived dataset of the store up to date with its
 * base (in creation order, so a chain is brought current from its root),
 * each rank computing the new batches it owns (batch b: rank b % nranks).
 * *processed (may be NULL) gets the number of batches computed by this
 * call. 0, or -1 on every rank with the error set. */
int kd_ds_refresh(kd_cmd *c, ds_store_t *s, const char *store, uint64_t *processed);
/* Whether m rows spread over a span of `span` rows are read by index
 * (ds_gather) rather than by reading the span and picking them out: when
 * fewer than one in 4 of the span are wanted. KD_DSD_GATHER=span or
 * =index in kodiakd's environment forces one way (the tests compare
 * both). The derives' and the aggregations' gathers (kd_cmd_dsderive.c). */
bool kd_ds_gather_sparse(uint64_t span, uint64_t m);

/* KD_DSD_TRACE=1: the time of a phase of a dataset command, on stderr
 * (kd_cmd_dsderive.c; "[name" starts the clock) */
void kd_ds_trace(kd_cmd *c, const char *what);

/* kd_cmd_ops.c: binop's and unop's element-wise kernels on plain buffers
 * (derived columns evaluate with them). NULL, or why NumPy has no such loop. */
const char *kd_ew_binop(const char *op, kd_dtype ct, const void *x, const void *y,
                        bool y_half, void *out, int64_t n);
const char *kd_ew_unop(const char *op, kd_dtype t, const void *in, void *out, int64_t n);

/* kd_dscache.c — the rows of batches' column arrays this rank has just
 * written (and read, with KD_DS_COLCACHE=reads), kept in its memory (bounded by a share of
 * --memory-limit and charged to it, least recently used first out):
 * found by the store's region and the array's name, which carries the
 * batch id, so what is kept is what FAM holds (committed batches never
 * change). KD_DS_COLCACHE=0 in the environment turns it off. */
typedef struct kd_dsc_stats {
    uint64_t hit_rows;  /* rows read from the cache */
    uint64_t read_rows; /* rows read from FAM through it */
    uint64_t kept_rows; /* rows kept (written or read) */
    uint64_t evicted;   /* pieces evicted */
    uint64_t bytes;     /* held now */
} kd_dsc_stats;
/* as ds_read / ds_local / ds_gather, answered from the cache where it
 * holds the rows (ds_local's *ptr: valid until the next call into the
 * cache or into libdataset) */
int kd_dsc_read(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, uint64_t off,
                uint64_t m, void *dst);
int kd_dsc_local(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, uint64_t at,
                 uint64_t m, const void **ptr, uint64_t *run);
int kd_dsc_gather(ds_store_t *s, const ds_info_t *in, size_t b, size_t k, uint64_t n,
                  const uint64_t *rows, void *dst);
/* after a successful write of rows [off, off + n) (w bytes each) of the
 * batch array named `array` of store s: keep them */
void kd_dsc_wrote(ds_store_t *s, const char *array, size_t w, uint64_t off, uint64_t n,
                  const void *data);
/* batch b of `in`: its rows this rank does not hold read from FAM and kept
 * (after an ingest, the batches this rank will compute derived items of:
 * another rank wrote part of them). Nothing on any failure. */
void kd_dsc_warm(ds_store_t *s, const ds_info_t *in, size_t b);
uint64_t kd_dsc_limit(void);
void kd_dsc_get_stats(kd_dsc_stats *out);

/* kd_cmd_dsderive.c */
void kd_register_dsderive(void);

#endif

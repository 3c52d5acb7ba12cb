/* SPDX-License-Identifier: Apache-2.0 */
/* kd_sort.h — the sort engine shared by the sort, set and group-by commands
 * (kd_sort_core.c): order-preserving integer keys, a distributed stable LSD
 * radix sort (an argsort key too wide to share a word with the index moves
 * once, by exact splitters, and is sorted on the rank that holds its sorted
 * position), and the exchanges those commands need (gather and scatter by
 * global index, a contiguous run of items to the block layout).
 *
 * Every value of every dtype maps to a uint64 "key word" whose unsigned
 * order is NumPy's sort order: int64 flips the sign bit, float64 uses the
 * sign-magnitude trick with -0.0 taken as +0.0 and every NaN placed after
 * +inf (NumPy sorts NaN last), bool is 0/1. A plan subtracts each key's
 * global minimum and packs several keys into one 64-bit "stage word" when
 * their ranges fit, so the sort only looks at the bits that vary. */
#ifndef KD_SORT_H
#define KD_SORT_H

#include "kd.h"

#define KS_MAX_KEYS 64

/* One key of a sort: the rank's block of an array (n elements). */
typedef struct {
    kd_dtype t;
    const void *data;
} ks_src;

/* How the keys of a (co)sort become stage words. Stage 0 is the least
 * significant one and is sorted first (LSD); key 0 is the most significant. */
typedef struct {
    int nkeys;
    ks_src src[KS_MAX_KEYS];
    uint64_t min[KS_MAX_KEYS];     /* smallest non-NaN key word, over all ranks */
    uint64_t nan_rel[KS_MAX_KEYS]; /* word - min given to NaN: one past the max */
    bool has_nan[KS_MAX_KEYS];     /* some rank holds a NaN in this key */
    int bits[KS_MAX_KEYS];         /* width of (word - min) over all values */
    int shift[KS_MAX_KEYS];        /* bit offset of the key inside its stage word */
    int stage[KS_MAX_KEYS];        /* the stage word holding the key (-1: constant key) */
    int nstages;
    int stage_bits[KS_MAX_KEYS];   /* used bits of each stage word */
    int64_t N, n, lo;              /* global size, this rank's block [lo, lo + n) */
} ks_plan;

/* Collective: the plan for sorting rows of `nkeys` equal-size arrays
 * (key 0 most significant). Fails on every rank together. */
int ks_plan_make(kd_cmd *c, ks_plan *pl, kd_array **keys, int nkeys);
/* Same with raw blocks (all of n elements, global size N). */
int ks_plan_make_src(kd_cmd *c, ks_plan *pl, const ks_src *src, int nkeys, int64_t N);

/* Collective: sort. *idx (if idx != NULL) gets this rank's block of the
 * stable permutation (kd_alloc_bytes, n int64); words[s] (if words != NULL)
 * gets the stage words of stage s in sorted order (kd_alloc_bytes, n
 * uint64 each; the caller frees pl->nstages of them). */
int ks_run(kd_cmd *c, const ks_plan *pl, int64_t **idx, uint64_t **words);

/* Decode key j from its stage word into dtype dst (`out` holds n elements
 * of the key's dtype). NaN words give NaN; -0.0 comes back as 0.0. */
void ks_decode(const ks_plan *pl, int j, const uint64_t *stage_word, int64_t n, void *out);

/* Collective: the global positions in [lo, lo + n) ∩ [0, limit) where a new
 * run of equal rows begins (words as ks_run gives them). *starts is
 * malloc'd. */
int ks_run_starts(kd_cmd *c, const ks_plan *pl, uint64_t **words, int64_t limit,
                  int64_t **starts, int64_t *nstarts);

/* Collective: out[k] = src[idx[k]] for k < m, where src is this rank's
 * block of an N-element array of w-byte items (w = 1 or 8) and idx holds
 * global indices. check: refuse indices outside [0, N) with an IndexError
 * (on every rank). */
int ks_gather(kd_cmd *c, const void *src, size_t w, int64_t N, const int64_t *idx,
              int64_t m, void *out, bool check);
/* Collective: dst[idx[k]] = vals[k]; dst is this rank's block of N items. */
int ks_scatter(kd_cmd *c, void *dst, size_t w, int64_t N, const int64_t *idx,
               const void *vals, int64_t m);
/* Collective: this rank holds items [off, off + cnt) of an M-item array
 * (the ranks' runs tile [0, M) in rank order); move them to the block
 * layout: dst is this rank's block of M. */
int ks_to_block(kd_cmd *c, const void *src, size_t w, int64_t off, int64_t cnt, int64_t M,
                void *dst);

/* The key word of one value (for code outside the engine). */
static inline uint64_t ks_word_i64(int64_t v) { return (uint64_t)v ^ 0x8000000000000000ull; }
uint64_t ks_word_f64(double d); /* NaN: caller's business */

/* Free an array of kd_alloc_bytes blocks of n uint64. */
void ks_free_words(uint64_t **w, int k, int64_t n);

#endif

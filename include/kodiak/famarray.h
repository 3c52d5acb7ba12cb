/* SPDX-License-Identifier: Apache-2.0 */
/* famarray.h — typed one-dimensional arrays that live in FAM (libfamarray).
 *
 * A FAM array is one libfam data item in a region (interleaved regions
 * stripe it over every memory server). The item starts with a 4 KiB header
 * (magic, version, dtype, element count) followed by the elements, packed
 * little-endian. Any program that links libfam and libfamarray can open an
 * array by region and name: a C/MPI program, kodiakd's ranks, or several of
 * them at once. Nothing here is MPI-specific: each process (or rank) calls
 * these functions for the part of the work it does.
 *
 * Every function returns 0 or a negative FAM_E* code (fam.h); the message is
 * in fam_last_error(). Index arrays are checked in full before any element
 * moves: one index out of range fails the whole call and writes nothing. */
#ifndef KODIAK_FAMARRAY_H
#define KODIAK_FAMARRAY_H

#include <fam/fam.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fa_dtype {
    FA_INT64 = 1, /* int64_t */
    FA_UINT64,    /* uint64_t */
    FA_FLOAT64,   /* double */
    FA_BOOL       /* one byte, 0 or 1 */
} fa_dtype_t;

#define FA_HEADER_BYTES 4096 /* the header before element 0 */

typedef struct fa_array fa_array_t; /* an open FAM array */

/* The name ("int64", "uint64", "float64", "bool"), NULL if unknown. */
const char *fa_dtype_name(fa_dtype_t t);
/* 0 and *t, or FAM_EINVAL for an unknown name. */
int fa_dtype_parse(const char *name, fa_dtype_t *t);
/* Bytes per element: 8, 8, 8, 1; 0 if unknown. */
uint64_t fa_dtype_size(fa_dtype_t t);

/* Create array `name` of `size` elements in region `region` (which must
 * exist), zero-filled, with permission bits `mode`. FAM_EEXIST if the name
 * is taken, FAM_ENOSPACE if the region is full. */
int fa_create(fam_t *f, const char *region, const char *name, fa_dtype_t dtype,
              uint64_t size, mode_t mode, fa_array_t **out);
/* The same in region r, a descriptor the caller looked up (fam_lookup_region)
 * and keeps: one lookup for many arrays (each lookup is a request to every
 * memory server of an interleaved region). `region` is r's name. A
 * descriptor of a region destroyed since fails (famd's ids are not reused):
 * look it up again. */
int fa_create_in(fam_t *f, fam_region_t *r, const char *region, const char *name,
                 fa_dtype_t dtype, uint64_t size, mode_t mode, fa_array_t **out);
/* Open an existing array; FAM_ENOTFOUND if there is none, FAM_EINVAL if
 * the item is not a FAM array (no valid header). */
int fa_open(fam_t *f, const char *region, const char *name, fa_array_t **out);
/* Forget the handle (the array stays in FAM). */
void fa_close(fa_array_t *a);
/* Delete the array from FAM and free the handle. */
int fa_destroy(fa_array_t *a);

fa_dtype_t fa_dtype(const fa_array_t *a);
uint64_t fa_size(const fa_array_t *a);       /* elements */
const char *fa_name(const fa_array_t *a);
const char *fa_region(const fa_array_t *a);
fam_item_t *fa_item(const fa_array_t *a);    /* the underlying data item */

/* Elements [start, start + count) to or from buf (count elements). */
int fa_put(fa_array_t *a, uint64_t start, uint64_t count, const void *buf);
int fa_get(fa_array_t *a, uint64_t start, uint64_t count, void *buf);
/* Reading in place on the memory server's host: *ptr gets where element
 * `start` is in this process and *run how many of the count elements
 * from there are contiguous (a stripe's). FAM_ENOTSUP when the array's
 * pool is not mapped here: use fa_get then. */
int fa_local(fa_array_t *a, uint64_t start, uint64_t count, const void **ptr, uint64_t *run);

/* Indexed: element idx[i] <-> values[i], i < n (duplicates in a scatter:
 * the last in index order wins when one process scatters them; concurrent
 * scatters to one element leave one of the values). Done next to the memory
 * with libfam's bulk requests. */
int fa_scatter(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values);
int fa_gather(fa_array_t *a, uint64_t n, const uint64_t *idx, void *values);

/* Atomic add: element idx[i] += values[i] for every i, exact with duplicate
 * indices and with other processes adding at the same time. int64, uint64
 * and float64 only. fa_fetch_add also returns each element's value just
 * before its own update in old[i]. */
int fa_add(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values);
int fa_fetch_add(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values,
                 void *old);

/* Names of the FAM arrays in a region (items with a valid header), sorted;
 * *names is an array of *n malloc'd strings, itself malloc'd: free them
 * with fa_free_names. */
int fa_list(fam_t *f, const char *region, char ***names, size_t *n);
void fa_free_names(char **names, size_t n);

#ifdef __cplusplus
}
#endif
#endif

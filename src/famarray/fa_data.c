/* SPDX-License-Identifier: Apache-2.0 */
/* fa_data.c — moving elements of a FAM array: ranges, indexed scatter and
 * gather, atomic adds.
 *
 * Element i is at byte FA_HEADER_BYTES + i * itemsize of the data item.
 * Ranges become one libfam put or get (libfam cuts them at stripe ends and
 * keeps the pieces in flight at once). Indexed calls are checked in full
 * first, then shifted by the header's length in elements into a bounded
 * temporary and handed to libfam's bulk requests, FA_CHUNK at a time
 * (fa_internal.h says why that chunking also gives the ordering that
 * duplicate indices need). */
#include <stdlib.h>
#include <string.h>

#include "fa_internal.h"

static int check_range(const fa_array_t *a, uint64_t start, uint64_t count,
                       const void *buf, const char *what)
{
    fam_set_error(0, NULL);
    if (!a) return fam_set_error(FAM_EINVAL, "%s: NULL array", what);
    if (count && !buf) return fam_set_error(FAM_EINVAL, "%s: buffer is NULL", what);
    if (start > a->size || count > a->size - start) /* overflow-safe */
        return fam_set_error(FAM_EOUTOFRANGE, "%s of %llu elements at index %llu "
                             "is past the end of FAM array '%s' (%llu elements)",
                             what, (unsigned long long)count,
                             (unsigned long long)start, a->name,
                             (unsigned long long)a->size);
    return 0;
}

int fa_put(fa_array_t *a, uint64_t start, uint64_t count, const void *buf)
{
    int rc = check_range(a, start, count, buf, "fa_put");
    if (rc || count == 0) return rc;
    return fam_put_blocking(a->f, buf, a->item, FA_HEADER_BYTES + start * a->esize,
                            count * a->esize);
}

int fa_get(fa_array_t *a, uint64_t start, uint64_t count, void *buf)
{
    int rc = check_range(a, start, count, buf, "fa_get");
    if (rc || count == 0) return rc;
    return fam_get_blocking(a->f, buf, a->item, FA_HEADER_BYTES + start * a->esize,
                            count * a->esize);
}

int fa_local(fa_array_t *a, uint64_t start, uint64_t count, const void **ptr, uint64_t *run)
{
    int rc = check_range(a, start, count, ptr, "fa_local");
    if (rc) return rc;
    if (!run) return fam_set_error(FAM_EINVAL, "fa_local: NULL argument");
    void *p = NULL;
    uint64_t bytes = 0;
    rc = fam_local_ptr(a->f, a->item, FA_HEADER_BYTES + start * a->esize, count * a->esize,
                       &p, &bytes);
    if (rc) return rc;
    if (count && bytes < a->esize)
        return fam_set_error(FAM_ENOTSUP, "fa_local: an element of '%s' straddles a stripe",
                             a->name);
    *ptr = p;
    *run = bytes / a->esize;
    return 0;
}

/* Every index below the array's size, before anything moves. */
static int check_indices(const fa_array_t *a, uint64_t n, const uint64_t *idx,
                         const void *values, const char *what)
{
    fam_set_error(0, NULL);
    if (!a) return fam_set_error(FAM_EINVAL, "%s: NULL array", what);
    if (n && (!idx || !values))
        return fam_set_error(FAM_EINVAL, "%s: %s array is NULL", what,
                             idx ? "values" : "index");
    uint64_t size = a->size;
    for (uint64_t i = 0; i < n; i++)
        if (idx[i] >= size)
            return fam_set_error(FAM_EOUTOFRANGE, "%s: index %llu (at position "
                                 "%llu) is out of range for FAM array '%s' "
                                 "(%llu elements); nothing was written", what,
                                 (unsigned long long)idx[i],
                                 (unsigned long long)i, a->name,
                                 (unsigned long long)size);
    return 0;
}

enum xfer { X_SCATTER, X_GATHER, X_ADD };

/* The indexed work, chunk by chunk. `old` is for fetch_add (may be NULL). */
static int indexed(fa_array_t *a, enum xfer op, uint64_t n, const uint64_t *idx,
                   void *values, void *old, fam_dtype_t type)
{
    uint64_t k = n < FA_CHUNK ? n : FA_CHUNK;
    uint64_t *sh = malloc(k * sizeof *sh);
    if (!sh) return fam_set_error(FAM_ENOMEM, "out of memory");
    int rc = 0;
    uint8_t *v = values, *o = old;
    for (uint64_t at = 0; at < n && !rc; at += k) {
        uint64_t m = n - at < k ? n - at : k;
        for (uint64_t i = 0; i < m; i++) sh[i] = idx[at + i] + a->shift;
        uint8_t *vp = v + at * a->esize;
        switch (op) {
        case X_SCATTER:
            rc = fam_scatter_blocking_index(a->f, vp, a->item, m, sh, a->esize);
            break;
        case X_GATHER:
            rc = fam_gather_blocking_index(a->f, vp, a->item, m, sh, a->esize);
            break;
        case X_ADD:
            rc = fam_atomic_index(a->f, a->item, FAM_AOP_ADD, type, m, sh, vp,
                                  o ? o + at * a->esize : NULL);
            break;
        }
    }
    free(sh);
    return rc;
}

int fa_scatter(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values)
{
    int rc = check_indices(a, n, idx, values, "fa_scatter");
    if (rc || n == 0) return rc;
    return indexed(a, X_SCATTER, n, idx, (void *)values, NULL, 0);
}

int fa_gather(fa_array_t *a, uint64_t n, const uint64_t *idx, void *values)
{
    int rc = check_indices(a, n, idx, values, "fa_gather");
    if (rc || n == 0) return rc;
    return indexed(a, X_GATHER, n, idx, values, NULL, 0);
}

static int add(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values,
               void *old, const char *what)
{
    if (!a) return fam_set_error(FAM_EINVAL, "%s: NULL array", what);
    fam_dtype_t t;
    switch (a->dtype) {
    case FA_INT64: t = FAM_INT64; break;
    case FA_UINT64: t = FAM_UINT64; break;
    case FA_FLOAT64: t = FAM_DOUBLE; break;
    default:
        return fam_set_error(FAM_ENOTSUP, "%s: FAM array '%s' holds %s; atomic "
                             "add needs int64, uint64 or float64", what, a->name,
                             fa_dtype_name(a->dtype));
    }
    int rc = check_indices(a, n, idx, values, what);
    if (rc) return rc;
    if (n && old == NULL && strcmp(what, "fa_fetch_add") == 0)
        return fam_set_error(FAM_EINVAL, "fa_fetch_add: old-values array is NULL");
    if (n == 0) return 0;
    return indexed(a, X_ADD, n, idx, (void *)values, old, t);
}

int fa_add(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values)
{
    return add(a, n, idx, values, NULL, "fa_add");
}

int fa_fetch_add(fa_array_t *a, uint64_t n, const uint64_t *idx, const void *values,
                 void *old)
{
    return add(a, n, idx, values, old, "fa_fetch_add");
}

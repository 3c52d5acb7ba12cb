/* fam_bulk.c — gather, scatter and copy.
 *
 * This first version runs them from the client: one RMA per element
 * (pipelined, non-blocking) for gather/scatter, and a bounce through a
 * client buffer for copy. The arguments are fully checked first, so a bad
 * index fails the whole call before any byte moves. Moving indexed work
 * next to the memory (famd gathers locally from one request carrying the
 * whole index list) is the job of the bulk-operations issue. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fam_internal.h"

static int check_elems(fam_t *f, fam_item_t *d, const void *local, uint64_t n,
                       uint64_t esize, const char *what)
{
    fam_clear_error();
    if (!f || !d) return fam_fail(FAM_EINVAL, "%s: NULL fam_t or descriptor", what);
    if (esize == 0) return fam_fail(FAM_EINVAL, "%s: element size is 0", what);
    if (n && !local) return fam_fail(FAM_EINVAL, "%s: local buffer is NULL", what);
    if (esize > d->size)
        return fam_fail(FAM_EINVAL, "%s: element size %llu is larger than '%s' "
                        "(%llu bytes)", what, (unsigned long long)esize, d->name,
                        (unsigned long long)d->size);
    return 0;
}

/* Elements in d: valid indices are [0, count). */
static uint64_t elems_in(fam_item_t *d, uint64_t esize) { return d->size / esize; }

static int stride_check(fam_t *f, fam_item_t *d, const void *local, uint64_t n,
                        uint64_t first, uint64_t stride, uint64_t esize,
                        const char *what)
{
    int rc = check_elems(f, d, local, n, esize, what);
    if (rc || n == 0) return rc;
    uint64_t count = elems_in(d, esize);
    if (stride == 0 && n > 1)
        return fam_fail(FAM_EINVAL, "%s: stride is 0", what);
    /* last = first + (n-1)*stride, computed without overflow */
    if (first >= count || (n > 1 && (count - 1 - first) / stride < n - 1))
        return fam_fail(FAM_EOUTOFRANGE, "%s: %llu elements from %llu with "
                        "stride %llu go past the end of '%s' (%llu elements of "
                        "%llu bytes)", what, (unsigned long long)n,
                        (unsigned long long)first, (unsigned long long)stride,
                        d->name, (unsigned long long)count,
                        (unsigned long long)esize);
    return 0;
}

static int index_check(fam_t *f, fam_item_t *d, const void *local, uint64_t n,
                       const uint64_t *idx, uint64_t esize, const char *what)
{
    int rc = check_elems(f, d, local, n, esize, what);
    if (rc) return rc;
    if (n && !idx) return fam_fail(FAM_EINVAL, "%s: index array is NULL", what);
    uint64_t count = elems_in(d, esize);
    for (uint64_t i = 0; i < n; i++)
        if (idx[i] >= count)
            return fam_fail(FAM_EOUTOFRANGE, "%s: index %llu (at position %llu) "
                            "is out of range for '%s' (%llu elements)", what,
                            (unsigned long long)idx[i], (unsigned long long)i,
                            d->name, (unsigned long long)count);
    return 0;
}

/* Issue element i of a strided or indexed transfer. */
static int one(fam_t *f, int write, char *local, fam_item_t *d, uint64_t at,
               uint64_t esize)
{
    return write ? fam_put_nonblocking(f, local, d, at * esize, esize)
                 : fam_get_nonblocking(f, local, d, at * esize, esize);
}

static int strided(fam_t *f, int write, void *local, fam_item_t *d, uint64_t n,
                   uint64_t first, uint64_t stride, uint64_t esize, int blocking)
{
    const char *what = write ? "scatter" : "gather";
    int rc = stride_check(f, d, local, n, first, stride, esize, what);
    if (rc || n == 0) return rc;
    if (stride == 1 || n == 1) { /* contiguous: one transfer */
        rc = write ? fam_put_nonblocking(f, local, d, first * esize, n * esize)
                   : fam_get_nonblocking(f, local, d, first * esize, n * esize);
    } else {
        for (uint64_t i = 0; i < n && !rc; i++)
            rc = one(f, write, (char *)local + i * esize, d, first + i * stride, esize);
    }
    if (!rc && blocking) rc = fam_quiet(f);
    return rc;
}

static int indexed(fam_t *f, int write, void *local, fam_item_t *d, uint64_t n,
                   const uint64_t *idx, uint64_t esize, int blocking)
{
    const char *what = write ? "scatter" : "gather";
    int rc = index_check(f, d, local, n, idx, esize, what);
    if (rc || n == 0) return rc;
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = one(f, write, (char *)local + i * esize, d, idx[i], esize);
    if (!rc && blocking) rc = fam_quiet(f);
    return rc;
}

int fam_gather_blocking_stride(fam_t *f, void *local, fam_item_t *d, uint64_t n,
                               uint64_t first, uint64_t stride, uint64_t esize)
{ return strided(f, 0, local, d, n, first, stride, esize, 1); }
int fam_scatter_blocking_stride(fam_t *f, const void *local, fam_item_t *d,
                                uint64_t n, uint64_t first, uint64_t stride,
                                uint64_t esize)
{ return strided(f, 1, (void *)local, d, n, first, stride, esize, 1); }
int fam_gather_nonblocking_stride(fam_t *f, void *local, fam_item_t *d,
                                  uint64_t n, uint64_t first, uint64_t stride,
                                  uint64_t esize)
{ return strided(f, 0, local, d, n, first, stride, esize, 0); }
int fam_scatter_nonblocking_stride(fam_t *f, const void *local, fam_item_t *d,
                                   uint64_t n, uint64_t first, uint64_t stride,
                                   uint64_t esize)
{ return strided(f, 1, (void *)local, d, n, first, stride, esize, 0); }
int fam_gather_blocking_index(fam_t *f, void *local, fam_item_t *d, uint64_t n,
                              const uint64_t *idx, uint64_t esize)
{ return indexed(f, 0, local, d, n, idx, esize, 1); }
int fam_scatter_blocking_index(fam_t *f, const void *local, fam_item_t *d,
                               uint64_t n, const uint64_t *idx, uint64_t esize)
{ return indexed(f, 1, (void *)local, d, n, idx, esize, 1); }
int fam_gather_nonblocking_index(fam_t *f, void *local, fam_item_t *d,
                                 uint64_t n, const uint64_t *idx, uint64_t esize)
{ return indexed(f, 0, local, d, n, idx, esize, 0); }
int fam_scatter_nonblocking_index(fam_t *f, const void *local, fam_item_t *d,
                                  uint64_t n, const uint64_t *idx, uint64_t esize)
{ return indexed(f, 1, (void *)local, d, n, idx, esize, 0); }

/* ---- copy ----------------------------------------------------------------- */

/* A copy in progress (done at once in this version; the handle keeps its
 * result for fam_copy_wait). */
struct fam_copy {
    int rc;             /* result of the copy */
    char msg[256];      /* its error message */
};

int fam_copy(fam_t *f, fam_item_t *src, uint64_t src_off, fam_item_t *dst,
             uint64_t dst_off, uint64_t n, fam_copy_t **handle)
{
    fam_clear_error();
    if (!f || !src || !dst || !handle)
        return fam_fail(FAM_EINVAL, "copy: NULL argument");
    if (src_off > src->size || n > src->size - src_off)
        return fam_fail(FAM_EOUTOFRANGE, "copy of %llu bytes from offset %llu "
                        "is past the end of '%s' (%llu bytes)",
                        (unsigned long long)n, (unsigned long long)src_off,
                        src->name, (unsigned long long)src->size);
    if (dst_off > dst->size || n > dst->size - dst_off)
        return fam_fail(FAM_EOUTOFRANGE, "copy of %llu bytes to offset %llu is "
                        "past the end of '%s' (%llu bytes)",
                        (unsigned long long)n, (unsigned long long)dst_off,
                        dst->name, (unsigned long long)dst->size);
    fam_copy_t *h = calloc(1, sizeof *h);
    size_t chunk = n < (4u << 20) ? n : (4u << 20);
    char *buf = chunk ? malloc(chunk) : NULL;
    if (!h || (chunk && !buf)) {
        free(h);
        free(buf);
        return fam_fail(FAM_ENOMEM, "out of memory");
    }
    for (uint64_t at = 0; at < n && !h->rc; at += chunk) {
        uint64_t len = n - at < chunk ? n - at : chunk;
        h->rc = fam_get_blocking(f, buf, src, src_off + at, len);
        if (!h->rc) h->rc = fam_put_blocking(f, buf, dst, dst_off + at, len);
    }
    if (h->rc) snprintf(h->msg, sizeof h->msg, "%s", fam_last_error());
    free(buf);
    *handle = h;
    return 0;
}

int fam_copy_wait(fam_t *f, fam_copy_t *h)
{
    (void)f;
    fam_clear_error();
    if (!h) return fam_fail(FAM_EINVAL, "copy handle is NULL");
    int rc = h->rc ? fam_fail(h->rc, "%s", h->msg) : 0;
    free(h);
    return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* ds_batch.c — batches being written: begin (make the arrays), attach
 * (from another process), categories, abort.
 *
 * A batch's arrays are named after the batch id, "b.<id>.<col>", and its
 * categories "k.<id>.<col>" (ds_internal.h), so anyone who knows the id
 * can find them, and ds_reclaim can tell from a name alone how old an
 * uncommitted batch is. Nothing here touches the catalog: until a commit
 * names the batch, it is invisible to readers. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ds_internal.h"

#define DS_MAX_ROWS (1ull << 56) /* rows of one batch (bytes still fit in 64 bits) */

static void batch_free(ds_batch_t *b)
{
    if (!b) return;
    if (b->arrays)
        for (size_t i = 0; i < b->ncols; i++) fa_close(b->arrays[i]);
    free(b->arrays);
    free(b->dtypes);
    free(b->names);
    free(b);
}

/* A handle for columns of these dtypes (arrays not yet open). */
static int batch_of(ds_store_t *s, size_t ncols, const ds_dtype_t *dtypes, const char *id,
                    uint64_t rows, ds_batch_t **out)
{
    if (ncols < 1 || ncols > DS_MAX_COLUMNS || !dtypes)
        return fam_set_error(FAM_EINVAL, "a batch has 1 to %d columns, not %zu",
                             DS_MAX_COLUMNS, ncols);
    for (size_t i = 0; i < ncols; i++)
        if (!ds_dtype_name(dtypes[i]))
            return fam_set_error(FAM_EINVAL, "column %zu has unknown dtype %d", i,
                                 (int)dtypes[i]);
    ds_batch_t *b = calloc(1, sizeof *b);
    if (!b) return fam_set_error(FAM_ENOMEM, "out of memory");
    b->s = s;
    b->rows = rows;
    b->ncols = ncols;
    memcpy(b->id, id, DS_BATCH_ID_LEN + 1);
    b->dtypes = calloc(ncols, sizeof *b->dtypes);
    b->arrays = calloc(ncols, sizeof *b->arrays);
    b->names = calloc(ncols, sizeof *b->names);
    if (!b->dtypes || !b->arrays || !b->names) {
        batch_free(b);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < ncols; i++) {
        b->dtypes[i] = dtypes[i];
        ds_array_name(b->names[i], sizeof b->names[i], id, i);
    }
    *out = b;
    return 0;
}

/* The dtypes of `dataset`'s columns (malloc'd) from the current catalog. */
static int dataset_dtypes(ds_store_t *s, const char *dataset, ds_dtype_t **dtypes,
                          size_t *ncols)
{
    int rc = ds_check_name(dataset, DS_NAME_MAX, "dataset name");
    if (rc) return rc;
    const struct ds_cat *c;
    if ((rc = ds_cat_current(s, &c))) return rc;
    const struct ds_cset *d = ds_cat_find(c, dataset);
    if (!d)
        return fam_set_error(FAM_ENOTFOUND, "dataset store '%s' has no dataset '%s' "
                             "(create it before appending, or begin the batch with "
                             "ds_batch_begin_dtypes and create it in the same "
                             "transaction)", s->name, dataset);
    if (!(*dtypes = malloc(d->ncols * sizeof **dtypes)))
        return fam_set_error(FAM_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->ncols; i++) (*dtypes)[i] = d->cols[i].dtype;
    *ncols = d->ncols;
    return 0;
}

/* A batch's array in the store's region (ds_in_region: one region lookup
 * for every batch, not one per array). */
struct new_array {
    const char *name;
    fa_dtype_t t;
    uint64_t rows;
    fa_array_t **out;
};

static int new_array_in(ds_store_t *s, fam_region_t *r, void *arg)
{
    struct new_array *a = arg;
    return fa_create_in(s->f, r, s->region, a->name, a->t, a->rows, s->mode, a->out);
}

static int create_array(ds_store_t *s, const char *name, fa_dtype_t t, uint64_t rows,
                        fa_array_t **out)
{
    struct new_array a = {name, t, rows, out};
    return ds_in_region(s, new_array_in, &a);
}

int ds_batch_begin_dtypes(ds_store_t *s, size_t ncols, const ds_dtype_t *dtypes,
                          uint64_t rows, ds_batch_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !out) return fam_set_error(FAM_EINVAL, "ds_batch_begin: NULL argument");
    if (rows > DS_MAX_ROWS)
        return fam_set_error(FAM_EINVAL, "ds_batch_begin: %llu rows are more than a "
                             "batch may hold (2^56)", (unsigned long long)rows);
    char id[DS_BATCH_ID_LEN + 1];
    snprintf(id, sizeof id, "%08" PRIx32 "%016" PRIx64, (uint32_t)ds_now(), ds_random64());
    ds_batch_t *b;
    int rc = batch_of(s, ncols, dtypes, id, rows, &b);
    if (rc) return rc;
    for (size_t i = 0; i < b->ncols; i++) {
        rc = create_array(s, b->names[i], ds_dtype_storage(b->dtypes[i]), rows,
                          &b->arrays[i]);
        if (rc) {
            char keep[600];
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            for (size_t k = 0; k < i; k++) {
                fa_destroy(b->arrays[k]);
                b->arrays[k] = NULL;
            }
            batch_free(b);
            return fam_set_error(rc, "cannot begin a batch of %llu rows: %s",
                                 (unsigned long long)rows, keep);
        }
    }
    *out = b;
    return 0;
}

int ds_batch_begin(ds_store_t *s, const char *dataset, uint64_t rows, ds_batch_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !out) return fam_set_error(FAM_EINVAL, "ds_batch_begin: NULL argument");
    ds_dtype_t *dt;
    size_t n;
    int rc = dataset_dtypes(s, dataset, &dt, &n);
    if (rc) return rc;
    rc = ds_batch_begin_dtypes(s, n, dt, rows, out);
    free(dt);
    if (rc)
        return fam_set_error(rc, "dataset '%s': %s", dataset, fam_last_error());
    return 0;
}

int ds_batch_attach_dtypes(ds_store_t *s, size_t ncols, const ds_dtype_t *dtypes,
                           const ds_batch_ref_t *ref, ds_batch_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !ref || !out) return fam_set_error(FAM_EINVAL, "ds_batch_attach: NULL argument");
    int rc = ds_check_id(ref->id);
    if (rc) return rc;
    ds_batch_t *b;
    if ((rc = batch_of(s, ncols, dtypes, ref->id, ref->rows, &b))) return rc;
    for (size_t i = 0; i < b->ncols; i++) {
        rc = fa_open(s->f, s->region, b->names[i], &b->arrays[i]);
        if (!rc && (fa_dtype(b->arrays[i]) != ds_dtype_storage(b->dtypes[i]) ||
                    fa_size(b->arrays[i]) != ref->rows))
            rc = fam_set_error(FAM_EINVAL, "array '%s' holds %llu %s, not the %llu "
                               "%s column %zu needs", b->names[i],
                               (unsigned long long)fa_size(b->arrays[i]),
                               fa_dtype_name(fa_dtype(b->arrays[i])),
                               (unsigned long long)ref->rows,
                               fa_dtype_name(ds_dtype_storage(b->dtypes[i])), i);
        if (rc) {
            char keep[600];
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            batch_free(b);
            return fam_set_error(rc, "cannot attach to batch %s: %s", ref->id, keep);
        }
    }
    *out = b;
    return 0;
}

int ds_batch_attach(ds_store_t *s, const char *dataset, const ds_batch_ref_t *ref,
                    ds_batch_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !ref || !out) return fam_set_error(FAM_EINVAL, "ds_batch_attach: NULL argument");
    ds_dtype_t *dt;
    size_t n;
    int rc = dataset_dtypes(s, dataset, &dt, &n);
    if (rc) return rc;
    rc = ds_batch_attach_dtypes(s, n, dt, ref, out);
    free(dt);
    if (rc)
        return fam_set_error(rc, "dataset '%s': %s", dataset, fam_last_error());
    return 0;
}

fa_array_t *ds_batch_array(ds_batch_t *b, size_t col)
{
    return b && col < b->ncols ? b->arrays[col] : NULL;
}
const char *ds_batch_array_name(const ds_batch_t *b, size_t col)
{
    return b && col < b->ncols ? b->names[col] : NULL;
}
const char *ds_batch_id(const ds_batch_t *b) { return b ? b->id : NULL; }
uint64_t ds_batch_rows(const ds_batch_t *b) { return b ? b->rows : 0; }
size_t ds_batch_ncols(const ds_batch_t *b) { return b ? b->ncols : 0; }

void ds_batch_ref(const ds_batch_t *b, ds_batch_ref_t *ref)
{
    if (!b || !ref) return;
    memset(ref, 0, sizeof *ref);
    memcpy(ref->id, b->id, sizeof ref->id);
    ref->rows = b->rows;
}

int ds_batch_set_categories(ds_batch_t *b, size_t col, size_t n, const char *const *cats)
{
    fam_set_error(0, NULL);
    if (!b || (n && !cats))
        return fam_set_error(FAM_EINVAL, "ds_batch_set_categories: NULL argument");
    if (col >= b->ncols)
        return fam_set_error(FAM_EOUTOFRANGE, "ds_batch_set_categories: the batch has "
                             "%zu columns; there is no column %zu", b->ncols, col);
    if (b->dtypes[col] != DS_TEXT)
        return fam_set_error(FAM_EINVAL, "column %zu is %s, not text: it has no "
                             "categories", col, ds_dtype_name(b->dtypes[col]));
    if (n > DS_CATEGORIES_MAX / 8)
        return fam_set_error(FAM_EINVAL, "%zu categories are too many", n);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cats[i]) return fam_set_error(FAM_EINVAL, "category %zu is NULL", i);
        size_t l = strlen(cats[i]);
        if (l > DS_CATEGORY_MAX)
            return fam_set_error(FAM_EINVAL, "category %zu is %zu bytes long; the most "
                                 "is %d", i, l, DS_CATEGORY_MAX);
        bytes += l;
        if (bytes > DS_CATEGORIES_MAX)
            return fam_set_error(FAM_EINVAL, "the categories of column %zu take more "
                                 "than %u bytes", col, DS_CATEGORIES_MAX);
    }
    uint64_t size = DS_CATS_HEADER + 8 * (uint64_t)n + bytes;
    uint8_t *buf = malloc(size);
    if (!buf) return fam_set_error(FAM_ENOMEM, "out of memory");
    memset(buf, 0, DS_CATS_HEADER);
    uint8_t *offs = buf + DS_CATS_HEADER, *str = offs + 8 * n;
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(cats[i]);
        memcpy(str + at, cats[i], l);
        at += l;
        ds_put_u64(offs + 8 * i, at);
    }
    char name[64];
    ds_cats_name(name, sizeof name, b->id, col);
    ds_store_t *s = b->s;
    fam_region_t *r;
    int rc = fam_lookup_region(s->f, s->region, &r);
    fam_item_t *it = NULL;
    if (!rc) {
        rc = fam_allocate(s->f, name, size, s->mode, r, &it);
        fam_release_region(r);
    }
    if (rc == FAM_EEXIST) {
        free(buf);
        return fam_set_error(rc, "the categories of column %zu of batch %s are "
                             "already set", col, b->id);
    }
    /* the body first, the header (magic) last: a writer that dies between
     * leaves categories that nobody accepts */
    if (!rc) rc = fam_put_blocking(s->f, offs, it, DS_CATS_HEADER, size - DS_CATS_HEADER);
    if (!rc) {
        memcpy(buf, DS_CATS_MAGIC, 8);
        ds_put_u64(buf + 8, n);
        ds_put_u64(buf + 16, bytes);
        ds_put_u32(buf + 24, (uint32_t)crc32_z(0L, offs, (size_t)(size - DS_CATS_HEADER)));
        rc = fam_put_blocking(s->f, buf, it, 0, DS_CATS_HEADER);
    }
    free(buf);
    if (rc) {
        char keep[600];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        if (it) fam_deallocate(s->f, it);
        return fam_set_error(rc, "cannot store the categories of column %zu of batch "
                             "%s: %s", col, b->id, keep);
    }
    fam_release(it);
    return 0;
}

void ds_batch_close(ds_batch_t *b) { batch_free(b); }

int ds_batch_abort(ds_batch_t *b)
{
    fam_set_error(0, NULL);
    if (!b) return fam_set_error(FAM_EINVAL, "ds_batch_abort: NULL batch");
    ds_store_t *s = b->s;
    /* refuse to delete what readers may be reading; the handle is freed
     * whatever the outcome (one rule for callers: never use it again) */
    const struct ds_cat *c;
    int rc = ds_cat_current(s, &c);
    if (rc) {
        char keep[600];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        char id[DS_BATCH_ID_LEN + 1];
        memcpy(id, b->id, sizeof id);
        batch_free(b);
        return fam_set_error(rc, "batch %s was not aborted (ds_reclaim will delete it): %s",
                             id, keep);
    }
    for (size_t i = 0; i < c->nds; i++)
        for (size_t k = 0; k < c->ds[i].nb; k++)
            if (strcmp(c->ds[i].b[k].id, b->id) == 0) {
                rc = fam_set_error(FAM_EBUSY, "batch %s is committed (dataset '%s'): drop "
                                   "the dataset instead", b->id, c->ds[i].name);
                char keep[600];
                snprintf(keep, sizeof keep, "%s", fam_last_error());
                batch_free(b);
                return fam_set_error(rc, "%s", keep);
            }
    int first = 0;
    char keep[600] = "";
    for (size_t i = 0; i < b->ncols; i++) {
        if (b->arrays[i]) {
            fa_close(b->arrays[i]);
            b->arrays[i] = NULL;
        }
        int e = ds_delete_item(s, b->names[i]);
        if (!e && b->dtypes[i] == DS_TEXT) {
            char nm[64];
            ds_cats_name(nm, sizeof nm, b->id, i);
            e = ds_delete_item(s, nm);
        }
        if (e && !first) {
            first = e;
            snprintf(keep, sizeof keep, "%s", fam_last_error());
        }
    }
    char id[DS_BATCH_ID_LEN + 1];
    memcpy(id, b->id, sizeof id);
    batch_free(b);
    if (first)
        return fam_set_error(first, "batch %s was aborted but not all of it could be "
                             "deleted (ds_reclaim will): %s", id, keep);
    return 0;
}

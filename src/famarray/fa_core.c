/* SPDX-License-Identifier: Apache-2.0 */
/* fa_core.c — FAM arrays: dtypes, the header, create/open/close/destroy
 * and listing (the element moves are in fa_data.c).
 *
 * A FAM array is one libfam data item whose first 4 KiB describe it
 * (fa_internal.h). fa_create allocates the item (famd hands out new items
 * zero-filled, fam.h: "New items read as zeros", so the elements need no
 * writing) and writes the header last: until then the item is not a valid
 * array, so a creator that dies half-way leaves nothing fa_open accepts. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fa_internal.h"

const char *fa_dtype_name(fa_dtype_t t)
{
    switch (t) {
    case FA_INT64: return "int64";
    case FA_UINT64: return "uint64";
    case FA_FLOAT64: return "float64";
    case FA_BOOL: return "bool";
    default: return NULL;
    }
}

int fa_dtype_parse(const char *name, fa_dtype_t *t)
{
    static const fa_dtype_t all[] = {FA_INT64, FA_UINT64, FA_FLOAT64, FA_BOOL};
    if (!name || !t) return fam_set_error(FAM_EINVAL, "fa_dtype_parse: NULL argument");
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, fa_dtype_name(all[i])) == 0) {
            *t = all[i];
            return 0;
        }
    return fam_set_error(FAM_EINVAL, "unknown dtype '%s' (FAM arrays hold int64, "
                         "uint64, float64 or bool)", name);
}

uint64_t fa_dtype_size(fa_dtype_t t)
{
    switch (t) {
    case FA_INT64: case FA_UINT64: case FA_FLOAT64: return 8;
    case FA_BOOL: return 1;
    default: return 0;
    }
}

/* ---- the header ------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Bytes of the item holding `size` elements of `esize`; 0 if that does not
 * fit in 64 bits. */
static uint64_t item_bytes(uint64_t size, uint64_t esize)
{
    if (size > (UINT64_MAX - FA_HEADER_BYTES) / esize) return 0;
    return FA_HEADER_BYTES + size * esize;
}

static int check_names(const char *region, const char *name, const char *what)
{
    if (!region || !*region)
        return fam_set_error(FAM_EINVAL, "%s: region name is %s", what,
                             region ? "empty" : "NULL");
    if (!name || !*name)
        return fam_set_error(FAM_EINVAL, "%s: array name is %s", what,
                             name ? "empty" : "NULL");
    if (strlen(region) > FAM_NAME_MAX || strlen(name) > FAM_NAME_MAX)
        return fam_set_error(FAM_EINVAL, "%s: names are at most %d bytes", what,
                             FAM_NAME_MAX);
    return 0;
}

static fa_array_t *handle_new(fam_t *f, fam_item_t *item, const char *region,
                              const char *name, fa_dtype_t dtype, uint64_t size)
{
    fa_array_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->f = f;
    a->item = item;
    a->dtype = dtype;
    a->size = size;
    a->esize = fa_dtype_size(dtype);
    a->shift = FA_HEADER_BYTES / a->esize;
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->region, sizeof a->region, "%s", region);
    return a;
}

static int create_in(fam_t *f, fam_region_t *r, const char *region, const char *name,
                     fa_dtype_t dtype, uint64_t size, mode_t mode, fa_array_t **out);

int fa_create(fam_t *f, const char *region, const char *name, fa_dtype_t dtype,
              uint64_t size, mode_t mode, fa_array_t **out)
{
    fam_set_error(0, NULL);
    if (!f || !out) return fam_set_error(FAM_EINVAL, "fa_create: NULL argument");
    int rc = check_names(region, name, "fa_create");
    if (rc) return rc;
    fam_region_t *r;
    if ((rc = fam_lookup_region(f, region, &r))) return rc;
    rc = create_in(f, r, region, name, dtype, size, mode, out);
    fam_release_region(r);
    return rc;
}

int fa_create_in(fam_t *f, fam_region_t *r, const char *region, const char *name,
                 fa_dtype_t dtype, uint64_t size, mode_t mode, fa_array_t **out)
{
    fam_set_error(0, NULL);
    if (!f || !r || !out) return fam_set_error(FAM_EINVAL, "fa_create_in: NULL argument");
    int rc = check_names(region, name, "fa_create");
    if (rc) return rc;
    return create_in(f, r, region, name, dtype, size, mode, out);
}

/* fa_create's work once the region is known (names checked) */
static int create_in(fam_t *f, fam_region_t *r, const char *region, const char *name,
                     fa_dtype_t dtype, uint64_t size, mode_t mode, fa_array_t **out)
{
    int rc;
    uint64_t es = fa_dtype_size(dtype);
    if (!es)
        return fam_set_error(FAM_EINVAL, "fa_create: unknown dtype %d (FAM arrays "
                             "hold int64, uint64, float64 or bool)", (int)dtype);
    if (mode & ~(mode_t)0777)
        return fam_set_error(FAM_EINVAL, "fa_create: bad permission bits %o",
                             (unsigned)mode);
    uint64_t bytes = item_bytes(size, es);
    if (!bytes)
        return fam_set_error(FAM_EINVAL, "fa_create: %llu elements of %s are too "
                             "many (the size in bytes overflows 64 bits)",
                             (unsigned long long)size, fa_dtype_name(dtype));
    fam_item_t *item;
    rc = fam_allocate(f, name, bytes, mode, r, &item);
    if (rc == FAM_EEXIST)
        return fam_set_error(rc, "FAM array name '%s' is already taken in region "
                             "'%s'", name, region);
    if (rc == FAM_ENOSPACE) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        return fam_set_error(rc, "no room in region '%s' for array '%s' of %llu "
                             "%s (%llu bytes): %s", region, name,
                             (unsigned long long)size, fa_dtype_name(dtype),
                             (unsigned long long)bytes, keep);
    }
    if (rc) return rc;
    uint8_t h[FA_HEADER_USED] = {0};
    memcpy(h, FA_MAGIC, 8);
    put_u32(h + 8, FA_VERSION);
    put_u32(h + 12, (uint32_t)dtype);
    put_u64(h + 16, size);
    put_u64(h + 24, es);
    if ((rc = fam_put_blocking(f, h, item, 0, sizeof h))) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_deallocate(f, item);
        return fam_set_error(rc, "fa_create: writing the header of '%s' failed: "
                             "%s", name, keep);
    }
    fa_array_t *a = handle_new(f, item, region, name, dtype, size);
    if (!a) {
        fam_release(item);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

/* Read and check item's header: 0 with dtype and size, FAM_EINVAL if the
 * item is not a FAM array, or libfam's error. */
static int read_header(fam_t *f, fam_item_t *item, const char *region,
                       const char *name, fa_dtype_t *dtype, uint64_t *size)
{
    uint64_t bytes = fam_item_size(item);
    if (bytes < FA_HEADER_BYTES)
        return fam_set_error(FAM_EINVAL, "item '%s' in region '%s' is not a FAM "
                             "array (%llu bytes, shorter than the header)", name,
                             region, (unsigned long long)bytes);
    uint8_t h[FA_HEADER_USED];
    int rc = fam_get_blocking(f, h, item, 0, sizeof h);
    if (rc) return rc;
    if (memcmp(h, FA_MAGIC, 8) != 0)
        return fam_set_error(FAM_EINVAL, "item '%s' in region '%s' is not a FAM "
                             "array (no array header)", name, region);
    uint32_t v = get_u32(h + 8), t = get_u32(h + 12);
    uint64_t n = get_u64(h + 16), es = get_u64(h + 24);
    if (v != FA_VERSION)
        return fam_set_error(FAM_EINVAL, "FAM array '%s' in region '%s' has "
                             "layout version %u; this library reads %u", name,
                             region, v, FA_VERSION);
    if (!fa_dtype_size((fa_dtype_t)t) || es != fa_dtype_size((fa_dtype_t)t) ||
        item_bytes(n, es) != bytes)
        return fam_set_error(FAM_EINVAL, "item '%s' in region '%s' is not a FAM "
                             "array (damaged header: dtype %u, %llu elements of "
                             "%llu bytes in an item of %llu bytes)", name, region,
                             t, (unsigned long long)n, (unsigned long long)es,
                             (unsigned long long)bytes);
    *dtype = (fa_dtype_t)t;
    *size = n;
    return 0;
}

int fa_open(fam_t *f, const char *region, const char *name, fa_array_t **out)
{
    fam_set_error(0, NULL);
    if (!f || !out) return fam_set_error(FAM_EINVAL, "fa_open: NULL argument");
    int rc = check_names(region, name, "fa_open");
    if (rc) return rc;
    fam_item_t *item;
    rc = fam_lookup(f, name, region, &item);
    if (rc == FAM_ENOTFOUND) {
        /* say which is missing, the region or the array, once */
        fam_region_t *r = NULL;
        int e = fam_lookup_region(f, region, &r);
        if (e == FAM_ENOTFOUND)
            return fam_set_error(rc, "FAM array '%s' not found: there is no region '%s'",
                                 name, region);
        if (!e) fam_release_region(r);
        return fam_set_error(rc, "FAM array '%s' not found in region '%s'", name, region);
    }
    if (rc) return rc;
    fa_dtype_t t;
    uint64_t n;
    if ((rc = read_header(f, item, region, name, &t, &n))) {
        fam_release(item);
        return rc;
    }
    fa_array_t *a = handle_new(f, item, region, name, t, n);
    if (!a) {
        fam_release(item);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

void fa_close(fa_array_t *a)
{
    if (!a) return;
    fam_release(a->item);
    free(a);
}

/* The handle is freed whatever happens: after fa_destroy the caller holds
 * nothing to close. */
int fa_destroy(fa_array_t *a)
{
    fam_set_error(0, NULL);
    if (!a) return fam_set_error(FAM_EINVAL, "fa_destroy: NULL array");
    int rc = fam_deallocate(a->f, a->item); /* frees the item on success */
    if (rc) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_release(a->item);
        rc = fam_set_error(rc, "cannot delete FAM array '%s' in region '%s': %s",
                           a->name, a->region, keep);
    }
    free(a);
    return rc;
}

fa_dtype_t fa_dtype(const fa_array_t *a) { return a ? a->dtype : (fa_dtype_t)0; }
uint64_t fa_size(const fa_array_t *a) { return a ? a->size : 0; }
const char *fa_name(const fa_array_t *a) { return a ? a->name : NULL; }
const char *fa_region(const fa_array_t *a) { return a ? a->region : NULL; }
fam_item_t *fa_item(const fa_array_t *a) { return a ? a->item : NULL; }

/* ---- listing -------------------------------------------------------------- */

void fa_free_names(char **names, size_t n) { fam_free_names(names, n); }

/* Every named item of the region whose header is valid. Items we may not
 * read, and items deleted while we look, are left out; any other failure
 * (a memory server gone) fails the call. */
int fa_list(fam_t *f, const char *region, char ***names, size_t *n)
{
    fam_set_error(0, NULL);
    if (!f || !names || !n) return fam_set_error(FAM_EINVAL, "fa_list: NULL argument");
    if (!region || !*region)
        return fam_set_error(FAM_EINVAL, "fa_list: region name is %s",
                             region ? "empty" : "NULL");
    *names = NULL;
    *n = 0;
    fam_region_t *r;
    int rc = fam_lookup_region(f, region, &r);
    if (rc) return rc;
    char **all;
    size_t k;
    rc = fam_list_items(f, r, &all, &k);
    fam_release_region(r);
    if (rc) return rc;
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        fam_item_t *item;
        fa_dtype_t t;
        uint64_t sz;
        int e = fam_lookup(f, all[i], region, &item);
        if (!e) {
            e = read_header(f, item, region, all[i], &t, &sz);
            fam_release(item);
        }
        if (e == 0) {
            all[kept++] = all[i]; /* still sorted */
            continue;
        }
        free(all[i]);
        if (e == FAM_EINVAL || e == FAM_ENOTFOUND || e == FAM_EPERM ||
            e == FAM_EOUTOFRANGE)
            continue;
        for (size_t j = i + 1; j < k; j++) free(all[j]);
        fam_free_names(all, kept);
        return e;
    }
    if (kept == 0) {
        free(all);
        all = NULL;
    }
    *names = all;
    *n = kept;
    fam_set_error(0, NULL);
    return 0;
}

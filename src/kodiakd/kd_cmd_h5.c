/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_h5.c — HDF5 datasets into and out of pdarrays: read_hdf and to_hdf
 * (ak.read_hdf, pdarray.to_hdf; docs/H5FAM.md, docs/PROTOCOL.md).
 *
 * A file name "fam://REGION/NAME" is an HDF5 file kept in FAM, opened with
 * the driver "fam" (libh5fam, servers and provider from the ranks'
 * $FAM_SERVERS / $FAM_PROVIDER); any other name is a local file opened
 * with HDF5's sec2 driver on each rank's filesystem.
 *
 * read_hdf: rank 0 opens every file and learns each dataset's length and
 * type, and broadcasts them; then every rank opens the files that hold
 * part of its block and reads that part as a hyperslab straight into its
 * block (serial HDF5 per rank; read-only opens by several ranks at once
 * are fine for both drivers). Nothing travels through the client or
 * between ranks.
 *
 * to_hdf: one file (file_type "single"): rank 0 creates the file (or opens
 * it, mode "append") and the dataset with its full length and writes its
 * block; then ranks 1..p-1 in turn open it for writing and write theirs.
 * The driver "fam" lets one process hold a file for writing at a time (the
 * writer claim), and so does HDF5 for local files, hence the turns. Or one
 * file per rank ("distribute", Arkouda's default): NAME_LOCALE0000.h5 ...,
 * written by all ranks at once. On any failure the file a "truncate" wrote
 * is removed, and the dataset an "append" added is unlinked, so a file is
 * never left half-written behind a reported success. */
#define _GNU_SOURCE /* strdup */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "kd.h"
#include "kodiak/h5fam.h"

#define H5_FAM_PREFIX "fam://"
#define H5_MAX_FILES 4096    /* files in one read_hdf */
#define H5_MAX_DSETS 1024    /* datasets in one read_hdf */
#define H5_NAME_MAX 4096     /* bytes of a file or dataset name */

/* ---- HDF5 errors as Python exceptions ---------------------------------------- */

/* What HDF5's error stack said about the last failure. */
typedef struct {
    char desc[600];   /* the innermost (most specific) message */
    bool notfound;    /* some entry's minor code: object or file not found */
    bool nospace;     /* ... no space (a full region or pool) */
    bool notours;     /* ... not an HDF5 file, or a damaged one */
} h5_err;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_err *er = data;
    if (n == 0 && e->desc)
        snprintf(er->desc, sizeof er->desc, "%s", e->desc);
    if (e->min_num == H5E_NOTFOUND || (e->desc && strstr(e->desc, "No such file")))
        er->notfound = true;
    if (e->min_num == H5E_NOSPACE)
        er->nospace = true;
    if (e->min_num == H5E_NOTHDF5 || e->min_num == H5E_TRUNCATED ||
        e->min_num == H5E_BADFILE || e->min_num == H5E_CANTDECODE ||
        e->min_num == H5E_READERROR || e->min_num == H5E_CANTFILTER ||
        e->min_num == H5E_BADVALUE || e->min_num == H5E_SEEKERROR)
        er->notours = true;
    return 0;
}

/* Record the HDF5 error stack's message as the command's error, with the
 * Python exception that fits, after `what` ("read_hdf: cannot open 'f'"). */
static int h5_fail(kd_cmd *c, const char *what)
{
    h5_err er;
    memset(&er, 0, sizeof er);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &er);
    H5Eclear2(H5E_DEFAULT);
    if (!er.desc[0])
        snprintf(er.desc, sizeof er.desc, "HDF5 gave no reason");
    const char *type = "ValueError";
    if (strstr(er.desc, "no permission"))
        type = "PermissionError";
    else if (er.nospace || strstr(er.desc, "is full"))
        type = "MemoryError";
    else if (strstr(er.desc, "no connection to the memory servers"))
        type = "ConnectionError";
    else if (er.notfound && (strstr(what, "cannot open") || strstr(what, "cannot create")))
        type = "FileNotFoundError";
    else if (er.notfound)
        type = "KeyError";
    return kd_fail(c, type, "%s: %s%s", what, er.desc,
                   er.notours && !er.notfound ? " (not an HDF5 file, or a truncated or "
                   "damaged one)" : "");
}

/* ---- opening files ------------------------------------------------------------ */

static bool is_fam(const char *name)
{
    return strncmp(name, H5_FAM_PREFIX, strlen(H5_FAM_PREFIX)) == 0;
}

/* A file access property list for `name` (fam driver or sec2), and in *path
 * the name HDF5 gets. -1 with the error set. */
static hid_t h5_fapl(kd_cmd *c, const char *name, const char **path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return h5_fail(c, "cannot make a file access property list");
    if (is_fam(name)) {
        *path = name + strlen(H5_FAM_PREFIX);
        const char *servers = getenv("FAM_SERVERS");
        if (!servers || !*servers) {
            H5Pclose(fapl);
            return kd_fail(c, "RuntimeError", "%s: '%.300s' is in FAM, but kodiakd's ranks "
                           "have no FAM_SERVERS in their environment", c->cmd, name);
        }
        if (H5Pset_fapl_fam(fapl, NULL, NULL) < 0) {
            H5Pclose(fapl);
            return h5_fail(c, "cannot select the HDF5 driver 'fam'");
        }
    } else {
        *path = name;
        if (H5Pset_fapl_sec2(fapl) < 0) {
            H5Pclose(fapl);
            return h5_fail(c, "cannot select the HDF5 driver 'sec2'");
        }
    }
    return fapl;
}

/* Open `name` read-only or for writing. -1 with the error set. */
static hid_t h5_open(kd_cmd *c, const char *name, unsigned flags)
{
    const char *path;
    hid_t fapl = h5_fapl(c, name, &path);
    if (fapl < 0)
        return -1;
    char what[H5_NAME_MAX + 64];
    snprintf(what, sizeof what, "%s: cannot open '%.2000s'", c->cmd, name);
    if (!is_fam(name)) { /* the OS says it better than HDF5's stack */
        struct stat st;
        if (stat(path, &st) != 0) {
            int e = errno;
            H5Pclose(fapl);
            if (e == ENOENT || e == ENOTDIR)
                return kd_fail(c, "FileNotFoundError", "%s: no such file (a name without "
                               "fam:// is a file on kodiakd's filesystem)", what);
            return kd_fail(c, e == EACCES ? "PermissionError" : "ValueError", "%s: %s", what,
                           strerror(e));
        }
        if (!S_ISREG(st.st_mode)) {
            H5Pclose(fapl);
            return kd_fail(c, "ValueError", "%s: not a regular file (a directory, device or "
                           "pipe)", what);
        }
        if (access(path, flags == H5F_ACC_RDONLY ? R_OK : R_OK | W_OK) != 0) {
            int e = errno;
            H5Pclose(fapl);
            return kd_fail(c, e == EACCES ? "PermissionError" : "ValueError",
                           "%s: kodiakd's user (uid %u) cannot %s it: %s", what,
                           (unsigned)geteuid(), flags == H5F_ACC_RDONLY ? "read" : "write",
                           strerror(e));
        }
    }
    hid_t f = H5Fopen(path, flags, fapl);
    if (f < 0) /* before any other HDF5 call, which would clear the stack */
        h5_fail(c, what);
    H5Pclose(fapl);
    return f < 0 ? -1 : f;
}

/* ---- types ------------------------------------------------------------------- */

/* Whether an HDF5 enum is a bool as h5py writes it: FALSE = 0, TRUE = 1 on
 * a 1-byte integer. */
static bool is_bool_enum(hid_t t)
{
    if (H5Tget_nmembers(t) != 2 || H5Tget_size(t) != 1)
        return false;
    int8_t v0 = -1, v1 = -1;
    char *n0 = H5Tget_member_name(t, 0), *n1 = H5Tget_member_name(t, 1);
    bool ok = n0 && n1 && H5Tget_member_value(t, 0, &v0) >= 0 &&
              H5Tget_member_value(t, 1, &v1) >= 0 && !strcmp(n0, "FALSE") &&
              !strcmp(n1, "TRUE") && v0 == 0 && v1 == 1;
    H5free_memory(n0);
    H5free_memory(n1);
    return ok;
}

/* The pdarray dtype an HDF5 type reads as (NumPy's safe casts: any signed
 * integer and uint8..uint32 to int64, uint64 to uint64, any float to
 * float64, h5py's bool enum to bool), or -1 with a TypeError. */
static int h5_kind(kd_cmd *c, hid_t t, const char *file, const char *dset)
{
    H5T_class_t cl = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    switch (cl) {
    case H5T_INTEGER:
        if (H5Tget_sign(t) == H5T_SGN_NONE && sz >= 8)
            return sz == 8 ? KD_UINT64 : -1;
        return sz <= 8 ? KD_INT64 : -1;
    case H5T_FLOAT:
        return sz <= 8 ? KD_FLOAT64 : -1;
    case H5T_ENUM:
        if (is_bool_enum(t))
            return KD_BOOL;
        return kd_fail(c, "TypeError", "read_hdf: dataset '%.300s' of '%.300s' is an HDF5 "
                       "enum other than h5py's bool: read_hdf reads integers, floats and "
                       "bools", dset, file);
    default: {
        static const char *names[] = {"integer", "float", "time", "string", "bitfield",
                                      "opaque", "compound", "reference", "enum",
                                      "variable-length", "array"};
        const char *n = cl >= 0 && cl < (int)(sizeof names / sizeof *names) ? names[cl] : "?";
        return kd_fail(c, "TypeError", "read_hdf: dataset '%.300s' of '%.300s' holds %s "
                       "values: read_hdf reads integers, floats and bools (int64, uint64, "
                       "float64, bool; smaller ones convert as NumPy would)", dset, file, n);
    }
    }
}

/* NumPy's result dtype of two (strictTypes=False); -1: no common one. */
static int promote(int a, int b)
{
    if (a == b)
        return a;
    if (a == KD_BOOL || b == KD_BOOL)
        return -1;
    if (a == KD_FLOAT64 || b == KD_FLOAT64)
        return KD_FLOAT64;
    return KD_FLOAT64; /* int64 with uint64 */
}

/* The HDF5 memory type of a pdarray dtype (bool: the file's own type). */
static hid_t mem_type(kd_dtype t)
{
    switch (t) {
    case KD_INT64: return H5T_NATIVE_INT64;
    case KD_UINT64: return H5T_NATIVE_UINT64;
    case KD_FLOAT64: return H5T_NATIVE_DOUBLE;
    default: return H5T_NATIVE_UINT8;
    }
}

/* ---- arguments ---------------------------------------------------------------- */

/* A JSON list of strings `key` (each 1..H5_NAME_MAX bytes) -> *o, *n. */
static int str_list(kd_cmd *c, const char *key, int max, json_object **o, int *n)
{
    if (!json_object_object_get_ex(c->args, key, o) ||
        !json_object_is_type(*o, json_type_array))
        return kd_fail(c, "TypeError", "%s: '%s' must be a list of names", c->cmd, key);
    *n = (int)json_object_array_length(*o);
    if (*n < 1 || *n > max)
        return kd_fail(c, "ValueError", "%s: '%s' must name 1 to %d items, not %d", c->cmd,
                       key, max, *n);
    for (int i = 0; i < *n; i++) {
        json_object *x = json_object_array_get_idx(*o, i);
        if (!json_object_is_type(x, json_type_string) || !json_object_get_string_len(x) ||
            json_object_get_string_len(x) > H5_NAME_MAX)
            return kd_fail(c, "TypeError", "%s: '%s' must hold names of 1 to %d bytes",
                           c->cmd, key, H5_NAME_MAX);
    }
    return 0;
}

/* ---- read_hdf ------------------------------------------------------------------- */

/* What rank 0 learns and broadcasts: dataset names, and for each file and
 * dataset its length and dtype. */
typedef struct {
    int nfiles, ndsets;
    const char **files;  /* from the request (owned by it) */
    char **dsets;        /* malloc'd */
    int64_t *len;        /* [file * ndsets + dset] */
    int32_t *kind;       /* [file * ndsets + dset] kd_dtype in that file */
} h5_meta;

static void meta_free(h5_meta *m)
{
    if (m->dsets)
        for (int d = 0; d < m->ndsets; d++)
            free(m->dsets[d]);
    free(m->dsets);
    free(m->files);
    free(m->len);
    free(m->kind);
    memset(m, 0, sizeof *m);
}

/* H5Ovisit: collect the datasets' names ("group/dset", as h5py's keys). */
typedef struct { char **names; int n, cap; bool full; } visit_list;

static herr_t visit_cb(hid_t o, const char *name, const H5O_info_t *info, void *data)
{
    (void)o;
    visit_list *v = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    if (v->n == H5_MAX_DSETS) {
        v->full = true;
        return 1;
    }
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 16;
        char **p = realloc(v->names, cap * sizeof *p);
        if (!p)
            return -1;
        v->names = p;
        v->cap = cap;
    }
    if (!(v->names[v->n] = strdup(name)))
        return -1;
    v->n++;
    return 0;
}

/* Rank 0: open every file, learn the datasets. 0 or -1 (error set). */
static int meta_probe(kd_cmd *c, h5_meta *m)
{
    for (int f = 0; f < m->nfiles; f++) {
        hid_t fid = h5_open(c, m->files[f], H5F_ACC_RDONLY);
        if (fid < 0)
            return -1;
        int rc = 0;
        if (f == 0 && !m->dsets) { /* datasets=None: all of the first file's */
            visit_list v = {0};
            if (H5Ovisit2(fid, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v, H5O_INFO_BASIC) < 0)
                rc = h5_fail(c, "read_hdf: cannot list the datasets");
            else if (v.full)
                rc = kd_fail(c, "ValueError", "read_hdf: '%.300s' has more than %d datasets: "
                             "name the ones to read", m->files[0], H5_MAX_DSETS);
            else if (v.n == 0)
                rc = kd_fail(c, "ValueError", "read_hdf: '%.300s' holds no dataset",
                             m->files[0]);
            m->dsets = v.names;
            m->ndsets = v.n;
            if (!rc) {
                m->len = calloc((size_t)m->nfiles * m->ndsets, sizeof *m->len);
                m->kind = calloc((size_t)m->nfiles * m->ndsets, sizeof *m->kind);
                if (!m->len || !m->kind)
                    rc = kd_fail(c, "MemoryError", "read_hdf: out of memory");
            }
        }
        for (int d = 0; !rc && d < m->ndsets; d++) {
            const char *dn = m->dsets[d];
            char what[2 * H5_NAME_MAX];
            snprintf(what, sizeof what, "read_hdf: no dataset '%.1000s' in '%.1000s'", dn,
                     m->files[f]);
            htri_t ex = H5Lexists(fid, dn, H5P_DEFAULT);
            /* H5Lexists fails on a missing group on the way: both are a KeyError */
            if (ex <= 0) {
                H5Eclear2(H5E_DEFAULT);
                rc = kd_fail(c, "KeyError", "%s", what);
                break;
            }
            hid_t ds = H5Dopen2(fid, dn, H5P_DEFAULT);
            if (ds < 0) {
                snprintf(what, sizeof what, "read_hdf: cannot open dataset '%.1000s' of "
                         "'%.1000s'", dn, m->files[f]);
                rc = h5_fail(c, what);
                break;
            }
            hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
            int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
            hsize_t dim = 0;
            if (sp < 0 || ty < 0 || nd < 0) {
                rc = h5_fail(c, "read_hdf: cannot read a dataset's shape or type");
            } else if (nd != 1) {
                rc = kd_fail(c, "ValueError", "read_hdf: dataset '%.300s' of '%.300s' has %d "
                             "dimensions: read_hdf reads one-dimensional datasets", dn,
                             m->files[f], nd);
            } else {
                H5Sget_simple_extent_dims(sp, &dim, NULL);
                int k = h5_kind(c, ty, m->files[f], dn);
                if (k < 0 && !c->failed)
                    k = kd_fail(c, "TypeError", "read_hdf: dataset '%.300s' of '%.300s' has "
                                "a type wider than 64 bits", dn, m->files[f]);
                if (k < 0)
                    rc = -1;
                else {
                    m->len[(size_t)f * m->ndsets + d] = (int64_t)dim;
                    m->kind[(size_t)f * m->ndsets + d] = k;
                }
            }
            if (ty >= 0) H5Tclose(ty);
            if (sp >= 0) H5Sclose(sp);
            H5Dclose(ds);
        }
        if (H5Fclose(fid) < 0 && !rc)
            rc = h5_fail(c, "read_hdf: cannot close a file");
        if (rc)
            return -1;
    }
    return 0;
}

/* Rank 0's names, lengths and dtypes to every rank (after kd_agree). */
static int meta_bcast(kd_cmd *c, h5_meta *m)
{
    int64_t nd = m->ndsets;
    MPI_Bcast(&nd, 1, MPI_INT64_T, 0, c->comm);
    if (c->rank != 0) {
        if (!m->dsets) { /* datasets=None: the names come from rank 0 */
            m->ndsets = (int)nd;
            m->dsets = calloc(nd, sizeof *m->dsets);
        }
        m->len = calloc((size_t)m->nfiles * nd, sizeof *m->len);
        m->kind = calloc((size_t)m->nfiles * nd, sizeof *m->kind);
    }
    int bad = c->rank != 0 && (!m->dsets || !m->len || !m->kind);
    for (int d = 0; d < nd; d++) { /* names: length, then bytes */
        int64_t l = c->rank == 0 ? (int64_t)strlen(m->dsets[d]) : 0;
        MPI_Bcast(&l, 1, MPI_INT64_T, 0, c->comm);
        char *s = c->rank == 0 ? m->dsets[d] : malloc(l + 1);
        char dummy[1];
        MPI_Bcast(s ? s : dummy, s ? (int)l : 0, MPI_CHAR, 0, c->comm);
        if (c->rank != 0) {
            if (s) s[l] = 0;
            if (m->dsets && !m->dsets[d]) m->dsets[d] = s;
            else free(s);
            bad |= !s;
        }
    }
    int64_t cells = (int64_t)m->nfiles * nd;
    if (!bad) {
        MPI_Bcast(m->len, (int)cells, MPI_INT64_T, 0, c->comm);
        MPI_Bcast(m->kind, (int)cells, MPI_INT32_T, 0, c->comm);
    } else { /* keep the collective calls matched */
        int64_t *l = calloc(cells ? cells : 1, 8);
        MPI_Bcast(l, (int)cells, MPI_INT64_T, 0, c->comm);
        MPI_Bcast(l, (int)cells, MPI_INT32_T, 0, c->comm);
        free(l);
    }
    return kd_agree(c, bad ? kd_fail(c, "MemoryError", "read_hdf: out of memory") : 0);
}

/* This rank's part of dataset d from every file: hyperslabs into a. */
static int read_blocks(kd_cmd *c, const h5_meta *m, kd_array **arr)
{
    int64_t *base = calloc(m->ndsets, sizeof *base); /* first row of file f, per dataset */
    if (!base)
        return kd_fail(c, "MemoryError", "read_hdf: out of memory");
    int rc = 0;
    for (int f = 0; !rc && f < m->nfiles; f++) {
        hid_t fid = -1;
        for (int d = 0; !rc && d < m->ndsets; d++) {
            kd_array *a = arr[d];
            int64_t n = m->len[(size_t)f * m->ndsets + d], b = base[d];
            base[d] += n;
            int64_t lo = a->lo > b ? a->lo : b, hi = a->lo + a->n < b + n ? a->lo + a->n : b + n;
            if (lo >= hi)
                continue;
            if (fid < 0 && (fid = h5_open(c, m->files[f], H5F_ACC_RDONLY)) < 0) {
                rc = -1;
                break;
            }
            char what[2 * H5_NAME_MAX];
            snprintf(what, sizeof what, "read_hdf: cannot read rows %" PRId64 "..%" PRId64
                     " of dataset '%.1000s' of '%.1000s' (rank %d)", lo - b, hi - b,
                     m->dsets[d], m->files[f], c->rank);
            hid_t ds = H5Dopen2(fid, m->dsets[d], H5P_DEFAULT);
            hid_t fs = ds >= 0 ? H5Dget_space(ds) : -1;
            hid_t ft = ds >= 0 ? H5Dget_type(ds) : -1;
            hsize_t start = (hsize_t)(lo - b), count = (hsize_t)(hi - lo);
            hid_t ms = H5Screate_simple(1, &count, NULL);
            size_t es = kd_dtype_size(a->dtype);
            uint8_t *dst = (uint8_t *)a->data + (size_t)(lo - a->lo) * es;
            hid_t mt = -1;
            if (ft >= 0)
                mt = a->dtype == KD_BOOL ? H5Tget_native_type(ft, H5T_DIR_ASCEND)
                                         : H5Tcopy(mem_type(a->dtype));
            if (ds < 0 || fs < 0 || ms < 0 || mt < 0 ||
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
                H5Dread(ds, mt, ms, fs, H5P_DEFAULT, dst) < 0)
                rc = h5_fail(c, what);
            else if (a->dtype == KD_BOOL)
                for (hsize_t i = 0; i < count; i++)
                    dst[i] = dst[i] != 0;
            if (mt >= 0) H5Tclose(mt);
            if (ms >= 0) H5Sclose(ms);
            if (ft >= 0) H5Tclose(ft);
            if (fs >= 0) H5Sclose(fs);
            if (ds >= 0) H5Dclose(ds);
        }
        if (fid >= 0 && H5Fclose(fid) < 0 && !rc)
            rc = h5_fail(c, "read_hdf: cannot close a file");
    }
    free(base);
    return rc;
}

/* read_hdf(files, datasets?, strict_types?): {"arrays": [{"name": dataset,
 * "array": {...}}]}, in the order of datasets (or the first file's). */
static int cmd_read_hdf(kd_cmd *c)
{
    h5_meta m;
    memset(&m, 0, sizeof m);
    json_object *fo, *dso = NULL;
    bool strict = true;
    if (str_list(c, "files", H5_MAX_FILES, &fo, &m.nfiles))
        return -1;
    if (kd_has_arg(c, "strict_types") && kd_arg_bool(c, "strict_types", &strict))
        return -1;
    if (json_object_object_get_ex(c->args, "datasets", &dso) && dso &&
        str_list(c, "datasets", H5_MAX_DSETS, &dso, &m.ndsets))
        return -1;
    m.files = calloc(m.nfiles, sizeof *m.files);
    if (!m.files)
        return kd_fail(c, "MemoryError", "read_hdf: out of memory");
    for (int f = 0; f < m.nfiles; f++)
        m.files[f] = json_object_get_string(json_object_array_get_idx(fo, f));
    int rc = 0;
    if (dso) {
        m.dsets = calloc(m.ndsets, sizeof *m.dsets);
        m.len = calloc((size_t)m.nfiles * m.ndsets, sizeof *m.len);
        m.kind = calloc((size_t)m.nfiles * m.ndsets, sizeof *m.kind);
        if (!m.dsets || !m.len || !m.kind)
            rc = kd_fail(c, "MemoryError", "read_hdf: out of memory");
        for (int d = 0; !rc && d < m.ndsets; d++)
            if (!(m.dsets[d] = strdup(json_object_get_string(json_object_array_get_idx(dso, d)))))
                rc = kd_fail(c, "MemoryError", "read_hdf: out of memory");
        for (int d = 0; !rc && d < m.ndsets; d++)
            for (int e = 0; e < d; e++)
                if (!strcmp(m.dsets[d], m.dsets[e]))
                    rc = kd_fail(c, "ValueError", "read_hdf: dataset '%.300s' is named twice",
                                 m.dsets[d]);
        if (rc) {
            meta_free(&m);
            return -1;
        }
    }
    rc = c->rank == 0 ? meta_probe(c, &m) : 0;
    if (kd_agree(c, rc) || meta_bcast(c, &m)) {
        meta_free(&m);
        return -1;
    }
    /* each dataset's dtype and length over all files (the same on every rank) */
    kd_array **arr = calloc(m.ndsets, sizeof *arr);
    rc = arr ? 0 : kd_fail(c, "MemoryError", "read_hdf: out of memory");
    for (int d = 0; !rc && d < m.ndsets; d++) {
        int t = m.kind[d];
        int64_t total = 0;
        for (int f = 0; f < m.nfiles; f++) {
            int k = m.kind[(size_t)f * m.ndsets + d];
            total += m.len[(size_t)f * m.ndsets + d];
            if (k != t && strict)
                rc = kd_fail(c, "TypeError", "read_hdf: dataset '%.300s' is %s in '%.300s' "
                             "but %s in '%.300s' (strictTypes=False converts them to a "
                             "common dtype)", m.dsets[d], kd_dtype_name(t), m.files[0],
                             kd_dtype_name(k), m.files[f]);
            else if ((t = promote(t, k)) < 0)
                rc = kd_fail(c, "TypeError", "read_hdf: dataset '%.300s' is bool in some "
                             "files and numbers in others", m.dsets[d]);
            if (rc)
                break;
        }
        /* a bool read from a file that holds it as numbers (or back) has no
         * HDF5 conversion: refused above, so every file's bool is a bool */
        if (!rc && !(arr[d] = kd_new_array(c, (kd_dtype)t, total)))
            rc = -1;
    }
    if (!rc)
        rc = kd_agree(c, read_blocks(c, &m, arr));
    json_object *list = !rc && c->rank == 0 ? json_object_new_array() : NULL;
    for (int d = 0; !rc && d < m.ndsets; d++) {
        char key[32];
        snprintf(key, sizeof key, "a%d", d);
        kd_result_array(c, key, arr[d]);
        if (list) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "dataset", json_object_new_string(m.dsets[d]));
            json_object_object_add(o, "key", json_object_new_string(key));
            json_object_array_add(list, o);
        }
    }
    if (list)
        kd_result_set(c, "arrays", list);
    free(arr); /* the arrays are the command's temps until registered */
    meta_free(&m);
    return rc;
}

/* ---- to_hdf ------------------------------------------------------------------- */

/* The HDF5 file type of a pdarray dtype, as h5py writes NumPy's (bool: an
 * enum FALSE = 0, TRUE = 1 on int8). The caller closes it. */
static hid_t file_type(kd_dtype t)
{
    switch (t) {
    case KD_INT64: return H5Tcopy(H5T_STD_I64LE);
    case KD_UINT64: return H5Tcopy(H5T_STD_U64LE);
    case KD_FLOAT64: return H5Tcopy(H5T_IEEE_F64LE);
    default: {
        hid_t e = H5Tenum_create(H5T_NATIVE_INT8);
        int8_t v0 = 0, v1 = 1;
        if (e >= 0 && (H5Tenum_insert(e, "FALSE", &v0) < 0 ||
                       H5Tenum_insert(e, "TRUE", &v1) < 0)) {
            H5Tclose(e);
            return -1;
        }
        return e;
    }
    }
}

/* Create the file (truncate, or append to a missing file) or open it
 * (append). *created says which. -1 with the error set. */
static hid_t create_or_open(kd_cmd *c, const char *name, bool append, bool *created)
{
    *created = false;
    if (append) {
        bool exists = true;
        if (is_fam(name)) { /* open it if it is there; a missing file is created */
            const char *path;
            hid_t fapl = h5_fapl(c, name, &path);
            if (fapl < 0)
                return -1;
            hid_t f;
            H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDWR, fapl); } H5E_END_TRY;
            h5_err er;
            memset(&er, 0, sizeof er);
            H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &er);
            H5Pclose(fapl);
            if (f >= 0)
                return f;
            if (!er.notfound || !strstr(er.desc, "no such file"))
                return h5_open(c, name, H5F_ACC_RDWR); /* again, for its error */
            exists = false;
        } else {
            exists = access(name, F_OK) == 0;
        }
        if (exists)
            return h5_open(c, name, H5F_ACC_RDWR);
    }
    const char *path;
    hid_t fapl = h5_fapl(c, name, &path);
    if (fapl < 0)
        return -1;
    if (!is_fam(name)) { /* a missing directory, said plainly */
        char dir[H5_NAME_MAX + 1];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        struct stat st;
        if (slash && slash != dir) {
            *slash = 0;
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
                H5Pclose(fapl);
                return kd_fail(c, "FileNotFoundError", "to_hdf: cannot create '%.2000s': "
                               "directory '%.2000s' does not exist on kodiakd's filesystem",
                               name, dir);
            }
        }
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) {
        char what[H5_NAME_MAX + 64];
        snprintf(what, sizeof what, "to_hdf: cannot create '%.2000s'", name);
        h5_fail(c, what);
        H5Pclose(fapl);
        return -1;
    }
    H5Pclose(fapl);
    *created = true;
    return f;
}

/* Write a's block (this rank's rows) into dataset ds of an open file. */
static int write_block(kd_cmd *c, hid_t ds, kd_array *a, const char *what)
{
    if (a->n == 0)
        return 0;
    hsize_t start = (hsize_t)a->lo, count = (hsize_t)a->n;
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, &count, NULL);
    hid_t mt = a->dtype == KD_BOOL ? file_type(KD_BOOL) : H5Tcopy(mem_type(a->dtype));
    int rc = 0;
    if (fs < 0 || ms < 0 || mt < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
        H5Dwrite(ds, mt, ms, fs, H5P_DEFAULT, a->data) < 0)
        rc = h5_fail(c, what);
    if (mt >= 0) H5Tclose(mt);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

/* Create dataset `dset` of a's length in open file f (groups on the way
 * too); refuse one that exists. */
static hid_t create_dset(kd_cmd *c, hid_t f, const char *name, const char *dset, kd_array *a)
{
    htri_t ex; /* fails for a group missing on the way: created below */
    H5E_BEGIN_TRY { ex = H5Lexists(f, dset, H5P_DEFAULT); } H5E_END_TRY;
    if (ex > 0) {
        kd_fail(c, "ValueError", "to_hdf: '%.300s' already has a dataset '%.300s' "
                "(mode='append' adds a new one; mode='truncate' replaces the file)",
                name, dset);
        return -1;
    }
    hsize_t dim = (hsize_t)a->size;
    hid_t sp = H5Screate_simple(1, &dim, NULL), ty = file_type(a->dtype);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t ds = -1;
    if (sp >= 0 && ty >= 0 && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0)
        ds = H5Dcreate2(f, dset, ty, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) {
        char what[2 * H5_NAME_MAX];
        snprintf(what, sizeof what, "to_hdf: cannot create dataset '%.1000s' in '%.1000s'",
                 dset, name);
        h5_fail(c, what);
    }
    if (lcpl >= 0) H5Pclose(lcpl);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    return ds;
}

/* Undo a failed write: remove the file this command created, or unlink
 * the dataset it added to an existing one (its bytes stay unreachable in
 * the file, as after any HDF5 unlink). Best effort. */
static void undo(const char *name, const char *dset, bool created)
{
    H5E_BEGIN_TRY {
        if (created) {
            if (is_fam(name))
                h5fam_remove(H5P_DEFAULT, name + strlen(H5_FAM_PREFIX), 0);
            else
                unlink(name);
        } else {
            const char *path;
            kd_cmd dummy;
            memset(&dummy, 0, sizeof dummy);
            hid_t fapl = h5_fapl(&dummy, name, &path);
            hid_t f = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDWR, fapl) : -1;
            if (f >= 0) {
                H5Ldelete(f, dset, H5P_DEFAULT);
                H5Fclose(f);
            }
            if (fapl >= 0) H5Pclose(fapl);
        }
    } H5E_END_TRY;
}

/* One file written by every rank in turn; 0 on every rank or -1 on every
 * rank (and nothing of it left). */
static int write_single(kd_cmd *c, kd_array *a, const char *name, const char *dset,
                        bool append)
{
    char what[2 * H5_NAME_MAX];
    snprintf(what, sizeof what, "to_hdf: cannot write dataset '%.1000s' of '%.1000s'", dset,
             name);
    bool created = false;
    int rc = 0;
    if (c->rank == 0) {
        hid_t f = create_or_open(c, name, append, &created);
        hid_t ds = f >= 0 ? create_dset(c, f, name, dset, a) : -1;
        if (f < 0 || ds < 0)
            rc = -1;
        else
            rc = write_block(c, ds, a, what);
        if (ds >= 0 && H5Dclose(ds) < 0 && !rc)
            rc = h5_fail(c, what);
        if (f >= 0 && H5Fclose(f) < 0 && !rc)
            rc = h5_fail(c, what);
        if (rc && (ds >= 0 || created))
            undo(name, dset, created); /* take out what this call made */
    }
    int made = created;
    MPI_Bcast(&made, 1, MPI_INT, 0, c->comm);
    if (kd_agree(c, rc))
        return -1;
    for (int r = 1; r < c->nranks; r++) {
        rc = 0;
        if (c->rank == r && a->n > 0) {
            hid_t f = h5_open(c, name, H5F_ACC_RDWR);
            hid_t ds = f >= 0 ? H5Dopen2(f, dset, H5P_DEFAULT) : -1;
            if (f >= 0 && ds < 0)
                rc = h5_fail(c, what);
            else if (f < 0)
                rc = -1;
            else
                rc = write_block(c, ds, a, what);
            if (ds >= 0 && H5Dclose(ds) < 0 && !rc)
                rc = h5_fail(c, what);
            if (f >= 0 && H5Fclose(f) < 0 && !rc)
                rc = h5_fail(c, what);
        }
        /* The undo is the failing turn's rank's: after a failed write the
         * driver leaves that process's writer claim on the file (readers
         * refuse it as unfinished), and only that process may take it
         * again to remove the file or unlink the dataset. */
        if (kd_agree(c, rc)) {
            if (c->rank == r)
                undo(name, dset, made);
            kd_quiet_barrier(c->comm);
            return -1;
        }
    }
    return 0;
}

/* NAME.EXT -> NAME_LOCALE0003.EXT (Arkouda's names for file_type "distribute"). */
static int locale_name(kd_cmd *c, const char *name, int rank, char *out, size_t len)
{
    const char *slash = strrchr(name, '/'), *dot = strrchr(name, '.');
    if (dot && slash && dot < slash)
        dot = NULL;
    size_t stem = dot ? (size_t)(dot - name) : strlen(name);
    int n = snprintf(out, len, "%.*s_LOCALE%04d%s", (int)stem, name, rank, dot ? dot : "");
    if (n < 0 || (size_t)n >= len)
        return kd_fail(c, "ValueError", "to_hdf: file name '%.300s' is too long", name);
    return 0;
}

/* One file per rank, all ranks at once: each writes its block as the whole
 * dataset of its own file (an empty one for an empty block). */
static int write_distributed(kd_cmd *c, kd_array *a, const char *name, const char *dset,
                             bool append)
{
    char mine[H5_NAME_MAX + 32];
    if (locale_name(c, name, c->rank, mine, sizeof mine))
        return -1;
    char what[2 * H5_NAME_MAX];
    snprintf(what, sizeof what, "to_hdf: cannot write dataset '%.1000s' of '%.1000s'", dset,
             mine);
    bool created = false;
    kd_array part = *a; /* this rank's block as a whole array */
    part.size = a->n;
    part.lo = 0;
    hid_t f = create_or_open(c, mine, append, &created);
    hid_t ds = f >= 0 ? create_dset(c, f, mine, dset, &part) : -1;
    int rc = f < 0 || ds < 0 ? -1 : write_block(c, ds, &part, what);
    if (ds >= 0 && H5Dclose(ds) < 0 && !rc)
        rc = h5_fail(c, what);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = h5_fail(c, what);
    bool wrote = ds >= 0;
    if (kd_agree(c, rc)) {
        if (wrote || created)
            undo(mine, dset, created);
        return -1;
    }
    return 0;
}

/* to_hdf(array, file, dataset, mode: "truncate"|"append", file_type:
 * "single"|"distribute"): {"files": [names written]} */
static int cmd_to_hdf(kd_cmd *c)
{
    kd_array *a;
    const char *name, *dset, *mode = "truncate", *ftype = "single";
    if (kd_arg_array(c, "array", &a) || kd_arg_str(c, "file", &name) ||
        kd_arg_str(c, "dataset", &dset))
        return -1;
    if (kd_has_arg(c, "mode") && kd_arg_str(c, "mode", &mode))
        return -1;
    if (kd_has_arg(c, "file_type") && kd_arg_str(c, "file_type", &ftype))
        return -1;
    if (!*name || strlen(name) > H5_NAME_MAX)
        return kd_fail(c, "ValueError", "to_hdf: a file name has 1 to %d bytes", H5_NAME_MAX);
    if (!*dset || strlen(dset) > H5_NAME_MAX)
        return kd_fail(c, "ValueError", "to_hdf: a dataset name has 1 to %d bytes",
                       H5_NAME_MAX);
    bool append = !strcmp(mode, "append");
    if (!append && strcmp(mode, "truncate"))
        return kd_fail(c, "ValueError", "to_hdf: mode must be 'truncate' or 'append', not "
                       "'%.100s'", mode);
    bool single = !strcmp(ftype, "single");
    if (!single && strcmp(ftype, "distribute"))
        return kd_fail(c, "ValueError", "to_hdf: file_type must be 'single' or "
                       "'distribute', not '%.100s'", ftype);
    if (single ? write_single(c, a, name, dset, append)
               : write_distributed(c, a, name, dset, append))
        return -1;
    json_object *files = c->rank == 0 ? json_object_new_array() : NULL;
    for (int r = 0; files && r < (single ? 1 : c->nranks); r++) {
        char nm[H5_NAME_MAX + 32];
        if (single)
            snprintf(nm, sizeof nm, "%s", name);
        else
            locale_name(c, name, r, nm, sizeof nm);
        json_object_array_add(files, json_object_new_string(nm));
    }
    kd_result_set(c, "files", files);
    return 0;
}

void kd_register_h5(void)
{
    /* HDF5 prints its error stack to stderr by default: kodiakd turns each
     * failure into the reply's error instead (h5_fail) */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    kd_register("read_hdf", cmd_read_hdf);
    kd_register("to_hdf", cmd_to_hdf);
}

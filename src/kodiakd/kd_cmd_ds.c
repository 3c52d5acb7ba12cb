/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_ds.c — the FAM dataset store in kodiakd (libdataset): attach to
 * stores, list and describe their datasets, read columns and batches into
 * pdarrays, and ingest CSV files and pdarrays as new batches.
 *
 * Every rank has its own store handles (on its own libfam connection, the
 * one kd_cmd_fam.c opens), kept in a small table by store name. Catalog
 * reads that answer the client (list, info) are made by rank 0; a read of
 * column data is made by every rank for the rows of its own block of the
 * result (the batches that block overlaps), at the catalog version rank 0
 * read: rank 0 broadcasts how many batches it saw and the id of the last,
 * and every rank uses that prefix of its own (equal or newer) catalog, which
 * holds the same batches because committed batches never change and
 * appends only add at the end (a drop and re-create in between is seen and
 * refused).
 *
 * An ingest is one open "ingest" (a token) on the server: ds_ingest_begin,
 * then any number of ds_ingest_csv (files) and ds_ingest_arrays (pdarrays)
 * that each write uncommitted batches, then ds_ingest_commit, which makes
 * every batch of the ingest visible in ONE catalog commit (ds_txn: create
 * the dataset if needed, append), or ds_ingest_abort. For each batch rank 0
 * begins it (ds_batch_begin_dtypes), broadcasts its id, the other ranks
 * attach, and every rank writes its own rows into the batch's FAM arrays.
 * A failure anywhere aborts the whole ingest (its batches are deleted).
 * The server holds at most KD_DS_INGESTS open ingests and
 * DS_MAX_COMMIT_BATCHES uncommitted batches over all of them; a client that
 * disappears leaves its ingest open until a new ingest needs the slot (it
 * is aborted once idle for KD_DS_IDLE seconds) or kodiakd stops; a kodiakd
 * that is killed leaves uncommitted batches that ds_reclaim frees.
 *
 * Text columns are stored per batch with only the categories the batch
 * uses (codes renumbered), so a batch's category list never holds a whole
 * file's; a read unifies the categories of the batches it covers
 * (ds_unify_categories), sorted as pandas sorts them.
 *
 * Commands (docs/PROTOCOL.md):
 *   ds_open          {store, create, mode?}          -> {store, version, datasets}
 *   ds_list          {store}                         -> {version, datasets: [...]}
 *   ds_info          {store, dataset}                -> {name, kind, rows, columns, batches...}
 *   ds_drop          {store, dataset}
 *   ds_read          {store, dataset, columns?, start?, stop?} -> columns as read_csv's,
 *                                                       rows, version, batches, dataset_kind
 *   ds_ingest_begin  {store, dataset}                -> {token, exists, columns}
 *   ds_ingest_csv    {token, files, batch_rows, dtypes?, usecols?, parse_dates?,
 *                     on_bad_lines?}                 -> {rows, batches, skipped, columns}
 *   ds_ingest_arrays {token, batch_rows, columns: [{name, array, dtype, ncat?}]}
 *                     + category frames              -> {rows, batches, columns}
 *   ds_ingest_commit {token}                         -> {version, rows, batches}
 *   ds_ingest_abort  {token}
 *   ds_reclaim       {store, min_age}                -> {arrays, categories, snapshots, kept_young}
 *   ds_verify        {store, codes}                  -> {checked}
 *   ds_destroy       {store} */
#define _GNU_SOURCE
#include "kd.h"
#include "kd_csv.h"
#include "kd_ds.h"

#include <fam/fam.h>
#include <kodiak/dataset.h>
#include <kodiak/famarray.h>

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KD_DS_STORES 16     /* store handles a rank keeps open */
#define KD_DS_INGESTS 16    /* ingests open at once on one server */
#define KD_DS_IDLE 600      /* seconds before an open ingest may be taken over */
#define KD_DS_CHUNK (1 << 20) /* elements per fa_put / ds_read call */
#define KD_DS_BATCH_DEFAULT (1 << 20) /* batch_rows when not given */
#define KD_DS_MODE 0644     /* store items: the owner writes, others may read */

/* ---- store handles ---------------------------------------------------------------------- */

/* One attached store of this rank. */
typedef struct {
    char name[DS_STORE_NAME_MAX + 1]; /* the store's name */
    ds_store_t *s;                    /* NULL: free slot */
    uint64_t used;                    /* tick of the last use (eviction) */
} ds_slot;

static ds_slot slots[KD_DS_STORES];
static uint64_t slot_tick;

/* One open ingest. Identical on every rank (commands run everywhere in
 * the same order), except the batch handles, which only rank 0 keeps. */
typedef struct {
    uint64_t token;              /* 0: free slot */
    char store[DS_STORE_NAME_MAX + 1];
    char dataset[DS_NAME_MAX + 1];
    bool exists;                 /* the dataset existed when the ingest began */
    size_t ncols;                /* 0 until the schema is known */
    char **names;                /* ncols column names */
    ds_dtype_t *dtypes;          /* ncols dtypes */
    size_t nb, cap;              /* batches written; entries allocated */
    ds_batch_ref_t *refs;        /* nb batches, in order */
    ds_batch_t **handles;        /* rank 0: nb open handles (for commit/abort) */
    ds_store_t *s;               /* this ingest's own handle on the store (every rank):
                                  * its batches are begun, written and committed
                                  * through it, so a store closed or opened afresh
                                  * for other commands meanwhile never takes the
                                  * handles' store away, and a store destroyed and
                                  * made again under the ingest fails its commit */
    int64_t rows;                /* rows written */
    double last_used;            /* rank 0's clock at the last command */
} ds_ingest;

static ds_ingest ingests[KD_DS_INGESTS];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The slot holding store `name`, or NULL. */
static ds_slot *slot_of(const char *name)
{
    for (int i = 0; i < KD_DS_STORES; i++)
        if (slots[i].s && strcmp(slots[i].name, name) == 0)
            return &slots[i];
    return NULL;
}

static void slot_close(ds_slot *sl)
{
    ds_close(sl->s);
    sl->s = NULL;
    sl->name[0] = '\0';
}

static void ingest_free(ds_ingest *g, bool abort)
{
    /* a store destroyed meanwhile took the batches with it (and reading
     * its catalog to abort them would wait for libfam's timeout) */
    if (abort && g->nb && g->s && ds_check(g->s) == FAM_ENOTFOUND)
        abort = false;
    for (size_t i = 0; i < g->nb; i++)
        if (g->handles && g->handles[i]) {
            /* ds_batch_abort frees the handle whatever it returns (on an
             * error, what it could not delete is left for ds_reclaim) */
            if (!abort)
                ds_batch_close(g->handles[i]);
            else if (ds_batch_abort(g->handles[i]) < 0)
                fprintf(stderr, "kodiakd: abort of uncommitted batch %s: %s\n", g->refs[i].id,
                        ds_last_error());
        }
    for (size_t i = 0; g->names && i < g->ncols; i++)
        free(g->names[i]);
    free(g->names);
    free(g->dtypes);
    free(g->refs);
    free(g->handles);
    ds_close(g->s);
    memset(g, 0, sizeof *g);
}

/* Before this rank's libfam connection closes (a reconnect, or exit):
 * close every handle opened through it. Open ingests are forgotten (their
 * batches, never committed, are left for ds_reclaim). */
void kd_ds_reset(void)
{
    for (int i = 0; i < KD_DS_INGESTS; i++)
        if (ingests[i].token)
            ingest_free(&ingests[i], false);
    for (int i = 0; i < KD_DS_STORES; i++)
        if (slots[i].s)
            slot_close(&slots[i]);
}

/* At kodiakd's stop: abort the open ingests (their batches are deleted
 * now instead of waiting for ds_reclaim), then close everything. Rank 0
 * calls it as soon as its front end ends (kd_main.c): mpirun kills the
 * ranks one second after its SIGTERM, so what is not deleted by then is
 * left for ds_reclaim. Called again by kd_fam_shutdown: a no-op then. */
void kd_ds_shutdown(void)
{
    size_t n = 0;
    for (int i = 0; i < KD_DS_INGESTS; i++)
        if (ingests[i].token) {
            for (size_t k = 0; ingests[i].handles && k < ingests[i].nb; k++)
                n += ingests[i].handles[k] != NULL;
            ingest_free(&ingests[i], true);
        }
    if (n)
        fprintf(stderr, "kodiakd: stopping: deleted the %zu uncommitted batches of open "
                "ingests\n", n);
    kd_ds_reset();
}


/* A libdataset error as the Python exception the client raises. */
static int ds_fail(kd_cmd *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ds_fail(kd_cmd *c, int rc, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kd_fam_error(c, rc, what);
}

static int store_name_arg(kd_cmd *c, const char **name)
{
    if (kd_arg_str(c, "store", name))
        return -1;
    size_t n = strlen(*name);
    if (n == 0 || n > DS_STORE_NAME_MAX || strspn(*name, "abcdefghijklmnopqrstuvwxyz"
                                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n)
        return kd_fail(c, "ValueError", "%s: a store name has 1 to %d letters, digits, '_', "
                       "'-' or '.', not '%.80s'", c->cmd, DS_STORE_NAME_MAX, *name);
    return 0;
}

static int dataset_arg(kd_cmd *c, const char *key, const char **name)
{
    if (kd_arg_str(c, key, name))
        return -1;
    size_t n = strlen(*name);
    if (n == 0 || n > DS_NAME_MAX)
        return kd_fail(c, "ValueError", "%s: a dataset name has 1 to %d bytes, not %zu",
                       c->cmd, DS_NAME_MAX, n);
    return 0;
}

/* This rank's handle on store `name`, opened if needed (not collective). */
static int store_local(kd_cmd *c, fam_t *f, const char *name, int flags, mode_t mode,
                       ds_store_t **out)
{
    ds_slot *have = slot_of(name);
    if (have) {
        have->used = ++slot_tick;
        *out = have->s;
        return 0;
    }
    ds_store_t *s;
    int rc = ds_open(f, name, flags, mode, &s);
    if (rc == FAM_ENOTFOUND)
        return kd_fail(c, "KeyError", "no dataset store '%.80s' (ak.DatasetStore(name) "
                       "creates one): %s", name, ds_last_error());
    if (rc)
        return ds_fail(c, rc, "cannot open dataset store '%.80s'", name);
    ds_slot *sl = &slots[0];
    for (int i = 0; i < KD_DS_STORES; i++) {
        if (!slots[i].s) {
            sl = &slots[i];
            break;
        }
        if (slots[i].used < sl->used)
            sl = &slots[i];
    }
    if (sl->s)
        slot_close(sl);
    /* a commit's deletion of the snapshot it retires waits for
     * kd_ds_cleanup, after the reply */
    ds_defer_cleanup(s, 1);
    snprintf(sl->name, sizeof sl->name, "%s", name);
    sl->s = s;
    sl->used = ++slot_tick;
    *out = s;
    return 0;
}

void kd_ds_cleanup(void)
{
    for (int i = 0; i < KD_DS_STORES; i++)
        if (slots[i].s)
            ds_cleanup(slots[i].s);
}

/* After a failed libdataset call on a store: drop the handle, so the next
 * command opens the store afresh (it may have been destroyed and made
 * again by another program). */
static void store_forget(const char *name)
{
    ds_slot *sl = slot_of(name);
    if (sl)
        slot_close(sl);
}

/* Collective: store `name` attached on every rank (created by rank 0 first
 * when `create`). */
static int get_store(kd_cmd *c, const char *name, bool create, mode_t mode, ds_store_t **out)
{
    fam_t *f = kd_fam_connect(c);
    if (!f)
        return -1;
    *out = NULL;
    /* a store destroyed since (and perhaps made again) by another program:
     * the head item of rank 0's handle is gone; every rank opens it
     * afresh. One request to famd on rank 0 and a broadcast per command
     * (a request on every rank made the commands of 2 ranks slower). */
    /* Once per command: ds_agg attaches again after bringing derived
     * datasets current, and asking famd again there cost 0.1-0.2 ms of
     * each update (the same decision on every rank: the name is theirs) */
    if (strcmp(c->ds_checked, name) != 0) {
        ds_slot *have = c->rank == 0 ? slot_of(name) : NULL;
        int gone = have && ds_check(have->s) == FAM_ENOTFOUND;
        if (c->nranks > 1)
            MPI_Bcast(&gone, 1, MPI_INT, 0, c->comm);
        if (gone)
            store_forget(name);
    }
    if (create) {
        int rc = c->rank == 0 ? store_local(c, f, name, DS_CREATE, mode, out) : 0;
        if (kd_agree(c, rc))
            return -1;
    }
    if (kd_agree(c, *out ? 0 : store_local(c, f, name, 0, mode, out)))
        return -1;
    kd_ds_sync(c, *out, false); /* rank 0's latest commit, if the others lack it */
    snprintf(c->ds_checked, sizeof c->ds_checked, "%s", name);
    return 0;
}

/* ---- the catalog handed from rank 0 to the others ------------------------------------ */

/* Why: after rank 0 commits (an ingest, a derived dataset's new batches)
 * every other rank's next lookup found the head moved and fetched and
 * parsed the new snapshot itself, 1-2 ms on the critical path of each
 * command of 2 ranks (bench/ds_update_bench.py --trace). A packed catalog
 * over MPI is copied, not parsed, and asks nothing of famd. */
static uint64_t sync_imports, sync_exports;

static bool sync_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("KD_DS_CATSYNC");
        on = !(e && !strcmp(e, "0"));
    }
    return on;
}

void kd_ds_sync_counts(uint64_t *imports, uint64_t *exports)
{
    *imports = sync_imports;
    *exports = sync_exports;
}

void kd_ds_sync(kd_cmd *c, ds_store_t *s, bool fresh)
{
    if (c->nranks < 2 || !sync_on())
        return;
    uint64_t h[3] = {0, 0, 1}; /* version, nonce, 1: rank 0 cannot say */
    if (c->rank == 0 && s && ds_catalog_export(s, fresh, NULL, NULL, &h[0], &h[1]) == 0)
        h[2] = 0;
    MPI_Bcast(h, 3, MPI_UINT64_T, 0, c->comm);
    if (h[2])
        return;
    uint64_t v = 0, n = 0;
    ds_catalog_held(s, &v, &n);
    int need = c->rank != 0 && s && (v != h[0] || n != h[1]) && v <= h[0], any = 0;
    MPI_Allreduce(&need, &any, 1, MPI_INT, MPI_MAX, c->comm);
    if (!any)
        return;
    void *buf = NULL;
    size_t len = 0;
    uint64_t size = UINT64_MAX; /* UINT64_MAX: rank 0 has no buffer to give */
    if (c->rank == 0 && ds_catalog_export(s, 0, &buf, &len, &v, &n) == 0 && v == h[0] &&
        n == h[1] && len <= INT_MAX)
        size = len;
    MPI_Bcast(&size, 1, MPI_UINT64_T, 0, c->comm);
    if (size == UINT64_MAX) {
        free(buf);
        return;
    }
    if (c->rank != 0)
        buf = malloc(size ? size : 1);
    int ok = buf != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->comm);
    if (all) {
        MPI_Bcast(buf, (int)size, MPI_BYTE, 0, c->comm);
        if (c->rank == 0)
            sync_exports++;
        else if (need && ds_catalog_import(s, buf, size) == 0)
            sync_imports++;
    }
    free(buf);
}

/* kd_ds.h: the handles and errors for the other dataset command files */
int kd_ds_store(kd_cmd *c, const char *name, ds_store_t **out)
{
    return get_store(c, name, false, KD_DS_MODE, out);
}

void kd_ds_store_forget(const char *name)
{
    store_forget(name);
}

int kd_ds_fail(kd_cmd *c, int rc, const char *what)
{
    return ds_fail(c, rc, "%s", what);
}

/* ---- JSON between ranks --------------------------------------------------------------- */

/* Rank 0's object (NULL elsewhere) on every rank; the caller owns it. */
static json_object *bcast_json(kd_cmd *c, json_object *o)
{
    const char *s = c->rank == 0 ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)
                                 : NULL;
    long long n = s ? (long long)strlen(s) : 0;
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, c->comm);
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        abort(); /* a few KiB: nothing sane to do */
    if (c->rank == 0)
        memcpy(buf, s, (size_t)n);
    MPI_Bcast(buf, (int)n, MPI_CHAR, 0, c->comm);
    buf[n] = '\0';
    json_object *r = c->rank == 0 ? json_object_get(o) : json_tokener_parse(buf);
    free(buf);
    return r;
}

static json_object *columns_json(size_t n, char *const *names, const ds_dtype_t *dt)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(names[i]));
        json_object_object_add(o, "dtype", json_object_new_string(ds_dtype_name(dt[i])));
        json_object_array_add(a, o);
    }
    return a;
}

static json_object *info_json(const ds_info_t *in)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(in->name));
    json_object_object_add(o, "kind", json_object_new_string(ds_kind_name(in->kind)));
    json_object_object_add(o, "base", json_object_new_string(in->base));
    json_object_object_add(o, "expr", json_object_new_string(in->expr));
    json_object_object_add(o, "base_batches", json_object_new_int64((int64_t)in->base_batches));
    json_object_object_add(o, "version", json_object_new_int64((int64_t)in->version));
    json_object_object_add(o, "rows", json_object_new_int64((int64_t)in->rows));
    json_object *cols = json_object_new_array();
    for (size_t i = 0; i < in->ncols; i++) {
        json_object *k = json_object_new_object();
        json_object_object_add(k, "name", json_object_new_string(in->cols[i].name));
        json_object_object_add(k, "dtype", json_object_new_string(ds_dtype_name(in->cols[i].dtype)));
        json_object_array_add(cols, k);
    }
    json_object_object_add(o, "columns", cols);
    json_object *b = json_object_new_array();
    for (size_t i = 0; i < in->nbatches; i++)
        json_object_array_add(b, json_object_new_int64((int64_t)in->batches[i].rows));
    json_object_object_add(o, "batches", b);
    return o;
}

/* ---- store commands ------------------------------------------------------------------- */

static int cmd_ds_open(kd_cmd *c)
{
    const char *name;
    bool create = true;
    int64_t mode = KD_DS_MODE;
    if (store_name_arg(c, &name) || (kd_has_arg(c, "create") && kd_arg_bool(c, "create", &create)) ||
        (kd_has_arg(c, "mode") && kd_arg_i64(c, "mode", &mode)))
        return -1;
    if (mode < 0 || mode > 0777)
        return kd_fail(c, "ValueError", "ds_open: mode must be permission bits (0 to 0o777)");
    ds_store_t *s;
    if (get_store(c, name, create, (mode_t)mode, &s))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        uint64_t v = 0;
        char **names = NULL;
        size_t n = 0;
        if ((rc = ds_version(s, &v)) || (rc = ds_list(s, &names, &n))) {
            store_forget(name);
            rc = ds_fail(c, rc, "dataset store '%s'", name);
        } else {
            kd_result_set(c, "store", json_object_new_string(name));
            kd_result_i64(c, "version", (int64_t)v);
            kd_result_i64(c, "datasets", (int64_t)n);
            ds_free_names(names, n);
        }
    }
    return kd_agree(c, rc);
}

/* For family listings: infos sorted by name, to find a base by name. */
int kd_ds_list_result(kd_cmd *c, ds_store_t *s, const char *name, bool if_not,
                      uint64_t known, const char *family_of)
{
    /* the version the handle read last (ds_refresh has just read the
     * head): a request to famd fewer for every refresh that changes
     * nothing; a commit after that read is seen by the next command */
    uint64_t v = ds_version_seen(s);
    if (if_not && (v || ds_version(s, &v) == 0) && v == known) {
        kd_result_i64(c, "version", (int64_t)known); /* the caller has this version's list */
        return 0;
    }
    /* the names from one catalog version (read now), then each dataset's
     * info from that version (ds_pin): only the datasets listed are
     * copied out of the catalog */
    char **names = NULL;
    size_t n = 0;
    int rc = family_of ? ds_list_family(s, family_of, &names, &n) : ds_list(s, &names, &n);
    if (rc == FAM_ENOTFOUND && family_of) { /* none if it is not there */
        rc = 0;
    } else if (rc) {
        store_forget(name);
        return ds_fail(c, rc, "dataset store '%s'", name);
    }
    v = ds_version_seen(s);
    json_object *arr = json_object_new_array();
    ds_pin(s);
    for (size_t i = 0; !rc && i < n; i++) {
        ds_info_t *in;
        if ((rc = ds_info(s, names[i], &in))) {
            rc = ds_fail(c, rc, "dataset '%s' of store '%s'", names[i], name);
        } else {
            json_object_array_add(arr, info_json(in));
            ds_free_info(in);
        }
    }
    ds_unpin(s);
    ds_free_names(names, n);
    if (rc) {
        json_object_put(arr);
        return rc;
    }
    kd_result_i64(c, "version", (int64_t)v);
    kd_result_set(c, "datasets", arr);
    return 0;
}

static int cmd_ds_list(kd_cmd *c)
{
    const char *name;
    ds_store_t *s;
    if (store_name_arg(c, &name) || get_store(c, name, false, KD_DS_MODE, &s))
        return -1;
    int rc = c->rank == 0 ? kd_ds_list_result(c, s, name, false, 0, NULL) : 0;
    return kd_agree(c, rc);
}

static int cmd_ds_info(kd_cmd *c)
{
    const char *name, *dataset;
    ds_store_t *s;
    if (store_name_arg(c, &name) || dataset_arg(c, "dataset", &dataset) ||
        get_store(c, name, false, KD_DS_MODE, &s))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        ds_info_t *in;
        rc = ds_info(s, dataset, &in);
        if (rc == FAM_ENOTFOUND)
            rc = kd_fail(c, "KeyError", "dataset store '%s' has no dataset '%.200s'", name,
                         dataset);
        else if (rc)
            rc = ds_fail(c, rc, "dataset '%.200s' of store '%s'", dataset, name);
        else {
            json_object *o = info_json(in);
            json_object_object_foreach(o, k, v) kd_result_set(c, k, json_object_get(v));
            json_object_put(o);
            ds_free_info(in);
        }
    }
    return kd_agree(c, rc);
}

static int cmd_ds_drop(kd_cmd *c)
{
    const char *name, *dataset;
    ds_store_t *s;
    if (store_name_arg(c, &name) || dataset_arg(c, "dataset", &dataset) ||
        get_store(c, name, false, KD_DS_MODE, &s))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        rc = ds_drop(s, dataset);
        if (rc == FAM_ENOTFOUND)
            rc = kd_fail(c, "KeyError", "dataset store '%s' has no dataset '%.200s'", name,
                         dataset);
        else if (rc)
            rc = ds_fail(c, rc, "cannot drop dataset '%.200s' of store '%s'", dataset, name);
    }
    return kd_agree(c, rc);
}

static int cmd_ds_reclaim(kd_cmd *c)
{
    const char *name;
    int64_t age = DS_RECLAIM_AGE;
    ds_store_t *s;
    if (store_name_arg(c, &name) || (kd_has_arg(c, "min_age") && kd_arg_i64(c, "min_age", &age)))
        return -1;
    if (age < 0)
        return kd_fail(c, "ValueError", "ds_reclaim: min_age must be >= 0 seconds");
    if (get_store(c, name, false, KD_DS_MODE, &s))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        ds_reclaim_stats_t st = {0};
        if ((rc = ds_reclaim(s, (uint64_t)age, &st)))
            rc = ds_fail(c, rc, "reclaim in dataset store '%s'", name);
        kd_result_i64(c, "arrays", (int64_t)st.arrays);
        kd_result_i64(c, "categories", (int64_t)st.categories);
        kd_result_i64(c, "snapshots", (int64_t)st.snapshots);
        kd_result_i64(c, "kept_young", (int64_t)st.kept_young);
    }
    return kd_agree(c, rc);
}

static int cmd_ds_verify(kd_cmd *c)
{
    const char *name;
    bool codes = false;
    ds_store_t *s;
    if (store_name_arg(c, &name) || (kd_has_arg(c, "codes") && kd_arg_bool(c, "codes", &codes)) ||
        get_store(c, name, false, KD_DS_MODE, &s))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        size_t checked = 0;
        rc = ds_verify(s, codes ? DS_VERIFY_CODES : 0, &checked);
        if (rc == FAM_EIO)
            rc = kd_fail(c, "RuntimeError", "dataset store '%s' is not consistent: %s", name,
                         ds_last_error());
        else if (rc)
            rc = ds_fail(c, rc, "verify dataset store '%s'", name);
        kd_result_i64(c, "checked", (int64_t)checked);
    }
    return kd_agree(c, rc);
}

static int cmd_ds_destroy(kd_cmd *c)
{
    const char *name;
    if (store_name_arg(c, &name))
        return -1;
    fam_t *f = kd_fam_connect(c);
    if (!f)
        return -1;
    store_forget(name);
    for (int i = 0; i < KD_DS_INGESTS; i++)
        if (ingests[i].token && strcmp(ingests[i].store, name) == 0)
            ingest_free(&ingests[i], false);
    kd_quiet_barrier(c->comm); /* every rank's handles closed before the region goes */
    int rc = 0;
    if (c->rank == 0) {
        rc = ds_destroy_store(f, name);
        if (rc == FAM_ENOTFOUND)
            rc = kd_fail(c, "KeyError", "no dataset store '%.80s'", name);
        else if (rc)
            rc = ds_fail(c, rc, "cannot destroy dataset store '%s'", name);
    }
    return kd_agree(c, rc);
}

/* ---- reading columns ------------------------------------------------------------------- */

static kd_dtype kd_of_ds(ds_dtype_t t)
{
    switch (t) {
    case DS_UINT64: return KD_UINT64;
    case DS_FLOAT64: return KD_FLOAT64;
    case DS_BOOL: return KD_BOOL;
    default: return KD_INT64;
    }
}

/* Every rank's ds_info of `dataset` at rank 0's version (see the top). */
static int info_everywhere(kd_cmd *c, ds_store_t *s, const char *store, const char *dataset,
                           ds_info_t **out, size_t *saved_nb)
{
    ds_info_t *in = NULL;
    int rc = ds_info(s, dataset, &in);
    if (rc == FAM_ENOTFOUND)
        rc = kd_fail(c, "KeyError", "dataset store '%s' has no dataset '%.200s'", store, dataset);
    else if (rc) {
        store_forget(store);
        rc = ds_fail(c, rc, "dataset '%.200s' of store '%s'", dataset, store);
    }
    if (kd_agree(c, rc)) {
        ds_free_info(in);
        return -1;
    }
    struct { uint64_t nb; char last[DS_BATCH_ID_LEN + 1]; } head = {0, ""};
    if (c->rank == 0) {
        head.nb = in->nbatches;
        if (in->nbatches)
            memcpy(head.last, in->batches[in->nbatches - 1].id, sizeof head.last);
    }
    MPI_Bcast(&head, sizeof head, MPI_BYTE, 0, c->comm);
    rc = 0;
    if (in->nbatches < head.nb ||
        (head.nb && strcmp(in->batches[head.nb - 1].id, head.last) != 0))
        rc = kd_fail(c, "RuntimeError", "dataset '%.200s' was dropped and made again while "
                     "it was read; read it again", dataset);
    if (kd_agree(c, rc)) {
        ds_free_info(in);
        return -1;
    }
    *saved_nb = in->nbatches;
    in->nbatches = head.nb;
    in->rows = 0;
    for (size_t b = 0; b < in->nbatches; b++)
        in->rows += in->batches[b].rows;
    *out = in;
    return 0;
}

static void info_release(ds_info_t *in, size_t saved_nb)
{
    if (in) {
        in->nbatches = saved_nb;
        ds_free_info(in);
    }
}

/* Read rows [start, start + n) of column col of the dataset into this
 * rank's block of `a` (whose global element 0 is dataset row `start`);
 * text codes mapped through cat (NULL for other columns). Local. */
static int read_block(kd_cmd *c, ds_store_t *s, const ds_info_t *in, size_t col,
                      uint64_t start, kd_array *a, const ds_categories_t *cat, size_t b0)
{
    uint64_t lo = start + (uint64_t)a->lo, hi = lo + (uint64_t)a->n;
    size_t w = kd_dtype_size(a->dtype);
    for (size_t b = 0; b < in->nbatches && lo < hi; b++) {
        const ds_batch_info_t *bi = &in->batches[b];
        uint64_t f = bi->first_row, e = f + bi->rows;
        if (e <= lo || f >= hi)
            continue;
        uint64_t from = lo > f ? lo : f, to = hi < e ? hi : e;
        for (uint64_t at = from; at < to; at += KD_DS_CHUNK) {
            uint64_t m = to - at < KD_DS_CHUNK ? to - at : KD_DS_CHUNK;
            char *dst = (char *)a->data + (size_t)(at - start - (uint64_t)a->lo) * w;
            int rc = kd_dsc_read(s, in, b, col, at - f, m, dst);
            if (rc)
                return ds_fail(c, rc, "read column '%.200s' of dataset '%.200s' (rank %d)",
                               in->cols[col].name, in->name, c->rank);
            if (cat) {
                const int64_t *map = cat->maps[b - b0];
                uint64_t ncat = bi->ncat[col];
                int64_t *p = (int64_t *)dst;
                for (uint64_t i = 0; i < m; i++) {
                    if (p[i] == -1)
                        continue;
                    if (p[i] < -1 || (uint64_t)p[i] >= ncat || !map)
                        return kd_fail(c, "RuntimeError", "dataset '%.200s', column '%.200s', "
                                       "batch %zu: code %lld is not one of its %llu categories "
                                       "(a damaged store: run store.verify())", in->name,
                                       in->cols[col].name, b, (long long)p[i],
                                       (unsigned long long)ncat);
                    p[i] = map[p[i]];
                }
            }
        }
    }
    return 0;
}

/* ds_read {store, dataset, columns?, start?, stop?}: the columns (all by
 * default) over rows [start, stop) as pdarrays; text as Categoricals. */
static int cmd_ds_read(kd_cmd *c)
{
    const char *store, *dataset;
    ds_store_t *s;
    int64_t start = 0, stop = INT64_MAX;
    if (store_name_arg(c, &store) || dataset_arg(c, "dataset", &dataset) ||
        (kd_has_arg(c, "start") && kd_arg_i64(c, "start", &start)) ||
        (kd_has_arg(c, "stop") && kd_arg_i64(c, "stop", &stop)))
        return -1;
    json_object *want = NULL;
    if (kd_has_arg(c, "columns")) {
        json_object_object_get_ex(c->args, "columns", &want);
        if (!json_object_is_type(want, json_type_array) ||
            json_object_array_length(want) > DS_MAX_COLUMNS)
            return kd_fail(c, "TypeError", "ds_read: 'columns' must be a list of column names");
        for (size_t i = 0; i < json_object_array_length(want); i++)
            if (!json_object_is_type(json_object_array_get_idx(want, i), json_type_string))
                return kd_fail(c, "TypeError", "ds_read: 'columns' must be a list of column "
                               "names");
    }
    if (get_store(c, store, false, KD_DS_MODE, &s))
        return -1;
    ds_info_t *in;
    size_t saved;
    if (info_everywhere(c, s, store, dataset, &in, &saved))
        return -1;
    int rc = 0;
    size_t nw = want ? json_object_array_length(want) : in->ncols;
    size_t *cols = calloc(nw + 1, sizeof *cols);
    if (!cols)
        rc = kd_fail(c, "MemoryError", "ds_read: out of memory");
    for (size_t i = 0; !rc && i < nw; i++) {
        if (!want) {
            cols[i] = i;
            continue;
        }
        const char *nm = json_object_get_string(json_object_array_get_idx(want, i));
        size_t k = 0;
        while (k < in->ncols && strcmp(in->cols[k].name, nm) != 0)
            k++;
        if (k == in->ncols)
            rc = kd_fail(c, "KeyError", "dataset '%.200s' has no column '%.200s'", dataset, nm);
        cols[i] = k;
    }
    if (rc) { /* the same on every rank */
        free(cols);
        info_release(in, saved);
        return -1;
    }
    int64_t total = (int64_t)in->rows;
    start = start < 0 ? 0 : start > total ? total : start;
    stop = stop < start ? start : stop > total ? total : stop;
    /* the batches the rows overlap (for the categories) */
    size_t b0 = 0, b1 = 0;
    for (size_t b = 0; b < in->nbatches; b++) {
        uint64_t f = in->batches[b].first_row, e = f + in->batches[b].rows;
        if (e <= (uint64_t)start && b0 == b)
            b0 = b + 1;
        if (f < (uint64_t)stop)
            b1 = b + 1;
    }
    if (b1 < b0)
        b1 = b0;
    int64_t *offs = NULL;
    char *bytes = NULL;
    size_t noffs = 0, nbytes = 0;
    json_object *out = c->rank == 0 ? json_object_new_array() : NULL;
    for (size_t i = 0; !rc && i < nw; i++) {
        size_t k = cols[i];
        ds_dtype_t t = in->cols[k].dtype;
        kd_array *a = kd_new_array(c, kd_of_ds(t), stop - start);
        if (!a) {
            rc = -1;
            break;
        }
        ds_categories_t *cat = NULL;
        int lrc = 0;
        if (t == DS_TEXT) {
            /* unify over [b0, b1) only: a view of the info on those batches */
            ds_batch_info_t *keep_b = in->batches;
            size_t keep_n = in->nbatches;
            in->batches += b0;
            in->nbatches = b1 - b0;
            lrc = ds_unify_categories(s, in, k, &cat);
            in->batches = keep_b;
            in->nbatches = keep_n;
            if (lrc)
                lrc = ds_fail(c, lrc, "categories of column '%.200s' of dataset '%.200s'",
                              in->cols[k].name, dataset);
        }
        if (!lrc)
            lrc = read_block(c, s, in, k, (uint64_t)start, a, cat, b0);
        if (!lrc && cat && c->rank == 0) {
            size_t more = 0;
            for (size_t j = 0; j < cat->n; j++)
                more += strlen(cat->cats[j]);
            int64_t *no = realloc(offs, sizeof(int64_t) * (noffs + cat->n + 1));
            if (no)
                offs = no;
            char *nb2 = no ? realloc(bytes, nbytes + more + 1) : NULL;
            if (nb2)
                bytes = nb2;
            if (!no || !nb2)
                lrc = kd_fail(c, "MemoryError", "ds_read: out of memory for categories");
            for (size_t j = 0; !lrc && j < cat->n; j++) {
                size_t l = strlen(cat->cats[j]);
                offs[noffs++] = (int64_t)nbytes;
                memcpy(bytes + nbytes, cat->cats[j], l);
                nbytes += l;
            }
            if (!lrc)
                offs[noffs++] = (int64_t)nbytes;
        }
        if (kd_agree(c, lrc)) {
            ds_free_categories(cat);
            rc = -1;
            break;
        }
        char key[32];
        snprintf(key, sizeof key, "col%zu", i);
        kd_result_array(c, key, a);
        if (out) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(in->cols[k].name));
            json_object_object_add(o, "key", json_object_new_string(key));
            json_object_object_add(o, "dtype", json_object_new_string(ds_dtype_name(t)));
            json_object_object_add(o, "kind", json_object_new_string(
                t == DS_TEXT ? "categorical" : t == DS_DATETIME ? "datetime" : "array"));
            if (cat)
                json_object_object_add(o, "ncategories", json_object_new_int64((int64_t)cat->n));
            json_object_array_add(out, o);
        }
        ds_free_categories(cat);
    }
    if (!rc) {
        kd_result_set(c, "columns", out);
        out = NULL;
        kd_result_i64(c, "rows", stop - start);
        kd_result_i64(c, "version", (int64_t)in->version);
        kd_result_i64(c, "batches", (int64_t)in->nbatches);
        /* the kind at the version read: a client that took the name for a
         * base dataset learns that it was dropped and made again as another */
        kd_result_set(c, "dataset_kind", json_object_new_string(ds_kind_name(in->kind)));
        if (c->rank == 0) {
            kd_result_frame(c, offs ? offs : calloc(1, 8), offs ? noffs * 8 : 0);
            kd_result_frame(c, bytes ? bytes : calloc(1, 1), nbytes);
            offs = NULL;
            bytes = NULL;
        }
    }
    json_object_put(out);
    free(offs);
    free(bytes);
    free(cols);
    info_release(in, saved);
    return rc;
}

/* ---- ingest: batches ------------------------------------------------------------------- */

static ds_ingest *ingest_arg(kd_cmd *c)
{
    const char *tok;
    if (kd_arg_str(c, "token", &tok))
        return NULL;
    char *end;
    uint64_t t = strtoull(tok, &end, 16);
    for (int i = 0; t && !*end && i < KD_DS_INGESTS; i++)
        if (ingests[i].token == t)
            return &ingests[i];
    kd_fail(c, "KeyError", "%s: no open ingest '%.40s' on this server (it was committed, "
            "aborted after a failure, taken over after %d s idle, or kodiakd restarted)",
            c->cmd, tok, KD_DS_IDLE);
    return NULL;
}

/* rank 0's clock, on every rank */
static double shared_now(kd_cmd *c)
{
    double t = now_s();
    MPI_Bcast(&t, 1, MPI_DOUBLE, 0, c->comm);
    return t;
}

static int ingest_grow(kd_cmd *c, ds_ingest *g)
{
    size_t pending = 0;
    for (int i = 0; i < KD_DS_INGESTS; i++)
        pending += ingests[i].nb;
    if (pending >= DS_MAX_COMMIT_BATCHES)
        return kd_fail(c, "MemoryError", "ingest into '%.200s': this server holds %d "
                       "uncommitted batches, its limit (commit or abort ingests first, or "
                       "use a larger batch_rows)", g->dataset, DS_MAX_COMMIT_BATCHES);
    if (g->nb < g->cap)
        return 0;
    size_t cap = g->cap ? 2 * g->cap : 16;
    ds_batch_ref_t *r = realloc(g->refs, cap * sizeof *r);
    if (r)
        g->refs = r;
    ds_batch_t **h = r ? realloc(g->handles, cap * sizeof *h) : NULL;
    if (h)
        g->handles = h;
    if (!r || !h)
        return kd_fail(c, "MemoryError", "ingest: out of memory");
    g->cap = cap;
    return 0;
}

/* KODIAK_DS_TIMES=1 in kodiakd's environment: each rank adds up the time
 * of each step of an ingest's batch writing and prints it to its log. */
static double ds_times[5]; /* begin+attach, categories, fa_put, agree, read_csv */
static void ds_tick(int step, double *last)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    if (step >= 0)
        ds_times[step] += t - *last;
    *last = t;
}

static void ds_times_print(kd_cmd *c)
{
    static int on = -1;
    if (on < 0)
        on = getenv("KODIAK_DS_TIMES") != NULL;
    if (on)
        fprintf(stderr, "ingest rank %d: read_csv %.3f s, begin/attach %.3f s, categories "
                "%.3f s, put %.3f s, agree %.3f s\n", c->rank, ds_times[4], ds_times[0],
                ds_times[1], ds_times[2], ds_times[3]);
    memset(ds_times, 0, sizeof ds_times);
}

/* Text column categories of one source (rank 0): n strings. */
typedef struct {
    size_t n;        /* categories (same on every rank) */
    char **cats;     /* rank 0: n NUL-terminated strings; NULL elsewhere */
} ds_cats;

/* Write rows [0, a[0]->size) of arrays a[0..ncols) (block-distributed, the
 * ingest's column dtypes) as batches of batch_rows rows into ingest g.
 * Collective; on failure the current batch is aborted (the caller aborts
 * the ingest). */
static int write_batches(kd_cmd *c, ds_ingest *g, ds_store_t *s, kd_array **a,
                         const ds_cats *cats, int64_t batch_rows)
{
    int64_t total = g->ncols ? a[0]->size : 0;
    size_t nb = total ? (size_t)((total + batch_rows - 1) / batch_rows) : 0;
    int64_t lo = g->ncols ? a[0]->lo : 0, n = g->ncols ? a[0]->n : 0;
    int64_t *tmp = NULL;
    uint8_t *used = NULL;
    int64_t *remap = NULL;
    size_t maxcat = 0;
    for (size_t k = 0; k < g->ncols; k++)
        if (g->dtypes[k] == DS_TEXT && cats[k].n > maxcat)
            maxcat = cats[k].n;
    tmp = malloc(sizeof(int64_t) * KD_DS_CHUNK);
    used = malloc(maxcat / 8 + 1);
    remap = malloc(sizeof(int64_t) * (maxcat + 1));
    const char **sub = c->rank == 0 ? malloc(sizeof(char *) * (maxcat + 1)) : NULL;
    int rc = (!tmp || !used || !remap || (c->rank == 0 && !sub))
                 ? kd_fail(c, "MemoryError", "ingest: out of memory") : 0;
    /* (every failure exit takes kd_agree's answer: a rank whose own part
     * went well must fail too, or the ranks' collectives part ways) */
    if ((rc = kd_agree(c, rc)))
        goto out;
    double tick = 0;
    ds_tick(-1, &tick);
    for (size_t b = 0; b < nb; b++) {
        int64_t f = (int64_t)b * batch_rows;
        int64_t rows = total - f < batch_rows ? total - f : batch_rows;
        ds_batch_t *h = NULL;
        ds_batch_ref_t ref;
        memset(&ref, 0, sizeof ref);
        rc = ingest_grow(c, g);
        if (!rc && c->rank == 0) {
            int e = ds_batch_begin_dtypes(s, g->ncols, g->dtypes, (uint64_t)rows, &h);
            if (e)
                rc = ds_fail(c, e, "ingest into '%.200s'", g->dataset);
            else
                ds_batch_ref(h, &ref);
        }
        /* the others sleep while rank 0 creates the arrays: a rank spinning
         * in a collective takes a core from rank 0 and the memory servers */
        kd_quiet_barrier(c->comm);
        if ((rc = kd_agree(c, rc)))
            goto out;
        MPI_Bcast(&ref, sizeof ref, MPI_BYTE, 0, c->comm);
        if (c->rank != 0) {
            int e = ds_batch_attach_dtypes(s, g->ncols, g->dtypes, &ref, &h);
            if (e)
                rc = ds_fail(c, e, "ingest into '%.200s' (rank %d)", g->dataset, c->rank);
        }
        kd_quiet_barrier(c->comm); /* rank 0 sleeps while the others attach */
        if ((rc = kd_agree(c, rc))) {
            if (c->rank == 0)
                ds_batch_abort(h); /* frees h (see ingest_free) */
            else
                ds_batch_close(h);
            goto out;
        }
        ds_tick(0, &tick);
        /* my rows of this batch: [from, to) of the arrays. Collectives per
         * batch: the code check, one bitmap per text column, the end. A
         * local failure after the check only stops this rank's writes. */
        int64_t from = lo > f ? lo : f, to = lo + n < f + rows ? lo + n : f + rows;
        for (size_t k = 0; !rc && k < g->ncols; k++) {
            const int64_t *p = a[k]->data;
            for (int64_t i = from; g->dtypes[k] == DS_TEXT && !rc && i < to; i++)
                if (p[i - lo] < -1 || p[i - lo] >= (int64_t)cats[k].n)
                    rc = kd_fail(c, "ValueError", "ingest into '%.200s': column '%.200s', "
                                 "row %lld: code %lld is not one of its %zu categories",
                                 g->dataset, g->names[k], (long long)i,
                                 (long long)p[i - lo], cats[k].n);
        }
        if (!kd_agree(c, rc)) {
            ds_tick(3, &tick);
            for (size_t k = 0; k < g->ncols; k++) {
                fa_array_t *fa = ds_batch_array(h, k);
                size_t w = kd_dtype_size(a[k]->dtype);
                bool text = g->dtypes[k] == DS_TEXT;
                if (text) {
                    /* the categories the batch uses: every rank marks its rows */
                    memset(used, 0, cats[k].n / 8 + 1);
                    const int64_t *p = a[k]->data;
                    for (int64_t i = from; i < to; i++)
                        if (p[i - lo] >= 0)
                            used[p[i - lo] >> 3] |= (uint8_t)(1u << (p[i - lo] & 7));
                    kd_quiet_barrier(c->comm);
                    MPI_Allreduce(MPI_IN_PLACE, used, (int)(cats[k].n / 8 + 1), MPI_UINT8_T,
                                  MPI_BOR, c->comm);
                    size_t m = 0;
                    for (size_t j = 0; j < cats[k].n; j++) {
                        remap[j] = (used[j >> 3] >> (j & 7)) & 1 ? (int64_t)m++ : -1;
                        if (sub && remap[j] >= 0)
                            sub[remap[j]] = cats[k].cats[j];
                    }
                    if (c->rank == 0 && !rc) {
                        int e = ds_batch_set_categories(h, k, m, sub);
                        if (e)
                            rc = ds_fail(c, e, "ingest into '%.200s': categories of column "
                                         "'%.200s'", g->dataset, g->names[k]);
                    }
                    ds_tick(1, &tick);
                }
                for (int64_t at = from; !rc && at < to; at += KD_DS_CHUNK) {
                    int64_t m = to - at < KD_DS_CHUNK ? to - at : KD_DS_CHUNK;
                    const void *src = (const char *)a[k]->data + (size_t)(at - lo) * w;
                    if (text) {
                        const int64_t *p = src;
                        for (int64_t i = 0; i < m; i++)
                            tmp[i] = p[i] < 0 ? -1 : remap[p[i]];
                        src = tmp;
                    }
                    int e = fa_put(fa, (uint64_t)(at - f), (uint64_t)m, src);
                    if (e)
                        rc = ds_fail(c, e, "ingest into '%.200s': write column '%.200s' "
                                     "(rank %d)", g->dataset, g->names[k], c->rank);
                    else /* kept: the queries after an ingest read no FAM (kd_dscache.c) */
                        kd_dsc_wrote(s, ds_batch_array_name(h, k),
                                     fa_dtype_size(fa_dtype(fa)), (uint64_t)(at - f),
                                     (uint64_t)m, src);
                }
                ds_tick(2, &tick);
            }
        }
        kd_quiet_barrier(c->comm); /* ranks end their writes at different times */
        rc = kd_agree(c, rc);
        ds_tick(3, &tick);
        if (c->rank != 0) {
            ds_batch_close(h);
            if (!rc)
                g->handles[g->nb] = NULL; /* only rank 0 keeps handles */
        } else if (rc) {
            if (h)
                ds_batch_abort(h); /* frees h (see ingest_free) */
        } else {
            g->handles[g->nb] = h;
        }
        if (rc)
            goto out;
        g->refs[g->nb++] = ref;
        g->rows += rows;
    }
out:
    ds_times_print(c);
    free(tmp);
    free(used);
    free(remap);
    free(sub);
    return rc;
}

/* The schema of what was read (names, dtypes) against the ingest's: set it
 * if the ingest has none yet, else they must be equal. */
static int match_schema(kd_cmd *c, ds_ingest *g, size_t n, char *const *names,
                        const ds_dtype_t *dt, const char *what)
{
    if (g->ncols == 0 && !g->exists) {
        g->names = calloc(n + 1, sizeof *g->names);
        g->dtypes = calloc(n + 1, sizeof *g->dtypes);
        if (!g->names || !g->dtypes)
            return kd_fail(c, "MemoryError", "ingest: out of memory");
        for (size_t i = 0; i < n; i++)
            if (!(g->names[i] = strdup(names[i])))
                return kd_fail(c, "MemoryError", "ingest: out of memory");
        memcpy(g->dtypes, dt, n * sizeof *dt);
        g->ncols = n;
        return 0;
    }
    bool same = n == g->ncols;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(names[i], g->names[i]) == 0 && dt[i] == g->dtypes[i];
    if (same)
        return 0;
    char want[400] = "", got[400] = "";
    for (size_t i = 0; i < g->ncols && strlen(want) < 300; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%.40s:%s", i ? ", " : "",
                 g->names[i], ds_dtype_name(g->dtypes[i]));
    for (size_t i = 0; i < n && strlen(got) < 300; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.40s:%s", i ? ", " : "",
                 names[i], ds_dtype_name(dt[i]));
    return kd_fail(c, "ValueError", "ingest into '%.200s': the columns of %.300s (%s) differ "
                   "from the dataset's (%s); every batch of a dataset has the same columns "
                   "and dtypes", g->dataset, what, got, want);
}

static int64_t batch_rows_arg(kd_cmd *c)
{
    int64_t br = KD_DS_BATCH_DEFAULT;
    if (kd_has_arg(c, "batch_rows") && kd_arg_i64(c, "batch_rows", &br))
        return -1;
    if (br < 1 || br > ((int64_t)1 << 56)) {
        kd_fail(c, "ValueError", "%s: batch_rows must be from 1 to 2^56, not %lld", c->cmd,
                (long long)br);
        return -1;
    }
    return br;
}

/* Abort ingest g after a failure on every rank (collective). */
static void ingest_failed(kd_cmd *c, ds_ingest *g)
{
    if (c->rank == 0)
        ingest_free(g, true);
    else
        ingest_free(g, false);
    kd_quiet_barrier(c->comm);
}

/* ---- ingest commands --------------------------------------------------------------------- */

static int cmd_ds_ingest_begin(kd_cmd *c)
{
    const char *store, *dataset;
    ds_store_t *s;
    if (store_name_arg(c, &store) || dataset_arg(c, "dataset", &dataset) ||
        get_store(c, store, false, KD_DS_MODE, &s))
        return -1;
    /* rank 0: does the dataset exist, with which columns; a fresh token */
    json_object *o = NULL;
    int rc = 0;
    if (c->rank == 0) {
        o = json_object_new_object();
        ds_info_t *in = NULL;
        int e = ds_info(s, dataset, &in);
        if (e && e != FAM_ENOTFOUND) {
            store_forget(store);
            rc = ds_fail(c, e, "ingest into '%.200s' of store '%s'", dataset, store);
        } else if (!e && in->kind != DS_KIND_BASE) {
            rc = kd_fail(c, "ValueError", "ingest: dataset '%.200s' is a derived (%s) "
                         "dataset; only base datasets take ingested rows", dataset,
                         ds_kind_name(in->kind));
        } else if (!e) {
            char **nm = calloc(in->ncols + 1, sizeof *nm);
            ds_dtype_t *dt = calloc(in->ncols + 1, sizeof *dt);
            for (size_t i = 0; nm && dt && i < in->ncols; i++) {
                nm[i] = in->cols[i].name;
                dt[i] = in->cols[i].dtype;
            }
            if (nm && dt)
                json_object_object_add(o, "columns", columns_json(in->ncols, nm, dt));
            else
                rc = kd_fail(c, "MemoryError", "ingest: out of memory");
            free(nm);
            free(dt);
        }
        ds_free_info(in);
        uint64_t tok = 0;
        while (!tok) {
            FILE *r = fopen("/dev/urandom", "rb");
            if (!r || fread(&tok, sizeof tok, 1, r) != 1)
                tok = ((uint64_t)now_s() << 20) ^ (uint64_t)clock();
            if (r)
                fclose(r);
        }
        char t[32];
        snprintf(t, sizeof t, "%016" PRIx64, tok);
        json_object_object_add(o, "token", json_object_new_string(t));
    }
    if (kd_agree(c, rc)) {
        json_object_put(o);
        return -1;
    }
    json_object *all = bcast_json(c, o);
    json_object_put(o);
    double now = shared_now(c);
    /* a free slot, or the least recently used one idle for long enough */
    ds_ingest *g = NULL;
    for (int i = 0; i < KD_DS_INGESTS && !g; i++)
        if (!ingests[i].token)
            g = &ingests[i];
    for (int i = 0; i < KD_DS_INGESTS && !g; i++)
        if (now - ingests[i].last_used > KD_DS_IDLE &&
            (!g || ingests[i].last_used < g->last_used))
            g = &ingests[i];
    if (!g) {
        json_object_put(all);
        return kd_fail(c, "RuntimeError", "ingest: this server already has %d ingests open "
                       "(each is committed or aborted by its client, or taken over after %d "
                       "s idle)", KD_DS_INGESTS, KD_DS_IDLE);
    }
    if (g->token)
        ingest_free(g, c->rank == 0);
    json_object *jt, *jc;
    json_object_object_get_ex(all, "token", &jt);
    g->token = strtoull(json_object_get_string(jt), NULL, 16);
    snprintf(g->store, sizeof g->store, "%s", store);
    snprintf(g->dataset, sizeof g->dataset, "%s", dataset);
    g->last_used = now;
    if (json_object_object_get_ex(all, "columns", &jc)) {
        size_t n = json_object_array_length(jc);
        g->exists = true;
        g->names = calloc(n + 1, sizeof *g->names);
        g->dtypes = calloc(n + 1, sizeof *g->dtypes);
        for (size_t i = 0; g->names && g->dtypes && i < n; i++) {
            json_object *k = json_object_array_get_idx(jc, i), *nm, *dt;
            json_object_object_get_ex(k, "name", &nm);
            json_object_object_get_ex(k, "dtype", &dt);
            g->names[i] = strdup(json_object_get_string(nm));
            ds_dtype_parse(json_object_get_string(dt), &g->dtypes[i]);
            if (!g->names[i])
                break;
            g->ncols = i + 1;
        }
        if (g->ncols != n)
            rc = kd_fail(c, "MemoryError", "ingest: out of memory");
    }
    if (kd_agree(c, rc)) {
        ingest_free(g, false);
        json_object_put(all);
        return -1;
    }
    /* this ingest's own handle (s, the shared one, may be closed or
     * opened afresh by other commands before the commit) */
    int e = ds_open(kd_fam_connect(c), store, 0, KD_DS_MODE, &g->s);
    if (kd_agree(c, e ? ds_fail(c, e, "ingest into '%.200s' of store '%s'", dataset, store)
                      : 0)) {
        ingest_free(g, false);
        json_object_put(all);
        return -1;
    }
    kd_result_set(c, "token", json_object_get(jt));
    kd_result_set(c, "exists", json_object_new_boolean(g->exists));
    if (g->exists)
        kd_result_set(c, "columns", columns_json(g->ncols, g->names, g->dtypes));
    json_object_put(all);
    return 0;
}

static const char *csv_dtype_of(ds_dtype_t t)
{
    switch (t) {
    case DS_INT64: return "int64";
    case DS_FLOAT64: return "float64";
    case DS_BOOL: return "bool";
    case DS_TEXT: return "str";
    default: return NULL;
    }
}

/* Whether the client's dtypes or parse_dates name column `name`. */
static bool client_typed(kd_cmd *c, const char *name)
{
    json_object *dt, *pd;
    if (json_object_object_get_ex(c->args, "dtypes", &dt) &&
        json_object_is_type(dt, json_type_object) && json_object_object_get_ex(dt, name, NULL))
        return true;
    if (json_object_object_get_ex(c->args, "parse_dates", &pd) &&
        json_object_is_type(pd, json_type_array))
        for (size_t i = 0; i < json_object_array_length(pd); i++) {
            const char *s = json_object_get_string(json_object_array_get_idx(pd, i));
            if (s && strcmp(s, name) == 0)
                return true;
        }
    return false;
}

/* One file through read_csv into pdarrays, then into batches. */
static int ingest_file(kd_cmd *c, ds_ingest *g, ds_store_t *s, const char *path,
                       int64_t batch_rows, int64_t *skipped)
{
    /* read_csv's arguments: the client's, plus the dataset's dtypes for
     * the columns the client did not type */
    json_object *args = json_object_new_object(), *v, *files = json_object_new_array();
    json_object_array_add(files, json_object_new_string(path));
    json_object_object_add(args, "files", files);
    static const char *const pass[] = {"usecols", "on_bad_lines", "parse_dates", "dtypes"};
    for (size_t i = 0; i < sizeof pass / sizeof *pass; i++)
        if (json_object_object_get_ex(c->args, pass[i], &v) && v)
            json_object_object_add(args, pass[i], json_object_get(v));
    if (g->ncols) {
        json_object *dt = NULL, *pd = NULL;
        json_object_object_get_ex(args, "dtypes", &dt);
        json_object_object_get_ex(args, "parse_dates", &pd);
        json_object *ndt = json_object_new_object();
        json_object *npd = json_object_new_array();
        if (json_object_is_type(dt, json_type_object)) {
            json_object_object_foreach(dt, k, x) json_object_object_add(ndt, k, json_object_get(x));
        }
        for (size_t i = 0; json_object_is_type(pd, json_type_array) &&
                           i < json_object_array_length(pd); i++)
            json_object_array_add(npd, json_object_get(json_object_array_get_idx(pd, i)));
        for (size_t k = 0; k < g->ncols; k++) {
            bool given = json_object_object_get_ex(ndt, g->names[k], NULL);
            for (size_t i = 0; !given && i < json_object_array_length(npd); i++)
                given = strcmp(json_object_get_string(json_object_array_get_idx(npd, i)),
                               g->names[k]) == 0;
            if (given)
                continue;
            /* (a file without the column: read_csv refuses the name; said
             * as a schema mismatch below) */
            if (g->dtypes[k] == DS_DATETIME)
                json_object_array_add(npd, json_object_new_string(g->names[k]));
            else if (csv_dtype_of(g->dtypes[k]))
                json_object_object_add(ndt, g->names[k],
                                       json_object_new_string(csv_dtype_of(g->dtypes[k])));
        }
        json_object_object_add(args, "dtypes", ndt);
        json_object_object_add(args, "parse_dates", npd);
    }
    /* read_csv's reader on a command of our own (its arguments; its
     * arrays on its own temps list, freed when the file is written) */
    kd_cmd sub = *c;
    sub.args = args;
    sub.cmd = "read_csv";
    sub.failed = 0;
    sub.err_type[0] = sub.err_msg[0] = '\0';
    sub.result = NULL;
    sub.nout = 0;
    sub.temps = NULL;
    kd_csv_table t;
    double tick = 0;
    ds_tick(-1, &tick);
    int rc = kd_csv_read(&sub, &t);
    ds_tick(4, &tick);
    if (rc) {
        snprintf(c->err_type, sizeof c->err_type, "%s", sub.err_type);
        snprintf(c->err_msg, sizeof c->err_msg, "ingest into '%.200s': %s", g->dataset,
                 sub.err_msg);
        /* the file may lack a column that was typed from the dataset (not
         * by the client): say it as a schema mismatch, not as read_csv's */
        for (size_t k = 0; k < g->ncols; k++) {
            char pat[DS_NAME_MAX + 32];
            snprintf(pat, sizeof pat, "names column '%s', which file", g->names[k]);
            if (strstr(sub.err_msg, pat) && !strstr(sub.err_msg, "usecols") &&
                !client_typed(c, g->names[k]))
                snprintf(c->err_msg, sizeof c->err_msg, "ingest into '%.200s': file '%.300s' "
                         "has no column '%.200s', which the dataset has; every batch of a "
                         "dataset has the same columns and dtypes", g->dataset, path,
                         g->names[k]);
        }
        /* a value of a later file that is not of the dtype the dataset took
         * from its first file (an int column, "1.5" here): pandas reading
         * all the files at once would widen the column; batches already
         * written cannot be, so say how to type the column from the start */
        for (size_t k = 0; k < g->ncols; k++) {
            char pat[DS_NAME_MAX + 32];
            snprintf(pat, sizeof pat, "('%s'): cannot read", g->names[k]);
            bool num = g->dtypes[k] == DS_INT64 || g->dtypes[k] == DS_BOOL;
            size_t len = strlen(c->err_msg);
            if (!strstr(sub.err_msg, pat) || client_typed(c, g->names[k]) ||
                g->dtypes[k] == DS_TEXT || len >= sizeof c->err_msg - 1)
                continue;
            if (g->exists)
                snprintf(c->err_msg + len, sizeof c->err_msg - len, " (the dataset's column "
                         "'%.100s' is %s, the dtype of its batches, which every batch keeps)",
                         g->names[k], ds_dtype_name(g->dtypes[k]));
            else
                snprintf(c->err_msg + len, sizeof c->err_msg - len, " (the dataset's column "
                         "'%.100s' is %s, the dtype read from the first file of this ingest; "
                         "batches of one dataset keep their dtypes, so ingest with "
                         "dtypes={'%.100s': '%s'}%s from the first file on)", g->names[k],
                         ds_dtype_name(g->dtypes[k]), g->names[k], num ? "float64" : "str",
                         num ? " (or 'str')" : "");
        }
        c->failed = 1;
        for (kd_array *a = sub.temps, *nx; a; a = nx) { /* what a failed read made */
            nx = a->next;
            kd_array_free(a);
        }
        json_object_put(args);
        return -1;
    }
    size_t n = (size_t)t.ncols;
    kd_array **arr = calloc(n + 1, sizeof *arr);
    char **names = calloc(n + 1, sizeof *names);
    ds_dtype_t *dt = calloc(n + 1, sizeof *dt);
    ds_cats *cats = calloc(n + 1, sizeof *cats);
    char *catbuf = NULL;
    if (!arr || !names || !dt || !cats)
        rc = kd_fail(c, "MemoryError", "ingest: out of memory");
    if (!rc && c->rank == 0 && t.ncat_bytes + t.ncat_offsets > 0) {
        catbuf = malloc(t.ncat_bytes + t.ncat_offsets + 1);
        if (!catbuf)
            rc = kd_fail(c, "MemoryError", "ingest: out of memory");
    }
    size_t at = 0, catpos = 0;
    for (size_t k = 0; !rc && k < n; k++) {
        arr[k] = t.col[k].array;
        names[k] = t.col[k].name;
        if (t.col[k].kind == KD_CSV_CATEGORICAL) {
            dt[k] = DS_TEXT;
            cats[k].n = (size_t)t.col[k].ncategories;
            if (c->rank != 0)
                continue;
            cats[k].cats = malloc(sizeof(char *) * (cats[k].n + 1));
            if (!cats[k].cats) {
                rc = kd_fail(c, "MemoryError", "ingest: out of memory");
                break;
            }
            const int64_t *offs = t.cat_offsets;
            for (size_t j = 0; j < cats[k].n; j++) {
                size_t l = (size_t)(offs[at + j + 1] - offs[at + j]);
                memcpy(catbuf + catpos, t.cat_bytes + offs[at + j], l);
                catbuf[catpos + l] = '\0';
                cats[k].cats[j] = catbuf + catpos;
                catpos += l + 1;
            }
            at += cats[k].n + 1;
        } else if (t.col[k].kind == KD_CSV_DATETIME) {
            dt[k] = DS_DATETIME;
        } else {
            dt[k] = arr[k]->dtype == KD_FLOAT64 ? DS_FLOAT64 : arr[k]->dtype == KD_BOOL ? DS_BOOL
                                                                                        : DS_INT64;
        }
    }
    rc = kd_agree(c, rc);
    if (!rc) {
        char what[400];
        snprintf(what, sizeof what, "file '%.300s'", path);
        rc = match_schema(c, g, n, names, dt, what);
    }
    if (!rc)
        rc = write_batches(c, g, s, arr, cats, batch_rows);
    if (!rc)
        *skipped += t.skipped;
    for (size_t k = 0; cats && k < n; k++)
        free(cats[k].cats);
    free(cats);
    free(catbuf);
    free(names);
    free(dt);
    free(arr);
    kd_csv_table_free(&t);
    /* the read's arrays: freed now, not at the end of the command */
    for (kd_array *a = sub.temps, *nx; a; a = nx) {
        nx = a->next;
        kd_array_free(a);
    }
    json_object_put(args);
    return rc;
}

static int cmd_ds_ingest_csv(kd_cmd *c)
{
    ds_ingest *g = ingest_arg(c);
    if (!g)
        return -1;
    int64_t br = batch_rows_arg(c);
    json_object *files;
    if (br < 0)
        return -1;
    if (!json_object_object_get_ex(c->args, "files", &files) ||
        !json_object_is_type(files, json_type_array) || json_object_array_length(files) < 1)
        return kd_fail(c, "TypeError", "ds_ingest_csv: 'files' must be a list of one or more "
                       "file names");
    for (size_t i = 0; i < json_object_array_length(files); i++)
        if (!json_object_is_type(json_object_array_get_idx(files, i), json_type_string))
            return kd_fail(c, "TypeError", "ds_ingest_csv: 'files' must be a list of file "
                           "names");
    ds_store_t *s = g->s;
    g->last_used = shared_now(c);
    int64_t rows0 = g->rows, skipped = 0;
    size_t nb0 = g->nb;
    for (size_t i = 0; i < json_object_array_length(files); i++)
        if (ingest_file(c, g, s, json_object_get_string(json_object_array_get_idx(files, i)),
                        br, &skipped)) {
            ingest_failed(c, g);
            return -1;
        }
    kd_result_i64(c, "rows", g->rows - rows0);
    kd_result_i64(c, "batches", (int64_t)(g->nb - nb0));
    kd_result_i64(c, "skipped", skipped);
    kd_result_set(c, "columns", columns_json(g->ncols, g->names, g->dtypes));
    return 0;
}

/* ds_ingest_arrays {token, batch_rows, columns: [{name, array, dtype, ncat?,
 * frames?: [offsets first, bytes first, end]}]}: pdarrays of equal length
 * (text: int64 codes, with their categories in the request's frames). */
static int cmd_ds_ingest_arrays(kd_cmd *c)
{
    ds_ingest *g = ingest_arg(c);
    if (!g)
        return -1;
    int64_t br = batch_rows_arg(c);
    json_object *cols;
    if (br < 0)
        return -1;
    if (!json_object_object_get_ex(c->args, "columns", &cols) ||
        !json_object_is_type(cols, json_type_array) || json_object_array_length(cols) < 1 ||
        json_object_array_length(cols) > DS_MAX_COLUMNS)
        return kd_fail(c, "TypeError", "ds_ingest_arrays: 'columns' must be a list of 1 to %d "
                       "columns", DS_MAX_COLUMNS);
    size_t n = json_object_array_length(cols);
    char **names = calloc(n, sizeof *names);
    ds_dtype_t *dt = calloc(n, sizeof *dt);
    kd_array **arr = calloc(n, sizeof *arr);
    ds_cats *cats = calloc(n, sizeof *cats);
    int rc = (!names || !dt || !arr || !cats) ? kd_fail(c, "MemoryError", "ingest: out of memory")
                                            : 0;
    for (size_t k = 0; !rc && k < n; k++) {
        json_object *o = json_object_array_get_idx(cols, k), *x;
        if (!json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "name", &x) || !json_object_is_type(x, json_type_string) ||
            !json_object_get_string_len(x) || json_object_get_string_len(x) > DS_NAME_MAX) {
            rc = kd_fail(c, "TypeError", "ds_ingest_arrays: column %zu has no name of 1 to %d "
                         "bytes", k, DS_NAME_MAX);
            break;
        }
        names[k] = (char *)json_object_get_string(x);
        if (!json_object_object_get_ex(o, "dtype", &x) ||
            ds_dtype_parse(json_object_get_string(x), &dt[k])) {
            rc = kd_fail(c, "TypeError", "ds_ingest_arrays: column '%.200s' has no known dtype",
                         names[k]);
            break;
        }
        if (!json_object_object_get_ex(o, "array", &x) ||
            !(arr[k] = kd_lookup(json_object_get_string(x)))) {
            rc = kd_fail(c, "KeyError", "ds_ingest_arrays: column '%.200s': no such pdarray",
                         names[k]);
            break;
        }
        if (kd_of_ds(dt[k]) != arr[k]->dtype)
            rc = kd_fail(c, "TypeError", "ds_ingest_arrays: column '%.200s' is %s but its "
                         "pdarray holds %s", names[k], ds_dtype_name(dt[k]),
                         kd_dtype_name(arr[k]->dtype));
        else if (arr[k]->size != arr[0]->size)
            rc = kd_fail(c, "ValueError", "ds_ingest_arrays: column '%.200s' has %lld rows, "
                         "column '%.200s' %lld: every column must have as many", names[k],
                         (long long)arr[k]->size, names[0], (long long)arr[0]->size);
        for (size_t j = 0; !rc && j < k; j++)
            if (strcmp(names[j], names[k]) == 0)
                rc = kd_fail(c, "ValueError", "ds_ingest_arrays: column '%.200s' is named "
                             "twice", names[j]);
        if (rc || dt[k] != DS_TEXT)
            continue;
        /* categories: n; offsets (n + 1 int64) in frames [f0, f1), bytes in [f1, f2) */
        json_object *fr;
        int64_t nc = json_object_object_get_ex(o, "ncat", &x) ? json_object_get_int64(x) : -1;
        if (nc < 0 || nc >= (1ll << 30) || !json_object_object_get_ex(o, "frames", &fr) ||
            !json_object_is_type(fr, json_type_array) || json_object_array_length(fr) != 3) {
            rc = kd_fail(c, "TypeError", "ds_ingest_arrays: text column '%.200s' needs 'ncat' "
                         "and 'frames'", names[k]);
            break;
        }
        cats[k].n = (size_t)nc;
        if (c->rank != 0)
            continue;
        int f[3];
        for (int j = 0; j < 3; j++)
            f[j] = json_object_get_int(json_object_array_get_idx(fr, (size_t)j));
        if (f[0] < 0 || f[0] > f[1] || f[1] > f[2] || f[2] > c->nframes) {
            rc = kd_fail(c, "ValueError", "ds_ingest_arrays: column '%.200s': bad frame "
                         "numbers", names[k]);
            break;
        }
        size_t lo = 0, lb = 0;
        for (int j = f[0]; j < f[1]; j++)
            lo += c->frame_len[j];
        for (int j = f[1]; j < f[2]; j++)
            lb += c->frame_len[j];
        if (lo != 8 * ((size_t)nc + 1)) {
            rc = kd_fail(c, "ValueError", "ds_ingest_arrays: column '%.200s': %zu bytes of "
                         "category offsets, not %lld", names[k], lo, 8 * ((long long)nc + 1));
            break;
        }
        int64_t *off = malloc(lo);
        char *txt = malloc(lb + 1);
        cats[k].cats = calloc((size_t)nc + 1, sizeof(char *));
        char *store = malloc(lb + (size_t)nc + 1);
        if (!off || !txt || !cats[k].cats || !store) {
            free(off), free(txt), free(store);
            rc = kd_fail(c, "MemoryError", "ingest: out of memory");
            break;
        }
        cats[k].cats[nc] = store; /* freed through this slot */
        size_t p = 0;
        for (int j = f[0]; j < f[1]; p += c->frame_len[j], j++)
            memcpy((char *)off + p, c->frame[j], c->frame_len[j]);
        p = 0;
        for (int j = f[1]; j < f[2]; p += c->frame_len[j], j++)
            memcpy(txt + p, c->frame[j], c->frame_len[j]);
        p = 0;
        for (int64_t j = 0; !rc && j < nc; j++) {
            if (off[j] < 0 || off[j] > off[j + 1] || (size_t)off[j + 1] > lb ||
                off[j + 1] - off[j] > DS_CATEGORY_MAX ||
                memchr(txt + off[j], 0, (size_t)(off[j + 1] - off[j]))) {
                rc = kd_fail(c, "ValueError", "ds_ingest_arrays: column '%.200s': category "
                             "%lld has bad offsets, a NUL byte or more than %d bytes",
                             names[k], (long long)j, DS_CATEGORY_MAX);
                break;
            }
            size_t l = (size_t)(off[j + 1] - off[j]);
            memcpy(store + p, txt + off[j], l);
            store[p + l] = '\0';
            cats[k].cats[j] = store + p;
            p += l + 1;
        }
        free(off);
        free(txt);
    }
    ds_store_t *s = g->s;
    if (!rc)
        rc = kd_agree(c, 0);
    else
        rc = kd_agree(c, rc);
    if (!rc)
        rc = match_schema(c, g, n, names, dt, "these arrays");
    int64_t rows0 = g->rows;
    size_t nb0 = g->nb;
    if (!rc) {
        g->last_used = shared_now(c);
        rc = write_batches(c, g, s, arr, cats, br);
    }
    for (size_t k = 0; cats && k < n; k++)
        if (cats[k].cats) {
            free(cats[k].cats[cats[k].n]);
            free(cats[k].cats);
        }
    free(cats);
    free(arr);
    free(dt);
    free(names);
    if (rc) {
        /* argument errors leave the ingest open; data errors abort it */
        if (s)
            ingest_failed(c, g);
        return -1;
    }
    kd_result_i64(c, "rows", g->rows - rows0);
    kd_result_i64(c, "batches", (int64_t)(g->nb - nb0));
    kd_result_set(c, "columns", columns_json(g->ncols, g->names, g->dtypes));
    return 0;
}

static int cmd_ds_ingest_commit(kd_cmd *c)
{
    ds_ingest *g = ingest_arg(c);
    if (!g)
        return -1;
    ds_store_t *s = g->s;
    int rc = 0;
    if (c->rank == 0) {
        if (g->ncols == 0)
            rc = kd_fail(c, "ValueError", "ingest into '%.200s': nothing was ingested, so the "
                         "dataset's columns are unknown", g->dataset);
        ds_column_def_t *defs = calloc(g->ncols + 1, sizeof *defs);
        if (!rc && !defs)
            rc = kd_fail(c, "MemoryError", "ingest: out of memory");
        for (size_t k = 0; !rc && k < g->ncols; k++) {
            defs[k].name = g->names[k];
            defs[k].dtype = g->dtypes[k];
        }
        ds_txn_t *t = NULL;
        uint64_t version = 0;
        ds_dataset_def_t def = {.name = g->dataset, .kind = DS_KIND_BASE, .ncols = g->ncols,
                                .cols = defs};
        /* the store destroyed under the ingest: said at once (a commit
         * would wait for libfam's timeout reading its head first) */
        int e = rc ? 0 : ds_check(s) == FAM_ENOTFOUND ? FAM_ENOTFOUND : ds_txn_begin(s, &t);
        if (!e && !rc)
            e = ds_txn_create(t, &def);
        if (!e && !rc && g->nb)
            e = ds_txn_append_begun(t, g->dataset, g->ncols, g->dtypes, g->nb, g->refs);
        if (!e && !rc) {
            e = ds_txn_commit(t, &version);
            t = NULL;
            /* the commands that come next (filters, derives) use the
             * store's own handle: give it the catalog just committed, so
             * it does not fetch and parse it again (1 ms for a store of
             * 100 datasets) */
            ds_slot *sl = e ? NULL : slot_of(g->store);
            if (sl && sl->s != s)
                ds_share_catalog(sl->s, s);
        }
        if (t)
            ds_txn_abort(t);
        free(defs);
        if (e == FAM_EEXIST)
            rc = kd_fail(c, "ValueError", "ingest into '%.200s': %s (every batch of a dataset "
                         "has the same columns and dtypes)", g->dataset, ds_last_error());
        else if (e && ds_check(s) == FAM_ENOTFOUND)
            rc = kd_fail(c, "KeyError", "ingest into '%.200s': the dataset store '%s' was "
                         "destroyed while the ingest was open (its batches went with it); "
                         "ingest again", g->dataset, g->store);
        else if (e)
            rc = ds_fail(c, e, "ingest into '%.200s': commit", g->dataset);
        kd_result_i64(c, "version", (int64_t)version);
        kd_result_i64(c, "rows", g->rows);
        kd_result_i64(c, "batches", (int64_t)g->nb);
    }
    if (kd_agree(c, rc)) {
        ingest_failed(c, g);
        return -1;
    }
    /* Each rank wrote its block of the rows; the derived items and the
     * aggregations of batch b are computed by rank b % nranks: it reads
     * the rest of its new batches now, into its column cache (the queries
     * after an ingest then read no FAM; kd_dscache.c). */
    ds_info_t *in = NULL;
    if (c->nranks > 1 && g->nb && ds_info(s, g->dataset, &in) == 0 && in->nbatches >= g->nb)
        for (size_t b = in->nbatches - g->nb; b < in->nbatches; b++)
            if (b % (size_t)c->nranks == (size_t)c->rank)
                kd_dsc_warm(s, in, b);
    ds_free_info(in);
    ingest_free(g, false); /* committed: the handles are closed, nothing deleted */
    return 0;
}

static int cmd_ds_ingest_abort(kd_cmd *c)
{
    ds_ingest *g = ingest_arg(c);
    if (!g) { /* already gone (aborted after a failure): nothing to do */
        c->failed = 0;
        return 0;
    }
    ingest_failed(c, g);
    return 0;
}

void kd_register_ds(void)
{
    kd_register_dsderive(); /* derived datasets: kd_cmd_dsderive.c */
    kd_register("ds_open", cmd_ds_open);
    kd_register("ds_list", cmd_ds_list);
    kd_register("ds_info", cmd_ds_info);
    kd_register("ds_drop", cmd_ds_drop);
    kd_register("ds_read", cmd_ds_read);
    kd_register("ds_reclaim", cmd_ds_reclaim);
    kd_register("ds_verify", cmd_ds_verify);
    kd_register("ds_destroy", cmd_ds_destroy);
    kd_register("ds_ingest_begin", cmd_ds_ingest_begin);
    kd_register("ds_ingest_csv", cmd_ds_ingest_csv);
    kd_register("ds_ingest_arrays", cmd_ds_ingest_arrays);
    kd_register("ds_ingest_commit", cmd_ds_ingest_commit);
    kd_register("ds_ingest_abort", cmd_ds_ingest_abort);
}

/* ---- for the other dataset command files (kd_cmd_dsagg.c) -------------------------------- */

int kd_ds_attach(kd_cmd *c, const char **store, const char **dataset, struct ds_store **s,
                 struct ds_info **in, size_t *saved_nb)
{
    *in = NULL;
    if (store_name_arg(c, store) || dataset_arg(c, "dataset", dataset) ||
        get_store(c, *store, false, KD_DS_MODE, s))
        return -1;
    return info_everywhere(c, *s, *store, *dataset, in, saved_nb);
}

void kd_ds_detach(struct ds_info *in, size_t saved_nb)
{
    info_release(in, saved_nb);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* ds_tool.c — kodiak-ds, the dataset store from the command line: list,
 * describe, check, clean up and destroy stores (for people after a crash,
 * and for tests that check a store some other program left).
 *
 *   FAM_SERVERS=host:port[,...] [FAM_PROVIDER=tcp] kodiak-ds COMMAND STORE [ARGS]
 *
 *   list STORE               one line per dataset: name kind rows batches
 *   info STORE DATASET       the dataset's lineage, columns and batches
 *   verify STORE [--codes]   ds_verify; "ok: N arrays checked", else the
 *                            problem on stderr and exit status 1
 *   reclaim STORE [AGE]      ds_reclaim with AGE seconds (default
 *                            DS_RECLAIM_AGE, safe while writers run)
 *   destroy STORE            the store and everything in it
 *
 * Exit status: 0 done, 1 the operation failed (message on stderr), 2 usage. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kodiak/dataset.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: FAM_SERVERS=host:port[,...] kodiak-ds COMMAND STORE [ARGS]\n"
            "  list STORE               datasets: name kind rows batches\n"
            "  info STORE DATASET       lineage, columns and batches\n"
            "  verify STORE [--codes]   check the catalog against FAM\n"
            "  reclaim STORE [AGE]      free what crashed writers left (AGE seconds,\n"
            "                           default %d: safe while writers run)\n"
            "  destroy STORE            remove the store and all it holds\n",
            DS_RECLAIM_AGE);
    return 2;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "kodiak-ds: %s: %s (%s)\n", what, ds_last_error(), ds_strerror(rc));
    return 1;
}

static int do_list(ds_store_t *s)
{
    char **names;
    size_t n;
    int rc = ds_list(s, &names, &n);
    if (rc) return fail("list", rc);
    for (size_t i = 0; i < n && !rc; i++) {
        ds_info_t *in;
        if ((rc = ds_info(s, names[i], &in))) break;
        printf("%s %s %" PRIu64 " %zu\n", in->name, ds_kind_name(in->kind), in->rows,
               in->nbatches);
        ds_free_info(in);
    }
    ds_free_names(names, n);
    return rc ? fail("info", rc) : 0;
}

static int do_info(ds_store_t *s, const char *name)
{
    ds_info_t *in;
    int rc = ds_info(s, name, &in);
    if (rc) return fail("info", rc);
    printf("dataset %s (%s), catalog version %" PRIu64 "\n", in->name,
           ds_kind_name(in->kind), in->version);
    if (in->kind != DS_KIND_BASE)
        printf("base %s, expression \"%s\", %" PRIu64 " base batches processed\n",
               in->base, in->expr, in->base_batches);
    printf("%" PRIu64 " rows in %zu batches\n", in->rows, in->nbatches);
    for (size_t c = 0; c < in->ncols; c++)
        printf("column %s %s\n", in->cols[c].name, ds_dtype_name(in->cols[c].dtype));
    for (size_t b = 0; b < in->nbatches; b++) {
        printf("batch %zu %s rows %" PRIu64 " first_row %" PRIu64, b, in->batches[b].id,
               in->batches[b].rows, in->batches[b].first_row);
        for (size_t c = 0; c < in->ncols; c++)
            if (in->cols[c].dtype == DS_TEXT)
                printf(" %s:%" PRIu64 "_categories", in->cols[c].name, in->batches[b].ncat[c]);
        printf("\n");
    }
    ds_free_info(in);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *cmd = argv[1], *store = argv[2];
    int known = !strcmp(cmd, "list") || !strcmp(cmd, "info") || !strcmp(cmd, "verify") ||
                !strcmp(cmd, "reclaim") || !strcmp(cmd, "destroy");
    if (!known || (!strcmp(cmd, "info") && argc != 4) ||
        ((!strcmp(cmd, "list") || !strcmp(cmd, "destroy")) && argc != 3) ||
        ((!strcmp(cmd, "verify") || !strcmp(cmd, "reclaim")) && argc > 4))
        return usage();
    int codes = 0;
    uint64_t age = DS_RECLAIM_AGE;
    if (!strcmp(cmd, "verify") && argc == 4) {
        if (strcmp(argv[3], "--codes")) return usage();
        codes = 1;
    }
    if (!strcmp(cmd, "reclaim") && argc == 4) {
        char *end;
        age = strtoull(argv[3], &end, 10);
        if (!*argv[3] || *end || argv[3][0] == '-') return usage();
    }
    fam_t *f;
    int rc = fam_initialize(NULL, &f); /* $FAM_SERVERS, $FAM_PROVIDER */
    if (rc) return fail("connecting to the memory servers", rc);
    int status = 0;
    if (!strcmp(cmd, "destroy")) {
        if ((rc = ds_destroy_store(f, store))) status = fail("destroy", rc);
        else printf("destroyed %s\n", store);
        fam_finalize(f);
        return status;
    }
    ds_store_t *s;
    if ((rc = ds_open(f, store, 0, 0, &s))) {
        status = fail("open", rc); /* before fam_finalize replaces the message */
        fam_finalize(f);
        return status;
    }
    if (!strcmp(cmd, "list")) {
        status = do_list(s);
    } else if (!strcmp(cmd, "info")) {
        status = do_info(s, argv[3]);
    } else if (!strcmp(cmd, "verify")) {
        size_t n = 0;
        if ((rc = ds_verify(s, codes ? DS_VERIFY_CODES : 0, &n))) status = fail("verify", rc);
        else printf("ok: %zu arrays checked\n", n);
    } else {
        ds_reclaim_stats_t st;
        if ((rc = ds_reclaim(s, age, &st))) status = fail("reclaim", rc);
        else
            printf("freed %zu arrays, %zu category lists, %zu snapshots; kept %zu younger "
                   "than %" PRIu64 " s\n", st.arrays, st.categories, st.snapshots,
                   st.kept_young, age);
    }
    ds_close(s);
    fam_finalize(f);
    return status;
}

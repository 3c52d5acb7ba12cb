/* SPDX-License-Identifier: Apache-2.0 */
/* openfam_c_example.c — a program written only against OpenFAM's C API
 * (fam_c.h), as it would be for OpenFAM itself: it builds with
 * `cc openfam_c_example.c $(pkg-config --cflags --libs libfam)` and runs
 * against the famd servers named in $FAM_SERVERS.
 *
 * It creates a region, stores a table of squares in a named data item,
 * looks the item up again by name, reads it back, counts with an atomic
 * and prints what it found. Exit status 0 when every value read back is
 * the one written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fam/fam_c.h>

#define N 1024

static int die(const char *what)
{
    fprintf(stderr, "%s failed: error %d: %s\n", what, c_fam_error(), c_fam_error_msg());
    return 1;
}

int main(void)
{
    Fam_Options opts;
    memset(&opts, 0, sizeof opts);
    c_fam *fam = c_fam_create();
    if (c_fam_initialize(fam, "example", &opts) != 0) return die("c_fam_initialize");

    Fam_Region_Attributes attr;
    memset(&attr, 0, sizeof attr);
    attr.memoryType = VOLATILE;
    attr.interleaveEnable = DISABLE;
    c_fam_region_desc *region = c_fam_create_region(fam, "example_region", 1 << 20, 0777, &attr);
    if (!region) return die("c_fam_create_region");

    c_fam_desc *item = c_fam_allocate_named(fam, "squares", N * sizeof(int64_t), 0600, region);
    if (!item) return die("c_fam_allocate_named");
    int64_t squares[N];
    for (int i = 0; i < N; i++) squares[i] = (int64_t)i * i;
    if (c_fam_put_blocking(fam, squares, item, 0, sizeof squares) != 0)
        return die("c_fam_put_blocking");

    c_fam_desc *again = c_fam_lookup(fam, "squares", "example_region");
    if (!again) return die("c_fam_lookup");
    int64_t back[N];
    memset(back, 0, sizeof back);
    if (c_fam_get_blocking(fam, back, again, 0, sizeof back) != 0)
        return die("c_fam_get_blocking");
    int bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != (int64_t)i * i;

    int64_t before = 0;
    for (int i = 0; i < 10; i++)
        if (c_fam_fetch_add_int64(fam, again, 0, 1, &before) != 0)
            return die("c_fam_fetch_add_int64");

    c_fam_stat st;
    if (c_fam_stat_data(fam, again, &st) != 0) return die("c_fam_stat_data");
    printf("item '%s': %llu bytes, mode %o, %d of %d values wrong, counter %lld\n",
           st.name, (unsigned long long)st.size, (unsigned)st.perm & 0777, bad, N,
           (long long)before + 1);

    if (c_fam_lookup(fam, "no_such_item", "example_region") == NULL)
        printf("lookup of a missing item: error %d (FAM_ERR_NOTFOUND is %d)\n",
               c_fam_error(), FAM_ERR_NOTFOUND);

    c_fam_destroy_region(fam, region);
    c_fam_finalize(fam, "example");
    c_fam_delete(fam);
    return bad == 0 && before + 1 == 10 ? 0 : 1;
}

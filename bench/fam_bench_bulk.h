/* SPDX-License-Identifier: Apache-2.0 */
/* fam_bench_bulk.h — the bulk part of fam_bench (fam_bench_bulk.c). */
#ifndef FAM_BENCH_BULK_H
#define FAM_BENCH_BULK_H

#include <stdint.h>

struct bulk_opts {
    const char *famd;      /* famd binary */
    const char *providers; /* "shm,tcp" */
    uint64_t bytes;        /* item size for gather/scatter/GUPS */
    uint64_t n;            /* random indices */
    uint64_t naive;        /* indices for the one-RMA-per-element path */
    uint64_t copy_bytes;   /* bytes copied between two memory servers */
    int trials;            /* best of */
};

int fam_bench_bulk(const struct bulk_opts *o);

#endif

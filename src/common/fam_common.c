/* SPDX-License-Identifier: Apache-2.0 */
/* fam_common.c — sizes on command lines ("256M"), parsed the same way by
 * famd (--pool-size, --conn-buffer, --quota-bytes) and kodiakd
 * (--memory-limit); and the monotonic clock all three poll with. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "fam_common.h"
#include "fam/fam.h"

int fam_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    case 't': case 'T': mul = 1ull << 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || (v && mul > UINT64_MAX / v))
        return -1;
    *out = v * mul;
    return 0;
}

uint64_t fam_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* fam_dtype_size is libfam's public API (include/fam/fam.h); famd's bulk
 * requests use it too, so it lives here once. */
uint64_t fam_dtype_size(fam_dtype_t t)
{
    switch (t) {
    case FAM_INT32: case FAM_UINT32: case FAM_FLOAT: return 4;
    case FAM_INT64: case FAM_UINT64: case FAM_DOUBLE: return 8;
    default: return 0;
    }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* fa_internal.h — libfamarray's private structures, shared by its files.
 *
 * The on-FAM layout (little-endian, whatever the host):
 *   bytes 0..7     magic "KDFAMARR"
 *   bytes 8..11    u32 layout version (1)
 *   bytes 12..15   u32 dtype (fa_dtype_t)
 *   bytes 16..23   u64 size: number of elements
 *   bytes 24..31   u64 bytes per element (a check: it follows from dtype)
 *   bytes 32..4095 zero (room for later fields)
 *   bytes 4096..   the elements, packed
 * The data item is exactly FA_HEADER_BYTES + size * itemsize bytes long; an
 * item of another length, magic or version is not a FAM array. */
#ifndef FA_INTERNAL_H
#define FA_INTERNAL_H

#include <stdint.h>

#include "kodiak/famarray.h"

#define FA_MAGIC "KDFAMARR"
#define FA_VERSION 1u
#define FA_HEADER_USED 32 /* bytes of the header that carry fields */

/* Indexed calls shift each index by the header's length in elements and
 * hand libfam a chunk at a time: the shifted copy stays small (512 KiB).
 * Each chunk is finished (blocking call) before the next one starts, and
 * libfam promises that one indexed scatter writes in index order (fam.h),
 * so "the last duplicate in index order wins" holds for fa_scatter
 * whatever the chunk size. tests/famarray checks it across chunk ends. */
#define FA_CHUNK 65536u

/* An open FAM array (fa_array_t). */
struct fa_array {
    fam_t *f;           /* the caller's connection (not owned) */
    fam_item_t *item;   /* the data item (owned: released by close) */
    fa_dtype_t dtype;
    uint64_t size;      /* elements */
    uint64_t esize;     /* bytes per element */
    uint64_t shift;     /* FA_HEADER_BYTES / esize: index of element 0 */
    char name[FAM_NAME_MAX + 1];
    char region[FAM_NAME_MAX + 1];
};

#endif

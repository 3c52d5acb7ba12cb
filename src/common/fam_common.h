/* SPDX-License-Identifier: Apache-2.0 */
/* fam_common.h — small pieces famd, libfam and kodiakd share, each defined
 * once: the monotonic clock, "256M"-style size parsing, error strings,
 * the sizes of the FAM atomic dtypes (fam_dtype_size, declared in fam.h).
 *
 * src/common/ is built into the static library kodiak_common (position
 * independent, linked whole into libfam.so and famd; kodiakd takes what it
 * uses). Its names keep the fam_ prefix: they are the FAM layer's own
 * pieces (the wire protocol in fam_proto.h, the CPU atomics, the crowd
 * check, shm names, the spin lock in fam_spin.c), shared with the memory
 * server rather than owned by libfam. fam_strerror is also public API,
 * declared in include/fam/fam.h. */
#ifndef FAM_COMMON_H
#define FAM_COMMON_H

#include <stdint.h>

/* CLOCK_MONOTONIC in microseconds. (Not inline: clock_gettime would
 * need every includer to ask for POSIX; the call costs ~1 ns beside
 * clock_gettime's ~20.) */
uint64_t fam_now_us(void);

/* "64M", "1G", "4096", "2KiB", "3GB" -> bytes in *out (suffixes k, m, g, t
 * in either case are powers of 1024; an optional "i" and/or "B" may
 * follow). Returns 0, or -1 (and leaves *out alone) for anything else or a
 * value past UINT64_MAX. */
int fam_parse_size(const char *s, uint64_t *out);

#endif /* FAM_COMMON_H */

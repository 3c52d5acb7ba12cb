/* SPDX-License-Identifier: Apache-2.0 */
/* h5fam_internal.h — the h5fam file layout, shared by the driver (h5fam.c)
 * and the famh5 tool (famh5.c). docs/H5FAM.md describes it. */
#ifndef H5FAM_INTERNAL_H
#define H5FAM_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "fam/fam.h"

#define H5FAM_MAGIC "KFAMH5\r\n"   /* first 8 bytes of a header item */
#define H5FAM_VERSION 1u
#define H5FAM_HDR_BYTES 72         /* encoded header, writer word included */
#define H5FAM_WRITER_OFF 64        /* offset of the writer word (CAS'd) */
#define H5FAM_HDR_ITEM 4096        /* size of the header item */
#define H5FAM_EXT_BASE (1ull << 20) /* first extent: 1 MiB */
#define H5FAM_EXT_MAX (64ull << 20) /* extents double up to 64 MiB */
#define H5FAM_MAXADDR ((1ull << 52) - 1) /* 4 PiB: extent counts stay small */
#define H5FAM_NAME_MAX (FAM_NAME_MAX - 16) /* room for "#<extent>" */
#define H5FAM_SIEVE_BYTES 4096 /* raw-data sieve H5Pset_fapl_fam sets (h5fam.c) */
#define H5FAM_SERVERS_MAX 1024
#define H5FAM_PROVIDER_MAX 32

/* What H5Pset_fapl_fam stores in the fapl ("" = from the environment). */
typedef struct h5fam_fapl {
    char servers[H5FAM_SERVERS_MAX];   /* "host:port[,...]" */
    char provider[H5FAM_PROVIDER_MAX]; /* "shm", "tcp" */
} h5fam_fapl_t;

/* The header, decoded. Encoded little-endian: magic[8], version u32, pad
 * u32, eof, hwm, base, maxext, next (u64 each), CRC-32 of bytes 0..55
 * (u32), pad u32, writer u64 at H5FAM_WRITER_OFF (outside the CRC: it
 * changes by compare-and-swap alone). */
typedef struct h5fam_hdr {
    uint64_t eof;    /* logical end of file: bytes past it read as zeros */
    uint64_t hwm;    /* extents may hold non-zero bytes below this */
    uint64_t base;   /* size of extent 0, a power of two */
    uint64_t maxext; /* largest extent size, a power of two >= base */
    uint64_t next;   /* extents 0..next-1 may exist; none from next on */
    uint64_t writer; /* 0, or the tag of the process writing it */
} h5fam_hdr_t;

int h5fam_split_name(const char *full, char *region, char *name);
void h5fam_extent_name(char *out, const char *name, uint64_t k);
uint64_t h5fam_ext_start(const h5fam_hdr_t *h, uint64_t k);
uint64_t h5fam_ext_size(const h5fam_hdr_t *h, uint64_t k);
uint64_t h5fam_ext_of(const h5fam_hdr_t *h, uint64_t addr);
void h5fam_hdr_encode(const h5fam_hdr_t *h, uint8_t out[H5FAM_HDR_BYTES]);
int h5fam_hdr_decode(const uint8_t in[H5FAM_HDR_BYTES], h5fam_hdr_t *h,
                     char *why, size_t whylen);
/* The writer word a process sets: 1 << 63 | host hash << 32 | pid. */
uint64_t h5fam_writer_tag(void);
uint64_t h5fam_writer_tag_for(pid_t pid);
int h5fam_writer_dead(uint64_t tag);
fam_t *h5fam_connect(const h5fam_fapl_t *fa, int *rc_out);

#endif

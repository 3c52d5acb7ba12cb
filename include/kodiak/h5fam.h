/* SPDX-License-Identifier: Apache-2.0 */
/* h5fam.h — the HDF5 virtual file driver "fam": HDF5 files kept in FAM.
 *
 * Any HDF5 (1.10) program that sets this driver on its file access
 * property list creates, opens, reads and writes files whose bytes live in
 * FAM data items served by famd:
 *
 *     hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
 *     H5Pset_fapl_fam(fapl, NULL, NULL);        // $FAM_SERVERS, $FAM_PROVIDER
 *     hid_t f = H5Fcreate("climate/run1.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
 *
 * A file name is "REGION/NAME": the FAM region (which must exist) and the
 * file's name inside it. The file is one header data item called NAME and
 * extent items called NAME#0, NAME#1, ... (docs/H5FAM.md). Errors are
 * pushed on HDF5's error stack with a message naming the file and the
 * cause. */
#ifndef KODIAK_H5FAM_H
#define KODIAK_H5FAM_H

#include <stdint.h>

#include <hdf5.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The driver's id (registers it on first use); H5I_INVALID_HID on failure.
 * Named so it cannot be confused with HDF5's own "family" driver
 * (H5FD_FAMILY). */
#define H5FD_FAM_KODIAK (h5fam_init())
hid_t h5fam_init(void);

/* Select the driver on a file access property list. servers is
 * "host:port[,host:port...]" and provider "shm" or "tcp"; NULL takes
 * $FAM_SERVERS / $FAM_PROVIDER as libfam does. */
herr_t H5Pset_fapl_fam(hid_t fapl, const char *servers, const char *provider);

/* Remove the file `name` ("REGION/NAME") from FAM: its extents and its
 * header item (famh5 rm; kodiakd's to_hdf after a failed write). fapl
 * holds the servers and provider (H5Pset_fapl_fam) or is H5P_DEFAULT for
 * $FAM_SERVERS / $FAM_PROVIDER. Unless force, refused while another live
 * process has the file open for writing. 0, or -1 with the cause on
 * HDF5's error stack. */
herr_t h5fam_remove(hid_t fapl, const char *name, int force);

/* Counters of FAM operations the driver issued in this process (each one
 * a request to a memory server: a put, a get, an allocate, a lookup...),
 * for benchmarks and tests that count round trips per HDF5 read. */
typedef struct h5fam_stats {
    uint64_t reads;     /* driver read callbacks */
    uint64_t writes;    /* driver write callbacks */
    uint64_t fam_gets;  /* fam get requests issued */
    uint64_t fam_puts;  /* fam put requests issued */
    uint64_t fam_other; /* lookups, allocations, atomics, stats */
    uint64_t read_bytes;  /* bytes HDF5 asked the read callbacks for */
    uint64_t write_bytes; /* bytes HDF5 gave the write callbacks */
} h5fam_stats_t;
void h5fam_get_stats(h5fam_stats_t *out);
void h5fam_reset_stats(void);

#ifdef __cplusplus
}
#endif
#endif /* KODIAK_H5FAM_H */

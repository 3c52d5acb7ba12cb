/* SPDX-License-Identifier: Apache-2.0 */
/* fam.h — libfam, the client library of Kodiak's fabric-attached memory.
 *
 * An OpenFAM-style API: a program connects to one or more memory servers
 * (famd), creates or looks up regions, allocates named data items inside
 * them and reads, writes and updates their bytes with one-sided RMA and
 * atomics over libfabric. Control requests (create, lookup, permissions)
 * go to famd as messages; famd checks every one of them.
 *
 * Every call returns 0 (or a count) on success and a negative FAM_E* code on
 * failure. fam_strerror() names a code; fam_last_error() gives the message
 * of the last failure in the calling thread ("item 'x' not found in region
 * 'r'"). All calls are thread safe. */
#ifndef FAM_FAM_H
#define FAM_FAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FAM_NAME_MAX 255 /* longest region or item name, in bytes */

/* Error codes. Every failing call returns one of these (negative). */
enum fam_error {
    FAM_OK = 0,
    FAM_EINVAL = -1,       /* bad argument: NULL, empty name, zero size... */
    FAM_ENOTFOUND = -2,    /* no region or item of that name or id */
    FAM_EEXIST = -3,       /* the name is taken */
    FAM_EPERM = -4,        /* the caller lacks the permission */
    FAM_EOUTOFRANGE = -5,  /* offset or size past the end of the item */
    FAM_ENOSPACE = -6,     /* region or pool full */
    FAM_EUNREACHABLE = -7, /* memory server unreachable or connection lost */
    FAM_EPROTO = -8,       /* malformed or unexpected message */
    FAM_ENOMEM = -9,       /* out of local memory */
    FAM_EFABRIC = -10,     /* libfabric reported an error */
    FAM_ENOTSUP = -11,     /* operation not supported here */
    FAM_EBUSY = -12,       /* resource in use */
    FAM_EIO = -13,         /* file I/O failed or data damaged */
    FAM_ETIMEOUT = -14,    /* the server did not answer in time */
};

typedef struct fam fam_t;               /* one connection to the memory servers */
typedef struct fam_region fam_region_t; /* a region descriptor */
typedef struct fam_item fam_item_t;     /* a data item descriptor */

/* How to connect. Zeroed fields take their defaults. */
typedef struct fam_options {
    const char *servers;  /* "host:port[,host:port...]"; NULL: $FAM_SERVERS */
    /* "shm", "tcp" or "sockets" for every server; NULL: $FAM_PROVIDER; unset,
     * "" or "auto": per server, shm for a famd proven to be on this host
     * and tcp for the others (one client may use both; docs/DEPLOY.md).
     * Forcing shm with a server on another host is an error (FAM_EINVAL). */
    const char *provider;
    int timeout_ms;       /* control request timeout; 0: 30000 */
    /* "memory_server" (default): all data moves over the fabric.
     * "shared_memory": where a memory server's pool is a file on this host
     * that this process may open, map it and do put/get, gather/scatter,
     * copies and atomics as memory operations (control still goes to famd).
     * NULL: $FAM_MODEL, else "memory_server". */
    const char *model;
} fam_options_t;

typedef enum fam_memory_type {
    FAM_MEMORY_DEFAULT = 0,    /* whatever the memory server's pool is */
    FAM_MEMORY_VOLATILE = 1,   /* lost when the memory server restarts */
    FAM_MEMORY_PERSISTENT = 2, /* kept across restarts (needs a pool file) */
} fam_memory_type_t;

typedef enum fam_interleave {
    FAM_INTERLEAVE_DEFAULT = 0, /* as DISABLE */
    FAM_INTERLEAVE_ENABLE = 1,  /* stripe items over all memory servers */
    FAM_INTERLEAVE_DISABLE = 2, /* each item on one memory server */
} fam_interleave_t;

typedef struct fam_region_attr {
    fam_memory_type_t memory_type;
    fam_interleave_t interleave;
    uint64_t stripe_size; /* bytes per stripe when interleaved; 0: default */
} fam_region_attr_t;

/* What fam_stat_region / fam_stat_item report. */
typedef struct fam_stat {
    char name[FAM_NAME_MAX + 1];
    uint64_t size;     /* bytes: the region's limit or the item's size */
    uint64_t used;     /* regions: bytes allocated to items; items: size */
    uint64_t id;       /* region or item id on its first memory server */
    uint64_t region_id;
    uint32_t uid, gid; /* owner */
    mode_t perm;       /* permission bits, as chmod */
    fam_memory_type_t memory_type;
    fam_interleave_t interleave;
    uint64_t stripe_size;
    uint32_t num_servers; /* memory servers the data is spread over */
} fam_stat_t;

/* ---- errors ---------------------------------------------------------- */
const char *fam_strerror(int code);
const char *fam_last_error(void); /* this thread's last failure message */
/* For libraries built on libfam (libfamarray...): make `fmt` this thread's
 * last-error message and return `code`, so their callers read one message
 * in fam_last_error() whichever layer failed. fmt NULL clears it. */
#if defined(__GNUC__)
int fam_set_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#else
int fam_set_error(int code, const char *fmt, ...);
#endif

/* ---- set-up ------------------------------------------------------------ */
int fam_initialize(const fam_options_t *opts, fam_t **out);
int fam_finalize(fam_t *f); /* waits for outstanding operations; frees f */
/* Remove the /dev/shm files that shm endpoints of Kodiak processes of this
 * user left behind when they died without fam_finalize (kill -9): only
 * regular files named kodiak-<pid>-<16 hex digits>, owned by this
 * process's effective uid, whose pid no longer exists. Returns how many
 * were removed. fam_initialize (shm) and famd do it too; a program that may
 * never open an endpoint (kodiakd) calls it at start. */
int fam_shm_sweep(void);
int fam_num_servers(const fam_t *f);
/* How many memory servers this client reaches through the same-host fast
 * path (their pools mapped into this process). */
int fam_num_local_servers(const fam_t *f);
/* Memory server i (0..fam_num_servers-1, numbered as every client numbers
 * them: sorted by host, then port) as this client reaches it. */
typedef struct fam_server_info {
    char host[256];    /* as given in the server list */
    int port;
    char provider[16]; /* libfabric provider its data goes over: "shm",
                        * "tcp" or "sockets" */
    int local;         /* 1: famd proven to run on this host */
    int mapped;        /* 1: its pool is mapped here (fast path) */
    unsigned spin_us;  /* how long it polls after this client's activity:
                        * what FAM_SPIN_US asked (over shm; its --spin-us
                        * over tcp), its --spin-us at most */
} fam_server_info_t;
int fam_server_info(const fam_t *f, int i, fam_server_info_t *out);
/* Just the provider of server i, or NULL for no such server. */
const char *fam_server_provider(const fam_t *f, int i);

/* ---- regions ---------------------------------------------------------- */
int fam_create_region(fam_t *f, const char *name, uint64_t size, mode_t perm,
                      const fam_region_attr_t *attr, fam_region_t **out);
int fam_lookup_region(fam_t *f, const char *name, fam_region_t **out);
int fam_destroy_region(fam_t *f, fam_region_t *r); /* frees r, and its items */
int fam_resize_region(fam_t *f, fam_region_t *r, uint64_t size);
int fam_change_region_permissions(fam_t *f, fam_region_t *r, mode_t perm);
int fam_stat_region(fam_t *f, fam_region_t *r, fam_stat_t *st);
void fam_release_region(fam_region_t *r); /* forget a descriptor */

/* ---- data items -------------------------------------------------------- */
/* name may be NULL for an unnamed item. New items read as zeros. */
int fam_allocate(fam_t *f, const char *name, uint64_t size, mode_t perm,
                 fam_region_t *r, fam_item_t **out);
int fam_lookup(fam_t *f, const char *item, const char *region, fam_item_t **out);
int fam_deallocate(fam_t *f, fam_item_t *d); /* frees d */
int fam_change_permissions(fam_t *f, fam_item_t *d, mode_t perm);
int fam_stat(fam_t *f, fam_item_t *d, fam_stat_t *st);
uint64_t fam_item_size(const fam_item_t *d);
void fam_release(fam_item_t *d); /* forget a descriptor, keep the item */
/* Names of the named data items in region r, sorted, each once (an item
 * striped over several memory servers is listed once). Needs read
 * permission on the region (as `ls` needs it on a directory); the items'
 * own bits still decide who may open them. *names is a malloc'd array of
 * *n malloc'd strings (NULL when *n is 0): free it with fam_free_names. */
int fam_list_items(fam_t *f, fam_region_t *r, char ***names, size_t *n);
void fam_free_names(char **names, size_t n);
/* Remove what a crash or an unreachable server left of interleaved regions
 * and striped items: parts on one server whose home part is gone (they are
 * invisible and block no name, but hold memory and metadata slots). Looks
 * at the caller's own parts (root: everyone's); *removed (may be NULL)
 * counts the parts removed. All servers must be up, and listed as for the
 * regions concerned (the same servers). docs/PROTOCOL.md. */
int fam_cleanup(fam_t *f, size_t *removed);

/* ---- put and get ------------------------------------------------------- */
int fam_put_blocking(fam_t *f, const void *src, fam_item_t *d, uint64_t off,
                     uint64_t n);
int fam_get_blocking(fam_t *f, void *dst, fam_item_t *d, uint64_t off,
                     uint64_t n);
/* Same-host fast path for reading in place: *ptr gets where byte `off` of
 * d is in this process (its famd's pool is mapped here) and *run how many
 * of the n bytes from there are contiguous (to the end of the stripe).
 * FAM_ENOTSUP when that pool is not mapped here (famd on another host or
 * run by another user): use fam_get_blocking then. The pointer stays
 * valid while the item exists. */
int fam_local_ptr(fam_t *f, fam_item_t *d, uint64_t off, uint64_t n, void **ptr,
                  uint64_t *run);
/* Non-blocking: buffers must stay untouched until fam_quiet() returns. */
int fam_put_nonblocking(fam_t *f, const void *src, fam_item_t *d, uint64_t off,
                        uint64_t n);
int fam_get_nonblocking(fam_t *f, void *dst, fam_item_t *d, uint64_t off,
                        uint64_t n);
int fam_quiet(fam_t *f);    /* wait for all outstanding operations */
int fam_fence(fam_t *f);    /* order operations before it before those after */
int64_t fam_progress(fam_t *f); /* drive progress; returns ops outstanding */
/* Kodiak's extension: a hint that this process will not touch FAM for a
 * while (a server between two commands). A memory server this process
 * woke for RMA (shm) polls for it until --spin-us after its last
 * operation; after fam_rest it may go to sleep at once, unless another
 * client still counts on it, and leave its core to the others. The next
 * operation wakes it again first (one control round trip). A server with
 * operations of ours still in flight is left awake. Changes no data and
 * no result; returns 0 (or FAM_EINVAL for a NULL f). */
int fam_rest(fam_t *f);

/* ---- gather and scatter -------------------------------------------------
 * Elements of `esize` bytes. Strided: elements first, first+stride, ... (in
 * elements, not bytes). Indexed: the elements named by idx[0..n-1], in any
 * order, duplicates allowed: a scatter writes its elements in index order,
 * so of repeated indices the last value wins (as NumPy's a[idx] = v), on
 * every path (fabric, same-host mapping, striped items). Every index is checked before anything moves: one out of range
 * fails the whole call and writes nothing. `local` holds n packed elements.
 * Non-blocking forms complete at fam_quiet(). */
int fam_gather_blocking_stride(fam_t *f, void *local, fam_item_t *d, uint64_t n,
                               uint64_t first, uint64_t stride, uint64_t esize);
int fam_scatter_blocking_stride(fam_t *f, const void *local, fam_item_t *d,
                                uint64_t n, uint64_t first, uint64_t stride,
                                uint64_t esize);
int fam_gather_blocking_index(fam_t *f, void *local, fam_item_t *d, uint64_t n,
                              const uint64_t *idx, uint64_t esize);
int fam_scatter_blocking_index(fam_t *f, const void *local, fam_item_t *d,
                               uint64_t n, const uint64_t *idx, uint64_t esize);
int fam_gather_nonblocking_stride(fam_t *f, void *local, fam_item_t *d,
                                  uint64_t n, uint64_t first, uint64_t stride,
                                  uint64_t esize);
int fam_scatter_nonblocking_stride(fam_t *f, const void *local, fam_item_t *d,
                                   uint64_t n, uint64_t first, uint64_t stride,
                                   uint64_t esize);
int fam_gather_nonblocking_index(fam_t *f, void *local, fam_item_t *d,
                                 uint64_t n, const uint64_t *idx, uint64_t esize);
int fam_scatter_nonblocking_index(fam_t *f, const void *local, fam_item_t *d,
                                  uint64_t n, const uint64_t *idx,
                                  uint64_t esize);

/* ---- bulk atomics ----------------------------------------------------------
 * For each i, element idx[i] of the item (elements of the type's size)
 * becomes (element op values[i]), done by the memory server atomically per
 * element: correct with duplicate indices and with other clients updating
 * at the same time. SET stores values[i]. If `old` is not NULL, old[i]
 * receives the value the element had just before its own update. An index
 * out of range, or a bit operation on a floating-point type, fails the
 * whole call and changes nothing. */
typedef enum fam_dtype {
    FAM_INT32 = 1, FAM_INT64, FAM_UINT32, FAM_UINT64, FAM_FLOAT, FAM_DOUBLE
} fam_dtype_t;
typedef enum fam_aop {
    FAM_AOP_SET = 1, FAM_AOP_ADD, FAM_AOP_MIN, FAM_AOP_MAX,
    FAM_AOP_AND, FAM_AOP_OR, FAM_AOP_XOR
} fam_aop_t;
int fam_atomic_index(fam_t *f, fam_item_t *d, fam_aop_t op, fam_dtype_t type,
                     uint64_t n, const uint64_t *idx, const void *values,
                     void *old);
uint64_t fam_dtype_size(fam_dtype_t type); /* 0 for an unknown type */

/* ---- copy ----------------------------------------------------------------
 * Copy n bytes between data items (same or different region or server).
 * The memory servers move the bytes (famd to famd); they do not pass
 * through the client. fam_copy starts the copy and gives a handle;
 * fam_copy_wait finishes it and frees the handle. Both descriptors must
 * stay valid until then. Overlapping source and destination ranges give
 * an undefined result, as in OpenFAM. */
typedef struct fam_copy fam_copy_t;
int fam_copy(fam_t *f, fam_item_t *src, uint64_t src_off, fam_item_t *dst,
             uint64_t dst_off, uint64_t n, fam_copy_t **handle);
int fam_copy_wait(fam_t *f, fam_copy_t *handle);

/* ---- backup and restore ----------------------------------------------------
 * A backup is a copy of a data item's bytes and metadata that the memory
 * servers keep in their --data-dir (one file per server the item is striped
 * over), so it survives restarts. Names hold letters, digits, '.', '_' and
 * '-'. Backing up needs read access to the item; a backup then carries the
 * item's permission bits, with the caller as owner. Every restore first
 * checks the backup's size and checksum: a damaged backup is an error
 * (FAM_EIO) and the destination is not touched. fam_restore writes into an
 * existing item of the same size (and striping); fam_restore_new creates a
 * new item in region r. Each call returns when the work is done. */
typedef struct fam_backup_info {
    char name[FAM_NAME_MAX + 1];
    uint64_t size;        /* bytes of the item that was backed up */
    uint32_t uid, gid;    /* who made the backup */
    mode_t perm;          /* the item's permission bits */
    uint64_t time;        /* when it was made, seconds since 1970 */
    uint32_t num_servers; /* servers holding a part of it */
    uint64_t stripe_size; /* of the item, when striped */
} fam_backup_info_t;
int fam_backup(fam_t *f, fam_item_t *d, const char *name);
int fam_restore(fam_t *f, const char *name, fam_item_t *d);
int fam_restore_new(fam_t *f, const char *name, fam_region_t *r,
                    const char *item, mode_t perm, fam_item_t **out);
int fam_stat_backup(fam_t *f, const char *name, fam_backup_info_t *info);
int fam_delete_backup(fam_t *f, const char *name);
/* All backups the caller may read; *list is malloc'd (free it). */
int fam_list_backups(fam_t *f, fam_backup_info_t **list, size_t *n);

/* ---- atomics ------------------------------------------------------------
 * For each type T in int32, int64, uint32, uint64, float, double:
 *   fam_set_T, fam_add_T, fam_subtract_T, fam_min_T, fam_max_T
 *   fam_fetch_T (atomic read), fam_swap_T, fam_compare_swap_T,
 *   fam_fetch_add_T, fam_fetch_subtract_T, fam_fetch_min_T, fam_fetch_max_T
 * and for the integer types also fam_and_T, fam_or_T, fam_xor_T and their
 * fam_fetch_ variants. Every atomic returns once the memory server has
 * applied it (fetching ones with the old value). Offsets must be aligned to
 * the operand's size. */
#define FAM_ATOMIC_DECLS_(T, N)                                                 \
    int fam_set_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                 \
    int fam_add_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                 \
    int fam_subtract_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);            \
    int fam_min_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                 \
    int fam_max_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                 \
    int fam_fetch_##N(fam_t *f, fam_item_t *d, uint64_t off, T *old);            \
    int fam_swap_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);        \
    int fam_compare_swap_##N(fam_t *f, fam_item_t *d, uint64_t off, T expected, \
                             T desired, T *old);                                \
    int fam_fetch_add_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);   \
    int fam_fetch_subtract_##N(fam_t *f, fam_item_t *d, uint64_t off, T v,       \
                               T *old);                                         \
    int fam_fetch_min_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);   \
    int fam_fetch_max_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);
#define FAM_ATOMIC_BIT_DECLS_(T, N)                                             \
    int fam_and_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                 \
    int fam_or_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                  \
    int fam_xor_##N(fam_t *f, fam_item_t *d, uint64_t off, T v);                 \
    int fam_fetch_and_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);   \
    int fam_fetch_or_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);    \
    int fam_fetch_xor_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old);

FAM_ATOMIC_DECLS_(int32_t, int32)
FAM_ATOMIC_DECLS_(int64_t, int64)
FAM_ATOMIC_DECLS_(uint32_t, uint32)
FAM_ATOMIC_DECLS_(uint64_t, uint64)
FAM_ATOMIC_DECLS_(float, float)
FAM_ATOMIC_DECLS_(double, double)
FAM_ATOMIC_BIT_DECLS_(int32_t, int32)
FAM_ATOMIC_BIT_DECLS_(int64_t, int64)
FAM_ATOMIC_BIT_DECLS_(uint32_t, uint32)
FAM_ATOMIC_BIT_DECLS_(uint64_t, uint64)

/* 128-bit compare-and-swap at a 16-byte aligned offset; values are given as
 * two 64-bit halves (lo = bytes 0..7, little-endian). Done by the memory
 * server, atomically with respect to the other atomics. */
int fam_compare_swap_int128(fam_t *f, fam_item_t *d, uint64_t off,
                            const uint64_t expected[2],
                            const uint64_t desired[2], uint64_t old[2]);

#ifdef __cplusplus
}
#endif
#endif /* FAM_FAM_H */

/* SPDX-License-Identifier: Apache-2.0 */
/* kd.h — kodiakd's private interface: pdarrays, the symbol table, and how a
 * command handler reads its arguments and builds its reply.
 *
 * kodiakd is SPMD. Rank 0 receives a request over ZeroMQ (a JSON header and
 * binary frames), broadcasts the header to every rank, and then every rank
 * runs the same handler on its own block of each array. A handler must make
 * the same collective MPI calls in the same order on every rank, so:
 *
 *   - checks that depend only on the arguments and the symbol table (which
 *     are identical on every rank) may fail at once with kd_fail();
 *   - a failure that may happen on some ranks only (a local index out of
 *     bounds, an allocation) must go through kd_agree() before the next
 *     collective, so that all ranks fail together.
 *
 * The reply is built on rank 0 only (c->rank == 0); other ranks may call the
 * kd_result_* functions too, they are no-ops there. */
#ifndef KD_H
#define KD_H

#include <json-c/json.h>
#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KD_PROTOCOL_VERSION 2
#define KD_NAME_MAX 63
/* Seconds a client waits for each answer unless told otherwise
 * (kodiakd --request-timeout, ak.connect(timeout=)); docs/PROTOCOL.md. */
#define KD_REQUEST_TIMEOUT_DEFAULT 600

/* ---- dtypes --------------------------------------------------------------- */

/* Tags of the point-to-point MPI messages between ranks (collectives need
 * none). Each kind of message has its own, so two can never be confused. */
enum kd_tag {
    KD_TAG_ERROR = 77, /* kd_agree: the failing rank's message to rank 0 */
    KD_TAG_CARRY,      /* a scan's running value to the next rank (cumsum, cumprod) */
    KD_TAG_SCAN,       /* a float scan's running value and compensation */
    KD_TAG_SEGMENT,    /* group-by: the open segment's state to the next rank */
    KD_TAG_FRAMES,     /* kd_scatter_frame: a rank's block, sent from rank 0's frames */
};

typedef enum { KD_INT64 = 0, KD_UINT64, KD_FLOAT64, KD_BOOL, KD_NDTYPES } kd_dtype;

const char *kd_dtype_name(kd_dtype t);          /* "int64", ... */
int kd_dtype_parse(const char *s, kd_dtype *t); /* 0 or -1 */
size_t kd_dtype_size(kd_dtype t);               /* 8, 8, 8, 1 */
MPI_Datatype kd_dtype_mpi(kd_dtype t);

/* A scalar argument, kept in its own dtype. */
typedef struct {
    kd_dtype dtype;
    union { int64_t i; uint64_t u; double f; bool b; } v;
} kd_scalar;

/* ---- pdarrays ------------------------------------------------------------- */

/* A block-distributed array. Rank r holds global elements [lo, lo + n). */
typedef struct kd_array {
    char name[KD_NAME_MAX + 1]; /* symbol-table name, "" while unregistered */
    kd_dtype dtype;
    int64_t size;               /* global number of elements */
    int64_t lo;                 /* first global index held by this rank */
    int64_t n;                  /* number of elements held by this rank */
    void *data;                 /* n * kd_dtype_size(dtype) bytes */
    size_t bytes;               /* bytes charged to the memory limit */
    struct kd_array *next;      /* symbol-table chain or temp list */
} kd_array;

/* Global [lo, hi) of rank r's block of an array of `size` elements. */
void kd_block(int64_t size, int nranks, int rank, int64_t *lo, int64_t *hi);
/* Which rank holds global index i. */
int kd_owner(int64_t size, int nranks, int64_t i);

/* ---- the server ----------------------------------------------------------- */

typedef struct {
    int rank, nranks;
    MPI_Comm comm;
    uint64_t mem_limit;        /* bytes per rank for arrays */
    uint64_t mem_used;         /* bytes per rank held by arrays */
    uint64_t max_request;      /* bytes one request may carry: mem_limit x ranks */
    uint64_t next_id;          /* names are "id_<n>", same on every rank */
    kd_array *table[1024];     /* symbol table buckets */
    int64_t narrays;
    double request_timeout;    /* seconds per request clients are told to
                                  wait (0: no limit), --request-timeout */
    char token[65];            /* access token of the connect file (0600): 32
                                  random bytes in hex; only clients that send it
                                  (ZeroMQ PLAIN password) are served */
} kd_server;

extern kd_server kd_srv;

/* ---- one command in flight ------------------------------------------------ */

#define KD_MAX_FRAMES 64            /* reply frames; request arrays */
#define KD_FRAME_MAX (1 << 20)       /* bytes in one request frame (ZMQ_MAXMSGSIZE) */

typedef struct {
    int rank, nranks;
    MPI_Comm comm;
    const char *cmd;              /* command name */
    json_object *args;            /* the request's "args" object (may be NULL) */
    /* binary frames of the request: meaningful on rank 0 only; each at
     * most KD_FRAME_MAX bytes, so an array comes in one or more frames */
    int nframes;
    const void **frame;
    size_t *frame_len;
    /* who sent the request, as the kernel says (SO_PEERCRED of the Unix
     * socket, via ZeroMQ's Peer-Address): known on every rank; peer_pid is
     * 0 for a request that came over TCP */
    int peer_pid;
    unsigned peer_uid;
    /* error state */
    int failed;
    char err_type[32];            /* Python exception name: ValueError, ... */
    char err_msg[1024];
    /* reply, built on rank 0 */
    json_object *result;          /* becomes the reply's "result" */
    int nout;
    void *out[KD_MAX_FRAMES];     /* owned by the command; freed after sending */
    size_t out_len[KD_MAX_FRAMES];
    bool shutdown;                /* the server stops after replying */
    kd_array *temps;              /* arrays created but not (yet) registered */
    char ds_checked[65];          /* the dataset store this command has already
                                     checked is still there (kd_cmd_ds.c's
                                     get_store: once per command, not per
                                     attach); "" none yet */
} kd_cmd;

typedef int (*kd_handler)(kd_cmd *c);

/* Register a command under a name. Called from the kd_register_* functions. */
void kd_register(const char *name, kd_handler fn);
/* Each command file defines one of these; kd_main.c calls them all. */
void kd_register_core(void);
void kd_register_ops(void);
void kd_register_reduce(void);
void kd_register_index(void);
void kd_register_sort(void);
void kd_register_fam(void);
void kd_register_math(void);
void kd_register_csv(void);
void kd_register_ds(void);
void kd_register_h5(void);
/* ---- CSV files (kd_cmd_csv.c; the parser itself is kd_csv.h) --------------- */

typedef enum {
    KD_CSV_PLAIN = 0,       /* int64, float64 or bool values */
    KD_CSV_DATETIME = 1,    /* int64 seconds since the epoch (parse_dates) */
    KD_CSV_CATEGORICAL = 2, /* int64 codes into sorted categories, -1: missing */
} kd_csv_kind;

/* Columns read from CSV files by every rank. */
typedef struct {
    int ncols;
    struct {
        char *name;          /* the header's name (malloc'd) */
        kd_csv_kind kind;
        kd_array *array;     /* a temp of the command: registered by the caller,
                                or freed at the command's end */
        int64_t ncategories; /* categorical: how many */
    } *col;
    int64_t rows;            /* rows read (all ranks, all files) */
    int64_t skipped;         /* bad rows skipped (on_bad_lines "skip") */
    /* rank 0 only: the categories of the categorical columns in column
     * order, as ncategories + 1 int64 byte offsets per column into cat_bytes */
    int64_t *cat_offsets;
    size_t ncat_offsets;
    char *cat_bytes;
    size_t ncat_bytes;
} kd_csv_table;

/* Collective: read the files named by the request's arguments "files",
 * "usecols", "dtypes", "parse_dates", "on_bad_lines" (docs/PROTOCOL.md)
 * into block-distributed arrays, in file order. 0, or -1 on every rank with
 * the error set (nothing allocated stays). The dataset store's ingest calls
 * this and writes the arrays as batches. */
int kd_csv_read(kd_cmd *c, kd_csv_table *t);
void kd_csv_table_free(kd_csv_table *t);

/* Close this rank's libfam connection (if any) at exit. */
void kd_fam_shutdown(void);
/* This rank's libfam connection (kd_cmd_fam.c), opened if needed.
 * Collective: every rank connected, or NULL on every rank with the error
 * recorded. The type is libfam's fam_t. */
struct fam *kd_fam_connect(kd_cmd *c);
/* After each command: the memory servers this rank woke need not keep
 * polling for it (fam_rest); no-op without a connection. */
void kd_fam_rest(void);
/* A libfam / libfamarray / libdataset error code as kd_fail with the
 * matching Python exception and `what` before the library's message; a
 * transport error makes the rank reconnect at the next FAM command. */
int kd_fam_error(kd_cmd *c, int rc, const char *what);
/* kd_cmd_ds.c: close the store handles (and forget open ingests) before
 * the connection they use closes; at exit, abort open ingests first. */
void kd_ds_reset(void);
void kd_ds_shutdown(void);
/* Collective (kd_cmd_ds.c, for kd_cmd_dsagg.c): the request's "store" and
 * "dataset" arguments checked, the store attached on every rank, and every
 * rank's ds_info of the dataset at rank 0's catalog version (*in; release
 * with kd_ds_detach(*in, *saved_nb)). 0, or -1 on every rank. */
struct ds_store;
struct ds_info;
int kd_ds_attach(kd_cmd *c, const char **store, const char **dataset, struct ds_store **s,
                 struct ds_info **in, size_t *saved_nb);
void kd_ds_detach(struct ds_info *in, size_t saved_nb);
/* A libdataset error code as kd_fail, `what` before the library's message. */
int kd_ds_fail(kd_cmd *c, int rc, const char *what);
void kd_register_dsagg(void);
/* kd_cmd_dsagg.c — the bounded window through which a command pages
 * batches (local, not collective): room for *rows rows of `ncols` 8-byte
 * columns (column u at buf + u * *rows), at most 2^20 rows and at most
 * half of what --memory-limit leaves free on this rank, charged to the
 * limit until kd_ds_window_free(buf, *bytes). NULL with a MemoryError set
 * when fewer than 1024 rows fit (pass the result through kd_agree). */
uint64_t *kd_ds_window_alloc(kd_cmd *c, int ncols, uint64_t *rows, size_t *bytes);
void kd_ds_window_free(uint64_t *buf, size_t bytes);
/* kd_cmd_dsagg.c — ds_agg's cache of per-batch partial results (charged
 * to --memory-limit): evict the least recently used until `need` more
 * bytes fit under the limit (UINT64_MAX: evict all); free everything. */
void kd_dsagg_cache_trim(uint64_t need);
void kd_dsagg_cache_clear(void);
/* kd_dscache.c — the cache of batches' column rows (kd_ds.h), charged to
 * --memory-limit: evict until `need` more bytes fit under the limit
 * (UINT64_MAX: all), free everything; what it holds (it gives way). */
void kd_dsc_trim(uint64_t need);
void kd_dsc_clear(void);
uint64_t kd_dsc_bytes(void);

/* ---- errors ---------------------------------------------------------------- */

/* Record an error and return -1. type is a Python exception name
 * ("ValueError", "TypeError", "IndexError", "KeyError", "MemoryError",
 * "RuntimeError"). */
int kd_fail(kd_cmd *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Collective: returns 0 on every rank if rc == 0 on every rank, else -1 on
 * every rank, with the first failing rank's error copied to rank 0. */
int kd_agree(kd_cmd *c, int rc);
/* MPI_Barrier that sleeps instead of spinning while it waits (a rank
 * waiting for its turn must leave the cores to the ranks and memory
 * servers doing the work). */
void kd_quiet_barrier(MPI_Comm comm);
/* Tests only: when $env holds a number of ms (1 to 60000), say on stderr
 * "kodiakd: test hold: <what>, <ms> ms" and wait that long (signals do not
 * cut the wait short), so that a test can act at that moment. */
void kd_test_hold(const char *env, const char *what);

/* ---- arguments (missing or wrong-typed arguments fail with a TypeError) ---- */

int kd_arg_i64(kd_cmd *c, const char *key, int64_t *v);
int kd_arg_f64(kd_cmd *c, const char *key, double *v);
int kd_arg_bool(kd_cmd *c, const char *key, bool *v);
int kd_arg_str(kd_cmd *c, const char *key, const char **v);
int kd_arg_dtype(kd_cmd *c, const char *key, kd_dtype *t);
/* {"dtype": "...", "value": "<decimal text>"} */
int kd_arg_scalar(kd_cmd *c, const char *key, kd_scalar *s);
/* The name of a registered array; unknown names fail with a KeyError. */
int kd_arg_array(kd_cmd *c, const char *key, kd_array **a);
/* A JSON array of array names. *n gets the count; *out is malloc'd. */
int kd_arg_array_list(kd_cmd *c, const char *key, kd_array ***out, int *n);
bool kd_has_arg(kd_cmd *c, const char *key);
/* kd_scalar -> given dtype, NumPy's casting rules (bool: != 0). */
void kd_scalar_cast(const kd_scalar *s, kd_dtype t, void *out);

/* NumPy's casts (ndarray.astype, unsafe), as its loops run on x86-64.
 * float64 -> int64 as cvttsd2si: NaN and out of range give INT64_MIN. */
static inline int64_t kd_f64_to_i64(double f)
{
    return (f >= -0x1p63 && f < 0x1p63) ? (int64_t)f : INT64_MIN;
}

/* float64 -> uint64 as GCC's x86-64 code: below 2^63 through int64, from
 * 2^63 on by subtracting 2^63 first. So -1.0 gives 2^64 - 1, NaN 2^63, and
 * 1e20 or inf give 0. */
static inline uint64_t kd_f64_to_u64(double f)
{
    if (f >= 0x1p63)
        return (uint64_t)kd_f64_to_i64(f - 0x1p63) ^ (1ull << 63);
    return (uint64_t)kd_f64_to_i64(f);
}

/* n elements of dtype st at src as dtype dt at dst, with those rules (any
 * number to bool is != 0; src and dst may overlap only when st == dt) */
void kd_cast(const void *src, kd_dtype st, void *dst, kd_dtype dt, int64_t n);
/* Collective: every rank tells every other how many items it sends them
 * (scnt, p entries), learns how many it receives (rcnt), and fills the
 * send and receive displacements for MPI_Alltoallv. Returns the number of
 * items this rank receives, which the caller checks against INT_MAX. */
int64_t kd_exchange_counts(MPI_Comm comm, int p, const int *scnt, int *sdsp, int *rcnt,
                           int *rdsp);

/* ---- arrays and the symbol table ------------------------------------------ */

/* Collective: allocate an unregistered array of `size` elements (block of
 * this rank, uninitialised). Fails (MemoryError, on every rank) if any rank
 * would go over its memory limit. It is freed at the end of the command
 * unless kd_result_array() registers it. */
kd_array *kd_new_array(kd_cmd *c, kd_dtype t, int64_t size);
/* Register `a` (if not already) and add {"name","dtype","size"} as result
 * key `key` ("array" for the usual one-array result). */
void kd_result_array(kd_cmd *c, const char *key, kd_array *a);
kd_array *kd_lookup(const char *name);
int kd_delete(const char *name); /* 0, or -1 if unknown */
void kd_symtab_insert(kd_array *a);
void kd_symtab_clear(void);
void kd_array_free(kd_array *a);  /* unregistered arrays only */
/* Every registered array, in name order; *out is malloc'd. */
int kd_symtab_list(kd_array ***out, int64_t *n);
/* Memory for array data and big temporaries: 64-byte aligned, huge pages
 * where the kernel allows. NULL when out of memory. Never charged. */
void *kd_alloc_bytes(size_t bytes);
void kd_free_bytes(void *p, size_t bytes);
/* Start the rank's thread that makes big buffers ahead while a command
 * keeps mapping fresh ones (kd_util.c), where this host has more cores
 * than ranks_here (kodiakd's ranks on it), or as KD_AHEAD says; its
 * counters: buffers made ahead, and of them taken. */
void kd_ahead_start(int ranks_here);
/* A command ended: the thread makes no more until a command misses again. */
void kd_ahead_idle(void);
void kd_ahead_counts(uint64_t *made, uint64_t *taken);
/* FNV-1a of n bytes: the caches' hash-table key (kd_dscache.c, kd_cmd_dsagg.c). */
uint64_t kd_hash_bytes(const char *p, size_t n);

/* ---- reply ------------------------------------------------------------------ */

void kd_result_set(kd_cmd *c, const char *key, json_object *v); /* takes v */
void kd_result_i64(kd_cmd *c, const char *key, int64_t v);
void kd_result_f64(kd_cmd *c, const char *key, double v);
/* A scalar as {"dtype","value"} with value as decimal text (exact). */
void kd_result_scalar(kd_cmd *c, const char *key, const kd_scalar *s);
/* Attach a malloc'd binary frame to the reply (rank 0); freed after sending. */
void kd_result_frame(kd_cmd *c, void *buf, size_t len);

/* ---- floating-point error flags (the client's ak.seterr / ak.errstate) ------ */

/* NumPy's four error kinds, as bits */
enum { KD_FPE_DIVIDE = 1, KD_FPE_OVERFLOW = 2, KD_FPE_UNDERFLOW = 4, KD_FPE_INVALID = 8 };
/* This rank's raised C floating-point exceptions (fetestexcept) as KD_FPE_
 * bits; clear them with feclearexcept(FE_ALL_EXCEPT) before the loop. */
int kd_fpe_flags(void);
/* Collective: OR of every rank's flags; when any is set, rank 0 appends
 * {"ufunc": name, "flags": ["divide", "over", "under", "invalid"]} (those
 * raised) to the reply's "fpe" list, and the client warns or raises as
 * ak.seterr says, in the order of the calls. */
void kd_fpe_report(kd_cmd *c, int flags, const char *ufunc);

/* ---- data movement helpers ------------------------------------------------- */

/* Collective: rank 0's request frames idx, idx+1, ... to the last (which
 * together hold a raw little-endian array of a->size elements of a->dtype,
 * cut anywhere into frames of at most KD_FRAME_MAX bytes) are scattered
 * into a's blocks. Checks their total length. */
int kd_scatter_frame(kd_cmd *c, int idx, kd_array *a);
/* Collective: gather a's blocks on rank 0 into one malloc'd buffer (NULL
 * elsewhere). Returns 0 or -1 (MemoryError). */
int kd_gather_all(kd_cmd *c, kd_array *a, void **buf);

#endif

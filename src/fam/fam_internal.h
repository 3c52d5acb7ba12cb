/* SPDX-License-Identifier: Apache-2.0 */
/* fam_internal.h — libfam's private structures, shared by its files. */
#ifndef FAM_INTERNAL_H
#define FAM_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>

#include "fam/fam.h"
#include "fam_common.h" /* fam_now_us */
#include "fam_proto.h"

/* One memory server this client talks to. */
struct fam_server {
    char host[256];
    int port;
    int fd;               /* control socket; -1 once it failed */
    pthread_mutex_t lock; /* one control request at a time on fd */
    uint32_t seq;         /* next request number */
    fi_addr_t addr;       /* famd's endpoint in our address vector */
    int virt_addr;        /* RMA addresses are virtual (base + offset) */
    int persistent;       /* famd's pool survives restarts */
    uint64_t pool_size;
    uint32_t uid, gid;    /* who famd says we are */
    uint32_t spin_us;     /* famd stays awake this long after a WAKE */
    uint64_t last_wake;   /* when we last sent a WAKE (us, monotonic) */
    uint64_t last_active; /* when we last started or waited on an operation
                           * with it (us, monotonic; fam_wake_first) */
    int64_t inflight;     /* RMA and atomics to it not yet complete (flock) */
    uint64_t token;       /* our secret for bulk requests to this famd */
    uint8_t faddr[FAMP_ADDR_MAX]; /* famd's fabric address (for copies) */
    uint32_t faddrlen;
    uint64_t instance;    /* famd's pool instance at our last HELLO */
    uint32_t epoch;       /* +1 each time that instance changed (a restart) */
    uint8_t *map;         /* fast path: famd's pool mapped here, or NULL */
    uint64_t map_size;
    int ep;               /* index in fam.eps of the endpoint that reaches
                           * it (its provider); -1 before its first HELLO */
    int here;             /* famd proven on this host (server_is_here) */
};

/* One libfabric endpoint of a fam_t, for one provider. A client keeps one
 * per provider in use: shm for the famds on its own host, tcp for the
 * others (fam_control.c chooses per server). */
struct fam_ep {
    char provider[16];     /* "shm", "tcp" or "sockets"; "" for a free slot */
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;     /* NULL while closed */
    size_t max_msg;        /* largest single RMA transfer */
};
#define FAM_MAX_EPS 3      /* shm, tcp, sockets */

/* A connection to all memory servers (fam_t). */
struct fam {
    int nservers;
    struct fam_server *srv;
    char provider[16];     /* forced for every server ("shm", "tcp",
                            * "sockets"), or "" to choose per server */
    int timeout_ms;        /* control request timeout */
    uint32_t spin_ask;     /* FAM_SPIN_US: how long famd should poll after
                            * our activity (0: famd's --spin-us) */
    struct fam_ep eps[FAM_MAX_EPS]; /* endpoints; a slot keeps its provider
                            * (and its index) when rebuilt */
    int neps;              /* slots in use */
    pthread_mutex_t flock; /* serializes use of the endpoints and CQs */
    int64_t outstanding;   /* non-blocking operations in flight */
    struct { int server; uint64_t id; } nb_items[8]; /* the first item parts
                              they reach (distinct), asked about by a
                              stalled fam_quiet (fam_item_gone) */
    int nb_nitems;         /* used of nb_items; 0 again when none is in flight */
    int64_t orphans;       /* of those, pieces of calls that failed */
    int nb_error;          /* first error of a non-blocking operation */
    char nb_msg[256];      /* its message */
    uint64_t bseq;         /* last bulk request number (under flock) */
    int shared;            /* "shared_memory" model: map local pools */
    int broken;            /* the endpoint must be rebuilt before the next
                            * operation (fam_fabric_reset; under flock) */
    uint64_t yield_until;  /* after a WAKE_SYNC: waiters give their core
                            * away between polls until then (us; 0: no) */
};

/* The context of one posted fabric operation (always on the heap: a
 * blocking call that gives up waiting leaves it to the provider). */
struct fam_op {
    struct fi_context ctx; /* owned by the provider while in flight */
    int nb;                /* 1: non-blocking, freed on completion */
    int abandoned;         /* 1: its caller timed out; free on completion */
    volatile int done;     /* blocking: set when complete */
    int err;               /* libfabric error (positive), 0 if none */
    int server;            /* memory server it targets, kept awake while we
                            * wait; -1 when the waiter wakes it itself */
    uint64_t item_id;      /* the id there of the item part it reaches (0:
                            * none): a stalled wait asks famd if it is gone */
};

#define FAM_DEFAULT_STRIPE (256u << 10) /* interleaved regions */

/* A region descriptor. An interleaved region has a record on every memory
 * server (part i on server i, the same name everywhere); any other region
 * lives on its home server, chosen from its name. */
struct fam_region {
    int server;           /* home server: where lookups by name go */
    uint64_t id;          /* the region's id there */
    int nparts;           /* 1, or the number of servers when interleaved */
    uint64_t stripe;      /* interleaved: bytes per stripe */
    uint64_t *pid;        /* interleaved: the region's id on server i */
    char name[FAM_NAME_MAX + 1];
};

/* One memory server's part of a data item. */
struct fam_part {
    int server;           /* memory server holding the bytes */
    uint64_t id;          /* the part's id there */
    uint64_t size;        /* bytes of this part */
    uint64_t key;         /* remote key from famd */
    uint64_t base;        /* added to offsets for RMA addresses */
    int writable;         /* key allows writes and atomics */
    uint64_t pool_off;    /* first byte in famd's pool (fast path) */
    uint32_t epoch;       /* its server's epoch when key was handed out */
};

/* A data item descriptor. A striped item is cut in stripes of `stripe`
 * bytes dealt round-robin over its parts: stripe k is in part k % nparts,
 * at offset (k / nparts) * stripe there. An item of one part is the plain
 * case: byte b is byte b of part 0. */
struct fam_item {
    uint64_t region_id;   /* its region's id on the home server */
    uint64_t size;        /* bytes of the whole item */
    uint64_t stripe;      /* bytes per stripe when nparts > 1 */
    int nparts;
    int writable;         /* every part may be written */
    char name[FAM_NAME_MAX + 1];
    struct fam_part part[]; /* nparts */
};

/* Fast path: where byte `local` of part p is in this process, or NULL if
 * its server's pool is not mapped. */
#define FAM_LOCAL(f, p, local)                                              \
    ((f)->srv[(p)->server].map ? (f)->srv[(p)->server].map + (p)->pool_off + \
                                 (local) : NULL)

/* Where byte `off` of d is: returns the part, sets *local to the offset in
 * it and *run to the bytes from there to the end of its stripe. */
static inline int fam_locate(const struct fam_item *d, uint64_t off,
                             uint64_t *local, uint64_t *run)
{
    if (d->nparts == 1) {
        *local = off;
        *run = d->size - off;
        return 0;
    }
    uint64_t k = off / d->stripe, in = off % d->stripe;
    *local = (k / (uint64_t)d->nparts) * d->stripe + in;
    *run = d->stripe - in;
    return (int)(k % (uint64_t)d->nparts);
}

/* libfam's files, lowest layer first; each calls only those above it in
 * this list (fam_error.c and src/common/ serve them all):
 *   fam_auth.c     a MUNGE credential for famd --auth munge
 *   fam_fabric.c   the endpoint, completion queue and back-off
 *   fam_control.c  control connections: HELLO, fam_rpc, reconnect, WAKE;
 *                  rebuilding the endpoint with them (fam_fabric_reset)
 *   fam_meta.c     names, regions, data items, cleanup
 *   fam_data.c     put, get, atomics, fam_quiet
 *   fam_bulk.c     gather/scatter, bulk atomics, copies (famd does the work)
 *   fam_backup.c   backup and restore
 *   fam_init.c     fam_initialize, fam_finalize
 *   fam_c.c        OpenFAM's C API (c_fam_*) over all of the above */

/* fam_error.c */
int fam_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* fam_auth.c: famd --auth munge answered HELLO with o (FAMP_F_AUTH): a
 * MUNGE credential for it in *cred (free() it), from the munged on
 * FAM_MUNGE_SOCKET (else libmunge's default); or FAM_EPERM saying why. */
int fam_auth_credential(const char *host, int port,
                        const struct famp_info *o, char **cred);
void fam_clear_error(void);
/* the check that opens a public call: f and its argument x are not NULL */
#define FAM_NEED(f, x, what)                                                \
    do {                                                                  \
        fam_clear_error();                                                \
        if (!(f)) return fam_fail(FAM_EINVAL, "fam_t is NULL");           \
        if (!(x)) return fam_fail(FAM_EINVAL, "%s is NULL", what);        \
    } while (0)

/* The endpoint that reaches server i (valid once it said HELLO). */
#define FAM_EP(f, i) (&(f)->eps[(f)->srv[i].ep])
/* Does server i's traffic go over tcp (tcp;ofi_rxm, which wakes famd by
 * itself and closes the connection after an error)? */
static inline int fam_srv_tcp(const fam_t *f, int i)
{
    int e = f->srv[i].ep;
    return e >= 0 && strcmp(f->eps[e].provider, "tcp") == 0;
}

/* fam_fabric.c (with flock held) */
/* Open the endpoint for provider prov (its slot's, if it has one; else a
 * new slot) unless it is open; *idx gets its slot. */
int fam_fabric_open(fam_t *f, const char *prov, int *idx);
/* tcp: the local address to bind the endpoint to (reaches the servers) */
int fam_fabric_source(fam_t *f, char *out, size_t outlen);
void fam_fabric_close(fam_t *f, int idx); /* the slot keeps its provider */
void fam_fabric_close_all(fam_t *f);
int fam_fabric_add_server(fam_t *f, struct fam_server *s, const void *addr,
                          size_t len);
int fam_fabric_getname(fam_t *f, int idx, void *addr, size_t *len);
struct fam_op *fam_op_new(int nb);
int fam_drain(fam_t *f);   /* read every endpoint's completions; how many */
/* Wait a little before polling again; *since (0 at first) tracks how long
 * the caller has been waiting. */
void fam_backoff(unsigned spins, uint64_t *since);
/* An operation with server (-1: not known) failed (err > 0, libfabric) or
 * timed out (err < 0): mark the endpoints for rebuilding where that breaks
 * them. */
void fam_note_failure(fam_t *f, int server, int err);

/* fam_control.c */
int fam_rpc(fam_t *f, int server, uint16_t op, const struct famp_req *q,
            struct famp_info *o);
void fam_wake(fam_t *f, int server);
void fam_wake_first(fam_t *f, int server);
void fam_wake_always(fam_t *f, int server); /* tcp too */
/* HELLO to every server: at start (stop_at_error: stop at the first
 * failure) and when rebuilding (try them all); the first failure */
int fam_hello_all(fam_t *f, int stop_at_error);
/* with flock held: */
int fam_fabric_reset(fam_t *f); /* rebuild endpoint and control sockets */
/* 0 if the endpoint is usable, rebuilding it first if it is broken */
static inline int fam_fabric_ready(fam_t *f)
{
    return f->broken ? fam_fabric_reset(f) : 0;
}
/* A post was refused with -FI_EAGAIN for the spins-th time in a row: make
 * room (drain, wake famds) and back off; since as for fam_backoff. Returns
 * 1 (and marks the endpoint broken) once that has lasted the timeout. */
/* The provider's queue is full while posting op (NULL: a bulk request);
 * *since and *stall_at start at 0 for each post. 1: give up (timed out,
 * or op's item is gone: fam_item_gone). */
int fam_post_full(fam_t *f, unsigned spins, uint64_t *since, const struct fam_op *op,
                  uint64_t *stall_at);
/* An operation waited on this long asks famd whether its item is still
 * there (then every FAM_STALL_EVERY_US): over shm an RMA with the key of a
 * deallocated item never completes (and blocks what follows it to that
 * famd), and its caller would wait the whole timeout (30 s by default) to
 * learn what famd can say at once. */
#define FAM_STALL_FIRST_US 100000u
#define FAM_STALL_EVERY_US 1000000u
/* Is it time (now) to ask? *at: when next (the caller sets the first); a
 * yes sets the one after. */
static inline int fam_stall_due(uint64_t *at, uint64_t now)
{
    if (now <= *at) return 0;
    *at = now + FAM_STALL_EVERY_US;
    return 1;
}
/* With f->flock held (released around the request): is item part
 * item_id gone from server (FAM_ENOTFOUND from an ITEM_STAT)? Any other
 * answer is no, FAM_EPERM included (a descriptor keeps the access it was
 * opened with, as an open file does after chmod), and so is a failure to
 * ask: the wait goes on to its timeout. */
int fam_item_gone(fam_t *f, int server, uint64_t item_id);

/* fam_meta.c */
int fam_item_refresh(fam_t *f, fam_item_t *d);
int fam_region_destroy_keep(fam_t *f, fam_region_t *r); /* descriptor kept */
int fam_deallocate_keep(fam_t *f, fam_item_t *d);      /* descriptor kept */

/* fam_bulk.c: one bulk request (fam_proto.h) in flight. */
struct breq {
    struct fam_op *send, *data, *status; /* data is NULL without a reply */
    uint8_t *msg;                        /* the request message */
    struct famp_bstatus st;              /* the status lands here */
    uint64_t seq;
    int server;
    int also_wake;                       /* copies: the destination server, or -1 */
    uint64_t deadline_us;                /* give up then (fam_now_us); 0:
                                            timeout_ms after the wait starts */
    int failed_how;                      /* after wait: FAM_BREQ_* */
};
enum { FAM_BREQ_ANSWERED = 0, /* famd's status (0 or its error) */
       FAM_BREQ_TIMEOUT,      /* no answer by the deadline */
       FAM_BREQ_FABRIC };     /* the fabric failed the request */
/* A copy or restore piece failed (rc from fam_breq_wait): the error again,
 * naming the server that stopped answering or failed (host:port), and the
 * role it had; `what` says what was being done ("copy"). */
int fam_xfer_fail(fam_t *f, const struct breq *r, int rc, const char *what,
                  uint64_t budget_ms);
uint64_t fam_budget_left_ms(uint64_t deadline_us);
uint64_t fam_wall_ms(void); /* CLOCK_REALTIME in ms: famp_bulk.esize of a
                               copy or restore (famd counts its deadline
                               from the send) */
/* With flock held. Post sends msg (len bytes, a struct famp_bulk first,
 * freed by wait) to `server`; a reply of reply_len bytes lands in `reply`.
 * Wait returns 0 or the error famd or the fabric reported. */
int fam_breq_post(fam_t *f, struct breq *r, int server, uint8_t *msg,
                  size_t len, void *reply, size_t reply_len);
/* The same, giving up on a full queue at deadline_us (fam_now_us) rather
 * than after timeout_ms without progress: a copy's or restore's pieces. */
int fam_breq_post_by(fam_t *f, struct breq *r, int server, uint8_t *msg, size_t len,
                     void *reply, size_t reply_len, uint64_t deadline_us);
int fam_breq_wait(fam_t *f, struct breq *r);

#endif /* FAM_INTERNAL_H */

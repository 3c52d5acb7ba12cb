/* SPDX-License-Identifier: Apache-2.0 */
/* fam_data.c — libfam's data path: put, get and atomics as libfabric RMA
 * on the endpoint of fam_fabric.c (or the CPU's own instructions on a
 * pool mapped on the same host), fam_quiet and fam_progress.
 *
 * A blocking call posts its operation and reads the completion queue until
 * that operation completes (spinning: the completion arrives within
 * microseconds, and the software providers need the initiator to drive
 * progress anyway).
 * Non-blocking calls post and return; fam_quiet() reads completions until
 * none are outstanding. One mutex serializes use of the endpoint, which
 * makes every call thread safe.
 *
 * Bounds are checked here against the size famd reported, and enforced
 * again by the provider against famd's registration of the item. A key
 * famd has revoked (permissions changed) fails with a fabric error; the
 * call then asks famd for a fresh key once and retries. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "fam_internal.h"
#include "fam_cpu_atomic.h"

/* Post an operation `op` (its server and item_id set); while the
 * provider's queue is full (-FI_EAGAIN), drain completions, keep the
 * memory servers we wait on awake and back off (fam_post_full). */
#define POST(f, r, op, call)                                         \
    do {                                                             \
        unsigned spins_ = 0;                                         \
        uint64_t since_ = 0, stall_ = 0;                             \
        while (((r) = (call)) == -FI_EAGAIN)                         \
            if (fam_post_full(f, spins_++, &since_, (op), &stall_)) { \
                (r) = -FI_ETIMEDOUT;                                 \
                break;                                               \
            }                                                        \
    } while (0)

/* Wait for a blocking operation. Spin while the answer is likely
 * microseconds away; after that yield the core between polls, so that on a
 * machine with fewer cores than busy processes the memory server (and the
 * other clients) get to run. Returns 0, a libfabric error (positive), or -1
 * after the timeout: then the op is abandoned (freed when it completes, if
 * ever — the shm provider never answers RMA with a revoked key).
 *
 * While waiting, keep every famd with RMA of ours in flight awake (fam_wake:
 * shm only), not only this op's: our RMA makes no event famd can see, so a
 * transfer that outlasts spin_us/2 after the WAKE sent when it was posted
 * would find famd asleep, and shm cannot wake it. A striped get waits for
 * its pieces one by one; waking only the first piece's server left the
 * other servers' pieces stalled (a 2-server read ran 10x slower than a
 * 1-server one). Between two WAKEs, fam_wake costs one clock reading. */
static int wait_op(fam_t *f, struct fam_op *op)
{
    uint64_t deadline = 0, since = 0, stall_at = 0;
    for (unsigned spins = 0; !op->done; spins++) {
        if (f->broken) { /* lost with the endpoint: do not wait for it */
            op->abandoned = 1;
            return -1;
        }
        if (fam_drain(f)) { spins = 0; since = 0; continue; }
        if (spins >= 64) /* every famd with RMA of ours in flight */
            for (int i = 0; i < f->nservers; i++)
                if (f->srv[i].inflight > 0) fam_wake(f, i);
        if (f->yield_until && spins >= 4) { /* just after a WAKE_SYNC */
            if (fam_now_us() < f->yield_until) sched_yield();
            else f->yield_until = 0;
        }
        fam_backoff(spins, &since);
        if ((spins & 1023) == 0) {
            uint64_t now = fam_now_us();
            if (!deadline) {
                deadline = now + (uint64_t)f->timeout_ms * 1000u;
                stall_at = now + FAM_STALL_FIRST_US;
            } else if (now > deadline) {
                op->abandoned = 1;
                f->broken = 1; /* shm lets nothing pass a stuck operation */
                return -1;
            } else if (fam_stall_due(&stall_at, now) &&
                       fam_item_gone(f, op->server, op->item_id) && !op->done) {
                /* as a timeout: the caller asks again and says why */
                op->abandoned = 1;
                f->broken = 1;
                return -1;
            }
        }
    }
    int err = op->err;
    free(op);
    return err;
}

/* ---- put and get -------------------------------------------------------- */

static int check_range(fam_t *f, fam_item_t *d, uint64_t off, uint64_t n,
                       const void *buf, const char *what)
{
    fam_clear_error();
    if (!f || !d) return fam_fail(FAM_EINVAL, "%s: NULL fam_t or descriptor", what);
    if (!buf && n) return fam_fail(FAM_EINVAL, "%s: buffer is NULL", what);
    if (off > d->size || n > d->size - off)
        return fam_fail(FAM_EOUTOFRANGE, "%s of %llu bytes at offset %llu is "
                        "past the end of '%s' (%llu bytes)", what,
                        (unsigned long long)n, (unsigned long long)off,
                        d->name, (unsigned long long)d->size);
    return 0;
}

/* The RMA address of byte `local` of part p. */
static uint64_t raddr(fam_t *f, const struct fam_part *p, uint64_t local)
{
    return (f->srv[p->server].virt_addr ? p->base : 0) + local;
}

/* Were d's keys handed out by a famd that has restarted since? (Its new
 * instance holds new keys; an RMA with an old one never completes over
 * shm.) */
static int keys_stale(fam_t *f, const fam_item_t *d)
{
    for (int i = 0; i < d->nparts; i++)
        if (d->part[i].epoch != f->srv[d->part[i].server].epoch) return 1;
    return 0;
}

/* With flock held: make the endpoint usable and d's keys current. Returns
 * 0 with flock still held, or an error with flock released. */
static int ready_for(fam_t *f, fam_item_t *d)
{
    for (;;) {
        int rc = fam_fabric_ready(f);
        if (rc) {
            pthread_mutex_unlock(&f->flock);
            return rc;
        }
        if (!keys_stale(f, d)) return 0;
        pthread_mutex_unlock(&f->flock);
        if ((rc = fam_item_refresh(f, d))) return rc;
        pthread_mutex_lock(&f->flock);
    }
}

/* Turn a failed completion into an error; refresh the key if famd revoked
 * it. Returns 1 when the caller should retry with the new key. */
static int rma_failed(fam_t *f, fam_item_t *d, int err, int *retried,
                      const char *what, int *rc)
{
    if (err < 0) { /* timed out: is the item still there? */
        pthread_mutex_unlock(&f->flock);
        int r = fam_item_refresh(f, d);
        pthread_mutex_lock(&f->flock);
        *rc = r ? r : fam_fail(FAM_ETIMEOUT, "%s on '%s' did not complete "
                               "within %d ms", what, d->name, f->timeout_ms);
        return 0;
    }
    if (!*retried) {
        *retried = 1;
        pthread_mutex_unlock(&f->flock);
        int r = fam_item_refresh(f, d); /* EPERM or NOTFOUND says why */
        pthread_mutex_lock(&f->flock);
        if (r == 0) return 1;
        *rc = r;
        return 0;
    }
    *rc = fam_fail(FAM_EFABRIC, "%s on '%s' failed: %s", what, d->name,
                   fi_strerror(err));
    return 0;
}

#define RMA_WINDOW 16

/* A non-blocking operation on item part `id` of `server` is in flight:
 * remember the part (the first 8 distinct) for a stalled fam_quiet. */
static void nb_note(fam_t *f, int server, uint64_t id)
{
    int n = f->nb_nitems, max = (int)(sizeof f->nb_items / sizeof f->nb_items[0]);
    for (int i = 0; i < n; i++)
        if (f->nb_items[i].server == server && f->nb_items[i].id == id) return;
    if (n == max) return;
    f->nb_items[n].server = server;
    f->nb_items[n].id = id;
    f->nb_nitems = n + 1;
}

static int rma(fam_t *f, int write, void *buf, fam_item_t *d, uint64_t off,
               uint64_t n, int blocking)
{
    const char *what = write ? "put" : "get";
    int rc = check_range(f, d, off, n, buf, what);
    if (rc) return rc;
    if (write && !d->writable)
        return fam_fail(FAM_EPERM, "no permission to write item '%s' (it was "
                        "opened read-only)", d->name);
    if (n == 0) return 0;
    for (int i = 0; i < d->nparts; i++)
        if (!f->srv[d->part[i].server].map) fam_wake_first(f, d->part[i].server);
    pthread_mutex_lock(&f->flock);
    int retried = 0;
again:
    if ((rc = ready_for(f, d))) return rc;
    /* pieces: cut at stripe ends and at max_msg; all in flight at once */
    size_t cap = 8, posted = 0;
    struct fam_op **ops = blocking ? malloc(cap * sizeof *ops) : NULL;
    if (blocking && !ops) {
        pthread_mutex_unlock(&f->flock);
        return fam_fail(FAM_ENOMEM, "out of memory");
    }
    size_t waited = 0; /* blocking: ops[0..waited) are complete */
    int werr = 0, wsrv = -1, post_timeout = 0; /* first failure, its server */
    for (uint64_t at = 0; at < n && !rc;) {
        /* blocking: at most RMA_WINDOW pieces in flight. Posting every
         * piece of a large striped transfer at once overfills the shm
         * provider's queues with two or more servers (80 MiB over two
         * famds read at 0.45 GB/s instead of 6) */
        if (blocking && posted - waited >= RMA_WINDOW) {
            int es = ops[waited]->server;
            int e = wait_op(f, ops[waited++]);
            if (e && !werr) { werr = e; wsrv = es; }
        }
        uint64_t local, run;
        struct fam_part *p = &d->part[fam_locate(d, off + at, &local, &run)];
        uint64_t len = n - at;
        if (len > run) len = run;
        uint8_t *lp = FAM_LOCAL(f, p, local);
        if (lp) { /* same-host fast path */
            if (write) memcpy(lp, (char *)buf + at, len);
            else memcpy((char *)buf + at, lp, len);
            at += len;
            continue;
        }
        if (len > FAM_EP(f, p->server)->max_msg) len = FAM_EP(f, p->server)->max_msg;
        struct fam_op *op = fam_op_new(!blocking);
        if (op && blocking && posted == cap) {
            /* on failure ops stays as it was: the posted pieces are waited for */
            struct fam_op **more = realloc(ops, cap * 2 * sizeof *ops);
            if (more) {
                ops = more;
                cap *= 2;
            } else {
                free(op);
                op = NULL;
            }
        }
        if (!op) {
            rc = fam_fail(FAM_ENOMEM, "out of memory");
            break;
        }
        char *b = (char *)buf + at;
        fi_addr_t dest = f->srv[p->server].addr;
        op->server = p->server;
        op->item_id = p->id;
        ssize_t r;
        if (write)
            POST(f, r, op, fi_write(FAM_EP(f, p->server)->ep, b, len, NULL, dest, raddr(f, p, local), p->key, op));
        else
            POST(f, r, op, fi_read(FAM_EP(f, p->server)->ep, b, len, NULL, dest, raddr(f, p, local), p->key, op));
        if (r) {
            free(op);
            f->broken = 1;
            if (r == -FI_ETIMEDOUT) { /* explained below, as a timeout */
                post_timeout = 1;
                break;
            }
            rc = fam_fail(FAM_EFABRIC, "%s on '%s' could not be posted: %s",
                          what, d->name, fi_strerror((int)-r));
            break;
        }
        f->srv[p->server].inflight++;
        if (blocking) {
            ops[posted] = op;
        } else {
            f->outstanding++;
            nb_note(f, p->server, p->id);
        }
        posted++;
        at += len;
    }
    if (blocking) {
        int err = werr;
        for (size_t i = waited; i < posted; i++) {
            int es = ops[i]->server;
            int e = wait_op(f, ops[i]);
            if (e && !err) { err = e; wsrv = es; }
        }
        free(ops);
        if (err) fam_note_failure(f, wsrv, err);
        if (!rc && post_timeout) err = -1;
        if (!rc && err) {
            if (rma_failed(f, d, err, &retried, what, &rc)) goto again;
        }
    } else if (rc || post_timeout) {
        /* a failed non-blocking call: the pieces it posted are its own
         * loss, already reported here, not a later fam_quiet's */
        f->orphans += (int64_t)posted;
        if (f->orphans > f->outstanding) f->orphans = f->outstanding;
        if (!rc) rma_failed(f, d, -1, &retried, what, &rc);
    }
    pthread_mutex_unlock(&f->flock);
    return rc;
}

int fam_put_blocking(fam_t *f, const void *src, fam_item_t *d, uint64_t off,
                     uint64_t n)
{
    return rma(f, 1, (void *)src, d, off, n, 1);
}

int fam_get_blocking(fam_t *f, void *dst, fam_item_t *d, uint64_t off, uint64_t n)
{
    return rma(f, 0, dst, d, off, n, 1);
}

int fam_local_ptr(fam_t *f, fam_item_t *d, uint64_t off, uint64_t n, void **ptr,
                  uint64_t *run)
{
    if (!ptr || !run) return fam_fail(FAM_EINVAL, "fam_local_ptr: NULL argument");
    int rc = check_range(f, d, off, n, ptr, "fam_local_ptr");
    if (rc) return rc;
    pthread_mutex_lock(&f->flock);
    if ((rc = ready_for(f, d))) return rc; /* unlocked on failure */
    uint64_t local, len;
    struct fam_part *p = &d->part[fam_locate(d, off, &local, &len)];
    uint8_t *lp = FAM_LOCAL(f, p, local);
    pthread_mutex_unlock(&f->flock);
    if (!lp)
        return fam_fail(FAM_ENOTSUP, "'%s' is not in a pool mapped here (its memory "
                        "server is on another host, or run by another user)", d->name);
    *ptr = lp;
    *run = len < n ? len : n;
    return 0;
}

int fam_put_nonblocking(fam_t *f, const void *src, fam_item_t *d, uint64_t off,
                        uint64_t n)
{
    return rma(f, 1, (void *)src, d, off, n, 0);
}

int fam_get_nonblocking(fam_t *f, void *dst, fam_item_t *d, uint64_t off,
                        uint64_t n)
{
    return rma(f, 0, dst, d, off, n, 0);
}

/* With flock held: give up every non-blocking operation in flight (the
 * endpoint is rebuilt before the next one). */
static void nb_give_up(fam_t *f)
{
    f->outstanding = 0;
    f->nb_error = 0;
    f->broken = 1;
}

/* With flock held: the first item part nb_note kept that famd says is
 * gone (fam_item_gone), or -1. */
static int nb_gone(fam_t *f)
{
    for (int i = 0; i < f->nb_nitems; i++)
        if (fam_item_gone(f, f->nb_items[i].server, f->nb_items[i].id)) return i;
    return -1;
}

int fam_quiet(fam_t *f)
{
    fam_clear_error();
    if (!f) return fam_fail(FAM_EINVAL, "fam_t is NULL");
    pthread_mutex_lock(&f->flock);
    uint64_t since = 0, idle_from = fam_now_us(), stall_at = idle_from + FAM_STALL_FIRST_US;
    int rc = 0;
    for (unsigned spins = 0; f->outstanding > 0; spins++) {
        if (f->broken) { /* what is in flight is lost with the endpoint */
            rc = fam_fabric_reset(f);
            break;
        }
        if (fam_drain(f)) {
            spins = since = 0;
            idle_from = fam_now_us();
            stall_at = idle_from + FAM_STALL_FIRST_US;
            continue;
        }
        if (spins >= 64) /* keep their famd awake, as in wait_op */
            for (int i = 0; i < f->nservers; i++)
                if (f->srv[i].inflight > 0) fam_wake(f, i);
        fam_backoff(spins, &since);
        if ((spins & 1023) != 0) continue;
        /* nothing completed for a while: is an item they reach gone? (over
         * shm its RMA never completes, and holds up the rest) */
        int gone = fam_stall_due(&stall_at, fam_now_us()) ? nb_gone(f) : -1;
        if (gone >= 0 && f->outstanding > 0) {
            rc = fam_fail(FAM_ENOTFOUND, "%lld non-blocking operations cannot "
                          "complete: data item id %llu on memory server %d is gone "
                          "(was it deallocated?)", (long long)f->outstanding,
                          (unsigned long long)f->nb_items[gone].id,
                          f->nb_items[gone].server);
            nb_give_up(f);
            break;
        }
        if (fam_now_us() - idle_from > (uint64_t)f->timeout_ms * 1000u) {
            /* nothing completed for the whole timeout: give them up */
            rc = fam_fail(FAM_ETIMEOUT, "%lld non-blocking operations did not "
                          "complete within %d ms", (long long)f->outstanding,
                          f->timeout_ms);
            nb_give_up(f);
            break;
        }
    }
    if (!rc && f->nb_error) {
        /* over tcp a revoked key fails the operation: say why if we can */
        int gone = f->nb_error == FAM_EFABRIC ? nb_gone(f) : -1;
        if (gone >= 0)
            rc = fam_fail(FAM_ENOTFOUND, "a non-blocking operation failed (%s): data "
                          "item id %llu on memory server %d is gone (was it "
                          "deallocated?)", f->nb_msg,
                          (unsigned long long)f->nb_items[gone].id, f->nb_items[gone].server);
        else
            rc = fam_fail(f->nb_error, "a non-blocking operation failed: %s", f->nb_msg);
        f->nb_error = 0;
    }
    if (f->outstanding <= 0) f->nb_nitems = 0;
    pthread_mutex_unlock(&f->flock);
    return rc;
}

/* Operations are not reordered across a fence: we simply wait for all that
 * were issued before it, which is stronger than needed and always correct. */
int fam_fence(fam_t *f) { return fam_quiet(f); }

int64_t fam_progress(fam_t *f)
{
    if (!f) return fam_fail(FAM_EINVAL, "fam_t is NULL");
    pthread_mutex_lock(&f->flock);
    fam_drain(f);
    int64_t n = f->outstanding;
    pthread_mutex_unlock(&f->flock);
    return n;
}

/* ---- atomics ------------------------------------------------------------ */

/* The fast path's atomics: the CPU's, as famd's bulk atomics use. */
static int local_atomic(uint8_t *p, const void *val, const void *cmp, void *old,
                        size_t size, enum fi_datatype dt, enum fi_op op, int kind)
{
    uint8_t scratch[8];
    if (op == FI_ATOMIC_READ) {
        if (size == 4) { uint32_t v = __atomic_load_n((uint32_t *)(void *)p, __ATOMIC_SEQ_CST); memcpy(old, &v, 4); }
        else { uint64_t v = __atomic_load_n((uint64_t *)(void *)p, __ATOMIC_SEQ_CST); memcpy(old, &v, 8); }
        return 0;
    }
    if (op == FI_CSWAP) { /* compares bit patterns */
        if (size == 4) {
            uint32_t e, n;
            memcpy(&e, cmp, 4); memcpy(&n, val, 4);
            __atomic_compare_exchange_n((uint32_t *)(void *)p, &e, n, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            memcpy(old, &e, 4);
        } else {
            uint64_t e, n;
            memcpy(&e, cmp, 8); memcpy(&n, val, 8);
            __atomic_compare_exchange_n((uint64_t *)(void *)p, &e, n, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            memcpy(old, &e, 8);
        }
        return 0;
    }
    uint32_t t = dt == FI_INT32 ? FAM_INT32 : dt == FI_INT64 ? FAM_INT64
               : dt == FI_UINT32 ? FAM_UINT32 : dt == FI_UINT64 ? FAM_UINT64
               : dt == FI_FLOAT ? FAM_FLOAT : FAM_DOUBLE;
    uint32_t a = op == FI_SUM ? FAM_AOP_ADD : op == FI_MIN ? FAM_AOP_MIN
               : op == FI_MAX ? FAM_AOP_MAX : op == FI_BAND ? FAM_AOP_AND
               : op == FI_BOR ? FAM_AOP_OR : op == FI_BXOR ? FAM_AOP_XOR
               : FAM_AOP_SET;
    fam_cpu_atomic(p, t, a, val, kind ? old : scratch);
    return 0;
}

/* kind: 0 = no result, 1 = fetch, 2 = compare */
static int atomic_op(fam_t *f, fam_item_t *d, uint64_t off, const void *val,
                     const void *cmp, void *old, size_t size,
                     enum fi_datatype dt, enum fi_op op, int kind,
                     const char *what)
{
    int rc = check_range(f, d, off, size, val, what);
    if (rc) return rc;
    if (off % size)
        return fam_fail(FAM_EINVAL, "%s at offset %llu of '%s': the offset "
                        "must be a multiple of %zu", what,
                        (unsigned long long)off, d->name, size);
    if (kind && !old) return fam_fail(FAM_EINVAL, "%s: result pointer is NULL", what);
    int reads_only = op == FI_ATOMIC_READ;
    if (!reads_only && !d->writable)
        return fam_fail(FAM_EPERM, "no permission to update item '%s' (it "
                        "was opened read-only)", d->name);
    uint64_t local, run;
    struct fam_part *p = &d->part[fam_locate(d, off, &local, &run)];
    uint8_t *lp = FAM_LOCAL(f, p, local);
    if (lp) return local_atomic(lp, val, cmp, old, size, dt, op, kind);
    fam_wake_first(f, p->server);
    pthread_mutex_lock(&f->flock);
    int retried = 0;
again:;
    if ((rc = ready_for(f, d))) return rc;
    struct fam_op *o = fam_op_new(0);
    if (!o) {
        pthread_mutex_unlock(&f->flock);
        return fam_fail(FAM_ENOMEM, "out of memory");
    }
    o->server = p->server;
    o->item_id = p->id;
    fi_addr_t dest = f->srv[p->server].addr;
    struct fid_ep *ep = FAM_EP(f, p->server)->ep;
    uint64_t a = raddr(f, p, local);
    uint8_t scratch[16];
    ssize_t r;
    if (kind == 0)
        /* a non-fetching update goes as a fetching one, its old value
         * dropped: libfabric 1.17's shm provider applied plain fi_atomic
         * from two or more processes wrongly (lost and garbled updates) and
         * could crash famd in fi_cq_read; fetching atomics are right. We
         * wait for the completion either way, so it costs nothing more. */
        POST(f, r, o, fi_fetch_atomic(ep, val, 1, NULL, scratch, NULL, dest, a, p->key,
                                   dt, op, o));
    else if (kind == 1)
        POST(f, r, o, fi_fetch_atomic(ep, reads_only ? scratch : val, 1, NULL,
                                   old, NULL, dest, a, p->key, dt, op, o));
    else
        POST(f, r, o, fi_compare_atomic(ep, val, 1, NULL, cmp, NULL, old, NULL,
                                     dest, a, p->key, dt, op, o));
    if (r) {
        free(o);
        f->broken = 1;
        pthread_mutex_unlock(&f->flock);
        return fam_fail(FAM_EFABRIC, "%s on '%s' could not be posted: %s", what,
                        d->name, fi_strerror((int)-r));
    }
    f->srv[p->server].inflight++;
    int err = wait_op(f, o);
    if (err) fam_note_failure(f, p->server, err);
    if (err && rma_failed(f, d, err, &retried, what, &rc)) goto again;
    pthread_mutex_unlock(&f->flock);
    return err ? rc : 0;
}

#define DEF_ATOMICS(T, N, DT, NEG)                                              \
    int fam_set_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                 \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_ATOMIC_WRITE, 0, "set"); } \
    int fam_add_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                 \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_SUM, 0, "add"); } \
    int fam_subtract_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)            \
    { T n = NEG(v); return atomic_op(f, d, off, &n, NULL, NULL, sizeof(T), DT, FI_SUM, 0, "subtract"); } \
    int fam_min_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                 \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_MIN, 0, "min"); } \
    int fam_max_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                 \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_MAX, 0, "max"); } \
    int fam_fetch_##N(fam_t *f, fam_item_t *d, uint64_t off, T *old)            \
    { T z = 0; return atomic_op(f, d, off, &z, NULL, old, sizeof(T), DT, FI_ATOMIC_READ, 1, "fetch"); } \
    int fam_swap_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)        \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_ATOMIC_WRITE, 1, "swap"); } \
    int fam_compare_swap_##N(fam_t *f, fam_item_t *d, uint64_t off, T e, T v, T *old) \
    { return atomic_op(f, d, off, &v, &e, old, sizeof(T), DT, FI_CSWAP, 2, "compare_swap"); } \
    int fam_fetch_add_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)   \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_SUM, 1, "fetch_add"); } \
    int fam_fetch_subtract_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old) \
    { T n = NEG(v); return atomic_op(f, d, off, &n, NULL, old, sizeof(T), DT, FI_SUM, 1, "fetch_subtract"); } \
    int fam_fetch_min_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)   \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_MIN, 1, "fetch_min"); } \
    int fam_fetch_max_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)   \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_MAX, 1, "fetch_max"); }

#define DEF_BIT_ATOMICS(T, N, DT)                                               \
    int fam_and_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                 \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_BAND, 0, "and"); } \
    int fam_or_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                  \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_BOR, 0, "or"); } \
    int fam_xor_##N(fam_t *f, fam_item_t *d, uint64_t off, T v)                 \
    { return atomic_op(f, d, off, &v, NULL, NULL, sizeof(T), DT, FI_BXOR, 0, "xor"); } \
    int fam_fetch_and_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)   \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_BAND, 1, "fetch_and"); } \
    int fam_fetch_or_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)    \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_BOR, 1, "fetch_or"); } \
    int fam_fetch_xor_##N(fam_t *f, fam_item_t *d, uint64_t off, T v, T *old)   \
    { return atomic_op(f, d, off, &v, NULL, old, sizeof(T), DT, FI_BXOR, 1, "fetch_xor"); }

/* Subtraction is addition of the negation; for unsigned types that is the
 * two's complement, which wraps exactly as subtraction does. */
#define NEG_SIGNED(v) (T)(-(v))
#define NEG_UNSIGNED(v) (T)(0ull - (uint64_t)(v))

#define T int32_t
DEF_ATOMICS(int32_t, int32, FI_INT32, NEG_UNSIGNED)
DEF_BIT_ATOMICS(int32_t, int32, FI_INT32)
#undef T
#define T int64_t
DEF_ATOMICS(int64_t, int64, FI_INT64, NEG_UNSIGNED)
DEF_BIT_ATOMICS(int64_t, int64, FI_INT64)
#undef T
#define T uint32_t
DEF_ATOMICS(uint32_t, uint32, FI_UINT32, NEG_UNSIGNED)
DEF_BIT_ATOMICS(uint32_t, uint32, FI_UINT32)
#undef T
#define T uint64_t
DEF_ATOMICS(uint64_t, uint64, FI_UINT64, NEG_UNSIGNED)
DEF_BIT_ATOMICS(uint64_t, uint64, FI_UINT64)
#undef T
#define T float
DEF_ATOMICS(float, float, FI_FLOAT, NEG_SIGNED)
#undef T
#define T double
DEF_ATOMICS(double, double, FI_DOUBLE, NEG_SIGNED)
#undef T

int fam_compare_swap_int128(fam_t *f, fam_item_t *d, uint64_t off,
                            const uint64_t expected[2],
                            const uint64_t desired[2], uint64_t old[2])
{
    FAM_NEED(f, d, "item descriptor");
    if (!expected || !desired || !old)
        return fam_fail(FAM_EINVAL, "128-bit operand is NULL");
    if (off % 16)
        return fam_fail(FAM_EINVAL, "128-bit compare-swap at offset %llu: the "
                        "offset must be a multiple of 16", (unsigned long long)off);
    if (off > d->size || d->size - off < 16)
        return fam_fail(FAM_EOUTOFRANGE, "128-bit compare-swap at offset %llu "
                        "is past the end of '%s' (%llu bytes)",
                        (unsigned long long)off, d->name,
                        (unsigned long long)d->size);
    uint64_t local, run;
    int p = fam_locate(d, off, &local, &run);
    uint8_t *lp = FAM_LOCAL(f, &d->part[p], local);
    if (lp) { /* fast path: the same instruction famd uses */
        if (!d->writable)
            return fam_fail(FAM_EPERM, "no permission to update item '%s'", d->name);
        unsigned __int128 e = (unsigned __int128)expected[1] << 64 | expected[0];
        unsigned __int128 n = (unsigned __int128)desired[1] << 64 | desired[0];
        unsigned __int128 was = __sync_val_compare_and_swap(
            (unsigned __int128 *)(void *)lp, e, n);
        old[0] = (uint64_t)was;
        old[1] = (uint64_t)(was >> 64);
        return 0;
    }
    struct famp_req q = {0};
    struct famp_info o;
    q.id = d->part[p].id;
    q.off = local;
    q.arg[0] = expected[0];
    q.arg[1] = expected[1];
    q.arg[2] = desired[0];
    q.arg[3] = desired[1];
    int rc = fam_rpc(f, d->part[p].server, FAMP_CAS128, &q, &o);
    if (!rc) {
        old[0] = o.arg[0];
        old[1] = o.arg[1];
    }
    return rc;
}

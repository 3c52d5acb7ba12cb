/* SPDX-License-Identifier: Apache-2.0 */
/* fam_bulk.c — gather, scatter, bulk atomics and copy.
 *
 * Indexed and strided gather/scatter and bulk atomics are done by the
 * memory server: the client checks every index, turns indices into byte
 * offsets and sends them in chunks of up to FAMP_BULK_MAX bytes as fabric
 * messages (fam_proto.h); famd gathers, scatters or updates against its
 * own pool and answers with the data and a status. Elements larger than
 * BULK_MAX_ESIZE move with one RMA each. Non-blocking forms complete before
 * they return, which OpenFAM's semantics allow. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#include "fam_internal.h"
#include "fam_cpu_atomic.h"

static int check_elems(fam_t *f, fam_item_t *d, const void *local, uint64_t n,
                       uint64_t esize, const char *what)
{
    fam_clear_error();
    if (!f || !d) return fam_fail(FAM_EINVAL, "%s: NULL fam_t or descriptor", what);
    if (esize == 0) return fam_fail(FAM_EINVAL, "%s: element size is 0", what);
    if (n && !local) return fam_fail(FAM_EINVAL, "%s: local buffer is NULL", what);
    if (esize > d->size)
        return fam_fail(FAM_EINVAL, "%s: element size %llu is larger than '%s' "
                        "(%llu bytes)", what, (unsigned long long)esize, d->name,
                        (unsigned long long)d->size);
    return 0;
}

/* Elements in d: valid indices are [0, count). */
static uint64_t elems_in(fam_item_t *d, uint64_t esize) { return d->size / esize; }

static int stride_check(fam_t *f, fam_item_t *d, const void *local, uint64_t n,
                        uint64_t first, uint64_t stride, uint64_t esize,
                        const char *what)
{
    int rc = check_elems(f, d, local, n, esize, what);
    if (rc || n == 0) return rc;
    uint64_t count = elems_in(d, esize);
    if (stride == 0 && n > 1)
        return fam_fail(FAM_EINVAL, "%s: stride is 0", what);
    /* last = first + (n-1)*stride, computed without overflow */
    if (first >= count || (n > 1 && (count - 1 - first) / stride < n - 1))
        return fam_fail(FAM_EOUTOFRANGE, "%s: %llu elements from %llu with "
                        "stride %llu go past the end of '%s' (%llu elements of "
                        "%llu bytes)", what, (unsigned long long)n,
                        (unsigned long long)first, (unsigned long long)stride,
                        d->name, (unsigned long long)count,
                        (unsigned long long)esize);
    return 0;
}

static int index_check(fam_t *f, fam_item_t *d, const void *local, uint64_t n,
                       const uint64_t *idx, uint64_t esize, const char *what)
{
    int rc = check_elems(f, d, local, n, esize, what);
    if (rc) return rc;
    if (n && !idx) return fam_fail(FAM_EINVAL, "%s: index array is NULL", what);
    uint64_t count = elems_in(d, esize);
    for (uint64_t i = 0; i < n; i++)
        if (idx[i] >= count)
            return fam_fail(FAM_EOUTOFRANGE, "%s: index %llu (at position %llu) "
                            "is out of range for '%s' (%llu elements)", what,
                            (unsigned long long)idx[i], (unsigned long long)i,
                            d->name, (unsigned long long)count);
    return 0;
}

/* ---- bulk requests to famd ---------------------------------------------
 *
 * Indexed work is shipped to the memory server: a request carries a chunk
 * of byte offsets (and for scatter and atomics, the values), famd does the
 * work against its own pool and answers with the data and/or a status.
 * Up to BULK_WINDOW requests of one call are in flight at once, so the
 * client builds the next chunk while famd works on the previous one. */

#define BULK_WINDOW 4
#define BULK_HDR sizeof(struct famp_bulk)

/* Post one request (flock held). `reply` receives reply_len bytes. */
int fam_breq_post(fam_t *f, struct breq *r, int server, uint8_t *msg,
                     size_t len, void *reply, size_t reply_len)
{
    return fam_breq_post_by(f, r, server, msg, len, reply, reply_len, 0);
}

/* A full queue is waited on until the operation's deadline (deadline_us,
 * fam_now_us's clock), or for timeout_ms of no progress when it is 0. */
static int post_stuck(fam_t *f, unsigned spins, uint64_t *since, uint64_t deadline_us)
{
    if (fam_post_full(f, spins, since, NULL, NULL)) return 1;
    if (deadline_us && fam_now_us() > deadline_us) {
        f->broken = 1;
        return 1;
    }
    return 0;
}

int fam_breq_post_by(fam_t *f, struct breq *r, int server, uint8_t *msg, size_t len,
                     void *reply, size_t reply_len, uint64_t deadline_us)
{
    struct fam_server *s = &f->srv[server];
    struct fid_ep *ep = FAM_EP(f, server)->ep;
    struct famp_bulk *h = (struct famp_bulk *)(void *)msg;
    memset(r, 0, sizeof *r);
    r->also_wake = -1;
    r->seq = ++f->bseq & FAMP_SEQ_MASK;
    r->server = server;
    r->msg = msg;
    h->magic = FAMP_BULK_MAGIC;
    h->version = FAMP_VERSION;
    h->token = s->token;
    h->seq = r->seq;
    ssize_t rc;
    unsigned spins = 0;
    uint64_t since = 0;
    if (!(r->status = fam_op_new(0)) || !(r->send = fam_op_new(0)) ||
        (reply_len && !(r->data = fam_op_new(0)))) {
        free(r->status); free(r->send); free(r->data);
        return fam_fail(FAM_ENOMEM, "out of memory");
    }
    if (reply_len) {
        while ((rc = fi_trecv(ep, reply, reply_len, NULL, s->addr, r->seq, 0,
                              r->data)) == -FI_EAGAIN)
            if (post_stuck(f, spins++, &since, deadline_us)) { rc = -FI_ETIMEDOUT; break; }
        if (rc) goto fail;
    }
    while ((rc = fi_trecv(ep, &r->st, sizeof r->st, NULL, s->addr,
                          FAMP_TAG_STATUS | r->seq, 0, r->status)) == -FI_EAGAIN)
        if (post_stuck(f, spins++, &since, deadline_us)) { rc = -FI_ETIMEDOUT; break; }
    if (rc) goto fail;
    while ((rc = fi_tsend(ep, msg, len, NULL, s->addr, FAMP_TAG_REQ,
                          r->send)) == -FI_EAGAIN)
        if (post_stuck(f, spins++, &since, deadline_us)) { rc = -FI_ETIMEDOUT; break; }
    if (rc) goto fail;
    return 0;
fail:
    f->broken = 1;
    /* a receive already posted is cancelled and left to complete */
    if (r->data && rc) { fi_cancel(&ep->fid, r->data); r->data->abandoned = 1; }
    r->status->abandoned = 1;
    fi_cancel(&ep->fid, r->status);
    free(r->send);
    r->send = r->data = r->status = NULL;
    return fam_fail(FAM_EFABRIC, "bulk request to memory server %s:%d could "
                    "not be posted: %s", s->host, s->port, fi_strerror((int)-rc));
}

/* Wait for a posted request (flock held): 0, or the error famd or the
 * fabric reported. Frees the request's resources. */
int fam_breq_wait(fam_t *f, struct breq *r)
{
    uint64_t deadline = r->deadline_us ? r->deadline_us
                        : fam_now_us() + (uint64_t)f->timeout_ms * 1000u, since = 0;
    struct fid_ep *ep = FAM_EP(f, r->server)->ep;
    r->failed_how = FAM_BREQ_ANSWERED;
    for (unsigned spins = 0;; spins++) {
        int n = fam_drain(f);
        if (r->status->done && r->send->done && (!r->data || r->data->done ||
                                                 r->st.status || r->status->err))
            break;
        if (n) { spins = 0; since = 0; continue; }
        if (spins < 64) continue;
        fam_wake(f, r->server);
        if (r->also_wake >= 0) fam_wake(f, r->also_wake);
        fam_backoff(spins, &since);
        if (spins >= 64 && (spins & 15) == 0 && fam_now_us() > deadline) {
            /* famd did not answer: leave the operations to the provider,
             * and rebuild the endpoint before the next operation */
            f->broken = 1;
            r->status->abandoned = r->send->abandoned = 1;
            fi_cancel(&ep->fid, r->status);
            if (r->data) {
                r->data->abandoned = 1;
                fi_cancel(&ep->fid, r->data);
            }
            struct fam_server *s = &f->srv[r->server];
            r->failed_how = FAM_BREQ_TIMEOUT;
            return fam_fail(FAM_ETIMEOUT, "memory server %s:%d did not answer "
                            "a bulk request within %d ms", s->host, s->port,
                            f->timeout_ms);
        }
    }
    int rc = 0;
    if (r->send->err || r->status->err) {
        struct fam_server *s = &f->srv[r->server];
        r->failed_how = FAM_BREQ_FABRIC;
        rc = fam_fail(FAM_EFABRIC, "bulk request to memory server %s:%d "
                      "failed: %s", s->host, s->port,
                      fi_strerror(r->send->err ? r->send->err : r->status->err));
    } else if (r->st.status) {
        uint32_t ml = r->st.msglen < FAMP_MAX_ERRMSG ? r->st.msglen : FAMP_MAX_ERRMSG;
        int code = r->st.status < 0 && r->st.status > -100 ? r->st.status : FAM_EPROTO;
        rc = fam_fail(code, "%.*s", (int)ml, r->st.msg);
    }
    if (r->data && !r->data->done) { /* famd failed before sending data */
        r->data->abandoned = 1;
        fi_cancel(&ep->fid, r->data);
    } else if (r->data) {
        if (!rc && r->data->err)
            rc = fam_fail(FAM_EFABRIC, "bulk reply failed: %s",
                          fi_strerror(r->data->err));
        free(r->data);
    }
    free(r->status);
    free(r->send);
    free(r->msg);
    return rc;
}

/* A bulk call: the ops of one gather, scatter or atomic on one item. */
struct bulk {
    fam_t *f;
    fam_item_t *d;
    uint16_t op;         /* enum famp_bulk_op */
    uint64_t esize;      /* bytes per element */
    uint32_t aop, dtype; /* atomics */
    const uint64_t *idx; /* element numbers, or NULL for first + i*stride */
    uint64_t first, stride;
    const uint8_t *in;   /* scatter/atomic: n values */
    uint8_t *out;        /* gather / fetched old values, or NULL */
    struct breq win[BULK_WINDOW];
    /* per request in the window: where its reply goes when it is not
     * straight into `out` (striped items): tmp[i] -> out[pos[i]] */
    uint8_t *tmp[BULK_WINDOW];
    const uint64_t *pos[BULK_WINDOW];
    uint64_t npos[BULK_WINDOW];
    int part[BULK_WINDOW]; /* the item part each request in the window goes to */
    int head, count;     /* requests in flight, oldest at head */
    int rc;              /* first error */
};

static inline uint64_t elem(const struct bulk *b, uint64_t i)
{
    return b->idx ? b->idx[i] : b->first + i * b->stride;
}

static void bulk_retire_one(struct bulk *b)
{
    int h = b->head;
    int rc = fam_breq_wait(b->f, &b->win[h]);
    if (rc && !b->rc) b->rc = rc;
    if (b->tmp[h]) {
        if (!rc)
            for (uint64_t i = 0; i < b->npos[h]; i++)
                memcpy(b->out + b->pos[h][i] * b->esize, b->tmp[h] + i * b->esize,
                       b->esize);
        free(b->tmp[h]);
        b->tmp[h] = NULL;
    }
    b->head = (h + 1) % BULK_WINDOW;
    b->count--;
}

/* Is a request to part p in the window? */
static int part_in_flight(const struct bulk *b, int p)
{
    for (int k = 0; k < b->count; k++)
        if (b->part[(b->head + k) % BULK_WINDOW] == p) return 1;
    return 0;
}

/* Send n elements to part p. Element j of the request is element pos[j]
 * of the call (pos NULL: element from + j), at part byte off[j] (already
 * in the message). */
static void bulk_chunk(struct bulk *b, int p, uint8_t *msg, uint64_t from,
                       const uint64_t *pos, uint64_t n)
{
    fam_t *f = b->f;
    struct fam_part *part = &b->d->part[p];
    struct famp_bulk *h = (struct famp_bulk *)(void *)msg;
    h->op = b->op;
    h->id = part->id;
    h->key = part->key;
    h->n = n;
    h->esize = b->esize;
    h->aop = b->aop;
    h->dtype = b->dtype;
    h->fetch = b->op == FAMP_B_ATOMIC && b->out;
    size_t len = BULK_HDR + n * 8;
    if (b->op != FAMP_B_GATHER) {
        if (pos)
            for (uint64_t j = 0; j < n; j++)
                memcpy(msg + len + j * b->esize, b->in + pos[j] * b->esize, b->esize);
        else
            memcpy(msg + len, b->in + from * b->esize, n * b->esize);
        len += n * b->esize;
    }
    if (b->count == BULK_WINDOW) bulk_retire_one(b);
    if (b->op == FAMP_B_SCATTER)
        /* a scatter's elements are written in index order (the last of
         * repeated indices wins, as in NumPy): famd applies one message in
         * order, and a part's next message waits until its previous one is
         * done, so no two messages to one part are ever in flight at once */
        while (b->count && !b->rc && part_in_flight(b, p)) bulk_retire_one(b);
    if (b->rc) { free(msg); return; }
    int slot = (b->head + b->count) % BULK_WINDOW;
    b->part[slot] = p;
    uint8_t *reply = NULL;
    size_t rlen = b->out ? n * b->esize : 0;
    if (b->out && pos) {
        if (!(reply = b->tmp[slot] = malloc(rlen ? rlen : 1))) {
            free(msg);
            b->rc = fam_fail(FAM_ENOMEM, "out of memory");
            return;
        }
        b->pos[slot] = pos;
        b->npos[slot] = n;
    } else if (b->out) {
        reply = b->out + from * b->esize;
    }
    fam_wake_first(f, part->server);
    int rc = fam_breq_post(f, &b->win[slot], part->server, msg, len, reply, rlen);
    if (rc) {
        free(msg);
        free(b->tmp[slot]);
        b->tmp[slot] = NULL;
        if (!b->rc) b->rc = rc;
        return;
    }
    b->count++;
}

static uint8_t *new_msg(struct bulk *b, uint64_t k)
{
    uint8_t *msg = malloc(BULK_HDR + k * (8 + (b->op == FAMP_B_GATHER ? 0 : b->esize)));
    if (msg) memset(msg, 0, BULK_HDR);
    else if (!b->rc) b->rc = fam_fail(FAM_ENOMEM, "out of memory");
    return msg;
}

/* The same-host fast path: every part of the item is mapped here, so the
 * call is a loop over memory (atomics with the CPU's instructions, as famd
 * does them). Returns 1 if it ran. */
static int bulk_local(struct bulk *b, uint64_t n)
{
    fam_t *f = b->f;
    fam_item_t *d = b->d;
    for (int p = 0; p < d->nparts; p++)
        if (!f->srv[d->part[p].server].map) return 0;
    uint64_t es = b->esize;
    if (d->nparts == 1) {
        uint8_t *base = FAM_LOCAL(f, &d->part[0], 0);
        if (b->op == FAMP_B_GATHER && es == 8) {
            uint64_t *o = (uint64_t *)(void *)b->out;
            for (uint64_t i = 0; i < n; i++) memcpy(&o[i], base + elem(b, i) * 8, 8);
            return 1;
        }
        if (b->op == FAMP_B_SCATTER && es == 8) {
            for (uint64_t i = 0; i < n; i++) memcpy(base + elem(b, i) * 8, b->in + 8 * i, 8);
            return 1;
        }
        if (b->op == FAMP_B_ATOMIC && b->dtype == FAM_UINT64 && b->aop == FAM_AOP_XOR &&
            !b->out) { /* GUPS's update */
            const uint64_t *v = (const uint64_t *)(const void *)b->in;
            for (uint64_t i = 0; i < n; i++)
                __atomic_fetch_xor((uint64_t *)(void *)(base + elem(b, i) * 8), v[i],
                                   __ATOMIC_RELAXED);
            return 1;
        }
        if (b->op == FAMP_B_ATOMIC) {
            uint8_t scratch[8];
            for (uint64_t i = 0; i < n; i++)
                fam_cpu_atomic(base + elem(b, i) * es, b->dtype, b->aop, b->in + i * es,
                               b->out ? b->out + i * es : scratch);
            return 1;
        }
    }
    uint8_t scratch[8];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t local, run;
        struct fam_part *p = &d->part[fam_locate(d, elem(b, i) * es, &local, &run)];
        uint8_t *at = FAM_LOCAL(f, p, local);
        if (b->op == FAMP_B_GATHER) memcpy(b->out + i * es, at, es);
        else if (b->op == FAMP_B_SCATTER) memcpy(at, b->in + i * es, es);
        else fam_cpu_atomic(at, b->dtype, b->aop, b->in + i * es,
                            b->out ? b->out + i * es : scratch);
    }
    return 1;
}

/* Run a bulk call over n elements (b->idx, or first + i*stride), all
 * already checked to be in range. */
static int bulk_run(struct bulk *b, uint64_t n)
{
    fam_t *f = b->f;
    fam_item_t *d = b->d;
    uint64_t per = (FAMP_BULK_MAX - BULK_HDR) /
                   (8 + (b->op == FAMP_B_GATHER ? 0 : b->esize));
    if (b->out && per > FAMP_BULK_MAX / b->esize) per = FAMP_BULK_MAX / b->esize;
    uint64_t *pos = NULL, *start = NULL;
    if (d->nparts > 1) {
        /* group the elements by part (a counting sort keeps their order) */
        if (d->stripe % b->esize)
            return fam_fail(FAM_EINVAL, "elements of %llu bytes do not divide "
                            "the stripe size of '%s' (%llu bytes)",
                            (unsigned long long)b->esize, d->name,
                            (unsigned long long)d->stripe);
    }
    if (bulk_local(b, n)) return 0;
    if (d->nparts > 1) {
        pos = malloc(n * sizeof *pos);
        start = calloc((size_t)d->nparts + 1, sizeof *start);
        if (!pos || !start) {
            free(pos);
            free(start);
            return fam_fail(FAM_ENOMEM, "out of memory");
        }
        uint64_t per_stripe = d->stripe / b->esize;
        for (uint64_t i = 0; i < n; i++)
            start[(elem(b, i) / per_stripe) % (uint64_t)d->nparts + 1]++;
        for (int p = 0; p < d->nparts; p++) start[p + 1] += start[p];
        uint64_t *fill = malloc((size_t)d->nparts * sizeof *fill);
        if (!fill) {
            free(pos);
            free(start);
            return fam_fail(FAM_ENOMEM, "out of memory");
        }
        memcpy(fill, start, (size_t)d->nparts * sizeof *fill);
        for (uint64_t i = 0; i < n; i++)
            pos[fill[(elem(b, i) / per_stripe) % (uint64_t)d->nparts]++] = i;
        free(fill);
    }
    pthread_mutex_lock(&f->flock);
    if (!b->rc) b->rc = fam_fabric_ready(f);
    if (!pos) {
        for (uint64_t at = 0; at < n && !b->rc; at += per) {
            uint64_t k = n - at < per ? n - at : per;
            uint8_t *msg = new_msg(b, k);
            if (!msg) break;
            uint64_t *off = (uint64_t *)(void *)(msg + BULK_HDR);
            for (uint64_t i = 0; i < k; i++) off[i] = elem(b, at + i) * b->esize;
            bulk_chunk(b, 0, msg, at, NULL, k);
        }
    } else {
        /* the parts' chunks in turn, so every server works at once */
        uint64_t *next = malloc((size_t)d->nparts * sizeof *next);
        if (!next) b->rc = fam_fail(FAM_ENOMEM, "out of memory");
        else memcpy(next, start, (size_t)d->nparts * sizeof *next);
        for (int more = 1; more && !b->rc;) {
            more = 0;
            for (int p = 0; p < d->nparts && !b->rc; p++) {
                uint64_t at = next[p], end = start[p + 1];
                if (at >= end) continue;
                uint64_t k = end - at < per ? end - at : per;
                uint8_t *msg = new_msg(b, k);
                if (!msg) break;
                uint64_t *off = (uint64_t *)(void *)(msg + BULK_HDR);
                for (uint64_t j = 0; j < k; j++) {
                    uint64_t local, run;
                    fam_locate(d, elem(b, pos[at + j]) * b->esize, &local, &run);
                    off[j] = local;
                }
                bulk_chunk(b, p, msg, 0, pos + at, k);
                next[p] = at + k;
                more |= next[p] < end;
            }
        }
        free(next);
    }
    while (b->count) bulk_retire_one(b);
    pthread_mutex_unlock(&f->flock);
    free(pos);
    free(start);
    return b->rc;
}

/* Elements bigger than this move with one RMA each: a transfer that size
 * is already efficient, and it keeps bulk messages small. */
#define BULK_MAX_ESIZE (64u << 10)

static int transfer(fam_t *f, int write, void *local, fam_item_t *d, uint64_t n,
                    const uint64_t *idx, uint64_t first, uint64_t stride,
                    uint64_t esize)
{
    int rc = 0;
    if (esize > BULK_MAX_ESIZE) {
        for (uint64_t i = 0; i < n && !rc; i++) {
            uint64_t e = idx ? idx[i] : first + i * stride;
            char *p = (char *)local + i * esize;
            /* writes one after the other: of repeated indices the last wins */
            rc = write ? fam_put_blocking(f, p, d, e * esize, esize)
                       : fam_get_nonblocking(f, p, d, e * esize, esize);
        }
        return rc ? rc : fam_quiet(f);
    }
    if (write && !d->writable)
        return fam_fail(FAM_EPERM, "no permission to write item '%s' (it was "
                        "opened read-only)", d->name);
    struct bulk b = {.f = f, .d = d, .esize = esize,
                     .op = write ? FAMP_B_SCATTER : FAMP_B_GATHER,
                     .idx = idx, .first = first, .stride = stride,
                     .in = write ? local : NULL, .out = write ? NULL : local};
    return bulk_run(&b, n);
}

static int strided(fam_t *f, int write, void *local, fam_item_t *d, uint64_t n,
                   uint64_t first, uint64_t stride, uint64_t esize, int blocking)
{
    (void)blocking; /* non-blocking calls complete before they return */
    const char *what = write ? "scatter" : "gather";
    int rc = stride_check(f, d, local, n, first, stride, esize, what);
    if (rc || n == 0) return rc;
    if (stride == 1 || n == 1) { /* contiguous: one transfer */
        return write ? fam_put_blocking(f, local, d, first * esize, n * esize)
                     : fam_get_blocking(f, local, d, first * esize, n * esize);
    }
    return transfer(f, write, local, d, n, NULL, first, stride, esize);
}

static int indexed(fam_t *f, int write, void *local, fam_item_t *d, uint64_t n,
                   const uint64_t *idx, uint64_t esize, int blocking)
{
    (void)blocking;
    const char *what = write ? "scatter" : "gather";
    int rc = index_check(f, d, local, n, idx, esize, what);
    if (rc || n == 0) return rc;
    return transfer(f, write, local, d, n, idx, 0, 0, esize);
}

int fam_atomic_index(fam_t *f, fam_item_t *d, fam_aop_t op, fam_dtype_t type,
                     uint64_t n, const uint64_t *idx, const void *values,
                     void *old)
{
    uint64_t es = fam_dtype_size(type);
    fam_clear_error();
    if (!es) return fam_fail(FAM_EINVAL, "atomic: unknown type %d", (int)type);
    if (op < FAM_AOP_SET || op > FAM_AOP_XOR)
        return fam_fail(FAM_EINVAL, "atomic: unknown operation %d", (int)op);
    if (op >= FAM_AOP_AND && (type == FAM_FLOAT || type == FAM_DOUBLE))
        return fam_fail(FAM_EINVAL, "atomic: bit operations need an integer type");
    int rc = index_check(f, d, values, n, idx, es, "atomic");
    if (rc || n == 0) return rc;
    if (!d->writable)
        return fam_fail(FAM_EPERM, "no permission to update item '%s' (it was "
                        "opened read-only)", d->name);
    struct bulk b = {.f = f, .d = d, .esize = es, .op = FAMP_B_ATOMIC,
                     .aop = (uint32_t)op, .dtype = (uint32_t)type,
                     .idx = idx, .in = values, .out = old};
    return bulk_run(&b, n);
}

int fam_gather_blocking_stride(fam_t *f, void *local, fam_item_t *d, uint64_t n,
                               uint64_t first, uint64_t stride, uint64_t esize)
{ return strided(f, 0, local, d, n, first, stride, esize, 1); }
int fam_scatter_blocking_stride(fam_t *f, const void *local, fam_item_t *d,
                                uint64_t n, uint64_t first, uint64_t stride,
                                uint64_t esize)
{ return strided(f, 1, (void *)local, d, n, first, stride, esize, 1); }
int fam_gather_nonblocking_stride(fam_t *f, void *local, fam_item_t *d,
                                  uint64_t n, uint64_t first, uint64_t stride,
                                  uint64_t esize)
{ return strided(f, 0, local, d, n, first, stride, esize, 0); }
int fam_scatter_nonblocking_stride(fam_t *f, const void *local, fam_item_t *d,
                                   uint64_t n, uint64_t first, uint64_t stride,
                                   uint64_t esize)
{ return strided(f, 1, (void *)local, d, n, first, stride, esize, 0); }
int fam_gather_blocking_index(fam_t *f, void *local, fam_item_t *d, uint64_t n,
                              const uint64_t *idx, uint64_t esize)
{ return indexed(f, 0, local, d, n, idx, esize, 1); }
int fam_scatter_blocking_index(fam_t *f, const void *local, fam_item_t *d,
                               uint64_t n, const uint64_t *idx, uint64_t esize)
{ return indexed(f, 1, (void *)local, d, n, idx, esize, 1); }
int fam_gather_nonblocking_index(fam_t *f, void *local, fam_item_t *d,
                                 uint64_t n, const uint64_t *idx, uint64_t esize)
{ return indexed(f, 0, local, d, n, idx, esize, 0); }
int fam_scatter_nonblocking_index(fam_t *f, const void *local, fam_item_t *d,
                                  uint64_t n, const uint64_t *idx, uint64_t esize)
{ return indexed(f, 1, (void *)local, d, n, idx, esize, 0); }

/* Milliseconds left until deadline (at least 1): what a copy or restore
 * request gives famd (famp_bulk.n), so that famd answers before the
 * client stops waiting. */
uint64_t fam_budget_left_ms(uint64_t deadline_us)
{
    uint64_t now = fam_now_us();
    return deadline_us > now + 1000 ? (deadline_us - now) / 1000 : 1;
}

uint64_t fam_wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

int fam_xfer_fail(fam_t *f, const struct breq *r, int rc, const char *what,
                  uint64_t budget_ms)
{
    char was[FAMP_MAX_ERRMSG];
    snprintf(was, sizeof was, "%s", fam_last_error());
    const struct fam_server *s = &f->srv[r->server];
    const struct fam_server *d = r->also_wake >= 0 ? &f->srv[r->also_wake] : NULL;
    switch (r->failed_how) {
    case FAM_BREQ_TIMEOUT:
        return fam_fail(FAM_ETIMEOUT, "%s: memory server %s:%d (the source) "
                        "stopped answering: no answer within the %llu ms the "
                        "%s was given", what, s->host, s->port,
                        (unsigned long long)budget_ms, what);
    case FAM_BREQ_FABRIC:
        return fam_fail(FAM_EUNREACHABLE, "%s: memory server %s:%d (the "
                        "source) is unreachable: %s", what, s->host, s->port,
                        was);
    default: /* famd's own answer */
        if (d && rc == FAM_ETIMEOUT)
            return fam_fail(rc, "%s: memory server %s:%d (the destination) "
                            "stopped answering memory server %s:%d, which "
                            "writes to it: %s", what, d->host, d->port,
                            s->host, s->port, was);
        if (d && rc == FAM_EFABRIC)
            return fam_fail(rc, "%s: memory server %s:%d could not write to "
                            "memory server %s:%d (the destination): %s", what,
                            s->host, s->port, d->host, d->port, was);
        return rc; /* its message stands */
    }
}

/* ---- copy -----------------------------------------------------------------
 *
 * A copy is cut where either item's stripes end; each piece is one request
 * to the memory server holding its source bytes, which copies them itself:
 * with memmove when the destination part is on the same server, else by
 * RMA writes straight to the other server. The bytes never pass through
 * the client. While a piece is in flight the client keeps both servers
 * awake (WAKE), since the destination's provider needs its progress too.
 *
 * The whole copy has one deadline, timeout_ms after fam_copy: each piece
 * is waited for until then only (16 pieces in flight used to wait the full
 * timeout each, in turn, behind a dead server), and each request tells
 * famd how long it has, so that a source famd whose destination stopped
 * answering says so before the client gives up. An error names the
 * server that stopped answering (fam_xfer_fail). */

#define COPY_WINDOW 16 /* pieces of one copy in flight */
#define COPY_PIECE (64ull << 20) /* largest piece of an unstriped copy */

struct fam_copy {
    fam_item_t *src, *dst;
    uint64_t src_off, dst_off, n;
    uint64_t done;             /* bytes handed to requests so far */
    uint64_t deadline_us;      /* the whole copy's (fam_now_us): every
                                  piece is waited for until then only */
    uint64_t budget_ms;        /* the time it was given (timeout_ms) */
    struct breq win[COPY_WINDOW];
    int head, count;           /* requests in flight */
    int rc;                    /* first error */
    char msg[FAMP_MAX_ERRMSG]; /* its message */
};

static void copy_fail(fam_copy_t *h, int rc)
{
    if (!h->rc) {
        h->rc = rc;
        snprintf(h->msg, sizeof h->msg, "%s", fam_last_error());
    }
}

/* Post pieces until the window is full or the copy is all posted (flock). */
static void copy_post(fam_t *f, fam_copy_t *h)
{
    while (h->count < COPY_WINDOW && h->done < h->n && !h->rc) {
        uint64_t at = h->done, sl, sr, dl, dr;
        struct fam_part *sp = &h->src->part[fam_locate(h->src, h->src_off + at, &sl, &sr)];
        struct fam_part *dp = &h->dst->part[fam_locate(h->dst, h->dst_off + at, &dl, &dr)];
        uint64_t len = h->n - at;
        if (len > sr) len = sr;
        if (len > dr) len = dr;
        uint8_t *ls = FAM_LOCAL(f, sp, sl), *ld = FAM_LOCAL(f, dp, dl);
        if (ls && ld) { /* same-host fast path */
            memmove(ld, ls, len);
            h->done += len;
            continue;
        }
        if (len > COPY_PIECE) len = COPY_PIECE;
        uint8_t *msg = calloc(1, BULK_HDR);
        if (!msg) { copy_fail(h, fam_fail(FAM_ENOMEM, "out of memory")); break; }
        struct famp_bulk *q = (struct famp_bulk *)(void *)msg;
        q->op = FAMP_B_COPY;
        q->id = sp->id;
        q->key = sp->key;
        q->src_off = sl;
        q->len = len;
        q->dst_key = dp->key;
        q->dst_off = dl;
        if (dp->server == sp->server) {
            q->dst_id = dp->id;
        } else {
            struct fam_server *ds = &f->srv[dp->server];
            q->dst_addrlen = ds->faddrlen;
            memcpy(q->dst_addr, ds->faddr, ds->faddrlen);
            q->dst_addr_rma = (ds->virt_addr ? dp->base : 0) + dl;
        }
        q->n = fam_budget_left_ms(h->deadline_us); /* famd answers by then */
        q->esize = fam_wall_ms();                   /* counted from now */
        struct breq *r = &h->win[(h->head + h->count) % COPY_WINDOW];
        fam_wake_first(f, sp->server);
        if (dp->server != sp->server) fam_wake_first(f, dp->server);
        int rc = fam_breq_post_by(f, r, sp->server, msg, BULK_HDR, NULL, 0, h->deadline_us);
        if (rc) {
            char was[FAMP_MAX_ERRMSG];
            snprintf(was, sizeof was, "%s", fam_last_error());
            struct fam_server *s = &f->srv[sp->server];
            free(msg);
            copy_fail(h, fam_fail(rc, "copy: memory server %s:%d (the "
                                  "source) takes no requests: %s", s->host,
                                  s->port, was));
            break;
        }
        r->also_wake = dp->server != sp->server ? dp->server : -1;
        r->deadline_us = h->deadline_us;
        fam_wake_always(f, sp->server); /* famd counts from arrival */
        h->count++;
        h->done += len;
    }
}

int fam_copy(fam_t *f, fam_item_t *src, uint64_t src_off, fam_item_t *dst,
             uint64_t dst_off, uint64_t n, fam_copy_t **handle)
{
    fam_clear_error();
    if (!f || !src || !dst || !handle)
        return fam_fail(FAM_EINVAL, "copy: NULL argument");
    if (src_off > src->size || n > src->size - src_off)
        return fam_fail(FAM_EOUTOFRANGE, "copy of %llu bytes from offset %llu "
                        "is past the end of '%s' (%llu bytes)",
                        (unsigned long long)n, (unsigned long long)src_off,
                        src->name, (unsigned long long)src->size);
    if (dst_off > dst->size || n > dst->size - dst_off)
        return fam_fail(FAM_EOUTOFRANGE, "copy of %llu bytes to offset %llu is "
                        "past the end of '%s' (%llu bytes)",
                        (unsigned long long)n, (unsigned long long)dst_off,
                        dst->name, (unsigned long long)dst->size);
    if (!dst->writable)
        return fam_fail(FAM_EPERM, "no permission to write item '%s' (it was "
                        "opened read-only)", dst->name);
    fam_copy_t *h = calloc(1, sizeof *h);
    if (!h) return fam_fail(FAM_ENOMEM, "out of memory");
    h->src = src;
    h->dst = dst;
    h->src_off = src_off;
    h->dst_off = dst_off;
    h->n = n;
    h->budget_ms = (uint64_t)f->timeout_ms;
    h->deadline_us = fam_now_us() + h->budget_ms * 1000u;
    pthread_mutex_lock(&f->flock);
    int rc = fam_fabric_ready(f);
    if (rc) {
        pthread_mutex_unlock(&f->flock);
        free(h);
        return rc;
    }
    copy_post(f, h);
    pthread_mutex_unlock(&f->flock);
    *handle = h;
    return 0;
}

int fam_copy_wait(fam_t *f, fam_copy_t *h)
{
    fam_clear_error();
    if (!f || !h) return fam_fail(FAM_EINVAL, "copy: NULL fam_t or handle");
    pthread_mutex_lock(&f->flock);
    while (h->count) {
        struct breq *r = &h->win[h->head];
        int rc = fam_breq_wait(f, r);
        if (rc) copy_fail(h, fam_xfer_fail(f, r, rc, "copy", h->budget_ms));
        h->head = (h->head + 1) % COPY_WINDOW;
        h->count--;
        copy_post(f, h);
    }
    pthread_mutex_unlock(&f->flock);
    int rc = h->rc ? fam_fail(h->rc, "%s", h->msg) : 0;
    free(h);
    return rc;
}

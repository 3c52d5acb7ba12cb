/* SPDX-License-Identifier: Apache-2.0 */
/* famd_bulk.c — bulk work done next to the memory: indexed gather and
 * scatter, bulk atomics and copies, requested with fabric messages.
 *
 * One network operation per element runs at ~0.4 M ops/s here; a request
 * that carries a whole list of offsets and lets famd touch its own pool
 * runs at memory speed. The message formats are in fam_proto.h
 * (struct famp_bulk, struct famp_bstatus) and docs/PROTOCOL.md.
 *
 * famd keeps FAMD_RX_BUFS receive buffers posted for requests. A request is
 * checked completely before any byte of the pool changes: its size against
 * its element count, the item id, the key (the capability the client got
 * from a permitted lookup; read-only keys allow gather only) and every
 * offset. Then it runs to completion inside this single-threaded event loop
 * and its replies are queued for sending. A copy to another famd is the one
 * request that waits: famd writes the bytes to the other famd with RMA and
 * answers when every write has completed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>

#include "famd.h"
#include "fam_cpu_atomic.h"

#define FAMD_RX_BUFS 4         /* requests received at once */
#define FAMD_COPY_CHUNK (1u << 20) /* bytes per RMA write of a copy */
#define FAMD_COPY_DEPTH 8      /* RMA writes of one copy in flight */
#define FAMD_COPY_TIMEOUT_US 60000000ull /* default; $FAMD_COPY_TIMEOUT_MS */
#define FAMD_MAX_REMOTES 64    /* other famds a copy may target */

enum ctx_kind { CTX_RX = 1, CTX_TX, CTX_COPY };

/* Every operation famd posts starts with this; the provider owns `fc`. */
struct bctx {
    struct fi_context fc;
    enum ctx_kind kind;
};

/* A posted receive buffer for one request. */
struct rxbuf {
    struct bctx c;
    int posted;      /* 1 while the provider holds it */
    uint8_t *buf;    /* FAMP_BULK_MAX bytes */
};

/* A reply waiting to be sent or being sent; freed when the send completes. */
struct txmsg {
    struct bctx c;
    struct txmsg *next; /* in the queue of replies not yet accepted */
    fi_addr_t to;
    uint64_t tag;
    size_t len;
    uint8_t data[];
};

/* One RMA write of a copy. */
struct copyop {
    struct bctx c;
    struct copyjob *job;
};

/* A copy to another famd, in progress. */
struct copyjob {
    struct copyjob *next;  /* in the list of jobs */
    fi_addr_t reply_to;    /* the client */
    uint64_t seq;
    fi_addr_t dst;         /* the other famd */
    const uint8_t *src;    /* next source byte in our pool */
    int fd;                /* restores: the backup file, else -1 */
    uint64_t foff;         /* restores: next file offset to read */
    uint8_t *stage;        /* restores: FAMD_COPY_DEPTH chunk buffers */
    uint64_t dst_addr;     /* next destination RMA address */
    uint64_t dst_key;
    uint64_t left;         /* bytes not yet issued */
    int inflight;          /* writes issued, not completed */
    int status;            /* first error, or 0 */
    int answered;          /* the client has its status (error or timeout) */
    uint64_t deadline_us;
    struct copyop ops[FAMD_COPY_DEPTH];
    int opfree[FAMD_COPY_DEPTH]; /* 1: ops[i] is not in flight */
};

/* A connection allowed to send bulk requests. */
struct peer {
    uint64_t token;  /* secret handed out in HELLO; 0 = unused entry */
    fi_addr_t addr;  /* its endpoint in our address vector */
    struct famd_cred cred; /* who it is (for backups) */
    int used;        /* it sent a bulk request: fabric traffic with us */
    uint32_t alen;   /* its address as given in HELLO */
    uint8_t abytes[FAMP_ADDR_MAX];
    int inflight;    /* replies to it handed to the provider, not done */
    int zombie;      /* closed, but its address stays until `inflight`
                        is 0 (famd_bulk_peer_drop); token is 0 */
};

/* Another famd we copy to. */
struct remote {
    uint32_t len;
    uint8_t name[FAMP_ADDR_MAX];
    fi_addr_t addr;
};

struct famd_bulk {
    struct rxbuf rx[FAMD_RX_BUFS];
    struct txmsg *txq, *txq_tail; /* replies the provider did not take yet */
    int tx_inflight;              /* replies handed to the provider */
    uint64_t tx_last_us;          /* when a reply was last sent or completed */
    struct copyjob *jobs;
    struct peer *peers;
    size_t npeers;
    struct remote remotes[FAMD_MAX_REMOTES];
    int nremotes;
    uint64_t copy_timeout_us;     /* longest a copy to another famd may
                                     take (FAMD_COPY_TIMEOUT_MS) */
};

/* ---- receive buffers and replies ------------------------------------- */

/* The peer (live or closed) whose address is fa, or NULL. */
static struct peer *peer_by_addr(struct famd_bulk *B, fi_addr_t fa)
{
    for (size_t i = 0; i < B->npeers; i++)
        if ((B->peers[i].token || B->peers[i].zombie) && B->peers[i].addr == fa)
            return &B->peers[i];
    return NULL;
}

static void post_rx(struct famd *d, struct rxbuf *b)
{
    if (b->posted) return;
    ssize_t rc = fi_trecv(famd_fabric_ep(d), b->buf, FAMP_BULK_MAX, NULL,
                          FI_ADDR_UNSPEC, FAMP_TAG_REQ, 0, &b->c.fc);
    if (rc == 0) b->posted = 1; /* else retried by famd_bulk_poll */
}

static void tx_push(struct famd *d, struct txmsg *m)
{
    struct famd_bulk *B = d->bulk;
    m->next = NULL;
    if (B->txq_tail) B->txq_tail->next = m;
    else B->txq = m;
    B->txq_tail = m;
}

/* Hand queued replies to the provider, in order for each client, until it
 * says "later". A client that takes nothing (stopped, or dead and not yet
 * noticed: its shm queue stays full) must not hold up the others' replies,
 * so a refusal skips the rest of that client's replies only, for this
 * pass; after FAMD_TX_BLOCKED refusals the provider itself is full. */
#define FAMD_TX_BLOCKED 8
static void tx_flush(struct famd *d)
{
    struct famd_bulk *B = d->bulk;
    fi_addr_t blocked[FAMD_TX_BLOCKED];
    int nblocked = 0;
    struct txmsg **pp = &B->txq, *prev = NULL;
    while (*pp) {
        struct txmsg *m = *pp;
        int skip = 0;
        for (int i = 0; i < nblocked && !skip; i++) skip = blocked[i] == m->to;
        ssize_t rc = skip ? -FI_EAGAIN
                          : fi_tsend(famd_fabric_ep(d), m->data, m->len, NULL,
                                     m->to, m->tag, &m->c.fc);
        if (rc == -FI_EAGAIN) {
            if (!skip) {
                if (nblocked == FAMD_TX_BLOCKED) return;
                blocked[nblocked++] = m->to;
            }
            prev = m;
            pp = &m->next;
            continue;
        }
        *pp = m->next; /* out of the queue */
        if (B->txq_tail == m) B->txq_tail = prev;
        if (rc) {
            if (d->verbose)
                fprintf(stderr, "famd: bulk reply lost: %s\n", fi_strerror((int)-rc));
            free(m);
            continue;
        }
        B->tx_inflight++;
        B->tx_last_us = fam_now_us();
        struct peer *p = peer_by_addr(B, m->to);
        if (p) p->inflight++;
    }
}

/* Drop the queued replies to `to` (a client that went away). */
static void tx_purge(struct famd *d, fi_addr_t to)
{
    struct famd_bulk *B = d->bulk;
    struct txmsg **pp = &B->txq, *prev = NULL;
    while (*pp) {
        struct txmsg *m = *pp;
        if (m->to != to) {
            prev = m;
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        if (B->txq_tail == m) B->txq_tail = prev;
        free(m);
    }
}

static struct txmsg *tx_new(fi_addr_t to, uint64_t tag, size_t len)
{
    struct txmsg *m = malloc(sizeof *m + (len ? len : 1));
    if (!m) return NULL;
    memset(&m->c, 0, sizeof m->c);
    m->c.kind = CTX_TX;
    m->to = to;
    m->tag = tag;
    m->len = len;
    return m;
}

static void send_status(struct famd *d, fi_addr_t to, uint64_t seq, int status,
                        const char *msg)
{
    size_t ml = status && msg ? strnlen(msg, FAMP_MAX_ERRMSG) : 0;
    struct txmsg *m = tx_new(to, FAMP_TAG_STATUS | seq,
                             offsetof(struct famp_bstatus, msg) + ml);
    if (!m) return; /* the client times out */
    struct famp_bstatus *st = (struct famp_bstatus *)m->data;
    st->seq = seq;
    st->status = status;
    st->msglen = (uint32_t)ml;
    memcpy(st->msg, msg ? msg : "", ml);
    tx_push(d, m);
}

/* ---- peers (connections that said HELLO) ----------------------------- */

int famd_bulk_peer_add(struct famd *d, const uint8_t *addr, uint32_t len,
                       const struct famd_cred *c, uint64_t *token)
{
    struct famd_bulk *B = d->bulk;
    fi_addr_t fa = FI_ADDR_NOTAVAIL;
    int rc = famd_fabric_addr_check(d, addr, len, c->uid, "the client's");
    if (rc) return rc;
    /* the same address as a live peer's (a client that lost its control
     * connection and says HELLO again on a new one): share its entry. A
     * second insert of one shm name is counted as a peer of its own, and
     * the first remove unmaps the name whatever the count, under the
     * other one (libfabric 1.17) */
    int inflight = 0;
    for (size_t k = 0; k < B->npeers && fa == FI_ADDR_NOTAVAIL; k++)
        if ((B->peers[k].token || B->peers[k].zombie) &&
            B->peers[k].alen == len && !memcmp(B->peers[k].abytes, addr, len)) {
            fa = B->peers[k].addr;
            if (B->peers[k].zombie) { /* the new peer takes it over */
                inflight = B->peers[k].inflight;
                B->peers[k].zombie = 0;
            }
        }
    int shared = fa != FI_ADDR_NOTAVAIL;
    if (!shared && fi_av_insert(famd_fabric_av(d), addr, 1, &fa, 0, NULL) != 1)
        return famd_fail(d, FAM_EFABRIC, "cannot add the client's fabric "
                         "address (the provider refused it: too many clients?)");
    size_t i = 0;
    while (i < B->npeers && (B->peers[i].token || B->peers[i].zombie)) i++;
    if (i == B->npeers) {
        struct peer *p = realloc(B->peers, (B->npeers + 16) * sizeof *p);
        if (!p) {
            if (!shared) fi_av_remove(famd_fabric_av(d), &fa, 1, 0);
            return famd_fail(d, FAM_ENOMEM, "out of memory");
        }
        memset(p + B->npeers, 0, 16 * sizeof *p);
        B->peers = p;
        B->npeers += 16;
    }
    uint64_t t = 0;
    while (t == 0)
        if (getrandom(&t, sizeof t, 0) != (ssize_t)sizeof t) {
            if (!shared) fi_av_remove(famd_fabric_av(d), &fa, 1, 0);
            return famd_fail(d, FAM_EIO, "getrandom failed");
        }
    B->peers[i].token = t;
    B->peers[i].addr = fa;
    B->peers[i].cred = *c;
    B->peers[i].used = 0;
    B->peers[i].alen = len;
    memcpy(B->peers[i].abytes, addr, len);
    B->peers[i].inflight = inflight;
    B->peers[i].zombie = 0;
    *token = t;
    return 0;
}

/* The connection that said HELLO with this token closed: its client is
 * gone (or has given up on us). Nothing more may be sent to its fabric
 * address, and the address leaves the address vector at once, so that a
 * burst of clients cannot fill it (shm holds 256 peers).
 *
 * Over shm, removing an address unmaps the peer's shared region, and the
 * provider crashed famd (SIGSEGV in libfabric 1.17, in sending and in
 * progress) when anything touched the peer after that: a reply queued to
 * it, or a command it had posted into famd's queue before it died (a
 * fetching atomic's answer is written into the peer's region). It used to
 * linger for 10 s instead, but replies to a dead client stayed queued
 * behind its full queue and went out after the removal. So, in order:
 * drive progress until famd's own queue is drained of what the peer sent
 * (its process is gone: the kernel closes a killed process's sockets
 * after its memory, so nothing more can come), drop the replies queued to
 * it, stop copies from answering it, and only then remove the address. */
void famd_bulk_peer_drop(struct famd *d, uint64_t token, int woke)
{
    struct famd_bulk *B = d->bulk;
    if (!token || !B) return;
    for (size_t i = 0; i < B->npeers; i++) {
        struct peer *p = &B->peers[i];
        if (p->token != token) continue;
        fi_addr_t fa = p->addr;
        p->token = 0; /* its bulk requests are dropped from now on */
        /* a live peer shares the address (famd_bulk_peer_add): the same
         * client, still there; all goes when the last of them goes */
        for (size_t k = 0; k < B->npeers; k++)
            if (B->peers[k].token && B->peers[k].addr == fa) {
                B->peers[k].used |= p->used | woke;
                return;
            }
        if (woke || p->used) {
            /* famd_fabric_progress reads completions, and each call runs
             * the provider over everything queued to famd; stop after a
             * few quiet calls in a row */
            for (int quiet = 0, n = 0; quiet < 4 && n < 1000; n++)
                quiet = famd_fabric_progress(d) > 0 ? 0 : quiet + 1;
            tx_purge(d, fa);
            for (struct copyjob *j = B->jobs; j; j = j->next)
                if (j->reply_to == fa) j->answered = 1; /* nobody to tell */
        }
        /* a reply the provider still holds (over shm, one larger than
         * 4 KiB waits for the peer to read it) keeps the address: the
         * provider looks the peer up again when it completes, and an
         * unmapped peer crashes it. A peer that died before reading
         * keeps it for good: one address vector entry (of 256 on shm) */
        if (p->inflight) {
            p->zombie = 1;
            return;
        }
        fi_av_remove(famd_fabric_av(d), &fa, 1, 0);
        return;
    }
}

static struct peer *peer_by_token(struct famd_bulk *B, uint64_t token)
{
    if (!token) return NULL;
    for (size_t i = 0; i < B->npeers; i++)
        if (B->peers[i].token == token) return &B->peers[i];
    return NULL;
}

/* ---- the work itself ---------------------------------------------------- */

/* The item a request names, if its key grants `want` (FAMD_R or FAMD_W). */
static int item_for(struct famd *d, uint64_t id, uint64_t key, int want,
                    int32_t *slot)
{
    *slot = -1; /* set on every path: -O3 cannot tell that rc != 0 means
                   the caller does not read it (maybe-uninitialized) */
    int32_t s = famd_slot_of(d, FAMD_REC_ITEM, id);
    if (s < 0)
        return famd_fail(d, FAM_ENOTFOUND, "no data item with id %llu (it "
                         "may have been deallocated)", (unsigned long long)id);
    struct famd_live *l = &d->live[s];
    int ok = key != 0 && (key == l->key_rw || (want == FAMD_R && key == l->key_ro));
    if (!ok)
        return famd_fail(d, FAM_EPERM, "the descriptor of '%s' does not allow "
                         "%s (look the item up again, or check its "
                         "permissions)", d->recs[s].name,
                         want == FAMD_R ? "reading" : "writing");
    *slot = s;
    return 0;
}

/* Every offset must leave room for one element inside the item, and be
 * aligned to `align` bytes. */
static int check_offsets(struct famd *d, int32_t s, const uint64_t *off,
                         uint64_t n, uint64_t esize, uint64_t align)
{
    uint64_t size = atomic_load(&d->recs[s].size);
    if (esize > size)
        return famd_fail(d, FAM_EOUTOFRANGE, "elements of %llu bytes do not "
                         "fit in '%s' (%llu bytes)", (unsigned long long)esize,
                         d->recs[s].name, (unsigned long long)size);
    uint64_t last = size - esize;
    for (uint64_t i = 0; i < n; i++) {
        if (off[i] > last)
            return famd_fail(d, FAM_EOUTOFRANGE, "element %llu at byte %llu is "
                             "past the end of '%s' (%llu bytes)",
                             (unsigned long long)i, (unsigned long long)off[i],
                             d->recs[s].name, (unsigned long long)size);
        if (align > 1 && off[i] % align)
            return famd_fail(d, FAM_EINVAL, "element %llu at byte %llu is not "
                             "aligned to %llu bytes", (unsigned long long)i,
                             (unsigned long long)off[i],
                             (unsigned long long)align);
    }
    return 0;
}

static void do_gather(uint8_t *out, const uint8_t *item, const uint64_t *off,
                      uint64_t n, uint64_t esize)
{
    if (esize == 8) {
        uint64_t *o = (uint64_t *)(void *)out;
        for (uint64_t i = 0; i < n; i++) memcpy(&o[i], item + off[i], 8);
    } else if (esize == 4) {
        uint32_t *o = (uint32_t *)(void *)out;
        for (uint64_t i = 0; i < n; i++) memcpy(&o[i], item + off[i], 4);
    } else {
        for (uint64_t i = 0; i < n; i++) memcpy(out + i * esize, item + off[i], esize);
    }
}

static void do_scatter(uint8_t *item, const uint8_t *in, const uint64_t *off,
                       uint64_t n, uint64_t esize)
{
    if (esize == 8) {
        for (uint64_t i = 0; i < n; i++) memcpy(item + off[i], in + 8 * i, 8);
    } else {
        for (uint64_t i = 0; i < n; i++) memcpy(item + off[i], in + i * esize, esize);
    }
}

/* Atomic update of each element (fam_cpu_atomic.h); `old` (n old values)
 * may be NULL. */
static void do_atomic(uint8_t *item, const uint64_t *off, const uint8_t *vals,
                      uint8_t *old, uint64_t n, uint32_t op, uint32_t type)
{
    uint64_t es = type == FAM_INT32 || type == FAM_UINT32 || type == FAM_FLOAT ? 4 : 8;
    uint8_t scratch[8]; /* old values nobody asked for */
    for (uint64_t i = 0; i < n; i++)
        fam_cpu_atomic(item + off[i], type, op, vals + es * i,
                       old ? old + es * i : scratch);
}

/* ---- copies to another famd -------------------------------------------- */

static int remote_addr(struct famd *d, const uint8_t *name, uint32_t len,
                       fi_addr_t *out)
{
    struct famd_bulk *B = d->bulk;
    for (int i = 0; i < B->nremotes; i++)
        if (B->remotes[i].len == len && !memcmp(B->remotes[i].name, name, len)) {
            *out = B->remotes[i].addr;
            return 0;
        }
    if (B->nremotes == FAMD_MAX_REMOTES)
        return famd_fail(d, FAM_EBUSY, "too many memory servers to copy to");
    int rc = famd_fabric_addr_check(d, name, len, 0,
                                    "the destination memory server's");
    if (rc) return rc;
    fi_addr_t fa;
    if (fi_av_insert(famd_fabric_copy_av(d), name, 1, &fa, 0, NULL) != 1)
        return famd_fail(d, FAM_EINVAL, "bad destination memory server "
                         "address");
    struct remote *r = &B->remotes[B->nremotes++];
    r->len = len;
    memcpy(r->name, name, len);
    r->addr = fa;
    *out = fa;
    return 0;
}

static void copy_pump(struct famd *d, struct copyjob *j);
static void copy_finish_if_done(struct famd *d, struct copyjob *j);

static void job_free(struct copyjob *j)
{
    if (j->fd >= 0) close(j->fd);
    free(j->stage);
    free(j);
}

/* A new job writing to famd `dst_addr`; the caller sets its source. */
static int job_new(struct famd *d, fi_addr_t to, const struct famp_bulk *q,
                   struct copyjob **out)
{
    if (q->dst_addrlen > FAMP_ADDR_MAX)
        return famd_fail(d, FAM_EINVAL, "bad destination address length");
    struct copyjob *j = calloc(1, sizeof *j);
    if (!j) return famd_fail(d, FAM_ENOMEM, "out of memory");
    j->fd = -1;
    int rc = remote_addr(d, q->dst_addr, q->dst_addrlen, &j->dst);
    if (rc) {
        free(j);
        return rc;
    }
    j->reply_to = to;
    j->seq = q->seq;
    j->dst_addr = q->dst_addr_rma;
    j->dst_key = q->dst_key;
    j->left = q->len;
    /* the client gives its own deadline: n ms left when it sent the
     * request at wall-clock time esize (ms since 1970). Answer when three
     * quarters of that time are gone, so that the client hears which
     * server failed instead of giving up on us. Counted from the send,
     * not from here: over tcp a famd asleep in poll() may see a request
     * up to a second late */
    uint64_t t = d->bulk->copy_timeout_us;
    if (q->n && q->n < t / 1000) {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        uint64_t now_ms = (uint64_t)rt.tv_sec * 1000u + (uint64_t)rt.tv_nsec / 1000000u;
        uint64_t gone = q->esize && now_ms > q->esize ? now_ms - q->esize : 0;
        uint64_t answer_at = q->n - q->n / 4; /* ms after the send */
        t = gone < answer_at ? (answer_at - gone) * 1000 : 0;
    }
    j->deadline_us = fam_now_us() + t;
    for (int i = 0; i < FAMD_COPY_DEPTH; i++) {
        j->ops[i].c.kind = CTX_COPY;
        j->ops[i].job = j;
        j->opfree[i] = 1;
    }
    *out = j;
    return 0;
}

static void job_start(struct famd *d, struct copyjob *j)
{
    j->next = d->bulk->jobs;
    d->bulk->jobs = j;
    copy_pump(d, j);
    copy_finish_if_done(d, j);
}

/* Issue as many writes of `j` as its window allows. */
static void copy_pump(struct famd *d, struct copyjob *j)
{
    size_t max = famd_fabric_max_msg(d);
    if (max > FAMD_COPY_CHUNK) max = FAMD_COPY_CHUNK;
    for (int i = 0; i < FAMD_COPY_DEPTH && j->left && !j->status; i++) {
        if (!j->opfree[i]) continue;
        size_t n = j->left < max ? (size_t)j->left : max;
        const uint8_t *from = j->src;
        if (j->fd >= 0) { /* restore: stage the next chunk of the file */
            uint8_t *buf = j->stage + (size_t)i * FAMD_COPY_CHUNK;
            if (pread(j->fd, buf, n, (off_t)j->foff) != (ssize_t)n) {
                j->status = FAM_EIO;
                break;
            }
            from = buf;
        }
        struct iovec iov = {(void *)from, n};
        struct fi_rma_iov rma = {j->dst_addr, n, j->dst_key};
        struct fi_msg_rma msg = {.msg_iov = &iov, .iov_count = 1,
                                 .addr = j->dst, .rma_iov = &rma,
                                 .rma_iov_count = 1,
                                 .context = &j->ops[i].c.fc};
        ssize_t rc = fi_writemsg(famd_fabric_copy_ep(d), &msg,
                                 famd_fabric_write_flags(d));
        if (rc == -FI_EAGAIN) break;
        if (d->verbose)
            fprintf(stderr, "famd: copy write of %zu bytes -> %s\n", n,
                    rc ? fi_strerror((int)-rc) : "posted");
        if (rc) {
            j->status = FAM_EFABRIC;
            break;
        }
        j->opfree[i] = 0;
        j->inflight++;
        j->foff += n;
        j->src += n;
        j->dst_addr += n;
        j->left -= n;
    }
}

static void copy_finish_if_done(struct famd *d, struct copyjob *j)
{
    if (j->inflight) return;
    if (!j->answered && (j->left == 0 || j->status))
        send_status(d, j->reply_to, j->seq, j->status,
                    j->status ? "its writes failed (it may be down, or the "
                    "item deallocated)" : NULL);
    if (j->left && !j->status) return;
    struct famd_bulk *B = d->bulk;
    for (struct copyjob **pp = &B->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    job_free(j);
}

static int start_copy(struct famd *d, fi_addr_t to, const struct famp_bulk *q)
{
    int32_t s, ds;
    int rc = item_for(d, q->id, q->key, FAMD_R, &s);
    if (rc) return rc;
    uint64_t size = atomic_load(&d->recs[s].size);
    if (q->src_off > size || q->len > size - q->src_off)
        return famd_fail(d, FAM_EOUTOFRANGE, "copy of %llu bytes at %llu is past "
                         "the end of '%s' (%llu bytes)", (unsigned long long)q->len,
                         (unsigned long long)q->src_off, d->recs[s].name,
                         (unsigned long long)size);
    const uint8_t *src = d->base + d->recs[s].offset + q->src_off;
    if (q->dst_addrlen == 0) { /* both items here */
        if ((rc = item_for(d, q->dst_id, q->dst_key, FAMD_W, &ds))) return rc;
        uint64_t dsize = atomic_load(&d->recs[ds].size);
        if (q->dst_off > dsize || q->len > dsize - q->dst_off)
            return famd_fail(d, FAM_EOUTOFRANGE, "copy of %llu bytes to %llu is "
                             "past the end of '%s' (%llu bytes)",
                             (unsigned long long)q->len,
                             (unsigned long long)q->dst_off, d->recs[ds].name,
                             (unsigned long long)dsize);
        memmove(d->base + d->recs[ds].offset + q->dst_off, src, q->len);
        send_status(d, to, q->seq, 0, NULL);
        return 0;
    }
    struct copyjob *j;
    if ((rc = job_new(d, to, q, &j))) return rc;
    j->src = src;
    job_start(d, j);
    return 0;
}

/* Restore backup q->name into a part of an item, here or on another famd.
 * The backup is checked in full (famd_backup_open) before any byte moves. */
static int start_restore(struct famd *d, fi_addr_t to, const struct peer *pr,
                         const struct famp_bulk *q)
{
    struct famd_bak h;
    int fd, rc;
    if (!memchr(q->name, '\0', sizeof q->name))
        return famd_fail(d, FAM_EINVAL, "backup name is not terminated");
    if ((rc = famd_backup_open(d, q->name, &pr->cred, &h, &fd))) return rc;
    if (q->len != h.size) {
        close(fd);
        return famd_fail(d, FAM_EINVAL, "backup '%s' holds %llu bytes here; "
                         "the destination part has %llu", q->name,
                         (unsigned long long)h.size, (unsigned long long)q->len);
    }
    if (q->dst_addrlen == 0) { /* into an item of this famd */
        int32_t ds;
        if ((rc = item_for(d, q->dst_id, q->dst_key, FAMD_W, &ds))) {
            close(fd);
            return rc;
        }
        uint64_t dsize = atomic_load(&d->recs[ds].size);
        if (q->dst_off > dsize || q->len > dsize - q->dst_off) {
            close(fd);
            return famd_fail(d, FAM_EOUTOFRANGE, "restore of %llu bytes does "
                             "not fit in '%s'", (unsigned long long)q->len,
                             d->recs[ds].name);
        }
        uint8_t *at = d->base + d->recs[ds].offset + q->dst_off;
        for (uint64_t done = 0; done < q->len;) {
            ssize_t n = pread(fd, at + done, q->len - done, (off_t)(sizeof h + done));
            if (n <= 0) {
                close(fd);
                return famd_fail(d, FAM_EIO, "reading backup '%s' failed", q->name);
            }
            done += (uint64_t)n;
        }
        close(fd);
        send_status(d, to, q->seq, 0, NULL);
        return 0;
    }
    struct copyjob *j;
    if ((rc = job_new(d, to, q, &j))) {
        close(fd);
        return rc;
    }
    j->fd = fd;
    j->foff = sizeof h;
    if (!(j->stage = malloc((size_t)FAMD_COPY_DEPTH * FAMD_COPY_CHUNK))) {
        job_free(j);
        return famd_fail(d, FAM_ENOMEM, "out of memory");
    }
    job_start(d, j);
    return 0;
}

/* ---- one request -------------------------------------------------------- */

static int run(struct famd *d, fi_addr_t to, const struct peer *pr,
               const struct famp_bulk *q, const uint8_t *payload, size_t plen)
{
    int32_t s;
    int rc;
    if (q->op == FAMP_B_COPY || q->op == FAMP_B_RESTORE) {
        if (plen) return famd_fail(d, FAM_EPROTO, "copy request with a payload");
        return q->op == FAMP_B_COPY ? start_copy(d, to, q)
                                    : start_restore(d, to, pr, q);
    }
    uint64_t n = q->n, esize = q->esize;
    if (esize == 0 || esize > FAMP_BULK_MAX)
        return famd_fail(d, FAM_EINVAL, "bad element size %llu",
                         (unsigned long long)esize);
    if (n > FAMP_BULK_MAX / 8 || n * esize > FAMP_BULK_MAX)
        return famd_fail(d, FAM_EPROTO, "request of %llu elements is too large",
                         (unsigned long long)n);
    uint64_t want = n * 8 + (q->op == FAMP_B_GATHER ? 0 : n * esize);
    if (plen != want)
        return famd_fail(d, FAM_EPROTO, "request payload is %zu bytes; %llu "
                         "elements need %llu", plen, (unsigned long long)n,
                         (unsigned long long)want);
    const uint64_t *off = (const uint64_t *)(const void *)payload;
    const uint8_t *vals = payload + n * 8;
    uint64_t align = 1;
    if (q->op == FAMP_B_ATOMIC) {
        align = fam_dtype_size((fam_dtype_t)q->dtype);
        if (!align)
            return famd_fail(d, FAM_EINVAL, "unknown atomic type %u", q->dtype);
        if (esize != align)
            return famd_fail(d, FAM_EINVAL, "element size %llu does not match "
                             "the atomic type", (unsigned long long)esize);
        if (q->aop < FAM_AOP_SET || q->aop > FAM_AOP_XOR)
            return famd_fail(d, FAM_EINVAL, "unknown atomic operation %u", q->aop);
        if (q->aop >= FAM_AOP_AND && (q->dtype == FAM_FLOAT || q->dtype == FAM_DOUBLE))
            return famd_fail(d, FAM_EINVAL, "bit operations need an integer type");
    }
    int want_rights = q->op == FAMP_B_GATHER ? FAMD_R : FAMD_W;
    if ((rc = item_for(d, q->id, q->key, want_rights, &s)) ||
        (rc = check_offsets(d, s, off, n, esize, align)))
        return rc;
    uint8_t *item = d->base + d->recs[s].offset;
    int returns_data = q->op == FAMP_B_GATHER || (q->op == FAMP_B_ATOMIC && q->fetch);
    struct txmsg *m = NULL;
    if (returns_data && n) {
        if (!(m = tx_new(to, q->seq, n * esize)))
            return famd_fail(d, FAM_ENOMEM, "out of memory");
    }
    switch (q->op) {
    case FAMP_B_GATHER: do_gather(m ? m->data : NULL, item, off, n, esize); break;
    case FAMP_B_SCATTER: do_scatter(item, vals, off, n, esize); break;
    case FAMP_B_ATOMIC:
        do_atomic(item, off, vals, m ? m->data : NULL, n, q->aop, q->dtype);
        break;
    }
    if (m) tx_push(d, m);
    send_status(d, to, q->seq, 0, NULL);
    return 0;
}

static void on_request(struct famd *d, const uint8_t *buf, size_t len)
{
    struct famp_bulk q;
    struct peer *pr;
    if (len < sizeof q) {
        if (d->verbose) fprintf(stderr, "famd: short bulk request dropped\n");
        return;
    }
    memcpy(&q, buf, sizeof q);
    if (q.magic != FAMP_BULK_MAGIC || !(pr = peer_by_token(d->bulk, q.token)) ||
        q.seq >= FAMP_TAG_STATUS) {
        /* nobody we can answer: not from a connection that said HELLO */
        if (d->verbose) fprintf(stderr, "famd: bulk request with a bad magic, "
                                "token or seq dropped\n");
        return;
    }
    pr->used = 1; /* it has fabric traffic with us (famd_bulk_peer_drop) */
    d->err[0] = '\0';
    int rc;
    if (q.version != FAMP_VERSION)
        rc = famd_fail(d, FAM_EPROTO, "unsupported protocol version %u", q.version);
    else if (q.op == 0 || q.op >= FAMP_B_END)
        rc = famd_fail(d, FAM_EPROTO, "unknown bulk request %u", q.op);
    else
        rc = run(d, pr->addr, pr, &q, buf + sizeof q, len - sizeof q);
    if (rc) send_status(d, pr->addr, q.seq, rc, d->err[0] ? d->err : fam_strerror(rc));
    if (d->verbose)
        fprintf(stderr, "famd: bulk op %u n=%llu -> %d %s\n", q.op,
                (unsigned long long)q.n, rc, rc ? d->err : "");
}

/* ---- event loop hooks ---------------------------------------------------- */

int famd_bulk_open(struct famd *d)
{
    struct famd_bulk *B = calloc(1, sizeof *B);
    if (!B) return famd_fail(d, FAM_ENOMEM, "out of memory");
    d->bulk = B;
    B->copy_timeout_us = FAMD_COPY_TIMEOUT_US;
    const char *ct = getenv("FAMD_COPY_TIMEOUT_MS"); /* docs/PROTOCOL.md */
    if (ct && *ct) {
        char *end;
        unsigned long long ms = strtoull(ct, &end, 10);
        if (*end || ms == 0 || ms > 86400000ull)
            return famd_fail(d, FAM_EINVAL, "bad FAMD_COPY_TIMEOUT_MS '%s' "
                             "(want milliseconds, 1 to 86400000)", ct);
        B->copy_timeout_us = ms * 1000;
    }
    for (int i = 0; i < FAMD_RX_BUFS; i++) {
        B->rx[i].c.kind = CTX_RX;
        if (!(B->rx[i].buf = malloc(FAMP_BULK_MAX)))
            return famd_fail(d, FAM_ENOMEM, "out of memory");
        post_rx(d, &B->rx[i]);
    }
    return 0;
}

/* Called after the endpoint is closed, when nothing can complete any more. */
void famd_bulk_close(struct famd *d)
{
    struct famd_bulk *B = d->bulk;
    if (!B) return;
    while (B->txq) {
        struct txmsg *m = B->txq;
        B->txq = m->next;
        free(m);
    }
    while (B->jobs) {
        struct copyjob *j = B->jobs;
        B->jobs = j->next;
        job_free(j);
    }
    for (int i = 0; i < FAMD_RX_BUFS; i++) free(B->rx[i].buf);
    free(B->peers);
    free(B);
    d->bulk = NULL;
}

/* A completion (err = 0) or a failed operation (err = a positive FI_E*). */
void famd_bulk_done(struct famd *d, void *ctx, size_t len, int err)
{
    struct bctx *c = ctx;
    if (!c || !d->bulk) return;
    switch (c->kind) {
    case CTX_RX: {
        struct rxbuf *b = (struct rxbuf *)c;
        b->posted = 0;
        if (!err) on_request(d, b->buf, len);
        else if (d->verbose && err != FI_ECANCELED)
            fprintf(stderr, "famd: bulk receive failed: %s\n", fi_strerror(err));
        post_rx(d, b);
        break;
    }
    case CTX_TX: {
        struct txmsg *m = (struct txmsg *)c;
        struct peer *p = peer_by_addr(d->bulk, m->to);
        d->bulk->tx_inflight--;
        d->bulk->tx_last_us = fam_now_us();
        if (p && p->inflight > 0 && --p->inflight == 0 && p->zombie) {
            p->zombie = 0; /* famd_bulk_peer_drop left it for now */
            fi_av_remove(famd_fabric_av(d), &p->addr, 1, 0);
        }
        free(m);
        break;
    }
    case CTX_COPY: {
        struct copyop *op = (struct copyop *)c;
        struct copyjob *j = op->job;
        op->job->opfree[op - j->ops] = 1;
        j->inflight--;
        if (err && !j->status) j->status = FAM_EFABRIC;
        if (d->verbose)
            fprintf(stderr, "famd: copy write done: %s\n", err ? fi_strerror(err) : "ok");
        copy_pump(d, j);
        copy_finish_if_done(d, j);
        break;
    }
    }
    tx_flush(d);
}

/* Work to do between completions: repost receives, send queued replies,
 * answer copies that take too long. Returns 1 while work is pending, so the
 * event loop keeps polling instead of sleeping. */
int famd_bulk_poll(struct famd *d)
{
    struct famd_bulk *B = d->bulk;
    if (!B) return 0;
    /* called on every turn of the event loop: cheap when there is nothing
     * to do, which keeps famd's RMA latency low */
    int idle = !B->txq && !B->jobs && !B->tx_inflight;
    for (int i = 0; idle && i < FAMD_RX_BUFS; i++) idle = B->rx[i].posted;
    if (idle) return 0;
    for (int i = 0; i < FAMD_RX_BUFS; i++) post_rx(d, &B->rx[i]);
    tx_flush(d);
    uint64_t now = fam_now_us();
    int busy = B->txq != NULL;
    for (struct copyjob *j = B->jobs, *next; j; j = next) {
        next = j->next;
        if (!j->answered && now > j->deadline_us) {
            /* a write that never completes (e.g. a revoked key on shm):
             * tell the client; the job stays until its writes finish */
            send_status(d, j->reply_to, j->seq, FAM_ETIMEOUT,
                        "its writes were not done in time (the copy's "
                        "deadline passed)");
            j->answered = 1;
            j->left = 0;
        } else if (j->left && !j->status && !j->answered) {
            busy = 1; /* writes the provider said "later" to */
            copy_pump(d, j);
            copy_finish_if_done(d, j); /* may free j */
            continue;
        }
        busy |= !j->answered;
    }
    /* a reply to a client that went away may never complete: stop
     * polling for it after a while */
    busy |= B->tx_inflight && now - B->tx_last_us < 2000000u;
    return busy;
}

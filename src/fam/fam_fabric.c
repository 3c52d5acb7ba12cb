/* SPDX-License-Identifier: Apache-2.0 */
/* fam_fabric.c — libfam's libfabric endpoint: opening and closing it,
 * the address vector of memory servers, the completion queue and what a
 * completion means for its operation, and how a waiter backs off between
 * polls.
 *
 * One RDM endpoint per provider in use (a fam_t may reach the famds on its
 * own host over shm and the others over tcp at once); each server's
 * traffic goes through its own (fam_server.ep). Everything here
 * runs with f->flock held. The lowest layer of libfam: it calls nothing in
 * the others (rebuilding a broken endpoint, which needs the control
 * connections too, is fam_fabric_reset in fam_control.c). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "fam_crowd.h"
#include "fam_internal.h"
#include "fam_shm_name.h"

static struct fam_op *op_new(int nb)
{
    struct fam_op *op = calloc(1, sizeof *op);
    if (op) {
        op->nb = nb;
        op->server = -1;
    }
    return op;
}

struct fam_op *fam_op_new(int nb) { return op_new(nb); }

int fam_shm_sweep(void) { return fam_shm_clean(); }

/* shm: a unique endpoint name (fam_shm_name.h). */
static int shm_name(struct fam_ep *e)
{
    if (strcmp(e->provider, "shm")) return 0;
    fam_shm_clean();
    char name[64];
    fam_shm_name(name, sizeof name);
    return fi_setname(&e->ep->fid, name, strlen(name) + 1);
}

/* The local IPv4 address this host sends from to reach the memory
 * servers, in text: that of the first server not on loopback (asked of
 * the kernel's routing with a connected UDP socket, which sends nothing),
 * or 127.0.0.1 when all are on loopback, so that local traffic stays on
 * it. Servers on loopback are reachable from any local address. */
int fam_fabric_source(fam_t *f, char *out, size_t outlen)
{
    snprintf(out, outlen, "127.0.0.1");
    for (int i = 0; i < f->nservers; i++) {
        struct addrinfo hints = {.ai_family = AF_INET,
                                 .ai_socktype = SOCK_DGRAM}, *res;
        char ps[16];
        snprintf(ps, sizeof ps, "%d", f->srv[i].port);
        int gai = getaddrinfo(f->srv[i].host, ps, &hints, &res);
        if (gai)
            return fam_fail(FAM_EINVAL, "cannot resolve memory server '%s': "
                            "%s", f->srv[i].host, gai_strerror(gai));
        struct sockaddr_in a, me;
        memcpy(&a, res->ai_addr, sizeof a);
        freeaddrinfo(res);
        if ((ntohl(a.sin_addr.s_addr) >> 24) == 127) continue;
        socklen_t ml = sizeof me;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                 getsockname(fd, (struct sockaddr *)&me, &ml) == 0;
        if (fd >= 0) close(fd);
        if (!ok)
            return fam_fail(FAM_EFABRIC, "no route to memory server %s:%d",
                            f->srv[i].host, f->srv[i].port);
        inet_ntop(AF_INET, &me.sin_addr, out, (socklen_t)outlen);
        return 0;
    }
    return 0;
}

/* Open slot e (its provider named) as an RDM endpoint with its own
 * fabric, domain, address vector and completion queue. */
static int ep_open(fam_t *f, struct fam_ep *e)
{
    /* tcp binds the endpoint to one source address, and ofi_rxm connects
     * from it to every server: it must be one that reaches them (bound to
     * 127.0.0.1, connect() to another host fails with EINVAL, "connect
     * failure 22", and no byte moves). So: the address the kernel routes
     * the servers from */
    char src[INET_ADDRSTRLEN];
    const char *node = NULL;
    if (strcmp(e->provider, "shm")) {
        int rc = fam_fabric_source(f, src, sizeof src);
        if (rc) return rc;
        node = src;
    }
    struct fi_info *hints = fi_allocinfo();
    if (!hints) return fam_fail(FAM_ENOMEM, "out of memory");
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_RMA | FI_ATOMIC | FI_MSG | FI_TAGGED | FI_READ | FI_WRITE |
                  FI_SEND | FI_RECV;
    hints->mode = FI_CONTEXT;
    hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
                                  FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    hints->domain_attr->threading = FI_THREAD_DOMAIN; /* we hold flock */
    hints->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
    hints->fabric_attr->prov_name =
        strdup(strcmp(e->provider, "tcp") == 0 ? "tcp;ofi_rxm" : e->provider);
    int rc = fi_getinfo(FI_VERSION(1, 17), node, NULL, node ? FI_SOURCE : 0,
                        hints, &e->info);
    if (rc == -FI_ENODATA) { /* provider without delivery-complete */
        hints->tx_attr->op_flags = 0;
        rc = fi_getinfo(FI_VERSION(1, 17), node, NULL, node ? FI_SOURCE : 0,
                        hints, &e->info);
    }
    fi_freeinfo(hints);
    if (rc) {
        e->info = NULL;
        return fam_fail(FAM_EFABRIC, "no libfabric provider '%s' with RMA and "
                        "atomics: %s", e->provider, fi_strerror(-rc));
    }
    e->max_msg = e->info->ep_attr->max_msg_size;
    if (e->max_msg > (1ull << 30)) e->max_msg = 1ull << 30;
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_CONTEXT, .size = 4096};
    if ((rc = fi_fabric(e->info->fabric_attr, &e->fabric, NULL)) ||
        (rc = fi_domain(e->fabric, e->info, &e->domain, NULL)) ||
        (rc = fi_av_open(e->domain, &av_attr, &e->av, NULL)) ||
        (rc = fi_cq_open(e->domain, &cq_attr, &e->cq, NULL)) ||
        (rc = fi_endpoint(e->domain, e->info, &e->ep, NULL)) ||
        (rc = fi_ep_bind(e->ep, &e->av->fid, 0)) ||
        (rc = fi_ep_bind(e->ep, &e->cq->fid, FI_TRANSMIT | FI_RECV)) ||
        (rc = shm_name(e)) ||
        (rc = fi_enable(e->ep))) {
        int code = fam_fail(FAM_EFABRIC, "cannot open a '%s' fabric endpoint: "
                            "%s", e->provider, fi_strerror(-rc));
        fam_fabric_close(f, (int)(e - f->eps));
        return code;
    }
    return 0;
}

int fam_fabric_open(fam_t *f, const char *prov, int *idx)
{
    int i = 0;
    while (i < f->neps && strcmp(f->eps[i].provider, prov)) i++;
    if (i == f->neps) {
        if (f->neps == FAM_MAX_EPS)
            return fam_fail(FAM_EINVAL, "too many fabric providers at once");
        struct fam_ep *e = &f->eps[f->neps++];
        memset(e, 0, sizeof *e);
        snprintf(e->provider, sizeof e->provider, "%s", prov);
    }
    *idx = i;
    return f->eps[i].ep ? 0 : ep_open(f, &f->eps[i]);
}

void fam_fabric_close(fam_t *f, int idx)
{
    struct fam_ep *e = &f->eps[idx];
    if (e->ep) fi_close(&e->ep->fid);
    if (e->cq) fi_close(&e->cq->fid);
    if (e->av) fi_close(&e->av->fid);
    if (e->domain) fi_close(&e->domain->fid);
    if (e->fabric) fi_close(&e->fabric->fid);
    if (e->info) fi_freeinfo(e->info);
    char prov[sizeof e->provider];
    memcpy(prov, e->provider, sizeof prov);
    memset(e, 0, sizeof *e);
    memcpy(e->provider, prov, sizeof prov);
}

void fam_fabric_close_all(fam_t *f)
{
    for (int i = 0; i < f->neps; i++) fam_fabric_close(f, i);
}

int fam_fabric_getname(fam_t *f, int idx, void *addr, size_t *len)
{
    int rc = fi_getname(&f->eps[idx].ep->fid, addr, len);
    return rc ? fam_fail(FAM_EFABRIC, "fi_getname: %s", fi_strerror(-rc)) : 0;
}

/* Put s's fabric address in the address vector of its endpoint (s->ep). */
int fam_fabric_add_server(fam_t *f, struct fam_server *s, const void *addr,
                          size_t len)
{
    (void)len;
    struct fam_ep *e = &f->eps[s->ep];
    int n = fi_av_insert(e->av, addr, 1, &s->addr, 0, NULL);
    if (n != 1 && strcmp(e->provider, "shm") == 0)
        return fam_fail(FAM_EFABRIC, "cannot reach memory server %s:%d over "
                        "shm: the shm provider only connects processes of the "
                        "same user (or root); use the tcp provider",
                        s->host, s->port);
    if (n != 1)
        return fam_fail(FAM_EFABRIC, "cannot add memory server %s:%d to the "
                        "address vector", s->host, s->port);
    return 0;
}

/* ---- completions (call with flock held) --------------------------------- */

/* An operation failed with libfabric error err (positive), or timed out
 * (err < 0): over tcp;ofi_rxm an error completion closes the connection
 * (every later operation then fails with "not connected"), and over shm a
 * timed-out operation stays queued ahead of everything else. Either way
 * the endpoint is rebuilt before the next operation (fam_fabric_ready). */
void fam_note_failure(fam_t *f, int server, int err)
{
    if (err < 0) {
        f->broken = 1;
        return;
    }
    if (server >= 0) {
        if (fam_srv_tcp(f, server)) f->broken = 1;
        return;
    }
    for (int i = 0; i < f->neps; i++) /* not known: any tcp one */
        if (f->eps[i].ep && strcmp(f->eps[i].provider, "tcp") == 0) f->broken = 1;
}

static void complete(fam_t *f, struct fam_op *op, int err)
{
    if (op->server >= 0) f->srv[op->server].inflight--;
    if (op->abandoned) {
        free(op);
    } else if (op->nb) {
        if (err) fam_note_failure(f, op->server, err);
        if (err && !f->nb_error) {
            f->nb_error = FAM_EFABRIC;
            snprintf(f->nb_msg, sizeof f->nb_msg, "%s", fi_strerror(err));
        }
        f->outstanding--;
        if (f->orphans > f->outstanding) f->orphans = f->outstanding;
        free(op);
    } else {
        op->err = err;
        op->done = 1;
    }
}

static int drain_cq(fam_t *f, struct fid_cq *cq)
{
    struct fi_cq_entry e[16];
    ssize_t n = fi_cq_read(cq, e, 16);
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) complete(f, e[i].op_context, 0);
        return (int)n;
    }
    if (n == -FI_EAVAIL) {
        struct fi_cq_err_entry err = {0};
        if (fi_cq_readerr(cq, &err, 0) == 1 && err.op_context)
            complete(f, err.op_context, err.err ? err.err : FI_EIO);
        return 1;
    }
    return 0;
}

static int drain(fam_t *f)
{
    int n = 0;
    for (int i = 0; i < f->neps; i++)
        if (f->eps[i].cq) n += drain_cq(f, f->eps[i].cq);
    return n;
}

/* Between polls of a completion that has not come: spin a little (it is
 * usually microseconds away), then yield, then sleep briefly. On a machine
 * with fewer cores than busy processes the memory server must get a core to
 * make progress; waiters that keep spinning take it away (4 clients and
 * famd on 2 cores ran 50x slower with yield alone). Sleeping only after a
 * millisecond keeps long transfers, whose progress the waiter drives, fast.
 * While every runnable task has a core (fam_crowd.h) there is nobody to
 * yield to: keep polling, and sleep only after 10 ms. */
void fam_backoff(unsigned spins, uint64_t *since)
{
    static _Thread_local struct fam_crowd crowd;
    if (spins < 64) return;
    uint64_t now = fam_now_us();
    if (!*since) *since = now;
    int crowded = fam_crowded(&crowd, now);
    if (now - *since < (crowded ? 1000u : 10000u)) {
        if (crowded) sched_yield(); /* stay on the core, but share it */
        return;
    }
    struct timespec ts = {0, 20000}; /* 20 us */
    nanosleep(&ts, NULL);
}
int fam_drain(fam_t *f) { return drain(f); }


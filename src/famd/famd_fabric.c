/* SPDX-License-Identifier: Apache-2.0 */
/* famd_fabric.c — famd's libfabric endpoint and memory registrations.
 *
 * famd is an RMA target: clients read, write and run atomics on registered
 * pool memory without famd's code being involved, but the software
 * providers (shm, tcp;ofi_rxm) move the bytes and answer the initiator only
 * while the target drives progress by reading its completion queue. The
 * event loop (famd_main.c) therefore calls famd_fabric_progress() often
 * while clients are active, and blocks on the queue's wait fd when idle.
 *
 * Each data item gets its own registrations, made on first use: one that
 * allows remote reads and writes, one that allows reads only. A client gets
 * the key matching what famd's permission check allowed; keys are random
 * 64-bit numbers, so they cannot be guessed, and they are revoked (the
 * registration closed) when the item is freed. A permission change does
 * not revoke them: keys handed out earlier keep their access, as an open
 * file does after chmod (rq_item_chmod). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "famd.h"
#include "fam_shm_name.h"

struct famd_fabric {
    struct fi_info *info;      /* the provider libfabric chose */
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;         /* needed to enable an RDM endpoint */
    struct fid_cq *cq;         /* completions; reading it drives progress */
    struct fid_ep *ep;         /* the endpoint clients target */
    struct fid_av *cav;        /* copy_ep's: other famds only, never shrinks */
    struct fid_ep *copy_ep;    /* famd's own RMA writes to other famds */
    int wait_fd;               /* fd that polls readable on activity, or -1 */
    int virt_addr;             /* 1: RMA addresses are virtual addresses */
    int prov_key;              /* 1: the provider chooses MR keys */
    int mr_endpoint;           /* 1: MRs must be bound to the endpoint */
    size_t key_size;           /* bytes of an MR key */
    int shm;                   /* 1: the shm provider (names, not sockaddrs) */
    uint64_t write_flags;      /* flags of a copy's RMA writes */
    uint8_t name[FAMP_ADDR_MAX]; /* our own fabric address */
    size_t namelen;
};

/* Map our provider names to libfabric's. */
const char *famd_prov_name(const char *provider)
{
    if (strcmp(provider, "tcp") == 0) return "tcp;ofi_rxm";
    return provider;
}

int famd_fabric_open(struct famd *d, const char *provider, const char *host)
{
    struct famd_fabric *fb = calloc(1, sizeof *fb);
    if (!fb) return famd_fail(d, FAM_ENOMEM, "out of memory");
    fb->wait_fd = -1;
    d->fab = fb;
    struct fi_info *hints = fi_allocinfo();
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_RMA | FI_ATOMIC | FI_MSG | FI_TAGGED | FI_REMOTE_READ |
                  FI_REMOTE_WRITE | FI_READ | FI_WRITE | FI_SEND | FI_RECV;
    hints->mode = FI_CONTEXT;
    hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
                                  FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    hints->domain_attr->threading = FI_THREAD_DOMAIN;
    hints->fabric_attr->prov_name = strdup(famd_prov_name(provider));
    /* tcp binds to an address: keep it on the one famd serves on, so that
     * nothing listens on (or sends to) other interfaces by accident */
    const char *node = strcmp(provider, "shm") == 0 ? NULL : host;
    /* copies famd makes to another famd are answered "done" only when the
     * bytes are there: ask for delivery-complete writes where offered */
    hints->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
    int rc = fi_getinfo(FI_VERSION(1, 17), node, NULL, node ? FI_SOURCE : 0,
                        hints, &fb->info);
    if (rc == -FI_ENODATA) {
        hints->tx_attr->op_flags = 0;
        rc = fi_getinfo(FI_VERSION(1, 17), node, NULL, node ? FI_SOURCE : 0,
                        hints, &fb->info);
    }
    fi_freeinfo(hints);
    if (rc)
        return famd_fail(d, FAM_EFABRIC, "no libfabric provider '%s' with "
                         "RMA and atomics: %s", provider, fi_strerror(-rc));
    struct fi_info *info = fb->info;
    /* delivery-complete for copy writes only (fi_writemsg flags): as the
     * endpoint's default it made shm send every reply by its
     * segmentation protocol, which waits for the peer: a reply to a client
     * killed before it read it stayed at the head of famd's response
     * queue, and no later reply of famd's to anyone went out */
    fb->write_flags = FI_COMPLETION | (info->tx_attr->op_flags & FI_DELIVERY_COMPLETE);
    info->tx_attr->op_flags &= ~(uint64_t)FI_DELIVERY_COMPLETE;
    fb->virt_addr = (info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0;
    fb->prov_key = (info->domain_attr->mr_mode & FI_MR_PROV_KEY) != 0;
    fb->mr_endpoint = (info->domain_attr->mr_mode & FI_MR_ENDPOINT) != 0;
    fb->key_size = info->domain_attr->mr_key_size;
    if ((rc = fi_fabric(info->fabric_attr, &fb->fabric, NULL)) ||
        (rc = fi_domain(fb->fabric, info, &fb->domain, NULL)))
        return famd_fail(d, FAM_EFABRIC, "cannot open fabric domain: %s",
                         fi_strerror(-rc));
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    if ((rc = fi_av_open(fb->domain, &av_attr, &fb->av, NULL)))
        return famd_fail(d, FAM_EFABRIC, "fi_av_open: %s", fi_strerror(-rc));
    struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_TAGGED,
                                 .wait_obj = FI_WAIT_FD, .size = 1024};
    if (fi_cq_open(fb->domain, &cq_attr, &fb->cq, NULL) == 0) {
        if (fi_control(&fb->cq->fid, FI_GETWAIT, &fb->wait_fd) != 0)
            fb->wait_fd = -1;
    } else {
        cq_attr.wait_obj = FI_WAIT_NONE; /* fall back to timed polling */
        if ((rc = fi_cq_open(fb->domain, &cq_attr, &fb->cq, NULL)))
            return famd_fail(d, FAM_EFABRIC, "fi_cq_open: %s",
                             fi_strerror(-rc));
    }
    if ((rc = fi_endpoint(fb->domain, info, &fb->ep, NULL)) ||
        (rc = fi_ep_bind(fb->ep, &fb->av->fid, 0)) ||
        (rc = fi_ep_bind(fb->ep, &fb->cq->fid, FI_TRANSMIT | FI_RECV)))
        return famd_fail(d, FAM_EFABRIC, "cannot open fabric endpoint: %s",
                         fi_strerror(-rc));
    if (strcmp(provider, "shm") == 0) { /* see fam_shm_name.h */
        char name[64];
        fam_shm_clean();
        fam_shm_name(name, sizeof name);
        rc = fi_setname(&fb->ep->fid, name, strlen(name) + 1);
    }
    if (rc || (rc = fi_enable(fb->ep)))
        return famd_fail(d, FAM_EFABRIC, "cannot open fabric endpoint: %s",
                         fi_strerror(-rc));
    /* Copies to other famds go out on an endpoint of their own, whose
     * address vector holds only those famds and never loses one. Over shm,
     * removing an address (a client that left) does not clear what the
     * endpoint remembers of the peer at that index (libfabric 1.17,
     * smr_av_remove unmaps before it resets), and the next address given
     * that index inherits it: a famd that wrote to another famd first
     * skipped the handshake and wrote commands naming a stale index into
     * the other famd's queue, which crashed it. Clients are safe on the
     * main endpoint: they always send first, and that handshake sets the
     * index right. A destination that dies then also stalls only this
     * endpoint's queues, not the replies to clients. */
    if ((rc = fi_av_open(fb->domain, &av_attr, &fb->cav, NULL)) ||
        (rc = fi_endpoint(fb->domain, info, &fb->copy_ep, NULL)) ||
        (rc = fi_ep_bind(fb->copy_ep, &fb->cav->fid, 0)) ||
        (rc = fi_ep_bind(fb->copy_ep, &fb->cq->fid, FI_TRANSMIT | FI_RECV)))
        return famd_fail(d, FAM_EFABRIC, "cannot open the copy endpoint: %s",
                         fi_strerror(-rc));
    if (strcmp(provider, "shm") == 0) {
        char name[64];
        fam_shm_name(name, sizeof name);
        rc = fi_setname(&fb->copy_ep->fid, name, strlen(name) + 1);
    }
    if (rc || (rc = fi_enable(fb->copy_ep)))
        return famd_fail(d, FAM_EFABRIC, "cannot open the copy endpoint: %s",
                         fi_strerror(-rc));
    fb->shm = strcmp(provider, "shm") == 0;
    fb->namelen = sizeof fb->name;
    if ((rc = fi_getname(&fb->ep->fid, fb->name, &fb->namelen)))
        return famd_fail(d, FAM_EFABRIC, "fi_getname: %s", fi_strerror(-rc));
    return 0;
}

/* Is `addr` (len bytes, from a client: HELLO, or a copy's destination) a
 * well-formed fabric address of this provider? fi_av_insert takes no
 * length and trusts what it is given: over tcp;ofi_rxm one address whose
 * family it did not know set the address vector's address length to 0
 * (libfabric 1.17, ofi_ip_av_insertv), and every later insert failed, so
 * famd refused every client until it restarted. Over shm a name is the
 * file /dev/shm/<name> that the provider maps and writes into; a name
 * that does not exist left an entry in the provider's name map that
 * removing the address never cleared. So: tcp takes an IPv4 sockaddr_in
 * of exactly famd's own length and family, with a port and a unicast
 * address; shm takes a Kodiak endpoint name (fam_shm_name.h) whose file
 * exists, and, when the client's uid is known (`uid`, not root or nobody),
 * belongs to it. Returns 0, or FAM_EINVAL with d->err saying why. */
int famd_fabric_addr_check(struct famd *d, const uint8_t *addr, uint32_t len,
                           uint32_t uid, const char *whose)
{
    struct famd_fabric *fb = d->fab;
    if (len == 0 || len > FAMP_ADDR_MAX)
        return famd_fail(d, FAM_EINVAL, "%s fabric address has a bad length "
                         "(%u bytes)", whose, len);
    if (!fb->shm) {
        struct sockaddr_in a, me;
        if (len != fb->namelen || len != sizeof a)
            return famd_fail(d, FAM_EINVAL, "%s fabric address is %u bytes; "
                             "this memory server's provider (%s) uses %zu",
                             whose, len, famd_fabric_provider(d), fb->namelen);
        memcpy(&a, addr, sizeof a);
        memcpy(&me, fb->name, sizeof me);
        uint32_t ip = ntohl(a.sin_addr.s_addr);
        if (a.sin_family != me.sin_family)
            return famd_fail(d, FAM_EINVAL, "%s fabric address is not an IPv4 "
                             "address (family %u)", whose, a.sin_family);
        if (a.sin_port == 0 || ip == 0 || ip == 0xffffffffu ||
            (ip >> 28) == 0xe)
            return famd_fail(d, FAM_EINVAL, "%s fabric address %s:%u is not "
                             "one a reply can be sent to", whose,
                             inet_ntoa(a.sin_addr), ntohs(a.sin_port));
        return 0;
    }
    /* "kodiak-<pid>-<16 hex digits>" and its terminating NUL */
    const char *n = (const char *)addr;
    if (memchr(addr, '\0', len) != addr + len - 1)
        return famd_fail(d, FAM_EINVAL, "%s fabric address is not one "
                         "NUL-terminated endpoint name", whose);
    int pid = 0, hex = 0, at = 0;
    if (sscanf(n, "kodiak-%d-%n", &pid, &at) != 1 || at == 0 || pid <= 0)
        return famd_fail(d, FAM_EINVAL, "%s fabric address '%.64s' is not a "
                         "Kodiak shm endpoint name", whose, n);
    for (const char *p = n + at; *p; p++, hex++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            hex = 99;
    if (hex != 16)
        return famd_fail(d, FAM_EINVAL, "%s fabric address '%.64s' is not a "
                         "Kodiak shm endpoint name", whose, n);
    char path[FAMP_ADDR_MAX + 16];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/%s", n);
    /* a real endpoint's region is megabytes; an empty or short file is
     * one the provider keeps a half-made entry for */
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 4096)
        return famd_fail(d, FAM_EINVAL, "%s fabric address '%s' names no "
                         "shm endpoint on this host", whose, n);
    if (uid != 0 && uid != 65534u && st.st_uid != uid)
        return famd_fail(d, FAM_EINVAL, "%s fabric address '%s' is the "
                         "endpoint of uid %u, not of the client (uid %u)",
                         whose, n, (unsigned)st.st_uid, uid);
    return 0;
}

void famd_fabric_close(struct famd *d)
{
    struct famd_fabric *fb = d->fab;
    if (!fb) return;
    for (uint64_t s = 0; d->live && s < d->nslots; s++) famd_mr_drop(d, (int32_t)s);
    if (fb->ep) fi_close(&fb->ep->fid);
    if (fb->copy_ep) fi_close(&fb->copy_ep->fid);
    if (fb->cav) fi_close(&fb->cav->fid);
    if (fb->cq) fi_close(&fb->cq->fid);
    if (fb->av) fi_close(&fb->av->fid);
    if (fb->domain) fi_close(&fb->domain->fid);
    if (fb->fabric) fi_close(&fb->fabric->fid);
    if (fb->info) fi_freeinfo(fb->info);
    free(fb);
    d->fab = NULL;
}

int famd_fabric_getname(struct famd *d, uint8_t *addr, uint32_t *len)
{
    size_t n = FAMP_ADDR_MAX;
    int rc = fi_getname(&d->fab->ep->fid, addr, &n);
    if (rc) return famd_fail(d, FAM_EFABRIC, "fi_getname: %s", fi_strerror(-rc));
    *len = (uint32_t)n;
    return 0;
}

const char *famd_fabric_provider(struct famd *d)
{
    return d->fab->info->fabric_attr->prov_name;
}

int famd_fabric_virt_addr(struct famd *d) { return d->fab->virt_addr; }
int famd_fabric_wait_fd(struct famd *d) { return d->fab->wait_fd; }

/* Drive the provider; returns the number of completions seen. Completions
 * are of famd's own operations (bulk receives, replies, copy writes): RMA
 * that clients do to famd's memory produces none. */
int famd_fabric_progress(struct famd *d)
{
    struct fi_cq_tagged_entry e[16];
    ssize_t n = fi_cq_read(d->fab->cq, e, 16);
    if (n == -FI_EAVAIL) {
        struct fi_cq_err_entry err = {0};
        if (fi_cq_readerr(d->fab->cq, &err, 0) > 0)
            famd_bulk_done(d, err.op_context, 0, err.err ? err.err : FI_EIO);
        return 1;
    }
    for (ssize_t i = 0; i < n; i++) famd_bulk_done(d, e[i].op_context, e[i].len, 0);
    return n > 0 ? (int)n : 0;
}

struct fid_ep *famd_fabric_ep(struct famd *d) { return d->fab->ep; }
struct fid_av *famd_fabric_av(struct famd *d) { return d->fab->av; }
struct fid_ep *famd_fabric_copy_ep(struct famd *d) { return d->fab->copy_ep; }
struct fid_av *famd_fabric_copy_av(struct famd *d) { return d->fab->cav; }
size_t famd_fabric_max_msg(struct famd *d) { return d->fab->info->ep_attr->max_msg_size; }
uint64_t famd_fabric_write_flags(struct famd *d) { return d->fab->write_flags; }

/* 0 when no event is pending and famd may block on the wait fd. */
int famd_fabric_trywait(struct famd *d)
{
    struct fid *f = &d->fab->cq->fid;
    return fi_trywait(d->fab->fabric, &f, 1) == FI_SUCCESS ? 0 : -1;
}

static int reg(struct famd *d, int32_t slot, int writable, struct fid_mr **mr,
               uint64_t *key)
{
    struct famd_fabric *fb = d->fab;
    struct famd_rec *r = &d->recs[slot];
    uint64_t len = (atomic_load(&r->size) + FAMD_PAGE - 1) / FAMD_PAGE * FAMD_PAGE;
    uint64_t access = FI_REMOTE_READ | (writable ? FI_REMOTE_WRITE : 0);
    for (int tries = 0; tries < 8; tries++) {
        uint64_t want = 0;
        if (!fb->prov_key) {
            if (getrandom(&want, sizeof want, 0) != (ssize_t)sizeof want)
                return famd_fail(d, FAM_EIO, "getrandom failed");
            if (fb->key_size < 8) want &= (1ull << (8 * fb->key_size)) - 1;
        }
        int rc = fi_mr_reg(fb->domain, d->base + r->offset, len, access, 0,
                           want, 0, mr, NULL);
        if (rc == -FI_ENOKEY) continue; /* collision: draw again */
        if (rc)
            return famd_fail(d, FAM_EFABRIC, "cannot register item '%s': %s",
                             r->name, fi_strerror(-rc));
        if (fb->mr_endpoint &&
            ((rc = fi_mr_bind(*mr, &fb->ep->fid, 0)) || (rc = fi_mr_enable(*mr)))) {
            fi_close(&(*mr)->fid);
            *mr = NULL;
            return famd_fail(d, FAM_EFABRIC, "cannot enable registration: %s",
                             fi_strerror(-rc));
        }
        *key = fi_mr_key(*mr);
        return 0;
    }
    return famd_fail(d, FAM_EFABRIC, "could not draw an unused MR key");
}

/* The key giving `writable` or read-only access to item `slot`. */
int famd_mr_get(struct famd *d, int32_t slot, int writable, uint64_t *key)
{
    struct famd_live *l = &d->live[slot];
    if (writable) {
        if (!l->mr_rw) {
            int rc = reg(d, slot, 1, &l->mr_rw, &l->key_rw);
            if (rc) return rc;
        }
        *key = l->key_rw;
    } else {
        if (!l->mr_ro) {
            int rc = reg(d, slot, 0, &l->mr_ro, &l->key_ro);
            if (rc) return rc;
        }
        *key = l->key_ro;
    }
    return 0;
}

/* Revoke all access to item `slot` (freed, or its permissions changed). */
void famd_mr_drop(struct famd *d, int32_t slot)
{
    struct famd_live *l = &d->live[slot];
    if (l->mr_rw) fi_close(&l->mr_rw->fid);
    if (l->mr_ro) fi_close(&l->mr_ro->fid);
    l->mr_rw = l->mr_ro = NULL;
    l->key_rw = l->key_ro = 0;
}

uint64_t famd_item_base(struct famd *d, int32_t slot)
{
    return d->fab->virt_addr ? (uint64_t)(uintptr_t)(d->base + d->recs[slot].offset) : 0;
}

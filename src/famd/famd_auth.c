/* SPDX-License-Identifier: Apache-2.0 */
/* famd_auth.c — famd --auth munge: a TCP client's identity from a MUNGE
 * credential.
 *
 * A TCP client is nobody unless famd runs with --auth munge; then its
 * HELLO is answered with a fresh 128-bit nonce and famd's identity
 * (FAMP_F_AUTH), and the client must send an AUTH whose body is a MUNGE
 * credential with the payload famp_auth_payload(identity, nonce)
 * (fam_proto.h). famd has its munged decode it (key, MAC, munged's TTL and
 * its own replay check) and then checks, itself:
 *   - age: encoded at most --auth-max-age seconds ago (default 60; munge's
 *     TTL is 300 by default) and not from the future beyond the same span;
 *   - replay: the nonce it carries was not used before (famd remembers the
 *     nonces of accepted credentials until they are too old to be accepted
 *     anyway, at most --auth-cache of them; docs/SECURITY.md);
 *   - binding: the payload is exactly the one for this famd and this
 *     connection's nonce, so a credential sniffed on one connection or made
 *     for another famd is refused here.
 * The uid and gid are the credential's; supplementary groups come from this
 * host's group database for that uid (as Slurm does). */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <munge.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "famd.h"

/* One accepted credential's nonce, remembered until it is too old. */
struct famd_seen {
    uint64_t nonce[2];
    time_t until; /* encode time + max age: after it, too old anyway */
};

/* famd's MUNGE settings and replay memory. */
struct famd_auth {
    char socket[108];        /* munged's socket ("" = libmunge's default) */
    int max_age;             /* seconds a credential may be old */
    struct famd_seen *seen;  /* nonces of accepted credentials (a ring) */
    size_t nseen, capseen;   /* in use, capacity (--auth-cache) */
    size_t head;             /* oldest entry */
    uint64_t evicted;        /* entries dropped before they expired */
};

int famd_auth_open(struct famd *d, const char *sock, int max_age,
                   size_t cache)
{
    struct famd_auth *a = calloc(1, sizeof *a);
    if (!a || !(a->seen = calloc(cache, sizeof *a->seen))) {
        free(a);
        return famd_fail(d, FAM_ENOMEM, "out of memory for the MUNGE replay "
                         "cache (%zu entries)", cache);
    }
    if (sock) snprintf(a->socket, sizeof a->socket, "%s", sock);
    a->max_age = max_age;
    a->capseen = cache;
    d->auth = a;
    return 0;
}

void famd_auth_close(struct famd *d)
{
    if (!d->auth) return;
    free(d->auth->seen);
    free(d->auth);
    d->auth = NULL;
}

const char *famd_auth_socket(const struct famd *d)
{
    return d->auth && d->auth->socket[0] ? d->auth->socket
                                         : FAMP_MUNGE_SOCKET;
}

int famd_auth_nonce(struct famd *d, uint64_t nonce[2])
{
    if (getrandom(nonce, 2 * sizeof nonce[0], 0) != 2 * sizeof nonce[0])
        return famd_fail(d, FAM_EIO, "cannot draw a nonce: %s",
                         strerror(errno));
    return 0;
}

/* Is munged listening on its socket? libmunge retries a socket that
 * refuses for seconds, and famd's event loop would wait with it: a
 * connect() of our own says at once. */
static int munged_up(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Forget the nonces whose credentials are too old to be accepted. */
static void seen_expire(struct famd_auth *a, time_t now)
{
    while (a->nseen && a->seen[a->head].until < now) {
        a->head = (a->head + 1) % a->capseen;
        a->nseen--;
    }
}

static int seen_has(const struct famd_auth *a, const uint64_t n[2])
{
    for (size_t i = 0; i < a->nseen; i++) {
        const struct famd_seen *s = &a->seen[(a->head + i) % a->capseen];
        if (s->nonce[0] == n[0] && s->nonce[1] == n[1]) return 1;
    }
    return 0;
}

/* Remember an accepted nonce. Entries are added in encode-time order
 * nearly enough (all are younger than max_age) that the ring's oldest is
 * the first to expire. When it is full the oldest goes: safe, since every
 * connection has its own fresh nonce, a credential whose nonce is
 * forgotten is still refused as made for another connection. */
static void seen_add(struct famd_auth *a, const uint64_t n[2], time_t until)
{
    if (a->nseen == a->capseen) {
        a->head = (a->head + 1) % a->capseen;
        a->nseen--;
        a->evicted++;
    }
    struct famd_seen *s = &a->seen[(a->head + a->nseen) % a->capseen];
    s->nonce[0] = n[0];
    s->nonce[1] = n[1];
    s->until = until;
    a->nseen++;
}

/* The nonce in a payload famp_auth_payload() made, or -1. */
static int payload_nonce(const char *p, uint64_t n[2])
{
    const char *at = strstr(p, " nonce=");
    if (!at || strlen(at + 7) != 32) return -1;
    char h[17] = {0};
    for (int i = 0; i < 2; i++) {
        memcpy(h, at + 7 + 16 * i, 16);
        char *end;
        n[i] = strtoull(h, &end, 16);
        if (*end) return -1;
    }
    return 0;
}

int famd_auth_check(struct famd *d, const char *cred, size_t len,
                    const uint64_t nonce[2], const char *ident,
                    struct famd_cred *out)
{
    struct famd_auth *a = d->auth;
    if (len == 0 || len > FAMP_MAX_CRED || memchr(cred, '\0', len))
        return famd_fail(d, FAM_EPERM, "invalid MUNGE credential (%zu bytes, "
                         "not a credential)", len);
    char buf[FAMP_MAX_CRED + 1];
    memcpy(buf, cred, len);
    buf[len] = '\0';
    const char *sock = famd_auth_socket(d);
    if (!munged_up(sock))
        return famd_fail(d, FAM_EPERM, "famd cannot check MUNGE credentials: "
                         "its munged is not running (no answer on %s)", sock);
    munge_ctx_t ctx = munge_ctx_create();
    if (!ctx) return famd_fail(d, FAM_ENOMEM, "out of memory for a MUNGE context");
    if (a->socket[0]) munge_ctx_set(ctx, MUNGE_OPT_SOCKET, a->socket);
    void *payload = NULL;
    int plen = 0;
    uid_t uid;
    gid_t gid;
    munge_err_t e = munge_decode(buf, ctx, &payload, &plen, &uid, &gid);
    time_t enc = 0;
    munge_ctx_get(ctx, MUNGE_OPT_ENCODE_TIME, &enc);
    int rc = 0;
    time_t now = time(NULL);
    char got[512] = "";
    uint64_t pn[2];
    if (e == EMUNGE_SUCCESS && payload && plen > 0 && (size_t)plen < sizeof got)
        memcpy(got, payload, (size_t)plen);
    if (e == EMUNGE_CRED_REPLAYED)
        rc = famd_fail(d, FAM_EPERM, "MUNGE credential replayed (munged "
                       "decoded it before)");
    else if (e == EMUNGE_CRED_EXPIRED)
        rc = famd_fail(d, FAM_EPERM, "MUNGE credential expired (older than "
                       "its time-to-live: encoded %lld s ago)",
                       (long long)(now - enc));
    else if (e == EMUNGE_CRED_REWOUND)
        rc = famd_fail(d, FAM_EPERM, "MUNGE credential expired (encoded in "
                       "the future: the clocks differ)");
    else if (e == EMUNGE_SOCKET)
        rc = famd_fail(d, FAM_EPERM, "famd cannot check MUNGE credentials: "
                       "its munged is not reachable on %s: %s", sock,
                       munge_ctx_strerror(ctx));
    else if (e != EMUNGE_SUCCESS)
        rc = famd_fail(d, FAM_EPERM, "invalid MUNGE credential: %s (made "
                       "with another key, or damaged)", munge_ctx_strerror(ctx)
                       ? munge_ctx_strerror(ctx) : munge_strerror(e));
    else if (now - enc > a->max_age || enc - now > a->max_age)
        rc = famd_fail(d, FAM_EPERM, "MUNGE credential expired (encoded "
                       "%lld s ago; famd accepts at most %d s, famd "
                       "--auth-max-age)", (long long)(now - enc), a->max_age);
    else if (!got[0] || payload_nonce(got, pn) != 0)
        rc = famd_fail(d, FAM_EPERM, "invalid MUNGE credential: its payload "
                       "is not a Kodiak famd authentication");
    else {
        seen_expire(a, now);
        char want[512];
        famp_auth_payload(want, sizeof want, ident, nonce);
        if (seen_has(a, pn))
            rc = famd_fail(d, FAM_EPERM, "MUNGE credential replayed (its "
                           "nonce was used before)");
        else if (strcmp(got, want) != 0)
            rc = famd_fail(d, FAM_EPERM, "invalid MUNGE credential: it was "
                           "made for another connection or memory server");
        else
            seen_add(a, pn, enc + a->max_age);
    }
    free(payload);
    munge_ctx_destroy(ctx);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->uid = uid;
    out->gid = gid;
    /* supplementary groups, from this host's database (none for a uid
     * unknown here: a missing group can only deny) */
    struct passwd pw, *pp = NULL;
    char pwbuf[4096];
    if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &pp) == 0 && pp) {
        gid_t g[32];
        int ng = 32;
        if (getgrouplist(pp->pw_name, gid, g, &ng) < 0) ng = 32;
        for (int i = 0; i < ng && i < 32; i++) out->groups[out->ngroups++] = g[i];
    }
    return 0;
}

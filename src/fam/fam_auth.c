/* SPDX-License-Identifier: Apache-2.0 */
/* fam_auth.c — libfam's side of famd --auth munge: a MUNGE credential for
 * one control connection.
 *
 * famd answers the HELLO of a TCP client with FAMP_F_AUTH, a nonce drawn
 * for this connection, its identity and its uid. We ask our host's munged
 * (the socket in FAM_MUNGE_SOCKET, else libmunge's default) for a
 * credential whose payload names that identity and nonce
 * (famp_auth_payload) and which only famd's uid may decode; fam_control.c
 * sends it as AUTH. munged vouches for our uid and gid; famd refuses the credential on
 * any other connection or server (docs/SECURITY.md). */
#define _GNU_SOURCE
#include <munge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fam_internal.h"

int fam_auth_credential(const char *host, int port,
                        const struct famp_info *o, char **out)
{
    char ident[FAM_NAME_MAX + 1], payload[512];
    memcpy(ident, o->name, sizeof ident);
    ident[FAM_NAME_MAX] = '\0';
    uint64_t nonce[2] = {o->arg[0], o->arg[1]};
    famp_auth_payload(payload, sizeof payload, ident, nonce);
    const char *sock = getenv("FAM_MUNGE_SOCKET");
    if (sock && !*sock) sock = NULL;
    munge_ctx_t ctx = munge_ctx_create();
    if (!ctx) return fam_fail(FAM_ENOMEM, "out of memory for a MUNGE context");
    munge_err_t e = EMUNGE_SUCCESS;
    if (sock) e = munge_ctx_set(ctx, MUNGE_OPT_SOCKET, sock);
    if (e == EMUNGE_SUCCESS)
        e = munge_ctx_set(ctx, MUNGE_OPT_UID_RESTRICTION, (uid_t)o->uid);
    char *cred = NULL;
    if (e == EMUNGE_SUCCESS)
        e = munge_encode(&cred, ctx, payload, (int)strlen(payload));
    int rc = 0;
    if (e != EMUNGE_SUCCESS) {
        const char *why = munge_ctx_strerror(ctx);
        rc = fam_fail(FAM_EPERM, "memory server %s:%d wants a MUNGE "
                      "credential (famd --auth munge) and none could be "
                      "made: %s%s (munged socket %s; FAM_MUNGE_SOCKET "
                      "names another)", host, port,
                      why ? why : munge_strerror(e),
                      e == EMUNGE_SOCKET ? ": munged is not running here" : "",
                      sock ? sock : FAMP_MUNGE_SOCKET);
        free(cred);
        cred = NULL;
    }
    munge_ctx_destroy(ctx);
    *out = cred;
    return rc;
}

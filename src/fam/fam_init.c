/* SPDX-License-Identifier: Apache-2.0 */
/* fam_init.c — a fam_t's life: fam_initialize reads the list of memory
 * servers (numbered alike by every client, whatever order they were given
 * in), opens the endpoint (fam_fabric.c) and says HELLO to each server
 * (fam_control.c); fam_finalize waits for what is in flight (fam_quiet,
 * fam_data.c) and closes it all. The top of libfam's own layers: it may
 * call any of them. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fam_internal.h"

static int server_cmp(const void *a, const void *b)
{
    const struct fam_server *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c ? c : (x->port > y->port) - (x->port < y->port);
}

static int parse_servers(fam_t *f, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy) return fam_fail(FAM_ENOMEM, "out of memory");
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    f->srv = calloc((size_t)n, sizeof *f->srv);
    if (!f->srv) { free(copy); return fam_fail(FAM_ENOMEM, "out of memory"); }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        char *colon = strrchr(t, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == t || *end || port <= 0 || port > 65535 ||
            (size_t)(colon - t) >= sizeof f->srv[0].host) {
            int rc = fam_fail(FAM_EINVAL, "bad memory server '%s' (want "
                              "host:port)", t);
            free(copy);
            return rc;
        }
        struct fam_server *s = &f->srv[f->nservers++];
        memcpy(s->host, t, (size_t)(colon - t));
        s->port = (int)port;
        s->fd = -1;
        s->ep = -1;
        pthread_mutex_init(&s->lock, NULL);
    }
    free(copy);
    if (f->nservers == 0)
        return fam_fail(FAM_EINVAL, "no memory servers given");
    /* every client must number the servers alike, whatever order it was
     * given them in: regions are placed by that number */
    qsort(f->srv, (size_t)f->nservers, sizeof *f->srv, server_cmp);
    for (int i = 1; i < f->nservers; i++)
        if (server_cmp(&f->srv[i - 1], &f->srv[i]) == 0)
            return fam_fail(FAM_EINVAL, "memory server %s:%d is listed twice",
                            f->srv[i].host, f->srv[i].port);
    return 0;
}

int fam_initialize(const fam_options_t *opts, fam_t **out)
{
    fam_clear_error();
    if (!out) return fam_fail(FAM_EINVAL, "fam_initialize: out is NULL");
    *out = NULL;
    const char *servers = opts && opts->servers ? opts->servers : getenv("FAM_SERVERS");
    const char *prov = opts && opts->provider ? opts->provider : getenv("FAM_PROVIDER");
    if (!servers || !*servers)
        return fam_fail(FAM_EINVAL, "no memory servers: pass them in the "
                        "options or set FAM_SERVERS=host:port[,host:port]");
    /* unset, "" or "auto": chosen per server (fam_control.c, hello_server) */
    if (!prov || !strcmp(prov, "auto")) prov = "";
    if (*prov && strcmp(prov, "shm") && strcmp(prov, "tcp") &&
        strcmp(prov, "sockets"))
        return fam_fail(FAM_EINVAL, "unknown provider '%s' (use shm, tcp, or "
                        "auto to choose per server)", prov);
    fam_t *f = calloc(1, sizeof *f);
    if (!f) return fam_fail(FAM_ENOMEM, "out of memory");
    snprintf(f->provider, sizeof f->provider, "%s", prov);
    f->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
    /* FAM_SPIN_US=N: ask each famd reached over shm to poll for N us (at
     * most its --spin-us) after our activity instead of its --spin-us;
     * unset, 0 or not a number: famd's own */
    const char *spin = getenv("FAM_SPIN_US");
    if (spin && *spin) {
        char *end;
        unsigned long long v = strtoull(spin, &end, 10);
        if (*end == '\0' && v <= 10000000ULL) f->spin_ask = (uint32_t)v;
    }
    pthread_mutex_init(&f->flock, NULL);
    const char *model = opts && opts->model ? opts->model : getenv("FAM_MODEL");
    int shared = model && !strcmp(model, "shared_memory");
    if (model && *model && !shared && strcmp(model, "memory_server")) {
        free(f);
        return fam_fail(FAM_EINVAL, "unknown FAM model '%s' (use memory_server "
                        "or shared_memory)", model);
    }
    f->shared = shared;
    int rc = parse_servers(f, servers);
    if (!rc) rc = fam_hello_all(f, 1); /* opens the endpoints it needs */
    if (rc) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_finalize(f);
        return fam_fail(rc, "%s", keep);
    }
    *out = f;
    return 0;
}

int fam_finalize(fam_t *f)
{
    if (!f) return 0;
    if (f->neps) fam_quiet(f);
    fam_fabric_close_all(f);
    for (int i = 0; i < f->nservers; i++) {
        if (f->srv[i].fd >= 0) close(f->srv[i].fd);
        if (f->srv[i].map) munmap(f->srv[i].map, f->srv[i].map_size);
        pthread_mutex_destroy(&f->srv[i].lock);
    }
    free(f->srv);
    pthread_mutex_destroy(&f->flock);
    free(f);
    return 0;
}

int fam_num_servers(const fam_t *f) { return f ? f->nservers : 0; }

const char *fam_server_provider(const fam_t *f, int i)
{
    if (!f || i < 0 || i >= f->nservers || f->srv[i].ep < 0) return NULL;
    return f->eps[f->srv[i].ep].provider;
}

int fam_server_info(const fam_t *f, int i, fam_server_info_t *out)
{
    fam_clear_error();
    if (!f || !out) return fam_fail(FAM_EINVAL, "fam_server_info: NULL argument");
    if (i < 0 || i >= f->nservers)
        return fam_fail(FAM_EINVAL, "no memory server %d (this client has %d)",
                        i, f->nservers);
    const struct fam_server *s = &f->srv[i];
    memset(out, 0, sizeof *out);
    snprintf(out->host, sizeof out->host, "%s", s->host);
    out->port = s->port;
    snprintf(out->provider, sizeof out->provider, "%s",
             s->ep >= 0 ? f->eps[s->ep].provider : "");
    out->local = s->here;
    out->mapped = s->map != NULL;
    out->spin_us = s->spin_us;
    return 0;
}

int fam_num_local_servers(const fam_t *f)
{
    int n = 0;
    for (int i = 0; f && i < f->nservers; i++) n += f->srv[i].map != NULL;
    return n;
}


/* SPDX-License-Identifier: Apache-2.0 */
/* famd_prefault.c — mapping in, ahead of time, the pool pages that the next
 * items will be given.
 *
 * A volatile pool is anonymous memory mapped with MAP_NORESERVE: its pages
 * are made (zeroed, huge pages where the kernel can) on their first write,
 * which is a client's put landing in famd. Here a fresh 2 MiB page took
 * 5 ms to make (a virtual machine's memory is first made by its host), and
 * a client writing a new item waited that long in the middle of a put.
 * famd_prefault keeps the first --prefault-mb bytes of the free list
 * (first fit gives those out next) mapped in from a thread of its own at
 * the lowest priority (SCHED_IDLE), so the cost is paid on a core nothing
 * else wants, not while a client waits.
 *
 * It changes no data: MADV_POPULATE_WRITE maps a page in as a write would
 * but writes nothing, and a page already there is left as it is, so a
 * range allocated (and written by a client) between the event loop's note
 * and the thread's pass keeps its contents, and a freed range given back
 * to the kernel (zero_range) reads as zeros again either way. Pool files
 * (--pool-file) are left alone: mapping them in would allocate their
 * blocks on disk. Nothing but MADV_POPULATE_WRITE is done from the thread;
 * the free list is read by the event loop only (famd_prefault_note). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "famd.h"

#define FAMD_PF_RANGES 16 /* free extents looked ahead into, at most */
#define FAMD_PF_STEP ((uint64_t)2 << 20) /* bytes mapped in per call */

struct famd_prefault {
    pthread_t thread;
    pthread_mutex_t mu;        /* guards want, nwant, stop; gen's writes */
    pthread_cond_t cv;         /* signalled when gen or stop changes */
    struct famd_extent want[FAMD_PF_RANGES]; /* what to map in (offsets) */
    size_t nwant;
    atomic_uint_fast64_t gen;  /* bumped when want or stop changes; the
                                  thread reads it between steps unlocked */
    int stop;                  /* 1: the thread returns */
    uint8_t *base;             /* the pool */
    uint64_t ahead;            /* free bytes to keep mapped in */
};

static void *prefault_main(void *arg)
{
    struct famd_prefault *p = arg;
    /* only on a core nothing else wants: famd's event loop, its clients
     * and everyone else go first (a query's commands ran slower beside a
     * prefault thread of normal priority) */
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    uint64_t seen = 0; /* the gen of the list last taken up */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && atomic_load(&p->gen) == seen)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) break;
        struct famd_extent want[FAMD_PF_RANGES];
        size_t n = p->nwant;
        memcpy(want, p->want, n * sizeof *want);
        uint64_t gen = seen = atomic_load(&p->gen);
        pthread_mutex_unlock(&p->mu);
        /* a step at a time: a newer list (the free list changed) is taken
         * up at once instead of after the whole of this one */
        for (size_t i = 0; i < n; i++)
            for (uint64_t at = 0; at < want[i].len; at += FAMD_PF_STEP) {
                uint64_t len = want[i].len - at < FAMD_PF_STEP ? want[i].len - at
                                                               : FAMD_PF_STEP;
                if (madvise(p->base + want[i].off + at, len, MADV_POPULATE_WRITE))
                    return NULL; /* not on this kernel, or out of memory:
                                    stop trying (unlocked here) */
                if (atomic_load_explicit(&p->gen, memory_order_relaxed) != gen)
                    goto next; /* a newer list, or stop */
            }
    next:
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int famd_prefault_start(struct famd *d, uint64_t ahead)
{
#ifdef MADV_POPULATE_WRITE
    if (d->fd >= 0 || ahead == 0) return 0;
    struct famd_prefault *p = calloc(1, sizeof *p);
    if (!p) return famd_fail(d, FAM_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->base = d->base;
    p->ahead = ahead;
    if (pthread_create(&p->thread, NULL, prefault_main, p)) {
        free(p);
        return 0; /* an optimisation: famd works without it */
    }
    d->pf = p;
    famd_prefault_note(d);
#else
    (void)d;
    (void)ahead;
#endif
    return 0;
}

/* Called by the event loop after the free list changed. It never waits
 * for the thread: the thread may hold the lock and, at SCHED_IDLE on a
 * busy machine, not run again for a long time. When the lock is busy this
 * list is skipped; the thread goes on with the one it has (mapping in
 * pages that are no longer free changes nothing) and the next change
 * brings the list up to date. */
void famd_prefault_note(struct famd *d)
{
    struct famd_prefault *p = d->pf;
    if (!p) return;
    struct famd_extent want[FAMD_PF_RANGES];
    size_t n = 0;
    uint64_t left = p->ahead;
    for (size_t i = 0; i < d->nfree && n < FAMD_PF_RANGES && left; i++) {
        uint64_t len = d->freelist[i].len < left ? d->freelist[i].len : left;
        want[n++] = (struct famd_extent){d->freelist[i].off, len};
        left -= len;
    }
    if (pthread_mutex_trylock(&p->mu) != 0) return;
    if (n != p->nwant || memcmp(want, p->want, n * sizeof *want)) {
        memcpy(p->want, want, n * sizeof *want);
        p->nwant = n;
        atomic_fetch_add(&p->gen, 1);
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

void famd_prefault_stop(struct famd *d)
{
    struct famd_prefault *p = d->pf;
    if (!p) return;
    /* back to normal priority, so that on a busy machine the thread gets
     * the core to finish its step and see stop (at SCHED_IDLE, seconds) */
    struct sched_param sp = {0};
    pthread_setschedparam(p->thread, SCHED_OTHER, &sp);
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add(&p->gen, 1); /* a pass under way ends at its next step */
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    d->pf = NULL;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* famd_prefault.c — mapping in, ahead of time, the pool pages that the next
 * items will be given.
 *
 * A volatile pool is anonymous memory mapped with MAP_NORESERVE: its pages
 * are made (zeroed, huge pages where the kernel can) on their first write,
 * which is a client's put landing in famd. Here a fresh 2 MiB page took
 * 5 ms to make (a virtual machine's memory is first made by its host), and
 * a client writing a new item waited that long in the middle of a put.
 * famd_prefault keeps --prefault-mb bytes of free space mapped in ahead,
 * where first fit gives out the next items: a quarter below the top of the
 * pool, where small items go (walked down from the top, nearest first),
 * the rest at the bottom, where large ones go (famd_pool.c, extent_take).
 *
 * A step is taken only when famd has served nothing for FAMD_PF_QUIET_US
 * and a core is idle. On a virtual machine mapping a fresh page in stalls
 * the core for its whole length whatever the thread's priority: steps
 * taken while clients worked (the window moving with each new item) cost
 * a query of ten commands 3-6 ms per step. Between commands, or once an
 * ingest is over, there is time enough: a query makes some 5 MiB of small
 * items, the top window holds 16 MiB by default.
 *
 * Two threads share the work. The worker maps in one 2 MiB step at a time
 * at normal priority; before each step it asks the pacer, a thread at the
 * lowest priority (SCHED_IDLE), which answers only when it gets a core,
 * that is when nothing else wants one. The step itself must not run at
 * SCHED_IDLE: mapping pages in holds the process's memory-map lock, and
 * every mmap or munmap in famd (malloc of a large buffer, a provider's
 * setup, the exit) waits for that lock. A thread at SCHED_IDLE preempted
 * in the middle of a step on a busy machine held famd up for seconds
 * (famd took 12 s to start beside six busy loops). The pacer holds no lock
 * at all, so nothing ever waits for it; it is never joined (it may not get
 * a core for seconds) and its state is never freed.
 *
 * It changes no data: MADV_POPULATE_WRITE maps a page in as a write would
 * but writes nothing, and a page already there is left as it is, so a
 * range allocated (and written by a client) between the event loop's note
 * and the worker's pass keeps its contents, and a freed range given back
 * to the kernel (zero_range) reads as zeros again either way. Pool files
 * (--pool-file) are left alone: mapping them in would allocate their
 * blocks on disk. Nothing but MADV_POPULATE_WRITE is done from the worker;
 * the free list is read by the event loop only (famd_prefault_note). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "famd.h"

#define FAMD_PF_RANGES 16 /* free extents looked ahead into, at most */
#define FAMD_PF_STEP ((uint64_t)2 << 20) /* bytes mapped in per call */
#define FAMD_PF_QUIET_US 20000 /* famd idle this long before a step */

struct famd_prefault {
    pthread_t worker;          /* maps in, a step per go */
    pthread_t pacer;           /* at SCHED_IDLE: turns each ask into a go */
    pthread_mutex_t mu;        /* guards want, nwant, stop; gen's writes
                                  (never taken by the pacer) */
    pthread_cond_t cv;         /* signalled when gen or stop changes */
    sem_t ask;                 /* posted by the worker before a step */
    sem_t go;                  /* posted by the pacer (and by stop) */
    struct famd_extent want[FAMD_PF_RANGES]; /* what to map in (offsets) */
    size_t nwant;
    size_t ntop;               /* want[0..ntop) are below the top: walked down */
    atomic_uint_fast64_t gen;  /* bumped when want or stop changes; the
                                  worker reads it between steps unlocked */
    atomic_int stop;           /* 1: the worker returns */
    uint8_t *base;             /* the pool */
    uint64_t ahead;            /* free bytes to keep mapped in */
};

/* The last request or completion famd saw (fam_now_us), or 0. */
static atomic_uint_fast64_t busy_at;

void famd_prefault_busy(void)
{
    atomic_store_explicit(&busy_at, fam_now_us(), memory_order_relaxed);
}

/* Waits until famd has been quiet FAMD_PF_QUIET_US; 0 when the worker is
 * to stop instead. */
static int wait_quiet(struct famd_prefault *p)
{
    for (;;) {
        if (atomic_load(&p->stop)) return 0;
        uint64_t now = fam_now_us(),
                 at = atomic_load_explicit(&busy_at, memory_order_relaxed);
        if (now - at >= FAMD_PF_QUIET_US || at > now) return 1;
        uint64_t us = FAMD_PF_QUIET_US - (now - at);
        struct timespec ts = {0, (long)us * 1000};
        nanosleep(&ts, NULL);
    }
}

/* The pacer: it runs only when a core has nothing else to do. It owns no
 * lock and touches only the two semaphores, so famd never waits for it. */
static void *pacer_main(void *arg)
{
    struct famd_prefault *p = arg;
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    for (;;) {
        while (sem_wait(&p->ask) != 0) {
        }
        sem_post(&p->go);
    }
    return NULL;
}

/* 1 if every page of [p, p + len) is in memory already: a step with
 * nothing to do, which needs no core (a pass starts over from the first
 * free byte after every allocation, and most of what it looks at was
 * mapped in by the pass before). mincore reads the page tables only. */
static int resident(uint8_t *p, uint64_t len)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    unsigned char vec[1024];
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uint64_t span = (uint64_t)((uintptr_t)p - start) + len;
    uint64_t pages = (span + (uint64_t)page - 1) / (uint64_t)page;
    if (page <= 0 || pages > sizeof vec || mincore((void *)start, span, vec))
        return 0;
    for (uint64_t i = 0; i < pages; i++)
        if (!(vec[i] & 1))
            return 0;
    return 1;
}

/* Waits for the pacer's go; 0 when the worker is to stop instead. */
static int wait_idle_core(struct famd_prefault *p)
{
    sem_post(&p->ask);
    while (sem_wait(&p->go) != 0) {
    }
    return !atomic_load(&p->stop);
}

static void *worker_main(void *arg)
{
    struct famd_prefault *p = arg;
    uint64_t seen = 0; /* the gen of the list last taken up */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!atomic_load(&p->stop) && atomic_load(&p->gen) == seen)
            pthread_cond_wait(&p->cv, &p->mu);
        if (atomic_load(&p->stop)) break;
        struct famd_extent want[FAMD_PF_RANGES];
        size_t n = p->nwant, ntop = p->ntop;
        memcpy(want, p->want, n * sizeof *want);
        uint64_t gen = seen = atomic_load(&p->gen);
        pthread_mutex_unlock(&p->mu);
        /* a step at a time: a newer list (the free list changed) is taken
         * up at once instead of after the whole of this one */
        for (size_t i = 0; i < n; i++)
            for (uint64_t done = 0; done < want[i].len; done += FAMD_PF_STEP) {
                uint64_t len = want[i].len - done < FAMD_PF_STEP ? want[i].len - done
                                                                 : FAMD_PF_STEP;
                /* below the top: the step nearest the top first */
                uint64_t at = i < ntop ? want[i].len - done - len : done;
                if (resident(p->base + want[i].off + at, len))
                    continue;
                if (!wait_quiet(p) || !wait_idle_core(p))
                    return NULL; /* stop (unlocked here) */
                if (atomic_load_explicit(&p->gen, memory_order_relaxed) != gen)
                    goto next; /* a newer list */
                if (madvise(p->base + want[i].off + at, len, MADV_POPULATE_WRITE))
                    return NULL; /* not on this kernel, or out of memory:
                                    stop trying (unlocked here) */
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
    /* never freed: the pacer, never joined, may still be using it */
    static struct famd_prefault pf;
    struct famd_prefault *p = &pf;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    sem_init(&p->ask, 0, 0);
    sem_init(&p->go, 0, 0);
    p->base = d->base;
    p->ahead = ahead;
    if (pthread_create(&p->pacer, NULL, pacer_main, p))
        return 0; /* an optimisation: famd works without it */
    pthread_detach(p->pacer);
    if (pthread_create(&p->worker, NULL, worker_main, p)) {
        /* the pacer waits on ask for ever, harmlessly */
        return 0;
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
 * for the worker (which holds the lock only to take up a list, but may be
 * preempted there): when the lock is busy this list is skipped; the worker
 * goes on with the one it has (mapping in pages that are no longer free
 * changes nothing) and the next change brings the list up to date. */
void famd_prefault_note(struct famd *d)
{
    struct famd_prefault *p = d->pf;
    if (!p) return;
    struct famd_extent want[FAMD_PF_RANGES];
    size_t n = 0;
    /* Below the top: the small items' frontier; at the bottom: the large
     * items'. Holes shorter than a step are passed over: they are what
     * freed items left, and famd zeroed them by hand, so they are mapped
     * in (zero_range gives back only whole huge pages); counted, the
     * freed catalog snapshots near the top took up every range. */
    uint64_t left = p->ahead / 4;
    for (size_t i = d->nfree; i-- > 0 && n < FAMD_PF_RANGES / 4 && left;) {
        const struct famd_extent *e = &d->freelist[i];
        if (e->len < FAMD_PF_STEP) continue;
        uint64_t len = e->len < left ? e->len : left;
        want[n++] = (struct famd_extent){e->off + e->len - len, len};
        left -= len;
    }
    size_t ntop = n;
    left = p->ahead - p->ahead / 4;
    for (size_t i = 0; i < d->nfree && n < FAMD_PF_RANGES && left; i++) {
        const struct famd_extent *e = &d->freelist[i];
        if (e->len < FAMD_PF_STEP) continue;
        uint64_t len = e->len < left ? e->len : left;
        want[n++] = (struct famd_extent){e->off, len};
        left -= len;
    }
    if (pthread_mutex_trylock(&p->mu) != 0) return;
    if (n != p->nwant || ntop != p->ntop || memcmp(want, p->want, n * sizeof *want)) {
        memcpy(p->want, want, n * sizeof *want);
        p->nwant = n;
        p->ntop = ntop;
        atomic_fetch_add(&p->gen, 1);
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

void famd_prefault_stop(struct famd *d)
{
    struct famd_prefault *p = d->pf;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    sem_post(&p->go); /* a worker waiting for the pacer stops at once */
    pthread_join(p->worker, NULL); /* at most the end of one step */
    d->pf = NULL;
}

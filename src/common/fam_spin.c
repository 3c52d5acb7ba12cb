/* SPDX-License-Identifier: Apache-2.0 */
/* fam_spin.c — spin locks whose holder can be known, so that a lock left
 * held by a process that died can be taken over.
 *
 * libfabric's shm provider guards each endpoint's queues with a
 * pthread_spinlock_t inside the endpoint's shared memory, taken by every
 * process that sends to it. A client killed with SIGKILL while it held
 * famd's lock (while posting an atomic, say) left it held for good, and
 * famd then spun in pthread_spin_lock at 100% of a core, answering no one
 * (seen in tests/fam/test_peer_death.c within 15 rounds of 4 clients
 * killed during atomics); the same for a famd killed while it held its own
 * lock, under another famd copying to it.
 *
 * This file (in kodiak_common, linked whole into libfam.so and into famd)
 * defines pthread_spin_lock and pthread_spin_trylock, and so replaces
 * glibc's for libfabric in famd and in every program linked with libfam:
 * both store the holder's process id in the lock word. glibc's
 * pthread_spin_init and pthread_spin_unlock (kept) store the "free" value:
 * 1 on x86-64 (its lock decrements to 0), 0 in glibc's generic code (its
 * lock stores 1); a held lock then holds -pid, or pid, which both
 * glibc's unlock and its other waiters take for "held". A waiter that has
 * spun for a while reads the holder's pid, and takes the lock over when
 * that process no longer runs (gone, or a zombie): the dead hold nothing;
 * the same for one stopped for a second (FAM_SPIN_STOPPED_MS). A running
 * holder is waited for, as before; so is one whose lock word names no
 * process (a program using glibc's own lock), and a thread of the
 * waiter's own process. The cost: the same one compare-and-swap to take a
 * free lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fam_common.h"

/* A holder stopped this long (SIGSTOP, a debugger) is taken over too: a
 * famd stopped while it held its own queue lock otherwise froze every
 * famd copying to it, and every client, for as long as it stayed stopped.
 * The price: should it continue, it finishes a critical section that is
 * no longer its own (restart a famd that was stopped and continued). */
#define FAM_SPIN_STOPPED_MS 1000

static int fam_spin_free = 1; /* what glibc's pthread_spin_init stores */
static int fam_spin_held;     /* the word of a lock this process holds:
                                 its pid, negative when free is 1 */

static void fam_spin_forked(void)
{
    int pid = (int)getpid();
    fam_spin_held = fam_spin_free == 1 ? -pid : pid;
}

__attribute__((constructor)) static void fam_spin_init(void)
{
    pthread_spinlock_t probe;
    pthread_spin_init(&probe, PTHREAD_PROCESS_PRIVATE);
    fam_spin_free = *(volatile int *)&probe;
    fam_spin_forked();
    pthread_atfork(NULL, NULL, fam_spin_forked);
}

/* The pid a held lock word names, or 0 if it names none. */
static int fam_spin_holder(int v)
{
    int pid = fam_spin_free == 1 ? -v : v;
    return pid > 1 ? pid : 0;
}

/* 2 if process pid is gone or a zombie (it can hold nothing any more), 1
 * if it is stopped (SIGSTOP, or a debugger), 0 if it runs. */
static int fam_spin_holder_state(int pid)
{
    if (kill(pid, 0) != 0) return errno == ESRCH ? 2 : 0;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 2 : 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')' */
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return 0;
    return p[2] == 'Z' || p[2] == 'X' ? 2 : p[2] == 'T' || p[2] == 't' ? 1 : 0;
}

static uint64_t fam_spin_now_ms(void) { return fam_now_us() / 1000u; }

int pthread_spin_trylock(pthread_spinlock_t *lock)
{
    int v = fam_spin_free;
    return __atomic_compare_exchange_n((int *)lock, &v, fam_spin_held, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
               ? 0 : EBUSY;
}

int pthread_spin_lock(pthread_spinlock_t *lock)
{
    int *w = (int *)lock;
    int seen = 0;          /* the holder last looked at */
    uint64_t stopped = 0;  /* since when it has been seen stopped (ms) */
    for (unsigned spins = 1;; spins++) {
        int v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (v == fam_spin_free &&
            __atomic_compare_exchange_n(w, &v, fam_spin_held, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 0;
        __builtin_ia32_pause();
        /* a lock is held for a microsecond or so: after ~100 us of
         * waiting look at who holds it, then again every ~100 us */
        if (spins % 2048) continue;
        int pid = fam_spin_holder(v), st = 0;
        if (pid && v != fam_spin_held) st = fam_spin_holder_state(pid);
        if (st == 1) { /* stopped: for a second on end, as good as dead */
            uint64_t now = fam_spin_now_ms();
            if (v != seen || !stopped) stopped = now;
            if (now - stopped >= FAM_SPIN_STOPPED_MS) st = 2;
        } else {
            stopped = 0;
        }
        seen = v;
        if (st == 2 && __atomic_compare_exchange_n(w, &v, fam_spin_held, 0,
                                                   __ATOMIC_ACQUIRE,
                                                   __ATOMIC_RELAXED))
            return 0; /* taken over from a process that died holding it */
        sched_yield(); /* the holder may need this core */
    }
}

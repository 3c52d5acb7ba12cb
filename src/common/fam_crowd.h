/* SPDX-License-Identifier: Apache-2.0 */
/* fam_crowd.h — is the machine short of cores? Shared by libfam and famd.
 *
 * A waiting client and a famd serving RMA both poll rather than sleep. When
 * every runnable task has a core of its own, giving the core away between
 * polls (sched_yield) only adds system calls: a 1 MiB blocking get over tcp
 * lost ~10% to them. When there are more runnable tasks than cores (two
 * famds and a client on two cores, or four clients), a poller that does not
 * yield starves the famd that would answer it. So pollers yield only while
 * the machine is crowded: more runnable tasks than online cores, read from
 * the fourth field of /proc/loadavg ("running/total") at most once per
 * millisecond. */
#ifndef FAM_CROWD_H
#define FAM_CROWD_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* One poller's view, refreshed every millisecond. Zero-initialise. */
struct fam_crowd {
    uint64_t checked_us; /* when /proc/loadavg was last read; 0: never */
    int crowded;         /* 1: more runnable tasks than online cores */
};

/* From the text of /proc/loadavg ("0.82 1.50 1.56 3/180 12345"): 1 if more
 * tasks are runnable than ncpu, 0 if not, 1 if the text is not understood
 * (yielding is the safe side). */
static inline int fam_crowd_parse(const char *text, long ncpu)
{
    const char *p = text;
    for (int field = 0; field < 3; field++) { /* skip the three averages */
        while (*p && *p != ' ') p++;
        while (*p == ' ') p++;
    }
    char *end;
    long running = strtol(p, &end, 10);
    if (end == p || *end != '/' || running < 0) return 1;
    return running > (ncpu > 0 ? ncpu : 1);
}

/* Read /proc/loadavg now: 1 if more tasks are runnable than there are
 * online cores. Unreadable: 1. The file is opened once per process and
 * read with pread at offset 0, which makes the kernel write it afresh:
 * an open and a close per look were two of famd's three system calls for
 * it (strace of 300 allocations: 1574 opens of /proc/loadavg). pread
 * moves no shared file offset, so threads may share the descriptor. */
static inline int fam_crowd_read(void)
{
    static long ncpu;
    static _Atomic int shared_fd = -1;
    if (ncpu <= 0) ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int fd = atomic_load(&shared_fd);
    if (fd < 0) {
        int mine = open("/proc/loadavg", O_RDONLY | O_CLOEXEC), none = -1;
        if (mine < 0) return 1;
        if (atomic_compare_exchange_strong(&shared_fd, &none, mine))
            fd = mine;
        else { /* another thread was first */
            close(mine);
            fd = none;
        }
    }
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0 || buf[n - 1] != '\n') {
        /* not /proc/loadavg any more (the program closed every descriptor
         * and the number went to another file): forget it, open afresh */
        int was = fd;
        atomic_compare_exchange_strong(&shared_fd, &was, -1);
        return 1;
    }
    buf[n] = '\0';
    return fam_crowd_parse(buf, ncpu);
}

/* Whether to yield between polls now; now_us is CLOCK_MONOTONIC in us. */
static inline int fam_crowded(struct fam_crowd *c, uint64_t now_us)
{
    if (!c->checked_us || now_us - c->checked_us >= 1000) {
        c->crowded = fam_crowd_read();
        c->checked_us = now_us;
    }
    return c->crowded;
}

#endif /* FAM_CROWD_H */

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
 * online cores. Unreadable: 1. */
static inline int fam_crowd_read(void)
{
    static long ncpu;
    if (ncpu <= 0) ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 1;
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

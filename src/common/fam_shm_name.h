/* SPDX-License-Identifier: Apache-2.0 */
/* fam_shm_name.h — names for shm endpoints, shared by libfam and famd.
 *
 * libfabric's shm provider keeps each endpoint's region in a file under
 * /dev/shm named after the process id by default. A process killed with
 * SIGKILL leaves its file behind (16 MiB each), and a later process that
 * gets the same pid cannot create its endpoint ("Device or resource
 * busy"). So Kodiak names its shm endpoints "kodiak-<pid>-<random>" (set
 * with fi_setname before fi_enable), and removes the files of dead Kodiak
 * processes when it opens an endpoint. */
#ifndef FAM_SHM_NAME_H
#define FAM_SHM_NAME_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* A fresh endpoint name for this process. */
static inline void fam_shm_name(char *out, size_t n)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint64_t)(uintptr_t)out;
    snprintf(out, n, "kodiak-%d-%016llx", (int)getpid(), (unsigned long long)r);
}

/* Whether process pid has ended: no such process, or a zombie (killed,
 * not yet reaped by its parent: its endpoint is closed for good). */
static inline int fam_pid_gone(int pid)
{
    if (kill(pid, 0) != 0) return errno == ESRCH;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the state follows the command name */
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* Remove /dev/shm/kodiak-<pid>-<16 hex> of processes that no longer
 * exist (or are zombies): regular files of our own effective uid only (root sweeping
 * another user's files is not ours to judge), and never one of a live
 * process (kill(pid, 0) succeeds, or is refused: someone else's). Returns
 * how many were removed. */
static inline int fam_shm_clean(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int pid, at = 0;
        if (sscanf(e->d_name, "kodiak-%d-%n", &pid, &at) != 1 || pid <= 0 || at == 0)
            continue;
        const char *hex = e->d_name + at;
        size_t nh = strspn(hex, "0123456789abcdef");
        if (nh != 16 || hex[nh] != '\0') continue; /* not a name fam_shm_name made */
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        if (!fam_pid_gone(pid)) continue; /* alive, or not ours to judge */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) removed++;
    }
    closedir(d);
    return removed;
}

#endif /* FAM_SHM_NAME_H */

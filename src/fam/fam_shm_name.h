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

/* Remove /dev/shm/kodiak-<pid>-* of processes that no longer exist. */
static inline void fam_shm_clean(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        int pid;
        if (sscanf(e->d_name, "kodiak-%d-", &pid) != 1 || pid <= 0) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char path[300];
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
    }
    closedir(d);
}

#endif /* FAM_SHM_NAME_H */

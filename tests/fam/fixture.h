/* SPDX-License-Identifier: Apache-2.0 */
/* fixture.h — start and stop real famd processes for the C tests.
 *
 * Tests run against the famd built next to them (FAMD_BIN), on a free
 * loopback port, with the provider named by $FAM_TEST_PROVIDER (shm when
 * unset). A famd started here dies with the test process (PR_SET_PDEATHSIG),
 * so a crashed test never leaves one behind. With KDK_NETNS_HOSTS set (a
 * test run by tests/netns/netns.py), famd runs on the other namespace
 * hosts instead, and clients reach it over the bridge (see fixture.c).
 * With FAM_TEST_AUTH=munge famd runs with --auth munge (and
 * --munge-socket $FAM_MUNGE_SOCKET; tests/netns/with_munged.py). */
#ifndef TEST_FIXTURE_H
#define TEST_FIXTURE_H

#include <stdint.h>
#include <sys/types.h>

#include "fam/fam.h"

struct famd_proc {
    pid_t pid;
    int port;
    char addr[96];       /* "127.0.0.1:port" */
    char provider[16];
    char pool_file[256]; /* "" for a volatile pool */
    char data_dir[256];
    char ns[64];         /* many-hosts mode: its network namespace, or "" */
    char host[32];       /* many-hosts mode: the address it serves on */
};

const char *test_provider(void);
/* Start famd; pool_file may be NULL (volatile). Returns 0 or -1. */
int famd_start(struct famd_proc *p, uint64_t pool_size, const char *pool_file);
/* Start again on the same port and pool file (after a stop or kill). */
int famd_restart(struct famd_proc *p, uint64_t pool_size);
/* Start with a --data-dir for backups (and optionally a pool file). */
int famd_start_dir(struct famd_proc *p, uint64_t pool_size, const char *pool_file,
                   const char *data_dir);
/* Start famd with the given provider ("shm", "tcp") and pool file (NULL:
 * volatile), in network namespace
 * ns ("" or NULL: this one) serving on address host (NULL: famd's
 * default, 127.0.0.1), whatever the test provider and KDK_NETNS_HOSTS
 * say: tests that place each famd themselves. Returns 0 or -1. */
int famd_start_at(struct famd_proc *p, uint64_t pool_size, const char *pool_file,
                  const char *ns, const char *host, const char *provider);
void famd_stop(struct famd_proc *p);  /* SIGTERM, then wait */
/* utime + stime of process pid (all its threads), in seconds; fails the
 * test when /proc cannot tell. */
double proc_cpu_s(pid_t pid);
/* The state letter of pid's main thread in /proc/PID/stat: 'R' running
 * or waiting for a core, 'S' asleep... ('?' when it cannot be read). */
char proc_state(pid_t pid);
void famd_kill9(struct famd_proc *p); /* SIGKILL, then wait */
/* Connect a client to the given servers ("a,b"), with the test provider. */
fam_t *client(const char *servers);
/* A fabric address famd accepts in a raw HELLO, for tests that speak the
 * protocol themselves (famd sends to it only for bulk requests): for tcp
 * a loopback sockaddr_in with a port picked from n; for shm the name of
 * an existing Kodiak endpoint of this test (famd takes no other), so call
 * it once after client() made one, before any fork. Returns the length. */
uint32_t test_fabric_addr(uint8_t *addr, size_t max, unsigned n);
/* Create region `name` (mode 0600) of `size` bytes, interleaved over all
 * of f's servers in 4 KiB stripes, into *r. Returns 0 or a negative code. */
int test_striped_region(fam_t *f, const char *name, uint64_t size, fam_region_t **r);
/* The teardown of a test with one client: destroy r (when not NULL),
 * finalize f, then stop the n famds srv[0..n-1]. */
void test_teardown(fam_t *f, fam_region_t *r, struct famd_proc *srv, int n);
/* A fresh temporary directory for this test, removed at exit. */
const char *test_tmpdir(void);

#define CHECK_OK(call)                                                    \
    do {                                                                  \
        int rc_ = (call);                                                 \
        if (rc_ < 0) fail_msg("%s -> %d: %s", #call, rc_, fam_last_error()); \
    } while (0)

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* fixture.c — see fixture.h. */
#define _GNU_SOURCE
#include "fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static char tmpdir[256];

/* FAM_TEST_SKIP=PATTERN (cmocka's * and ?): the tests whose names match are
 * not run (cmocka's count then leaves them out: "13 test(s) run" of 14;
 * the pattern is in the ctest's ENVIRONMENT for all to see). The
 * many-hosts runs (tests/CMakeLists.txt) use
 * it for the tests that need a remote client's uid, which famd learns only
 * with --auth munge: without it a remote client is nobody. */
__attribute__((constructor)) static void skip_filter(void)
{
    const char *p = getenv("FAM_TEST_SKIP");
    if (p && *p) cmocka_set_skip_filter(p);
}

static void rm_tmpdir(void)
{
    if (!tmpdir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/famtest.XXXXXX");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(1); }
        atexit(rm_tmpdir);
    }
    return tmpdir;
}

const char *test_provider(void)
{
    const char *p = getenv("FAM_TEST_PROVIDER");
    return p && *p ? p : "shm";
}

/* Many-hosts mode (tests/netns/netns.py sets KDK_NETNS_HOSTS to
 * "ns0=addr0,ns1=addr1,..." and runs the test on host 0): famd runs on
 * hosts 1, 2, ... in turn (host 0 too when it is the only one), started
 * with `ip netns exec NS famd --host ADDR`, so every client reaches it
 * over the bridge as a remote memory server. Picks p->ns and p->host for
 * a new famd; 0 in the ordinary one-host mode. */
static int pick_host(struct famd_proc *p)
{
    static int next;
    const char *env = getenv("KDK_NETNS_HOSTS");
    p->ns[0] = p->host[0] = '\0';
    if (!env || !*env) return 0;
    char list[1024];
    snprintf(list, sizeof list, "%s", env);
    char *items[32], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(list, ",", &save); t && n < 32;
         t = strtok_r(NULL, ",", &save))
        items[n++] = t;
    if (n == 0) return 0;
    int i = n == 1 ? 0 : 1 + next++ % (n - 1);
    char *eq = strchr(items[i], '=');
    if (!eq) return -1;
    *eq = '\0';
    snprintf(p->ns, sizeof p->ns, "%s", items[i]);
    snprintf(p->host, sizeof p->host, "%s", eq + 1);
    return 0;
}

static int spawn(struct famd_proc *p, uint64_t pool_size)
{
    int fds[2];
    if (pipe(fds)) return -1;
    char size[32], port[16];
    snprintf(size, sizeof size, "%llu", (unsigned long long)pool_size);
    snprintf(port, sizeof port, "%d", p->port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* sanitizer builds: famd is checked for leaks even where the test
         * program itself is not (see tests/CMakeLists.txt) */
        setenv("ASAN_OPTIONS", "detect_leaks=1", 1);
        dup2(fds[1], 1);
        close(fds[0]);
        const char *argv[32];
        int n = 0;
        if (p->ns[0]) { /* ip execs famd: its pid stays the one we wait for */
            argv[n++] = "/usr/sbin/ip"; argv[n++] = "netns";
            argv[n++] = "exec"; argv[n++] = p->ns;
        }
        argv[n++] = FAMD_BIN;
        if (p->host[0]) { argv[n++] = "--host"; argv[n++] = p->host; }
        argv[n++] = "--port"; argv[n++] = port;
        argv[n++] = "--pool-size"; argv[n++] = size;
        argv[n++] = "--provider"; argv[n++] = p->provider;
        if (p->pool_file[0]) { argv[n++] = "--pool-file"; argv[n++] = p->pool_file; }
        if (p->data_dir[0]) { argv[n++] = "--data-dir"; argv[n++] = p->data_dir; }
        if (getenv("FAMD_TEST_VERBOSE")) argv[n++] = "--verbose"; /* debugging */
        const char *spin = getenv("FAMD_TEST_SPIN_US"); /* test_rest */
        if (spin && *spin) { argv[n++] = "--spin-us"; argv[n++] = spin; }
        /* FAM_TEST_AUTH=munge (the many-hosts runs under
         * tests/netns/with_munged.py): remote clients are who their MUNGE
         * credential says, made by the munged at $FAM_MUNGE_SOCKET */
        const char *auth = getenv("FAM_TEST_AUTH"), *msock = getenv("FAM_MUNGE_SOCKET");
        if (auth && *auth) { argv[n++] = "--auth"; argv[n++] = auth; }
        if (auth && *auth && msock && *msock) {
            argv[n++] = "--munge-socket"; argv[n++] = msock;
        }
        argv[n] = NULL;
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char host[64];
    int bound;
    if (!ok || sscanf(line, "famd ready %63[^:]:%d", host, &bound) != 2) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    p->pid = pid;
    p->port = bound;
    snprintf(p->addr, sizeof p->addr, "%s:%d", host, bound);
    return 0;
}

int famd_start(struct famd_proc *p, uint64_t pool_size, const char *pool_file)
{
    memset(p, 0, sizeof *p);
    snprintf(p->provider, sizeof p->provider, "%s", test_provider());
    if (pool_file) snprintf(p->pool_file, sizeof p->pool_file, "%s", pool_file);
    p->port = 0;
    if (pick_host(p)) return -1;
    return spawn(p, pool_size);
}

int famd_start_dir(struct famd_proc *p, uint64_t pool_size, const char *pool_file,
                   const char *data_dir)
{
    memset(p, 0, sizeof *p);
    snprintf(p->provider, sizeof p->provider, "%s", test_provider());
    if (pool_file) snprintf(p->pool_file, sizeof p->pool_file, "%s", pool_file);
    if (data_dir) snprintf(p->data_dir, sizeof p->data_dir, "%s", data_dir);
    p->port = 0;
    if (pick_host(p)) return -1;
    return spawn(p, pool_size);
}

int famd_start_at(struct famd_proc *p, uint64_t pool_size, const char *pool_file,
                  const char *ns, const char *host, const char *provider)
{
    memset(p, 0, sizeof *p);
    if (pool_file) snprintf(p->pool_file, sizeof p->pool_file, "%s", pool_file);
    snprintf(p->provider, sizeof p->provider, "%s", provider);
    snprintf(p->ns, sizeof p->ns, "%s", ns ? ns : "");
    snprintf(p->host, sizeof p->host, "%s", host ? host : "");
    return spawn(p, pool_size);
}

int famd_restart(struct famd_proc *p, uint64_t pool_size)
{
    /* the old port may linger in TIME_WAIT for a moment: retry briefly */
    for (int i = 0; i < 50; i++) {
        if (spawn(p, pool_size) == 0) return 0;
        usleep(100000);
    }
    return -1;
}

static void reap(struct famd_proc *p, int sig)
{
    if (p->pid <= 0) return;
    kill(p->pid, sig);
    for (int i = 0; i < 100; i++) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            /* a famd asked to stop must exit cleanly: under the sanitizers
             * a leak or memory error shows here as a non-zero status */
            if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
                fprintf(stderr, "famd did not exit cleanly on SIGTERM "
                        "(status 0x%x)\n", st);
                exit(1);
            }
            return;
        }
        usleep(20000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

void famd_stop(struct famd_proc *p) { reap(p, SIGTERM); }
void famd_kill9(struct famd_proc *p) { reap(p, SIGKILL); }

fam_t *client(const char *servers)
{
    fam_options_t o = {.servers = servers, .provider = test_provider(),
                       .timeout_ms = 5000};
    fam_t *f = NULL;
    if (fam_initialize(&o, &f) != 0) {
        fprintf(stderr, "fam_initialize(%s): %s\n", servers, fam_last_error());
        return NULL;
    }
    return f;
}

uint32_t test_fabric_addr(uint8_t *addr, size_t max, unsigned n)
{
    if (strcmp(test_provider(), "tcp") == 0) {
        struct sockaddr_in me = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)(20000 + n % 20000))};
        me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (max < sizeof me) return 0;
        memcpy(addr, &me, sizeof me);
        return sizeof me;
    }
    static char name[256]; /* /dev/shm/kodiak-<our pid>-<hex> (fam_shm_name.h) */
    if (!name[0]) {
        char prefix[64];
        int pl = snprintf(prefix, sizeof prefix, "kodiak-%d-", (int)getpid());
        DIR *dir = opendir("/dev/shm");
        for (struct dirent *e; dir && (e = readdir(dir));)
            if (!strncmp(e->d_name, prefix, (size_t)pl))
                snprintf(name, sizeof name, "%s", e->d_name);
        if (dir) closedir(dir);
        if (!name[0]) {
            fprintf(stderr, "test_fabric_addr: this test has no shm endpoint\n");
            exit(1);
        }
    }
    return (uint32_t)snprintf((char *)addr, max, "%s", name) + 1;
}

int test_striped_region(fam_t *f, const char *name, uint64_t size, fam_region_t **r)
{
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 4096};
    return fam_create_region(f, name, size, 0600, &a, r);
}

void test_teardown(fam_t *f, fam_region_t *r, struct famd_proc *srv, int n)
{
    if (r) fam_destroy_region(f, r);
    fam_finalize(f);
    for (int i = 0; i < n; i++) famd_stop(&srv[i]);
}

char proc_state(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp) return '?';
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    char *p = strrchr(text, ')'); /* the name may hold spaces */
    return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

double proc_cpu_s(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open %s", path);
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    char *p = strrchr(text, ')'); /* the name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu", &ut, &st) != 2)
        fail_msg("cannot parse %s", path);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_limits.c — no client can make famd hold more than its limits, and
 * no user can lock the others out (docs/SECURITY.md, "Limits").
 *
 * - A client that pipelines requests and never reads the replies: famd
 *   stops reading from it, its memory stays bounded (it grew by 1.1 GB),
 *   and other clients are served meanwhile.
 * - 1100 idle connections from one uid on the Unix socket, or over TCP:
 *   root still connects and is served at once (1024 such connections used
 *   to fill famd's table for everyone), and the connections over the
 *   per-user limit are told why they are refused.
 * - A connection that says no HELLO is closed at the deadline, with a
 *   message; one that said HELLO stays.
 * - famd out of file descriptors (started under a low RLIMIT_NOFILE, then
 *   flooded): it does not spin on accept() (it used 80% of a core), a new
 *   client is told why it is refused, and famd serves again once the
 *   connections close.
 * - famd does not start when its local socket name is taken.
 * famd is started here with the options under test (FAMD_BIN). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "../../src/common/fam_proto.h" /* the wire format, the Unix name */

#define NOBODY 65534u

/* ---- a famd with options -------------------------------------------------- */

struct famd_run {
    pid_t pid;
    int port;
    char addr[96];
    char line[512]; /* its first line: "famd ready ..." or why it failed */
};

/* Start famd with extra options (NULL-terminated) on port (0: free one),
 * with RLIMIT_NOFILE = nofile when nofile > 0. 0 when it is ready. */
static int run_famd(struct famd_run *r, int port, int nofile, ...)
{
    memset(r, 0, sizeof *r);
    int fds[2];
    if (pipe(fds)) return -1;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *argv[32];
    int n = 0;
    argv[n++] = FAMD_BIN;
    argv[n++] = "--port"; argv[n++] = ps;
    argv[n++] = "--pool-size"; argv[n++] = "64M";
    argv[n++] = "--provider"; argv[n++] = test_provider();
    va_list ap;
    va_start(ap, nofile);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (nofile > 0) {
            struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl)) _exit(126);
        }
        dup2(fds[1], 1);
        dup2(fds[1], 2); /* a failure to start is read as the first line */
        close(fds[0]);
        execv(FAMD_BIN, (char **)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    int ok = fgets(r->line, sizeof r->line, f) != NULL;
    fclose(f);
    char host[64];
    if (!ok || sscanf(r->line, "famd ready %63[^:]:%d", host, &r->port) != 2) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    r->pid = pid;
    snprintf(r->addr, sizeof r->addr, "%s:%d", host, r->port);
    return 0;
}

static void stop_famd(struct famd_run *r)
{
    if (r->pid <= 0) return;
    kill(r->pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            return;
        }
        usleep(20000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    fail_msg("famd did not stop on SIGTERM");
}

/* ---- raw connections ------------------------------------------------------- */

static int unix_open(int port)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un a;
    socklen_t al = famp_unix_addr(&a, port);
    if (connect(fd, (struct sockaddr *)&a, al) != 0) { close(fd); return -1; }
    return fd;
}

/* A TCP connection that is not waited for: a flood beyond famd's backlog
 * would otherwise sit in connect() for minutes of SYN retries. */
static int tcp_start(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void put_req(uint8_t *buf, size_t *n, uint16_t op, uint32_t seq,
                    const struct famp_req *q)
{
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, op, seq, 0, sizeof *q};
    memcpy(buf + *n, &h, sizeof h);
    memcpy(buf + *n + sizeof h, q, sizeof *q);
    *n += sizeof h + sizeof *q;
}

static void hello_req(struct famp_req *q)
{
    memset(q, 0, sizeof *q);
    snprintf(q->provider, sizeof q->provider, "%s", test_provider());
    q->addrlen = test_fabric_addr(q->addr, sizeof q->addr, 9);
}

/* Read one message (header and body, body NUL-terminated into msg) within
 * ms; 0, or -1 on timeout or a closed connection. */
static int read_msg(int fd, struct famp_hdr *h, char *msg, size_t cap, int ms)
{
    uint8_t buf[sizeof *h + FAMP_MAX_ERRMSG + 1024];
    size_t have = 0;
    for (;;) {
        if (have >= sizeof *h) {
            memcpy(h, buf, sizeof *h);
            if (h->len > sizeof buf - sizeof *h) return -1;
            if (have >= sizeof *h + h->len) break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) != 1) return -1;
        ssize_t k = recv(fd, buf + have, sizeof buf - have, 0);
        if (k <= 0) return -1;
        have += (size_t)k;
    }
    size_t n = h->len < cap - 1 ? h->len : cap - 1;
    memcpy(msg, buf + sizeof *h, n);
    msg[n] = '\0';
    return 0;
}

/* HELLO on fd; the reply's status (1: no reply). */
static int say_hello(int fd)
{
    struct famp_req q;
    uint8_t buf[sizeof(struct famp_hdr) + sizeof q];
    size_t n = 0;
    hello_req(&q);
    put_req(buf, &n, FAMP_HELLO, 1, &q);
    if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) return 1;
    struct famp_hdr h;
    char msg[FAMP_MAX_ERRMSG + 1];
    if (read_msg(fd, &h, msg, sizeof msg, 5000)) return 1;
    return h.status;
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* A client for famd r, and a region lookup through it: it is served.
 * Fails the test unless that takes under ms. */
static void assert_served_within(const struct famd_run *r, int ms)
{
    uint64_t t0 = now_ms();
    fam_t *g = client(r->addr);
    if (!g) fail_msg("a new client was refused: %s", fam_last_error());
    fam_region_t *rg;
    int rc = fam_lookup_region(g, "limits", &rg);
    if (rc == 0) fam_release_region(rg);
    else assert_int_equal(rc, FAM_ENOTFOUND); /* an answer all the same */
    fam_finalize(g);
    uint64_t took = now_ms() - t0;
    if (took > (uint64_t)ms)
        fail_msg("a new client took %llu ms to be served (limit %d)",
                 (unsigned long long)took, ms);
}

static long vm_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* utime + stime of pid, in seconds. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    assert_non_null(p);
    unsigned long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    assert_int_equal(sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u "
                            "%*u %*u %lu %lu", &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Wait until each of the n nonblocking connects in fds has finished (made
 * or failed), within ms in all. */
static void wait_connected(const int *fds, int n, int ms)
{
    uint64_t t0 = now_ms();
    for (int i = 0; i < n; i++) {
        assert_true(fds[i] >= 0);
        for (;;) {
            struct pollfd p = {fds[i], POLLOUT, 0};
            if (poll(&p, 1, 100) == 1) break;
            if (now_ms() - t0 > (uint64_t)ms)
                fail_msg("%d of %d connections to famd not made in %d ms",
                         n - i, n, ms);
        }
    }
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < want) rl.rlim_max = want; /* root may */
    if (rl.rlim_cur < want) rl.rlim_cur = want;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* ---- tests ----------------------------------------------------------------- */

static void unread_replies_do_not_grow_famd_and_others_are_served(void **state)
{
    (void)state;
    struct famd_run r;
    if (run_famd(&r, 0, 0, (char *)NULL)) fail_msg("famd: %s", r.line);
    fam_t *g = client(r.addr);
    assert_non_null(g);
    fam_region_t *rg;
    CHECK_OK(fam_create_region(g, "limits", 1 << 20, 0644, NULL, &rg));
    fam_stat_t st;
    CHECK_OK(fam_stat_region(g, rg, &st));
    fam_release_region(rg);
    fam_finalize(g);

    /* over TCP, as nobody: anyone can do this. A small receive buffer:
     * replies famd sends cannot hide in the kernel, only in famd */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(say_hello(fd), 0);
    long rss0 = vm_rss_kb(r.pid);
    /* REGION_STAT of a region anyone may read: each reply is a famp_info */
    enum { BATCH = 64 };
    static uint8_t buf[BATCH * (sizeof(struct famp_hdr) + sizeof(struct famp_req))];
    size_t n = 0;
    struct famp_req q = {0};
    q.id = st.region_id;
    for (int i = 0; i < BATCH; i++) put_req(buf, &n, FAMP_REGION_STAT, 2 + i, &q);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    /* send up to 128 MiB (~90 MiB of replies), until famd stops taking
     * them for 300 ms */
    uint64_t sent = 0, stuck_since = 0;
    size_t off = 0;
    while (sent < (128u << 20)) {
        ssize_t k = send(fd, buf + off, n - off, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (uint64_t)k;
            off = (off + (size_t)k) % n;
            stuck_since = 0;
            continue;
        }
        assert_true(k < 0 && errno == EAGAIN);
        if (!stuck_since) stuck_since = now_ms();
        if (now_ms() - stuck_since > 300) break;
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 50);
    }
    /* meanwhile the others are served */
    assert_served_within(&r, 3000);
    long rss1 = vm_rss_kb(r.pid);
    fprintf(stderr, "pipelined %llu KiB of requests; famd VmRSS %ld -> %ld "
            "KiB\n", (unsigned long long)(sent >> 10), rss0, rss1);
    assert_true(rss0 > 0 && rss1 > 0);
    /* 64 KiB of input and ~64 KiB of replies are the limits; allow for
     * allocator slack and what serving the other client touched */
    assert_true(rss1 - rss0 < 8 * 1024);
    close(fd);
    assert_served_within(&r, 3000);
    stop_famd(&r);
}

/* In a child as uid 65534: open `n` idle Unix connections, report on the
 * pipe how many were accepted and whether one over the limit was told so,
 * then hold them until the pipe from the parent closes. */
static void hold_as_nobody(int port, int n, int up, int down)
{
    if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
        setresuid(NOBODY, NOBODY, NOBODY))
        _exit(2);
    static int fds[2000];
    int told = 0;
    for (int i = 0; i < n; i++) fds[i] = unix_open(port);
    /* the last one is over the limit: famd says so and closes it */
    struct famp_hdr h;
    char msg[FAMP_MAX_ERRMSG + 1];
    if (fds[n - 1] >= 0 && read_msg(fds[n - 1], &h, msg, sizeof msg, 3000) == 0 &&
        h.seq == 0 && h.status == FAM_EBUSY && strstr(msg, "per user"))
        told = 1;
    if (write(up, &told, sizeof told) != sizeof told) _exit(3);
    char c;
    while (read(down, &c, 1) > 0) {}
    _exit(0);
}

static void idle_connections_of_one_user_leave_room_for_others(void **state)
{
    (void)state;
    enum { N = 1100 };
    raise_nofile(N + 200);
    struct famd_run r;
    if (run_famd(&r, 0, 0, (char *)NULL)) fail_msg("famd: %s", r.line);

    /* over TCP (all of them nobody, from this host) */
    static int fds[N];
    for (int i = 0; i < N - 1; i++) fds[i] = tcp_start(r.port);
    /* The flood overruns famd's listen backlog: the kernel drops SYNs and
     * the clients send them again after 1, 3, 7 s. Only once all are in is
     * the last one sure to reach famd at once. */
    wait_connected(fds, N - 1, 30000);
    assert_served_within(&r, 1000);
    fds[N - 1] = tcp_start(r.port);
    struct famp_hdr h; /* the last is over the limit, and told so */
    char msg[FAMP_MAX_ERRMSG + 1];
    assert_true(fds[N - 1] >= 0);
    fcntl(fds[N - 1], F_SETFL, 0);
    assert_int_equal(read_msg(fds[N - 1], &h, msg, sizeof msg, 5000), 0);
    assert_int_equal(h.status, FAM_EBUSY);
    assert_non_null(strstr(msg, "this host over TCP"));
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);

    /* uid 65534 on the Unix socket */
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        hold_as_nobody(r.port, N, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    int told = 0;
    struct pollfd p = {up[0], POLLIN, 0};
    assert_int_equal(poll(&p, 1, 30000), 1);
    assert_int_equal(read(up[0], &told, sizeof told), sizeof told);
    assert_int_equal(told, 1); /* "too many connections ... per user" */
    assert_served_within(&r, 1000);
    close(down[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(up[0]);
    stop_famd(&r);
}

static void a_connection_without_hello_is_closed_at_the_deadline(void **state)
{
    (void)state;
    struct famd_run r;
    if (run_famd(&r, 0, 0, "--hello-timeout", "1", (char *)NULL))
        fail_msg("famd: %s", r.line);
    int silent = unix_open(r.port), talker = unix_open(r.port);
    assert_true(silent >= 0 && talker >= 0);
    assert_int_equal(say_hello(talker), 0);
    uint64_t t0 = now_ms();
    struct famp_hdr h;
    char msg[FAMP_MAX_ERRMSG + 1];
    assert_int_equal(read_msg(silent, &h, msg, sizeof msg, 5000), 0);
    uint64_t took = now_ms() - t0;
    assert_int_equal(h.seq, 0);
    assert_int_equal(h.status, FAM_ETIMEOUT);
    assert_non_null(strstr(msg, "no HELLO within 1 s"));
    assert_true(took >= 500 && took < 4000);
    char c;
    assert_int_equal(recv(silent, &c, 1, 0), 0); /* then closed */
    close(silent);
    /* the one that said HELLO is still served, well past the deadline */
    struct famp_req q = {0};
    uint8_t buf[sizeof h + sizeof q];
    size_t n = 0;
    snprintf(q.name, sizeof q.name, "nothing-here");
    put_req(buf, &n, FAMP_REGION_LOOKUP, 2, &q);
    assert_int_equal(send(talker, buf, n, MSG_NOSIGNAL), (ssize_t)n);
    assert_int_equal(read_msg(talker, &h, msg, sizeof msg, 5000), 0);
    assert_int_equal(h.seq, 2);
    assert_int_equal(h.status, FAM_ENOTFOUND);
    close(talker);
    stop_famd(&r);
}

static void out_of_descriptors_famd_stays_idle_and_recovers(void **state)
{
    (void)state;
    enum { NOFILE = 128, N = 400 };
    raise_nofile(N + 200);
    struct famd_run r;
    if (run_famd(&r, 0, NOFILE, (char *)NULL)) fail_msg("famd: %s", r.line);
    /* more connections than famd has descriptors, held open */
    static int fds[N];
    for (int i = 0; i < N; i++) fds[i] = tcp_start(r.port);
    /* a new client is told why, at once (and famd has seen the flood) */
    uint64_t t1 = now_ms();
    fam_t *g = client(r.addr);
    assert_null(g);
    if (!strstr(fam_last_error(), "Too many open files"))
        fail_msg("refused with '%s'", fam_last_error());
    assert_true(now_ms() - t1 < 3000);
    /* and it does not spin while the connections wait */
    double c0 = cpu_seconds(r.pid);
    uint64_t t0 = now_ms();
    usleep(2000000); /* the time CPU use is measured over */
    double used = (cpu_seconds(r.pid) - c0) / ((double)(now_ms() - t0) / 1000.0);
    fprintf(stderr, "famd out of descriptors: %.1f%% of a core\n", used * 100);
    assert_true(used < 0.15);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    /* famd notices the closes; then it serves again */
    for (int i = 0; i < 50 && !(g = client(r.addr)); i++) usleep(100000);
    assert_non_null(g);
    fam_finalize(g);
    assert_served_within(&r, 3000);
    stop_famd(&r);
}

static void famd_does_not_start_when_its_local_name_is_taken(void **state)
{
    (void)state;
    /* a free TCP port, and its Unix name held by us */
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(t, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(t, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    close(t);
    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un ua;
    socklen_t ul = famp_unix_addr(&ua, port);
    assert_int_equal(bind(u, (struct sockaddr *)&ua, ul), 0);
    assert_int_equal(listen(u, 4), 0);
    struct famd_run r;
    assert_int_equal(run_famd(&r, port, 0, (char *)NULL), -1);
    char want[64];
    snprintf(want, sizeof want, "kodiak-famd/port:%d", port);
    if (!strstr(r.line, want) || !strstr(r.line, "another famd"))
        fail_msg("famd said '%s'", r.line);
    close(u);
}

int main(void)
{
    if (getuid() != 0) {
        fprintf(stderr, "test_limits must run as root\n");
        return 1;
    }
    unsetenv("FAM_CONTROL");
    signal(SIGPIPE, SIG_IGN);
    /* raw HELLOs over shm need the name of an endpoint that exists
     * (fixture.h): one client kept for the whole run makes one */
    static struct famd_proc anchor_famd;
    fam_t *anchor = NULL;
    if (strcmp(test_provider(), "shm") == 0) {
        uint8_t a[FAMP_ADDR_MAX];
        if (famd_start(&anchor_famd, 16 << 20, NULL) ||
            !(anchor = client(anchor_famd.addr)))
            return 1;
        test_fabric_addr(a, sizeof a, 0);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unread_replies_do_not_grow_famd_and_others_are_served),
        cmocka_unit_test(idle_connections_of_one_user_leave_room_for_others),
        cmocka_unit_test(a_connection_without_hello_is_closed_at_the_deadline),
        cmocka_unit_test(out_of_descriptors_famd_stays_idle_and_recovers),
        cmocka_unit_test(famd_does_not_start_when_its_local_name_is_taken),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (anchor) {
        fam_finalize(anchor);
        famd_stop(&anchor_famd);
    }
    return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* fam_bench.c — libfam's data path beside a bare libfabric program.
 *
 * What it measures, for each provider (shm, and tcp = tcp;ofi_rxm):
 *   - put and get bandwidth, 8 B .. 4 MiB, blocking (fam_put_blocking /
 *     fam_get_blocking, one operation at a time) and non-blocking (a window
 *     of --window fam_*_nonblocking calls, then fam_quiet);
 *   - latency of an 8-byte blocking get and of an int64 fetch_add (median
 *     of --iters single operations, each timed on its own);
 *   - blocking put and get of 64 MiB interleaved over two famds, beside
 *     the same stripe-sized pieces sent by bare libfabric to two bare
 *     targets (--no-striped leaves these rows out);
 *   - famd's CPU use while idle: utime+stime from /proc/PID/stat over
 *     --idle-sec seconds after the last client operation, as % of one core.
 *
 * How: for each provider the bench starts a famd (--port 0, volatile pool)
 * and, from its own binary, a bare libfabric target (`fam_bench
 * --bare-server`) that maps an anonymous buffer of the largest size the way
 * famd maps its pool, registers it with famd's endpoint attributes and
 * prints its fabric address, key and base address on a pipe. The bench
 * opens a bare initiator endpoint with libfam's attributes (same caps,
 * mr_mode, FI_CONTEXT, FI_THREAD_DOMAIN, FI_DELIVERY_COMPLETE when the
 * provider grants it, a context CQ read by spinning) and runs every
 * operation through libfam and through fi_write / fi_read /
 * fi_fetch_atomic(FI_SUM, FI_INT64), in alternating trials, and prints both
 * with the ratio kodiak/bare (bandwidth: >1 is better; latency: time, >1 is
 * worse). Every cell is the median of --trials trials.
 *
 * Fairness on a small machine: the software providers move bytes only while
 * the target drives progress. famd polls its queue for --spin-us (2 ms)
 * after a client's WAKE and sleeps otherwise; the bare target spins only
 * while told to ('g' on its stdin, acknowledged) and blocks in read()
 * otherwise. The bench lets famd fall asleep before each bare trial, so
 * neither target steals a core from the other's trials. Both use the same
 * local buffer and the same remote offsets (0). On a 2-core machine any
 * other busy process distorts the figures badly (a target that is not
 * scheduled answers in milliseconds), so each provider's block ends with
 * the share of CPU time other processes took meanwhile, from /proc/stat.
 *
 *   fam_bench [--providers shm,tcp] [--sizes 8,64,4K,64K,1M,4M]
 *             [--max-size 4M] [--time-ms 1000] [--iters 20000] [--window 32]
 *             [--trials 5] [--idle-sec 3] [--famd PATH] [--quick]
 *             [--bulk-only | --no-bulk] [--no-striped] [--bulk-bytes 1G]
 *             [--bulk-n 10M]
 * and then the bulk table of fam_bench_bulk.c (gather/scatter, GUPS, copy). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fam_bench_bulk.h"

#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "fam/fam.h"

#ifndef FAMD_BIN
#define FAMD_BIN "famd"
#endif

#define MAX_SIZES 32
#define MAX_TRIALS 15
#define MAX_WINDOW 256
#define BW_TARGET 0.80  /* kodiak/bare bandwidth at 1 MiB, at least */
#define LAT_TARGET 1.50 /* kodiak/bare time of an 8-byte get, at most */

/* What the command line asked for. */
static struct {
    char providers[8][8]; /* "shm", "tcp" */
    int nproviders;
    uint64_t sizes[MAX_SIZES]; /* transfer sizes, bytes, ascending */
    int nsizes;
    uint64_t max_size;    /* sizes above this are skipped */
    int time_ms;          /* per bandwidth cell and side, over all trials */
    int iters;            /* latency samples per side, over all trials */
    int window;           /* non-blocking operations in flight */
    int trials;           /* alternating kodiak/bare trials per cell */
    double idle_s;        /* how long famd sits idle for the CPU reading */
    const char *famd;     /* famd binary */
    int striped;          /* also the rows striped over two famds */
} opt;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fam_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

#define FAM_CHECK(call)                                                     \
    do {                                                                    \
        int rc_ = (call);                                                   \
        if (rc_ < 0) die("%s: %s (%s)", #call, fam_last_error(),            \
                         fam_strerror(rc_));                                \
    } while (0)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *prov_name(const char *provider)
{
    return strcmp(provider, "tcp") == 0 ? "tcp;ofi_rxm" : provider;
}

/* ---- the bare libfabric side ------------------------------------------ */

/* One bare endpoint: the target (in the --bare-server process) or the
 * initiator (in the bench). */
struct bare {
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    struct fid_mr *mr;      /* target: the registration of buf */
    fi_addr_t peer;         /* initiator: the target's address */
    uint64_t key, base;     /* initiator: the target's key, address of byte 0 */
    size_t max_msg;         /* largest single transfer, as libfam caps it */
    int64_t pending;        /* initiator: operations posted, not completed */
    struct fi_context ctx[MAX_WINDOW]; /* one per operation in flight */
};

/* Open an endpoint with the attributes famd (target) or libfam (initiator)
 * use; see famd_fabric_open and fam_fabric_open. */
static void bare_open(struct bare *b, const char *provider, int target)
{
    memset(b, 0, sizeof *b);
    struct fi_info *hints = fi_allocinfo();
    if (!hints) die("out of memory");
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_RMA | FI_ATOMIC | FI_MSG | FI_TAGGED | FI_READ | FI_WRITE |
                  FI_SEND | FI_RECV |
                  (target ? FI_REMOTE_READ | FI_REMOTE_WRITE : 0);
    hints->mode = FI_CONTEXT;
    hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
                                  FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    hints->domain_attr->threading = FI_THREAD_DOMAIN;
    if (!target) hints->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
    hints->fabric_attr->prov_name = strdup(prov_name(provider));
    const char *node = strcmp(provider, "shm") == 0 ? NULL : "127.0.0.1";
    int rc = fi_getinfo(FI_VERSION(1, 17), node, NULL, node ? FI_SOURCE : 0,
                        hints, &b->info);
    if (rc == -FI_ENODATA && !target) { /* as libfam: without delivery-complete */
        hints->tx_attr->op_flags = 0;
        rc = fi_getinfo(FI_VERSION(1, 17), node, NULL, node ? FI_SOURCE : 0,
                        hints, &b->info);
    }
    fi_freeinfo(hints);
    if (rc) die("bare: fi_getinfo(%s): %s", provider, fi_strerror(-rc));
    b->max_msg = b->info->ep_attr->max_msg_size;
    if (b->max_msg > (1ull << 30)) b->max_msg = 1ull << 30;
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    if ((rc = fi_fabric(b->info->fabric_attr, &b->fabric, NULL)) ||
        (rc = fi_domain(b->fabric, b->info, &b->domain, NULL)) ||
        (rc = fi_av_open(b->domain, &av_attr, &b->av, NULL)))
        die("bare: cannot open domain: %s", fi_strerror(-rc));
    if (target) {
        struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_TAGGED,
                                     .wait_obj = FI_WAIT_FD, .size = 1024};
        if (fi_cq_open(b->domain, &cq_attr, &b->cq, NULL)) {
            cq_attr.wait_obj = FI_WAIT_NONE;
            if ((rc = fi_cq_open(b->domain, &cq_attr, &b->cq, NULL)))
                die("bare: fi_cq_open: %s", fi_strerror(-rc));
        }
    } else {
        struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_CONTEXT, .size = 4096};
        if ((rc = fi_cq_open(b->domain, &cq_attr, &b->cq, NULL)))
            die("bare: fi_cq_open: %s", fi_strerror(-rc));
    }
    if ((rc = fi_endpoint(b->domain, b->info, &b->ep, NULL)) ||
        (rc = fi_ep_bind(b->ep, &b->av->fid, 0)) ||
        (rc = fi_ep_bind(b->ep, &b->cq->fid, FI_TRANSMIT | FI_RECV)) ||
        (rc = fi_enable(b->ep)))
        die("bare: cannot open endpoint: %s", fi_strerror(-rc));
}

static void bare_close(struct bare *b)
{
    if (b->mr) fi_close(&b->mr->fid);
    if (b->ep) fi_close(&b->ep->fid);
    if (b->cq) fi_close(&b->cq->fid);
    if (b->av) fi_close(&b->av->fid);
    if (b->domain) fi_close(&b->domain->fid);
    if (b->fabric) fi_close(&b->fabric->fid);
    if (b->info) fi_freeinfo(b->info);
    memset(b, 0, sizeof *b);
}

/* The target process: register `size` bytes, say where they are, then
 * drive progress while told 'g' and rest (blocked in read) after 'r'.
 * Exits when its stdin closes. */
static int bare_server_main(const char *provider, uint64_t size, int yield)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct bare b;
    bare_open(&b, provider, 1);
    size_t len = (size + 4095) / 4096 * 4096;
    /* as famd's volatile pool: private anonymous memory, huge pages allowed */
    char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buf == MAP_FAILED) die("bare: mmap: %s", strerror(errno));
    madvise(buf, len, MADV_HUGEPAGE);
    uint64_t mr_mode = b.info->domain_attr->mr_mode;
    uint64_t want = (mr_mode & FI_MR_PROV_KEY) ? 0 : 0x6b6f6469616bull;
    int rc = fi_mr_reg(b.domain, buf, len, FI_REMOTE_READ | FI_REMOTE_WRITE, 0,
                       want, 0, &b.mr, NULL);
    if (rc) die("bare: fi_mr_reg: %s", fi_strerror(-rc));
    if ((mr_mode & FI_MR_ENDPOINT) &&
        ((rc = fi_mr_bind(b.mr, &b.ep->fid, 0)) || (rc = fi_mr_enable(b.mr))))
        die("bare: cannot enable registration: %s", fi_strerror(-rc));
    uint8_t addr[256];
    size_t alen = sizeof addr;
    if ((rc = fi_getname(&b.ep->fid, addr, &alen)))
        die("bare: fi_getname: %s", fi_strerror(-rc));
    uint64_t base = (mr_mode & FI_MR_VIRT_ADDR) ? (uint64_t)(uintptr_t)buf : 0;
    printf("bare ready %" PRIx64 " %" PRIx64 " ", fi_mr_key(b.mr), base);
    for (size_t i = 0; i < alen; i++) printf("%02x", addr[i]);
    printf("\n");
    fflush(stdout);
    for (;;) {
        char c;
        ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        char ack = c == 'g' ? 'G' : 'R';
        if (write(1, &ack, 1) != 1) break;
        if (c != 'g') continue;
        struct pollfd p = {.fd = 0, .events = POLLIN};
        unsigned empty = 0;
        for (unsigned i = 1;; i++) {
            struct fi_cq_tagged_entry e[16];
            ssize_t n = fi_cq_read(b.cq, e, 16);
            if (n == -FI_EAVAIL) {
                struct fi_cq_err_entry err = {0};
                fi_cq_readerr(b.cq, &err, 0);
            }
            if (n > 0 || n == -FI_EAVAIL) empty = 0;
            else if (yield && ++empty >= 32) sched_yield();
            if ((i & 255) == 0 && poll(&p, 1, 0) > 0) break;
        }
    }
    bare_close(&b);
    munmap(buf, len);
    return 0;
}

/* Initiator: read completions; every one ends one pending operation. */
static int bare_drain(struct bare *b)
{
    struct fi_cq_entry e[16];
    ssize_t n = fi_cq_read(b->cq, e, 16);
    if (n > 0) {
        b->pending -= n;
        return (int)n;
    }
    if (n == -FI_EAVAIL) {
        struct fi_cq_err_entry err = {0};
        fi_cq_readerr(b->cq, &err, 0);
        die("bare: operation failed: %s", fi_strerror(err.err));
    }
    return 0;
}

#define BARE_POST(b, call)                                                  \
    do {                                                                    \
        ssize_t r_;                                                         \
        while ((r_ = (call)) == -FI_EAGAIN) bare_drain(b);                  \
        if (r_) die("bare: %s: %s", #call, fi_strerror((int)-r_));          \
        (b)->pending++;                                                     \
    } while (0)

static void bare_wait_all(struct bare *b)
{
    while (b->pending > 0) bare_drain(b);
}

/* Post one put or get of n bytes at offset 0, split as libfam splits. */
static void bare_post_rma(struct bare *b, int write, void *buf, uint64_t n,
                          int slot)
{
    for (uint64_t at = 0; at < n; at += b->max_msg) {
        uint64_t len = n - at < b->max_msg ? n - at : b->max_msg;
        char *p = (char *)buf + at;
        struct fi_context *ctx = &b->ctx[(size_t)slot % MAX_WINDOW];
        if (write)
            BARE_POST(b, fi_write(b->ep, p, len, NULL, b->peer, b->base + at,
                                  b->key, ctx));
        else
            BARE_POST(b, fi_read(b->ep, p, len, NULL, b->peer, b->base + at,
                                 b->key, ctx));
    }
}

static int64_t bare_fetch_add(struct bare *b, int64_t v)
{
    int64_t old = 0;
    BARE_POST(b, fi_fetch_atomic(b->ep, &v, 1, NULL, &old, NULL, b->peer,
                                 b->base, b->key, FI_INT64, FI_SUM, &b->ctx[0]));
    bare_wait_all(b);
    return old;
}

/* ---- child processes ---------------------------------------------------- */

/* A started famd or bare target. */
struct child {
    pid_t pid;
    int to, from;   /* bare target: its stdin, its stdout (-1 for famd) */
    char addr[96];  /* famd: "host:port" */
};

/* Read one line from fd without reading past it. */
static int read_line(int fd, char *line, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (c == '\n') { line[n] = '\0'; return 0; }
        line[n++] = c;
    }
    line[n] = '\0';
    return -1;
}

static void spawn(struct child *c, char *const argv[], int keep_stdin)
{
    int out[2], in[2] = {-1, -1};
    if (pipe(out) || (keep_stdin && pipe(in))) die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        if (keep_stdin) {
            dup2(in[0], 0);
            close(in[0]);
            close(in[1]);
        }
        execv(argv[0], argv);
        fprintf(stderr, "fam_bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    if (keep_stdin) close(in[0]);
    c->pid = pid;
    c->from = out[0];
    c->to = in[1];
}

static void start_famd(struct child *c, const char *provider, uint64_t pool)
{
    char size[32];
    snprintf(size, sizeof size, "%" PRIu64, pool);
    char *argv[] = {(char *)opt.famd, "--port", "0", "--pool-size", size,
                    "--provider", (char *)provider, NULL};
    spawn(c, argv, 0);
    char line[256], host[64];
    int port;
    if (read_line(c->from, line, sizeof line) ||
        sscanf(line, "famd ready %63[^:]:%d", host, &port) != 2)
        die("famd (%s) did not start: '%s'", opt.famd, line);
    snprintf(c->addr, sizeof c->addr, "%s:%d", host, port);
}

/* yield: the target yields its core after 32 empty polls, as famd does */
static void start_bare(struct child *c, struct bare *b, const char *provider,
                       uint64_t size, int yield)
{
    char sz[32];
    snprintf(sz, sizeof sz, "%" PRIu64, size);
    char *argv[] = {"/proc/self/exe", "--bare-server", (char *)provider, sz,
                    yield ? "yield" : NULL, NULL};
    spawn(c, argv, 1);
    char line[1024], hex[700];
    if (read_line(c->from, line, sizeof line) ||
        sscanf(line, "bare ready %" SCNx64 " %" SCNx64 " %699s", &b->key,
               &b->base, hex) != 3)
        die("bare target did not start: '%s'", line);
    uint8_t addr[350];
    size_t alen = strlen(hex) / 2;
    for (size_t i = 0; i < alen; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        addr[i] = (uint8_t)v;
    }
    if (fi_av_insert(b->av, addr, 1, &b->peer, 0, NULL) != 1)
        die("bare: cannot insert the target's address");
}

/* Tell the bare target to drive progress ('g') or to rest ('r'), and wait
 * until it has. */
static void bare_cmd(struct child *c, char cmd)
{
    char ack;
    if (write(c->to, &cmd, 1) != 1 || read(c->from, &ack, 1) != 1)
        die("bare target is gone");
}

static void stop_child(struct child *c, int sig)
{
    if (c->to >= 0) close(c->to);
    if (c->from >= 0) close(c->from);
    c->to = c->from = -1;
    if (sig) kill(c->pid, sig);
    for (int i = 0; i < 200; i++) {
        if (waitpid(c->pid, NULL, WNOHANG) == c->pid) return;
        usleep(10000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
}

/* utime + stime of a process, in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long long ut, st;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* Ticks all CPUs spent running user and kernel code (not interrupts, which
 * the loopback traffic of our own processes lands in), from /proc/stat. */
static long long machine_busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long user, nice, sys;
    int n = fscanf(f, "cpu %llu %llu %llu", &user, &nice, &sys);
    fclose(f);
    return n == 3 ? (long long)(user + nice + sys) : -1;
}

/* ---- measurements --------------------------------------------------------- */

enum side { KODIAK, BARE };

/* Everything one trial needs. */
struct env {
    const char *provider;
    fam_t *f;
    fam_item_t *item;   /* max_size bytes in famd */
    struct bare b;      /* initiator endpoint to the bare target */
    struct child famd, target;
    char *buf;          /* local buffer, max_size bytes, shared by both sides */
};

static void one_rma(struct env *e, enum side s, int write, uint64_t n)
{
    if (s == KODIAK) {
        if (write) FAM_CHECK(fam_put_blocking(e->f, e->buf, e->item, 0, n));
        else FAM_CHECK(fam_get_blocking(e->f, e->buf, e->item, 0, n));
    } else {
        bare_post_rma(&e->b, write, e->buf, n, 0);
        bare_wait_all(&e->b);
    }
}

static void window_rma(struct env *e, enum side s, int write, uint64_t n)
{
    if (s == KODIAK) {
        for (int i = 0; i < opt.window; i++) {
            if (write) FAM_CHECK(fam_put_nonblocking(e->f, e->buf, e->item, 0, n));
            else FAM_CHECK(fam_get_nonblocking(e->f, e->buf, e->item, 0, n));
        }
        FAM_CHECK(fam_quiet(e->f));
    } else {
        for (int i = 0; i < opt.window; i++) bare_post_rma(&e->b, write, e->buf, n, i);
        bare_wait_all(&e->b);
    }
}

/* Bytes per second of one side, over about `secs` (after a warm-up). */
static double bw_trial(struct env *e, enum side s, int write, int nb, uint64_t n,
                       double secs)
{
    uint64_t per = nb ? (uint64_t)opt.window : 1; /* operations per call */
    int batch = n < 65536 && !nb ? 64 : 1;        /* calls per clock reading */
    for (int i = 0; i < (nb ? 2 : 16); i++)
        nb ? window_rma(e, s, write, n) : one_rma(e, s, write, n);
    uint64_t calls = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < batch; i++)
            nb ? window_rma(e, s, write, n) : one_rma(e, s, write, n);
        calls += (uint64_t)batch;
    } while ((t = now_s()) - t0 < secs);
    return (double)(calls * per * n) / (t - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median microseconds of `n` single operations of one side. */
static double lat_trial(struct env *e, enum side s, int atomic, int n)
{
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) die("out of memory");
    int64_t old;
    for (int i = -100; i < n; i++) { /* 100 warm-up operations */
        double t0 = now_s();
        if (atomic) {
            if (s == KODIAK) FAM_CHECK(fam_fetch_add_int64(e->f, e->item, 0, 1, &old));
            else old = bare_fetch_add(&e->b, 1);
        } else {
            one_rma(e, s, 0, 8);
        }
        if (i >= 0) t[i] = (now_s() - t0) * 1e6;
    }
    (void)old;
    double m = median(t, n);
    free(t);
    return m;
}

/* The bare target spins only during its own trials; famd is left 10 ms to
 * fall asleep (it polls for 2 ms after the last WAKE) before each. */
static void side_begin(struct env *e, enum side s)
{
    if (s == BARE) {
        usleep(10000);
        bare_cmd(&e->target, 'g');
    }
}

static void side_end(struct env *e, enum side s)
{
    if (s == BARE) bare_cmd(&e->target, 'r');
}

/* kind: 0 bandwidth, 1 get latency, 2 fetch_add latency. Runs alternating
 * trials and returns the medians of kodiak and bare. */
static void cell(struct env *e, int kind, int write, int nb, uint64_t n,
                 double *k, double *b)
{
    double kv[MAX_TRIALS], bv[MAX_TRIALS];
    double secs = opt.time_ms / 1000.0 / opt.trials;
    int iters = opt.iters / opt.trials > 0 ? opt.iters / opt.trials : 1;
    for (int t = 0; t < opt.trials; t++) {
        for (int j = 0; j < 2; j++) {
            enum side s = (enum side)((t + j) % 2); /* swap order each trial */
            side_begin(e, s);
            double v = kind == 0 ? bw_trial(e, s, write, nb, n, secs)
                                 : lat_trial(e, s, kind == 2, iters);
            side_end(e, s);
            (s == KODIAK ? kv : bv)[t] = v;
        }
    }
    *k = median(kv, opt.trials);
    *b = median(bv, opt.trials);
}

/* ---- the table ------------------------------------------------------------ */

static void fmt_size(char *out, size_t cap, uint64_t n)
{
    if (n >= (1u << 20) && n % (1u << 20) == 0)
        snprintf(out, cap, "%" PRIu64 " MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(out, cap, "%" PRIu64 " KiB", n >> 10);
    else
        snprintf(out, cap, "%" PRIu64 " B", n);
}

static void fmt_bw(char *out, size_t cap, double v)
{
    if (v >= 1e9) snprintf(out, cap, "%.2f GB/s", v / 1e9);
    else if (v >= 1e8) snprintf(out, cap, "%.0f MB/s", v / 1e6);
    else snprintf(out, cap, "%.1f MB/s", v / 1e6);
}

static int misses; /* targets missed, over the whole run */
static int noisy;  /* other processes took a noticeable share of the CPUs */
static char summary[4096];

static void row(const char *op, const char *prov, const char *size,
                const char *mode, const char *kv, const char *bv, double ratio,
                const char *note)
{
    printf("%-10s %-8s %-8s %-10s %12s %15s %7.2f  %s\n", op, prov, size, mode,
           kv, bv, ratio, note);
    fflush(stdout);
}

static void note_target(char *note, size_t cap, int ok, const char *what)
{
    snprintf(note, cap, "%s %s", ok ? "ok" : "MISS", what);
    if (!ok) misses++;
}

/* The share of the machine's CPU time that processes other than ours took
 * since t_start (others: their clock ticks; < 0 when unknown). */
static void report_others(const char *what, long long others, double t_start)
{
    double cap = (now_s() - t_start) * (double)sysconf(_SC_CLK_TCK) *
                 (double)sysconf(_SC_NPROCESSORS_ONLN);
    double pct = others < 0 ? 0 : 100.0 * (double)others / cap;
    printf("# %s: other processes used %.0f%% of the machine's CPU time during "
           "these rows%s\n", what, pct,
           pct > 10 ? " -- figures unreliable, rerun on a quiet machine" : "");
    if (pct > 10) noisy = 1;
}

static void run_striped(const char *provider);

static void run_provider(const char *provider, uint64_t max_size)
{
    struct env e;
    memset(&e, 0, sizeof e);
    e.provider = provider;
    /* how busy the machine is besides us: on a small shared machine other
     * processes change the figures, so the run says so */
    long long busy0 = machine_busy_ticks(), self0 = cpu_ticks(getpid());
    double t_start = now_s();
    uint64_t region = (max_size + (1u << 20) - 1) / (1u << 20) * (1u << 20) + (1u << 20);
    start_famd(&e.famd, provider, region + (32u << 20));
    e.famd.to = -1;
    bare_open(&e.b, provider, 0);
    start_bare(&e.target, &e.b, provider, max_size, 0);

    fam_options_t o = {.servers = e.famd.addr, .provider = provider,
                       .timeout_ms = 30000};
    FAM_CHECK(fam_initialize(&o, &e.f));
    fam_region_t *r;
    FAM_CHECK(fam_create_region(e.f, "bench", region, 0600, NULL, &r));
    FAM_CHECK(fam_allocate(e.f, "data", max_size, 0600, r, &e.item));
    if (!(e.buf = aligned_alloc(4096, (max_size + 4095) / 4096 * 4096)))
        die("out of memory");
    memset(e.buf, 0x5a, max_size);
    uint64_t dc = e.b.info->tx_attr->op_flags & FI_DELIVERY_COMPLETE;
    printf("# %s: famd pid %d at %s, bare target pid %d; provider %s, "
           "mr_mode 0x%x, delivery-complete %s\n", provider, (int)e.famd.pid,
           e.famd.addr, (int)e.target.pid, e.b.info->fabric_attr->prov_name,
           (unsigned)e.b.info->domain_attr->mr_mode, dc ? "yes" : "no (not offered)");
    fflush(stdout);

    /* first touch of both targets' memory, outside any timing */
    for (int s = KODIAK; s <= BARE; s++) {
        side_begin(&e, (enum side)s);
        one_rma(&e, (enum side)s, 1, max_size);
        side_end(&e, (enum side)s);
    }

    char sz[32], kv[32], bv[32], note[64];
    for (int write = 1; write >= 0; write--) {
        for (int nb = 0; nb <= 1; nb++) {
            char mode[32];
            if (nb) snprintf(mode, sizeof mode, "window %d", opt.window);
            else snprintf(mode, sizeof mode, "blocking");
            for (int i = 0; i < opt.nsizes; i++) {
                uint64_t n = opt.sizes[i];
                if (n > max_size) continue;
                double k, b;
                cell(&e, 0, write, nb, n, &k, &b);
                fmt_size(sz, sizeof sz, n);
                fmt_bw(kv, sizeof kv, k);
                fmt_bw(bv, sizeof bv, b);
                note[0] = '\0';
                if (n == (1u << 20)) {
                    note_target(note, sizeof note, k >= BW_TARGET * b, "(>= 0.80)");
                    if (k < BW_TARGET * b) {
                        size_t l = strlen(summary);
                        snprintf(summary + l, sizeof summary - l,
                                 "  %s %s 1 MiB %s: %.2f of bare\n",
                                 write ? "put" : "get", provider, mode, k / b);
                    }
                }
                row(write ? "put" : "get", provider, sz, mode, kv, bv, k / b, note);
            }
        }
    }
    double k, b;
    cell(&e, 1, 0, 0, 8, &k, &b);
    snprintf(kv, sizeof kv, "%.2f us", k);
    snprintf(bv, sizeof bv, "%.2f us", b);
    note_target(note, sizeof note, k <= LAT_TARGET * b, "(<= 1.50)");
    if (k > LAT_TARGET * b) {
        size_t l = strlen(summary);
        snprintf(summary + l, sizeof summary - l,
                 "  get latency %s 8 B: %.2f x bare\n", provider, k / b);
    }
    row("get lat", provider, "8 B", "blocking", kv, bv, k / b, note);
    cell(&e, 2, 0, 0, 8, &k, &b);
    snprintf(kv, sizeof kv, "%.2f us", k);
    snprintf(bv, sizeof bv, "%.2f us", b);
    row("fetch_add", provider, "int64", "blocking", kv, bv, k / b, "");

    /* idle CPU: client still connected, nothing in flight */
    long long f0 = cpu_ticks(e.famd.pid), b0 = cpu_ticks(e.target.pid);
    usleep((useconds_t)(opt.idle_s * 1e6));
    long long f1 = cpu_ticks(e.famd.pid), b1 = cpu_ticks(e.target.pid);
    double hz = (double)sysconf(_SC_CLK_TCK);
    char mode[32];
    snprintf(mode, sizeof mode, "%.0f s idle", opt.idle_s);
    snprintf(kv, sizeof kv, "%.1f%% core", 100.0 * (double)(f1 - f0) / hz / opt.idle_s);
    snprintf(bv, sizeof bv, "%.1f%% core", 100.0 * (double)(b1 - b0) / hz / opt.idle_s);
    printf("%-10s %-8s %-8s %-10s %12s %15s %7s  %s\n", "idle cpu", provider,
           "-", mode, kv, bv, "-", "(famd / resting bare target)");
    long long busy1 = machine_busy_ticks(), self1 = cpu_ticks(getpid());
    long long others = (busy1 - busy0) - (self1 - self0) - f1 - b1;
    report_others(provider, busy0 < 0 || busy1 < 0 ? -1 : others, t_start);

    fam_release(e.item);
    FAM_CHECK(fam_destroy_region(e.f, r));
    FAM_CHECK(fam_finalize(e.f));
    stop_child(&e.target, 0);
    bare_close(&e.b);
    stop_child(&e.famd, SIGTERM);
    free(e.buf);
    if (opt.striped) run_striped(provider);
}

/* ---- striped over two memory servers ------------------------------------ */

#define STRIPED_BYTES (64ull << 20)
#define STRIPED_WINDOW 16 /* as libfam's blocking RMA window */

/* Everything the striped rows need: an interleaved item on two famds, and
 * two bare targets with one bare initiator endpoint each. */
struct striped {
    fam_t *f;
    fam_item_t *item;
    uint64_t stripe;     /* the item's stripe size; bare splits the same */
    struct bare b[2];
    struct child famd[2], target[2];
    char *buf;
};

/* One blocking transfer of STRIPED_BYTES by the bare side: stripe-sized
 * pieces, piece i to target i % 2 at offset (i / 2) * stripe, at most
 * STRIPED_WINDOW in flight, as libfam cuts an interleaved item. */
static void bare_striped(struct striped *x, int write)
{
    uint64_t pieces = STRIPED_BYTES / x->stripe;
    for (uint64_t i = 0; i < pieces; i++) {
        while (x->b[0].pending + x->b[1].pending >= STRIPED_WINDOW)
            if (!bare_drain(&x->b[0])) bare_drain(&x->b[1]);
        struct bare *b = &x->b[i % 2];
        char *p = x->buf + i * x->stripe;
        uint64_t at = (i / 2) * x->stripe;
        struct fi_context *ctx = &b->ctx[(size_t)i % MAX_WINDOW];
        if (write)
            BARE_POST(b, fi_write(b->ep, p, x->stripe, NULL, b->peer,
                                  b->base + at, b->key, ctx));
        else
            BARE_POST(b, fi_read(b->ep, p, x->stripe, NULL, b->peer,
                                 b->base + at, b->key, ctx));
    }
    bare_wait_all(&x->b[0]);
    bare_wait_all(&x->b[1]);
}

static double striped_trial(struct striped *x, enum side s, int write, double secs)
{
    uint64_t calls = 0;
    double t0 = 0, t;
    for (int i = -2;; i++) { /* two warm-up transfers */
        if (i == 0) t0 = now_s();
        if (s == BARE) bare_striped(x, write);
        else if (write) FAM_CHECK(fam_put_blocking(x->f, x->buf, x->item, 0, STRIPED_BYTES));
        else FAM_CHECK(fam_get_blocking(x->f, x->buf, x->item, 0, STRIPED_BYTES));
        if (i >= 0) calls++;
        if (i >= 0 && (t = now_s()) - t0 >= secs) break;
    }
    return (double)(calls * STRIPED_BYTES) / (t - t0);
}

/* Blocking put and get of 64 MiB interleaved over two famds, beside bare
 * libfabric doing the same pieces to two bare targets. Both famds and the
 * client share the machine's two cores, which is where famd's progress
 * model shows: a famd that does not yield, or that sleeps in poll(), slows
 * the other famd's half down. */
static void run_striped(const char *provider)
{
    struct striped x;
    memset(&x, 0, sizeof x);
    long long busy0 = machine_busy_ticks(), self0 = cpu_ticks(getpid());
    double t_start = now_s();
    uint64_t half = STRIPED_BYTES / 2;
    for (int i = 0; i < 2; i++) {
        start_famd(&x.famd[i], provider, half + (64u << 20));
        x.famd[i].to = -1;
        bare_open(&x.b[i], provider, 0);
        start_bare(&x.target[i], &x.b[i], provider, half, 1);
    }
    char servers[200];
    snprintf(servers, sizeof servers, "%s,%s", x.famd[0].addr, x.famd[1].addr);
    fam_options_t o = {.servers = servers, .provider = provider, .timeout_ms = 30000};
    FAM_CHECK(fam_initialize(&o, &x.f));
    fam_region_attr_t attr = {.interleave = FAM_INTERLEAVE_ENABLE};
    fam_region_t *r;
    FAM_CHECK(fam_create_region(x.f, "striped", STRIPED_BYTES + (16u << 20), 0600,
                                &attr, &r));
    FAM_CHECK(fam_allocate(x.f, "data", STRIPED_BYTES, 0600, r, &x.item));
    fam_stat_t st;
    FAM_CHECK(fam_stat(x.f, x.item, &st));
    if (st.num_servers != 2 || !st.stripe_size || STRIPED_BYTES % (2 * st.stripe_size))
        die("striped item: %u servers, stripe %" PRIu64, st.num_servers, st.stripe_size);
    x.stripe = st.stripe_size;
    if (!(x.buf = aligned_alloc(4096, STRIPED_BYTES))) die("out of memory");
    memset(x.buf, 0x5a, STRIPED_BYTES);

    double secs = opt.time_ms / 1000.0 / opt.trials;
    for (int write = 1; write >= 0; write--) {
        double kv[MAX_TRIALS], bv[MAX_TRIALS];
        for (int t = 0; t < opt.trials; t++) {
            for (int j = 0; j < 2; j++) {
                enum side s = (enum side)((t + j) % 2);
                if (s == BARE) {
                    usleep(10000);
                    bare_cmd(&x.target[0], 'g');
                    bare_cmd(&x.target[1], 'g');
                }
                double v = striped_trial(&x, s, write, secs);
                if (s == BARE) {
                    bare_cmd(&x.target[0], 'r');
                    bare_cmd(&x.target[1], 'r');
                }
                (s == KODIAK ? kv : bv)[t] = v;
            }
        }
        double k = median(kv, opt.trials), b = median(bv, opt.trials);
        char kb[32], bb[32];
        fmt_bw(kb, sizeof kb, k);
        fmt_bw(bb, sizeof bb, b);
        row(write ? "put" : "get", provider, "64 MiB", "2 famd", kb, bb, k / b,
            "(striped, blocking)");
    }
    long long ours = cpu_ticks(getpid()) - self0;
    for (int i = 0; i < 2; i++)
        ours += cpu_ticks(x.famd[i].pid) + cpu_ticks(x.target[i].pid);
    long long others = machine_busy_ticks() - busy0 - ours;
    char what[32];
    snprintf(what, sizeof what, "%s striped", provider);
    report_others(what, busy0 < 0 ? -1 : others, t_start);
    fam_release(x.item);
    FAM_CHECK(fam_destroy_region(x.f, r));
    FAM_CHECK(fam_finalize(x.f));
    for (int i = 0; i < 2; i++) {
        stop_child(&x.target[i], 0);
        bare_close(&x.b[i]);
        stop_child(&x.famd[i], SIGTERM);
    }
    free(x.buf);
}

/* ---- command line -------------------------------------------------------- */

static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) die("bad size '%s'", s);
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v == 0) die("bad size '%s'", s);
    return v;
}

static void usage(FILE *to)
{
    fprintf(to,
        "usage: fam_bench [options]\n"
        "  --providers LIST   comma-separated, of shm and tcp (default shm,tcp)\n"
        "  --sizes LIST       transfer sizes (default 8,64,4K,64K,1M,4M)\n"
        "  --max-size SIZE    skip sizes above SIZE (default: the largest)\n"
        "  --time-ms N        time per bandwidth cell and side (default 1000)\n"
        "  --iters N          latency samples per side (default 20000)\n"
        "  --window N         non-blocking operations in flight (default 32)\n"
        "  --trials N         alternating kodiak/bare trials per cell (default 5)\n"
        "  --idle-sec S       famd idle time for the CPU reading (default 3)\n"
        "  --famd PATH        famd binary (default %s)\n"
        "  --quick            --time-ms 60 --iters 3000 --idle-sec 1, small bulk run\n"
        "  --bulk-only        only the bulk table (gather/scatter, GUPS, copy)\n"
        "  --no-bulk          only the put/get/atomic table\n"
        "  --no-striped       without the 64 MiB rows striped over two famds\n"
        "  --bulk-bytes SIZE  item size for the bulk table (default 1G)\n"
        "  --bulk-n N         random indices (default 10M)\n",
        FAMD_BIN);
}

int main(int argc, char **argv)
{
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "--bare-server") == 0)
        return bare_server_main(argv[2], parse_size(argv[3]), argc == 5);
    signal(SIGPIPE, SIG_IGN);
    const char *providers = "shm,tcp", *sizes = "8,64,4K,64K,1M,4M";
    opt.time_ms = 1000;
    opt.iters = 20000;
    opt.window = 32;
    opt.trials = 5;
    opt.idle_s = 3;
    opt.famd = FAMD_BIN;
    opt.striped = 1;
    int quick = 0, bulk = 1, basic = 1;
    struct bulk_opts bo = {.providers = "shm,tcp", .bytes = 1ull << 30,
                           .n = 10000000, .naive = 200000,
                           .copy_bytes = 256ull << 20, .trials = 3};
    static const struct option lo[] = {
        {"bulk-only", no_argument, 0, 'B'},
        {"no-bulk", no_argument, 0, 'N'},
        {"no-striped", no_argument, 0, 'S'},
        {"bulk-bytes", required_argument, 0, 'b'},
        {"bulk-n", required_argument, 0, 'n'},
        {"providers", required_argument, 0, 'p'},
        {"sizes", required_argument, 0, 's'},
        {"max-size", required_argument, 0, 'm'},
        {"time-ms", required_argument, 0, 't'},
        {"iters", required_argument, 0, 'i'},
        {"window", required_argument, 0, 'w'},
        {"trials", required_argument, 0, 'r'},
        {"idle-sec", required_argument, 0, 'I'},
        {"famd", required_argument, 0, 'f'},
        {"quick", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    /* --quick sets defaults that the other options may then override */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
    if (quick) {
        opt.time_ms = 60;
        opt.trials = 3;
        opt.iters = 3000;
        opt.idle_s = 1;
        bo.bytes = 128ull << 20;
        bo.n = 1000000;
        bo.naive = 20000;
        bo.copy_bytes = 64ull << 20;
        bo.trials = 1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': providers = optarg; break;
        case 's': sizes = optarg; break;
        case 'm': opt.max_size = parse_size(optarg); break;
        case 't': opt.time_ms = atoi(optarg); break;
        case 'i': opt.iters = atoi(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 'r': opt.trials = atoi(optarg); break;
        case 'I': opt.idle_s = atof(optarg); break;
        case 'f': opt.famd = optarg; break;
        case 'q': break;
        case 'B': basic = 0; break;
        case 'N': bulk = 0; break;
        case 'S': opt.striped = 0; break;
        case 'b': bo.bytes = parse_size(optarg); break;
        case 'n': bo.n = parse_size(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || opt.time_ms <= 0 || opt.iters <= 0 ||
        opt.window <= 0 || opt.window > MAX_WINDOW || opt.trials <= 0 ||
        opt.trials > MAX_TRIALS || opt.idle_s < 0) {
        usage(stderr);
        return 2;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", providers);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "shm") && strcmp(t, "tcp")) die("unknown provider '%s'", t);
        if (opt.nproviders == 8) die("too many providers");
        snprintf(opt.providers[opt.nproviders++], sizeof opt.providers[0], "%s", t);
    }
    snprintf(list, sizeof list, "%s", sizes);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (opt.nsizes == MAX_SIZES) die("too many sizes");
        uint64_t n = parse_size(t);
        if (n > (1ull << 30)) die("sizes up to 1 GiB, not '%s'", t);
        opt.sizes[opt.nsizes++] = n;
    }
    if (!opt.nproviders || !opt.nsizes) die("nothing to measure");
    uint64_t largest = 8;
    for (int i = 0; i < opt.nsizes; i++)
        if (opt.sizes[i] > largest && (!opt.max_size || opt.sizes[i] <= opt.max_size))
            largest = opt.sizes[i];

    printf("# fam_bench: libfam (kodiak) vs bare libfabric in the same run; "
           "median of %d trials, %d ms per bandwidth cell and side, %d latency "
           "samples, window %d\n", opt.trials, opt.time_ms, opt.iters, opt.window);
    printf("# ratio = kodiak/bare (bandwidth: higher is better; latency: time, "
           "lower is better); GB = 1e9 bytes\n");
    printf("%-10s %-8s %-8s %-10s %12s %15s %7s  %s\n", "op", "provider",
           "size", "mode", "kodiak", "bare libfabric", "ratio", "target");
    double t0 = now_s();
    for (int p = 0; basic && p < opt.nproviders; p++) run_provider(opt.providers[p], largest);
    printf("# targets (1 MiB bandwidth >= %.2f x bare, 8-byte get latency <= "
           "%.2f x bare): %s\n", BW_TARGET, LAT_TARGET,
           misses ? "MISSED" : "met");
    if (misses) printf("%s", summary);
    if (noisy) printf("# the machine was busy with other work: rerun for final figures\n");
    if (bulk) {
        bo.famd = opt.famd;
        bo.providers = providers;
        if (bo.bytes < (1 << 20) || bo.n == 0) die("bad --bulk-bytes or --bulk-n");
        fam_bench_bulk(&bo);
    }
    printf("# total %.0f s\n", now_s() - t0);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* kd_main.c — kodiakd's entry point: options, MPI start-up, rank 0's ZeroMQ
 * front end, the idle wait of the other ranks, and running one command on
 * every rank.
 *
 * Rank 0 owns a ROUTER socket. A request is [identity, "", header, frames...]
 * (the client uses a REQ socket). Rank 0 checks that the header is a JSON
 * object naming a known command, then broadcasts the header text to every
 * rank; all ranks run the handler; rank 0 sends the reply. Binary frames stay
 * on rank 0: a handler scatters them itself (kd_scatter_frame).
 *
 * Idle must be idle: a rank waiting in a blocking MPI_Bcast burns a whole
 * core with Open MPI, so ranks other than 0 wait for the next command in a
 * non-blocking broadcast that they test with a growing sleep (spin 200 us,
 * then sleep 20 us doubling to 2 ms). After 100 ms without a command a rank
 * on rank 0's host sleeps until rank 0 rings its doorbell (SIGURG sent with
 * tgkill to the rank's main thread with each command; the rank keeps SIGURG
 * blocked and takes it in sigtimedwait), or 1 s as a safety net; a rank on
 * another host keeps the 2 ms sleeps. Rank 0 waits in zmq_poll, which
 * sleeps in the kernel.
 *
 * Liveness: while a command runs, rank 0's main thread is inside MPI and
 * does not read the socket. If a rank is stopped (SIGSTOP, a debugger) the
 * command never ends, and a client would wait for good. So rank 0 has a
 * watcher thread: once a command has run for KD_BUSY_AFTER_MS, it takes the
 * socket (under watch.mu; the main thread takes it back when the command
 * ends, and a shorter command does not wake the watcher at all) and
 * answers every request that arrives with a
 * ServerBusyError naming the command and how long it has run. The client
 * has a deadline per request (docs/PROTOCOL.md, "Deadlines"); after it, its
 * next request gets this answer at once instead of hanging. Every reply
 * echoes the request's "id", so a late reply is never taken for the answer
 * to a later request.
 *
 * Only clients that hold the access token are served. The token (32 random
 * bytes, in hex) is made at start and written to the connect file (0600).
 * The ROUTER socket is a ZeroMQ PLAIN server: a client sends the token as
 * its PLAIN password and a ZAP handler thread on rank 0 compares it (in
 * constant time) before ZeroMQ accepts a single message from that client;
 * a wrong or missing token gets ZAP status 400, which the client sees as a
 * failed handshake (Python raises PermissionError). A client on this host
 * may also connect to rank 0's Unix socket (an abstract ipc:// name in the
 * connect file): there ZeroMQ reports the peer's uid and pid from
 * SO_PEERCRED, and that pid, never one named in a request, is the process
 * the same-host memory path may read and write. */
#define _GNU_SOURCE
#include "kd.h"
#include "kd_ds.h"

#include "fam/fam.h"
#include "fam_common.h" /* fam_now_us, fam_parse_size */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ---- the command registry -------------------------------------------------- */

#define KD_MAX_COMMANDS 256

static struct {
    const char *name;
    kd_handler fn;
} commands[KD_MAX_COMMANDS];
static int ncommands;

void kd_register(const char *name, kd_handler fn)
{
    if (ncommands == KD_MAX_COMMANDS) {
        fprintf(stderr, "kodiakd: too many commands (raise KD_MAX_COMMANDS)\n");
        abort(); /* a programming error, found at start-up */
    }
    commands[ncommands].name = name;
    commands[ncommands].fn = fn;
    ncommands++;
}

static kd_handler find_command(const char *name)
{
    for (int i = 0; i < ncommands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].fn;
    return NULL;
}

/* ---- signals ------------------------------------------------------------------ */

/* SIGTERM/SIGINT set the flag and write a byte to a pipe that rank 0's
 * zmq_poll watches, so rank 0 wakes at once whichever thread the signal
 * lands on (ZeroMQ's I/O threads may take it, leaving zmq_poll asleep).
 * Other ranks ignore the flag: they stop when rank 0 broadcasts shutdown.
 *
 * A signal from our parent (mpirun, or its orted) means the launcher is
 * tearing the job down: Open MPI's mpirun sends SIGTERM, and SIGKILL one
 * second later, and no longer answers the fence inside MPI_Finalize, which
 * would then hang until the SIGKILL. So after such a signal the ranks stop
 * cleanly (shutdown broadcast, connect file removed) and leave with exit
 * code 0 without MPI_Finalize. A SIGTERM from anyone else (kill of rank 0's
 * pid) gets the full MPI_Finalize. */
static volatile sig_atomic_t stop_requested, stop_by_launcher;
static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    (void)uctx;
    int saved = errno;
    stop_requested = 1;
    if (info && info->si_pid == getppid())
        stop_by_launcher = 1;
    if (stop_pipe[1] >= 0) {
        char b = 1;
        ssize_t w = write(stop_pipe[1], &b, 1);
        (void)w; /* a full pipe already wakes the poll */
    }
    errno = saved;
}

/* SIGTERM and SIGINT to on_signal. Before MPI_Init, so that a stop asked
 * while the ranks start (MPI_Init takes a few hundred ms) is not the
 * default action, a rank dead without MPI_Finalize and its launcher
 * reporting a crash: the flag waits until rank 0's front end looks at it.
 * Again after MPI_Init, in case the MPI library put its own in place. */
static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- options ------------------------------------------------------------------ */

struct kd_options {
    const char *host;          /* address rank 0 binds, loopback by default */
    int port;                  /* 0: any free port */
    const char *connect_file;  /* written by rank 0 once ready, removed at exit */
    uint64_t memory_limit;     /* bytes per rank; 0: physical memory / ranks */
    double request_timeout;    /* seconds clients wait per request (advertised
                                  in the connect reply); 0: no limit */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: [mpirun -np N] kodiakd [--host H] [--port P] [--connect-file F]\n"
        "                              [--memory-limit BYTES] [--request-timeout S]\n"
        "  --host H           address to listen on (default 127.0.0.1)\n"
        "  --port P           TCP port (default 5555; 0 picks a free one)\n"
        "  --connect-file F   write host, port and ranks as JSON to F when ready\n"
        "  --memory-limit B   bytes of arrays per rank (K/M/G suffixes; default:\n"
        "                     physical memory divided by the number of ranks)\n"
        "  --request-timeout S  seconds a client waits for each answer before it\n"
        "                     raises TimeoutError (told to clients on connect;\n"
        "                     default %d; 0: no limit)\n", KD_REQUEST_TIMEOUT_DEFAULT);
}

static int parse_options(int argc, char **argv, struct kd_options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},
        {"port", required_argument, 0, 'p'},
        {"connect-file", required_argument, 0, 'c'},
        {"memory-limit", required_argument, 0, 'm'},
        {"request-timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0}};
    o->host = "127.0.0.1";
    o->port = 5555;
    o->connect_file = NULL;
    o->memory_limit = 0;
    o->request_timeout = KD_REQUEST_TIMEOUT_DEFAULT;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'h': o->host = optarg; break;
        case 'p':
            o->port = (int)strtol(optarg, &end, 10);
            if (*end || o->port < 0 || o->port > 65535) {
                fprintf(stderr, "kodiakd: bad --port '%s'\n", optarg);
                return -1;
            }
            break;
        case 'c': o->connect_file = optarg; break;
        case 'm':
            if (fam_parse_size(optarg, &o->memory_limit) || o->memory_limit == 0) {
                fprintf(stderr, "kodiakd: bad --memory-limit '%s' (bytes, "
                                "optionally with K, M, G or T)\n", optarg);
                return -1;
            }
            break;
        case 't':
            errno = 0;
            o->request_timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(o->request_timeout) ||
                o->request_timeout < 0) {
                fprintf(stderr, "kodiakd: bad --request-timeout '%s' (seconds, 0 for "
                                "no limit)\n", optarg);
                return -1;
            }
            break;
        case 'H': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kodiakd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---- running one command on every rank -------------------------------------- */

static void free_temps(kd_cmd *c, bool keep_registered)
{
    kd_array *a = c->temps;
    while (a) {
        kd_array *next = a->next;
        if (keep_registered && a->name[0]) {
            a->next = NULL;
            kd_symtab_insert(a);
        } else {
            kd_array_free(a);
        }
        a = next;
    }
    c->temps = NULL;
}

/* Replace every byte that is not part of valid UTF-8 with '?', in place.
 * Error messages quote names and values from the request, which may hold
 * any bytes (or be cut in the middle of a character by %.80s); the client
 * decodes the reply as UTF-8 and must always be able to. */
static void utf8_sanitise(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2
              : (*p & 0xf8) == 0xf0 ? 3 : -1;
        bool ok = n >= 0 && !(n == 1 && *p < 0xc2) && !(n == 3 && *p > 0xf4);
        for (int k = 1; ok && k <= n; k++)
            ok = (p[k] & 0xc0) == 0x80;
        if (ok && n == 2) /* no overlong forms, no UTF-16 surrogates */
            ok = !(p[0] == 0xe0 && p[1] < 0xa0) && !(p[0] == 0xed && p[1] >= 0xa0);
        if (ok && n == 3)
            ok = !(p[0] == 0xf0 && p[1] < 0x90) && !(p[0] == 0xf4 && p[1] >= 0x90);
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}

static json_object *error_reply(const char *type, const char *msg)
{
    char clean[1024];
    snprintf(clean, sizeof clean, "%s", msg);
    utf8_sanitise(clean);
    msg = clean;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object *e = json_object_new_object();
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object_object_add(r, "error", e);
    return r;
}

/* Run the command in `hdr` (already broadcast) on this rank. On rank 0 the
 * reply header is returned and c->out holds the reply frames. */
static json_object *run_command(kd_cmd *c, const char *hdr, size_t len)
{
    json_tokener *tok = json_tokener_new();
    json_object *req = json_tokener_parse_ex(tok, hdr, (int)len);
    json_tokener_free(tok);
    /* rank 0 checked the header before broadcasting it */
    json_object *cmd = NULL, *args = NULL, *freed = NULL;
    json_object_object_get_ex(req, "cmd", &cmd);
    json_object_object_get_ex(req, "args", &args);
    c->rank = kd_srv.rank;
    c->nranks = kd_srv.nranks;
    c->comm = kd_srv.comm;
    c->cmd = json_object_get_string(cmd);
    c->args = json_object_is_type(args, json_type_object) ? args : NULL;
    c->result = json_object_new_object();

    /* arrays whose Python objects were garbage-collected ride along */
    if (json_object_object_get_ex(req, "free", &freed) &&
        json_object_is_type(freed, json_type_array)) {
        size_t n = json_object_array_length(freed);
        for (size_t i = 0; i < n; i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(freed, i));
            if (name)
                kd_delete(name);
        }
    }

    kd_handler fn = find_command(c->cmd);
    int rc = fn(c);
    rc = kd_agree(c, rc);
    free_temps(c, rc == 0);
    /* the memory servers may stop polling for this rank until its next
     * command: on a small machine their spinning delayed the reply and
     * the client's next request (docs/PERFORMANCE.md, s9) */
    kd_fam_rest();
    kd_ahead_idle(); /* no buffers made ahead for the next command's time */

    json_object *reply = NULL;
    if (c->rank == 0) {
        if (rc == 0) {
            reply = json_object_new_object();
            json_object_object_add(reply, "ok", json_object_new_boolean(1));
            json_object_object_add(reply, "result", c->result);
            c->result = NULL;
        } else {
            reply = error_reply(c->err_type[0] ? c->err_type : "RuntimeError",
                                c->err_msg[0] ? c->err_msg : "command failed");
            for (int i = 0; i < c->nout; i++)
                free(c->out[i]);
            c->nout = 0;
        }
    }
    if (c->result)
        json_object_put(c->result);
    json_object_put(req);
    return reply;
}

/* ---- the idle wait ---------------------------------------------------------------- */

static double now_s(void) { return (double)fam_now_us() * 1e-6; }

/* The doorbells: where rank 0 sends SIGURG when a command comes, so that
 * ranks idle for long can sleep in the kernel instead of waking every 2 ms
 * (2 ranks: 0.6% of a core for rank 1 alone, bench/idle_bench.py). */
#define KD_BELL_SIG SIGURG        /* ignored by default, never sent by MPI */
#define KD_BELL_AFTER_S 0.1       /* idle this long before waiting for it */
#define KD_BELL_SAFETY_S 1        /* and look at MPI at least this often */
struct kd_bell {
    int32_t pid, tid; /* the rank's process and main thread */
    int32_t host;     /* 1: same host as rank 0 (so tgkill reaches it) */
};
static struct kd_bell *bells; /* rank 0: one per rank */
static int my_bell;           /* 1: this rank waits for rank 0's doorbell */

/* Collective, at start-up: every rank tells rank 0 its pid, thread id and
 * host; rank 0 keeps the ranks it can signal (same host name, kill(pid, 0)
 * allowed: the same pid namespace and user) and tells each whether it will
 * be rung. A rank that will be keeps KD_BELL_SIG blocked in its main thread
 * (before ZeroMQ or fabric threads start, so they inherit the mask). */
static void kd_bell_setup(void)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct kd_bell me = {(int32_t)getpid(), (int32_t)syscall(SYS_gettid), 0};
    char *hosts = kd_srv.rank == 0 ? calloc((size_t)kd_srv.nranks, sizeof host) : NULL;
    if (kd_srv.rank == 0)
        bells = calloc((size_t)kd_srv.nranks, sizeof *bells);
    if (kd_srv.rank == 0 && (!hosts || !bells))
        MPI_Abort(kd_srv.comm, 1);
    MPI_Gather(host, sizeof host, MPI_CHAR, hosts, sizeof host, MPI_CHAR, 0, kd_srv.comm);
    MPI_Gather(&me, 3, MPI_INT32_T, bells, 3, MPI_INT32_T, 0, kd_srv.comm);
    int *rung = NULL;
    if (kd_srv.rank == 0) {
        rung = calloc((size_t)kd_srv.nranks, sizeof *rung);
        if (!rung)
            MPI_Abort(kd_srv.comm, 1);
        for (int r = 1; r < kd_srv.nranks; r++) {
            bells[r].host = strcmp(hosts + (size_t)r * sizeof host, host) == 0 &&
                            kill(bells[r].pid, 0) == 0;
            rung[r] = bells[r].host;
        }
    }
    MPI_Scatter(rung, 1, MPI_INT, &my_bell, 1, MPI_INT, 0, kd_srv.comm);
    free(rung);
    free(hosts);
    if (my_bell) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, KD_BELL_SIG);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
}

/* Rank 0, with each command: ring every rank that waits for its bell (in
 * its short sleeps or its long wait, which then return at once). A rank
 * still spinning finds the signal pending at its next wait, which then
 * returns at once and looks again: harmless. */
static void ring_bells(void)
{
    for (int r = 1; r < kd_srv.nranks; r++)
        if (bells && bells[r].host)
            syscall(SYS_tgkill, bells[r].pid, bells[r].tid, KD_BELL_SIG);
}

/* Wait for the next command's length from rank 0 without burning a core. */
static int64_t wait_for_length(void)
{
    int64_t len = 0;
    MPI_Request rq;
    MPI_Ibcast(&len, 1, MPI_INT64_T, 0, kd_srv.comm, &rq);
    double start = now_s();
    long sleep_ns = 20000;
    sigset_t bell;
    sigemptyset(&bell);
    sigaddset(&bell, KD_BELL_SIG);
    for (;;) {
        int done = 0;
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (done)
            return len;
        double waited = now_s() - start;
        if (waited < 200e-6)
            continue;
        if (my_bell && waited >= KD_BELL_AFTER_S) {
            /* long idle: sleep until the bell (or a stop signal, or the
             * safety timeout), then test the broadcast again */
            struct timespec ts = {KD_BELL_SAFETY_S, 0};
            sigtimedwait(&bell, NULL, &ts);
            continue;
        }
        /* short sleeps end at the bell too: a command that comes while
         * this rank sleeps starts at once, not up to a sleep later (every
         * command of a busy client paid that on the ranks but rank 0) */
        struct timespec ts = {0, sleep_ns};
        if (my_bell)
            sigtimedwait(&bell, NULL, &ts);
        else
            nanosleep(&ts, NULL);
        if (sleep_ns < 2000000)
            sleep_ns *= 2;
    }
}

static void send_length(int64_t len)
{
    MPI_Request rq;
    MPI_Ibcast(&len, 1, MPI_INT64_T, 0, kd_srv.comm, &rq);
    ring_bells();
    MPI_Wait(&rq, MPI_STATUS_IGNORE);
}

static void worker_loop(void)
{
    for (;;) {
        int64_t len = wait_for_length();
        char *hdr = malloc((size_t)len + 1);
        if (!hdr)
            MPI_Abort(kd_srv.comm, 1);
        MPI_Bcast(hdr, (int)len, MPI_CHAR, 0, kd_srv.comm);
        hdr[len] = '\0';
        kd_cmd c;
        memset(&c, 0, sizeof c);
        int64_t peer[2];
        MPI_Bcast(peer, 2, MPI_INT64_T, 0, kd_srv.comm);
        c.peer_pid = (int)peer[0];
        c.peer_uid = (unsigned)peer[1];
        run_command(&c, hdr, (size_t)len);
        free(hdr);
        kd_ds_cleanup(); /* what this rank's commits left, if any */
        if (c.shutdown)
            return;
    }
}

/* ---- rank 0: the ZeroMQ front end ---------------------------------------------- */

static void free_frame(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* The request id a reply echoes (docs/PROTOCOL.md): an integer "id" in the
 * request header, else none. */
typedef struct {
    bool has;                  /* the request carried an integer "id" */
    int64_t v;                 /* its value */
} kd_req_id;

static void send_reply(void *sock, zmq_msg_t *ident, json_object *reply, kd_cmd *c,
                       kd_req_id id)
{
    if (id.has)
        json_object_object_add(reply, "id", json_object_new_int64(id.v));
    const char *text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN);
    int more = c && c->nout > 0 ? ZMQ_SNDMORE : 0;
    zmq_msg_send(ident, sock, ZMQ_SNDMORE);
    zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), more);
    if (c) {
        for (int i = 0; i < c->nout; i++) {
            zmq_msg_t m;
            zmq_msg_init_data(&m, c->out[i], c->out_len[i], free_frame, NULL);
            if (zmq_msg_send(&m, sock, i + 1 < c->nout ? ZMQ_SNDMORE : 0) < 0)
                zmq_msg_close(&m); /* not sent: its buffer is freed here */
        }
        c->nout = 0;
    }
    json_object_put(reply);
}

/* Who sent a message, from its "Peer-Address" metadata: over ipc:// libzmq
 * 4.3 reports "<addr>:uid:gid:pid" from SO_PEERCRED (addr is "localhost" or
 * empty); over TCP an IP address, which never has that form. pid 0: not
 * known (TCP, or a libzmq that does not say). */
static void peer_of(zmq_msg_t *m, int *pid, unsigned *uid)
{
    *pid = 0;
    *uid = (unsigned)-1;
    const char *a = m ? zmq_msg_gets(m, "Peer-Address") : NULL;
    if (!a)
        return;
    const char *p = strchr(a, ':');
    if (!p || (p != a && strncmp(a, "localhost:", 10) != 0))
        return;
    unsigned u, g;
    int id, used = 0;
    if (sscanf(p, ":%u:%u:%d%n", &u, &g, &id, &used) == 3 && p[used] == '\0' && id > 0) {
        *pid = id;
        *uid = u;
    }
}

/* ---- rank 0: answering while a command runs ----------------------------------- */

/* A command running longer than this has the watcher answer for rank 0. */
#define KD_BUSY_AFTER_MS 200

/* Who uses the ROUTER socket: the main thread, except while a command has
 * run longer than KD_BUSY_AFTER_MS; then the watcher thread takes it
 * (taken) and answers busy until the main thread, at the command's end,
 * writes to the wake pipe (which the watcher's zmq_poll watches) and waits
 * for it back. A short command does not wake the watcher: it sleeps until
 * the deadline of the command it last saw, and finds there the same
 * command (it takes the socket), a later one (it sleeps until that one's
 * deadline) or none (it waits, idle, for the next command, which signals
 * it). Before, every command woke it twice, the second time on the
 * reply's path (the main thread waited for it to let go of a mutex). ZeroMQ
 * allows a socket to move between threads across a full memory barrier,
 * which the mutex is. */
static struct {
    pthread_mutex_t mu;        /* guards the fields below, up to thread */
    pthread_cond_t cv;         /* to the watcher (monotonic clock): a command
                                  started while it was idle; quit */
    pthread_cond_t back;       /* to the main thread: the socket is given back */
    void *sock;                /* rank 0's ROUTER socket */
    int wake[2];               /* pipe: main thread -> watcher, "give it back" */
    bool running;              /* a command runs on the ranks */
    bool idle;                 /* the watcher waits for a command, no deadline */
    bool taken;                /* the watcher has the socket */
    bool quit;                 /* the front end stops: the watcher ends */
    double since;              /* monotonic time the running command started */
    char cmd[64];              /* the running command's name */
    pthread_t thread;          /* the watcher */
    bool started;              /* the watcher thread exists */
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER, .back = PTHREAD_COND_INITIALIZER,
           .wake = {-1, -1}};

static double now_s(void);
/* A request's parts, in an array grown as they arrive (recv_request). */
typedef struct {
    zmq_msg_t *m;              /* parts received and kept */
    size_t cap;                /* room in m */
} kd_parts;

static int recv_request(void *sock, kd_parts *p, bool *too_many, uint64_t *total);
static const char *check_header(const char *hdr, size_t len, char *why, size_t whylen,
                                kd_req_id *id, char *cmd, size_t cmdlen);

/* Answer one request that arrived while a command runs: busy. */
static void answer_busy(void *sock)
{
    static kd_parts req; /* the watcher's own */
    bool too_many;
    uint64_t total;
    int n = recv_request(sock, &req, &too_many, &total);
    zmq_msg_t *parts = req.m;
    if (n >= 3 && zmq_msg_size(&parts[1]) == 0) {
        char why[256], name[64];
        kd_req_id id = {false, 0};
        check_header(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), why, sizeof why,
                     &id, name, sizeof name);
        char msg[512];
        snprintf(msg, sizeof msg, "kodiakd is still running '%s' since %.0f s; a rank may "
                 "be stopped (or the command is long): try again later", watch.cmd,
                 now_s() - watch.since);
        send_reply(sock, &parts[0], error_reply("ServerBusyError", msg), NULL, id);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

static void *watcher(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watch.mu);
    while (!watch.quit) {
        if (!watch.running) {
            watch.idle = true;
            pthread_cond_wait(&watch.cv, &watch.mu);
            watch.idle = false;
            continue;
        }
        double due = watch.since + KD_BUSY_AFTER_MS * 1e-3, now = now_s();
        if (now < due) {
            double at = due + 1e-4; /* just past it: no early wake to sleep again */
            struct timespec ts = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
            pthread_cond_timedwait(&watch.cv, &watch.mu, &ts);
            continue; /* look again: the same command, a later one, or none */
        }
        /* one command has run KD_BUSY_AFTER_MS: answer for rank 0 */
        watch.taken = true;
        pthread_mutex_unlock(&watch.mu);
        for (;;) {
            zmq_pollitem_t items[2] = {{NULL, watch.wake[0], ZMQ_POLLIN, 0},
                                       {watch.sock, 0, ZMQ_POLLIN, 0}};
            int r = zmq_poll(items, 2, -1);
            if (r > 0 && (items[0].revents & ZMQ_POLLIN))
                break; /* the main thread wants it back (or we quit) */
            if (r > 0 && (items[1].revents & ZMQ_POLLIN))
                answer_busy(watch.sock);
        }
        pthread_mutex_lock(&watch.mu);
        watch.taken = false;
        pthread_cond_signal(&watch.back);
        /* the main thread cleared running before it asked: idle next */
    }
    pthread_mutex_unlock(&watch.mu);
    return NULL;
}

/* The main thread: `cmd` starts running (the watcher may take the socket
 * after KD_BUSY_AFTER_MS). */
static void watch_start(const char *cmd)
{
    if (!watch.started)
        return;
    pthread_mutex_lock(&watch.mu);
    watch.running = true;
    watch.since = now_s();
    snprintf(watch.cmd, sizeof watch.cmd, "%s", cmd);
    if (watch.idle)
        pthread_cond_signal(&watch.cv);
    pthread_mutex_unlock(&watch.mu);
}

/* The command ended: the socket is the main thread's again (taken back if
 * the watcher has it). */
static void watch_end(void)
{
    if (!watch.started)
        return;
    pthread_mutex_lock(&watch.mu);
    watch.running = false;
    if (watch.taken) {
        char b = 1;
        ssize_t w = write(watch.wake[1], &b, 1);
        (void)w; /* a full pipe wakes the watcher as well */
        while (watch.taken)
            pthread_cond_wait(&watch.back, &watch.mu);
        char junk[64];
        while (read(watch.wake[0], junk, sizeof junk) > 0) {}
    }
    pthread_mutex_unlock(&watch.mu);
}

/* Start the watcher. Without it (no thread, no pipe) the server works as
 * before, without busy answers. */
static void watch_init(void *sock)
{
    watch.sock = sock;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return;
    int ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&watch.cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (ok && pipe2(watch.wake, O_CLOEXEC | O_NONBLOCK) == 0)
        watch.started = pthread_create(&watch.thread, NULL, watcher, NULL) == 0;
    if (watch.started)
        pthread_setname_np(watch.thread, "kd-watch"); /* tests find it by name */
    if (!watch.started)
        fprintf(stderr, "kodiakd: no watcher thread: requests during a long command "
                        "wait for it instead of being answered busy\n");
}

static void watch_stop(void)
{
    if (!watch.started)
        return;
    pthread_mutex_lock(&watch.mu);
    watch.quit = true;
    pthread_cond_signal(&watch.cv);
    if (watch.taken) {
        char b = 1;
        ssize_t w = write(watch.wake[1], &b, 1);
        (void)w;
    }
    pthread_mutex_unlock(&watch.mu);
    pthread_join(watch.thread, NULL);
    watch.started = false;
}

/* Broadcast `hdr` and run it everywhere; returns true if the server stops.
 * `from` is a message of the request (its sender's credentials). */
static bool dispatch(void *sock, zmq_msg_t *ident, const char *hdr, size_t len,
                     zmq_msg_t *frames, int nframes, const char *name, kd_req_id id,
                     zmq_msg_t *from)
{
    static int trace = -1; /* KD_DSD_TRACE: a command's start and reply */
    if (trace < 0)
        trace = getenv("KD_DSD_TRACE") != NULL;
    if (trace)
        fprintf(stderr, "dsd r0 received %s @%.6f\n", name, now_s());
    watch_start(name);
    send_length((int64_t)len);
    MPI_Bcast((void *)hdr, (int)len, MPI_CHAR, 0, kd_srv.comm);
    kd_cmd c;
    memset(&c, 0, sizeof c);
    peer_of(from, &c.peer_pid, &c.peer_uid);
    int64_t peer[2] = {c.peer_pid, c.peer_uid};
    MPI_Bcast(peer, 2, MPI_INT64_T, 0, kd_srv.comm);
    c.nframes = nframes;
    const void **fp = nframes ? calloc((size_t)nframes, sizeof *fp) : NULL;
    size_t *fl = nframes ? calloc((size_t)nframes, sizeof *fl) : NULL;
    if (nframes && (!fp || !fl))
        c.nframes = 0; /* the command then reports its frames missing */
    for (int i = 0; i < c.nframes; i++) {
        fp[i] = zmq_msg_data(&frames[i]);
        fl[i] = zmq_msg_size(&frames[i]);
    }
    c.frame = fp;
    c.frame_len = fl;
    json_object *reply = run_command(&c, hdr, len);
    free(fp);
    free(fl);
    watch_end();
    if (trace)
        fprintf(stderr, "dsd r0 replies to %s @%.6f\n", name, now_s());
    if (ident)
        send_reply(sock, ident, reply, &c, id);
    else
        json_object_put(reply);
    /* the catalog snapshots the command's commits retired, deleted now
     * that the client has its answer (0.1-0.4 ms a commit, s12) */
    kd_ds_cleanup();
    return c.shutdown;
}


/* The first integer literal of the JSON text `hdr` that json-c would clamp
 * without a word (below -2^63, or above 2^64 - 1): its start, else NULL.
 * -9223372036854775809 would otherwise pass for INT64_MIN. Strings are
 * skipped; numbers with a fraction or exponent are doubles, never clamped. */
static const char *clamped_integer(const char *hdr, size_t len, size_t *toklen)
{
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = hdr[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
            continue;
        }
        if (ch != '-' && (ch < '0' || ch > '9'))
            continue;
        size_t start = i, d;
        bool neg = ch == '-';
        if (neg)
            i++;
        while (i < len && hdr[i] == '0')
            i++;
        d = i;
        while (i < len && hdr[i] >= '0' && hdr[i] <= '9')
            i++;
        size_t nd = i - d;
        bool fraction = i < len && (hdr[i] == '.' || hdr[i] == 'e' || hdr[i] == 'E');
        const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
        if (!fraction && (nd > strlen(lim) || (nd == strlen(lim) && memcmp(hdr + d, lim, nd) > 0))) {
            *toklen = i - start;
            return hdr + start;
        }
        i--; /* the loop's i++ lands on the character after the number */
    }
    return NULL;
}

/* Check a request header on rank 0: a JSON object with a known "cmd". */
static const char *check_header(const char *hdr, size_t len, char *why, size_t whylen,
                                kd_req_id *id, char *name, size_t namelen)
{
    id->has = false;
    name[0] = '\0';
    if (len > KD_FRAME_MAX) { /* (ZeroMQ drops such a frame before we see it) */
        snprintf(why, whylen, "request header of %zu bytes is too large (limit %d bytes)",
                 len, KD_FRAME_MAX);
        return "ValueError";
    }
    json_tokener *tok = json_tokener_new();
    json_object *req = json_tokener_parse_ex(tok, hdr, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    const char *type = NULL, *bad;
    size_t badlen;
    json_object *cmd = NULL;
    if (!req || jerr != json_tokener_success || used != len) {
        snprintf(why, whylen, "request header is not valid JSON");
        type = "ValueError";
    } else if ((bad = clamped_integer(hdr, len, &badlen))) {
        snprintf(why, whylen, "integer %.*s in the request is out of range (int64 or uint64)",
                 badlen > 40 ? 40 : (int)badlen, bad);
        type = "ValueError";
    } else if (!json_object_is_type(req, json_type_object) ||
               !json_object_object_get_ex(req, "cmd", &cmd) ||
               !json_object_is_type(cmd, json_type_string)) {
        snprintf(why, whylen, "request header must be a JSON object with a \"cmd\" string");
        type = "ValueError";
    } else if ((size_t)json_object_get_string_len(cmd) != strlen(json_object_get_string(cmd))) {
        /* "shutdown\u0000x" must not pass for "shutdown" */
        snprintf(why, whylen, "command name contains a NUL character");
        type = "ValueError";
    } else if (!find_command(json_object_get_string(cmd))) {
        snprintf(why, whylen, "unknown command '%.100s'", json_object_get_string(cmd));
        type = "ValueError";
    } else {
        snprintf(name, namelen, "%s", json_object_get_string(cmd));
    }
    json_object *idv;
    if (req && json_object_is_type(req, json_type_object) &&
        json_object_object_get_ex(req, "id", &idv) && json_object_is_type(idv, json_type_int)) {
        id->has = true;
        id->v = json_object_get_int64(idv);
    }
    if (req)
        json_object_put(req);
    return type;
}

/* Parts one request may have: identity, delimiter, header and enough binary
 * frames of KD_FRAME_MAX bytes for the largest request, plus one per array
 * of a request of many small arrays. */
static uint64_t max_request_parts(void)
{
    uint64_t n = 3 + KD_MAX_FRAMES + kd_srv.max_request / KD_FRAME_MAX + 1;
    return n > (1u << 30) ? (1u << 30) : n; /* counts are ints */
}

/* Receive every part of the next message into p (grown as needed). Parts
 * past max_request_parts(), or once they add up to more than max_request,
 * are closed at once (*too_many); *total counts the bytes of all of them.
 * libzmq has already buffered the whole message when the first part can be
 * read: what bounds that is ZMQ_MAXMSGSIZE per frame (see main). */
static int recv_request(void *sock, kd_parts *p, bool *too_many, uint64_t *total)
{
    int n = 0, more = 1;
    uint64_t max_parts = max_request_parts();
    *too_many = false;
    *total = 0;
    while (more) {
        zmq_msg_t scratch;
        if ((size_t)n == p->cap && p->cap < max_parts) {
            size_t want = p->cap ? p->cap * 2 : 16;
            if (want > max_parts)
                want = (size_t)max_parts;
            zmq_msg_t *bigger = realloc(p->m, want * sizeof *bigger);
            if (bigger) {
                p->m = bigger;
                p->cap = want;
            }
        }
        zmq_msg_t *m = (size_t)n < p->cap ? &p->m[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        *total += zmq_msg_size(m);
        if ((size_t)n < p->cap && (n < 3 || *total <= kd_srv.max_request))
            n++;
        else {
            *too_many = true;
            zmq_msg_close(m);
        }
    }
    return n;
}

static void front_end(void *sock)
{
    kd_parts req = {NULL, 0}; /* the parts of the request being read */
    zmq_pollitem_t items[2] = {{sock, 0, ZMQ_POLLIN, 0}, {NULL, stop_pipe[0], ZMQ_POLLIN, 0}};
    int nitems = stop_pipe[0] >= 0 ? 2 : 1;
    watch_init(sock);
    for (;;) {
        if (stop_requested) {
            const char *bye = "{\"cmd\":\"shutdown\"}";
            dispatch(sock, NULL, bye, strlen(bye), NULL, 0, "shutdown", (kd_req_id){0},
                     NULL);
            break;
        }
        /* without the pipe, wake once a second to look at the flag */
        int r = zmq_poll(items, nitems, nitems == 2 ? -1 : 1000);
        if (r <= 0 || !(items[0].revents & ZMQ_POLLIN))
            continue; /* timeout, EINTR or the stop pipe: look at the flag again */
        bool too_many;
        uint64_t total;
        int n = recv_request(sock, &req, &too_many, &total);
        zmq_msg_t *parts = req.m;
        char why[256], name[64];
        const char *etype = NULL;
        kd_req_id id = {false, 0};
        if (n < 3 || zmq_msg_size(&parts[1]) != 0) {
            /* not from a REQ socket: nothing sensible to answer to */
            for (int i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            continue;
        }
        etype = check_header(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                             why, sizeof why, &id, name, sizeof name);
        if (total > kd_srv.max_request) {
            snprintf(why, sizeof why, "request of %llu bytes is larger than this server's "
                     "ranks may hold together (%llu bytes, --memory-limit); its frames "
                     "were dropped", (unsigned long long)total,
                     (unsigned long long)kd_srv.max_request);
            etype = "MemoryError";
        } else if (too_many) {
            snprintf(why, sizeof why, "request has more than %llu binary frames",
                     (unsigned long long)max_request_parts() - 3);
            etype = "ValueError";
        }
        bool stop = false;
        if (etype) {
            send_reply(sock, &parts[0], error_reply(etype, why), NULL, id);
        } else {
            /* the header is text for every rank: copy it NUL-terminated */
            size_t len = zmq_msg_size(&parts[2]);
            char *hdr = malloc(len + 1);
            if (!hdr) {
                send_reply(sock, &parts[0], error_reply("MemoryError", "out of memory"),
                           NULL, id);
            } else {
                memcpy(hdr, zmq_msg_data(&parts[2]), len);
                hdr[len] = '\0';
                stop = dispatch(sock, &parts[0], hdr, len, &parts[3], n - 3, name, id,
                                &parts[2]);
                free(hdr);
            }
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
        if (stop)
            break;
    }
    watch_stop();
    free(req.m);
}

/* ---- rank 0: the ZAP handler (who may talk to us) ------------------------------------ */

/* Compare a PLAIN password with the token without a timing leak: every byte
 * of the token is looked at whatever the password holds. */
static bool token_matches(const void *pw, size_t len)
{
    const unsigned char *p = pw, *t = (const unsigned char *)kd_srv.token;
    size_t tl = strlen(kd_srv.token);
    unsigned diff = len != tl;
    for (size_t i = 0; i < tl; i++)
        diff |= t[i] ^ (i < len ? p[i] : 0);
    return diff == 0;
}

/* The ZAP handler: a thread with a REP socket on inproc://zeromq.zap.01 of
 * rank 0's context. libzmq asks it about every client that completes the
 * PLAIN handshake (RFC 27: version, request id, domain, address, routing
 * id, mechanism, username, password) and serves the client only on "200".
 * It stops when the context is shut down. Refusals are logged at most once
 * per 10 s, with how many there were. */
static void *zap_thread(void *arg)
{
    void *zap = arg;
    time_t last_log = 0;
    unsigned long refused = 0;
    for (;;) {
        zmq_msg_t part[8];
        int n = 0, more = 1;
        bool lost = false;
        while (more) {
            zmq_msg_t scratch, *m = n < 8 ? &part[n] : &scratch;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, zap, 0) < 0) {
                zmq_msg_close(m);
                lost = true; /* ETERM: the context is shutting down */
                break;
            }
            more = zmq_msg_more(m);
            if (n < 8)
                n++;
            else
                zmq_msg_close(m);
        }
        if (lost) {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&part[i]);
            if (errno == ETERM)
                break;
            continue;
        }
        bool ok = n == 8 && zmq_msg_size(&part[0]) == 3 &&
                  memcmp(zmq_msg_data(&part[0]), "1.0", 3) == 0 &&
                  zmq_msg_size(&part[5]) == 5 &&
                  memcmp(zmq_msg_data(&part[5]), "PLAIN", 5) == 0 &&
                  token_matches(zmq_msg_data(&part[7]), zmq_msg_size(&part[7]));
        if (n >= 2) { /* a reply needs the version and request id */
            zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
            zmq_send(zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
            const char *text = ok ? "OK" : "wrong access token";
            zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(zap, ok ? "kodiak" : "", ok ? 6 : 0, ZMQ_SNDMORE);
            zmq_send(zap, "", 0, 0);
        }
        if (!ok) {
            refused++;
            time_t now = time(NULL);
            if (now - last_log >= 10) {
                char addr[128] = "?";
                if (n >= 4)
                    snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&part[3]) > 100
                             ? 100 : (int)zmq_msg_size(&part[3]),
                             (const char *)zmq_msg_data(&part[3]));
                fprintf(stderr, "kodiakd: refused %lu client(s) without the access token "
                                "(last from '%s')\n", refused, addr);
                last_log = now;
                refused = 0;
            }
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
    zmq_close(zap);
    return NULL;
}

static int write_connect_file(const char *path, const char *host, int port, const char *ipc)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    /* 0600: the access token in it lets a client act as this server's user */
    unlink(tmp); /* a stale one may have other bits; O_EXCL then makes ours */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 && fchmod(fd, 0600) != 0) { /* 0600 whatever the umask */
        close(fd);
        unlink(tmp);
        return -1;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char boot[64] = "";
    FILE *b = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (b) {
        if (!fgets(boot, sizeof boot, b))
            boot[0] = '\0';
        fclose(b);
    }
    boot[strcspn(boot, "\n\"\\")] = '\0';
    fprintf(f, "{\"host\": \"%s\", \"port\": %d, \"ranks\": %d, \"pid\": %d, "
               "\"version\": %d, \"token\": \"%s\", \"ipc\": \"%s\", \"boot_id\": \"%s\"}\n",
            host, port, kd_srv.nranks, (int)getpid(), KD_PROTOCOL_VERSION, kd_srv.token,
            ipc, boot);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct kd_options opt;
    int provided;
    /* A rank waiting in an MPI call (a collective another rank is late
     * to) yields its core between polls, unless the user chose otherwise:
     * the memory servers, the client and the other ranks often share the
     * ranks' cores, and a rank spinning in MPI kept famd from answering the
     * late rank's FAM reads (ds_bench's queries on 2 ranks of this 2-core
     * machine: 72-93 ms spinning, 41-56 ms yielding; docs/PERFORMANCE.md).
     * OpenMPI reads it in MPI_Init. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    catch_stop_signals();
    /* tests: a stop asked while the ranks start (test_server.py) */
    kd_test_hold("KD_TEST_START_HOLD_MS", "start held back before MPI_Init");
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_dup(MPI_COMM_WORLD, &kd_srv.comm);
    MPI_Comm_rank(kd_srv.comm, &kd_srv.rank);
    MPI_Comm_size(kd_srv.comm, &kd_srv.nranks);

    int ok = parse_options(argc, argv, &opt) == 0;
    if (kd_srv.rank == 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        stop_pipe[0] = stop_pipe[1] = -1; /* fall back to a 1 s poll timeout */
    catch_stop_signals();

    /* the access token, and a random name for rank 0's Unix socket (so no
     * one can take it first): only rank 0 needs them */
    char ipc_name[64] = "";
    if (kd_srv.rank == 0) {
        unsigned char raw[40] = {0};
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            fprintf(stderr, "kodiakd: getrandom failed: %s\n", strerror(errno));
            ok = 0;
        }
        for (int i = 0; i < 32; i++)
            snprintf(kd_srv.token + 2 * i, 3, "%02x", raw[i]);
        int k = snprintf(ipc_name, sizeof ipc_name, "ipc://@kodiakd-%d-", (int)getpid());
        for (int i = 32; i < 40; i++, k += 2)
            snprintf(ipc_name + k, sizeof ipc_name - (size_t)k, "%02x", raw[i]);
        explicit_bzero(raw, sizeof raw);
    }
    kd_bell_setup();
    kd_srv.mem_limit = opt.memory_limit;
    kd_srv.request_timeout = opt.request_timeout;
    if (!kd_srv.mem_limit) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        kd_srv.mem_limit = (uint64_t)pages * (uint64_t)psz / (uint64_t)kd_srv.nranks;
    }
    {   /* big buffers made ahead where this host has a core to spare */
        MPI_Comm here;
        int nhere = 1;
        if (MPI_Comm_split_type(kd_srv.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &here) ==
            MPI_SUCCESS) {
            MPI_Comm_size(here, &nhere);
            MPI_Comm_free(&here);
        }
        kd_ahead_start(nhere);
    }
    /* files a kill -9'd rank (of any Kodiak program of ours) left there */
    fam_shm_sweep();
    kd_register_core();
    kd_register_ops();
    kd_register_reduce();
    kd_register_index();
    kd_register_sort();
    kd_register_fam();
    kd_register_math();
    kd_register_csv();
    kd_register_ds();
    kd_register_h5();
    kd_register_dsagg();

    /* one message may carry a whole array, but not more than the arrays
     * this server may hold: the limit of all ranks together (an array that
     * fits spread over the ranks arrives in one frame) */
    kd_srv.max_request = kd_srv.mem_limit > (1ull << 62) / (uint64_t)kd_srv.nranks
                             ? (1ull << 62) : kd_srv.mem_limit * (uint64_t)kd_srv.nranks;

    void *ctx = NULL, *sock = NULL, *zap = NULL;
    pthread_t zap_tid;
    bool zap_running = false;
    int port = 0;
    if (kd_srv.rank == 0 && ok) {
        ctx = zmq_ctx_new();
        /* the ZAP handler must listen before the first client connects:
         * without one, libzmq lets every PLAIN client in */
        zap = zmq_socket(ctx, ZMQ_REP);
        if (!zap || zmq_bind(zap, "inproc://zeromq.zap.01") != 0 ||
            pthread_create(&zap_tid, NULL, zap_thread, zap) != 0) {
            fprintf(stderr, "kodiakd: cannot start the ZAP handler: %s\n", zmq_strerror(errno));
            if (zap)
                zmq_close(zap);
            ok = 0;
        } else {
            zap_running = true;
        }
        sock = zmq_socket(ctx, ZMQ_ROUTER);
        int linger = 0, one = 1;
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
        /* every client must present the token (PLAIN password, checked by
         * the ZAP handler); no message is read from one that does not */
        zmq_setsockopt(sock, ZMQ_PLAIN_SERVER, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "kodiakd", 7);
        /* a frame over KD_FRAME_MAX makes ZeroMQ drop the connection as
         * soon as it reads the frame's length. This also bounds what a
         * client without the token can make us buffer: libzmq reads the
         * PLAIN handshake's commands with the same limit, before the ZAP
         * handler has looked at the token. Bigger arrays come in several
         * frames; a request whose frames add up to more than max_request
         * is refused (front_end). A handshake must end within 10 s. */
        int64_t maxmsg = KD_FRAME_MAX;
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
        int hs = 10000;
        zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
        char ep[512];
        if (opt.port)
            snprintf(ep, sizeof ep, "tcp://%s:%d", opt.host, opt.port);
        else
            snprintf(ep, sizeof ep, "tcp://%s:*", opt.host);
        if (!ok) {
            /* no ZAP handler: do not listen */
        } else if (zmq_bind(sock, ep) != 0) {
            fprintf(stderr, "kodiakd: cannot listen on %s: %s\n", ep, zmq_strerror(errno));
            ok = 0;
        } else {
            char last[512];
            size_t ll = sizeof last;
            zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &ll);
            const char *colon = strrchr(last, ':');
            port = colon ? atoi(colon + 1) : opt.port;
            if (zmq_bind(sock, ipc_name) != 0) {
                fprintf(stderr, "kodiakd: cannot listen on %s: %s\n", ipc_name,
                        zmq_strerror(errno));
                ok = 0;
            } else if (opt.connect_file &&
                       write_connect_file(opt.connect_file, opt.host, port, ipc_name)) {
                fprintf(stderr, "kodiakd: cannot write connect file %s: %s\n",
                        opt.connect_file, strerror(errno));
                ok = 0;
            }
        }
    }
    /* every rank learns whether rank 0 came up */
    MPI_Bcast(&ok, 1, MPI_INT, 0, kd_srv.comm);
    if (!ok) {
        if (sock)
            zmq_close(sock);
        if (ctx) {
            zmq_ctx_shutdown(ctx); /* wakes the ZAP handler, which leaves */
            if (zap_running)
                pthread_join(zap_tid, NULL);
            zmq_ctx_term(ctx);
        }
        MPI_Finalize();
        return 2;
    }
    if (kd_srv.rank == 0) {
        printf("kodiakd ready tcp://%s:%d ranks %d memory-limit %llu\n", opt.host, port,
               kd_srv.nranks, (unsigned long long)kd_srv.mem_limit);
        fflush(stdout);
        front_end(sock);
        /* first thing after the last command: mpirun kills the ranks one
         * second after its SIGTERM, and open ingests' batches (rank 0
         * holds them) are better deleted now than left for ds_reclaim */
        kd_ds_shutdown();
        zmq_close(sock);
        zmq_ctx_shutdown(ctx);
        pthread_join(zap_tid, NULL);
        zmq_ctx_term(ctx);
        if (opt.connect_file)
            unlink(opt.connect_file);
    } else {
        worker_loop();
    }
    /* rank 0 decides for everyone whether the launcher is stopping us */
    int quick = kd_srv.rank == 0 && stop_by_launcher;
    MPI_Bcast(&quick, 1, MPI_INT, 0, kd_srv.comm);
    /* libfam's shm endpoint keeps a 16 MiB file under /dev/shm until it
     * is closed: close it on every way out */
    kd_fam_shutdown();
    if (quick) {
        if (kd_srv.rank == 0)
            printf("kodiakd stopped (signal from mpirun)\n");
        fflush(stdout);
        _exit(0);
    }
    kd_symtab_clear();
    MPI_Comm_free(&kd_srv.comm);
    MPI_Finalize();
    if (kd_srv.rank == 0) {
        /* every rank got through MPI_Finalize: a clean stop, for the log */
        printf("kodiakd stopped\n");
        fflush(stdout);
    }
    return 0;
}

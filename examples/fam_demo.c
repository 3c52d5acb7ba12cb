/* SPDX-License-Identifier: Apache-2.0 */
/* fam_demo.c — a tour of libfam: region, named items, put/get, atomics
 * from several processes at once.
 *
 *   FAM_SERVERS=127.0.0.1:7000 ./fam_demo [processes] [adds-per-process]
 *
 * `make demo` starts two famd processes and runs this against them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fam/fam.h"

#define CHECK(call)                                                         \
    do {                                                                    \
        int rc_ = (call);                                                   \
        if (rc_ < 0) {                                                      \
            fprintf(stderr, "demo: %s failed: %s (%s)\n", #call,            \
                    fam_last_error(), fam_strerror(rc_));                   \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

static void adder(int id, int adds)
{
    fam_t *f;
    fam_item_t *counter, *sums;
    CHECK(fam_initialize(NULL, &f)); /* servers from $FAM_SERVERS */
    CHECK(fam_lookup(f, "counter", "demo", &counter));
    CHECK(fam_lookup(f, "sums", "demo", &sums));
    for (int i = 0; i < adds; i++) {
        int64_t old;
        CHECK(fam_fetch_add_int64(f, counter, 0, 1, &old));
    }
    CHECK(fam_add_int64(f, sums, 8 * (uint64_t)id, id + 1));
    fam_release(counter);
    fam_release(sums);
    CHECK(fam_finalize(f));
    exit(0);
}

int main(int argc, char **argv)
{
    int procs = argc > 1 ? atoi(argv[1]) : 4;
    int adds = argc > 2 ? atoi(argv[2]) : 10000;
    fam_t *f;
    CHECK(fam_initialize(NULL, &f));
    printf("connected to %d memory server(s): %s\n", fam_num_servers(f),
           getenv("FAM_SERVERS"));

    fam_region_t *r;
    if (fam_lookup_region(f, "demo", &r) == 0) CHECK(fam_destroy_region(f, r));
    CHECK(fam_create_region(f, "demo", 64 << 20, 0600, NULL, &r));
    fam_stat_t st;
    CHECK(fam_stat_region(f, r, &st));
    printf("created region '%s': %" PRIu64 " bytes, mode %03o, owner uid %u\n",
           st.name, st.size, (unsigned)st.perm, st.uid);

    fam_item_t *greeting, *counter, *sums;
    CHECK(fam_allocate(f, "greeting", 4096, 0644, r, &greeting));
    CHECK(fam_allocate(f, "counter", 8, 0600, r, &counter));
    CHECK(fam_allocate(f, "sums", 8 * (uint64_t)procs, 0600, r, &sums));
    const char msg[] = "hello from fabric-attached memory";
    CHECK(fam_put_blocking(f, msg, greeting, 100, sizeof msg));
    char back[sizeof msg];
    CHECK(fam_get_blocking(f, back, greeting, 100, sizeof back));
    printf("wrote %zu bytes to 'greeting' at offset 100, read back: \"%s\"\n",
           sizeof msg, back);

    double big[1000];
    for (int i = 0; i < 1000; i++) big[i] = i * 0.5;
    CHECK(fam_put_nonblocking(f, big, greeting, 0, 0)); /* empty: a no-op */
    fam_item_t *vec;
    CHECK(fam_allocate(f, NULL, sizeof big, 0600, r, &vec));
    CHECK(fam_put_nonblocking(f, big, vec, 0, sizeof big));
    CHECK(fam_quiet(f));
    double x;
    CHECK(fam_get_blocking(f, &x, vec, 999 * sizeof(double), sizeof x));
    printf("unnamed item of 1000 doubles written non-blocking; element 999 "
           "reads %.1f\n", x);

    printf("starting %d processes, each doing %d fetch_add(+1) on 'counter'\n",
           procs, adds);
    fflush(stdout);
    for (int p = 0; p < procs; p++)
        if (fork() == 0) adder(p, adds);
    int failed = 0;
    for (int p = 0; p < procs; p++) {
        int status;
        wait(&status);
        failed |= !WIFEXITED(status) || WEXITSTATUS(status);
    }
    int64_t total;
    CHECK(fam_fetch_int64(f, counter, 0, &total));
    printf("counter = %" PRId64 " (expected %d): %s\n", total, procs * adds,
           total == (int64_t)procs * adds && !failed ? "exact" : "WRONG");
    int64_t s[64] = {0};
    CHECK(fam_get_blocking(f, s, sums, 0, 8 * (uint64_t)procs));
    printf("each process added its id+1 to its own slot:");
    for (int p = 0; p < procs; p++) printf(" %" PRId64, s[p]);
    printf("\n");

    int64_t old;
    CHECK(fam_compare_swap_int64(f, counter, 0, total, -1, &old));
    CHECK(fam_fetch_int64(f, counter, 0, &total));
    printf("compare_swap(expected=%" PRId64 ", new=-1) saw %" PRId64
           "; counter is now %" PRId64 "\n", old, old, total);

    int rc = fam_get_blocking(f, back, greeting, 4090, 100);
    printf("reading past the end of 'greeting' is refused: %s\n",
           rc == FAM_EOUTOFRANGE ? fam_last_error() : "NOT REFUSED");

    fam_release(greeting);
    fam_release(counter);
    fam_release(sums);
    fam_release(vec);
    CHECK(fam_destroy_region(f, r));
    printf("destroyed region 'demo'\n");
    CHECK(fam_finalize(f));
    return total == -1 && !failed ? 0 : 1;
}

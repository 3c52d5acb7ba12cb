/* SPDX-License-Identifier: Apache-2.0 */
/* stream_triad.c — the C baseline of kd_bench's stream row: STREAM's triad
 * a[i] = b[i] + alpha * c[i] over N float64 split in blocks over MPI ranks
 * (the same cores and layout kodiakd uses), best of --trials, printed as
 * one line "triad N ranks seconds GB/s" with GB/s = 3 * 8 * N / seconds.
 *
 *   mpirun -np 2 stream_triad [N] [trials] */
#define _GNU_SOURCE
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static double *alloc(size_t n)
{
    size_t bytes = n * sizeof(double) + 64;
    double *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    madvise(p, bytes, MADV_HUGEPAGE); /* as kodiakd's arrays */
    return p;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    long long n = argc > 1 ? atoll(argv[1]) : 100000000LL;
    int trials = argc > 2 ? atoi(argv[2]) : 5;
    long long lo = n * rank / nranks, hi = n * (rank + 1) / nranks, m = hi - lo;
    double *a = alloc((size_t)m), *b = alloc((size_t)m), *c = alloc((size_t)m);
    for (long long i = 0; i < m; i++) { /* first touch outside the timing */
        a[i] = 0;
        b[i] = (double)(lo + i);
        c[i] = 1.0 / (double)(lo + i + 1);
    }
    const double alpha = 3.0;
    double best = 1e30, check = 0;
    for (int t = 0; t < trials; t++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (long long i = 0; i < m; i++)
            a[i] = b[i] + alpha * c[i];
        double dt = MPI_Wtime() - t0, worst;
        MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (worst < best)
            best = worst;
        check += a[m / 2];
    }
    double all;
    MPI_Reduce(&check, &all, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("triad %lld %d %.6f %.3f (check %g)\n", n, nranks, best, 24.0 * n / best / 1e9, all);
    MPI_Finalize();
    return 0;
}

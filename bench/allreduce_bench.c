/*
 * allreduce_bench.c - time of a gradient all-reduce between MPI ranks, as
 * st3d train runs it (st3d_dist_allreduce_start + wait_all: in-place sums
 * of float32 buckets of 25 MiB), for the gradient sizes of the networks of
 * the paper.  Run under mpirun; rank 0 prints one row per size:
 *   floats, MiB, milliseconds (median of the rounds), bus bandwidth
 *   (2 (p - 1) / p x bytes / time: what each rank sends over its link in a
 *   ring all-reduce, per second).
 *   mpirun -np 2 build/allreduce_bench                     # shared memory
 *   mpirun -np 2 --mca btl tcp,self build/allreduce_bench  # TCP over loopback
 * Uses only the public header (st3d.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "st3d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define ROUNDS 7
#define BUCKET ((int64_t)25 << 18) /* 25 MiB of floats */

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int blocking = argc > 1 && !strcmp(argv[1], "--blocking");
    st3d_error err = {0};
    st3d_dist *d = st3d_dist_init(NULL, &err);
    if (!d) {
        fprintf(stderr, "allreduce_bench: %s\n", err.msg);
        return 1;
    }
    /* 1 MiB, 4 MiB, then the gradients of 3D ResNet-18 (33.2 M parameters),
     * ResNet-50 (46.2 M) and ResNeXt-101 (47.7 M), Hara et al.'s Table 2 */
    static const int64_t sizes[] = {1 << 18, 1 << 20, 33160000, 46240000, 47650000};
    int p = st3d_dist_size(d);
    float *buf = malloc(sizeof(float) * (size_t)sizes[4]);
    if (!buf) return 1;
    for (int64_t i = 0; i < sizes[4]; i++) buf[i] = 1e-3f * (float)(i % 1000);
    if (st3d_dist_rank(d) == 0)
        printf("ranks %d\n%12s %9s %10s %12s\n", p, "floats", "MiB", "ms", "bus GB/s");
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        double t[ROUNDS + 1];
        for (int r = 0; r <= ROUNDS; r++) { /* round 0 warms up (not counted) */
            st3d_dist_barrier(d, &err);
            double t0 = now();
            for (int64_t at = 0; at < sizes[s]; at += BUCKET) {
                int64_t n = sizes[s] - at < BUCKET ? sizes[s] - at : BUCKET;
                if (blocking ? st3d_dist_allreduce_f32(d, buf + at, n, &err) != 0
                             : st3d_dist_allreduce_start(d, buf + at, n, &err) != 0)
                    break;
            }
            if (st3d_dist_wait_all(d, &err) != 0) {
                fprintf(stderr, "allreduce_bench: %s\n", err.msg);
                return 1;
            }
            t[r] = now() - t0;
        }
        qsort(t + 1, ROUNDS, sizeof *t, cmp);
        double bytes = 4.0 * (double)sizes[s], med = t[1 + ROUNDS / 2];
        if (st3d_dist_rank(d) == 0)
            printf("%12lld %9.1f %10.2f %12.2f\n", (long long)sizes[s], bytes / 1048576.0, 1e3 * med,
                   2.0 * (p - 1) / p * bytes / med / 1e9);
    }
    free(buf);
    st3d_dist_free(d);
    return 0;
}

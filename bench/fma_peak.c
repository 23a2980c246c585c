/*
 * fma_peak: measures this CPU's fp32 peak, for the "share of peak" column of
 * the benchmarks (bench/bench_networks.py, bench/bench_families.py).
 *
 * Every OpenMP thread runs 12 independent chains of 512-bit (AVX-512) or
 * 256-bit (AVX2) fused multiply-adds on registers only, long enough for the
 * clock to settle, and the best of 5 timed rounds is printed as
 *   PEAK gflops=<all threads> per_thread=<one thread> isa=<avx512|avx2>
 * 12 chains hide the FMA latency (4 cycles) on two FMA pipes.  A nominal
 * "cores x FMA units x lanes x clock" guess needs the turbo clock, which a
 * virtual machine does not show; measuring gives the clock actually reached.
 *
 *   fma_peak [threads]
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define ITERS 20000000L

/* The 12 chains x0..x11, written out so that they stay in registers. */
#define FMA12(fma)                                                              \
    x0 = fma(x0, a, b); x1 = fma(x1, a, b); x2 = fma(x2, a, b);                 \
    x3 = fma(x3, a, b); x4 = fma(x4, a, b); x5 = fma(x5, a, b);                 \
    x6 = fma(x6, a, b); x7 = fma(x7, a, b); x8 = fma(x8, a, b);                 \
    x9 = fma(x9, a, b); x10 = fma(x10, a, b); x11 = fma(x11, a, b)
#define SUM12(add)                                                              \
    add(add(add(add(x0, x1), add(x2, x3)), add(add(x4, x5), add(x6, x7))),      \
        add(add(x8, x9), add(x10, x11)))

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* FLOPs done: ITERS x CHAINS x 16 lanes x 2; returns a value so the
 * compiler cannot drop the loop. */
__attribute__((target("avx512f"))) static float run_avx512(float seed)
{
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 x0 = _mm512_set1_ps(seed), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0,
           x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
    for (long i = 0; i < ITERS; i++) {
        FMA12(_mm512_fmadd_ps);
    }
    return _mm512_reduce_add_ps(SUM12(_mm512_add_ps));
}

/* FLOPs done: ITERS x CHAINS x 8 lanes x 2. */
__attribute__((target("avx2,fma"))) static float run_avx2(float seed)
{
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 x0 = _mm256_set1_ps(seed), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0,
           x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
    for (long i = 0; i < ITERS; i++) {
        FMA12(_mm256_fmadd_ps);
    }
    float lanes[8], s = 0;
    _mm256_storeu_ps(lanes, SUM12(_mm256_add_ps));
    for (int l = 0; l < 8; l++) s += lanes[l];
    return s;
}

/* Best GFLOP/s of 5 rounds with `threads` threads. */
static double measure(int threads, int avx512, float *sink)
{
    const double flops = (double)ITERS * CHAINS * (avx512 ? 16 : 8) * 2 * threads;
    double best = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
#pragma omp parallel num_threads(threads)
        {
            float s = avx512 ? run_avx512((float)omp_get_thread_num())
                             : run_avx2((float)omp_get_thread_num());
#pragma omp atomic
            *sink += s;
        }
        double g = flops / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
    if (threads < 1) {
        fprintf(stderr, "fma_peak: threads must be >= 1, got '%s'\n", argv[1]);
        return 2;
    }
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f");
    if (!avx512 && !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "fma_peak: this CPU has neither AVX-512 nor FMA\n");
        return 1;
    }
    float sink = 0;
    double one = measure(1, avx512, &sink);
    double all = measure(threads, avx512, &sink);
    printf("PEAK gflops=%.1f per_thread=%.1f threads=%d isa=%s (checksum %g)\n",
           all, one, threads, avx512 ? "avx512" : "avx2", (double)sink);
    return 0;
}

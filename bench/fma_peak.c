/*
 * fma_peak: measures this CPU's fp32 peak, for the "share of peak" column of
 * the benchmarks (bench/bench_networks.py, bench/bench_families.py).
 *
 * Every OpenMP thread runs 12 independent chains of 512-bit (AVX-512) or
 * 256-bit (AVX2) fused multiply-adds on registers only, long enough for the
 * clock to settle, and the best of 5 timed rounds is printed as
 *   PEAK gflops=<all threads> per_thread=<one thread> isa=<avx512|avx2>
 * 12 chains hide the FMA latency (4 cycles) on two FMA pipes.  Each chain
 * starts from its own value: started from one value, the compiler proved
 * the 12 chains equal and kept one FMA per iteration (seen in the
 * disassembly), and the peak came out 12x too high.  A test counts the FMA
 * instructions of the compiled loops (engine_fma_peak_loop, with objdump),
 * and the program prints the FLOPs per cycle
 * at the clock /proc/cpuinfo shows, next to the most 2 FMA units can do
 * (2 x lanes x 2): a figure above it means a fault, or a turbo clock above
 * the one shown (a virtual machine shows the nominal one).
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
    __m512 x0 = _mm512_set1_ps(seed), x1 = _mm512_set1_ps(seed + 1), x2 = _mm512_set1_ps(seed + 2),
           x3 = _mm512_set1_ps(seed + 3), x4 = _mm512_set1_ps(seed + 4), x5 = _mm512_set1_ps(seed + 5),
           x6 = _mm512_set1_ps(seed + 6), x7 = _mm512_set1_ps(seed + 7), x8 = _mm512_set1_ps(seed + 8),
           x9 = _mm512_set1_ps(seed + 9), x10 = _mm512_set1_ps(seed + 10), x11 = _mm512_set1_ps(seed + 11);
    for (long i = 0; i < ITERS; i++) {
        FMA12(_mm512_fmadd_ps);
    }
    return _mm512_reduce_add_ps(SUM12(_mm512_add_ps));
}

/* FLOPs done: ITERS x CHAINS x 8 lanes x 2. */
__attribute__((target("avx2,fma"))) static float run_avx2(float seed)
{
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 x0 = _mm256_set1_ps(seed), x1 = _mm256_set1_ps(seed + 1), x2 = _mm256_set1_ps(seed + 2),
           x3 = _mm256_set1_ps(seed + 3), x4 = _mm256_set1_ps(seed + 4), x5 = _mm256_set1_ps(seed + 5),
           x6 = _mm256_set1_ps(seed + 6), x7 = _mm256_set1_ps(seed + 7), x8 = _mm256_set1_ps(seed + 8),
           x9 = _mm256_set1_ps(seed + 9), x10 = _mm256_set1_ps(seed + 10), x11 = _mm256_set1_ps(seed + 11);
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
    /* the clock the kernel shows (nominal in a virtual machine) */
    double mhz = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1) break;
    if (f) fclose(f);
    int lanes = avx512 ? 16 : 8;
    printf("PEAK gflops=%.1f per_thread=%.1f threads=%d isa=%s (checksum %g)\n",
           all, one, threads, avx512 ? "avx512" : "avx2", (double)sink);
    if (mhz > 0)
        printf("CHECK flops_per_cycle=%.1f at %.0f MHz (one thread); 2 FMA units of %d lanes do at most %d\n",
               one * 1e3 / mhz, mhz, lanes, 2 * lanes * 2);
    return 0;
}

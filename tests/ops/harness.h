/*
 * harness.h - the operator tests' common machinery.
 *
 * A *case* is one operator at one geometry (and layout, mode): the test
 * draws inputs, runs the naive reference (ref_ops.h), verifies the
 * reference's analytic gradients by finite differences, builds the st3d
 * operator with the engine's own builders into prepare / forward / backward
 * programs exactly as the plans do, runs them, and compares every output.
 * Data enters and leaves st3d through reorders from and to plain NCDHW, so
 * the operators see the blocked layouts they meet inside a network.
 *
 * Reporting: every failed comparison prints one line
 *   FAIL <op> [<geometry>] <tensor>: worst at (<index>) got <v> want <v> ...
 * and the program ends with "N passed, M failed" (cases).
 */
#ifndef ST3D_TEST_HARNESS_H
#define ST3D_TEST_HARNESS_H

#include "ops/ops.h"
#include "ref_ops.h"

#include <stddef.h>
#include <stdint.h>

/* Tolerances: relative to the largest reference magnitude of the tensor. */
#define TOL_FWD 1e-4    /* forward outputs (float32 sums) */
#define TOL_EXACT 1e-5  /* forward outputs with a handful of float operations */
#define TOL_BWD 1e-3    /* gradients (long float32 reductions) */
#define TOL_FD 1e-6     /* reference analytic gradient vs central differences */
#define FD_EPS 1e-6     /* finite-difference step */
#define FD_SAMPLES 4    /* random elements checked per tensor (+ the largest) */

/* The oneDNN engine and stream every case builds on (made by main). */
extern dnnl_engine_t g_eng;
extern dnnl_stream_t g_stream;

/* ------------------------------------------------------------ data */

typedef struct rng {
    uint64_t s;
} rng;
uint64_t rng_next(rng *r);
double rng_uniform(rng *r); /* [0, 1) */
/* Values exactly representable in float32, so that st3d and the
 * reference see identical inputs. */
void fill_uniform(rng *r, double *a, size_t n, double lo, double hi);
/* Uniform in [-1, -margin] u [margin, 1] (no values near a ReLU's kink). */
void fill_away_from_zero(rng *r, double *a, size_t n, double margin);
/* A random permutation of n distinct values spread over [-1, 1] (no ties
 * for max pooling; neighbours at least 2/n apart). */
void fill_distinct(rng *r, double *a, size_t n);

/* Scratch memory for the current case, freed when it ends (aborts when out
 * of memory). */
double *tdoubles(size_t n);
float *tfloats(size_t n);
void *talloc(size_t bytes);

/* ------------------------------------------------------------ cases */

/* Starts a case; returns 0 (and the caller skips it) when the operator name
 * does not contain the command line's filter. */
int case_begin(const char *op, const char *geom_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ends it: counts it passed or failed, prints its line, frees scratch. */
void case_end(void);
/* Records a failure described by a free-form line (after "FAIL op [geom] "). */
void case_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Counts a check done by the caller itself (failures go to case_fail). */
void case_checked(void);
/* Records a build or run error of st3d. */
void case_error(const char *what, const st3d_error *err);

/* Compares st3d's tensor (plain, float) with the reference: the largest
 * |got - want| over max(max |want|, 1e-30) must not exceed tol.  dims gives
 * the index printed for the worst element (ndims 5 or 2: {n, c} of s).
 * Returns 0 when within tolerance. */
int check_close(const char *tensor, const float *got, const double *want, ref_dims s, int ndims,
                double tol);
/* The same for a double result (e.g. st3d's loss). */
int check_scalar(const char *tensor, double got, double want, double tol);

/* A loss evaluated on the reference (typically sum(dy * f(inputs))) with
 * whatever the inputs hold now. */
typedef double (*loss_fn)(void *ctx);
/* Central differences on FD_SAMPLES random elements of param (and the one
 * with the largest analytic gradient), against analytic. */
int check_fd(const char *tensor, double *param, ref_dims s, int ndims, const double *analytic,
             loss_fn loss, void *ctx);

/* sum_i a[i] * b[i] */
double dot(const double *a, const double *b, size_t n);

/* ------------------------------------------------------------ st3d plumbing */

/* Everything one case builds: a builder over its own resources and the
 * three programs a plan has. */
typedef struct bench {
    resources res;
    builder b;
    program prep, fwd, bwd;
    st3d_error err;
} bench;

void bench_init(bench *k);
void bench_free(bench *k);
/* A tensor in layout want, filled from the plain data by a reorder appended
 * to p (a plain copy stays behind, so p may run more than once). */
int bench_feed(bench *k, program *p, const dnnl_memory_desc_t *want, const double *data,
               tensor *out);
/* A plain copy of t made by a reorder appended to p; its buffer, or NULL
 * (failure recorded). */
float *bench_fetch(bench *k, program *p, const tensor *t);
/* Finishes the build and runs prepare, forward and backward once.  Returns
 * 0, or -1 with the failure recorded. */
int bench_run(bench *k);
/* Runs one program again. */
int bench_rerun(bench *k, const program *p);

/* LAY_NATIVE: the blocked layout oneDNN's convolutions produce on this CPU
 * (nCdhw16c with AVX-512, else nCdhw8c), for cases that only make sense
 * in the layout a network really hands the operator. */
typedef enum layout { LAY_NCDHW, LAY_NDHWC, LAY_8C, LAY_16C, LAY_NATIVE } layout;
const char *layout_name(layout l);
void md_layout(dnnl_memory_desc_t *md, ref_dims s, layout l);
void md_2d(dnnl_memory_desc_t *md, int rows, int cols);

/* ------------------------------------------------------------ groups */

void test_conv(void);
void test_norm(void);
void test_misc(void);

#endif /* ST3D_TEST_HARNESS_H */

/*
 * test_ops_norm.c - batch norm, ReLU and dropout.
 *
 * Batch norm (bn_build_forward / bn_build_backward) is checked in training
 * mode (batch statistics, the running-statistics update with momentum 0.1
 * and the unbiased variance, num_batches_tracked, then diff_src,
 * diff_weight, diff_bias), with and without the fused ReLU, and in eval
 * mode with the running statistics, with and without ReLU.  ReLU
 * (relu_build_*) is checked in place and out of place; its inputs stay away
 * from zero so that float and double agree on every mask bit.  Dropout has
 * no deterministic reference: its outputs must be 0 or x / (1 - p), the
 * fraction dropped must be within five standard deviations of p, the
 * backward must use the same mask, a second run must draw a new mask and
 * the same seed must reproduce the first.  Every case runs in the layouts a
 * network hands these operators (plain, channels-last, blocked 8c / 16c,
 * with channel counts that leave the blocks padded).
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ batch norm */

typedef struct bn_case {
    ref_dims s;     /* N x C x D x H x W */
    layout lay;     /* layout of src */
    int training;   /* batch statistics + backward, else running statistics */
    int relu;       /* fused ReLU */
} bn_case;

static const bn_case bn_cases[] = {
    {{2, 5, 3, 4, 4}, LAY_NCDHW, 1, 0}, {{2, 5, 3, 4, 4}, LAY_8C, 1, 0},
    {{2, 5, 3, 4, 4}, LAY_16C, 1, 0},   {{2, 5, 3, 4, 4}, LAY_NDHWC, 1, 0},
    {{2, 16, 2, 3, 3}, LAY_8C, 1, 0},   {{1, 8, 1, 2, 2}, LAY_8C, 1, 0},
    {{2, 5, 3, 4, 4}, LAY_NCDHW, 1, 1}, {{2, 16, 2, 3, 3}, LAY_8C, 1, 1},
    {{2, 12, 2, 3, 4}, LAY_16C, 1, 1},  {{2, 5, 3, 4, 4}, LAY_NCDHW, 0, 0},
    {{2, 16, 2, 3, 3}, LAY_8C, 0, 0},   {{2, 5, 3, 4, 4}, LAY_NDHWC, 0, 1},
    {{2, 16, 2, 3, 3}, LAY_8C, 0, 1},
    /* preresnet50 layer1 at the training clip of test_equality (4x3x8x40x40) */
    {{4, 64, 4, 10, 10}, LAY_NATIVE, 1, 1}, {{4, 256, 4, 10, 10}, LAY_NATIVE, 1, 1},
};

typedef struct bn_data {
    ref_dims s;
    int relu;
    double *x, *gamma, *beta, *dy, *scratch, *mean, *var;
} bn_data;

static double bn_loss(void *ctx) {
    bn_data *d = ctx;
    ref_bn_train_fwd(d->s, d->x, d->gamma, d->beta, 1e-5, d->relu, d->scratch, d->mean, d->var);
    return dot(d->dy, d->scratch, ref_numel(d->s));
}

static void run_bn_case(const bn_case *c, uint64_t seed) {
    ref_dims s = c->s, cs = {1, s.c, 1, 1, 1};
    if (!case_begin("batchnorm", "%s%s N%d C%d %dx%dx%d %s", c->training ? "training" : "eval",
                    c->relu ? " +relu" : "", s.n, s.c, s.d, s.h, s.w, layout_name(c->lay)))
        return;
    rng r = {seed};
    size_t n = ref_numel(s), nc = (size_t)s.c;
    double m = (double)n / (double)s.c;
    double *x = tdoubles(n), *dy = tdoubles(n), *y = tdoubles(n), *dx = tdoubles(n);
    double *gamma = tdoubles(nc), *beta = tdoubles(nc), *rm = tdoubles(nc), *rv = tdoubles(nc);
    double *mean = tdoubles(nc), *var = tdoubles(nc), *dg = tdoubles(nc), *db = tdoubles(nc);
    double *rm_want = tdoubles(nc), *rv_want = tdoubles(nc);
    fill_uniform(&r, x, n, -1.0, 1.0);
    for (size_t i = 0; i < n; i++) x[i] = (double)(float)(x[i] * 2.0 + 0.5); /* mean != 0 */
    fill_uniform(&r, dy, n, -1.0, 1.0);
    fill_uniform(&r, gamma, nc, 0.5, 1.5);
    fill_uniform(&r, beta, nc, -0.5, 0.5);
    fill_uniform(&r, rm, nc, -0.5, 0.5);
    fill_uniform(&r, rv, nc, 0.5, 1.5);
    if (c->training) {
        ref_bn_train_fwd(s, x, gamma, beta, 1e-5, c->relu, y, mean, var);
        ref_bn_train_bwd(s, x, gamma, beta, 1e-5, c->relu, dy, dx, dg, db);
        for (size_t i = 0; i < nc; i++) {
            rm_want[i] = 0.9 * rm[i] + 0.1 * mean[i];
            rv_want[i] = 0.9 * rv[i] + 0.1 * var[i] * m / (m - 1.0);
        }
        bn_data bd = {s, c->relu, x, gamma, beta, dy, tdoubles(n), tdoubles(nc), tdoubles(nc)};
        check_fd("diff_src", x, s, 5, dx, bn_loss, &bd);
        check_fd("diff_weight", gamma, cs, 2, dg, bn_loss, &bd);
        check_fd("diff_bias", beta, cs, 2, db, bn_loss, &bd);
    } else {
        ref_bn_eval_fwd(s, x, gamma, beta, rm, rv, 1e-5, c->relu, y);
    }

    /* st3d's parameters live in float buffers, as in the model */
    float *fw = tfloats(nc), *fb = tfloats(nc), *frm = tfloats(nc), *frv = tfloats(nc);
    float *gw = tfloats(nc), *gb = tfloats(nc);
    for (size_t i = 0; i < nc; i++) {
        fw[i] = (float)gamma[i];
        fb[i] = (float)beta[i];
        frm[i] = (float)rm[i];
        frv[i] = (float)rv[i];
        gw[i] = gb[i] = 7.0f;
    }
    int64_t nbt = 5;
    bn_params p = {.weight = fw, .bias = fb, .running_mean = frm, .running_var = frv,
                   .num_batches_tracked = &nbt, .grad_weight = gw, .grad_bias = gb,
                   .eps = 1e-5f, .momentum = 0.1f};
    bench k;
    bench_init(&k);
    bn_op op; /* outlives the programs: the running-statistics step points at it */
    dnnl_memory_desc_t xmd;
    md_layout(&xmd, s, c->lay);
    tensor xt, dyt, dxt;
    float *y_got, *dx_got = NULL, *mean_got = NULL, *var_got = NULL;
    if (bench_feed(&k, &k.fwd, &xmd, x, &xt) != 0) goto done;
    if (bn_build_forward(&k.b, &k.fwd, &xt, &p, c->training, c->relu, &op) != 0) {
        case_error("bn_build_forward", &k.err);
        goto done;
    }
    if (!md_equal(&op.dst.md, &xt.md)) case_fail("dst: layout differs from src's");
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst))) goto done;
    if (c->training) {
        mean_got = op.mean.data;
        var_got = op.var.data;
        if (bench_feed(&k, &k.bwd, &op.dst.md, dy, &dyt) != 0) goto done;
        if (bld_tensor(&k.b, &xt.md, &dxt) != 0) {
            case_error("diff_src allocation", &k.err);
            goto done;
        }
        if (bn_build_backward(&k.b, &k.bwd, &op, &dyt, &dxt) != 0) {
            case_error("bn_build_backward", &k.err);
            goto done;
        }
        if (!(dx_got = bench_fetch(&k, &k.bwd, &dxt))) goto done;
    }
    if (bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, s, 5, TOL_FWD);
    if (c->training) {
        check_close("batch mean", mean_got, mean, cs, 2, TOL_FWD);
        check_close("batch variance", var_got, var, cs, 2, TOL_FWD);
        check_close("running_mean", frm, rm_want, cs, 2, TOL_FWD);
        check_close("running_var", frv, rv_want, cs, 2, TOL_FWD);
        if (nbt != 6) case_fail("num_batches_tracked: got %lld want 6", (long long)nbt);
        check_close("diff_src", dx_got, dx, s, 5, TOL_BWD);
        check_close("diff_weight", gw, dg, cs, 2, TOL_BWD);
        check_close("diff_bias", gb, db, cs, 2, TOL_BWD);
    } else {
        /* eval leaves the running statistics alone */
        check_close("running_mean (unchanged)", frm, rm, cs, 2, 0.0);
        check_close("running_var (unchanged)", frv, rv, cs, 2, 0.0);
        if (nbt != 5) case_fail("num_batches_tracked: got %lld want 5", (long long)nbt);
    }
done:
    if (c->training && op.fwd_hint) dnnl_primitive_desc_destroy(op.fwd_hint);
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ relu */

typedef struct relu_case {
    ref_dims s;
    layout lay;
    int in_place;
} relu_case;

static const relu_case relu_cases[] = {
    {{2, 5, 3, 4, 4}, LAY_NCDHW, 0}, {{2, 5, 3, 4, 4}, LAY_NCDHW, 1},
    {{2, 5, 3, 4, 4}, LAY_8C, 0},    {{2, 16, 2, 3, 3}, LAY_8C, 1},
    {{2, 12, 2, 3, 3}, LAY_16C, 1},  {{2, 5, 3, 4, 4}, LAY_NDHWC, 1},
};

typedef struct relu_data {
    size_t n;
    double *x, *dy, *scratch;
} relu_data;

static double relu_loss(void *ctx) {
    relu_data *d = ctx;
    ref_relu_fwd(d->n, d->x, d->scratch);
    return dot(d->dy, d->scratch, d->n);
}

static void run_relu_case(const relu_case *c, uint64_t seed) {
    ref_dims s = c->s;
    if (!case_begin("relu", "%s N%d C%d %dx%dx%d %s", c->in_place ? "in place" : "out of place",
                    s.n, s.c, s.d, s.h, s.w, layout_name(c->lay)))
        return;
    rng r = {seed};
    size_t n = ref_numel(s);
    double *x = tdoubles(n), *dy = tdoubles(n), *y = tdoubles(n), *dx = tdoubles(n);
    fill_away_from_zero(&r, x, n, 0.05);
    fill_uniform(&r, dy, n, -1.0, 1.0);
    ref_relu_fwd(n, x, y);
    ref_relu_bwd(n, x, dy, dx);
    relu_data rd = {n, x, dy, tdoubles(n)};
    check_fd("diff_src", x, s, 5, dx, relu_loss, &rd);

    bench k;
    bench_init(&k);
    relu_op op;
    dnnl_memory_desc_t xmd;
    md_layout(&xmd, s, c->lay);
    tensor xt, dyt, dxt;
    float *y_got, *dx_got;
    if (bench_feed(&k, &k.fwd, &xmd, x, &xt) != 0) goto done;
    if (relu_build_forward(&k.b, &k.fwd, &xt, c->in_place, &op) != 0) {
        case_error("relu_build_forward", &k.err);
        goto done;
    }
    if (c->in_place && op.dst.mem != xt.mem) case_fail("dst: not in place");
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst))) goto done;
    if (bench_feed(&k, &k.bwd, &op.dst.md, dy, &dyt) != 0) goto done;
    if (bld_tensor(&k.b, &xt.md, &dxt) != 0) {
        case_error("diff_src allocation", &k.err);
        goto done;
    }
    if (relu_build_backward(&k.b, &k.bwd, &op, &dyt, &dxt) != 0) {
        case_error("relu_build_backward", &k.err);
        goto done;
    }
    if (!(dx_got = bench_fetch(&k, &k.bwd, &dxt)) || bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, s, 5, TOL_EXACT);
    check_close("diff_src", dx_got, dx, s, 5, TOL_EXACT);
done:
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ dropout */

typedef struct dropout_case {
    ref_dims s;
    layout lay;
    float p;
} dropout_case;

static const dropout_case dropout_cases[] = {
    {{4, 16, 4, 8, 8}, LAY_NCDHW, 0.5f},
    {{4, 16, 4, 8, 8}, LAY_8C, 0.2f},
    {{2, 5, 4, 8, 8}, LAY_8C, 0.5f},
    {{2, 512, 1, 1, 1}, LAY_NCDHW, 0.5f}, /* before a classifier */
    {{2, 5, 4, 8, 8}, LAY_NCDHW, 0.0f},
};

/* Checks one forward/backward of dropout; mask[i] = 1 where kept.
 * Returns the number of dropped elements, or -1 after a failure. */
static long dropout_judge(const char *run, size_t n, const double *x, const double *dy,
                          const float *y, const float *dx, float p, unsigned char *mask) {
    double scale = 1.0 / (1.0 - (double)p);
    long dropped = 0;
    for (size_t i = 0; i < n; i++) {
        double want = x[i] * scale;
        int kept = y[i] != 0.0f;
        if (kept && fabs(y[i] - want) > 1e-6 * fabs(want)) {
            case_fail("dst%s: element %zu is neither 0 nor x/(1-p): got %.9g want %.9g", run, i,
                      y[i], want);
            return -1;
        }
        double gwant = kept ? dy[i] * scale : 0.0;
        if (fabs(dx[i] - gwant) > 1e-6 * fabs(gwant) || (!kept && dx[i] != 0.0f)) {
            case_fail("diff_src%s: element %zu does not follow the forward's mask (kept %d): got "
                      "%.9g want %.9g",
                      run, i, kept, dx[i], gwant);
            return -1;
        }
        mask[i] = (unsigned char)kept;
        dropped += !kept;
    }
    case_checked(); /* dst */
    case_checked(); /* diff_src */
    return dropped;
}

static void run_dropout_case(const dropout_case *c, uint64_t seed) {
    ref_dims s = c->s;
    if (!case_begin("dropout", "p %.1f N%d C%d %dx%dx%d %s", c->p, s.n, s.c, s.d, s.h, s.w,
                    layout_name(c->lay)))
        return;
    rng r = {seed};
    size_t n = ref_numel(s);
    double *x = tdoubles(n), *dy = tdoubles(n);
    fill_away_from_zero(&r, x, n, 0.01);
    fill_away_from_zero(&r, dy, n, 0.01);
    unsigned char *m1 = talloc(n), *m2 = talloc(n), *m3 = talloc(n);
    bench k, k2;
    bench_init(&k);
    bench_init(&k2);
    dropout_op *op, *op2;
    dnnl_memory_desc_t xmd;
    md_layout(&xmd, s, c->lay);
    tensor xt, dyt, dxt;
    float *y_got, *dx_got;
    if (bench_feed(&k, &k.fwd, &xmd, x, &xt) != 0) goto done;
    if (dropout_build_forward(&k.b, &k.fwd, &xt, c->p, 1234, &op) != 0) {
        case_error("dropout_build_forward", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op->dst))) goto done;
    if (bench_feed(&k, &k.bwd, &op->dst.md, dy, &dyt) != 0) goto done;
    if (bld_tensor(&k.b, &xt.md, &dxt) != 0) {
        case_error("diff_src allocation", &k.err);
        goto done;
    }
    if (dropout_build_backward(&k.b, &k.bwd, op, &dyt, &dxt) != 0) {
        case_error("dropout_build_backward", &k.err);
        goto done;
    }
    if (!(dx_got = bench_fetch(&k, &k.bwd, &dxt)) || bench_run(&k) != 0) goto done;
    long d1 = dropout_judge("", n, x, dy, y_got, dx_got, c->p, m1);
    if (d1 < 0) goto done;
    /* the fraction dropped: within 5 sigma of p */
    double frac = (double)d1 / (double)n, sigma = sqrt((double)c->p * (1.0 - c->p) / (double)n);
    case_checked();
    if (fabs(frac - c->p) > 5.0 * sigma + 1e-12)
        case_fail("mask: dropped fraction %.4f, want %.2f +- %.4f (5 sigma, %zu elements)", frac,
                  c->p, 5.0 * sigma, n);
    /* a second training step draws a new mask, and the backward follows it */
    if (bench_rerun(&k, &k.fwd) != 0 || bench_rerun(&k, &k.bwd) != 0) goto done;
    long d2 = dropout_judge(" (second run)", n, x, dy, y_got, dx_got, c->p, m2);
    if (d2 < 0) goto done;
    case_checked();
    if (c->p > 0.0f && n > 64 && !memcmp(m1, m2, n))
        case_fail("mask: the second run drew the same mask as the first");
    /* the same seed reproduces the first mask in a fresh build */
    tensor xt2;
    if (bench_feed(&k2, &k2.fwd, &xmd, x, &xt2) != 0) goto done;
    if (dropout_build_forward(&k2.b, &k2.fwd, &xt2, c->p, 1234, &op2) != 0) {
        case_error("dropout_build_forward (again)", &k2.err);
        goto done;
    }
    float *y2 = bench_fetch(&k2, &k2.fwd, &op2->dst);
    if (!y2 || bench_run(&k2) != 0) goto done;
    for (size_t i = 0; i < n; i++) m3[i] = y2[i] != 0.0f;
    case_checked();
    if (memcmp(m1, m3, n)) case_fail("mask: the same seed did not reproduce the first mask");
done:
    bench_free(&k);
    bench_free(&k2);
    case_end();
}

void test_norm(void) {
    uint64_t seed = 2000;
    for (size_t i = 0; i < sizeof bn_cases / sizeof *bn_cases; i++) run_bn_case(&bn_cases[i], seed++);
    for (size_t i = 0; i < sizeof relu_cases / sizeof *relu_cases; i++)
        run_relu_case(&relu_cases[i], seed++);
    for (size_t i = 0; i < sizeof dropout_cases / sizeof *dropout_cases; i++)
        run_dropout_case(&dropout_cases[i], seed++);
}

/*
 * test_ops_misc.c - pooling, global average pooling, residual sums,
 * shortcut A, concat, linear and softmax cross-entropy.
 *
 * Max and average pooling (pool_build_*) at the families' geometries:
 * ResNet's stem max pool (kernel 3, stride 2, padding 1), C3D's (1,2,2) and
 * padded (2,2,2) pools, DenseNet's 2x2x2 average transition, average
 * pooling with padding counted in the divisor (count_include_pad=True) and
 * odd sizes where the output size is floored.  Max-pool inputs are a random
 * permutation of distinct values, so no window has a tie.  Global average
 * pooling (gap_build_*), op_add (also in place) and op_add_relu, shortcut A
 * (forward only, as the original detaches it), channel concat with its
 * backward, nn.Linear (linear_build_*) and softmax_xent complete the set.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ pooling */

typedef struct pool_case {
    const char *what;
    ref_pool g;
    ref_dims s;
    layout lay;
    int training; /* forward_training + backward, else inference forward */
} pool_case;

#define K3S2P1 {3, 3, 3}, {2, 2, 2}, {1, 1, 1}
static const pool_case pool_cases[] = {
    {"resnet stem maxpool", {1, K3S2P1}, {2, 5, 5, 9, 9}, LAY_NCDHW, 1},
    {"resnet stem maxpool", {1, K3S2P1}, {2, 16, 4, 8, 8}, LAY_8C, 1},
    {"resnet stem maxpool", {1, K3S2P1}, {1, 12, 3, 6, 7}, LAY_16C, 1},
    {"resnet stem maxpool", {1, K3S2P1}, {2, 8, 4, 8, 8}, LAY_8C, 0},
    {"c3d pool1", {1, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}}, {2, 8, 4, 6, 6}, LAY_8C, 1},
    {"c3d pool5", {1, {2, 2, 2}, {2, 2, 2}, {0, 1, 1}}, {2, 8, 3, 5, 5}, LAY_NDHWC, 1},
    {"densenet transition", {0, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}}, {2, 8, 4, 6, 6}, LAY_8C, 1},
    {"densenet transition, odd", {0, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}}, {2, 5, 5, 7, 7}, LAY_NCDHW, 1},
    {"avg count_include_pad", {0, K3S2P1}, {2, 5, 5, 7, 7}, LAY_NCDHW, 1},
    {"avg count_include_pad", {0, K3S2P1}, {2, 16, 4, 6, 5}, LAY_8C, 1},
    {"avg 3x3x3 pad 1", {0, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}}, {2, 8, 3, 4, 4}, LAY_NDHWC, 1},
    {"avg subsample k1 s2", {0, {1, 1, 1}, {2, 2, 2}, {0, 0, 0}}, {2, 8, 5, 5, 5}, LAY_8C, 0},
};

typedef struct pool_data {
    const ref_pool *g;
    ref_dims s, o;
    double *x, *dy, *scratch;
} pool_data;

static double pool_loss(void *ctx) {
    pool_data *d = ctx;
    ref_pool_fwd(d->g, d->s, d->x, d->scratch);
    return dot(d->dy, d->scratch, ref_numel(d->o));
}

static void run_pool_case(const pool_case *c, uint64_t seed) {
    const ref_pool *rg = &c->g;
    ref_dims s = c->s, o = ref_pool_out(rg, s);
    if (!case_begin(rg->max ? "maxpool" : "avgpool",
                    "%s: N%d C%d in %dx%dx%d k%dx%dx%d s%dx%dx%d p%dx%dx%d %s %s", c->what, s.n,
                    s.c, s.d, s.h, s.w, rg->k[0], rg->k[1], rg->k[2], rg->stride[0],
                    rg->stride[1], rg->stride[2], rg->pad[0], rg->pad[1], rg->pad[2],
                    layout_name(c->lay), c->training ? "training" : "inference"))
        return;
    rng r = {seed};
    size_t nx = ref_numel(s), ny = ref_numel(o);
    double *x = tdoubles(nx), *dy = tdoubles(ny), *y = tdoubles(ny), *dx = tdoubles(nx);
    if (rg->max) fill_distinct(&r, x, nx);
    else fill_uniform(&r, x, nx, -1.0, 1.0);
    fill_uniform(&r, dy, ny, -1.0, 1.0);
    ref_pool_fwd(rg, s, x, y);
    ref_pool_bwd(rg, s, x, dy, dx);
    pool_data pd = {rg, s, o, x, dy, tdoubles(ny)};
    check_fd("diff_src", x, s, 5, dx, pool_loss, &pd);

    pool_geom g = {.max = rg->max};
    for (int i = 0; i < 3; i++) {
        g.k[i] = rg->k[i];
        g.stride[i] = rg->stride[i];
        g.pad[i] = rg->pad[i];
    }
    bench k;
    bench_init(&k);
    pool_op op;
    memset(&op, 0, sizeof op);
    dnnl_memory_desc_t xmd;
    md_layout(&xmd, s, c->lay);
    tensor xt, dyt, dxt;
    float *y_got, *dx_got = NULL;
    if (bench_feed(&k, &k.fwd, &xmd, x, &xt) != 0) goto done;
    if (pool_build_forward(&k.b, &k.fwd, &xt, &g, c->training, &op) != 0) {
        case_error("pool_build_forward", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst))) goto done;
    if (c->training) {
        if (bench_feed(&k, &k.bwd, &op.dst.md, dy, &dyt) != 0) goto done;
        if (bld_tensor(&k.b, &xt.md, &dxt) != 0) {
            case_error("diff_src allocation", &k.err);
            goto done;
        }
        if (pool_build_backward(&k.b, &k.bwd, &op, &dyt, &dxt) != 0) {
            case_error("pool_build_backward", &k.err);
            goto done;
        }
        if (!(dx_got = bench_fetch(&k, &k.bwd, &dxt))) goto done;
    }
    if (bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, o, 5, rg->max ? TOL_EXACT : TOL_FWD);
    if (c->training) check_close("diff_src", dx_got, dx, s, 5, TOL_BWD);
done:
    if (op.fwd_hint) dnnl_primitive_desc_destroy(op.fwd_hint);
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ global average */

typedef struct gap_case {
    ref_dims s;
    layout lay;
    int training;
} gap_case;

static const gap_case gap_cases[] = {
    {{2, 5, 3, 4, 4}, LAY_NCDHW, 1},
    {{2, 16, 2, 3, 3}, LAY_8C, 1},
    {{1, 12, 1, 4, 4}, LAY_16C, 1},
    {{2, 8, 2, 2, 3}, LAY_NDHWC, 1},
    {{2, 16, 1, 4, 4}, LAY_8C, 0},
};

typedef struct gap_data {
    ref_dims s;
    double *x, *dy, *scratch;
} gap_data;

static double gap_loss(void *ctx) {
    gap_data *d = ctx;
    ref_gap_fwd(d->s, d->x, d->scratch);
    return dot(d->dy, d->scratch, (size_t)d->s.n * d->s.c);
}

static void run_gap_case(const gap_case *c, uint64_t seed) {
    ref_dims s = c->s, o = {s.n, s.c, 1, 1, 1};
    if (!case_begin("gap", "N%d C%d %dx%dx%d -> N%d x C%d, %s %s", s.n, s.c, s.d, s.h, s.w, s.n,
                    s.c, layout_name(c->lay), c->training ? "training" : "inference"))
        return;
    rng r = {seed};
    size_t nx = ref_numel(s), ny = (size_t)s.n * s.c;
    double *x = tdoubles(nx), *dy = tdoubles(ny), *y = tdoubles(ny), *dx = tdoubles(nx);
    fill_uniform(&r, x, nx, -1.0, 1.0);
    fill_uniform(&r, dy, ny, -1.0, 1.0);
    ref_gap_fwd(s, x, y);
    ref_gap_bwd(s, dy, dx);
    gap_data gd = {s, x, dy, tdoubles(ny)};
    check_fd("diff_src", x, s, 5, dx, gap_loss, &gd);

    bench k;
    bench_init(&k);
    gap_op op;
    memset(&op, 0, sizeof op);
    dnnl_memory_desc_t xmd, fmd;
    md_layout(&xmd, s, c->lay);
    md_2d(&fmd, s.n, s.c);
    tensor xt, dft, dxt;
    float *y_got, *dx_got = NULL;
    if (bench_feed(&k, &k.fwd, &xmd, x, &xt) != 0) goto done;
    if (gap_build_forward(&k.b, &k.fwd, &xt, c->training, &op) != 0) {
        case_error("gap_build_forward", &k.err);
        goto done;
    }
    if (!md_equal(&op.flat.md, &fmd)) case_fail("dst: not a plain N x C tensor");
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.flat))) goto done;
    if (c->training) {
        if (bench_feed(&k, &k.bwd, &fmd, dy, &dft) != 0) goto done;
        if (bld_tensor(&k.b, &xt.md, &dxt) != 0) {
            case_error("diff_src allocation", &k.err);
            goto done;
        }
        if (gap_build_backward(&k.b, &k.bwd, &op, &dft, &dxt) != 0) {
            case_error("gap_build_backward", &k.err);
            goto done;
        }
        if (!(dx_got = bench_fetch(&k, &k.bwd, &dxt))) goto done;
    }
    if (bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, o, 2, TOL_FWD);
    if (c->training) check_close("diff_src", dx_got, dx, s, 5, TOL_FWD);
done:
    if (op.pool.fwd_hint) dnnl_primitive_desc_destroy(op.pool.fwd_hint);
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ residual sums */

/* Padded blocks are tested in the CPU's native block only: oneDNN 2.6's
 * jit:uni binary with a ReLU post-op computes wrong values (and writes past
 * the buffer) on nCdhw16c tensors whose channel count is not a multiple of
 * 16 on AVX2 CPUs, a layout st3d never produces there. */
typedef struct add_case {
    ref_dims s;
    layout lay;
    int relu;     /* op_add_relu, else op_add */
    int in_place; /* dst is the first operand's tensor */
} add_case;

static const add_case add_cases[] = {
    {{2, 5, 3, 4, 4}, LAY_NCDHW, 0, 0}, {{2, 5, 3, 4, 4}, LAY_8C, 0, 1},
    {{2, 16, 2, 3, 3}, LAY_16C, 0, 0},  {{2, 8, 2, 3, 3}, LAY_NDHWC, 0, 1},
    {{2, 5, 3, 4, 4}, LAY_NCDHW, 1, 0}, {{2, 16, 2, 3, 3}, LAY_8C, 1, 0},
    {{2, 5, 2, 3, 3}, LAY_8C, 1, 0},    {{1, 12, 2, 3, 3}, LAY_NATIVE, 1, 0},
};

static void run_add_case(const add_case *c, uint64_t seed) {
    ref_dims s = c->s;
    if (!case_begin(c->relu ? "add_relu" : "add", "N%d C%d %dx%dx%d %s%s", s.n, s.c, s.d, s.h,
                    s.w, layout_name(c->lay), c->in_place ? " in place" : ""))
        return;
    rng r = {seed};
    size_t n = ref_numel(s);
    double *a = tdoubles(n), *b = tdoubles(n), *y = tdoubles(n);
    fill_uniform(&r, a, n, -1.0, 1.0);
    fill_uniform(&r, b, n, -1.0, 1.0);
    for (size_t i = 0; i < n; i++) {
        double v = a[i] + b[i];
        y[i] = c->relu && v < 0.0 ? 0.0 : v;
    }
    bench k;
    bench_init(&k);
    dnnl_memory_desc_t md;
    md_layout(&md, s, c->lay);
    tensor at, bt, dt;
    float *y_got;
    if (bench_feed(&k, &k.fwd, &md, a, &at) != 0 || bench_feed(&k, &k.fwd, &md, b, &bt) != 0)
        goto done;
    if (c->in_place) dt = at;
    else if (bld_tensor(&k.b, &md, &dt) != 0) {
        case_error("dst allocation", &k.err);
        goto done;
    }
    if ((c->relu ? op_add_relu : op_add)(&k.b, &k.fwd, &at, &bt, &dt) != 0) {
        case_error(c->relu ? "op_add_relu" : "op_add", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &dt)) || bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, s, 5, TOL_EXACT);
done:
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ shortcut A */

typedef struct shortcut_case {
    ref_dims s;
    int cout, stride;
    layout lay;
} shortcut_case;

static const shortcut_case shortcut_cases[] = {
    {{2, 16, 3, 5, 5}, 32, 2, LAY_8C},    {{2, 16, 3, 5, 5}, 32, 2, LAY_16C},
    {{2, 8, 3, 5, 5}, 16, 2, LAY_NCDHW},  {{2, 8, 4, 5, 6}, 16, 2, LAY_NDHWC},
    {{2, 8, 3, 4, 4}, 16, 1, LAY_8C},     {{2, 32, 2, 3, 3}, 64, 2, LAY_16C},
    /* channel counts that leave a block partly filled (e.g. a ResNet with
     * --resnet-widen-factor 0.1875: 12 -> 24 channels) */
    {{2, 12, 3, 4, 4}, 24, 2, LAY_8C},    {{2, 4, 3, 4, 4}, 8, 2, LAY_8C},
    {{2, 8, 3, 4, 4}, 16, 2, LAY_16C},    {{2, 24, 2, 4, 4}, 40, 2, LAY_16C},
};

static void run_shortcut_case(const shortcut_case *c, uint64_t seed) {
    ref_dims s = c->s;
    ref_dims o = {s.n, c->cout, (s.d - 1) / c->stride + 1, (s.h - 1) / c->stride + 1,
                  (s.w - 1) / c->stride + 1};
    if (!case_begin("shortcut_a", "N%d C%d %dx%dx%d -> C%d stride %d, %s", s.n, s.c, s.d, s.h,
                    s.w, c->cout, c->stride, layout_name(c->lay)))
        return;
    rng r = {seed};
    size_t nx = ref_numel(s), ny = ref_numel(o);
    double *x = tdoubles(nx), *y = tdoubles(ny);
    fill_uniform(&r, x, nx, -1.0, 1.0);
    ref_shortcut_a(s, c->cout, c->stride, x, y);
    bench k;
    bench_init(&k);
    shortcut_a_op op;
    dnnl_memory_desc_t md;
    md_layout(&md, s, c->lay);
    tensor xt;
    float *y_got;
    if (bench_feed(&k, &k.fwd, &md, x, &xt) != 0) goto done;
    if (shortcut_a_build_forward(&k.b, &k.fwd, &xt, c->cout, c->stride, &op) != 0) {
        case_error("shortcut_a_build_forward", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst)) || bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, o, 5, TOL_EXACT);
done:
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ concat */

typedef struct concat_case {
    int n_in;
    int c[3];       /* channels of each input */
    layout lay[3];  /* and its layout */
    ref_dims s;     /* N, D, H, W shared (c unused) */
} concat_case;

static const concat_case concat_cases[] = {
    {2, {5, 3}, {LAY_NCDHW, LAY_NCDHW}, {2, 0, 2, 3, 4}},
    {2, {16, 8}, {LAY_8C, LAY_8C}, {2, 0, 2, 3, 3}},
    {2, {16, 16}, {LAY_16C, LAY_16C}, {1, 0, 2, 3, 3}},
    {3, {16, 32, 8}, {LAY_8C, LAY_8C, LAY_8C}, {2, 0, 1, 3, 3}},
    {2, {8, 8}, {LAY_8C, LAY_NCDHW}, {2, 0, 2, 2, 3}},
    {2, {8, 4}, {LAY_NDHWC, LAY_NDHWC}, {2, 0, 2, 2, 3}},
    {2, {6, 4}, {LAY_8C, LAY_8C}, {2, 0, 2, 2, 3}}, /* partly filled blocks */
    {2, {4, 8}, {LAY_8C, LAY_8C}, {2, 0, 2, 2, 3}},
};

static void run_concat_case(const concat_case *c, uint64_t seed) {
    char desc[160];
    int off = 0, ctot = 0;
    for (int i = 0; i < c->n_in; i++) {
        off += snprintf(desc + off, sizeof desc - (size_t)off, "%sC%d %s", i ? " + " : "", c->c[i],
                        layout_name(c->lay[i]));
        ctot += c->c[i];
    }
    if (!case_begin("concat", "N%d %dx%dx%d: %s", c->s.n, c->s.d, c->s.h, c->s.w, desc)) return;
    rng r = {seed};
    ref_dims ins[3], o = c->s;
    o.c = ctot;
    const double *xs[3];
    double *x[3], *dy = tdoubles(ref_numel(o)), *y = tdoubles(ref_numel(o));
    for (int i = 0; i < c->n_in; i++) {
        ins[i] = c->s;
        ins[i].c = c->c[i];
        x[i] = tdoubles(ref_numel(ins[i]));
        xs[i] = x[i];
        fill_uniform(&r, x[i], ref_numel(ins[i]), -1.0, 1.0);
    }
    fill_uniform(&r, dy, ref_numel(o), -1.0, 1.0);
    ref_concat(c->n_in, ins, xs, y);
    bench k;
    bench_init(&k);
    tensor srcs[3], dst, dyt, dsrcs[3];
    float *y_got, *dx_got[3];
    for (int i = 0; i < c->n_in; i++) {
        dnnl_memory_desc_t md;
        md_layout(&md, ins[i], c->lay[i]);
        if (bench_feed(&k, &k.fwd, &md, x[i], &srcs[i]) != 0) goto done;
    }
    if (concat_build_forward(&k.b, &k.fwd, srcs, c->n_in, &dst) != 0) {
        case_error("concat_build_forward", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &dst))) goto done;
    if (bench_feed(&k, &k.bwd, &dst.md, dy, &dyt) != 0) goto done;
    for (int i = 0; i < c->n_in; i++)
        if (bld_tensor(&k.b, &srcs[i].md, &dsrcs[i]) != 0) {
            case_error("diff_src allocation", &k.err);
            goto done;
        }
    if (concat_build_backward(&k.b, &k.bwd, srcs, c->n_in, &dyt, dsrcs) != 0) {
        case_error("concat_build_backward", &k.err);
        goto done;
    }
    for (int i = 0; i < c->n_in; i++)
        if (!(dx_got[i] = bench_fetch(&k, &k.bwd, &dsrcs[i]))) goto done;
    if (bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, o, 5, TOL_EXACT);
    /* the gradient of input i is dy's channel slice [off, off + C_i) */
    off = 0;
    for (int i = 0; i < c->n_in; i++) {
        double *want = tdoubles(ref_numel(ins[i]));
        size_t vol = (size_t)o.d * o.h * o.w;
        for (int b = 0; b < o.n; b++)
            memcpy(want + (size_t)b * ins[i].c * vol, dy + ((size_t)b * o.c + off) * vol,
                   sizeof(double) * ins[i].c * vol);
        char name[32];
        snprintf(name, sizeof name, "diff_src[%d]", i);
        check_close(name, dx_got[i], want, ins[i], 5, TOL_EXACT);
        off += ins[i].c;
    }
done:
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ linear */

typedef struct linear_case {
    int n, in, out;
    int training;  /* with backward */
    int no_dsrc;   /* backward without diff_src */
} linear_case;

static const linear_case linear_cases[] = {
    {3, 20, 7, 1, 0}, {2, 64, 10, 1, 1}, {1, 33, 5, 1, 0}, {4, 48, 6, 0, 0},
};

typedef struct linear_data {
    int n, in, out;
    double *x, *w, *b, *dy, *scratch;
} linear_data;

static double linear_loss(void *ctx) {
    linear_data *d = ctx;
    ref_linear_fwd(d->n, d->in, d->out, d->x, d->w, d->b, d->scratch);
    return dot(d->dy, d->scratch, (size_t)d->n * d->out);
}

static void run_linear_case(const linear_case *c, uint64_t seed) {
    if (!case_begin("linear", "N%d IN%d OUT%d %s%s", c->n, c->in, c->out,
                    c->training ? "training" : "inference", c->no_dsrc ? ", no diff_src" : ""))
        return;
    rng r = {seed};
    size_t nx = (size_t)c->n * c->in, nw = (size_t)c->out * c->in, ny = (size_t)c->n * c->out;
    ref_dims xs = {c->n, c->in, 1, 1, 1}, ws = {c->out, c->in, 1, 1, 1}, ys = {c->n, c->out, 1, 1, 1};
    ref_dims bs = {1, c->out, 1, 1, 1};
    double *x = tdoubles(nx), *w = tdoubles(nw), *b = tdoubles((size_t)c->out);
    double *dy = tdoubles(ny), *y = tdoubles(ny), *dx = tdoubles(nx), *dw = tdoubles(nw);
    double *db = tdoubles((size_t)c->out);
    fill_uniform(&r, x, nx, -1.0, 1.0);
    fill_uniform(&r, w, nw, -0.5, 0.5);
    fill_uniform(&r, b, (size_t)c->out, -0.5, 0.5);
    fill_uniform(&r, dy, ny, -1.0, 1.0);
    ref_linear_fwd(c->n, c->in, c->out, x, w, b, y);
    ref_linear_bwd(c->n, c->in, c->out, x, w, dy, dx, dw, db);
    linear_data ld = {c->n, c->in, c->out, x, w, b, dy, tdoubles(ny)};
    check_fd("diff_src", x, xs, 2, dx, linear_loss, &ld);
    check_fd("diff_weights", w, ws, 2, dw, linear_loss, &ld);
    check_fd("diff_bias", b, bs, 2, db, linear_loss, &ld);

    float *wf = tfloats(nw), *bf = tfloats((size_t)c->out), *gw = tfloats(nw);
    float *gb = tfloats((size_t)c->out);
    for (size_t i = 0; i < nw; i++) {
        wf[i] = (float)w[i];
        gw[i] = 7.0f;
    }
    for (int i = 0; i < c->out; i++) {
        bf[i] = (float)b[i];
        gb[i] = 7.0f;
    }
    bench k;
    bench_init(&k);
    linear_op op;
    memset(&op, 0, sizeof op);
    dnnl_memory_desc_t xmd, ymd;
    md_2d(&xmd, c->n, c->in);
    md_2d(&ymd, c->n, c->out);
    tensor xt, dyt, dxt;
    float *y_got, *dx_got = NULL;
    if (bench_feed(&k, &k.fwd, &xmd, x, &xt) != 0) goto done;
    if (linear_build_forward(&k.b, &k.fwd, &xt, c->out, wf, bf, c->training, &op) != 0) {
        case_error("linear_build_forward", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst))) goto done;
    if (c->training) {
        if (bench_feed(&k, &k.bwd, &ymd, dy, &dyt) != 0) goto done;
        if (!c->no_dsrc && bld_tensor(&k.b, &xmd, &dxt) != 0) {
            case_error("diff_src allocation", &k.err);
            goto done;
        }
        if (linear_build_backward(&k.b, &k.bwd, &op, &dyt, c->no_dsrc ? NULL : &dxt, gw, gb) != 0) {
            case_error("linear_build_backward", &k.err);
            goto done;
        }
        if (!c->no_dsrc && !(dx_got = bench_fetch(&k, &k.bwd, &dxt))) goto done;
    }
    if (bench_run(&k) != 0) goto done;
    check_close("dst", y_got, y, ys, 2, TOL_FWD);
    if (c->training) {
        if (!c->no_dsrc) check_close("diff_src", dx_got, dx, xs, 2, TOL_BWD);
        check_close("diff_weights", gw, dw, ws, 2, TOL_BWD);
        check_close("diff_bias", gb, db, bs, 2, TOL_BWD);
    }
done:
    if (op.fwd_hint) dnnl_primitive_desc_destroy(op.fwd_hint);
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ softmax cross-entropy */

typedef struct xent_case {
    int n, k;
    double scale; /* logits uniform in [-scale, scale] */
} xent_case;

static const xent_case xent_cases[] = {{4, 10, 1.0}, {3, 400, 5.0}, {2, 7, 40.0}, {1, 2, 0.1}};

typedef struct xent_data {
    int n, k;
    double *z;
    const int64_t *labels;
} xent_data;

static double xent_loss(void *ctx) {
    xent_data *d = ctx;
    return ref_softmax_xent(d->n, d->k, d->z, d->labels, NULL);
}

static void run_xent_case(const xent_case *c, uint64_t seed) {
    if (!case_begin("softmax_xent", "N%d K%d logits in [-%g, %g]", c->n, c->k, c->scale, c->scale))
        return;
    rng r = {seed};
    size_t nz = (size_t)c->n * c->k;
    ref_dims zs = {c->n, c->k, 1, 1, 1};
    double *z = tdoubles(nz), *grad = tdoubles(nz);
    int64_t *labels = talloc(sizeof(int64_t) * (size_t)c->n);
    fill_uniform(&r, z, nz, -c->scale, c->scale);
    for (int i = 0; i < c->n; i++) labels[i] = (int64_t)(rng_next(&r) % (uint64_t)c->k);
    double loss = ref_softmax_xent(c->n, c->k, z, labels, grad);
    xent_data xd = {c->n, c->k, z, labels};
    check_fd("diff_logits", z, zs, 2, grad, xent_loss, &xd);

    float *zf = tfloats(nz), *gf = tfloats(nz), lf = 0.0f, lf2 = 0.0f;
    for (size_t i = 0; i < nz; i++) zf[i] = (float)z[i];
    st3d_error err = {0};
    if (softmax_xent(zf, labels, c->n, c->k, &lf, gf, &err) != 0) {
        case_error("softmax_xent", &err);
    } else {
        check_scalar("loss", lf, loss, TOL_EXACT);
        check_close("diff_logits", gf, grad, zs, 2, TOL_EXACT);
    }
    /* the loss alone (no gradient buffer) */
    if (softmax_xent(zf, labels, c->n, c->k, &lf2, NULL, &err) != 0)
        case_error("softmax_xent without gradient", &err);
    else
        check_scalar("loss (no gradient)", lf2, loss, TOL_EXACT);
    /* a label outside [0, K) is refused */
    int64_t keep = labels[0];
    labels[0] = c->k;
    if (softmax_xent(zf, labels, c->n, c->k, &lf2, gf, &err) == 0 || err.code != ST3D_ERR_INVALID)
        case_fail("label %d of %d classes was accepted", c->k, c->k);
    labels[0] = keep;
    case_end();
}

void test_misc(void) {
    uint64_t seed = 3000;
    for (size_t i = 0; i < sizeof pool_cases / sizeof *pool_cases; i++)
        run_pool_case(&pool_cases[i], seed++);
    for (size_t i = 0; i < sizeof gap_cases / sizeof *gap_cases; i++) run_gap_case(&gap_cases[i], seed++);
    for (size_t i = 0; i < sizeof add_cases / sizeof *add_cases; i++) run_add_case(&add_cases[i], seed++);
    for (size_t i = 0; i < sizeof shortcut_cases / sizeof *shortcut_cases; i++)
        run_shortcut_case(&shortcut_cases[i], seed++);
    for (size_t i = 0; i < sizeof concat_cases / sizeof *concat_cases; i++)
        run_concat_case(&concat_cases[i], seed++);
    for (size_t i = 0; i < sizeof linear_cases / sizeof *linear_cases; i++)
        run_linear_case(&linear_cases[i], seed++);
    for (size_t i = 0; i < sizeof xent_cases / sizeof *xent_cases; i++)
        run_xent_case(&xent_cases[i], seed++);
}

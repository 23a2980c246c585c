/*
 * test_ops_conv.c - 3D convolution: conv_build_forward / conv_build_backward
 * in training (dst, diff_src, diff_weights, diff_bias) and inference,
 * the fused inference post-ops (residual sum, ReLU: conv_fuse), and the
 * im2col + matmul weight gradient (conv_wgrad_gemm_build), each against
 * ref_conv_fwd / ref_conv_bwd.
 *
 * The geometries are those the families build: ResNet's 7x7x7 stem with
 * stride (1,2,2) (and its --conv1-t-stride 2 variant), torchvision's 3x7x7
 * stem, R(2+1)D's (1,7,7) / (3,1,1) stem and (1,3,3) spatial / (3,1,1)
 * temporal factorized convolutions, 3x3x3 and 1x1x1 block convolutions,
 * strided downsampling in all dimensions, the 1x1x1 stride-2 shortcut B,
 * ResNeXt's grouped convolutions (4 and 32 groups), C3D's biased convs and
 * layer4's 1x4x4 volume.  Inputs arrive in plain, channels-last and blocked
 * layouts, as they do from a network's previous layer.  The temporal
 * Winograd convolution (conv_wino_build) runs the fused cases' checks on
 * its own geometries: every tile size it picks, partial last tiles, tiles
 * in several chunks, groups, bias, sum and ReLU.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

typedef struct conv_case {
    const char *what;             /* where the networks use it */
    int n, ic, oc, groups;        /* batch, channels, groups */
    int in[3], k[3], s[3], p[3];  /* input volume, kernel, stride, padding (D, H, W) */
    int bias;                     /* has a bias */
    layout lay;                   /* layout of src as fed */
    int no_dsrc;                  /* first layer: no input gradient built */
} conv_case;

static const conv_case conv_cases[] = {
    {"resnet stem", 2, 3, 8, 1, {6, 10, 10}, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, 0, LAY_NCDHW, 1},
    {"resnet stem, dsrc", 1, 3, 8, 1, {5, 9, 9}, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, 0, LAY_NCDHW, 0},
    {"resnet stem t-stride 2", 1, 3, 8, 1, {6, 9, 9}, {7, 7, 7}, {2, 2, 2}, {3, 3, 3}, 0, LAY_NCDHW, 1},
    {"tv-r3d stem", 2, 3, 8, 1, {4, 10, 10}, {3, 7, 7}, {1, 2, 2}, {1, 3, 3}, 0, LAY_NCDHW, 0},
    {"r2plus1d stem spatial", 2, 3, 8, 1, {3, 10, 10}, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}, 0, LAY_NCDHW, 0},
    {"r2plus1d stem temporal", 2, 8, 16, 1, {4, 5, 5}, {3, 1, 1}, {1, 1, 1}, {1, 0, 0}, 0, LAY_8C, 0},
    {"r2plus1d (1,3,3)", 2, 16, 16, 1, {3, 5, 5}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, 0, LAY_8C, 0},
    {"r2plus1d (1,3,3) stride 2", 2, 16, 8, 1, {3, 7, 7}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, 0, LAY_8C, 0},
    {"r2plus1d (3,1,1) stride 2", 2, 8, 16, 1, {5, 4, 4}, {3, 1, 1}, {2, 1, 1}, {1, 0, 0}, 0, LAY_8C, 0},
    {"block 3x3x3", 2, 16, 16, 1, {4, 6, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_8C, 0},
    {"block 3x3x3", 2, 16, 16, 1, {3, 4, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_16C, 0},
    {"block 3x3x3", 1, 8, 8, 1, {3, 5, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_NDHWC, 0},
    {"block 3x3x3", 2, 4, 8, 1, {3, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_NCDHW, 0},
    {"downsample 3x3x3 stride 2", 2, 8, 16, 1, {5, 7, 7}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0, LAY_8C, 0},
    {"downsample 3x3x3 stride 2, even", 1, 16, 16, 1, {4, 6, 6}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0, LAY_8C, 0},
    {"shortcut B 1x1x1 stride 2", 2, 8, 16, 1, {4, 6, 6}, {1, 1, 1}, {2, 2, 2}, {0, 0, 0}, 0, LAY_8C, 0},
    {"bottleneck 1x1x1", 2, 16, 8, 1, {3, 5, 5}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0, LAY_8C, 0},
    {"bottleneck 1x1x1", 2, 8, 32, 1, {2, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0, LAY_NCDHW, 0},
    {"resnext groups 4", 2, 8, 8, 4, {3, 5, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_8C, 0},
    {"resnext groups 4", 1, 16, 16, 4, {3, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_NCDHW, 0},
    {"resnext groups 32", 2, 64, 64, 32, {2, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_8C, 0},
    {"resnext groups 32 stride 2", 1, 64, 64, 32, {3, 5, 5}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0, LAY_8C, 0},
    {"resnext groups 32", 1, 32, 32, 32, {2, 3, 3}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NCDHW, 0},
    {"c3d conv1, bias", 2, 3, 8, 1, {4, 6, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NCDHW, 1},
    {"c3d conv, bias", 2, 8, 16, 1, {3, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_8C, 0},
    {"odd channels, bias", 2, 5, 7, 1, {3, 4, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_8C, 0},
    {"1x1x1, bias", 2, 8, 8, 1, {2, 3, 4}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, LAY_NDHWC, 0},
    {"layer4 1x4x4", 2, 32, 32, 1, {1, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_8C, 0},
};

static void geom_of(const conv_case *c, ref_conv *rg, conv_geom *g) {
    memset(rg, 0, sizeof *rg);
    memset(g, 0, sizeof *g);
    rg->ic = g->ic = c->ic;
    rg->oc = g->oc = c->oc;
    rg->groups = g->groups = c->groups;
    for (int i = 0; i < 3; i++) {
        rg->k[i] = g->k[i] = c->k[i];
        rg->stride[i] = g->stride[i] = c->s[i];
        rg->pad[i] = g->pad[i] = c->p[i];
    }
}

static void describe(const conv_case *c, const char *extra, char *buf, size_t cap) {
    snprintf(buf, cap,
             "%s: N%d IC%d OC%d in %dx%dx%d k%dx%dx%d s%dx%dx%d p%dx%dx%d g%d%s %s%s", c->what,
             c->n, c->ic, c->oc, c->in[0], c->in[1], c->in[2], c->k[0], c->k[1], c->k[2], c->s[0],
             c->s[1], c->s[2], c->p[0], c->p[1], c->p[2], c->groups, c->bias ? " bias" : "",
             layout_name(c->lay), extra);
}

/* Reference data of one convolution case. */
typedef struct conv_data {
    ref_conv g;
    ref_dims in, out, ws, bs;
    double *x, *w, *b, *dy, *y, *dx, *dw, *db, *scratch;
    float *wf, *bf;
} conv_data;

static double conv_loss(void *ctx) {
    conv_data *d = ctx;
    ref_conv_fwd(&d->g, d->in, d->x, d->w, d->b, d->scratch);
    return dot(d->dy, d->scratch, ref_numel(d->out));
}

static float *to_floats(const double *a, size_t n) {
    float *f = tfloats(n);
    for (size_t i = 0; i < n; i++) f[i] = (float)a[i];
    return f;
}

/* Draws the data, runs the reference and checks its gradients. */
static void conv_prepare(const conv_case *c, conv_data *d, uint64_t seed) {
    rng r = {seed};
    conv_geom unused;
    geom_of(c, &d->g, &unused);
    d->in = (ref_dims){c->n, c->ic, c->in[0], c->in[1], c->in[2]};
    d->out = ref_conv_out(&d->g, d->in);
    d->ws = (ref_dims){c->oc, c->ic / c->groups, c->k[0], c->k[1], c->k[2]};
    d->bs = (ref_dims){1, c->oc, 1, 1, 1};
    size_t nx = ref_numel(d->in), ny = ref_numel(d->out), nw = ref_numel(d->ws);
    d->x = tdoubles(nx);
    d->w = tdoubles(nw);
    d->b = c->bias ? tdoubles((size_t)c->oc) : NULL;
    d->dy = tdoubles(ny);
    d->y = tdoubles(ny);
    d->scratch = tdoubles(ny);
    d->dx = tdoubles(nx);
    d->dw = tdoubles(nw);
    d->db = tdoubles((size_t)c->oc);
    fill_uniform(&r, d->x, nx, -1.0, 1.0);
    fill_uniform(&r, d->w, nw, -0.5, 0.5);
    if (d->b) fill_uniform(&r, d->b, (size_t)c->oc, -0.5, 0.5);
    fill_uniform(&r, d->dy, ny, -1.0, 1.0);
    ref_conv_fwd(&d->g, d->in, d->x, d->w, d->b, d->y);
    ref_conv_bwd(&d->g, d->in, d->x, d->w, d->dy, d->dx, d->dw, d->b ? d->db : NULL);
    d->wf = to_floats(d->w, nw);
    d->bf = d->b ? to_floats(d->b, (size_t)c->oc) : NULL;
}

static void conv_check_reference(conv_data *d) {
    check_fd("diff_src", d->x, d->in, 5, d->dx, conv_loss, d);
    check_fd("diff_weights", d->w, d->ws, 5, d->dw, conv_loss, d);
    if (d->b) check_fd("diff_bias", d->b, d->bs, 2, d->db, conv_loss, d);
}

/* Forward (training, then inference) and backward of one case. */
static void run_conv_case(const conv_case *c, uint64_t seed) {
    char geom[256];
    describe(c, "", geom, sizeof geom);
    if (!case_begin("conv3d", "%s", geom)) return;
    conv_data d;
    conv_prepare(c, &d, seed);
    conv_check_reference(&d);
    conv_geom g;
    ref_conv unused;
    geom_of(c, &unused, &g);
    size_t nw = ref_numel(d.ws);
    float *gw = tfloats(nw), *gb = tfloats((size_t)c->oc);
    for (size_t i = 0; i < nw; i++) gw[i] = 7.0f; /* must be overwritten */
    for (int i = 0; i < c->oc; i++) gb[i] = 7.0f;

    bench k;
    bench_init(&k);
    conv_op op;
    memset(&op, 0, sizeof op);
    dnnl_memory_desc_t xmd;
    md_layout(&xmd, d.in, c->lay);
    tensor xt, dyt, dxt;
    float *y_got, *dx_got = NULL;
    if (bench_feed(&k, &k.fwd, &xmd, d.x, &xt) != 0) goto infer;
    if (conv_build_forward(&k.b, &k.prep, &k.fwd, &g, &xt, d.wf, d.bf, NULL, NULL, 1, &op) != 0) {
        case_error("conv_build_forward (training)", &k.err);
        goto infer;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst))) goto infer;
    if (bench_feed(&k, &k.bwd, &op.dst.md, d.dy, &dyt) != 0) goto infer;
    if (!c->no_dsrc && bld_tensor(&k.b, &xt.md, &dxt) != 0) {
        case_error("diff_src allocation", &k.err);
        goto infer;
    }
    if (conv_build_backward(&k.b, &k.bwd, &op, &dyt, c->no_dsrc ? NULL : &dxt, gw,
                            c->bias ? gb : NULL) != 0) {
        case_error("conv_build_backward", &k.err);
        goto infer;
    }
    if (!c->no_dsrc && !(dx_got = bench_fetch(&k, &k.bwd, &dxt))) goto infer;
    if (bench_run(&k) != 0) goto infer;
    check_close("dst", y_got, d.y, d.out, 5, TOL_FWD);
    if (!c->no_dsrc) check_close("diff_src", dx_got, d.dx, d.in, 5, TOL_BWD);
    check_close("diff_weights", gw, d.dw, d.ws, 5, TOL_BWD);
    if (c->bias) check_close("diff_bias", gb, d.db, d.bs, 2, TOL_BWD);
infer:
    if (op.fwd_hint) dnnl_primitive_desc_destroy(op.fwd_hint);
    bench_free(&k);

    /* inference: forward_inference primitive, no hint kept */
    bench_init(&k);
    if (bench_feed(&k, &k.fwd, &xmd, d.x, &xt) != 0) goto done;
    if (conv_build_forward(&k.b, &k.prep, &k.fwd, &g, &xt, d.wf, d.bf, NULL, NULL, 0, &op) != 0) {
        case_error("conv_build_forward (inference)", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst)) || bench_run(&k) != 0) goto done;
    check_close("dst (inference)", y_got, d.y, d.out, 5, TOL_FWD);
done:
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ fused (inference) */

typedef struct fused_case {
    conv_case c;
    int sum, relu;   /* post-ops */
    layout res_lay;  /* layout of the residual the sum accumulates into */
} fused_case;

static const fused_case fused_cases[] = {
    /* basic block conv2 + folded bn2 + shortcut + relu */
    {{"block end", 2, 16, 16, 1, {3, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_8C, 0}, 1, 1, LAY_8C},
    {{"block end", 2, 16, 16, 1, {3, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_8C, 0}, 1, 1, LAY_NCDHW},
    {{"block end", 1, 16, 16, 1, {2, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_16C, 0}, 1, 1, LAY_16C},
    /* bottleneck conv3 (1x1x1) + bn3 + shortcut, no relu (pre-activation) */
    {{"bottleneck end", 2, 8, 16, 1, {3, 4, 4}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, LAY_8C, 0}, 1, 0, LAY_8C},
    {{"bottleneck end, no bias", 2, 8, 16, 1, {3, 4, 4}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 0, LAY_NCDHW, 0}, 1, 0, LAY_NDHWC},
    /* stem conv + folded bn + relu */
    {{"stem", 1, 3, 8, 1, {4, 8, 8}, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, 1, LAY_NCDHW, 0}, 0, 1, LAY_NCDHW},
    /* resnext grouped conv2 + bn + relu; strided */
    {{"resnext conv2", 2, 16, 16, 4, {3, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_8C, 0}, 0, 1, LAY_NCDHW},
    {{"downsample", 2, 8, 16, 1, {5, 6, 6}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 1, LAY_8C, 0}, 0, 1, LAY_NCDHW},
    /* r2plus1d temporal conv + bn + shortcut + relu */
    {{"r2plus1d end", 2, 16, 16, 1, {3, 4, 4}, {3, 1, 1}, {1, 1, 1}, {1, 0, 0}, 1, LAY_8C, 0}, 1, 1, LAY_8C},
};

/* Temporal Winograd (conv_wino.c), which must accept each of these. */
static const fused_case wino_cases[] = {
    /* ResNet stem r = 7 over 16 frames: F(4, 7), 4 tiles */
    {{"stem F(4,7)", 1, 3, 8, 1, {16, 10, 10}, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, 1, LAY_NCDHW, 0}, 0, 1, LAY_NCDHW},
    /* 10 frames: 3 tiles, the last one cut at 2 frames; batch 2 */
    {{"stem F(4,7) partial", 2, 3, 8, 1, {10, 9, 9}, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, 0, LAY_NCDHW, 0}, 0, 0, LAY_NCDHW},
    /* basic block end over 8 frames: F(4, 3), sum + relu */
    {{"block end F(4,3)", 2, 16, 16, 1, {8, 5, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NATIVE, 0}, 1, 1, LAY_NATIVE},
    /* 5 frames: F(6, 3), one tile cut at 5; plain input reordered */
    {{"block F(6,3) partial", 2, 8, 16, 1, {5, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_NCDHW, 0}, 0, 1, LAY_NCDHW},
    /* 16 frames, 4 tiles of F(4, 3) in chunks of 2 (U and M within the output's bytes) */
    {{"block F(4,3) 2 chunks", 1, 16, 64, 1, {16, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NATIVE, 0}, 0, 0, LAY_NCDHW},
    /* r = 5 (--conv1-t-size 5) over 12 frames: F(4, 5) */
    {{"stem r5 F(4,5)", 1, 3, 8, 1, {12, 8, 8}, {5, 7, 7}, {1, 2, 2}, {2, 3, 3}, 1, LAY_NCDHW, 0}, 0, 1, LAY_NCDHW},
    /* ResNeXt grouped conv2 over 8 frames */
    {{"resnext groups 4 F(4,3)", 2, 16, 16, 4, {8, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NATIVE, 0}, 0, 1, LAY_NCDHW},
    /* R(2+1)D's temporal (3,1,1) conv, block end */
    {{"r2plus1d temporal F(4,3)", 2, 16, 16, 1, {4, 4, 4}, {3, 1, 1}, {1, 1, 1}, {1, 0, 0}, 1, LAY_NATIVE, 0}, 1, 1, LAY_NATIVE},
    /* planes of 24 x 24 x block floats, more than a transform job's part (4096):
     * jobs over parts of a plane, the last one partial */
    {{"planes in parts F(4,3)", 1, 16, 16, 1, {8, 24, 24}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NATIVE, 0}, 1, 1, LAY_NATIVE},
    /* a residual in channels-last layout, which oneDNN's 2D Winograd (AVX-512) does
     * not take: it is reordered into the kernel's layout before the sum */
    {{"block end, residual channels last", 1, 32, 32, 1, {8, 6, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NATIVE, 0}, 1, 1, LAY_NDHWC},
    /* 48 channels, bias, spatial stride 2 (no 2D Winograd for it): with channels
     * last (AVX-512's brgemm kernels) a block of 48 channels, whose bias pattern
     * does not divide the transforms' 256-float chunks */
    {{"48 channels F(4,3) s2", 1, 32, 48, 1, {8, 12, 12}, {3, 3, 3}, {1, 2, 2}, {1, 1, 1}, 1, LAY_NDHWC, 0}, 0, 1, LAY_NCDHW},
    /* channels that fill no block, bias; 6 frames: F(6, 3) */
    {{"odd channels F(6,3)", 2, 5, 7, 1, {6, 4, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, LAY_NATIVE, 0}, 0, 1, LAY_NCDHW},
};

static void run_fused_case(const fused_case *f, uint64_t seed, int wino) {
    const conv_case *c = &f->c;
    char geom[320], extra[64];
    snprintf(extra, sizeof extra, "%s%s%s%s", f->sum ? " +sum into " : "",
             f->sum ? layout_name(f->res_lay) : "", f->relu ? " +relu" : "", "");
    describe(c, extra, geom, sizeof geom);
    if (!case_begin(wino ? "conv3d_winograd" : "conv3d_fused", "%s", geom)) return;
    conv_data d;
    conv_prepare(c, &d, seed);
    conv_check_reference(&d);
    rng r = {seed ^ 0x5u};
    size_t ny = ref_numel(d.out);
    double *res = tdoubles(ny), *want = tdoubles(ny);
    fill_uniform(&r, res, ny, -1.0, 1.0);
    for (size_t i = 0; i < ny; i++) {
        double v = d.y[i] + (f->sum ? res[i] : 0.0);
        want[i] = f->relu && v < 0.0 ? 0.0 : v;
    }
    conv_geom g;
    ref_conv unused;
    geom_of(c, &unused, &g);
    conv_fuse fuse = {.sum = f->sum, .relu = f->relu};
    bench k;
    bench_init(&k);
    conv_op op;
    dnnl_memory_desc_t xmd, rmd;
    md_layout(&xmd, d.in, c->lay);
    md_layout(&rmd, d.out, f->res_lay);
    tensor xt, rt;
    float *y_got;
    if (bench_feed(&k, &k.fwd, &xmd, d.x, &xt) != 0) goto done;
    if (f->sum && bench_feed(&k, &k.fwd, &rmd, res, &rt) != 0) goto done;
    if (wino) {
        int built = conv_wino_build(&k.b, &k.prep, &k.fwd, &g, &xt, d.wf, d.bf, &fuse,
                                    f->sum ? &rt : NULL, &op);
        if (built < 0) case_error("conv_wino_build", &k.err);
        if (built == 0) case_fail("conv_wino_build declined a geometry it should take");
        if (built != 1) goto done;
    } else if (conv_build_forward(&k.b, &k.prep, &k.fwd, &g, &xt, d.wf, d.bf, &fuse,
                                  f->sum ? &rt : NULL, 0, &op) != 0) {
        case_error("conv_build_forward (fused)", &k.err);
        goto done;
    }
    /* the direct kernel sums into the residual itself; Winograd may take a
     * copy of it in its own layout (a reorder first) */
    if (f->sum && !wino && op.dst.mem != rt.mem)
        case_fail("dst: the fused sum did not write into the residual");
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst)) || bench_run(&k) != 0) goto done;
    check_close("dst", y_got, want, d.out, 5, TOL_FWD);
    /* a second run recomputes from the refreshed residual, not accumulating */
    if (bench_rerun(&k, &k.fwd) != 0) goto done;
    check_close("dst (second run)", y_got, want, d.out, 5, TOL_FWD);
done:
    bench_free(&k);
    case_end();
}

/* ------------------------------------------------------------ im2col weight gradient */

static const conv_case gemm_cases[] = {
    {"layer4 1x4x4", 2, 32, 32, 1, {1, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_8C, 0},
    {"block 3x3x3", 2, 8, 16, 1, {3, 4, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_NCDHW, 0},
    {"shortcut B 1x1x1 stride 2", 2, 8, 16, 1, {4, 6, 6}, {1, 1, 1}, {2, 2, 2}, {0, 0, 0}, 0, LAY_8C, 0},
    {"downsample stride 2", 2, 8, 16, 1, {5, 7, 7}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0, LAY_NDHWC, 0},
    {"r2plus1d (1,3,3) stride 2", 2, 8, 8, 1, {3, 6, 6}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, 0, LAY_8C, 0},
    {"r2plus1d (3,1,1)", 2, 8, 8, 1, {4, 3, 3}, {3, 1, 1}, {1, 1, 1}, {1, 0, 0}, 0, LAY_8C, 0},
    {"resnet stem", 1, 3, 8, 1, {4, 8, 8}, {7, 7, 7}, {1, 2, 2}, {3, 3, 3}, 0, LAY_NCDHW, 0},
    {"odd channels", 2, 5, 7, 1, {3, 4, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 0, LAY_8C, 0},
};

static void run_gemm_case(const conv_case *c, uint64_t seed) {
    char geom[256];
    describe(c, "", geom, sizeof geom);
    if (!case_begin("conv_wgrad_gemm", "%s", geom)) return;
    conv_data d;
    conv_prepare(c, &d, seed);
    check_fd("diff_weights", d.w, d.ws, 5, d.dw, conv_loss, &d);
    conv_geom g;
    ref_conv unused;
    geom_of(c, &unused, &g);
    size_t nw = ref_numel(d.ws);
    float *gw = tfloats(nw);
    for (size_t i = 0; i < nw; i++) gw[i] = 7.0f;
    bench k;
    bench_init(&k);
    conv_op op;
    memset(&op, 0, sizeof op);
    dnnl_memory_desc_t xmd;
    md_layout(&xmd, d.in, c->lay);
    tensor xt, dyt;
    float *y_got;
    if (bench_feed(&k, &k.fwd, &xmd, d.x, &xt) != 0) goto done;
    if (conv_build_forward(&k.b, &k.prep, &k.fwd, &g, &xt, d.wf, NULL, NULL, NULL, 1, &op) != 0) {
        case_error("conv_build_forward", &k.err);
        goto done;
    }
    if (!(y_got = bench_fetch(&k, &k.fwd, &op.dst))) goto done;
    if (bench_feed(&k, &k.bwd, &op.dst.md, d.dy, &dyt) != 0) goto done;
    if (conv_wgrad_gemm_build(&k.b, &k.bwd, &op, &dyt, gw) != 0) {
        case_error("conv_wgrad_gemm_build", &k.err);
        goto done;
    }
    if (bench_run(&k) != 0) goto done;
    check_close("dst", y_got, d.y, d.out, 5, TOL_FWD);
    check_close("diff_weights", gw, d.dw, d.ws, 5, TOL_BWD);
done:
    if (op.fwd_hint) dnnl_primitive_desc_destroy(op.fwd_hint);
    bench_free(&k);
    case_end();
}

void test_conv(void) {
    uint64_t seed = 1000;
    for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++)
        run_conv_case(&conv_cases[i], seed++);
    for (size_t i = 0; i < sizeof fused_cases / sizeof *fused_cases; i++)
        run_fused_case(&fused_cases[i], seed++, 0);
    for (size_t i = 0; i < sizeof wino_cases / sizeof *wino_cases; i++)
        run_fused_case(&wino_cases[i], seed++, 1);
    for (size_t i = 0; i < sizeof gemm_cases / sizeof *gemm_cases; i++)
        run_gemm_case(&gemm_cases[i], seed++);
}

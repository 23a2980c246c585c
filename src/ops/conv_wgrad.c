/*
 * conv_wgrad.c - weight gradients of a 3D convolution as one large matrix
 * product, for the shapes where oneDNN 2.6 has no optimized direct kernel.
 *
 * oneDNN's JIT backward-weights kernel declines small volumes (e.g. layer4
 * of a ResNet on 16x112x112 clips: 1x4x4 voxels) and falls back to a
 * per-image im2col + small GEMM that runs at a tenth of the machine's speed.
 * Here the whole batch goes through one GEMM on oneDNN's matmul:
 *
 *   src      N x IC x D x H x W     -> channels-last copy (oneDNN reorder)
 *   cols     P x (IC*KD*KH*KW)      im2col, P = N*OD*OH*OW output voxels
 *   diff_dst N x OC x OD x OH x OW  -> channels-last, read as P x OC
 *   dW       OC x (IC*KD*KH*KW) = diff_dst^T (OC x P) . cols (P x IC*K),
 *            which is PyTorch's OC x IC x KD x KH x KW layout: written in place
 *
 * Only ungrouped convolutions without bias take this path.
 */
#include "ops.h"

#include <string.h>

typedef struct im2col_ctx {
    tensor src;         /* N x IC x D x H x W, channels-last */
    float *cols;        /* P x K*IC */
    conv_geom g;        /* geometry */
    int64_t n, d, h, w; /* input batch and volume */
    int64_t od, oh, ow; /* output volume */
} im2col_ctx;

/* cols[p][c*K + (kd*KH + kh)*KW + kw] = src[n][id][ih][iw][c], 0 outside */
static void im2col_fn(const step *s) {
    const im2col_ctx *c = s->ctx;
    const float *src = tensor_ptr(&c->src);
    const int64_t ic = c->g.ic, kd = c->g.k[0], kh = c->g.k[1], kw = c->g.k[2];
    const int64_t row = kd * kh * kw * ic, p_total = c->n * c->od * c->oh * c->ow;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < p_total; p++) {
        int64_t x = p % c->ow, y = (p / c->ow) % c->oh, z = (p / (c->ow * c->oh)) % c->od;
        int64_t n = p / (c->ow * c->oh * c->od);
        float *out = c->cols + p * row;
        const int64_t k = kd * kh * kw;
        int64_t off = 0;
        for (int64_t a = 0; a < kd; a++) {
            int64_t id = z * c->g.stride[0] - c->g.pad[0] + a;
            for (int64_t b = 0; b < kh; b++) {
                int64_t ih = y * c->g.stride[1] - c->g.pad[1] + b;
                for (int64_t e = 0; e < kw; e++, off++) {
                    int64_t iw = x * c->g.stride[2] - c->g.pad[2] + e;
                    if (id < 0 || id >= c->d || ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) {
                        for (int64_t ch = 0; ch < ic; ch++) out[ch * k + off] = 0.0f;
                    } else {
                        const float *in = src + (((n * c->d + id) * c->h + ih) * c->w + iw) * ic;
                        for (int64_t ch = 0; ch < ic; ch++) out[ch * k + off] = in[ch];
                    }
                }
            }
        }
    }
}

int conv_wgrad_gemm_build(builder *b, program *bwd, const conv_op *op, const tensor *diff_dst,
                          float *grad_w) {
    const conv_geom *g = &op->g;
    const dnnl_memory_desc_t *smd = &op->src_k.md, *dmd = &op->dst.md;
    int64_t n = smd->dims[0], k = (int64_t)g->k[0] * g->k[1] * g->k[2];
    int64_t p = n * dmd->dims[2] * dmd->dims[3] * dmd->dims[4], row = k * g->ic;

    /* channels-last copies of src and diff_dst */
    dnnl_memory_desc_t s_cl, d_cl;
    dnnl_memory_desc_init_by_tag(&s_cl, 5, smd->dims, dnnl_f32, dnnl_ndhwc);
    dnnl_memory_desc_init_by_tag(&d_cl, 5, dmd->dims, dnnl_f32, dnnl_ndhwc);
    tensor src_cl, dd_cl;
    if (op_to_layout(b, bwd, &op->src_k, &s_cl, &src_cl) != 0 ||
        op_to_layout(b, bwd, diff_dst, &d_cl, &dd_cl) != 0)
        return -1;

    im2col_ctx *c = bld_blob(b, sizeof *c);
    if (!c) return -1;
    c->src = src_cl;
    c->g = *g;
    c->n = n;
    c->d = smd->dims[2];
    c->h = smd->dims[3];
    c->w = smd->dims[4];
    c->od = dmd->dims[2];
    c->oh = dmd->dims[3];
    c->ow = dmd->dims[4];
    c->cols = bld_alloc(b, sizeof(float) * (size_t)(p * row));
    if (!c->cols) return -1;
    step s_cols = {.fn = im2col_fn, .ctx = c, .what = "im2col"};
    if (prog_push(bwd, &s_cols, b->err) != 0) return -1;

    /* dW (OC x K*IC) = dd^T (OC x P, a strided view of P x OC) . cols */
    dnnl_dims_t a_dims = {g->oc, p}, a_strides = {1, g->oc};
    dnnl_dims_t b_dims = {p, row}, c_dims = {g->oc, row};
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, dnnl_f32, a_strides);
    md_plain(&b_md, 2, b_dims);
    md_plain(&c_md, 2, c_dims);
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "weight-gradient matmul") != 0) return -1;
    tensor a, bm, out;
    if (bld_view(b, &a_md, tensor_ptr(&dd_cl), &a) != 0 || bld_view(b, &b_md, c->cols, &bm) != 0 ||
        bld_view(b, &c_md, grad_w, &out) != 0) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    step s = {.what = "conv3d backward weights (matmul)"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, a.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, bm.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, out.mem};
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(bwd, &s, b->err);
}

/*
 * conv.c - 3D convolution (nn.Conv3d) on oneDNN: forward with optional
 * fused residual sum and ReLU, backward data and backward weights.
 *
 *   src     N x IC x D x H x W
 *   weights OC x IC/G x KD x KH x KW  (PyTorch layout; G groups)
 *   dst     N x OC x OD x OH x OW,  O* = (I* + 2 pad - K) / stride + 1
 *
 * Parameters stay in PyTorch's layout in the model's flat buffers (so that
 * SGD, checkpoints and gradient all-reduce see one canonical layout); a
 * `prepare` step reorders them into the kernel's blocked layout.
 */
#include "ops.h"

#include <string.h>

/* Weight dims in oneDNN's order: [G,] OC/G, IC/G, KD, KH, KW. */
static int weight_dims(const conv_geom *g, int64_t *dims) {
    int n = 0;
    if (g->groups > 1) dims[n++] = g->groups;
    dims[n++] = g->oc / g->groups;
    dims[n++] = g->ic / g->groups;
    for (int i = 0; i < 3; i++) dims[n++] = g->k[i];
    return n;
}

static void out_dims(const conv_geom *g, const dnnl_memory_desc_t *src, int64_t *dims) {
    dims[0] = src->dims[0];
    dims[1] = g->oc;
    for (int i = 0; i < 3; i++)
        dims[2 + i] = (src->dims[2 + i] + 2 * g->pad[i] - g->k[i]) / g->stride[i] + 1;
}

/* Activation layouts tried, in order, until oneDNN offers an optimized
 * kernel (not its slow reference one): the layout as given (no reorder),
 * oneDNN's choice, channels-last, plain.  Some shapes (e.g. the backward
 * weights of 3x3x3 convs on 1x4x4 volumes) have a fast kernel only for the
 * plain layouts. */
#define N_LAYOUT_TRIES 4
static void layout_try(int t, const dnnl_memory_desc_t *given, dnnl_memory_desc_t *out) {
    static const dnnl_format_tag_t tags[N_LAYOUT_TRIES] = {dnnl_format_tag_undef, dnnl_format_tag_any,
                                                           dnnl_ndhwc, dnnl_ncdhw};
    if (t == 0)
        *out = *given;
    else
        dnnl_memory_desc_init_by_tag(out, given->ndims, given->dims, dnnl_f32, tags[t]);
}

/* Creates the forward primitive descriptor.  The source layout as produced
 * upstream is tried first (no reorder); if oneDNN would then fall back to its
 * slow reference kernel, the source layout is left to oneDNN ("any"). */
static int make_fwd_pd(builder *b, const conv_geom *g, const dnnl_memory_desc_t *src_md,
                       int has_bias, const dnnl_memory_desc_t *dst_md, dnnl_primitive_attr_t attr,
                       int training, dnnl_primitive_desc_t *pd) {
    int64_t wdims[6];
    dnnl_dims_t strides = {0}, pad = {0};
    int wn = weight_dims(g, wdims);
    for (int i = 0; i < 3; i++) {
        strides[i] = g->stride[i];
        pad[i] = g->pad[i];
    }
    dnnl_memory_desc_t wmd, bmd;
    md_any(&wmd, wn, wdims);
    int64_t oc = g->oc;
    md_plain(&bmd, 1, &oc);
    for (int t = 0; t < N_LAYOUT_TRIES; t++) {
        dnnl_memory_desc_t src_t, dst_t;
        layout_try(t, src_md, &src_t);
        /* a fused sum fixes dst; otherwise dst follows the try (any for 0, 1) */
        if (dst_md->format_kind == dnnl_format_kind_any && t >= 2)
            layout_try(t, dst_md, &dst_t);
        else
            dst_t = *dst_md;
        dnnl_convolution_desc_t desc;
        dnnl_status_t st = dnnl_convolution_forward_desc_init(
            &desc, training ? dnnl_forward_training : dnnl_forward_inference,
            dnnl_convolution_direct, &src_t, &wmd, has_bias ? &bmd : NULL, &dst_t, strides, pad,
            pad);
        if (st != dnnl_success) continue;
        st = dnnl_primitive_desc_create(pd, &desc, attr, b->eng, NULL);
        if (st != dnnl_success) continue;
        if (t < N_LAYOUT_TRIES - 1 && pd_is_reference(*pd)) {
            dnnl_primitive_desc_destroy(*pd);
            continue;
        }
        return 0;
    }
    return st3d_fail(b->err, ST3D_ERR_BACKEND,
                     "oneDNN has no convolution for %dx%dx%d kernel, %d->%d channels, %d groups",
                     g->k[0], g->k[1], g->k[2], g->ic, g->oc, g->groups);
}

int conv_build_forward(builder *b, program *prepare, program *fwd, const conv_geom *g,
                       const tensor *src, float *w_user, float *bias, const conv_fuse *fuse,
                       const tensor *residual, int training, conv_op *op) {
    memset(op, 0, sizeof *op);
    op->g = *g;
    int64_t odims[5];
    out_dims(g, &src->md, odims);
    dnnl_memory_desc_t dst_md;
    if (fuse && fuse->sum)
        dst_md = residual->md;
    else
        md_any(&dst_md, 5, odims);

    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    if (fuse && (fuse->sum || fuse->relu)) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        if (fuse->sum) dnnl_post_ops_append_sum(po, 1.0f);
        if (fuse->relu) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd = NULL;
    int rc = make_fwd_pd(b, g, &src->md, bias != NULL, &dst_md, attr, training, &pd);
    dnnl_primitive_attr_destroy(attr);
    if (rc != 0) return -1;

    /* source in the kernel's layout */
    const dnnl_memory_desc_t *want_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    if (op_to_layout(b, fwd, src, want_src, &op->src_k) != 0) goto fail;

    /* weights: user layout -> kernel layout, once per parameter change */
    int64_t wdims[6];
    int wn = weight_dims(g, wdims);
    dnnl_memory_desc_t wuser_md;
    md_plain(&wuser_md, wn, wdims);
    tensor wuser;
    if (bld_view(b, &wuser_md, w_user, &wuser) != 0) goto fail;
    const dnnl_memory_desc_t *want_w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (md_equal(&wuser_md, want_w)) {
        op->wt = wuser;
    } else {
        if (bld_tensor(b, want_w, &op->wt) != 0) goto fail;
        if (op_reorder(b, prepare, &wuser, &op->wt) != 0) goto fail;
    }
    if (bias) {
        int64_t oc = g->oc;
        dnnl_memory_desc_t bmd;
        md_plain(&bmd, 1, &oc);
        if (bld_view(b, &bmd, bias, &op->bias) != 0) goto fail;
    }

    /* destination */
    if (fuse && fuse->sum) {
        op->dst = *residual;
    } else {
        const dnnl_memory_desc_t *want_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        if (bld_act(b, want_dst, &op->dst) != 0) goto fail;
    }

    step s = {.what = "conv3d forward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, op->src_k.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, op->wt.mem};
    if (bias) s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, op->bias.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, op->dst.mem};
    if (training) {
        /* keep a clone of the descriptor as the hint for the backward */
        if (bld_check(b, dnnl_primitive_desc_clone(&op->fwd_hint, pd), "descriptor clone") != 0)
            goto fail;
    }
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(fwd, &s, b->err);
fail:
    dnnl_primitive_desc_destroy(pd);
    return -1;
}

/* Creates a backward primitive descriptor (data when weights_pass is 0, else
 * weights), trying activation layouts until the kernel is not the reference
 * one.  a_md / b_md: the activation descriptors as the forward used them
 * (diff_src and diff_dst for data; src and diff_dst for weights). */
static int make_bwd_pd(builder *b, const conv_op *op, int weights_pass, int has_bias,
                       const dnnl_memory_desc_t *a_md, const dnnl_memory_desc_t *b_md,
                       dnnl_primitive_desc_t *pd) {
    const conv_geom *g = &op->g;
    dnnl_dims_t strides = {0}, pad = {0};
    int64_t wdims[6];
    for (int i = 0; i < 3; i++) {
        strides[i] = g->stride[i];
        pad[i] = g->pad[i];
    }
    int wn = weight_dims(g, wdims);
    int64_t oc = g->oc;
    dnnl_memory_desc_t wany, bmd;
    md_any(&wany, wn, wdims);
    md_plain(&bmd, 1, &oc);
    for (int t = 0; t < N_LAYOUT_TRIES; t++) {
        dnnl_memory_desc_t at, bt;
        layout_try(t, a_md, &at);
        layout_try(t, b_md, &bt);
        dnnl_convolution_desc_t desc;
        dnnl_status_t st =
            weights_pass
                ? dnnl_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &at,
                                                              &wany, has_bias ? &bmd : NULL, &bt,
                                                              strides, pad, pad)
                : dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &at,
                                                           &wany, &bt, strides, pad, pad);
        if (st != dnnl_success) continue;
        dnnl_primitive_attr_t attr = bld_attr(b);
        if (!attr) return -1;
        st = dnnl_primitive_desc_create(pd, &desc, attr, b->eng, op->fwd_hint);
        dnnl_primitive_attr_destroy(attr);
        if (st != dnnl_success) continue;
        if (t < N_LAYOUT_TRIES - 1 && pd_is_reference(*pd)) {
            dnnl_primitive_desc_destroy(*pd);
            continue;
        }
        return 0;
    }
    return st3d_fail(b->err, ST3D_ERR_BACKEND, "oneDNN has no backward %s for this convolution",
                     weights_pass ? "weights" : "data");
}

int conv_build_backward(builder *b, program *bwd, conv_op *op, const tensor *diff_dst,
                        const tensor *diff_src, float *grad_w, float *grad_bias) {
    const conv_geom *g = &op->g;
    int64_t wdims[6];
    int wn = weight_dims(g, wdims);
    int64_t oc = g->oc;
    dnnl_memory_desc_t bmd;
    md_plain(&bmd, 1, &oc);
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;

    /* backward data: diff_src = conv_transpose(diff_dst, W) */
    if (diff_src) {
        if (make_bwd_pd(b, op, 0, 0, &op->src_k.md, &op->dst.md, &pd) != 0) goto out;
        const dnnl_memory_desc_t *want_w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *want_dd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        const dnnl_memory_desc_t *want_ds = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
        tensor w = op->wt, dd, ds = *diff_src;
        /* the backward may want its own weight layout: reorder each step */
        if (!md_equal(want_w, &op->wt.md) &&
            (bld_tensor(b, want_w, &w) != 0 || op_reorder(b, bwd, &op->wt, &w) != 0))
            goto out;
        if (op_to_layout(b, bwd, diff_dst, want_dd, &dd) != 0) goto out;
        int convert = !md_equal(&diff_src->md, want_ds);
        if (convert && bld_tensor(b, want_ds, &ds) != 0) goto out;
        step s = {.what = "conv3d backward data"};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, dd.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, w.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, ds.mem};
        dnnl_primitive_desc_t owned = pd;
        pd = NULL;
        if (bld_primitive(b, owned, &s) != 0 || prog_push(bwd, &s, b->err) != 0) goto out;
        if (convert && op_reorder(b, bwd, &ds, diff_src) != 0) goto out;
    }

    /* backward weights: dW = sum over the batch of src (x) diff_dst */
    {
        if (make_bwd_pd(b, op, 1, grad_bias != NULL, &op->src_k.md, &op->dst.md, &pd) != 0)
            goto out;
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        if (impl && strncmp(impl, "jit", 3) != 0 && g->groups == 1 && !grad_bias) {
            /* no direct kernel for this shape: one batched matmul instead */
            dnnl_primitive_desc_destroy(pd);
            pd = NULL;
            if (conv_wgrad_gemm_build(b, bwd, op, diff_dst, grad_w) != 0) goto out;
            rc = 0;
            goto out;
        }
        const dnnl_memory_desc_t *dw_md = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
        const dnnl_memory_desc_t *want_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        const dnnl_memory_desc_t *want_dd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        dnnl_memory_desc_t user_md;
        md_plain(&user_md, wn, wdims);
        tensor gw_user, gw, gb, src, dd;
        if (bld_view(b, &user_md, grad_w, &gw_user) != 0) goto out;
        int convert = !md_equal(dw_md, &user_md);
        gw = gw_user;
        if (convert && bld_tensor(b, dw_md, &gw) != 0) goto out;
        if (grad_bias && bld_view(b, &bmd, grad_bias, &gb) != 0) goto out;
        if (op_to_layout(b, bwd, &op->src_k, want_src, &src) != 0 ||
            op_to_layout(b, bwd, diff_dst, want_dd, &dd) != 0)
            goto out;
        step s = {.what = "conv3d backward weights"};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, dd.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, gw.mem};
        if (grad_bias) s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, gb.mem};
        dnnl_primitive_desc_t owned = pd;
        pd = NULL;
        if (bld_primitive(b, owned, &s) != 0 || prog_push(bwd, &s, b->err) != 0) goto out;
        if (convert && op_reorder(b, bwd, &gw, &gw_user) != 0) goto out;
    }
    rc = 0;
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (op->fwd_hint) {
        dnnl_primitive_desc_destroy(op->fwd_hint);
        op->fwd_hint = NULL;
    }
    return rc;
}

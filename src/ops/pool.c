/*
 * pool.c - max and average pooling (nn.MaxPool3d, F.avg_pool3d) and global
 * average pooling (nn.AdaptiveAvgPool3d((1, 1, 1)) + flatten) on oneDNN.
 *
 *   src  N x C x D x H x W
 *   dst  N x C x OD x OH x OW,  O* = floor((I* + 2 pad - K) / stride) + 1
 *   gap  N x C (plain)
 *
 * PyTorch pads symmetrically and floors the output size; oneDNN wants the
 * right padding that makes the arithmetic exact, computed below.  Average
 * pooling includes the padding in the divisor (count_include_pad=True).
 */
#include "ops.h"

#include <string.h>

static int make_pool_pd(builder *b, const pool_geom *g, const dnnl_memory_desc_t *src,
                        dnnl_prop_kind_t prop, dnnl_primitive_desc_t *pd) {
    dnnl_dims_t strides = {0}, kernel = {0}, pl = {0}, pr = {0}, odims = {0};
    odims[0] = src->dims[0];
    odims[1] = src->dims[1];
    for (int i = 0; i < 3; i++) {
        int64_t in = src->dims[2 + i];
        int64_t out = (in + 2 * g->pad[i] - g->k[i]) / g->stride[i] + 1;
        if (out < 1)
            return st3d_fail(b->err, ST3D_ERR_INVALID,
                             "pooling kernel %d with padding %d does not fit an input of size %lld",
                             g->k[i], g->pad[i], (long long)in);
        odims[2 + i] = out;
        strides[i] = g->stride[i];
        kernel[i] = g->k[i];
        pl[i] = g->pad[i];
        pr[i] = (out - 1) * g->stride[i] + g->k[i] - in - g->pad[i];
        if (pr[i] < 0) pr[i] = 0;
    }
    dnnl_memory_desc_t dst;
    md_any(&dst, 5, odims);
    dnnl_pooling_desc_t desc;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_pooling_forward_desc_init(
        &desc, prop, g->max ? dnnl_pooling_max : dnnl_pooling_avg_include_padding, src, &dst,
        strides, kernel, pl, pr);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    return bld_check(b, st, "pooling descriptor");
}

int pool_build_forward(builder *b, program *fwd, const tensor *src, const pool_geom *g,
                       int training, pool_op *op) {
    memset(op, 0, sizeof *op);
    op->g = *g;
    op->src = *src;
    dnnl_primitive_desc_t pd = NULL;
    if (make_pool_pd(b, g, &src->md, training ? dnnl_forward_training : dnnl_forward_inference,
                     &pd) != 0)
        return -1;
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if (bld_act(b, dst_md, &op->dst) != 0) goto fail;
    step s = {.what = g->max ? "max pool forward" : "avg pool forward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, op->dst.mem};
    const dnnl_memory_desc_t *ws_md = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
    if (training && ws_md && md_bytes(ws_md) > 0) {
        if (bld_tensor(b, ws_md, &op->ws) != 0) goto fail;
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, op->ws.mem};
    }
    if (training &&
        bld_check(b, dnnl_primitive_desc_clone(&op->fwd_hint, pd), "descriptor clone") != 0)
        goto fail;
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(fwd, &s, b->err);
fail:
    dnnl_primitive_desc_destroy(pd);
    return -1;
}

int pool_build_backward(builder *b, program *bwd, pool_op *op, const tensor *diff_dst,
                        const tensor *diff_src) {
    const pool_geom *g = &op->g;
    dnnl_dims_t strides = {0}, kernel = {0}, pl = {0}, pr = {0};
    for (int i = 0; i < 3; i++) {
        strides[i] = g->stride[i];
        kernel[i] = g->k[i];
        pl[i] = g->pad[i];
        pr[i] = (op->dst.md.dims[2 + i] - 1) * g->stride[i] + g->k[i] - op->src.md.dims[2 + i] -
                g->pad[i];
        if (pr[i] < 0) pr[i] = 0;
    }
    int rc = -1;
    tensor dd;
    if (op_to_layout(b, bwd, diff_dst, &op->dst.md, &dd) != 0) goto out;
    dnnl_pooling_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) goto out;
    dnnl_status_t st = dnnl_pooling_backward_desc_init(
        &desc, g->max ? dnnl_pooling_max : dnnl_pooling_avg_include_padding, &diff_src->md, &dd.md,
        strides, kernel, pl, pr);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, op->fwd_hint);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "pooling backward descriptor") != 0) goto out;
    step s = {.what = "pool backward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, dd.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, diff_src->mem};
    if (op->ws.mem) s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, op->ws.mem};
    if (bld_primitive(b, pd, &s) != 0 || prog_push(bwd, &s, b->err) != 0) goto out;
    rc = 0;
out:
    if (op->fwd_hint) {
        dnnl_primitive_desc_destroy(op->fwd_hint);
        op->fwd_hint = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------ global average */

int gap_build_forward(builder *b, program *fwd, const tensor *src, int training, gap_op *op) {
    memset(op, 0, sizeof *op);
    pool_geom g = {.max = 0};
    for (int i = 0; i < 3; i++) {
        g.k[i] = (int)src->md.dims[2 + i];
        g.stride[i] = 1;
    }
    if (pool_build_forward(b, fwd, src, &g, training, &op->pool) != 0) return -1;
    /* N x C x 1 x 1 x 1 in the kernel's layout -> N x C plain */
    return op_flatten(b, fwd, &op->pool.dst, &op->flat);
}

int gap_build_backward(builder *b, program *bwd, gap_op *op, const tensor *diff_flat,
                       const tensor *diff_src) {
    tensor dpool;
    if (bld_tensor(b, &op->pool.dst.md, &dpool) != 0 || op_unflatten(b, bwd, diff_flat, &dpool) != 0)
        return -1;
    return pool_build_backward(b, bwd, &op->pool, &dpool, diff_src);
}

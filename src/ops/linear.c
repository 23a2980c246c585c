/*
 * linear.c - nn.Linear on oneDNN's inner product.
 *
 *   src  N x IN (plain)   weight OUT x IN   bias OUT   dst N x OUT (plain)
 *   dst = src W^T + b;  backward: dsrc = ddst W,  dW = ddst^T src,  db = sum ddst
 */
#include "ops.h"

#include <string.h>

int linear_build_forward(builder *b, program *fwd, const tensor *src, int out_features,
                         float *w, float *bias, int training, linear_op *op) {
    memset(op, 0, sizeof *op);
    op->src = *src;
    int64_t n = src->md.dims[0], in = src->md.dims[1], out = out_features;
    int64_t wdims[2] = {out, in}, ddims[2] = {n, out};
    dnnl_memory_desc_t wmd, bmd, dmd;
    md_plain(&wmd, 2, wdims);
    md_plain(&bmd, 1, &out);
    md_plain(&dmd, 2, ddims);
    dnnl_inner_product_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_inner_product_forward_desc_init(
        &desc, training ? dnnl_forward_training : dnnl_forward_inference, &src->md, &wmd, &bmd, &dmd);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "linear descriptor") != 0) return -1;
    if (bld_view(b, &wmd, w, &op->w) != 0 || bld_view(b, &bmd, bias, &op->b) != 0 ||
        bld_tensor(b, &dmd, &op->dst) != 0)
        goto fail;
    step s = {.what = "linear forward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, op->w.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, op->b.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, op->dst.mem};
    if (training &&
        bld_check(b, dnnl_primitive_desc_clone(&op->fwd_hint, pd), "descriptor clone") != 0)
        goto fail;
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(fwd, &s, b->err);
fail:
    dnnl_primitive_desc_destroy(pd);
    return -1;
}

int linear_build_backward(builder *b, program *bwd, linear_op *op, const tensor *diff_dst,
                          const tensor *diff_src, float *grad_w, float *grad_b) {
    int rc = -1;
    dnnl_primitive_attr_t attr = NULL;
    if (diff_src) {
        dnnl_inner_product_desc_t desc;
        dnnl_primitive_desc_t pd = NULL;
        attr = bld_attr(b);
        if (!attr) goto out;
        dnnl_status_t st = dnnl_inner_product_backward_data_desc_init(&desc, &diff_src->md,
                                                                      &op->w.md, &diff_dst->md);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, op->fwd_hint);
        dnnl_primitive_attr_destroy(attr);
        if (bld_check(b, st, "linear backward-data descriptor") != 0) goto out;
        step s = {.what = "linear backward data"};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, diff_dst->mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, op->w.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, diff_src->mem};
        if (bld_primitive(b, pd, &s) != 0 || prog_push(bwd, &s, b->err) != 0) goto out;
    }
    {
        dnnl_inner_product_desc_t desc;
        dnnl_primitive_desc_t pd = NULL;
        attr = bld_attr(b);
        if (!attr) goto out;
        dnnl_status_t st = dnnl_inner_product_backward_weights_desc_init(
            &desc, &op->src.md, &op->w.md, &op->b.md, &diff_dst->md);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, op->fwd_hint);
        dnnl_primitive_attr_destroy(attr);
        if (bld_check(b, st, "linear backward-weights descriptor") != 0) goto out;
        tensor gw, gb;
        if (bld_view(b, &op->w.md, grad_w, &gw) != 0 || bld_view(b, &op->b.md, grad_b, &gb) != 0) {
            dnnl_primitive_desc_destroy(pd);
            goto out;
        }
        step s = {.what = "linear backward weights"};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, op->src.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, diff_dst->mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, gw.mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, gb.mem};
        if (bld_primitive(b, pd, &s) != 0 || prog_push(bwd, &s, b->err) != 0) goto out;
    }
    rc = 0;
out:
    if (op->fwd_hint) {
        dnnl_primitive_desc_destroy(op->fwd_hint);
        op->fwd_hint = NULL;
    }
    return rc;
}

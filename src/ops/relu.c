/*
 * relu.c - ReLU (nn.ReLU(inplace=True)) on oneDNN's eltwise primitive.
 *
 *   src, dst  any shape, same layout; dst may share src's buffer.
 *
 * The backward uses the output (relu_use_dst_for_bwd), so the forward can
 * run in place and nothing but the output needs to be kept.
 */
#include "ops.h"

#include <string.h>

int relu_build_forward(builder *b, program *fwd, const tensor *src, int in_place, relu_op *op) {
    memset(op, 0, sizeof *op);
    op->src = *src;
    dnnl_eltwise_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training,
                                                      dnnl_eltwise_relu_use_dst_for_bwd, &src->md,
                                                      0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "relu descriptor") != 0) return -1;
    if (in_place) {
        op->dst = *src;
    } else if (bld_act(b, &src->md, &op->dst) != 0) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    step s = {.what = "relu forward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, op->dst.mem};
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(fwd, &s, b->err);
}

int relu_build_backward(builder *b, program *bwd, const relu_op *op, const tensor *diff_dst,
                        const tensor *diff_src) {
    dnnl_eltwise_desc_t fdesc, desc;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_status_t st = dnnl_eltwise_forward_desc_init(&fdesc, dnnl_forward_training,
                                                      dnnl_eltwise_relu_use_dst_for_bwd,
                                                      &op->src.md, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&hint, &fdesc, NULL, b->eng, NULL);
    if (bld_check(b, st, "relu descriptor") != 0) return -1;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) {
        dnnl_primitive_desc_destroy(hint);
        return -1;
    }
    st = dnnl_eltwise_backward_desc_init(&desc, dnnl_eltwise_relu_use_dst_for_bwd, &diff_dst->md,
                                         &op->dst.md, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, hint);
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(hint);
    if (bld_check(b, st, "relu backward descriptor") != 0) return -1;
    step s = {.what = "relu backward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, op->dst.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, diff_dst->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, diff_src->mem};
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(bwd, &s, b->err);
}

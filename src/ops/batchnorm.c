/*
 * batchnorm.c - nn.BatchNorm3d on oneDNN.
 *
 *   src, dst  N x C x D x H x W (same layout)
 *   weight, bias, running_mean, running_var, batch mean, batch var: C
 *
 * Training normalizes with the batch statistics (biased variance, as
 * PyTorch) and then updates the running statistics the way PyTorch does:
 * momentum 0.1 and the *unbiased* batch variance for running_var.
 * Inference uses the running statistics, optionally with a fused ReLU.
 */
#include "ops.h"

#include <string.h>

static void running_update_fn(const step *s) {
    const bn_op *op = s->ctx;
    const float *mean = tensor_ptr(&op->mean), *var = tensor_ptr(&op->var);
    int64_t c = op->src.md.dims[1];
    float m = op->p.momentum;
    double unbias = op->count > 1 ? (double)op->count / (double)(op->count - 1) : 1.0;
    for (int64_t i = 0; i < c; i++) {
        op->p.running_mean[i] = (1.0f - m) * op->p.running_mean[i] + m * mean[i];
        op->p.running_var[i] = (1.0f - m) * op->p.running_var[i] + m * (float)(var[i] * unbias);
    }
    if (op->p.num_batches_tracked) (*op->p.num_batches_tracked)++;
}

int bn_build_forward(builder *b, program *fwd, const tensor *src, const bn_params *p,
                     int training, int relu, bn_op *op) {
    memset(op, 0, sizeof *op);
    op->src = *src;
    op->p = *p;
    int64_t c = src->md.dims[1];
    op->count = src->md.dims[0] * src->md.dims[2] * src->md.dims[3] * src->md.dims[4];
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    if (!training) flags |= dnnl_use_global_stats;
    if (relu) flags |= dnnl_fuse_norm_relu;
    op->relu = relu;

    dnnl_batch_normalization_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_batch_normalization_forward_desc_init(
        &desc, training ? dnnl_forward_training : dnnl_forward_inference, &src->md, p->eps, flags);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "batch norm descriptor") != 0) return -1;

    dnnl_memory_desc_t cmd;
    md_plain(&cmd, 1, &c);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if (bld_act(b, dst_md, &op->dst) != 0 || bld_view(b, &cmd, p->weight, &op->scale) != 0 ||
        bld_view(b, &cmd, p->bias, &op->shift) != 0)
        goto fail;
    if (training) {
        if (bld_tensor(b, &cmd, &op->mean) != 0 || bld_tensor(b, &cmd, &op->var) != 0) goto fail;
        const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
        if (relu && ws && md_bytes(ws) > 0 && bld_tensor(b, ws, &op->ws) != 0) goto fail;
    } else {
        if (bld_view(b, &cmd, p->running_mean, &op->mean) != 0 ||
            bld_view(b, &cmd, p->running_var, &op->var) != 0)
            goto fail;
    }
    step s = {.what = "batch norm forward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, op->dst.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, op->scale.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, op->shift.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, op->mean.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, op->var.mem};
    if (op->ws.mem) s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, op->ws.mem};
    if (training &&
        bld_check(b, dnnl_primitive_desc_clone(&op->fwd_hint, pd), "descriptor clone") != 0)
        goto fail;
    if (bld_primitive(b, pd, &s) != 0 || prog_push(fwd, &s, b->err) != 0) return -1;
    if (training) {
        /* the op struct must outlive the build: the caller keeps it in a blob */
        step u = {.fn = running_update_fn, .ctx = op, .what = "batch norm running stats"};
        return prog_push(fwd, &u, b->err);
    }
    return 0;
fail:
    dnnl_primitive_desc_destroy(pd);
    return -1;
}

int bn_build_backward(builder *b, program *bwd, bn_op *op, const tensor *diff_dst,
                      const tensor *diff_src) {
    int64_t c = op->src.md.dims[1];
    int rc = -1;
    tensor dd;
    if (op_to_layout(b, bwd, diff_dst, &op->dst.md, &dd) != 0) goto out;
    dnnl_batch_normalization_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) goto out;
    dnnl_status_t st = dnnl_batch_normalization_backward_desc_init(
        &desc, dnnl_backward, &diff_src->md, &op->src.md, op->p.eps,
        dnnl_use_scale | dnnl_use_shift | (op->relu ? dnnl_fuse_norm_relu : 0));
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, op->fwd_hint);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "batch norm backward descriptor") != 0) goto out;
    dnnl_memory_desc_t cmd;
    md_plain(&cmd, 1, &c);
    tensor gw, gb;
    if (bld_view(b, &cmd, op->p.grad_weight, &gw) != 0 ||
        bld_view(b, &cmd, op->p.grad_bias, &gb) != 0) {
        dnnl_primitive_desc_destroy(pd);
        goto out;
    }
    step s = {.what = "batch norm backward"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, op->src.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, op->mean.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, op->var.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, dd.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, op->scale.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, op->shift.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, diff_src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SCALE, gw.mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SHIFT, gb.mem};
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

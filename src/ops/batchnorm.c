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
 *
 * SyncBatchNorm (p->sync, as PyTorch's nn.SyncBatchNorm under DDP): the
 * batch statistics are those of every process's clips together.  Forward:
 * each process's own mean and variance (a first oneDNN pass), summed across
 * processes into the global ones (Chan's parallel formula: the variance
 * adds each part's variance and its mean's spread), then the normalization
 * with those (oneDNN's use_global_stats).  Backward, with x^ = (x - mean) /
 * sigma over the global batch of M values per channel:
 *   dx = gamma / sigma * (dy - sum(dy) / M - x^ * sum(dy x^) / M)
 * oneDNN's global-stats backward gives the first term and this process's
 * sums (its diff_shift and diff_scale); those sums are added across
 * processes and the rest, an affine function of x^ per channel, is one
 * more oneDNN batch-norm pass (scale -gamma sum(dy x^) / (sigma M), shift
 * -gamma sum(dy) / (sigma M)) added to dx.  The parameters' gradients stay
 * this process's sums, as PyTorch's (DDP then averages them).
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* A sync step's data: the op and (2C + 1) doubles to sum across processes. */
typedef struct sync_ctx {
    bn_op *op;
    double *buf;
} sync_ctx;

/* The global mean and variance from every process's own (forward). */
static void sync_stats_fn(const step *s) {
    const sync_ctx *x = s->ctx;
    bn_op *op = x->op;
    bn_sync *sy = op->p.sync;
    int64_t c = op->src.md.dims[1];
    const float *lm = tensor_ptr(&op->lmean), *lv = tensor_ptr(&op->lvar);
    float *gm = tensor_ptr(&op->mean), *gv = tensor_ptr(&op->var);
    double *buf = x->buf, n = (double)op->count;
    for (int64_t i = 0; i < c; i++) buf[i] = n * lm[i];
    buf[c] = n;
    if (sy->sum(buf, c + 1, sy->user) != 0) sy->failed = 1;
    double total = buf[c] > 0 ? buf[c] : 1.0;
    for (int64_t i = 0; i < c; i++) gm[i] = (float)(buf[i] / total);
    for (int64_t i = 0; i < c; i++) {
        double d = (double)lm[i] - (double)gm[i];
        buf[i] = n * ((double)lv[i] + d * d);
    }
    if (sy->sum(buf, c, sy->user) != 0) sy->failed = 1;
    for (int64_t i = 0; i < c; i++) gv[i] = (float)(buf[i] / total);
    op->count_all = (int64_t)llround(total);
}

/* The correction's factors from every process's gradient sums (backward). */
static void sync_grads_fn(const step *s) {
    const sync_ctx *x = s->ctx;
    bn_op *op = x->op;
    bn_sync *sy = op->p.sync;
    int64_t c = op->src.md.dims[1];
    double *buf = x->buf;
    for (int64_t i = 0; i < c; i++) {
        buf[i] = op->p.grad_weight[i]; /* sum(dy x^), this process */
        buf[c + i] = op->p.grad_bias[i]; /* sum(dy) */
    }
    if (sy->sum(buf, 2 * c, sy->user) != 0) sy->failed = 1;
    const float *var = tensor_ptr(&op->var);
    float *cs = tensor_ptr(&op->cscale), *ch = tensor_ptr(&op->cshift);
    double m = op->count_all > 0 ? (double)op->count_all : 1.0;
    for (int64_t i = 0; i < c; i++) {
        double k = -(double)op->p.weight[i] / (sqrt((double)var[i] + op->p.eps) * m);
        cs[i] = (float)(k * buf[i]);
        ch[i] = (float)(k * buf[c + i]);
    }
}

static void running_update_fn(const step *s) {
    const bn_op *op = s->ctx;
    const float *mean = tensor_ptr(&op->mean), *var = tensor_ptr(&op->var);
    int64_t c = op->src.md.dims[1];
    float m = op->p.momentum;
    int64_t n = op->p.sync ? op->count_all : op->count;
    double unbias = n > 1 ? (double)n / (double)(n - 1) : 1.0;
    for (int64_t i = 0; i < c; i++) {
        op->p.running_mean[i] = (1.0f - m) * op->p.running_mean[i] + m * mean[i];
        op->p.running_var[i] = (1.0f - m) * op->p.running_var[i] + m * (float)(var[i] * unbias);
    }
    if (op->p.num_batches_tracked) (*op->p.num_batches_tracked)++;
}

/* A oneDNN batch-norm primitive: its descriptor for (prop, flags) on src,
 * and a step over the given tensors.  hint: the forward's descriptor, for a
 * backward (diff_dst, diff_src, the gradients); out_pd, when not NULL, keeps
 * a clone of this descriptor (a forward, for its backward). */
typedef struct bn_call {
    dnnl_prop_kind_t prop;       /* forward_training / forward_inference / backward */
    unsigned flags;              /* dnnl_use_scale | ... */
    const tensor *src, *dst;     /* forward: dst made here when dst->mem is NULL */
    const tensor *mean, *var, *scale, *shift;
    const tensor *diff_dst, *diff_src, *diff_scale, *diff_shift; /* backward */
    tensor *ws;                  /* the ReLU mask: made by a forward, read by a backward */
    const_dnnl_primitive_desc_t hint;
    const char *what;
} bn_call;

static int bn_step(builder *b, program *prog, const bn_call *c, float eps, tensor *dst_out,
                   dnnl_primitive_desc_t *out_pd) {
    int backward = c->prop == dnnl_backward;
    dnnl_batch_normalization_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = backward
        ? dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &c->diff_src->md,
                                                      &c->src->md, eps, c->flags)
        : dnnl_batch_normalization_forward_desc_init(&desc, c->prop, &c->src->md, eps, c->flags);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, c->hint);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, c->what) != 0) return -1;
    step s = {.what = c->what};
    if (!backward && dst_out && !dst_out->mem &&
        bld_act(b, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), dst_out) != 0)
        goto fail;
    if (!backward && c->prop == dnnl_forward_training && (c->flags & dnnl_fuse_norm_relu) &&
        c->ws && !c->ws->mem) {
        const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
        if (ws && md_bytes(ws) > 0 && bld_tensor(b, ws, c->ws) != 0) goto fail;
    }
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, c->src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, c->mean->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, c->var->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, c->scale->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, c->shift->mem};
    if (backward) {
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, c->diff_dst->mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, c->diff_src->mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SCALE, c->diff_scale->mem};
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SHIFT, c->diff_shift->mem};
    } else {
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, (dst_out ? dst_out : c->dst)->mem};
    }
    if (c->ws && c->ws->mem && (c->flags & dnnl_fuse_norm_relu))
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, c->ws->mem};
    if (out_pd && bld_check(b, dnnl_primitive_desc_clone(out_pd, pd), "descriptor clone") != 0)
        goto fail;
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(prog, &s, b->err);
fail:
    dnnl_primitive_desc_destroy(pd);
    return -1;
}

int bn_build_forward(builder *b, program *fwd, const tensor *src, const bn_params *p,
                     int training, int relu, bn_op *op) {
    memset(op, 0, sizeof *op);
    op->src = *src;
    op->p = *p;
    if (!training) op->p.sync = NULL;
    int64_t c = src->md.dims[1];
    op->count = src->md.dims[0] * src->md.dims[2] * src->md.dims[3] * src->md.dims[4];
    op->relu = relu;
    dnnl_memory_desc_t cmd;
    md_plain(&cmd, 1, &c);
    if (bld_view(b, &cmd, p->weight, &op->scale) != 0 || bld_view(b, &cmd, p->bias, &op->shift) != 0)
        return -1;
    if (!training) {
        if (bld_view(b, &cmd, p->running_mean, &op->mean) != 0 ||
            bld_view(b, &cmd, p->running_var, &op->var) != 0)
            return -1;
    } else if (bld_tensor(b, &cmd, &op->mean) != 0 || bld_tensor(b, &cmd, &op->var) != 0) {
        return -1;
    }
    bn_call call = {.prop = training ? dnnl_forward_training : dnnl_forward_inference,
                    .flags = dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0),
                    .src = src, .mean = &op->mean, .var = &op->var, .scale = &op->scale,
                    .shift = &op->shift, .ws = &op->ws, .what = "batch norm forward"};
    if (!training) call.flags |= dnnl_use_global_stats;
    if (op->p.sync) {
        /* this process's statistics (its output is overwritten below) */
        sync_ctx *x = bld_blob(b, sizeof *x);
        if (!x || !(x->buf = bld_blob(b, sizeof(double) * (size_t)(2 * c + 1))) ||
            bld_tensor(b, &cmd, &op->lmean) != 0 || bld_tensor(b, &cmd, &op->lvar) != 0)
            return -1;
        x->op = op;
        bn_call local = call;
        local.flags = dnnl_use_scale | dnnl_use_shift;
        local.mean = &op->lmean, local.var = &op->lvar;
        local.what = "batch norm forward (this process's statistics)";
        if (bn_step(b, fwd, &local, p->eps, &op->dst, NULL) != 0) return -1;
        step u = {.fn = sync_stats_fn, .ctx = x, .what = "batch norm statistics across processes"};
        if (prog_push(fwd, &u, b->err) != 0) return -1;
        call.flags |= dnnl_use_global_stats;
    }
    if (bn_step(b, fwd, &call, p->eps, &op->dst, training ? &op->fwd_hint : NULL) != 0) return -1;
    if (!training) return 0;
    /* the op struct must outlive the build: the caller keeps it in a blob */
    step u = {.fn = running_update_fn, .ctx = op, .what = "batch norm running stats"};
    return prog_push(fwd, &u, b->err);
}

int bn_build_backward(builder *b, program *bwd, bn_op *op, const tensor *diff_dst,
                      const tensor *diff_src) {
    int64_t c = op->src.md.dims[1];
    int rc = -1;
    tensor dd, gw, gb;
    dnnl_memory_desc_t cmd;
    md_plain(&cmd, 1, &c);
    if (op_to_layout(b, bwd, diff_dst, &op->dst.md, &dd) != 0 ||
        bld_view(b, &cmd, op->p.grad_weight, &gw) != 0 || bld_view(b, &cmd, op->p.grad_bias, &gb) != 0)
        goto out;
    unsigned relu = op->relu ? dnnl_fuse_norm_relu : 0, global = op->p.sync ? dnnl_use_global_stats : 0;
    bn_call call = {.prop = dnnl_backward, .flags = dnnl_use_scale | dnnl_use_shift | relu | global,
                    .src = &op->src, .mean = &op->mean, .var = &op->var, .scale = &op->scale,
                    .shift = &op->shift, .diff_dst = &dd, .diff_src = diff_src, .diff_scale = &gw,
                    .diff_shift = &gb, .ws = &op->ws, .hint = op->fwd_hint,
                    .what = "batch norm backward"};
    if (bn_step(b, bwd, &call, op->p.eps, NULL, NULL) != 0) goto out;
    if (op->p.sync) {
        /* dx += -gamma / (sigma M) * (sum(dy) + x^ sum(dy x^)), sums over all processes */
        sync_ctx *x = bld_blob(b, sizeof *x);
        if (!x || !(x->buf = bld_blob(b, sizeof(double) * (size_t)(2 * c + 1))) ||
            bld_tensor(b, &cmd, &op->cscale) != 0 || bld_tensor(b, &cmd, &op->cshift) != 0)
            goto out;
        x->op = op;
        step u = {.fn = sync_grads_fn, .ctx = x, .what = "batch norm gradients across processes"};
        if (prog_push(bwd, &u, b->err) != 0) goto out;
        bn_call corr = {.prop = dnnl_forward_inference,
                        .flags = dnnl_use_scale | dnnl_use_shift | dnnl_use_global_stats,
                        .src = &op->src, .mean = &op->mean, .var = &op->var, .scale = &op->cscale,
                        .shift = &op->cshift, .what = "batch norm backward (global correction)"};
        if (bn_step(b, bwd, &corr, op->p.eps, &op->corr, NULL) != 0 ||
            op_add(b, bwd, diff_src, &op->corr, diff_src) != 0)
            goto out;
    }
    rc = 0;
out:
    if (op->fwd_hint) {
        dnnl_primitive_desc_destroy(op->fwd_hint);
        op->fwd_hint = NULL;
    }
    return rc;
}

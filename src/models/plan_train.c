/*
 * plan_train.c - compiles a network into a training plan: an unfused
 * forward that keeps what the backward needs, and the backward in reverse
 * node order.
 *
 * Every value v has an activation val[v] and, when a gradient reaches it, a
 * gradient dval[v] in the same layout.  A value read by several nodes (a
 * block's input feeds its first conv and its shortcut) receives the sum of
 * their gradients: the first contribution (in backward order) is written
 * directly, later ones go through a temporary and are added.
 *
 * A ReLU runs in place on its input when nothing else reads that input and
 * the producer's backward does not need its own output (batch norm, sum).
 */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Per-node operator state kept for the backward. */
typedef union node_op {
    conv_op conv;
    bn_op bn;
    relu_op relu;
    pool_op pool;
    gap_op gap;
    linear_op fc;
    shortcut_a_op sa;
    dropout_op *drop;
    tensor flat;
} node_op;

typedef struct train_build {
    st3d_model *m;      /* the network */
    exec_hooks *hooks;  /* the exec's data-parallel hooks */
    builder *b;         /* allocation and primitives */
    plan *p;            /* the plan being built */
    node_op **ops;      /* per node */
    tensor *val;        /* activations */
    tensor *dval;       /* gradients (mem NULL until created) */
    int *n_grad_cons;   /* consumers that send a gradient */
    int *n_done;        /* gradient contributions already wired */
    int *relu_fused;    /* 1 for a ReLU fused into the batch norm before it */
} train_build;

static int forward_node(train_build *t, int i) {
    st3d_model *m = t->m;
    builder *b = t->b;
    plan *p = t->p;
    const node *n = &m->nodes[i];
    node_op *op = t->ops[i];
    tensor *in = n->in0 >= 0 ? &t->val[n->in0] : NULL;
    switch (n->kind) {
    case NODE_CONV:
        if (conv_build_forward(b, &p->prepare, &p->fwd, &n->conv, in, m->params + n->w,
                               n->b >= 0 ? m->params + n->b : NULL, NULL, NULL, 1, &op->conv) != 0)
            return -1;
        t->val[i] = op->conv.dst;
        return 0;
    case NODE_BN: {
        bn_params bp = plan_bn_params(m, n);
        if (t->hooks && t->hooks->sync.sum) bp.sync = &t->hooks->sync;
        if (bn_build_forward(b, &p->fwd, in, &bp, 1, t->relu_fused[i + 1], &op->bn) != 0) return -1;
        t->val[i] = op->bn.dst;
        return 0;
    }
    case NODE_RELU: {
        if (t->relu_fused[i]) {
            /* computed by the batch norm or the sum before it; a ReLU after a
             * sum keeps its own backward, which reads this output */
            t->val[i] = *in;
            op->relu.src = op->relu.dst = *in;
            return 0;
        }
        node_kind pk = m->nodes[n->in0].kind;
        int in_place = (pk == NODE_BN || pk == NODE_ADD);
        for (int j = 0; j < m->n_nodes && in_place; j++)
            if (j != i && (m->nodes[j].in0 == n->in0 || m->nodes[j].in1 == n->in0)) in_place = 0;
        if (relu_build_forward(b, &p->fwd, in, in_place, &op->relu) != 0) return -1;
        t->val[i] = op->relu.dst;
        return 0;
    }
    case NODE_POOL:
        if (pool_build_forward(b, &p->fwd, in, &n->pool, 1, &op->pool) != 0) return -1;
        t->val[i] = op->pool.dst;
        return 0;
    case NODE_SHORTCUT_A:
        if (shortcut_a_build_forward(b, &p->fwd, in, n->channels, n->stride, &op->sa) != 0)
            return -1;
        t->val[i] = op->sa.dst;
        return 0;
    case NODE_ADD: {
        tensor other;
        if (op_to_layout(b, &p->fwd, &t->val[n->in1], &in->md, &other) != 0 ||
            bld_act(b, &in->md, &t->val[i]) != 0)
            return -1;
        if (t->relu_fused[i + 1])
            return op_add_relu(b, &p->fwd, in, &other, &t->val[i]);
        return op_add(b, &p->fwd, in, &other, &t->val[i]);
    }
    case NODE_CONCAT: {
        tensor srcs[2] = {*in, t->val[n->in1]};
        return concat_build_forward(b, &p->fwd, srcs, 2, &t->val[i]);
    }
    case NODE_DROPOUT:
        /* seeded by the node index, so a run is reproducible */
        if (dropout_build_forward(b, &p->fwd, in, n->p, 0x5eed0000ull + (uint64_t)i, &op->drop) != 0)
            return -1;
        t->val[i] = op->drop->dst;
        return 0;
    case NODE_FLATTEN:
        if (op_flatten(b, &p->fwd, in, &t->val[i]) != 0) return -1;
        return 0;
    case NODE_GAP:
        if (gap_build_forward(b, &p->fwd, in, 1, &op->gap) != 0) return -1;
        t->val[i] = op->gap.flat;
        return 0;
    case NODE_FC:
        if (linear_build_forward(b, &p->fwd, in, n->channels, m->params + n->w, m->params + n->b, 1,
                                 &op->fc) != 0)
            return -1;
        t->val[i] = op->fc.dst;
        p->logits = op->fc.dst;
        return 0;
    default:
        return st3d_fail(b->err, ST3D_ERR_INVALID, "unexpected node");
    }
}

/* Where node u's gradient contribution should be written: dval[u] itself
 * for the first contribution, else a temporary (*tmp set to 1). */
static int grad_target(train_build *t, int u, tensor *target, int *tmp) {
    if (!t->dval[u].mem && bld_tensor(t->b, &t->val[u].md, &t->dval[u]) != 0) return -1;
    *tmp = t->n_done[u] > 0;
    if (*tmp) return bld_tensor(t->b, &t->val[u].md, target);
    *target = t->dval[u];
    return 0;
}

/* Finishes a contribution to u's gradient (adds a temporary in). */
static int grad_commit(train_build *t, int u, const tensor *target, int tmp) {
    t->n_done[u]++;
    if (!tmp) return 0;
    return op_add(t->b, &t->p->bwd, &t->dval[u], target, &t->dval[u]);
}

/* Does node u want a gradient?  The input does not. */
static int wants_grad(const train_build *t, int u) {
    return u >= 0 && t->m->nodes[u].kind != NODE_INPUT;
}

/* Both inputs a, b of sum node i may share its gradient buffer only if no
 * later gradient contribution to one (from its other readers, all before i)
 * lands in the buffer before the other's backward has read it.  The backward
 * runs in reverse node order, so every other reader of a must come before
 * b in node order, and vice versa. */
static int alias_safe(const st3d_model *m, int i, const int ins[2]) {
    for (int k = 0; k < 2; k++) {
        int u = ins[k], v = ins[1 - k];
        for (int c = 0; c < m->n_nodes; c++)
            if (c != i && (m->nodes[c].in0 == u || m->nodes[c].in1 == u) && c > v) return 0;
    }
    return 1;
}

/* A grad-ready step's data: which floats of the gradient buffer are done. */
typedef struct grad_mark {
    const exec_hooks *hooks;
    int64_t first, count;
} grad_mark;

static void grad_ready_fn(const step *s) {
    const grad_mark *g = s->ctx;
    if (g->hooks->grad_ready) g->hooks->grad_ready(g->first, g->count, g->hooks->grad_user);
}

/* After node i's backward: tells the hook that its weight's and bias's
 * gradients are complete (DDP's autograd hook, per parameter). */
static int mark_grads_ready(train_build *t, int i) {
    const node *n = &t->m->nodes[i];
    int64_t offs[2] = {n->w, n->b};
    for (int k = 0; k < 2; k++) {
        if (offs[k] < 0) continue;
        const entry *e = NULL;
        for (int j = 0; j < t->m->n_entries && !e; j++)
            if (t->m->entries[j].kind == ENTRY_PARAM && t->m->entries[j].offset == offs[k])
                e = &t->m->entries[j];
        if (!e) continue;
        grad_mark *g = bld_blob(t->b, sizeof *g);
        if (!g) return -1;
        g->hooks = t->hooks, g->first = e->offset, g->count = e->numel;
        step s = {.fn = grad_ready_fn, .ctx = g, .what = "gradient ready"};
        if (prog_push(&t->p->bwd, &s, t->b->err) != 0) return -1;
    }
    return 0;
}

static int backward_node(train_build *t, int i) {
    st3d_model *m = t->m;
    builder *b = t->b;
    program *bwd = &t->p->bwd;
    const node *n = &m->nodes[i];
    node_op *op = t->ops[i];
    if (!t->dval[i].mem) return 0; /* no gradient reaches this node */
    const tensor *dy = &t->dval[i];
    tensor target;
    int tmp = 0, u = n->in0;
    int want = wants_grad(t, u);
    int passes = n->kind == NODE_SHORTCUT_A || n->kind == NODE_ADD || n->kind == NODE_CONCAT ||
                 (n->kind == NODE_RELU && t->relu_fused[i] && m->nodes[u].kind == NODE_BN);
    if (want && !passes &&
        grad_target(t, u, &target, &tmp) != 0)
        return -1;
    int rc = 0;
    switch (n->kind) {
    case NODE_CONV:
        rc = conv_build_backward(b, bwd, &op->conv, dy, want ? &target : NULL, m->grads + n->w,
                                 n->b >= 0 ? m->grads + n->b : NULL);
        break;
    case NODE_BN: rc = bn_build_backward(b, bwd, &op->bn, dy, &target); break;
    case NODE_RELU:
        if (t->relu_fused[i] && m->nodes[u].kind == NODE_BN) {
            /* the batch norm's backward takes the gradient of the ReLU output */
            t->dval[u] = *dy;
            t->n_done[u]++;
            return 0;
        }
        rc = relu_build_backward(b, bwd, &op->relu, dy, &target);
        break;
    case NODE_POOL: rc = pool_build_backward(b, bwd, &op->pool, dy, &target); break;
    case NODE_DROPOUT: rc = dropout_build_backward(b, bwd, op->drop, dy, &target); break;
    case NODE_FLATTEN: rc = op_unflatten(b, bwd, dy, &target); break;
    case NODE_GAP: rc = gap_build_backward(b, bwd, &op->gap, dy, &target); break;
    case NODE_FC:
        rc = linear_build_backward(b, bwd, &op->fc, dy, want ? &target : NULL, m->grads + n->w,
                                   m->grads + n->b);
        break;
    case NODE_SHORTCUT_A:
        return 0; /* detached, as the original's `out.data` */
    case NODE_ADD: {
        /* the gradient of a sum goes unchanged to both inputs: an input
         * receiving its first contribution shares dy's buffer (no copy) when
         * that is safe, else dy is copied or added in */
        int ins[2] = {n->in0, n->in1}, alias[2] = {0, 0};
        for (int k = 0; k < 2; k++)
            alias[k] = wants_grad(t, ins[k]) && m->nodes[ins[k]].kind != NODE_SHORTCUT_A &&
                       !t->dval[ins[k]].mem && md_equal(&t->val[ins[k]].md, &dy->md);
        if (alias[0] && alias[1] && !alias_safe(m, i, ins)) alias[0] = 0;
        for (int k = 0; k < 2; k++) {
            if (!wants_grad(t, ins[k]) || m->nodes[ins[k]].kind == NODE_SHORTCUT_A) continue;
            if (alias[k]) {
                t->dval[ins[k]] = *dy;
                t->n_done[ins[k]]++;
                continue;
            }
            if (grad_target(t, ins[k], &target, &tmp) != 0 ||
                op_reorder(b, bwd, dy, &target) != 0 || grad_commit(t, ins[k], &target, tmp) != 0)
                return -1;
        }
        return 0;
    }
    case NODE_CONCAT: {
        /* each input gets its channel slice of the gradient */
        int ins[2] = {n->in0, n->in1};
        tensor srcs[2] = {t->val[n->in0], t->val[n->in1]}, targets[2];
        int tmps[2] = {0, 0};
        memset(targets, 0, sizeof targets);
        for (int k = 0; k < 2; k++)
            if (wants_grad(t, ins[k]) && grad_target(t, ins[k], &targets[k], &tmps[k]) != 0)
                return -1;
        if (concat_build_backward(b, bwd, srcs, 2, dy, targets) != 0) return -1;
        for (int k = 0; k < 2; k++)
            if (targets[k].mem && grad_commit(t, ins[k], &targets[k], tmps[k]) != 0) return -1;
        return 0;
    }
    default: return 0;
    }
    if (rc != 0) return -1;
    if (t->hooks && (n->kind == NODE_CONV || n->kind == NODE_BN || n->kind == NODE_FC) &&
        mark_grads_ready(t, i) != 0)
        return -1;
    return want ? grad_commit(t, u, &target, tmp) : 0;
}

plan *plan_build_train(st3d_model *m, dnnl_engine_t eng, const int64_t shape[5],
                       exec_hooks *hooks, st3d_error *err) {
    int nn = m->n_nodes;
    plan *p = st3d_calloc(1, sizeof *p, err);
    train_build t = {.m = m, .hooks = hooks};
    builder b = {.eng = eng, .err = err};
    int ok = 0;
    t.ops = st3d_calloc((size_t)nn, sizeof *t.ops, err);
    t.val = st3d_calloc((size_t)nn, sizeof *t.val, err);
    t.dval = st3d_calloc((size_t)nn, sizeof *t.dval, err);
    t.n_grad_cons = st3d_calloc((size_t)nn, sizeof(int), err);
    t.n_done = st3d_calloc((size_t)nn, sizeof(int), err);
    t.relu_fused = st3d_calloc((size_t)nn + 1, sizeof(int), err);
    if (!p || !t.ops || !t.val || !t.dval || !t.n_grad_cons || !t.n_done || !t.relu_fused) goto out;
    /* a ReLU right after a batch norm or a sum, its only reader, runs inside it */
    for (int i = 1; i < nn; i++) {
        const node *n = &m->nodes[i];
        node_kind pk = m->nodes[n->in0].kind;
        if (n->kind != NODE_RELU || (pk != NODE_BN && pk != NODE_ADD) || n->in0 != i - 1) continue;
        int readers = 0;
        for (int j = 0; j < nn; j++) readers += (m->nodes[j].in0 == n->in0) + (m->nodes[j].in1 == n->in0);
        t.relu_fused[i] = readers == 1;
    }
    b.res = &p->res;
    t.b = &b;
    t.p = p;
    p->training = 1;
    memcpy(p->shape, shape, sizeof p->shape);

    dnnl_memory_desc_t in_md;
    md_plain(&in_md, 5, shape);
    if (bld_tensor(&b, &in_md, &p->input) != 0) goto out;
    t.val[0] = p->input;
    for (int i = 1; i < nn; i++) {
        t.ops[i] = bld_blob(&b, sizeof(node_op));
        if (!t.ops[i] || forward_node(&t, i) != 0) goto out;
        if (i == m->features_node) p->features = t.val[i];
    }
    /* the loss gradient enters at the logits */
    if (bld_tensor(&b, &p->logits.md, &p->dlogits) != 0) goto out;
    t.dval[m->logits_node] = p->dlogits;
    for (int i = nn - 1; i >= 1; i--)
        if (backward_node(&t, i) != 0) goto out;
    if (resources_finish(&b) != 0) goto out;
    ok = 1;
out:
    free(t.ops);
    free(t.val);
    free(t.dval);
    free(t.n_grad_cons);
    free(t.n_done);
    free(t.relu_fused);
    if (!ok) {
        plan_free(p);
        return NULL;
    }
    return p;
}

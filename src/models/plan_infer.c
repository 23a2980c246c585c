/*
 * plan_infer.c - compiles a network into an inference plan.
 *
 * 1. Fusion: a convolution absorbs the batch norm after it (weights and bias
 *    folded at prepare time), then a residual sum (post-op `sum`: the conv
 *    accumulates into the shortcut's buffer), then a ReLU (post-op).  A batch
 *    norm not after a convolution (pre-activation blocks) absorbs its ReLU.
 * 2. Order: groups run in graph order, except that a fused sum needs its
 *    shortcut computed first, so dependencies are scheduled depth-first.
 * 3. Memory: each group's output takes a free slot and gives its inputs'
 *    slots back after their last use; slots are allocated at their largest
 *    size when the build ends.  Peak memory is a few of the widest tensors.
 */
#include "plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A fused group of nodes, run as one or two steps. */
typedef struct group {
    int head;      /* first node (conv, bn, or a single node) */
    int bn;        /* folded / fused batch norm node, -1 */
    int add;       /* fused residual sum node, -1 */
    int residual;  /* the other input of that sum, -1 */
    int relu;      /* fused ReLU node, -1 */
    int tail;      /* the node whose value leaves the group */
} group;

/* Slot allocator state (the builder's act_ctx). */
typedef struct slots {
    size_t *size;        /* bytes per slot */
    int *busy;           /* 1 while a live value uses the slot */
    int n, cap;          /* slots */
    dnnl_memory_t *mem;  /* memory objects to bind ... */
    int *mem_slot;       /* ... and their slots */
    int n_mem, cap_mem;
    int last;            /* slot of the most recent allocation */
    int fresh;           /* 1: the next allocation takes a new slot, sharing none */
} slots;

static int slot_new_act(builder *b, const dnnl_memory_desc_t *md, tensor *out) {
    slots *s = b->act_ctx;
    size_t need = md_bytes(md);
    int pick = -1;
    /* best fit among free slots, else the largest free one (it grows) */
    for (int i = 0; i < s->n; i++) {
        if (s->busy[i] || s->fresh) continue;
        if (pick < 0) { pick = i; continue; }
        int fits = s->size[i] >= need, pfits = s->size[pick] >= need;
        if ((fits && (!pfits || s->size[i] < s->size[pick])) || (!fits && !pfits && s->size[i] > s->size[pick]))
            pick = i;
    }
    if (pick < 0) {
        if (s->n == s->cap) {
            int cap = s->cap ? 2 * s->cap : 16;
            size_t *sz = realloc(s->size, sizeof *sz * (size_t)cap);
            if (sz) s->size = sz;
            int *bz = realloc(s->busy, sizeof *bz * (size_t)cap);
            if (bz) s->busy = bz;
            if (!sz || !bz) return st3d_fail(b->err, ST3D_ERR_NOMEM, "out of memory");
            s->cap = cap;
        }
        pick = s->n++;
        s->size[pick] = 0;
    }
    if (s->size[pick] < need) s->size[pick] = need;
    s->busy[pick] = 1;
    s->last = pick;
    if (s->n_mem == s->cap_mem) {
        int cap = s->cap_mem ? 2 * s->cap_mem : 64;
        dnnl_memory_t *mm = realloc(s->mem, sizeof *mm * (size_t)cap);
        if (mm) s->mem = mm;
        int *ms = realloc(s->mem_slot, sizeof *ms * (size_t)cap);
        if (ms) s->mem_slot = ms;
        if (!mm || !ms) return st3d_fail(b->err, ST3D_ERR_NOMEM, "out of memory");
        s->cap_mem = cap;
    }
    out->md = *md;
    out->data = NULL;
    out->mem = bld_mem(b, md, DNNL_MEMORY_NONE);
    if (!out->mem) return -1;
    s->mem[s->n_mem] = out->mem;
    s->mem_slot[s->n_mem++] = pick;
    return 0;
}

static int bind_slots(builder *b, slots *s, size_t *total) {
    void **bufs = st3d_calloc((size_t)s->n + 1, sizeof *bufs, b->err);
    if (!bufs) return -1;
    *total = 0;
    for (int i = 0; i < s->n; i++) {
        bufs[i] = bld_alloc(b, s->size[i]);
        if (!bufs[i]) {
            free(bufs);
            return -1;
        }
        *total += s->size[i];
    }
    for (int i = 0; i < s->n_mem; i++)
        dnnl_memory_set_data_handle(s->mem[i], bufs[s->mem_slot[i]]);
    free(bufs);
    return 0;
}

static void slots_free(slots *s) {
    free(s->size);
    free(s->busy);
    free(s->mem);
    free(s->mem_slot);
}

/* ------------------------------------------------------------ BN folding */

typedef struct fold_ctx {
    const float *w, *bias;      /* conv weight (OC x rest) and optional bias */
    const float *gamma, *beta;  /* batch norm weight and bias */
    const float *mean, *var;    /* running statistics */
    float eps;                  /* batch norm epsilon */
    float *wf, *bf;             /* folded weight and bias */
    int64_t oc, per_oc;         /* output channels, weights per output channel */
} fold_ctx;

/* w' = w * gamma / sqrt(var + eps);  b' = (b - mean) * gamma / sqrt(var + eps) + beta */
static void fold_fn(const step *s) {
    const fold_ctx *c = s->ctx;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < c->oc; o++) {
        double scale = (double)c->gamma[o] / sqrt((double)c->var[o] + c->eps);
        for (int64_t j = 0; j < c->per_oc; j++)
            c->wf[o * c->per_oc + j] = (float)(c->w[o * c->per_oc + j] * scale);
        double b = c->bias ? c->bias[o] : 0.0;
        c->bf[o] = (float)((b - c->mean[o]) * scale + c->beta[o]);
    }
}

/* The model's own weights of a conv whose kernel reads a copy: handed back
 * after the copy is made, when the model allows it (exec.c says when). */
typedef struct drop_conv_ctx {
    st3d_model *m;
    int node;
} drop_conv_ctx;

static void drop_conv_fn(const step *s) {
    const drop_conv_ctx *c = s->ctx;
    model_drop_conv_weights(c->m, c->node);
}

bn_params plan_bn_params(st3d_model *m, const node *n) {
    bn_params p = {
        .weight = m->params + n->w, .bias = m->params + n->b,
        .running_mean = m->stats + n->rm, .running_var = m->stats + n->rv,
        .num_batches_tracked = &m->nbt[n->bn],
        .grad_weight = m->grads + n->w, .grad_bias = m->grads + n->b,
        .eps = 1e-5f, .momentum = 0.1f,
    };
    return p;
}

/* ------------------------------------------------------------ grouping */

static int sole_consumer(const st3d_model *m, const int *n_cons, int i) {
    if (n_cons[i] != 1) return -1;
    for (int j = i + 1; j < m->n_nodes; j++)
        if (m->nodes[j].in0 == i || m->nodes[j].in1 == i) return j;
    return -1;
}

static void make_groups(const st3d_model *m, const int *n_cons, group *gs, int *n_groups,
                        int *group_of) {
    int ng = 0;
    for (int i = 0; i < m->n_nodes; i++) group_of[i] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        if (group_of[i] >= 0) continue;
        group g = {.head = i, .bn = -1, .add = -1, .residual = -1, .relu = -1, .tail = i};
        const node *n = &m->nodes[i];
        if (n->kind == NODE_CONV || n->kind == NODE_BN) {
            int c = sole_consumer(m, n_cons, g.tail);
            if (n->kind == NODE_CONV && c >= 0 && group_of[c] < 0 && m->nodes[c].kind == NODE_BN) {
                g.bn = g.tail = c;
                c = sole_consumer(m, n_cons, g.tail);
            }
            if (n->kind == NODE_CONV && c >= 0 && group_of[c] < 0 && m->nodes[c].kind == NODE_ADD) {
                g.add = g.tail = c;
                g.residual = m->nodes[c].in0 == (g.bn >= 0 ? g.bn : i) ? m->nodes[c].in1
                                                                        : m->nodes[c].in0;
                c = sole_consumer(m, n_cons, g.tail);
            }
            if (c >= 0 && group_of[c] < 0 && m->nodes[c].kind == NODE_RELU) {
                g.relu = g.tail = c;
            }
        }
        gs[ng] = g;
        group_of[i] = ng;
        if (g.bn >= 0) group_of[g.bn] = ng;
        if (g.add >= 0) group_of[g.add] = ng;
        if (g.relu >= 0) group_of[g.relu] = ng;
        ng++;
    }
    *n_groups = ng;
}

/* Depth-first scheduling: a group runs after the groups producing its inputs
 * (and its fused sum's shortcut). */
static void schedule(const st3d_model *m, const group *gs, const int *group_of, int gi,
                     int *done, int *order, int *n_order) {
    if (done[gi]) return;
    done[gi] = 1;
    const node *h = &m->nodes[gs[gi].head];
    int deps[3] = {h->in0, h->in1, gs[gi].residual};
    for (int d = 0; d < 3; d++)
        if (deps[d] >= 0) schedule(m, gs, group_of, group_of[deps[d]], done, order, n_order);
    order[(*n_order)++] = gi;
}

/* ------------------------------------------------------------ build */

/* An inference dropout can reuse its input's buffer when it is the input's
 * only reader. */
static int dropout_passes_through(const st3d_model *m, int i) {
    int readers = 0;
    for (int j = 0; j < m->n_nodes; j++)
        readers += (m->nodes[j].in0 == m->nodes[i].in0) + (m->nodes[j].in1 == m->nodes[i].in0);
    return readers == 1;
}

/* Builds one group; its output tensor goes to val[g->tail]. */
static int build_group(st3d_model *m, builder *b, plan *p, program *prog, const group *g,
                       tensor *val) {
    const node *h = &m->nodes[g->head];
    tensor *in = h->in0 >= 0 ? &val[h->in0] : NULL;
    switch (h->kind) {
    case NODE_CONV: {
        float *w = m->params + h->w, *bias = h->b >= 0 ? m->params + h->b : NULL;
        const float *w_model = w;
        if (g->bn >= 0) {
            /* fold the batch norm into a private copy of the weights */
            const node *bn = &m->nodes[g->bn];
            int64_t per_oc = (int64_t)(h->conv.ic / h->conv.groups) * h->conv.k[0] * h->conv.k[1] *
                             h->conv.k[2];
            fold_ctx *c = bld_blob(b, sizeof *c);
            if (!c) return -1;
            *c = (fold_ctx){.w = w, .bias = bias, .gamma = m->params + bn->w,
                            .beta = m->params + bn->b, .mean = m->stats + bn->rm,
                            .var = m->stats + bn->rv, .eps = 1e-5f, .oc = h->conv.oc,
                            .per_oc = per_oc};
            c->wf = bld_alloc_scratch(b, sizeof(float) * (size_t)(h->conv.oc * per_oc));
            c->bf = bld_alloc(b, sizeof(float) * (size_t)h->conv.oc);
            if (!c->wf || !c->bf) return -1;
            step s = {.fn = fold_fn, .ctx = c, .what = "batch norm folding"};
            if (prog_push(&p->prepare, &s, b->err) != 0) return -1;
            w = c->wf;
            bias = c->bf;
        }
        conv_fuse fuse = {.sum = g->add >= 0, .relu = g->relu >= 0};
        conv_op *op = bld_blob(b, sizeof *op);
        if (!op) return -1;
        const tensor *res = g->add >= 0 ? &val[g->residual] : NULL;
        int wino = p->winograd ? conv_wino_build(b, &p->prepare, prog, &h->conv, in, w, bias,
                                                 &fuse, res, op)
                               : 0;
        if (wino < 0) return -1;
        p->n_winograd += wino;
        if (!wino && conv_build_forward(b, &p->prepare, prog, &h->conv, in, w, bias, &fuse, res,
                                        0, op) != 0)
            return -1;
        p->prep_only[g->head] = op->wt.data != w_model; /* folded or reordered */
        if (p->prep_only[g->head]) {
            drop_conv_ctx *d = bld_blob(b, sizeof *d);
            if (!d) return -1;
            *d = (drop_conv_ctx){.m = m, .node = g->head};
            step s = {.fn = drop_conv_fn, .ctx = d, .what = "model weights released"};
            if (prog_push(&p->prepare, &s, b->err) != 0) return -1;
        }
        if (g->bn >= 0 && op->wt.data != w) {
            /* the kernel reads a reordered copy: the folded one is dead after
             * prepare read it (the next prepare folds again before reading),
             * so prepare holds one conv's copy at a time */
            size_t bytes = sizeof(float) * (size_t)(h->conv.oc * (h->conv.ic / h->conv.groups) *
                                                    h->conv.k[0] * h->conv.k[1] * h->conv.k[2]);
            if (op_drop_pages(b, &p->prepare, w, bytes, "folded weights released") != 0) return -1;
        }
        val[g->tail] = op->dst;
        return 0;
    }
    case NODE_BN: {
        bn_params bp = plan_bn_params(m, h);
        bn_op *op = bld_blob(b, sizeof *op);
        if (!op || bn_build_forward(b, prog, in, &bp, 0, g->relu >= 0, op) != 0) return -1;
        val[g->tail] = op->dst;
        return 0;
    }
    case NODE_RELU: {
        relu_op op;
        if (relu_build_forward(b, prog, in, 0, &op) != 0) return -1;
        val[g->tail] = op.dst;
        return 0;
    }
    case NODE_POOL: {
        pool_op op;
        if (pool_build_forward(b, prog, in, &h->pool, 0, &op) != 0) return -1;
        val[g->tail] = op.dst;
        return 0;
    }
    case NODE_SHORTCUT_A: {
        shortcut_a_op op;
        if (shortcut_a_build_forward(b, prog, in, h->channels, h->stride, &op) != 0) return -1;
        val[g->tail] = op.dst;
        return 0;
    }
    case NODE_ADD: {
        tensor bb, out;
        if (op_to_layout(b, prog, &val[h->in1], &in->md, &bb) != 0 ||
            bld_act(b, &in->md, &out) != 0 || op_add(b, prog, in, &bb, &out) != 0)
            return -1;
        val[g->tail] = out;
        return 0;
    }
    case NODE_CONCAT: {
        tensor srcs[2] = {*in, val[h->in1]};
        return concat_build_forward(b, prog, srcs, 2, &val[g->tail]);
    }
    case NODE_DROPOUT:
        /* the identity at inference: the input's buffer is handed on (the
         * caller moves its slot) when nothing else reads it, else copied */
        if (dropout_passes_through(m, g->head)) {
            val[g->tail] = *in;
            return 0;
        }
        return bld_act(b, &in->md, &val[g->tail]) || op_reorder(b, prog, in, &val[g->tail]);
    case NODE_FLATTEN:
        if (op_flatten(b, prog, in, &val[g->tail]) != 0) return -1;
        return 0;
    case NODE_GAP: {
        gap_op op;
        if (gap_build_forward(b, prog, in, 0, &op) != 0) return -1;
        val[g->tail] = op.flat;
        return 0;
    }
    case NODE_FC: {
        linear_op op;
        if (linear_build_forward(b, prog, in, h->channels, m->params + h->w, m->params + h->b, 0,
                                 &op) != 0)
            return -1;
        val[g->tail] = op.dst;
        p->logits = op.dst;
        return 0;
    }
    default:
        return st3d_fail(b->err, ST3D_ERR_INVALID, "unexpected node");
    }
}

/* ------------------------------------------------------------ build */

/* What building an inference plan works on (one build at a time). */
typedef struct infer_build {
    st3d_model *m;   /* the network */
    builder b;       /* its builder, over the plan's resources and the slots */
    plan *p;         /* the plan being built */
    slots sl;        /* activation slots */
    group *gs;       /* fused groups */
    int *order;      /* schedule: group indices */
    int no;          /* groups scheduled */
    int *last_use;   /* per value (node id): schedule position of its last reader, -1 */
    int *slot_of;    /* per value: its slot while it lives, -1 */
    tensor *val;     /* per value: its tensor */
    int64_t *dims;   /* per node: C, D, H, W of its output for one clip */
} infer_build;

/* Builds the group at schedule position pos into program prog and keeps the
 * slot books: its output takes a slot, its inputs give theirs back after
 * their last use. */
static int build_position(infer_build *ib, int pos, program *prog) {
    st3d_model *m = ib->m;
    const group *g = &ib->gs[ib->order[pos]];
    tensor *val = ib->val;
    int *slot_of = ib->slot_of;
    if (m->nodes[g->head].kind == NODE_INPUT) return 0;
    if (g->residual >= 0 && ib->last_use[g->residual] != pos) {
        /* the shortcut is still needed later: sum into a copy */
        tensor copy;
        if (bld_act(&ib->b, &val[g->residual].md, &copy) != 0 ||
            op_reorder(&ib->b, prog, &val[g->residual], &copy) != 0)
            return -1;
        val[g->residual] = copy;
    }
    ib->sl.last = -1;
    if (build_group(m, &ib->b, ib->p, prog, g, val) != 0) return -1;
    if (g->tail == m->features_node) ib->p->features = val[g->tail];
    /* the group's output lives in the slot allocated last, or, for a fused
     * sum, in the shortcut's slot */
    slot_of[g->tail] = g->add >= 0 ? slot_of[g->residual] : ib->sl.last;
    if (g->add >= 0) slot_of[g->residual] = -1; /* handed over, not freed */
    if (m->nodes[g->head].kind == NODE_DROPOUT && dropout_passes_through(m, g->head)) {
        int src = m->nodes[g->head].in0;
        slot_of[g->tail] = slot_of[src];
        slot_of[src] = -1;
    }
    const node *h = &m->nodes[g->head];
    int deps[2] = {h->in0, h->in1};
    for (int d = 0; d < 2; d++)
        if (deps[d] >= 0 && deps[d] != m->features_node && ib->last_use[deps[d]] == pos &&
            slot_of[deps[d]] >= 0) {
            ib->sl.busy[slot_of[deps[d]]] = 0;
            slot_of[deps[d]] = -1;
        }
    return 0;
}

/* ------------------------------------------------ the micro-batched head */

/* A batch of N > 1 clips runs the network's high-resolution part, the
 * head, one clip at a time: its activations then take one clip's memory, not
 * N clips' (at 16 x 112 x 112, ResNet-50's conv1 output alone is 103 MB for
 * 8 clips).  Each clip's head result is copied into its place in a
 * batch-sized tensor, from which the rest of the network runs on the whole
 * batch, where one clip would leave the kernels little parallel work.  In
 * eval mode every layer treats clips independently (batch norm uses its
 * running statistics), so the result is the batch's.
 *
 * The head ends after the last group where (a) exactly one value is live,
 * its output (the end of a residual block, a transition), and (b) that value
 * still has at least HEAD_MIN_VOXELS positions (D x H x W) per clip: the
 * deepest such point has the narrowest batch tensor.  Below that (a 3D
 * ResNet's layer3 at 16 x 112 x 112 has 2 x 7 x 7 = 98), one clip gives the
 * kernels too little work; above it batch 1 runs as fast per clip as batch 8
 * (bench/RESULTS.md, "Peak memory of one forward pass"). */
#define HEAD_MIN_VOXELS 128

static int head_cut(const infer_build *ib) {
    const st3d_model *m = ib->m;
    int n = m->n_nodes, cut = -1, convs = 0;
    char *live = calloc((size_t)n, 1);
    if (!live) return -1; /* no head: the plan is only larger */
    int n_live = 1;
    live[0] = 1; /* the input */
    for (int pos = 0; pos < ib->no - 1; pos++) {
        const group *g = &ib->gs[ib->order[pos]];
        const node *h = &m->nodes[g->head];
        if (h->kind == NODE_INPUT) continue;
        convs += h->kind == NODE_CONV;
        int deps[3] = {h->in0, h->in1, g->residual};
        for (int d = 0; d < 3; d++)
            if (deps[d] >= 0 && live[deps[d]] && ib->last_use[deps[d]] == pos) {
                live[deps[d]] = 0;
                n_live--;
            }
        if (ib->last_use[g->tail] > pos && !live[g->tail]) {
            live[g->tail] = 1;
            n_live++;
        }
        const int64_t *d = &ib->dims[4 * g->tail];
        if (n_live == 1 && live[g->tail] && convs > 0 && g->tail != m->features_node &&
            d[1] * d[2] * d[3] >= HEAD_MIN_VOXELS)
            cut = pos;
    }
    free(live);
    return cut;
}

/* Copies one clip's head result into its place in the batch tensor. */
typedef struct head_out_ctx {
    tensor one;             /* the head's result for one clip */
    tensor batch;           /* the batch-sized tensor the rest reads */
    size_t bytes;           /* one clip's bytes in the layout of both */
    const int64_t *index;   /* the clip being run (plan.head_index) */
} head_out_ctx;

static void head_out_fn(const step *s) {
    const head_out_ctx *c = s->ctx;
    memcpy((char *)tensor_ptr(&c->batch) + (size_t)*c->index * c->bytes, tensor_ptr(&c->one),
           c->bytes);
}

/* Ends the head at value v (one clip): a batch-sized tensor in the same
 * layout, in a slot of its own (it fills up while the head's slots are
 * reused clip after clip), and the copy step. */
static int finish_head(infer_build *ib, int v, int64_t batch) {
    plan *p = ib->p;
    slots *sl = &ib->sl;
    tensor one = ib->val[v];
    dnnl_memory_desc_t md = one.md;
    md.dims[0] = md.padded_dims[0] = batch; /* the batch is the outermost dimension */
    size_t bytes = md_bytes(&one.md);
    if (md_bytes(&md) != bytes * (size_t)batch)
        return st3d_fail(ib->b.err, ST3D_ERR_BACKEND, "unexpected layout for the head's output");
    tensor full;
    sl->fresh = 1;
    int rc = bld_act(&ib->b, &md, &full);
    sl->fresh = 0;
    if (rc != 0) return -1;
    int fresh = sl->last;
    head_out_ctx *c = bld_blob(&ib->b, sizeof *c);
    if (!c) return -1;
    *c = (head_out_ctx){.one = one, .batch = full, .bytes = bytes, .index = &p->head_index};
    step s = {.fn = head_out_fn, .ctx = c, .what = "head output to its batch place"};
    if (prog_push(&p->head, &s, ib->b.err) != 0) return -1;
    if (ib->slot_of[v] >= 0) sl->busy[ib->slot_of[v]] = 0;
    ib->slot_of[v] = fresh;
    ib->val[v] = full;
    p->head_runs = batch;
    return 0;
}

plan *plan_build_infer(st3d_model *m, dnnl_engine_t eng, const int64_t shape[5], int winograd,
                       st3d_error *err) {
    int nn = m->n_nodes;
    plan *p = st3d_calloc(1, sizeof *p, err);
    int *n_cons = st3d_calloc((size_t)nn, sizeof(int), err);
    int *group_of = st3d_calloc((size_t)nn, sizeof(int), err);
    int *done = st3d_calloc((size_t)nn, sizeof(int), err);
    infer_build ib = {.m = m, .p = p};
    ib.order = st3d_calloc((size_t)nn, sizeof(int), err);
    ib.last_use = st3d_calloc((size_t)nn, sizeof(int), err);
    ib.slot_of = st3d_calloc((size_t)nn, sizeof(int), err);
    ib.gs = st3d_calloc((size_t)nn, sizeof(group), err);
    ib.val = st3d_calloc((size_t)nn, sizeof(tensor), err);
    ib.dims = st3d_calloc((size_t)nn * 4, sizeof(int64_t), err);
    ib.b = (builder){.eng = eng, .err = err, .new_act = slot_new_act, .act_ctx = &ib.sl};
    builder *b = &ib.b;
    int ok = 0;
    if (!p || !n_cons || !group_of || !done || !ib.order || !ib.last_use || !ib.slot_of || !ib.gs ||
        !ib.val || !ib.dims)
        goto out;
    if (model_infer_shapes(m, shape + 2, ib.dims, err) != 0) goto out;
    b->res = &p->res;
    p->training = 0;
    p->winograd = winograd;
    p->head_runs = 1; /* an empty head, once, unless finish_head makes one */
    memcpy(p->shape, shape, sizeof p->shape);
    p->prep_only = bld_blob(b, (size_t)nn);
    if (!p->prep_only) goto out;

    for (int i = 0; i < nn; i++) {
        if (m->nodes[i].in0 >= 0) n_cons[m->nodes[i].in0]++;
        if (m->nodes[i].in1 >= 0) n_cons[m->nodes[i].in1]++;
    }
    int ng = 0;
    make_groups(m, n_cons, ib.gs, &ng, group_of);
    for (int gi = 0; gi < ng; gi++) schedule(m, ib.gs, group_of, gi, done, ib.order, &ib.no);

    /* last use of each value (by node id of the tail), in schedule positions */
    for (int i = 0; i < nn; i++) ib.last_use[i] = -1;
    for (int pos = 0; pos < ib.no; pos++) {
        const group *g = &ib.gs[ib.order[pos]];
        const node *h = &m->nodes[g->head];
        int deps[3] = {h->in0, h->in1, g->residual};
        for (int d = 0; d < 3; d++)
            if (deps[d] >= 0) ib.last_use[deps[d]] = pos;
    }
    int cut = shape[0] > 1 ? head_cut(&ib) : -1;

    /* the input (one clip when there is a head): a plain buffer of its own,
     * or, when only convolutions read it (they never write their source),
     * the caller's array itself */
    int64_t in_shape[5];
    memcpy(in_shape, shape, sizeof in_shape);
    if (cut >= 0) in_shape[0] = 1;
    dnnl_memory_desc_t in_md;
    md_plain(&in_md, 5, in_shape);
    p->input_borrowed = 1;
    for (int i = 1; i < nn; i++)
        if ((m->nodes[i].in0 == 0 || m->nodes[i].in1 == 0) && m->nodes[i].kind != NODE_CONV)
            p->input_borrowed = 0;
    if (p->input_borrowed ? bld_view(b, &in_md, NULL, &p->input) : bld_tensor(b, &in_md, &p->input))
        goto out;
    ib.val[0] = p->input;
    for (int i = 0; i < nn; i++) ib.slot_of[i] = -1;

    for (int pos = 0; pos < ib.no; pos++) {
        if (build_position(&ib, pos, pos <= cut ? &p->head : &p->fwd) != 0) goto out;
        if (pos == cut && finish_head(&ib, ib.gs[ib.order[pos]].tail, shape[0]) != 0) goto out;
    }
    if (bind_slots(b, &ib.sl, &p->act_bytes) != 0 || resources_finish(b) != 0) goto out;
    p->act_bytes += p->res.transient_bytes; /* the temporaries of conv_wino.c */
    ok = 1;
out:
    free(n_cons);
    free(group_of);
    free(done);
    free(ib.order);
    free(ib.last_use);
    free(ib.slot_of);
    free(ib.gs);
    free(ib.val);
    free(ib.dims);
    slots_free(&ib.sl);
    if (!ok) {
        plan_free(p);
        return NULL;
    }
    return p;
}

void plan_free(plan *p) {
    if (!p) return;
    prog_free(&p->prepare);
    prog_free(&p->head);
    prog_free(&p->fwd);
    prog_free(&p->bwd);
    resources_free(&p->res);
    free(p);
}

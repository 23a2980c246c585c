/*
 * exec.c - execution state, kept apart from the network it runs.
 *
 * An st3d_model describes a network: its graph and its parameter, gradient
 * and statistic buffers.  An st3d_exec holds what running it needs: the
 * oneDNN engine and stream (the backend), and the plans compiled for each
 * input shape met so far, inference and training apart.  Plans are cached
 * per shape (least recently used out first), so a training loop whose last
 * batch is smaller, or whose batch lost a clip to an unreadable video,
 * builds that shape's plan once and then alternates between plans without
 * rebuilding anything.
 *
 * st3d_model_forward and st3d_model_train_step run on an exec that the model
 * makes on first use; a program that wants several (one per thread, say)
 * makes its own with st3d_exec_new.
 */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Plans kept per mode.  A training loop meets at most three shapes (full,
 * last, shrunk by a skipped video); more would only hold memory. */
#define EXEC_PLANS 4

struct st3d_exec {
    st3d_model *m;                    /* the network it runs (borrowed) */
    dnnl_engine_t eng;                /* oneDNN CPU engine */
    dnnl_stream_t stream;             /* its stream */
    plan *plans[2][EXEC_PLANS];       /* [training][i]: cached plans, NULL when free */
    uint64_t last_use[2][EXEC_PLANS]; /* tick of each plan's last use (LRU) */
    uint64_t tick;                    /* bumped on every run */
    int64_t n_builds;                 /* plans built so far (both modes) */
    plan *last_infer;                 /* plan of the most recent forward */
    exec_hooks hooks;                 /* data-parallel hooks of the training plans */
    int direct_only;                  /* 1: no temporal Winograd in inference plans */
};

st3d_exec *st3d_exec_new(st3d_model *m, st3d_error *err) {
    st3d_exec *e = st3d_calloc(1, sizeof *e, err);
    if (!e) return NULL;
    e->m = m;
    m->n_execs++;
    if (dnnl_engine_create(&e->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&e->stream, e->eng, dnnl_stream_default_flags) != dnnl_success) {
        st3d_fail(err, ST3D_ERR_BACKEND, "cannot create the oneDNN CPU engine");
        st3d_exec_free(e);
        return NULL;
    }
    return e;
}

void st3d_exec_free(st3d_exec *e) {
    if (!e) return;
    e->m->n_execs--;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < EXEC_PLANS; i++) plan_free(e->plans[t][i]);
    if (e->stream) dnnl_stream_destroy(e->stream);
    if (e->eng) dnnl_engine_destroy(e->eng);
    free(e);
}

static int check_shape(const st3d_model *m, const int64_t shape[5], st3d_error *err) {
    for (int i = 0; i < 5; i++)
        if (shape[i] < 1)
            return st3d_fail(err, ST3D_ERR_INVALID, "input shape has a non-positive dimension");
    if (shape[1] != m->p.n_input_channels)
        return st3d_fail(err, ST3D_ERR_INVALID, "input has %lld channels, the network expects %d",
                         (long long)shape[1], m->p.n_input_channels);
    int64_t *dims = st3d_malloc(sizeof(int64_t) * 4 * (size_t)m->n_nodes, err);
    if (!dims) return -1;
    int rc = model_infer_shapes(m, shape + 2, dims, err);
    free(dims);
    return rc;
}

/* An inference plan whose head runs clip by clip (plan_infer.c) serves any
 * smaller batch of the same clip shape: the head runs once per clip given,
 * the rest on the plan's whole batch (the places past the given clips hold
 * earlier clips' values, and their outputs are not read).  A stream's last,
 * partial batch then builds nothing; it costs the rest of the network for
 * the missing clips, a small part of the whole. */
static int serves_smaller(const plan *p, const int64_t shape[5]) {
    return p->head_runs > 1 && shape[0] < p->shape[0] &&
           !memcmp(p->shape + 1, shape + 1, sizeof(int64_t) * 4);
}

/* The plan for this shape and mode: a cached one (for inference, also one
 * that serves a smaller batch), or a new one built in the free (else least
 * recently used) place. */
static plan *get_plan(st3d_exec *e, const int64_t shape[5], int training, st3d_error *err) {
    plan **row = e->plans[training];
    uint64_t *use = e->last_use[training];
    int victim = 0, larger = -1;
    e->tick++;
    for (int i = 0; i < EXEC_PLANS; i++) {
        if (row[i] && !memcmp(row[i]->shape, shape, sizeof(int64_t) * 5)) {
            use[i] = e->tick;
            return row[i];
        }
        if (row[i] && !training && serves_smaller(row[i], shape) &&
            (larger < 0 || row[i]->shape[0] < row[larger]->shape[0]))
            larger = i;
        if (!row[victim]) continue;
        if (!row[i] || use[i] < use[victim]) victim = i;
    }
    if (larger >= 0) {
        use[larger] = e->tick;
        return row[larger];
    }
    if (check_shape(e->m, shape, err) != 0) return NULL;
    if (row[victim] == e->last_infer) e->last_infer = NULL;
    plan_free(row[victim]);
    row[victim] = training ? plan_build_train(e->m, e->eng, shape, &e->hooks, err)
                           : plan_build_infer(e->m, e->eng, shape, !e->direct_only, err);
    use[victim] = e->tick;
    if (row[victim]) e->n_builds++;
    return row[victim];
}

/* ------------------------------------------ weights held once (inference) */

/* Before a prepare: which conv weights its steps may hand back once read
 * (model_drop_conv_weights), so that the network's weights are in memory
 * once, in the kernels' layout: those that every cached plan only reads in
 * its prepare (their kernels read folded or reordered copies).  Only for a
 * model with a weights source (to read them back from), one exec (another's
 * plans are not known here) and no training plan (which reads the
 * parameters at every step). */
static int allow_drops(st3d_exec *e, st3d_error *err) {
    st3d_model *m = e->m;
    int ok = m->weights_src && m->n_execs == 1;
    for (int i = 0; i < EXEC_PLANS && ok; i++)
        if (e->plans[1][i]) ok = 0;
    if (!ok) {
        free(m->drop_allowed);
        m->drop_allowed = NULL;
        return 0;
    }
    if (!m->drop_allowed && !(m->drop_allowed = st3d_calloc((size_t)m->n_nodes, 1, err))) return -1;
    if (!m->dropped && !(m->dropped = st3d_calloc((size_t)m->n_nodes, 1, err))) return -1;
    for (int j = 0; j < m->n_nodes; j++) {
        int all = m->nodes[j].kind == NODE_CONV;
        for (int i = 0; i < EXEC_PLANS && all; i++)
            if (e->plans[0][i]) all = e->plans[0][i]->prep_only[j];
        m->drop_allowed[j] = (uint8_t)all;
    }
    return 0;
}

/* The inference plan for this shape, built if new, its weights folded and
 * reordered if not yet (or changed since). */
static plan *ready_plan(st3d_exec *e, const int64_t shape[5], st3d_error *err) {
    st3d_model *m = e->m;
    plan *p = get_plan(e, shape, 0, err);
    if (!p) return NULL;
    if (!p->prepared || p->version != m->version) {
        if (model_restore_params(m, err) != 0 || allow_drops(e, err) != 0) return NULL;
        if (prog_run(&p->prepare, e->stream, err) != 0) return NULL;
        p->prepared = 1;
        p->version = m->version;
    }
    return p;
}

int st3d_exec_prepare(st3d_exec *e, const int64_t shape[5], st3d_error *err) {
    return ready_plan(e, shape, err) ? 0 : -1;
}

int st3d_exec_forward(st3d_exec *e, const float *x, const int64_t shape[5], float *logits,
                      float *features, st3d_error *err) {
    plan *p = ready_plan(e, shape, err);
    if (!p) return -1;
    /* the head clip by clip (plan_infer.c; without one, the input once), then
     * the rest on the batch */
    size_t clip = md_bytes(&p->input.md) / sizeof(float); /* the input of one head run */
    int64_t runs = p->head_runs > 1 ? shape[0] : 1; /* a smaller batch: its clips only */
    for (int64_t i = 0; i < runs; i++) {
        const float *xi = x + (size_t)i * clip;
        if (p->input_borrowed) /* read only by convolutions: no copy */
            dnnl_memory_set_data_handle(p->input.mem, (void *)xi);
        else
            memcpy(tensor_ptr(&p->input), xi, md_bytes(&p->input.md));
        p->head_index = i;
        if (p->head.n && prog_run(&p->head, e->stream, err) != 0) return -1;
    }
    if (prog_run(&p->fwd, e->stream, err) != 0) return -1;
    size_t rows = (size_t)shape[0], all = (size_t)p->shape[0];
    if (logits) memcpy(logits, tensor_ptr(&p->logits), md_bytes(&p->logits.md) / all * rows);
    if (features) memcpy(features, tensor_ptr(&p->features), md_bytes(&p->features.md) / all * rows);
    e->last_infer = p;
    return 0;
}

int st3d_exec_train_step(st3d_exec *e, const float *x, const int64_t shape[5],
                         const int64_t *labels, float *loss, float *logits, st3d_error *err) {
    st3d_model *m = e->m;
    if (model_restore_params(m, err) != 0) return -1;
    plan *p = get_plan(e, shape, 1, err);
    if (!p) return -1;
    /* parameters change every step: reorder them into kernel layouts */
    if (prog_run(&p->prepare, e->stream, err) != 0) return -1;
    memcpy(tensor_ptr(&p->input), x, md_bytes(&p->input.md));
    if (prog_run(&p->fwd, e->stream, err) != 0) return -1;
    const float *z = tensor_ptr(&p->logits);
    float l = 0.0f;
    if (softmax_xent(z, labels, (int)shape[0], m->p.n_classes, &l, tensor_ptr(&p->dlogits), err) != 0)
        return -1;
    if (logits) memcpy(logits, z, md_bytes(&p->logits.md));
    if (loss) *loss = l;
    if (prog_run(&p->bwd, e->stream, err) != 0) return -1;
    m->version++; /* running statistics changed */
    if (e->hooks.sync.failed) {
        e->hooks.sync.failed = 0;
        return st3d_fail(err, ST3D_ERR_BACKEND, "batch-norm statistics could not be summed across processes");
    }
    return 0;
}

void st3d_exec_set_grad_hook(st3d_exec *e, st3d_grad_ready_fn fn, void *user) {
    e->hooks.grad_ready = fn;
    e->hooks.grad_user = user;
}

void st3d_exec_set_sync_bn(st3d_exec *e, st3d_sum_fn sum, void *user) {
    if (e->hooks.sync.sum == sum && e->hooks.sync.user == user) return;
    e->hooks.sync.sum = sum;
    e->hooks.sync.user = user;
    e->hooks.sync.failed = 0;
    for (int i = 0; i < EXEC_PLANS; i++) { /* built for the other statistics */
        plan_free(e->plans[1][i]);
        e->plans[1][i] = NULL;
    }
}

void st3d_exec_set_winograd(st3d_exec *e, int on) {
    if (e->direct_only == !on) return;
    e->direct_only = !on;
    for (int i = 0; i < EXEC_PLANS; i++) { /* built with the other choice */
        if (e->plans[0][i] == e->last_infer) e->last_infer = NULL;
        plan_free(e->plans[0][i]);
        e->plans[0][i] = NULL;
    }
}

int st3d_exec_winograd_convs(const st3d_exec *e) {
    return e->last_infer ? e->last_infer->n_winograd : 0;
}

int64_t st3d_exec_n_builds(const st3d_exec *e) { return e->n_builds; }

size_t st3d_exec_activation_bytes(const st3d_exec *e) {
    return e->last_infer ? e->last_infer->act_bytes : 0;
}

/* ------------------------------------------------ the model's own exec */

static st3d_exec *model_exec(st3d_model *m, st3d_error *err) {
    if (!m->exec) m->exec = st3d_exec_new(m, err);
    return m->exec;
}

int st3d_model_forward(st3d_model *m, const float *x, const int64_t shape[5], float *logits,
                       float *features, st3d_error *err) {
    st3d_exec *e = model_exec(m, err);
    return e ? st3d_exec_forward(e, x, shape, logits, features, err) : -1;
}

int st3d_model_train_step(st3d_model *m, const float *x, const int64_t shape[5],
                          const int64_t *labels, float *loss, float *logits, st3d_error *err) {
    st3d_exec *e = model_exec(m, err);
    return e ? st3d_exec_train_step(e, x, shape, labels, loss, logits, err) : -1;
}

size_t st3d_model_activation_bytes(const st3d_model *m) {
    return m->exec ? st3d_exec_activation_bytes(m->exec) : 0;
}

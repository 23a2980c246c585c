/*
 * run.c - running a model: eval-mode forward and one training step through
 * plans cached per input shape, and the SGD optimizer object.
 */
#include "plan.h"
#include "train/train.h"

#include <stdlib.h>
#include <string.h>

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

/* The cached plan for this shape and mode, rebuilt when the shape changes. */
static plan *get_plan(st3d_model *m, const int64_t shape[5], int training, st3d_error *err) {
    plan **slot = training ? &m->train : &m->infer;
    if (*slot && !memcmp((*slot)->shape, shape, sizeof(int64_t) * 5)) return *slot;
    if (check_shape(m, shape, err) != 0) return NULL;
    plan_free(*slot);
    *slot = training ? plan_build_train(m, shape, err) : plan_build_infer(m, shape, err);
    return *slot;
}

int st3d_model_forward(st3d_model *m, const float *x, const int64_t shape[5], float *logits,
                       float *features, st3d_error *err) {
    plan *p = get_plan(m, shape, 0, err);
    if (!p) return -1;
    if (!p->prepared || p->version != m->version) {
        if (prog_run(&p->prepare, m->stream, err) != 0) return -1;
        p->prepared = 1;
        p->version = m->version;
    }
    memcpy(tensor_ptr(&p->input), x, md_bytes(&p->input.md));
    if (prog_run(&p->fwd, m->stream, err) != 0) return -1;
    if (logits) memcpy(logits, tensor_ptr(&p->logits), md_bytes(&p->logits.md));
    if (features) memcpy(features, tensor_ptr(&p->features), md_bytes(&p->features.md));
    return 0;
}

size_t st3d_model_activation_bytes(const st3d_model *m) {
    return m->infer ? m->infer->act_bytes : 0;
}

int st3d_model_train_step(st3d_model *m, const float *x, const int64_t shape[5],
                          const int64_t *labels, float *loss, float *logits, st3d_error *err) {
    plan *p = get_plan(m, shape, 1, err);
    if (!p) return -1;
    /* parameters change every step: reorder them into kernel layouts */
    if (prog_run(&p->prepare, m->stream, err) != 0) return -1;
    memcpy(tensor_ptr(&p->input), x, md_bytes(&p->input.md));
    if (prog_run(&p->fwd, m->stream, err) != 0) return -1;
    const float *z = tensor_ptr(&p->logits);
    float l = 0.0f;
    if (softmax_xent(z, labels, (int)shape[0], m->p.n_classes, &l, tensor_ptr(&p->dlogits), err) != 0)
        return -1;
    if (logits) memcpy(logits, z, md_bytes(&p->logits.md));
    if (loss) *loss = l;
    if (prog_run(&p->bwd, m->stream, err) != 0) return -1;
    m->version++; /* running statistics changed */
    return 0;
}

/* ------------------------------------------------------------ SGD */

struct st3d_sgd {
    st3d_sgd_params h;   /* hyper-parameters */
    float *momentum;     /* one buffer per parameter, same layout as params */
    int64_t n;           /* parameter count */
    int64_t steps;       /* updates done (the first initializes momentum) */
};

st3d_sgd_params st3d_sgd_default_params(void) {
    st3d_sgd_params h = {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.0f, .weight_decay = 1e-3f,
                         .nesterov = 0};
    return h;
}

st3d_sgd *st3d_sgd_new(const st3d_model *m, const st3d_sgd_params *h, st3d_error *err) {
    if (h->nesterov && (h->momentum <= 0.0f || h->dampening != 0.0f)) {
        /* as torch.optim.SGD */
        st3d_fail(err, ST3D_ERR_INVALID, "Nesterov momentum requires a momentum and zero dampening");
        return NULL;
    }
    if (h->lr < 0.0f || h->momentum < 0.0f || h->weight_decay < 0.0f) {
        st3d_fail(err, ST3D_ERR_INVALID, "SGD: negative learning rate, momentum or weight decay");
        return NULL;
    }
    st3d_sgd *o = st3d_calloc(1, sizeof *o, err);
    if (!o) return NULL;
    o->h = *h;
    o->n = m->n_params;
    o->momentum = st3d_aligned_alloc(sizeof(float) * (size_t)(o->n + 1), err);
    if (!o->momentum) {
        free(o);
        return NULL;
    }
    return o;
}

void st3d_sgd_free(st3d_sgd *o) {
    if (!o) return;
    st3d_aligned_free(o->momentum);
    free(o);
}

void st3d_sgd_set_lr(st3d_sgd *o, float lr) { o->h.lr = lr; }

int st3d_sgd_step(st3d_sgd *o, st3d_model *m, st3d_error *err) {
    if (m->n_params != o->n)
        return st3d_fail(err, ST3D_ERR_INVALID, "optimizer was made for another model");
    sgd_update(m->params, m->grads, o->momentum, o->n, &o->h, o->steps == 0);
    o->steps++;
    m->version++;
    return 0;
}

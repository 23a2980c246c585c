/*
 * run.c - the SGD optimizer object: torch.optim.SGD's state (momentum
 * buffers, step count) over a model's flat parameter array, with parameters
 * that can be frozen (fine-tuning).  Running the network is exec.c's.
 */
#include "models/model.h"
#include "train/train.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ SGD */

struct st3d_sgd {
    st3d_sgd_params h;   /* hyper-parameters */
    float *momentum;     /* one buffer per parameter, same layout as params */
    int64_t n;           /* parameter count */
    int64_t begin;       /* first trained parameter float: those before it are
                            frozen (fine-tuning), 0 when none is */
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
    sgd_update(m->params + o->begin, m->grads + o->begin, o->momentum + o->begin, o->n - o->begin,
               &o->h, o->steps == 0);
    o->steps++;
    m->version++;
    return 0;
}

/* Mirrors the original's get_fine_tuning_parameters (model.py, 2020 code):
 * walking named_parameters in order, training starts at the first parameter
 * whose module name (the key's first component, or its second after
 * "features." as in DenseNet) is ft_begin_module; the parameters before it
 * are left out of the optimizer: no update and no weight decay.  The flat
 * parameter array is in named_parameters order, so they are a prefix. */
int st3d_sgd_freeze_before(st3d_sgd *o, const st3d_model *m, const char *module, st3d_error *err) {
    if (!module || !*module) {
        o->begin = 0;
        return 0;
    }
    size_t len = strlen(module);
    for (int i = 0; i < m->n_entries; i++) {
        const entry *e = &m->entries[i];
        if (e->kind != ENTRY_PARAM) continue;
        const char *name = e->name;
        if (!strncmp(name, "features.", 9)) name += 9;
        if (!strncmp(name, module, len) && (name[len] == '.' || name[len] == 0)) {
            o->begin = e->offset;
            return 0;
        }
    }
    return st3d_fail(err, ST3D_ERR_INVALID,
                     "--ft-begin-module '%s': no parameter of the %s network belongs to it "
                     "(its modules are named as in PyTorch: conv1, layer1 .. layer4, fc)",
                     module, m->p.model);
}

int64_t st3d_sgd_frozen_count(const st3d_sgd *o) { return o->begin; }

/* The optimizer's state for a checkpoint: the step count and the momentum
 * buffers, as optimizer.state_dict() holds them per parameter. */
int64_t st3d_sgd_steps(const st3d_sgd *o) { return o->steps; }

float *st3d_sgd_momentum_data(st3d_sgd *o, int64_t *count) {
    if (count) *count = o->n;
    return o->momentum;
}

void st3d_sgd_set_steps(st3d_sgd *o, int64_t steps) { o->steps = steps; }

const st3d_sgd_params *sgd_params(const st3d_sgd *o) { return &o->h; }

void sgd_set_params(st3d_sgd *o, const st3d_sgd_params *h) { o->h = *h; }

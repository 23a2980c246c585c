/*
 * checkpoint_pth.c - training checkpoints in PyTorch's format: what the
 * original main.py's save_checkpoint writes with torch.save, and resuming
 * from such a file as its resume_model and resume_train_utils do.
 *
 *   {'epoch': int, 'arch': '<model>-<depth>',
 *    'state_dict': model.state_dict(),   an OrderedDict; batch norms'
 *                                        num_batches_tracked included
 *    'optimizer': SGD.state_dict(),      {'state': {index: {'momentum_buffer':
 *                                        tensor}}, 'param_groups': [{'lr', ...,
 *                                        'params': [indices]}]}
 *    'scheduler': MultiStepLR.state_dict() or ReduceLROnPlateau.state_dict()}
 *
 * with the keys, order and Python types that PyTorch 1.13 (Debian 12's
 * python3-torch) gives them, the original's options behind them: SGD(lr,
 * momentum, dampening (0 with --nesterov), weight_decay, nesterov),
 * MultiStepLR(optimizer, milestones) (which adds 'initial_lr' to each
 * group), ReduceLROnPlateau(optimizer, 'min', patience).  Optimizer indices
 * number the optimizer's parameters in model.parameters() order; with
 * --ft-begin-module the original's get_fine_tuning_parameters hands over
 * only the parameters from that module on, each in a group of its own, and
 * so does this file.  The state dict carries no _metadata attribute (module
 * versions): load_state_dict does not need it when num_batches_tracked is
 * there.
 *
 * When: st3d saves an epoch's checkpoint after validation and the
 * scheduler's step, so a file holds the state the next epoch starts from;
 * the original saves before them.  A file of either is resumed the way the
 * original resumes: the state dict into the network, the momentum buffers,
 * and optimizer.load_state_dict and scheduler.load_state_dict, which put
 * the file's settings in place of the command line's (learning rate,
 * momentum, dampening, weight decay, Nesterov; milestones and gamma, or the
 * plateau's factor, patience, threshold, cooldown, minimum and eps).  Unlike
 * the original, a file without 'optimizer' or 'scheduler' is refused: it
 * cannot continue a run exactly.  The step count is not in the file; the
 * next epoch counts it as the original counts `iter`.
 *
 * Resuming reads the file a second time for the optimizer and the scheduler
 * (the state dict comes from st3d_weights_read), checks all of it, and only
 * then changes the trainer.
 */
#include "io/pth.h"
#include "models/model.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The Python float an option became in the original (opts.py's
 * type=float), from the float st3d keeps: the shortest decimal that reads
 * back as the same float is the one that was typed (0.9f: 0.9). */
static double py_float(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

/* Is e one of the optimizer's parameters (not frozen by fine-tuning)? */
static int trained(const st3d_trainer *t, const entry *e) {
    return e->kind == ENTRY_PARAM && e->offset >= st3d_sgd_frozen_count(t->sgd);
}

static int64_t count_trained(const st3d_trainer *t) {
    int64_t n = 0;
    for (int i = 0; i < t->m->n_entries; i++) n += trained(t, &t->m->entries[i]);
    return n;
}

/* ------------------------------------------------------------ saving */

/* A list of n copies of v, one per parameter group; as_int writes Python's
 * int (ReduceLROnPlateau's default min_lr is the int 0). */
static void per_group(pkw *w, int64_t n, double v, int as_int) {
    pkw_begin(w, PKW_LIST);
    for (int64_t i = 0; i < n; i++) {
        if (as_int) pkw_int(w, (int64_t)v);
        else pkw_float(w, v);
    }
    pkw_end(w);
}

/* One of SGD.state_dict()'s param_groups: parameters first .. first+count-1. */
static void write_group(pkw *w, const st3d_trainer *t, int64_t first, int64_t count) {
    const st3d_sgd_params *h = sgd_params(t->sgd);
    pkw_begin(w, PKW_DICT);
    pkw_str(w, "lr");
    pkw_float(w, t->sched.lr);
    pkw_str(w, "momentum");
    pkw_float(w, py_float(h->momentum));
    pkw_str(w, "dampening");
    if (h->nesterov) pkw_int(w, 0); /* main.py's get_train_utils: dampening = 0 */
    else pkw_float(w, py_float(h->dampening));
    pkw_str(w, "weight_decay");
    pkw_float(w, py_float(h->weight_decay));
    pkw_str(w, "nesterov");
    pkw_bool(w, h->nesterov);
    pkw_str(w, "maximize");
    pkw_bool(w, 0);
    pkw_str(w, "foreach");
    pkw_none(w);
    pkw_str(w, "differentiable");
    pkw_bool(w, 0);
    if (t->sched.p.kind == ST3D_LR_MULTISTEP) { /* set by MultiStepLR's constructor */
        pkw_str(w, "initial_lr");
        pkw_float(w, t->p.lr);
    }
    pkw_str(w, "params");
    pkw_begin(w, PKW_LIST);
    for (int64_t i = 0; i < count; i++) pkw_int(w, first + i);
    pkw_end(w);
    pkw_end(w);
}

/* torch.optim.SGD.state_dict(): a momentum buffer per parameter once a step
 * was taken (None with momentum 0, as PyTorch 1.13 keeps it). */
static void write_optimizer(pkw *w, const st3d_trainer *t, int64_t n) {
    const st3d_model *m = t->m;
    const float *mom = st3d_sgd_momentum_data(t->sgd, NULL);
    pkw_begin(w, PKW_DICT);
    pkw_str(w, "state");
    pkw_begin(w, PKW_DICT);
    int64_t k = 0;
    for (int i = 0; i < m->n_entries && st3d_sgd_steps(t->sgd) > 0; i++) {
        const entry *e = &m->entries[i];
        if (!trained(t, e)) continue;
        pkw_int(w, k++);
        pkw_begin(w, PKW_DICT);
        pkw_str(w, "momentum_buffer");
        if (sgd_params(t->sgd)->momentum != 0.0f)
            pkw_tensor(w, ST3D_F32, e->ndim, e->shape, mom + e->offset);
        else
            pkw_none(w);
        pkw_end(w);
    }
    pkw_end(w);
    pkw_str(w, "param_groups");
    pkw_begin(w, PKW_LIST);
    if (t->p.ft_begin_module[0]) /* get_fine_tuning_parameters: [{'params': v}, ...] */
        for (int64_t i = 0; i < n; i++) write_group(w, t, i, 1);
    else
        write_group(w, t, 0, n);
    pkw_end(w);
    pkw_end(w);
}

/* The scheduler's state_dict(): its __dict__ but the optimizer. */
static void write_scheduler(pkw *w, const st3d_trainer *t, int64_t n_groups) {
    const st3d_scheduler *s = &t->sched;
    const st3d_scheduler_params *p = &s->p;
    pkw_begin(w, PKW_DICT);
    if (p->kind == ST3D_LR_MULTISTEP) {
        pkw_str(w, "milestones"); /* Counter(milestones), in first-seen order */
        pkw_begin(w, PKW_COUNTER);
        for (int i = 0; i < p->n_milestones; i++) {
            int seen = 0, count = 0;
            for (int j = 0; j < p->n_milestones; j++) {
                seen += j < i && p->milestones[j] == p->milestones[i];
                count += p->milestones[j] == p->milestones[i];
            }
            if (seen) continue;
            pkw_int(w, p->milestones[i]);
            pkw_int(w, count);
        }
        pkw_end(w);
        pkw_str(w, "gamma");
        pkw_float(w, p->gamma);
        pkw_str(w, "base_lrs");
        per_group(w, n_groups, t->p.lr, 0);
        pkw_str(w, "last_epoch");
        pkw_int(w, s->last_epoch);
        pkw_str(w, "verbose");
        pkw_bool(w, 0);
        pkw_str(w, "_step_count"); /* the constructor's step counts too */
        pkw_int(w, s->last_epoch + 1);
        pkw_str(w, "_get_lr_called_within_step");
        pkw_bool(w, 0);
        pkw_str(w, "_last_lr");
        per_group(w, n_groups, s->lr, 0);
        pkw_end(w);
        return;
    }
    pkw_str(w, "factor");
    pkw_float(w, p->gamma);
    pkw_str(w, "min_lrs");
    per_group(w, n_groups, p->min_lr, p->min_lr == 0.0);
    pkw_str(w, "patience");
    pkw_int(w, p->patience);
    pkw_str(w, "verbose");
    pkw_bool(w, 0);
    pkw_str(w, "cooldown");
    pkw_int(w, p->cooldown);
    pkw_str(w, "cooldown_counter");
    pkw_int(w, s->cooldown_counter);
    pkw_str(w, "mode");
    pkw_str(w, "min");
    pkw_str(w, "threshold");
    pkw_float(w, p->threshold);
    pkw_str(w, "threshold_mode");
    pkw_str(w, "rel");
    pkw_str(w, "best");
    pkw_float(w, s->best);
    pkw_str(w, "num_bad_epochs");
    pkw_int(w, s->num_bad_epochs);
    pkw_str(w, "mode_worse");
    pkw_float(w, INFINITY);
    pkw_str(w, "eps");
    pkw_float(w, p->eps);
    pkw_str(w, "last_epoch");
    pkw_int(w, s->last_epoch);
    if (s->last_epoch > 0) { /* set by the first step */
        pkw_str(w, "_last_lr");
        per_group(w, n_groups, s->lr, 0);
    }
    pkw_end(w);
}

/* Mirrors main.py's save_checkpoint. */
int pth_checkpoint_save(const st3d_trainer *t, const char *path, int64_t epoch, st3d_error *err) {
    const st3d_model *m = t->m;
    const int64_t n = count_trained(t), n_groups = t->p.ft_begin_module[0] ? n : 1;
    char arch[64];
    snprintf(arch, sizeof arch, "%s-%d", m->p.model, m->p.model_depth);
    pkw *w = pkw_new(err);
    if (!w) return -1;
    pkw_begin(w, PKW_DICT);
    pkw_str(w, "epoch");
    pkw_int(w, epoch);
    pkw_str(w, "arch");
    pkw_str(w, arch);
    pkw_str(w, "state_dict");
    pkw_begin(w, PKW_ORDERED_DICT);
    for (int i = 0; i < m->n_entries; i++) {
        const entry *e = &m->entries[i];
        pkw_str(w, e->name);
        if (e->kind == ENTRY_COUNT)
            pkw_tensor(w, ST3D_I64, 0, NULL, &m->nbt[e->offset]);
        else
            pkw_tensor(w, ST3D_F32, e->ndim, e->shape,
                       (e->kind == ENTRY_PARAM ? m->params : m->stats) + e->offset);
    }
    pkw_end(w);
    pkw_str(w, "optimizer");
    write_optimizer(w, t, n);
    pkw_str(w, "scheduler");
    write_scheduler(w, t, n_groups);
    pkw_end(w);
    int rc = pth_write_file(path, w, err);
    pkw_free(w);
    return rc;
}

/* ------------------------------------------------------------ resuming */

/* What a checkpoint's optimizer and scheduler say, checked before use. */
typedef struct pth_train_state {
    st3d_trainer *t;      /* the trainer being resumed (read only until all is checked) */
    int64_t epoch;        /* epochs done */
    st3d_sgd_params h;    /* the optimizer's settings; h.lr is not used */
    double lr;            /* the optimizer's learning rate */
    float *momentum;      /* the model's parameter count of floats, trained part filled */
    int has_state;        /* the optimizer had stepped (momentum buffers there) */
    st3d_scheduler sched; /* the schedule, settings and state */
    double base_lr;       /* MultiStepLR's base_lrs, else the trainer's own */
} pth_train_state;

/* d[key] (d described as `where` in messages), which must be there. */
static const pk_obj *need(const char *path, const pk_obj *d, const char *where, const char *key,
                          st3d_error *err) {
    const pk_obj *v = pk_dict_get(d, key);
    if (!v) st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s has no '%s'", path, where, key);
    return v;
}

/* A number (int, bool or float) at d[key]. */
static int get_num(const char *path, const pk_obj *d, const char *where, const char *key,
                   double *out, st3d_error *err) {
    const pk_obj *v = need(path, d, where, key, err);
    if (!v) return -1;
    if (v->type == PK_FLOAT) *out = v->u.f;
    else if (v->type == PK_INT || v->type == PK_BOOL) *out = (double)v->u.i;
    else
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s '%s' is a %s, not a number", path, where,
                         key, pk_type_name(v));
    return 0;
}

/* An int (or bool) at d[key], in [lo, hi]. */
static int get_int(const char *path, const pk_obj *d, const char *where, const char *key,
                   int64_t lo, int64_t hi, int64_t *out, st3d_error *err) {
    const pk_obj *v = need(path, d, where, key, err);
    if (!v) return -1;
    if ((v->type != PK_INT && v->type != PK_BOOL) || v->u.i < lo || v->u.i > hi)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s '%s' is not an integer from %lld to %lld",
                         path, where, key, (long long)lo, (long long)hi);
    *out = v->u.i;
    return 0;
}

/* The one value of a list with an entry per parameter group (base_lrs, min_lrs). */
static int get_same(const char *path, const pk_obj *d, const char *where, const char *key,
                    double *out, st3d_error *err) {
    const pk_obj *v = need(path, d, where, key, err);
    if (!v) return -1;
    if (v->type != PK_LIST || v->u.seq.n == 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s '%s' is not a list of numbers", path, where,
                         key);
    for (size_t i = 0; i < v->u.seq.n; i++) {
        const pk_obj *x = v->u.seq.items[i];
        double y = x->type == PK_FLOAT ? x->u.f : x->type == PK_INT ? (double)x->u.i : NAN;
        if (isnan(y))
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s '%s' is not a list of numbers", path,
                             where, key);
        if (i && y != *out)
            return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                             "%s: %s '%s' differs between parameter groups (st3d trains all "
                             "parameters alike)", path, where, key);
        *out = y;
    }
    return 0;
}

/* Is d[key] the string want? */
static int check_str(const char *path, const pk_obj *d, const char *where, const char *key,
                     const char *want, st3d_error *err) {
    const pk_obj *v = need(path, d, where, key, err);
    if (!v) return -1;
    if (v->type != PK_STR || strcmp(v->u.str.s, want) != 0)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: %s '%s' is not '%s' (the only one st3d runs)",
                         path, where, key, want);
    return 0;
}

/* The settings of every param group, which must agree, and the parameter
 * indices, which must be 0, 1, ... n-1 across them. */
static int read_groups(const char *path, const pk_obj *groups, int64_t n, pth_train_state *st,
                       st3d_error *err) {
    static const char *const keys[5] = {"lr", "momentum", "dampening", "weight_decay", "nesterov"};
    const char *where = "the optimizer's param group";
    double first[5] = {0};
    int64_t next = 0;
    if (groups->type != PK_LIST || groups->u.seq.n == 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: the optimizer's 'param_groups' is not a list of dicts",
                         path);
    for (size_t g = 0; g < groups->u.seq.n; g++) {
        const pk_obj *d = groups->u.seq.items[g], *ps, *mx;
        if (d->type != PK_DICT)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s %zu is a %s, not a dict", path, where, g,
                             pk_type_name(d));
        for (int k = 0; k < 5; k++) {
            double v = 0.0;
            if (get_num(path, d, where, keys[k], &v, err) != 0) return -1;
            if (g && v != first[k])
                return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                                 "%s: param groups with different '%s' (st3d trains all parameters alike)",
                                 path, keys[k]);
            first[k] = v;
        }
        if ((mx = pk_dict_get(d, "maximize")) && mx->type == PK_BOOL && mx->u.i)
            return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: the optimizer maximizes", path);
        if (!(ps = need(path, d, where, "params", err))) return -1;
        if (ps->type != PK_LIST)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s's 'params' is not a list", path, where);
        for (size_t i = 0; i < ps->u.seq.n; i++, next++)
            if (ps->u.seq.items[i]->type != PK_INT || ps->u.seq.items[i]->u.i != next)
                return st3d_fail(err, ST3D_ERR_FORMAT,
                                 "%s: the optimizer's parameter indices are not 0, 1, 2, ... in order",
                                 path);
    }
    if (next != n)
        return st3d_fail(err, ST3D_ERR_MISMATCH,
                         "%s: the optimizer holds %lld parameters, this run trains %lld "
                         "(--ft-begin-module must be the run's)",
                         path, (long long)next, (long long)n);
    st->lr = first[0];
    st->h = (st3d_sgd_params){(float)first[0], (float)first[1], (float)first[2], (float)first[3],
                              first[4] != 0.0};
    if (!(st->lr > 0.0) || !(first[1] >= 0.0) || !(first[2] >= 0.0) || !(first[3] >= 0.0))
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: the optimizer's lr, momentum, dampening or weight decay is out of range",
                         path);
    if (st->h.nesterov && (st->h.momentum <= 0.0f || st->h.dampening != 0.0f)) /* as SGD() */
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: Nesterov momentum without a momentum or with dampening", path);
    return 0;
}

/* Copies the momentum buffer b of parameter e into momentum. */
static int load_buffer(const char *path, const pk_obj *b, const entry *e, const pth_loader *ld,
                       float *momentum, st3d_error *err) {
    st3d_tensor_map *one = st3d_tensor_map_new();
    if (!one) return st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
    int rc = pth_add_tensor(path, e->name, b, ld, one, err);
    const st3d_tensor_info *ti = rc == 0 ? st3d_tensor_map_at(one, 0) : NULL;
    if (ti) {
        int same = ti->dtype == ST3D_F32 && ti->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = ti->shape[d] == e->shape[d];
        if (same) memcpy(momentum + e->offset, ti->data, ti->nbytes);
        else
            rc = st3d_fail(err, ST3D_ERR_MISMATCH,
                           "%s: the momentum buffer of '%s' is not a float32 tensor of its shape",
                           path, e->name);
    }
    st3d_tensor_map_free(one);
    return rc;
}

/* The optimizer's state: a momentum buffer for every trained parameter, or
 * none (no step taken yet; with momentum 0 they are None). */
static int read_state(const char *path, const pk_obj *state, const pth_loader *ld,
                      pth_train_state *st, st3d_error *err) {
    const st3d_model *m = st->t->m;
    const int64_t n = count_trained(st->t);
    if (state->type != PK_DICT)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: the optimizer's 'state' is a %s, not a dict",
                         path, pk_type_name(state));
    const entry **params = st3d_calloc((size_t)n + 1, sizeof *params, err);
    unsigned char *seen = st3d_calloc((size_t)n + 1, 1, err);
    int rc = params && seen ? 0 : -1;
    int64_t k = 0, buffers = 0;
    for (int i = 0; rc == 0 && i < m->n_entries; i++)
        if (trained(st->t, &m->entries[i])) params[k++] = &m->entries[i];
    for (size_t i = 0; rc == 0 && i < state->u.dict.n; i++) {
        const pk_obj *key = state->u.dict.keys[i], *v = state->u.dict.vals[i], *b;
        if (key->type != PK_INT || key->u.i < 0 || key->u.i >= n || seen[key->u.i]++)
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: the optimizer's state is keyed by something else than the "
                           "parameter indices 0 .. %lld, each once", path, (long long)n - 1);
        else if (v->type != PK_DICT)
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: the optimizer's state of parameter %lld is a %s",
                           path, (long long)key->u.i, pk_type_name(v));
        else if ((b = pk_dict_get(v, "momentum_buffer")) && b->type != PK_NONE) {
            rc = load_buffer(path, b, params[key->u.i], ld, st->momentum, err);
            buffers++;
        }
    }
    if (rc == 0 && buffers && buffers != n)
        rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: momentum buffers for %lld of the %lld parameters",
                       path, (long long)buffers, (long long)n);
    st->has_state = buffers > 0;
    free(params);
    free(seen);
    return rc;
}

/* MultiStepLR's or ReduceLROnPlateau's state_dict, the run's kind. */
static int read_scheduler(const char *path, const pk_obj *sd, pth_train_state *st,
                          st3d_error *err) {
    const char *where = "the scheduler";
    st3d_scheduler_params p = st->t->sched.p;
    int multistep = sd->type == PK_DICT && pk_dict_get(sd, "milestones");
    int plateau = sd->type == PK_DICT && pk_dict_get(sd, "patience");
    int64_t last = 0, patience = 0, cooldown = 0, bad = 0, counter = 0;
    double best = INFINITY;
    if (multistep == plateau)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: 'scheduler' is neither MultiStepLR's nor ReduceLROnPlateau's state", path);
    if (multistep != (p.kind == ST3D_LR_MULTISTEP))
        return st3d_fail(err, ST3D_ERR_MISMATCH, "%s: 'scheduler' is %s's state, the run's schedule is %s",
                         path, multistep ? "MultiStepLR" : "ReduceLROnPlateau",
                         multistep ? "plateau" : "multistep");
    if (get_int(path, sd, where, "last_epoch", 0, INT32_MAX, &last, err) != 0) return -1;
    st->base_lr = st->t->p.lr;
    if (multistep) {
        const pk_obj *ms = pk_dict_get(sd, "milestones");
        if (ms->type != PK_DICT)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: the scheduler's 'milestones' is not a Counter", path);
        p.n_milestones = 0;
        for (size_t i = 0; i < ms->u.dict.n; i++) {
            const pk_obj *e = ms->u.dict.keys[i], *c = ms->u.dict.vals[i];
            if (e->type != PK_INT || e->u.i < 1 || e->u.i > INT32_MAX || c->type != PK_INT || c->u.i < 0)
                return st3d_fail(err, ST3D_ERR_FORMAT,
                                 "%s: the scheduler's 'milestones' are not positive epochs with counts", path);
            for (int64_t j = 0; j < c->u.i; j++) {
                if (p.n_milestones == ST3D_MAX_MILESTONES)
                    return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: more than %d milestones", path,
                                     ST3D_MAX_MILESTONES);
                p.milestones[p.n_milestones++] = (int)e->u.i;
            }
        }
        if (get_num(path, sd, where, "gamma", &p.gamma, err) != 0 ||
            get_same(path, sd, where, "base_lrs", &st->base_lr, err) != 0)
            return -1;
    } else if (get_num(path, sd, where, "factor", &p.gamma, err) != 0 ||
               get_int(path, sd, where, "patience", 0, INT32_MAX, &patience, err) != 0 ||
               get_int(path, sd, where, "cooldown", 0, INT32_MAX, &cooldown, err) != 0 ||
               get_num(path, sd, where, "threshold", &p.threshold, err) != 0 ||
               get_num(path, sd, where, "eps", &p.eps, err) != 0 ||
               get_same(path, sd, where, "min_lrs", &p.min_lr, err) != 0 ||
               check_str(path, sd, where, "mode", "min", err) != 0 ||
               check_str(path, sd, where, "threshold_mode", "rel", err) != 0 ||
               get_num(path, sd, where, "best", &best, err) != 0 ||
               get_int(path, sd, where, "num_bad_epochs", 0, INT32_MAX, &bad, err) != 0 ||
               get_int(path, sd, where, "cooldown_counter", 0, INT32_MAX, &counter, err) != 0) {
        return -1;
    }
    p.patience = (int)patience;
    p.cooldown = (int)cooldown;
    if (!(p.gamma > 0.0 && p.gamma < 1.0))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: the scheduler's factor %g is not in (0, 1)", path,
                         p.gamma);
    if (st3d_scheduler_init(&st->sched, &p, st->lr, err) != 0) return -1;
    st->sched.last_epoch = last;
    st->sched.best = best;
    st->sched.num_bad_epochs = (int)bad;
    st->sched.cooldown_counter = (int)counter;
    return 0;
}

/* The checkpoint as the original's resume reads it (pth_consume_fn). */
static int consume(const char *path, const pk_obj *root, const char *format, const pth_loader *ld,
                   void *user, st3d_error *err) {
    pth_train_state *st = user;
    const st3d_model *m = st->t->m;
    const pk_obj *a, *opt, *sch, *groups, *state;
    char arch[64];
    (void)format;
    if (root->type != PK_DICT)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: holds a %s, not a checkpoint's dict", path,
                         pk_type_name(root));
    if (get_int(path, root, "the checkpoint", "epoch", 0, INT32_MAX, &st->epoch, err) != 0) return -1;
    /* main.py's resume_model: assert arch == checkpoint['arch'] */
    snprintf(arch, sizeof arch, "%s-%d", m->p.model, m->p.model_depth);
    if ((a = pk_dict_get(root, "arch")) && (a->type != PK_STR || strcmp(a->u.str.s, arch) != 0))
        return st3d_fail(err, ST3D_ERR_MISMATCH, "%s: a checkpoint of %.40s, the network is %s", path,
                         a->type == PK_STR ? a->u.str.s : "?", arch);
    opt = pk_dict_get(root, "optimizer");
    sch = pk_dict_get(root, "scheduler");
    if (!opt || !sch)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: no '%s' in the checkpoint: resuming needs the optimizer's and the "
                         "scheduler's state, as main.py's save_checkpoint writes them (weights "
                         "alone can only start a run)", path, opt ? "scheduler" : "optimizer");
    if (opt->type != PK_DICT)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: 'optimizer' is a %s, not a dict", path,
                         pk_type_name(opt));
    if (!(groups = need(path, opt, "the optimizer", "param_groups", err)) ||
        !(state = need(path, opt, "the optimizer", "state", err)) ||
        read_groups(path, groups, count_trained(st->t), st, err) != 0 ||
        read_state(path, state, ld, st, err) != 0)
        return -1;
    return read_scheduler(path, sch, st, err);
}

/* Mirrors main.py's resume_model and resume_train_utils. */
int pth_checkpoint_resume(st3d_trainer *t, const char *path, const st3d_tensor_map *map,
                          int64_t *epoch, st3d_error *err) {
    pth_train_state st;
    memset(&st, 0, sizeof st);
    st.t = t;
    st.momentum = st3d_calloc((size_t)t->m->n_params + 1, sizeof(float), err);
    if (!st.momentum) return -1;
    st3d_src s;
    int rc = st3d_src_open(&s, path, err);
    if (rc == 0) {
        rc = pth_read_with(&s, consume, &st, err);
        st3d_src_close(&s);
    }
    /* everything checked: the trainer changes from here */
    if (rc == 0) rc = st3d_model_load(t->m, map, path, err);
    if (rc == 0) {
        int64_t n, frozen = st3d_sgd_frozen_count(t->sgd);
        float *mom = st3d_sgd_momentum_data(t->sgd, &n);
        memcpy(mom + frozen, st.momentum + frozen, sizeof(float) * (size_t)(n - frozen));
        st.h.lr = (float)st.lr;
        sgd_set_params(t->sgd, &st.h);
        st3d_sgd_set_steps(t->sgd, st.has_state); /* counted again by the next epoch */
        t->sched = st.sched;
        t->p.lr = st.base_lr;
        t->iteration = 0;
        t->iteration_from_epoch = 1;
        *epoch = st.epoch;
    }
    free(st.momentum);
    return rc;
}

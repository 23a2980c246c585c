/*
 * trainer.c - the original main.py's train_epoch and val_epoch, over a
 * loader and an st3d_exec, with SGD and a learning-rate schedule.
 *
 * A training epoch (training.py's train_epoch): for each batch the loader
 * hands over, a training-mode forward and backward (batch statistics,
 * running statistics updated, mean cross-entropy), then one SGD step; loss
 * and top-1 accuracy are averaged over clips (AverageMeter weighted by batch
 * size).  A validation epoch (validation.py's val_epoch): eval-mode forward,
 * the same averages.  The scheduler steps once per epoch, after validation
 * (main.py: MultiStepLR.step(), or ReduceLROnPlateau.step(val_loss)).
 *
 * Execution state lives in the trainer's own st3d_exec: the plans for the
 * full batch, the last (smaller) batch and a batch shrunk by a skipped video
 * are each built once and then reused.
 *
 * Across ranks (p.dist): each rank's loader gives its share of the epoch,
 * ddp.c averages the gradients, and the epoch's means are those over every
 * rank's clips, as the original's train_epoch / val_epoch all-reduce their
 * sums under --distributed.  The per-step report stays this rank's.
 */
#include "io/pth.h"
#include "models/model.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

st3d_trainer_params st3d_trainer_default_params(void) {
    st3d_trainer_params p;
    memset(&p, 0, sizeof p);
    p.sgd = st3d_sgd_default_params();
    p.lr = 0.1;
    p.sched = st3d_scheduler_default_params();
    p.bucket_cap_mb = 25.0;
    return p;
}

st3d_trainer *st3d_trainer_new(st3d_model *m, const st3d_trainer_params *params, st3d_error *err) {
    st3d_trainer *t = st3d_calloc(1, sizeof *t, err);
    if (!t) return NULL;
    t->m = m;
    t->p = *params;
    if (!(params->lr > 0.0)) {
        st3d_fail(err, ST3D_ERR_INVALID, "learning rate %g is not positive", params->lr);
        goto fail;
    }
    if (st3d_scheduler_init(&t->sched, &params->sched, params->lr, err) != 0) goto fail;
    t->exec = st3d_exec_new(m, err);
    if (!t->exec) goto fail;
    st3d_sgd_params sp = params->sgd;
    sp.lr = (float)params->lr;
    t->sgd = st3d_sgd_new(m, &sp, err);
    if (!t->sgd) goto fail;
    if (st3d_sgd_freeze_before(t->sgd, m, params->ft_begin_module, err) != 0) goto fail;
    if (st3d_dist_size(params->dist) > 1) {
        if (!(t->ddp = ddp_new(m, params->dist, st3d_sgd_frozen_count(t->sgd), params->bucket_cap_mb,
                               !params->no_overlap, err)))
            goto fail;
        st3d_exec_set_grad_hook(t->exec, ddp_grad_ready, t->ddp);
        if (params->sync_bn) st3d_exec_set_sync_bn(t->exec, ddp_sum_f64, t->ddp);
    }
    return t;
fail:
    st3d_trainer_free(t);
    return NULL;
}

void st3d_trainer_free(st3d_trainer *t) {
    if (!t) return;
    st3d_sgd_free(t->sgd);
    st3d_exec_free(t->exec);
    ddp_free(t->ddp);
    st3d_aligned_free(t->clips);
    free(t->logits);
    free(t->labels);
    free(t);
}

double st3d_trainer_lr(const st3d_trainer *t) { return t->sched.lr; }
int64_t st3d_trainer_iteration(const st3d_trainer *t) { return t->iteration; }
st3d_exec *st3d_trainer_exec(st3d_trainer *t) { return t->exec; }

double st3d_trainer_end_epoch(st3d_trainer *t, double val_loss) {
    double lr = st3d_scheduler_step(&t->sched, val_loss);
    st3d_sgd_set_lr(t->sgd, (float)lr);
    return lr;
}

/* Sizes the batch buffers for the loader's full batch. */
static int ensure_buffers(st3d_trainer *t, const st3d_loader *loader, int64_t shape[5],
                          st3d_error *err) {
    st3d_loader_batch_shape(loader, shape);
    if (shape[1] != t->m->p.n_input_channels)
        return st3d_fail(err, ST3D_ERR_INVALID, "the loader gives %lld channels, the network expects %d",
                         (long long)shape[1], t->m->p.n_input_channels);
    int64_t per_clip = shape[1] * shape[2] * shape[3] * shape[4];
    if (shape[0] <= t->batch_cap && per_clip == t->clip_floats) return 0;
    st3d_aligned_free(t->clips);
    free(t->logits);
    free(t->labels);
    t->clips = st3d_aligned_alloc(sizeof(float) * (size_t)(shape[0] * per_clip), err);
    t->logits = st3d_malloc(sizeof(float) * (size_t)(shape[0] * t->m->p.n_classes), err);
    t->labels = st3d_malloc(sizeof(int64_t) * (size_t)shape[0], err);
    t->batch_cap = 0;
    if (!t->clips || !t->logits || !t->labels) return -1;
    t->batch_cap = shape[0];
    t->clip_floats = per_clip;
    return 0;
}

/* Mirrors utils.py's calculate_accuracy: top-1 hits / batch size.  Ties go
 * to the lowest index, as torch.topk on CPU. */
static int count_hits(const float *logits, const int64_t *labels, int n, int k) {
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[best]) best = j;
        hits += best == labels[i];
    }
    return hits;
}

/* Softmax cross-entropy of one clip's logits (for validation), in double. */
static double clip_xent(const float *z, int k, int64_t label) {
    double mx = z[0];
    for (int j = 1; j < k; j++) mx = fmax(mx, z[j]);
    double s = 0.0;
    for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
    return log(s) + mx - (double)z[label];
}

/* The loop both epochs share: batches from the loader, run_batch on each,
 * averages, and the callback. */
static int run_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch, int validation,
                     st3d_epoch_result *out, st3d_error *err) {
    int64_t shape[5];
    if (ensure_buffers(t, loader, shape, err) != 0) return -1;
    if (st3d_loader_start_epoch(loader, epoch - 1, err) != 0) return -1;
    st3d_loader_stats ls;
    st3d_loader_get_stats(loader, &ls);
    const int k = t->m->p.n_classes;
    /* validation across ranks evaluates rank 0's running statistics */
    if (validation && t->ddp && ddp_sync_buffers(t->ddp, err) != 0) return -1;
    st3d_step_report r;
    memset(&r, 0, sizeof r);
    r.validation = validation;
    r.epoch = epoch;
    r.n_batches = ls.n_batches;
    if (!validation && t->iteration_from_epoch) {
        /* resumed from a .pth: train.py counts iter = (epoch - 1) * len(data_loader) + (i + 1) */
        t->iteration = (epoch - 1) * ls.n_batches;
        t->iteration_from_epoch = 0;
        if (st3d_sgd_steps(t->sgd) > 0) st3d_sgd_set_steps(t->sgd, t->iteration > 0 ? t->iteration : 1);
    }
    double t0 = st3d_now(), loss_sum = 0.0, hit_sum = 0.0;
    for (;;) {
        double w0 = st3d_now();
        int n = 0;
        int got = st3d_loader_next(loader, t->clips, t->labels, NULL, &n, err);
        r.data_seconds += st3d_now() - w0;
        if (got < 0) return -1;
        if (got == 0) break;
        if (n == 0) {
            /* every clip of the batch was skipped: alone, nothing to do; across
             * ranks, this rank still takes part in the step's all-reduce with
             * zero gradients (the others' steps wait for it) */
            if (!t->ddp || validation) continue;
            if (t->p.sync_bn)
                return st3d_fail(err, ST3D_ERR_INVALID,
                                 "epoch %lld: every clip of a batch was unreadable, which --sync-bn "
                                 "cannot step over (its statistics need a clip from every rank)",
                                 (long long)epoch);
            memset(t->m->grads, 0, sizeof(float) * (size_t)t->m->n_params);
            if (ddp_begin_step(t->ddp, err) != 0 || ddp_finish_step(t->ddp, err) != 0 ||
                st3d_sgd_step(t->sgd, t->m, err) != 0)
                return -1;
            t->iteration++;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (t->labels[i] < 0 || t->labels[i] >= k)
                return st3d_fail(err, ST3D_ERR_INVALID,
                                 "label %lld of a clip is outside the network's %d classes",
                                 (long long)t->labels[i], k);
        shape[0] = n;
        double loss = 0.0;
        if (validation) {
            if (st3d_exec_forward(t->exec, t->clips, shape, t->logits, NULL, err) != 0) return -1;
            for (int i = 0; i < n; i++) loss += clip_xent(t->logits + (size_t)i * k, k, t->labels[i]);
            loss /= n;
        } else {
            float l = 0.0f;
            if ((t->ddp && ddp_begin_step(t->ddp, err) != 0) ||
                st3d_exec_train_step(t->exec, t->clips, shape, t->labels, &l, t->logits, err) != 0 ||
                (t->ddp && ddp_finish_step(t->ddp, err) != 0) || st3d_sgd_step(t->sgd, t->m, err) != 0 ||
                (t->ddp && t->p.check_replicas && ddp_check_replicas(t->ddp, t->iteration + 1, err) != 0))
                return -1;
            loss = l;
            t->iteration++;
        }
        int hits = count_hits(t->logits, t->labels, n, k);
        loss_sum += loss * n;
        hit_sum += hits;
        r.batch++;
        r.clips = n;
        r.loss = loss;
        r.acc = (double)hits / n;
        r.epoch_clips += n;
        r.mean_loss = loss_sum / (double)r.epoch_clips;
        r.mean_acc = hit_sum / (double)r.epoch_clips;
        r.iteration = t->iteration;
        r.lr = t->sched.lr;
        r.seconds = st3d_now() - t0;
        st3d_loader_get_stats(loader, &ls);
        r.skipped = ls.n_skipped;
        if (t->p.on_step && t->p.on_step(&r, t->p.user) != 0)
            return st3d_fail(err, ST3D_ERR_INVALID, "stopped by the step callback at epoch %lld batch %lld",
                             (long long)epoch, (long long)r.batch);
    }
    st3d_loader_get_stats(loader, &ls);
    /* across ranks: the sums over every rank's clips */
    double sums[3] = {loss_sum, hit_sum, (double)r.epoch_clips}, skipped = (double)ls.n_skipped;
    if (t->p.dist && (st3d_dist_allreduce_f64(t->p.dist, sums, 3, err) != 0 ||
                      st3d_dist_allreduce_f64(t->p.dist, &skipped, 1, err) != 0))
        return -1;
    loss_sum = sums[0], hit_sum = sums[1], r.epoch_clips = (int64_t)sums[2];
    ls.n_skipped = (int64_t)skipped;
    memset(out, 0, sizeof *out);
    out->epoch = epoch;
    out->loss = r.epoch_clips ? loss_sum / (double)r.epoch_clips : NAN;
    out->acc = r.epoch_clips ? hit_sum / (double)r.epoch_clips : NAN;
    out->lr = t->sched.lr;
    out->clips = r.epoch_clips;
    out->batches = r.batch;
    out->skipped = ls.n_skipped;
    out->seconds = st3d_now() - t0;
    out->data_seconds = r.data_seconds;
    if (r.epoch_clips == 0)
        return st3d_fail(err, ST3D_ERR_INVALID, "epoch %lld: no clip could be read (%lld videos skipped)",
                         (long long)epoch, (long long)ls.n_skipped);
    return 0;
}

int st3d_trainer_train_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch,
                             st3d_epoch_result *out, st3d_error *err) {
    return run_epoch(t, loader, epoch, 0, out, err);
}

int st3d_trainer_val_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch,
                           st3d_epoch_result *out, st3d_error *err) {
    return run_epoch(t, loader, epoch, 1, out, err);
}

/* ------------------------------------------------------------ checkpoints */

#define MOMENTUM_PREFIX "optimizer.momentum_buffer."

/* Metadata number formats: doubles round-trip exactly with %.17g. */
static int meta_num(st3d_tensor_map *map, const char *key, double v, st3d_error *err) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return st3d_tensor_map_set_meta(map, key, buf, err);
}

static int meta_get(const st3d_tensor_map *map, const char *key, const char *path, double *v,
                    st3d_error *err) {
    const char *s = st3d_tensor_map_get_meta(map, key);
    char *end;
    if (!s) return st3d_fail(err, ST3D_ERR_FORMAT, "%s: not an st3d training checkpoint (no '%s')", path, key);
    *v = strtod(s, &end);
    if (end == s || *end)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: metadata '%s' is not a number: '%s'", path, key, s);
    return 0;
}

/* A path ending in ".pth"? */
static int is_pth(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".pth") == 0;
}

int st3d_trainer_save(const st3d_trainer *t, const char *path, int64_t epoch,
                      const char *const *extra, st3d_error *err) {
    if (is_pth(path)) return pth_checkpoint_save(t, path, epoch, err);
    st3d_tensor_map *map = NULL;
    if (st3d_model_state_dict(t->m, &map, err) != 0) return -1;
    int rc = -1;
    char key[160], arch[64];
    int64_t n_mom;
    const float *mom = st3d_sgd_momentum_data(t->sgd, &n_mom);
    /* momentum buffers, one per parameter, keyed by the parameter */
    if (st3d_sgd_steps(t->sgd) > 0)
        for (int i = 0; i < t->m->n_entries; i++) {
            const entry *e = &t->m->entries[i];
            if (e->kind != ENTRY_PARAM || e->offset < st3d_sgd_frozen_count(t->sgd)) continue;
            snprintf(key, sizeof key, MOMENTUM_PREFIX "%s", e->name);
            if (st3d_tensor_map_add(map, key, ST3D_F32, e->ndim, e->shape, mom + e->offset, err) != 0)
                goto out;
        }
    snprintf(arch, sizeof arch, "%s-%d", t->m->p.model, t->m->p.model_depth);
    const st3d_scheduler *s = &t->sched;
    if (st3d_model_params_to_meta(&t->m->p, map, err) != 0 ||
        st3d_tensor_map_set_meta(map, "st3d.checkpoint", "train", err) != 0 ||
        st3d_tensor_map_set_meta(map, "arch", arch, err) != 0 ||
        meta_num(map, "epoch", (double)epoch, err) != 0 ||
        meta_num(map, "optimizer.steps", (double)st3d_sgd_steps(t->sgd), err) != 0 ||
        meta_num(map, "train.iteration", (double)t->iteration, err) != 0 ||
        meta_num(map, "scheduler.lr", s->lr, err) != 0 ||
        meta_num(map, "scheduler.last_epoch", (double)s->last_epoch, err) != 0 ||
        meta_num(map, "scheduler.best", s->best, err) != 0 ||
        meta_num(map, "scheduler.num_bad_epochs", s->num_bad_epochs, err) != 0 ||
        meta_num(map, "scheduler.cooldown_counter", s->cooldown_counter, err) != 0)
        goto out;
    for (int i = 0; extra && extra[i] && extra[i + 1]; i += 2)
        if (st3d_tensor_map_set_meta(map, extra[i], extra[i + 1], err) != 0) goto out;
    rc = st3d_safetensors_write(path, map, err);
out:
    st3d_tensor_map_free(map);
    return rc;
}

int st3d_trainer_resume(st3d_trainer *t, const char *path, int64_t *epoch, st3d_error *err) {
    st3d_tensor_map *map = NULL;
    if (st3d_weights_read(path, &map, err) != 0) return -1;
    int rc = -1;
    st3d_weights_kind kind = st3d_weights_sniff_path(path);
    if (kind == ST3D_WEIGHTS_PTH_ZIP || kind == ST3D_WEIGHTS_PTH_LEGACY) {
        rc = pth_checkpoint_resume(t, path, map, epoch, err);
        goto out;
    }
    double ep = 0, steps = 0, iter = 0, lr = 0, last = 0, best = 0, bad = 0, cool = 0;
    if (meta_get(map, "epoch", path, &ep, err) || meta_get(map, "optimizer.steps", path, &steps, err) ||
        meta_get(map, "train.iteration", path, &iter, err) || meta_get(map, "scheduler.lr", path, &lr, err) ||
        meta_get(map, "scheduler.last_epoch", path, &last, err) ||
        meta_get(map, "scheduler.best", path, &best, err) ||
        meta_get(map, "scheduler.num_bad_epochs", path, &bad, err) ||
        meta_get(map, "scheduler.cooldown_counter", path, &cool, err))
        goto out;
    /* the state_dict (st3d_model_load passes over the optimizer's tensors) */
    if (st3d_model_load(t->m, map, path, err) != 0) goto out;
    int64_t n_mom;
    float *mom = st3d_sgd_momentum_data(t->sgd, &n_mom);
    char key[160];
    if (steps > 0)
        for (int i = 0; i < t->m->n_entries; i++) {
            const entry *e = &t->m->entries[i];
            if (e->kind != ENTRY_PARAM || e->offset < st3d_sgd_frozen_count(t->sgd)) continue;
            snprintf(key, sizeof key, MOMENTUM_PREFIX "%s", e->name);
            const st3d_tensor_info *ti = st3d_tensor_map_find(map, key);
            if (!ti || ti->dtype != ST3D_F32 || ti->nbytes != sizeof(float) * (size_t)e->numel) {
                st3d_fail(err, ST3D_ERR_FORMAT, "%s: momentum buffer '%s' is missing or has the wrong size",
                          path, key);
                goto out;
            }
            memcpy(mom + e->offset, ti->data, ti->nbytes);
        }
    st3d_sgd_set_steps(t->sgd, (int64_t)steps);
    t->iteration = (int64_t)iter;
    t->sched.lr = lr;
    t->sched.last_epoch = (int64_t)last;
    t->sched.best = best;
    t->sched.num_bad_epochs = (int)bad;
    t->sched.cooldown_counter = (int)cool;
    st3d_sgd_set_lr(t->sgd, (float)lr);
    *epoch = (int64_t)ep;
    rc = 0;
out:
    st3d_tensor_map_free(map);
    return rc;
}

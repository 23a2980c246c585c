/*
 * train.h - inside the training library: the SGD update over the model's
 * flat parameter buffers, the trainer's state, and the checkpoints in
 * PyTorch's format (checkpoint_pth.c).  Not installed.
 */
#ifndef ST3D_TRAIN_H
#define ST3D_TRAIN_H

#include "core/core.h"

/* DistributedDataParallel's gradient averaging (ddp.c). */
typedef struct ddp ddp;
/* Buckets over the parameters from offset `frozen` on (frozen ones are not
 * trained); overlap 0: all buckets go out after the backward. */
ddp *ddp_new(st3d_model *m, st3d_dist *dist, int64_t frozen, double bucket_cap_mb, int overlap,
             st3d_error *err);
void ddp_free(ddp *d);
/* Before a training step: the parameters from rank 0 on the first step,
 * the buffers (running statistics) from rank 0 on every one. */
int ddp_begin_step(ddp *d, st3d_error *err);
/* The exec's grad-ready hook (user: the ddp). */
void ddp_grad_ready(int64_t first, int64_t count, void *user);
/* After the backward: every bucket summed; the gradients are then the mean
 * over ranks. */
int ddp_finish_step(ddp *d, st3d_error *err);
/* Rank 0's running statistics (and counters) to every rank. */
int ddp_sync_buffers(ddp *d, st3d_error *err);
/* Fails unless every rank's learnable parameters are bit for bit rank 0's
 * (--check-replicas, after each step).  Running statistics may differ
 * until the next step's broadcast, as under DDP. */
int ddp_check_replicas(ddp *d, int64_t step, st3d_error *err);
/* SyncBatchNorm's sums across ranks (user: the ddp). */
int ddp_sum_f64(double *buf, int64_t n, void *user);

struct st3d_trainer {
    st3d_model *m;            /* the network (borrowed) */
    st3d_exec *exec;          /* plans and backend (owned) */
    st3d_sgd *sgd;            /* optimizer state (owned) */
    st3d_scheduler sched;     /* learning-rate schedule state */
    st3d_trainer_params p;    /* settings; p.lr is the schedule's initial rate
                                 (MultiStepLR's base_lrs), also after a resume */
    int64_t iteration;        /* training steps so far (the original's `iter`) */
    int iteration_from_epoch; /* 1 after resuming from a .pth, which does not hold
                                 it: the next training epoch sets it as the
                                 original counts `iter`, (epoch - 1) * batches */
    float *clips;             /* one batch of clips, loader's full-batch shape */
    float *logits;            /* batch x n_classes */
    int64_t *labels;          /* batch */
    int64_t batch_cap;        /* clips the buffers hold */
    int64_t clip_floats;      /* floats per clip */
    ddp *ddp;                 /* gradient averaging across ranks (p.dist with more than
                                 one rank), else NULL */
};

/* torch.optim.SGD for one flat parameter array p with gradient g and
 * momentum buffer buf (all n floats):
 *   d = g + weight_decay * p
 *   buf = first_step ? d : momentum * buf + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf        (when momentum != 0)
 *   p -= lr * d                                                          */
void sgd_update(float *p, const float *g, float *buf, int64_t n, const st3d_sgd_params *h,
                int first_step);

/* The optimizer's hyper-parameters, for checkpoints (optimizer.c). */
const st3d_sgd_params *sgd_params(const st3d_sgd *o);
void sgd_set_params(st3d_sgd *o, const st3d_sgd_params *h);

/* A training checkpoint as the original main.py's save_checkpoint writes it
 * with torch.save (checkpoint_pth.c): epoch, arch, state_dict, optimizer
 * and scheduler state dicts. */
int pth_checkpoint_save(const st3d_trainer *t, const char *path, int64_t epoch, st3d_error *err);
/* Resumes from such a checkpoint (of st3d train or of the original): map is
 * its state dict (st3d_weights_read); the optimizer's momentum buffers and
 * hyper-parameters, the scheduler's state and *epoch are read from path. */
int pth_checkpoint_resume(st3d_trainer *t, const char *path, const st3d_tensor_map *map,
                          int64_t *epoch, st3d_error *err);

#endif /* ST3D_TRAIN_H */

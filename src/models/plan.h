/*
 * plan.h - executable plans: a network compiled for one input shape.
 *
 * An inference plan fuses what can be fused (batch norm folded into the
 * preceding convolution's weights, ReLU and the residual sum as post-ops)
 * and binds activations to a few reusable slots, so peak memory follows the
 * widest layer, not the depth.  A training plan keeps every activation and
 * gradient, allocated once, and has a backward program.
 *
 * Programs: `prepare` (weights into kernel layouts, BN folding; run when the
 * parameters changed), `fwd`, and for training `bwd`.
 */
#ifndef ST3D_PLAN_H
#define ST3D_PLAN_H

#include "model.h"

/* What an exec lends its training plans at run time (exec.c): the address
 * stays fixed, so plans keep a pointer to it. */
typedef struct exec_hooks {
    st3d_grad_ready_fn grad_ready; /* told when a parameter's gradient is complete, or NULL */
    void *grad_user;               /* handed to grad_ready */
    bn_sync sync;                  /* SyncBatchNorm's sums (sync.sum NULL: local statistics) */
} exec_hooks;

typedef struct plan {
    int training;        /* 1: training plan */
    int64_t shape[5];    /* N, C, D, H, W it was built for */
    resources res;       /* owns every buffer, memory object and primitive */
    program prepare;     /* parameter-dependent setup */
    program head;        /* inference: the first layers for one clip, run once per clip
                            (empty when the whole batch runs at once; plan_infer.c) */
    int64_t head_runs;   /* runs of `head`: the batch's clips, or 1 when it is empty */
    int64_t head_index;  /* the clip `head` is running (read by its last step) */
    program fwd;         /* forward (after the head, if any) */
    program bwd;         /* backward (training) */
    tensor input;        /* N x C x D x H x W plain (1 x ... with a head) */
    tensor logits;       /* N x n_classes plain */
    tensor features;     /* N x feature_dim plain */
    tensor dlogits;      /* training: d loss / d logits, plain */
    uint64_t version;    /* model version the prepare program last ran for */
    int prepared;        /* prepare ran at least once */
    size_t act_bytes;    /* bytes of activation slots (inference) */
    int input_borrowed;  /* inference: only convolutions read the input, so the caller's
                            buffer is bound to `input` at each run instead of copied */
    int winograd;        /* inference: stride-1 temporal convolutions may run as temporal
                            Winograd (conv_wino.c) where it pays */
    int n_winograd;      /* convolutions built that way */
    uint8_t *prep_only;  /* inference, per node: 1 when a conv's weights in the model are
                            read by prepare only (its kernel reads a folded or reordered
                            copy); NULL for training plans */
} plan;

/* Plans are built on engine eng (an st3d_exec's) and bound to m's parameter,
 * gradient and statistic buffers. */
plan *plan_build_infer(st3d_model *m, dnnl_engine_t eng, const int64_t shape[5], int winograd,
                       st3d_error *err);
plan *plan_build_train(st3d_model *m, dnnl_engine_t eng, const int64_t shape[5],
                       exec_hooks *hooks, st3d_error *err);
void plan_free(plan *p);

/* Shared by both builders: the model's batch-norm parameter pointers. */
bn_params plan_bn_params(st3d_model *m, const node *n);

#endif /* ST3D_PLAN_H */

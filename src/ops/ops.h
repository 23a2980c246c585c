/*
 * ops.h - the engine's operators, built on oneDNN.
 *
 * An operator does not run directly: a *builder* turns it into one or more
 * *steps* appended to a *program* (an array executed in order).  A step is
 * either a oneDNN primitive with its argument list, or a small C kernel.
 * Building happens once per input shape; running a program is then just a
 * loop over its steps, with no allocation and no layout decisions.
 *
 * Tensors between steps keep the memory layout oneDNN's kernels prefer
 * (e.g. nCdhw16c on AVX-512): a convolution picks its layouts ("any"), and
 * everything downstream adopts them; a reorder step is inserted only where a
 * consumer insists on another layout.
 *
 * Every buffer, memory object and primitive created while building is owned
 * by the builder's `resources`, freed in one call.
 */
#ifndef ST3D_OPS_H
#define ST3D_OPS_H

#include "core/core.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>

/* ------------------------------------------------------------ programs */

struct step;
typedef void (*step_fn)(const struct step *s);

#define STEP_MAX_ARGS 12

typedef struct step {
    dnnl_primitive_t prim;               /* oneDNN primitive, or NULL for a C step */
    int nargs;                           /* used entries of args */
    dnnl_exec_arg_t args[STEP_MAX_ARGS]; /* primitive arguments */
    step_fn fn;                          /* C kernel when prim is NULL */
    void *ctx;                           /* the C kernel's data (owned by resources) */
    const char *what;                    /* short label for profiling / errors */
} step;

typedef struct program {
    step *steps; /* in execution order */
    int n, cap;  /* used and allocated steps */
} program;

/* ------------------------------------------------------------ resources */

/* Everything a built plan owns.  Freed by resources_free. */
typedef struct resources {
    void **buffers;             /* aligned allocations */
    int n_buffers, cap_buffers;
    dnnl_memory_t *mems;        /* memory objects */
    int n_mems, cap_mems;
    dnnl_primitive_t *prims;    /* primitives */
    int n_prims, cap_prims;
    void **blobs;               /* step contexts (plain malloc) */
    int n_blobs, cap_blobs;
    dnnl_memory_t *scratch_users; /* memory objects pointing at the shared scratchpad */
    int n_scratch_users, cap_scratch_users;
    size_t scratch_bytes;       /* largest scratchpad any primitive asked for */
    void *scratch;              /* the shared scratchpad, allocated by resources_finish */
    struct transient_use {      /* a memory object inside the transient area: */
        dnnl_memory_t mem;      /*   the object */
        size_t offset;          /*   its byte offset in the area */
    } *transient_users;
    int n_transient_users, cap_transient_users;
    size_t transient_bytes;     /* the transient area's size: the largest operator's need */
    void *transient;            /* the area (allocated by resources_finish), shared by
                                   operators' own temporaries, e.g. conv_wino.c's transformed
                                   frames: each operator's steps use it only while they run */
} resources;

void resources_free(resources *r);

/* ------------------------------------------------------------ tensors */

/* A tensor as the engine sees it: a oneDNN descriptor (dims and layout) and a
 * memory object bound to a buffer. */
typedef struct tensor {
    dnnl_memory_desc_t md; /* dims + layout */
    dnnl_memory_t mem;     /* bound to data */
    float *data;           /* the buffer (not owned: resources own it) */
} tensor;

/* ------------------------------------------------------------ builder */

typedef struct builder builder;
/* Creates an activation tensor (an operator's output) in layout md.  Training
 * gives each its own buffer; inference binds it to a reusable slot, so its
 * buffer may be attached only when the build finishes: C steps must read
 * addresses through tensor_ptr(), never t->data. */
typedef int (*new_act_fn)(builder *b, const dnnl_memory_desc_t *md, tensor *out);

struct builder {
    dnnl_engine_t eng;  /* CPU engine */
    resources *res;     /* owner of everything built */
    st3d_error *err;    /* where build errors go */
    new_act_fn new_act; /* activation allocator (bld_tensor when NULL) */
    void *act_ctx;      /* the allocator's state */
};

/* Creates an activation through b->new_act. */
int bld_act(builder *b, const dnnl_memory_desc_t *md, tensor *out);
/* The buffer behind t at run time. */
float *tensor_ptr(const tensor *t);

/* Allocation helpers (recorded in b->res; NULL + err on failure). */
void *bld_alloc(builder *b, size_t bytes);
/* Not zeroed and not touched: for a buffer written in full before any read
 * (its pages become resident only when written). */
void *bld_alloc_scratch(builder *b, size_t bytes);
void *bld_blob(builder *b, size_t bytes); /* zeroed, for step contexts */
dnnl_memory_t bld_mem(builder *b, const dnnl_memory_desc_t *md, void *data);
/* A new tensor with its own zeroed buffer in layout md. */
int bld_tensor(builder *b, const dnnl_memory_desc_t *md, tensor *out);
/* A tensor viewing an existing buffer. */
int bld_view(builder *b, const dnnl_memory_desc_t *md, float *data, tensor *out);
/* Creates the primitive for pd (recorded in res), and, if pd uses a
 * scratchpad, appends the SCRATCHPAD argument to s. pd is destroyed. */
int bld_primitive(builder *b, dnnl_primitive_desc_t pd, step *s);
/* A primitive_attr in user scratchpad mode (caller destroys). */
dnnl_primitive_attr_t bld_attr(builder *b);
/* A tensor inside the plan's transient area, at byte `offset`: valid only
 * within one operator's consecutive steps (the next operator's temporaries
 * take the same bytes).  The area is allocated, untouched, by
 * resources_finish. */
int bld_transient(builder *b, const dnnl_memory_desc_t *md, size_t offset, tensor *out);
/* Allocates the shared scratchpad and the transient area and points every
 * user at them. */
int resources_finish(builder *b);
/* 1 when pd's kernel is oneDNN's slow reference implementation. */
int pd_is_reference(dnnl_primitive_desc_t pd);

/* Checks a oneDNN status; on failure fills b->err naming `what`. */
int bld_check(builder *b, dnnl_status_t st, const char *what);

/* Memory descriptor helpers. */
void md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);   /* ncdhw / nc / x / ... */
void md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);     /* format "any" */
int md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b);
size_t md_bytes(const dnnl_memory_desc_t *md);
int64_t md_elems(const dnnl_memory_desc_t *md);

/* ------------------------------------------------------------ programs */

int prog_push(program *p, const step *s, st3d_error *err);
void prog_free(program *p);
/* Runs every step; returns 0 or -1 with err naming the failing step. */
int prog_run(const program *p, dnnl_stream_t stream, st3d_error *err);

/* Appends a reorder src -> dst (layouts may differ, dims equal). */
int op_reorder(builder *b, program *p, const tensor *src, const tensor *dst);
/* Returns src itself when it already has layout want, else a new tensor in
 * layout want fed by a reorder appended to p. */
int op_to_layout(builder *b, program *p, const tensor *src, const dnnl_memory_desc_t *want,
                 tensor *out);
/* x.view(N, -1): src in any layout -> N x (C*D*H*W) plain (a reorder into a
 * plain copy, viewed as 2-d).  op_unflatten sends a gradient back:
 * diff_flat (a real plain buffer) -> diff_src in its own layout. */
int op_flatten(builder *b, program *p, const tensor *src, tensor *flat);
int op_unflatten(builder *b, program *p, const tensor *diff_flat, const tensor *diff_src);
/* Appends a C step that hands the pages of [p, p + bytes) back to the
 * kernel (st3d_drop_pages): for a copy read by earlier steps only. */
int op_drop_pages(builder *b, program *prog, const void *p, size_t bytes, const char *what);
/* Appends a C step that zero-fills t. */
int op_zero(builder *b, program *p, const tensor *t);
/* Appends dst = a + b (same layout) via oneDNN sum; dst may alias a. */
int op_add(builder *b, program *p, const tensor *a, const tensor *bb, const tensor *dst);
/* Appends dst = relu(a + b) (oneDNN binary add with a ReLU post-op). */
int op_add_relu(builder *b, program *p, const tensor *a, const tensor *bb, const tensor *dst);

/* ------------------------------------------------------------ conv3d */

/* Geometry of a 3D convolution.  Shapes:
 *   src     N x IC x D x H x W
 *   weights OC x IC/groups x KD x KH x KW   (PyTorch's layout, in params)
 *   bias    OC
 *   dst     N x OC x OD x OH x OW,  O* = (I* + 2 pad - K) / stride + 1      */
typedef struct conv_geom {
    int ic, oc;       /* channels in and out */
    int groups;       /* 1, or channel groups (ResNeXt cardinality) */
    int k[3];         /* kernel D, H, W */
    int stride[3];    /* stride D, H, W */
    int pad[3];       /* symmetric zero padding D, H, W */
} conv_geom;

/* Post-ops fused into a convolution at inference. */
typedef struct conv_fuse {
    int sum;   /* dst += conv(...) (dst must hold the residual beforehand) */
    int relu;  /* then ReLU */
} conv_fuse;

typedef struct conv_op {
    conv_geom g;               /* geometry */
    tensor wt;                 /* weights in the kernel's layout */
    tensor bias;               /* plain OC, or data NULL */
    tensor src_k;              /* src as the kernel reads it (may be a reordered copy) */
    tensor dst;                /* output */
    /* training only */
    dnnl_primitive_desc_t fwd_hint; /* kept for building backward (owned until conv_free_hint) */
} conv_op;

/* Builds the forward convolution of src (any layout) with user weights w_user
 * (PyTorch layout, OC*IC/g*K floats; reordered into the kernel's layout by a
 * step appended to `prepare`, run whenever the parameters change) and an
 * optional bias (plain OC).  With fuse->sum the output is written into
 * `residual` (which holds the shortcut beforehand), else into a new
 * activation.  `training` selects forward_training and keeps the hint. */
int conv_build_forward(builder *b, program *prepare, program *fwd, const conv_geom *g,
                       const tensor *src, float *w_user, float *bias, const conv_fuse *fuse,
                       const tensor *residual, int training, conv_op *op);
/* Builds the backward of a training convolution: diff_src (if not NULL) from
 * diff_dst, and the weight (and bias) gradients into plain grad buffers. */
int conv_build_backward(builder *b, program *bwd, conv_op *op, const tensor *diff_dst,
                        const tensor *diff_src, float *grad_w, float *grad_bias);

/* The same forward as temporal Winograd (conv_wino.c), for inference plans:
 * returns 1 when built, 0 when it would not pay or cannot be built (nothing
 * was appended: use conv_build_forward), -1 on error. */
int conv_wino_build(builder *b, program *prepare, program *fwd, const conv_geom *g,
                    const tensor *src, float *w_user, float *bias, const conv_fuse *fuse,
                    const tensor *residual, conv_op *op);

/* The weight gradient of an ungrouped, bias-free training convolution as one
 * im2col + matmul over the whole batch (conv_wgrad.c), for shapes where
 * oneDNN has no optimized backward-weights kernel.  diff_dst must have a
 * real buffer. */
int conv_wgrad_gemm_build(builder *b, program *bwd, const conv_op *op, const tensor *diff_dst,
                          float *grad_w);

/* ------------------------------------------------------------ batch norm */

/* Batch norm 3d over channels of an N x C x D x H x W tensor, as
 * torch.nn.BatchNorm3d: y = (x - mean) / sqrt(var + eps) * weight + bias.
 * Training uses batch statistics and updates the running ones:
 *   running = (1 - momentum) * running + momentum * batch  (unbiased var). */
/* Sums across processes for SyncBatchNorm: sum(buf, n, user) adds every
 * rank's n doubles in place.  Steps cannot return errors, so a failed sum
 * sets `failed`, which the caller checks after the program ran. */
typedef struct bn_sync {
    int (*sum)(double *buf, int64_t n, void *user);
    void *user;
    int failed;
} bn_sync;

typedef struct bn_params {
    float *weight, *bias;             /* C each (gamma, beta) */
    float *running_mean, *running_var;/* C each */
    int64_t *num_batches_tracked;     /* incremented per training step */
    float *grad_weight, *grad_bias;   /* C each, training only */
    float eps, momentum;              /* 1e-5, 0.1 */
    bn_sync *sync;                    /* training: statistics over all processes'
                                         clips (SyncBatchNorm); NULL: this batch's */
} bn_params;

typedef struct bn_op {
    tensor src, dst;      /* N x C x D x H x W, same layout */
    tensor mean, var;     /* C each: batch statistics (training) */
    tensor scale, shift;  /* C each: views of weight and bias */
    dnnl_primitive_desc_t fwd_hint; /* training: for the backward */
    bn_params p;          /* where the parameters live */
    int64_t count;        /* N*D*H*W: values per channel */
    int relu;             /* a ReLU is fused after the normalization */
    tensor ws;            /* training with fused ReLU: the ReLU mask for the backward */
    tensor lmean, lvar;   /* sync: this process's own batch statistics */
    tensor cscale, cshift;/* sync backward: per-channel factors of the correction
                             that turns local gradient means into global ones */
    tensor corr;          /* sync backward: that correction, src's layout */
    int64_t count_all;    /* sync: values per channel over all processes */
} bn_op;

/* relu != 0 fuses a ReLU after the normalization (in training too: the
 * backward then takes the gradient with respect to the ReLU's output). */
int bn_build_forward(builder *b, program *fwd, const tensor *src, const bn_params *p,
                     int training, int relu, bn_op *op);
int bn_build_backward(builder *b, program *bwd, bn_op *op, const tensor *diff_dst,
                      const tensor *diff_src);

/* ------------------------------------------------------------ relu */

typedef struct relu_op { tensor src, dst; } relu_op;
/* dst may be the same buffer as src (in place). */
int relu_build_forward(builder *b, program *fwd, const tensor *src, int in_place, relu_op *op);
/* Uses dst for the backward (valid in place). */
int relu_build_backward(builder *b, program *bwd, const relu_op *op, const tensor *diff_dst,
                        const tensor *diff_src);

/* ------------------------------------------------------------ pooling */

/* Max or average pooling over D, H, W.  Average pooling counts padding
 * like PyTorch's default count_include_pad=True.  Output size:
 * O = (I + 2 pad - K) / stride + 1 (floor), as PyTorch with ceil_mode off. */
typedef struct pool_geom {
    int max;        /* 1: max pooling, 0: average */
    int k[3];       /* kernel */
    int stride[3];  /* stride */
    int pad[3];     /* padding */
} pool_geom;

typedef struct pool_op {
    pool_geom g;     /* geometry */
    tensor src, dst; /* N x C x D x H x W, same layout */
    tensor ws;       /* max pooling workspace (training) */
    dnnl_primitive_desc_t fwd_hint; /* training */
} pool_op;

int pool_build_forward(builder *b, program *fwd, const tensor *src, const pool_geom *g,
                       int training, pool_op *op);
int pool_build_backward(builder *b, program *bwd, pool_op *op, const tensor *diff_dst,
                        const tensor *diff_src);

/* Global average pooling N x C x D x H x W -> N x C (plain), as
 * nn.AdaptiveAvgPool3d((1, 1, 1)) followed by flatten. */
typedef struct gap_op {
    pool_op pool;  /* averaging over the whole volume, output 1x1x1 */
    tensor flat;   /* N x C plain */
} gap_op;
int gap_build_forward(builder *b, program *fwd, const tensor *src, int training, gap_op *op);
int gap_build_backward(builder *b, program *bwd, gap_op *op, const tensor *diff_flat,
                       const tensor *diff_src);

/* ------------------------------------------------------------ linear */

/* y = x W^T + b as nn.Linear.  x: N x IN (plain), W: OUT x IN, b: OUT. */
typedef struct linear_op {
    tensor src, dst;           /* N x IN, N x OUT */
    tensor w, b;               /* views of the parameters */
    dnnl_primitive_desc_t fwd_hint;
} linear_op;
int linear_build_forward(builder *b, program *fwd, const tensor *src, int out_features,
                         float *w, float *bias, int training, linear_op *op);
int linear_build_backward(builder *b, program *bwd, linear_op *op, const tensor *diff_dst,
                          const tensor *diff_src, float *grad_w, float *grad_b);

/* ------------------------------------------------------------ shortcut A */

/* The zero-padded strided identity (shortcut type A of He et al.), mirroring
 * _downsample_basic_block of the original ResNet code: avg_pool3d with
 * kernel 1 and `stride`, then zero channels appended up to out_channels.
 * As in the original (which builds it from `out.data`), no gradient flows
 * back through this path, so it has no backward. */
typedef struct shortcut_a_op {
    pool_op sub;   /* the strided subsampling */
    tensor dst;    /* N x out_channels x ... */
} shortcut_a_op;
int shortcut_a_build_forward(builder *b, program *fwd, const tensor *src, int out_channels,
                             int stride, shortcut_a_op *op);

/* ------------------------------------------------------------ concat */

/* Channel concatenation of n <= 8 tensors (torch.cat(dim=1)) into a new
 * activation; the backward hands each input (whose diff_srcs[i].mem is not
 * NULL) its slice of the gradient.  diff_dst must have a real buffer. */
int concat_build_forward(builder *b, program *fwd, const tensor *srcs, int n, tensor *dst);
int concat_build_backward(builder *b, program *bwd, const tensor *srcs, int n,
                          const tensor *diff_dst, const tensor *diff_srcs);

/* ------------------------------------------------------------ dropout */

/* Inverted dropout as nn.Dropout in training: zero with probability p,
 * scale the rest by 1/(1-p).  The mask is drawn from seed and a call count. */
typedef struct dropout_op {
    tensor src, dst;     /* same layout */
    uint8_t *mask;       /* 1 = kept, one per element */
    float p;             /* drop probability */
    uint64_t seed;       /* base seed */
    uint64_t calls;      /* forward runs so far (varies the mask) */
    const void *bwd_io[2]; /* backward's diff_dst and diff_src tensors */
} dropout_op;
int dropout_build_forward(builder *b, program *fwd, const tensor *src, float p, uint64_t seed,
                          dropout_op **op);
int dropout_build_backward(builder *b, program *bwd, dropout_op *op, const tensor *diff_dst,
                           const tensor *diff_src);

/* ------------------------------------------------------------ loss */

/* Softmax cross-entropy averaged over the batch (nn.CrossEntropyLoss):
 *   logits N x K, labels N  ->  loss, and d loss / d logits. */
int softmax_xent(const float *logits, const int64_t *labels, int n, int k, float *loss,
                 float *grad, st3d_error *err);

#endif /* ST3D_OPS_H */

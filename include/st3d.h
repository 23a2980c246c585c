/*
 * st3d.h - the public header of libst3d (the one to include: it includes
 * st3d/data.h and st3d/train.h, the video-and-data and training halves).
 *
 * st3d runs spatio-temporal 3D CNNs (3D ResNet and its relatives, after
 * Hara et al., CVPR 2018) on video clips: inference, training and
 * fine-tuning, on the CPU through oneDNN.
 *
 * Conventions (after ggml and whisper.cpp):
 *   - types are opaque; every object is created by st3d_*_new / *_create and
 *     released by the matching *_free, which owns all memory behind it;
 *   - parameters are plain structs obtained by value from *_default_params();
 *   - every fallible call returns 0 on success and -1 on failure, and fills
 *     the caller's st3d_error with a code and a one-line reason.  The library
 *     never prints and never exits.
 *
 * Tensors crossing this API are float32, contiguous, in PyTorch's NCDHW
 * order (batch, channels, frames, height, width).
 */
#ifndef ST3D_H
#define ST3D_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every function declared in this header is exported from the shared
 * library; everything else in libst3d is built hidden (-fvisibility=hidden),
 * so this header is the whole ABI.  The push/pop pair gives these
 * declarations, and so their definitions, default visibility. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ----------------------------------------------------------------- version */

/* The library's version, "MAJOR.MINOR.PATCH" (CMakeLists.txt's project()
 * VERSION, the one place it is written). */
const char *st3d_version(void);

/* ------------------------------------------------------------------ errors */

typedef enum st3d_status {
    ST3D_OK = 0,
    ST3D_ERR_INVALID = 1,     /* a bad argument or option */
    ST3D_ERR_IO = 2,          /* a file could not be opened, read or written */
    ST3D_ERR_FORMAT = 3,      /* a file is malformed or not what it claims */
    ST3D_ERR_MISMATCH = 4,    /* keys or shapes do not match the network */
    ST3D_ERR_NOMEM = 5,       /* an allocation failed or a size is absurd */
    ST3D_ERR_BACKEND = 6,     /* oneDNN (or another library) refused */
    ST3D_ERR_UNSUPPORTED = 7, /* valid but not implemented here */
} st3d_status;

typedef struct st3d_error {
    st3d_status code; /* ST3D_OK when nothing went wrong */
    char msg[768];    /* one line, no trailing newline, names the culprit */
} st3d_error;

/* Name of a status code, e.g. "format error". */
const char *st3d_status_name(st3d_status code);

/* ----------------------------------------------------------------- threads */

/* Sets the number of compute threads used by oneDNN and by st3d's own
 * kernels (both run on one OpenMP pool).  n <= 0 means all cores. */
void st3d_set_threads(int n);
int st3d_get_threads(void);
/* CPUs this process may run on (its affinity mask, as taskset sets it). */
int st3d_get_cpus(void);

/* ------------------------------------------------------------ tensor maps */

/* A tensor map is an ordered list of named tensors plus string metadata: what
 * a weights file (safetensors, .pth) holds, or what a network exports as its
 * state_dict.  Names are PyTorch's state_dict keys. */

typedef enum st3d_dtype {
    ST3D_F32 = 0,
    ST3D_F16 = 1,
    ST3D_BF16 = 2,
    ST3D_F64 = 3,
    ST3D_I64 = 4,
    ST3D_I32 = 5,
    ST3D_U8 = 6,
    ST3D_I8 = 7,
    ST3D_BOOL = 8,
} st3d_dtype;

#define ST3D_MAX_DIMS 8

typedef struct st3d_tensor_info {
    const char *name;              /* state_dict key, owned by the map */
    st3d_dtype dtype;              /* element type of data */
    int ndim;                      /* 0 (a scalar) .. ST3D_MAX_DIMS */
    int64_t shape[ST3D_MAX_DIMS];  /* sizes, outermost first */
    const void *data;              /* contiguous row-major elements */
    size_t nbytes;                 /* bytes at data */
} st3d_tensor_info;

typedef struct st3d_tensor_map st3d_tensor_map;

st3d_tensor_map *st3d_tensor_map_new(void);
void st3d_tensor_map_free(st3d_tensor_map *map);

/* Appends a copy of data (contiguous, row-major).  A name already present is
 * an error. */
int st3d_tensor_map_add(st3d_tensor_map *map, const char *name, st3d_dtype dtype,
                        int ndim, const int64_t *shape, const void *data,
                        st3d_error *err);
size_t st3d_tensor_map_count(const st3d_tensor_map *map);
/* i-th tensor in insertion order; NULL when i is out of range. */
const st3d_tensor_info *st3d_tensor_map_at(const st3d_tensor_map *map, size_t i);
/* Tensor by name; NULL when absent. */
const st3d_tensor_info *st3d_tensor_map_find(const st3d_tensor_map *map,
                                             const char *name);
/* String metadata (safetensors' __metadata__).  set replaces a key. */
int st3d_tensor_map_set_meta(st3d_tensor_map *map, const char *key,
                             const char *value, st3d_error *err);
const char *st3d_tensor_map_get_meta(const st3d_tensor_map *map, const char *key);
size_t st3d_tensor_map_meta_count(const st3d_tensor_map *map);
const char *st3d_tensor_map_meta_key(const st3d_tensor_map *map, size_t i);

size_t st3d_dtype_size(st3d_dtype dtype);
const char *st3d_dtype_name(st3d_dtype dtype); /* safetensors spelling: "F32" */

/* Converts tensor t to float32 into out (t's element count floats). */
int st3d_tensor_to_f32(const st3d_tensor_info *t, float *out, st3d_error *err);

/* safetensors files (https://github.com/huggingface/safetensors format). */
int st3d_safetensors_read(const char *path, st3d_tensor_map **out, st3d_error *err);
/* Written atomically: a temporary file renamed over path. */
int st3d_safetensors_write(const char *path, const st3d_tensor_map *map,
                           st3d_error *err);

/* NumPy .npy arrays (float32, C order, little endian).  read_f32 fills shape
 * (room for ST3D_MAX_DIMS entries) and *ndim; *data (64-byte aligned) and the
 * labels of read_i64 are released with free(). */
int st3d_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape,
                      st3d_error *err);
int st3d_npy_write_f32(const char *path, const float *data, int ndim,
                       const int64_t *shape, st3d_error *err);
/* Integer labels (int64 or int32 .npy, rank 1). */
int st3d_npy_read_i64(const char *path, int64_t **data, int64_t *n, st3d_error *err);

/* ---------------------------------------------------- PyTorch checkpoints */

/* Reads a checkpoint written by torch.save: the zip format (PyTorch >= 1.6)
 * or the legacy format (_use_new_zipfile_serialization=False).  The pickle
 * inside is decoded by a restricted unpickler that only understands what a
 * state dict needs (containers, scalars, tensors and their storages); any
 * other global or opcode is refused and nothing is ever executed.
 *
 * The state dict is the top-level dict when its values are tensors, else its
 * 'state_dict' (or 'model') entry.  Tensors keep their PyTorch dtype (F32,
 * F16, BF16, F64, I64 ...) and key, and are made contiguous.  Metadata set on
 * the map: "format" ("pth-zip" or "pth-legacy"), and "arch" (a string) and
 * "epoch" (an integer, in decimal) when the checkpoint's top-level dict has
 * them. */
int st3d_pth_read(const char *path, st3d_tensor_map **out, st3d_error *err);

/* Reads any weights file, recognized by its content rather than its name:
 * a .pth zip, a legacy .pth or a safetensors file.  A leading "module." (as
 * nn.DataParallel writes) is stripped from every key. */
int st3d_weights_read(const char *path, st3d_tensor_map **out, st3d_error *err);

/* ---------------------------------------------------------------- networks */

/* Which network to build.  Field names and defaults follow the options of
 * the original 3D-ResNets-PyTorch (opts.py): --model, --model_depth,
 * --n_classes, --n_input_channels, --resnet_shortcut, --conv1_t_size,
 * --conv1_t_stride, --no_max_pool, --resnet_widen_factor, --wide_resnet_k,
 * --resnext_cardinality. */
typedef struct st3d_model_params {
    char model[32];            /* "resnet", "preresnet", "wideresnet", "resnext",
                                  "resnet2p1d", "densenet", "c3d", and torchvision's
                                  "tv-r3d", "tv-mc3", "tv-r2plus1d" */
    int model_depth;           /* resnets: 10..200; densenet: 121, 169, 201, 264;
                                  tv-*: 18; c3d: ignored */
    int n_classes;             /* classifier outputs (400) */
    int n_input_channels;      /* input channels (3) */
    char resnet_shortcut;      /* 'A' (zero-padded identity) or 'B' (1x1x1 conv) */
    int conv1_t_size;          /* temporal kernel of conv1 (7) */
    int conv1_t_stride;        /* temporal stride of conv1 (1) */
    int no_max_pool;           /* 1: no max pooling after conv1 */
    float resnet_widen_factor; /* channel multiplier of resnet/preresnet (1.0) */
    int wide_resnet_k;         /* width multiplier of wideresnet (2) */
    int resnext_cardinality;   /* groups of ResNeXt's 3x3x3 convs (32) */
    int conv1_planes;          /* conv1 width; 0: as the 2020 code (= layer1's width).
                                  The 2018 code used 64 for wideresnet and resnext. */
    int c3d_bn;                /* c3d: batch norm after every convolution */
    float dropout;             /* c3d: dropout after fc6 and fc7 (0.5) */
    int spatial_only;          /* resnet family: 1 makes the temporal kernel of every
                                  convolution (conv1 too) and of the stem's max
                                  pooling 1, a 2D CNN run on each frame: the
                                  control that sees no motion */
} st3d_model_params;

st3d_model_params st3d_model_default_params(void);

typedef struct st3d_model st3d_model;

/* Builds the network with freshly initialized parameters (Kaiming-normal
 * fan_out convs, unit batch norms, PyTorch's default Linear init), drawn
 * from `seed`. */
st3d_model *st3d_model_new(const st3d_model_params *params, uint64_t seed, st3d_error *err);
/* The network with every parameter and statistic zero, nothing drawn: for
 * st3d_model_load of a complete checkpoint (which writes them all) and for
 * describing a network.  Memory is taken only as values are written, so
 * this is instant and small even for ResNet-200. */
st3d_model *st3d_model_new_blank(const st3d_model_params *params, st3d_error *err);
void st3d_model_free(st3d_model *model);
const st3d_model_params *st3d_model_get_params(const st3d_model *model);

/* Learnable parameter count (as sum(p.numel() for p in model.parameters())). */
int64_t st3d_model_n_params(const st3d_model *model);
/* Width of the pooled feature vector fed to the classifier. */
int st3d_model_feature_dim(const st3d_model *model);

/* The architecture a state_dict describes: from the "st3d.*" metadata
 * that `st3d convert` writes, else recognised from keys and shapes (family,
 * depth, shortcut, widths, cardinality, conv1 size, n_classes).  Options
 * the keys cannot tell (conv1_t_stride, no_max_pool) keep their defaults. */
int st3d_model_params_from_weights(const st3d_tensor_map *map, st3d_model_params *params,
                                   st3d_error *err);
/* Records params as "st3d.*" metadata of map (what the above reads back). */
int st3d_model_params_to_meta(const st3d_model_params *params, st3d_tensor_map *map,
                              st3d_error *err);

/* Fine-tuning (the original's --pretrain_path with --n_pretrain_classes):
 * loads every tensor of map except a classifier whose class count differs
 * from the model's, which keeps its fresh initialization.  Other mismatches
 * are errors as in st3d_model_load. */
int st3d_model_load_pretrained(st3d_model *model, const st3d_tensor_map *map, const char *source,
                               st3d_error *err);

/* One row of the layer table, for an input of in_dhw = {frames, height, width}. */
typedef struct st3d_layer_info {
    const char *name;       /* module path, e.g. "layer1.0.conv1" ("" for unnamed) */
    const char *kind;       /* "conv3d", "batchnorm3d", "relu", "maxpool3d", ... */
    int64_t out_shape[4];   /* C, D, H, W of the output (C only for linear) */
    int kernel[3];          /* conv / pool kernel, else 0 */
    int stride[3];          /* conv / pool stride, else 0 */
    int groups;             /* conv groups, else 0 */
    int64_t n_params;       /* learnable parameters of this layer */
} st3d_layer_info;
size_t st3d_model_n_layers(const st3d_model *model);
int st3d_model_layer(const st3d_model *model, size_t i, const int64_t in_dhw[3],
                     st3d_layer_info *info, st3d_error *err);
/* Multiply-accumulates x 2 of one forward pass of one clip of in_dhw. */
double st3d_model_flops(const st3d_model *model, const int64_t in_dhw[3]);

/* Copies parameters and buffers from map, whose keys must be exactly the
 * network's state_dict keys (`source` names the map's file in errors, e.g.
 * "W.safetensors: tensor 'fc.weight' has shape [10, 512], expected [400, 512]"). */
int st3d_model_load(st3d_model *model, const st3d_tensor_map *map, const char *source,
                    st3d_error *err);
/* For inference from a weights file: map is the one the model was loaded
 * from (st3d_model_load), kept by the caller until the model is freed.
 * Plans then hand back the pages of the parameters that only their
 * preparation reads (convolution weights, which the kernels read folded or
 * reordered), so that the weights are in memory once; they are read back
 * from map whenever something needs them again (a plan for another shape,
 * a training step, st3d_model_state_dict, st3d_model_param_data).  Loading
 * other weights, or taking st3d_model_param_data (which may be written),
 * ends it. */
void st3d_model_keep_weights_source(st3d_model *model, const st3d_tensor_map *map);
/* The state_dict (parameters, running statistics, num_batches_tracked), in
 * PyTorch's key order.  As PyTorch's state_dict(), the tensors share the
 * model's memory (nothing is copied): they show its current values, and the
 * map must be freed before the model.  The same holds for grad_dict. */
int st3d_model_state_dict(const st3d_model *model, st3d_tensor_map **out, st3d_error *err);
/* The gradients of the last backward pass, keyed by parameter name. */
int st3d_model_grad_dict(const st3d_model *model, st3d_tensor_map **out, st3d_error *err);

/* Flat views of all learnable parameters and of their gradients (same
 * layout), e.g. for an all-reduce of gradients across processes. */
float *st3d_model_param_data(st3d_model *model, int64_t *count);
float *st3d_model_grad_data(st3d_model *model, int64_t *count);

/* Eval-mode inference on x (n x C x d x h x w, NCDHW float32).  Writes
 * logits (n x n_classes) and, if features is not NULL, the pooled features
 * (n x feature_dim).  Buffers are built on the first call for a shape and
 * reused; only live activations are kept. */
int st3d_model_forward(st3d_model *model, const float *x, const int64_t shape[5], float *logits,
                       float *features, st3d_error *err);

/* Bytes of activation buffers held by the inference plan of the last
 * st3d_model_forward shape (0 before the first call).  Activations share a
 * few slots by liveness, so this follows the widest layers, not the depth. */
size_t st3d_model_activation_bytes(const st3d_model *model);

/* Training-mode forward and backward on one batch with integer labels:
 * batch statistics (running statistics updated), mean cross-entropy loss,
 * gradients of every parameter written (not accumulated) into the gradient
 * buffer.  logits (n x n_classes) may be NULL. */
int st3d_model_train_step(st3d_model *model, const float *x, const int64_t shape[5],
                          const int64_t *labels, float *loss, float *logits, st3d_error *err);

/* ---------------------------------------------------------- execution state */

/* What running a network needs, kept apart from the network itself: the
 * backend (oneDNN's CPU engine and stream) and the plans compiled per input
 * shape, for inference and for training.  Up to 4 shapes per mode are kept
 * (least recently used out first), so that a smaller last batch, or a batch
 * shrunk by an unreadable video, builds its plan once and never rebuilds the
 * others.  For inference, a batch smaller than one already planned for the
 * same clip size usually builds nothing: when that plan runs its first
 * layers clip by clip (any batch of large clips), it serves the smaller
 * batch too.  An exec borrows its model, which must outlive it.
 * st3d_model_forward and st3d_model_train_step run on an exec the model makes
 * for itself on first use. */
typedef struct st3d_exec st3d_exec;
st3d_exec *st3d_exec_new(st3d_model *model, st3d_error *err);
void st3d_exec_free(st3d_exec *exec);
/* As st3d_model_forward and st3d_model_train_step, on this exec's plans. */
int st3d_exec_forward(st3d_exec *exec, const float *x, const int64_t shape[5], float *logits,
                      float *features, st3d_error *err);
int st3d_exec_train_step(st3d_exec *exec, const float *x, const int64_t shape[5],
                         const int64_t *labels, float *loss, float *logits, st3d_error *err);
/* Builds (or finds) the inference plan for this shape and prepares its
 * weights, as the first st3d_exec_forward of that shape would, without
 * running it: a stream calls it before its first batch is in, so that the
 * build overlaps the decoding (st3d_classify_stream does, once the
 * stream's first item is in). */
int st3d_exec_prepare(st3d_exec *exec, const int64_t shape[5], st3d_error *err);
/* Inference plans run a convolution with temporal stride 1 as Winograd's
 * minimal filtering along time over 2D convolutions (F(m, r), m output frames
 * from m + r - 1 2D convolutions instead of m x r) where that does at least
 * a fifth fewer multiply-adds, within a few float32 roundings of the direct
 * result.  on = 0: every convolution runs oneDNN's direct kernel.  Default
 * on; inference plans built before are dropped.  Training is always direct. */
void st3d_exec_set_winograd(st3d_exec *exec, int on);
/* Convolutions run as temporal Winograd in the inference plan of the last
 * forward. */
int st3d_exec_winograd_convs(const st3d_exec *exec);
/* Plans built so far (a plan reused from the cache is not counted again). */
int64_t st3d_exec_n_builds(const st3d_exec *exec);
/* Activation bytes of the inference plan of the last forward. */
size_t st3d_exec_activation_bytes(const st3d_exec *exec);
/* Data-parallel hooks (what DistributedDataParallel hooks into autograd):
 * fn is called during each training step's backward, on the calling
 * thread, as soon as a parameter's gradient is complete, with its floats
 * [first, first + count) of st3d_model_grad_data; NULL removes it. */
typedef void (*st3d_grad_ready_fn)(int64_t first, int64_t count, void *user);
void st3d_exec_set_grad_hook(st3d_exec *exec, st3d_grad_ready_fn fn, void *user);
/* SyncBatchNorm: training batch norms take their statistics over every
 * process's batch, sum(buf, n, user) adding each process's n doubles in
 * place (every process gets the sums; 0 or -1).  NULL: each its own batch.
 * Training plans built before are dropped. */
typedef int (*st3d_sum_fn)(double *buf, int64_t n, void *user);
void st3d_exec_set_sync_bn(st3d_exec *exec, st3d_sum_fn sum, void *user);

/* --------------------------------------------------------------- optimizer */

/* torch.optim.SGD's hyper-parameters (defaults as the original opts.py:
 * lr 0.1, momentum 0.9, dampening 0, weight decay 1e-3, no Nesterov). */
typedef struct st3d_sgd_params {
    float lr;           /* learning rate */
    float momentum;     /* momentum factor */
    float dampening;    /* dampening of momentum */
    float weight_decay; /* L2 penalty added to gradients */
    int nesterov;       /* 1: Nesterov momentum */
} st3d_sgd_params;

st3d_sgd_params st3d_sgd_default_params(void);

typedef struct st3d_sgd st3d_sgd;
st3d_sgd *st3d_sgd_new(const st3d_model *model, const st3d_sgd_params *params, st3d_error *err);
void st3d_sgd_free(st3d_sgd *opt);
/* Changes the learning rate (schedulers). */
void st3d_sgd_set_lr(st3d_sgd *opt, float lr);
/* Applies one update to model's parameters from its gradient buffer. */
int st3d_sgd_step(st3d_sgd *opt, st3d_model *model, st3d_error *err);
/* Fine-tuning (the original's --ft_begin_module, get_fine_tuning_parameters):
 * parameters before the first one of module `module` (e.g. "layer4", "fc";
 * DenseNet's "features.denseblock4" is named "denseblock4") are frozen: never
 * updated, no weight decay.  NULL or "" trains everything. */
int st3d_sgd_freeze_before(st3d_sgd *opt, const st3d_model *model, const char *module,
                           st3d_error *err);
/* Frozen parameter floats (a prefix of st3d_model_param_data). */
int64_t st3d_sgd_frozen_count(const st3d_sgd *opt);
/* State for checkpoints: steps taken and the momentum buffers (same layout
 * as st3d_model_param_data; meaningful once steps > 0). */
int64_t st3d_sgd_steps(const st3d_sgd *opt);
void st3d_sgd_set_steps(st3d_sgd *opt, int64_t steps);
float *st3d_sgd_momentum_data(st3d_sgd *opt, int64_t *count);

/* The video-and-data half and the training half of the API. */
#include "st3d/data.h"
#include "st3d/train.h"

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* ST3D_H */

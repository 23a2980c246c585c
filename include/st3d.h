/*
 * st3d.h - the one public header of libst3d.
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

/* ===================================================== video and data ===== */
/* Reading what users have on disk (videos through FFmpeg's libraries, folders
 * of JPEG frames through libjpeg-turbo), the original code's annotation JSON,
 * its temporal and spatial augmentations (Hara et al., Section 3.3) and a
 * threaded loader that turns all of it into NCDHW float32 batches. */

/* --------------------------------------------------------- video decoding */

/* swscale algorithm used to scale decoded frames. */
typedef enum st3d_scaler {
    ST3D_SCALER_BILINEAR = 0, /* SWS_BILINEAR, as ffmpeg -sws_flags bilinear */
    ST3D_SCALER_BICUBIC = 1,  /* SWS_BICUBIC (the ffmpeg program's default) */
    ST3D_SCALER_AREA = 2,     /* SWS_AREA */
    ST3D_SCALER_POINT = 3,    /* SWS_POINT (nearest neighbour) */
} st3d_scaler;

typedef struct st3d_video_params {
    int short_side;     /* scale so the shorter side has this many pixels, the
                           other rounded to nearest (as ffmpeg's scale=-1:N);
                           0: the video's own size */
    int width, height;  /* exact output size when both > 0 (overrides short_side) */
    int threads;        /* libavcodec decoding threads (frame threading);
                           0: automatic, 1: decode on the calling thread */
    int autorotate;     /* 1: apply the stream's rotation metadata as the
                           ffmpeg program does (default 1) */
    st3d_scaler scaler; /* scaling algorithm (default bilinear) */
    int live;           /* 1: a source read once as it comes (a pipe, "-" for standard
                           input, an RTSP/HTTP URL): no indexing pass, frames counted
                           as decoded, n_frames 0 (unknown), no seeking (default 0) */
} st3d_video_params;

st3d_video_params st3d_video_default_params(void);

typedef struct st3d_video_info {
    int width, height;             /* size of returned frames (scaled, rotated) */
    int coded_width, coded_height; /* the stream's own size, before rotation */
    int rotation;                  /* clockwise degrees applied: 0, 90, 180, 270 */
    double fps;                    /* average frame rate, 0 when unknown */
    double duration;               /* seconds, 0 when unknown */
    int64_t n_frames;              /* frames in presentation order (from an index
                                      of the packets built at open) */
    int frame_accurate;            /* 1: every packet has a timestamp, seeks are
                                      exact; 0: seeks decode from the start */
    char codec[32];                /* libavcodec's name, e.g. "h264" */
    char container[32];            /* libavformat's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" (cut) */
} st3d_video_info;

typedef struct st3d_video st3d_video;

/* Opens any file FFmpeg reads and indexes its video packets (a demux pass
 * without decoding).  Memory is one frame plus the decoder's references and
 * 8 bytes per frame of index, never the whole video. */
st3d_video *st3d_video_open(const char *path, const st3d_video_params *params,
                            st3d_error *err);
void st3d_video_free(st3d_video *video);
const st3d_video_info *st3d_video_get_info(const st3d_video *video);

/* Positions the video so that the next st3d_video_read_frame returns the
 * first frame whose timestamp is >= seconds. */
int st3d_video_seek(st3d_video *video, double seconds, st3d_error *err);

/* Decodes the next frame in presentation order into rgb (height x width x 3
 * bytes, RGB24, rows top to bottom).  Returns 1 with a frame, 0 at the end,
 * -1 on error.  index (0-based frame number) and pts (seconds, the stream's
 * presentation timestamp) may be NULL. */
int st3d_video_read_frame(st3d_video *video, uint8_t *rgb, int64_t *index, double *pts,
                          st3d_error *err);

/* Frame-accurate clip extraction: decodes the frames indices[0..n) (0-based,
 * any order, repeats allowed) into rgb (n x height x width x 3).  Seeks to the
 * key frame before the first one needed and decodes only up to the last;
 * only requested frames are converted.  A frame past the end is an error. */
int st3d_video_read_frames(st3d_video *video, const int64_t *indices, int n, uint8_t *rgb,
                           st3d_error *err);

/* ------------------------------------------------------------ annotations */

/* The original code's annotation JSON:
 *   {"labels": [names...],
 *    "database": {video_id: {"subset": "training"|"validation"|"testing",
 *                            "annotations": {"label": name, "segment": [b, e]},
 *                            "video_path": optional}}}
 * and ActivityNet v1.3's (a "taxonomy" whose leaves are the labels, lists of
 * annotations with segments in seconds, a per-video "fps"). */
typedef struct st3d_dataset st3d_dataset;

typedef struct st3d_sample_info {
    const char *video_id; /* the database key */
    const char *path;     /* frame folder or video file */
    int64_t label;        /* index into labels, -1 when unlabeled (testing) */
    int64_t begin, end;   /* frames [begin, end), numbered from 1 as the
                             original's image_%05d.jpg */
} st3d_sample_info;

/* Reads the samples of one subset ("training", "validation", "testing").  A
 * video is looked up as video_root/label/video_id (ActivityNet:
 * video_root/v_video_id), a frame folder or, failing that, a video file with
 * a known extension (.mp4 .avi .webm .mkv .mov ...).  Missing videos and
 * entries naming a label absent from "labels" are skipped and recorded as
 * warnings; malformed JSON fails naming the file, line and column. */
st3d_dataset *st3d_dataset_open(const char *annotation_path, const char *video_root,
                                const char *subset, st3d_error *err);
/* A dataset of whole videos or frame folders (labels may be NULL: all -1),
 * for classifying files that have no annotation.  Frames are counted here. */
st3d_dataset *st3d_dataset_from_paths(const char *const *paths, const int64_t *labels,
                                      int64_t n, st3d_error *err);
void st3d_dataset_free(st3d_dataset *ds);
int64_t st3d_dataset_size(const st3d_dataset *ds);
int st3d_dataset_sample(const st3d_dataset *ds, int64_t i, st3d_sample_info *info);
int64_t st3d_dataset_n_classes(const st3d_dataset *ds);
const char *st3d_dataset_class_name(const st3d_dataset *ds, int64_t label);
/* Problems met while reading (one line each, naming the file). */
int64_t st3d_dataset_n_warnings(const st3d_dataset *ds);
const char *st3d_dataset_warning(const st3d_dataset *ds, int64_t i);

/* Builds the original code's JSON (util_scripts/ucf101_json.py,
 * hmdb51_json.py, kinetics_json.py; for ActivityNet the v1.3 file plus
 * "labels" and each video's "fps").  dataset: "ucf101", "hmdb51", "kinetics",
 * "activitynet".  src: UCF-101's folder of classInd.txt/trainlist0N.txt/
 * testlist0N.txt, HMDB-51's folder of *_test_splitN.txt, Kinetics' folder of
 * kinetics-K_{train,val,test}.csv, ActivityNet's JSON file.  video_root, when
 * not NULL, is where frame counts (segments) and frame rates are found. */
typedef struct st3d_annotation_params {
    const char *dataset;    /* "ucf101" | "hmdb51" | "kinetics" | "activitynet" */
    const char *src;        /* split files folder, or the ActivityNet JSON */
    const char *video_root; /* frame folders / videos; NULL: no segments */
    int split;              /* UCF-101 / HMDB-51 split 1..3 */
    int n_classes;          /* Kinetics: 400, 600 or 700 (file names) */
    double fps;             /* ActivityNet: frame rate when no video gives one (0: none) */
    const char *classes;    /* "A,B,C": keep only these classes, labelled in this order,
                               and their videos (not ActivityNet); NULL: all */
} st3d_annotation_params;
st3d_annotation_params st3d_annotation_default_params(void);
int st3d_make_annotations(const st3d_annotation_params *params, const char *dst_json,
                          int64_t *n_videos, st3d_error *err);

/* ------------------------------------------------------------- transforms */

/* Temporal cropping (the original's temporal_transforms.py). */
typedef enum st3d_temporal_crop {
    ST3D_TCROP_RANDOM = 0,  /* TemporalRandomCrop: one clip, uniform start */
    ST3D_TCROP_CENTER = 1,  /* TemporalCenterCrop: one clip around the middle */
    ST3D_TCROP_BEGIN = 2,   /* TemporalBeginCrop: the first frames */
    ST3D_TCROP_EVEN = 3,    /* TemporalEvenCrop: n_clips clips spread evenly */
    ST3D_TCROP_SLIDING = 4, /* SlidingWindow: every window_stride frames */
} st3d_temporal_crop;

/* Spatial cropping (the original's spatial_transforms.py / main.py). */
typedef enum st3d_spatial_crop {
    ST3D_SCROP_RANDOM = 0, /* RandomResizedCrop (--train_crop random) */
    ST3D_SCROP_CORNER = 1, /* MultiScaleCornerCrop (--train_crop corner) */
    ST3D_SCROP_CENTER = 2, /* Resize + CenterCrop (--train_crop center, validation) */
    ST3D_SCROP_NONE = 3,   /* Resize alone (--inference_crop nocrop): short side
                              sample_size, aspect kept, so clips have their video's
                              height and width and a batch holds one video's clips
                              (see st3d_loader_peek) */
} st3d_spatial_crop;

/* Fills mean and std (3 values each) for --mean_dataset ("kinetics",
 * "activitynet", "0.5") scaled by value_scale, as the original's mean.py. */
int st3d_mean_std(const char *mean_dataset, float value_scale, float mean[3], float std[3],
                  st3d_error *err);

/* ----------------------------------------------------------------- loader */

typedef struct st3d_loader_params {
    int batch_size;               /* clips per batch (--batch_size) */
    int n_threads;                /* worker threads (--n_threads) */
    int queue_batches;            /* ready batches buffered ahead (>= 1) */
    int sample_size;              /* output height and width (--sample_size 112) */
    int sample_duration;          /* frames per clip (--sample_duration 16) */
    int sample_t_stride;          /* temporal subsampling (--sample_t_stride 1) */
    st3d_temporal_crop t_crop;    /* --train_t_crop, or validation/inference modes */
    int n_clips;                  /* clips per video for ST3D_TCROP_EVEN (--n_val_samples) */
    int window_stride;            /* ST3D_TCROP_SLIDING stride (--inference_stride; 0: duration) */
    st3d_spatial_crop crop;       /* --train_crop (or validation's / inference's) */
    float train_crop_min_scale;   /* RandomResizedCrop area range (min, 1) */
    float train_crop_min_ratio;   /* RandomResizedCrop aspect range (r, 1/r) */
    int hflip;                    /* 1: flip with probability 1/2 (not --no_hflip) */
    int colorjitter;              /* 1: ColorJitter (--colorjitter) */
    int shuffle_frames;           /* 1: the frames of every clip in a random order
                                     (the 2D control: no motion left to see) */
    float jitter_brightness;      /* ColorJitter strengths; the original's defaults */
    float jitter_contrast;        /*   are all 0, which makes it an identity */
    float jitter_saturation;
    float jitter_hue;             /* 0 .. 0.5 */
    float value_scale;            /* 1: values in [0, 1]; 255: [0, 255] (--value_scale) */
    float mean[3];                /* subtracted per channel (already x value_scale) */
    float std[3];                 /* divided per channel (already x value_scale) */
    int mean_norm;                /* 0: no mean subtraction (--no_mean_norm) */
    int std_norm;                 /* 0: no division by std (--no_std_norm) */
    int shuffle;                  /* 1: a new random order every epoch */
    int drop_last;                /* 1: drop a last, incomplete batch */
    uint64_t seed;                /* every random choice derives from (seed, epoch, sample) */
    int shard_index, shard_count; /* this process's share, as DistributedSampler */
    int shard_no_pad;             /* 1: shares without DistributedSampler's padding
                                     (every sample exactly once over all shards:
                                     validation and inference across ranks) */
    int video_short_side;         /* videos: scale at decode to this short side (0: native) */
    int decoder_threads;          /* videos: libavcodec threads per worker (1) */
} st3d_loader_params;

st3d_loader_params st3d_loader_default_params(void);

/* Per clip of a batch: where it came from and what was drawn. */
typedef struct st3d_clip_info {
    int64_t sample;       /* dataset index */
    int64_t begin, end;   /* first and one-past-last frame number (1-based) used */
    int clip;             /* clip number within its video (multi-clip crops) */
    int crop_x, crop_y;   /* crop origin in the source frame (center crop:
                             in the frame after Resize; nocrop: 0) */
    int crop_w, crop_h;   /* crop size in the source frame (center crop and
                             nocrop: the size of the frame after Resize) */
    int flipped;          /* 1: horizontally flipped */
    float jitter[4];      /* brightness, contrast, saturation, hue factors */
    int jitter_order[4];  /* order applied (0 b, 1 c, 2 s, 3 h) */
} st3d_clip_info;

typedef struct st3d_loader_stats {
    int64_t epoch;          /* the current epoch */
    int64_t n_batches;      /* batches of this epoch (before skips) */
    int64_t n_clips;        /* clips delivered so far this epoch */
    int64_t n_skipped;      /* unreadable videos skipped so far this epoch */
    int64_t n_skipped_total;/* distinct unreadable videos met since creation */
    double busy_seconds;    /* worker time spent decoding and augmenting */
} st3d_loader_stats;

typedef struct st3d_loader st3d_loader;

/* The loader borrows ds, which must outlive it.  Workers start at the first
 * st3d_loader_start_epoch. */
st3d_loader *st3d_loader_new(const st3d_dataset *ds, const st3d_loader_params *params,
                             st3d_error *err);
void st3d_loader_free(st3d_loader *loader);
/* Starts epoch (0, 1, ...): its order (shuffled from seed and epoch), this
 * shard's part, then workers fill the queue.  Abandons an unfinished epoch. */
int st3d_loader_start_epoch(st3d_loader *loader, int64_t epoch, st3d_error *err);
/* Shape of a full batch: {batch_size, 3, sample_duration, sample_size, sample_size}
 * (with ST3D_SCROP_NONE, H and W are only known batch by batch: st3d_loader_peek). */
void st3d_loader_batch_shape(const st3d_loader *loader, int64_t shape[5]);
/* Waits for the next batch and gives its shape {N, 3, T, H, W} without
 * taking it: N as st3d_loader_next's *n, H x W sample_size x sample_size
 * but with ST3D_SCROP_NONE, where they are the batch's video's (every clip
 * of a batch is of one video then; a video with more clips than batch_size
 * fills several batches).  Returns 1, 0 at the end of the epoch, -1 on error. */
int st3d_loader_peek(st3d_loader *loader, int64_t shape[5], st3d_error *err);
/* Waits for the next batch and copies it out: clips (N x 3 x T x H x W,
 * NCDHW float32), labels (N; may be NULL), info (N; may be NULL).  *n gets
 * the clips in it (< batch_size for the last batch, or when a video was
 * skipped).  Returns 1 with a batch, 0 at the end of the epoch, -1 on error.
 * With ST3D_SCROP_NONE the batch must have been peeked at (H and W vary;
 * clips must hold st3d_loader_peek's shape), else this is refused. */
int st3d_loader_next(st3d_loader *loader, float *clips, int64_t *labels, st3d_clip_info *info,
                     int *n, st3d_error *err);
/* Pops the oldest unread message about a skipped video into buf; returns 1,
 * or 0 when there is none.  Each video is reported once. */
int st3d_loader_pop_message(st3d_loader *loader, char *buf, size_t cap);
void st3d_loader_get_stats(const st3d_loader *loader, st3d_loader_stats *stats);

/* ------------------------------------------------------------ clip stream */

/* Whole videos cut into clips as they decode, for classifying or embedding
 * any number of videos of any length (`st3d classify`, `st3d features`; the
 * companion tool video-classification-3d-cnn-pytorch's job, without its
 * frame dumps).  Decoder threads each take the next video of the list,
 * decode it from start to end (the decoder drained at the end, so every
 * frame it gives is seen), transform each frame once (Resize of the short
 * side + CenterCrop, then normalization: the companion's Scale, CenterCrop,
 * ToTensor, Normalize) into a ring of sample_duration frames, and put each
 * clip, the moment its last frame is in, into a bounded queue the caller
 * drains.  Memory is the ring, the queue and one decoder per thread, never
 * a whole video.
 *
 * Clips start at frames 0, stride, 2 * stride, ... as the original's
 * SlidingWindow; the first clip that runs past the last frame is
 * loop-padded (LoopPadding: its frames repeated from its first) and ends
 * the video, unless drop_tail is set.  The companion tool itself cuts
 * only full clips starting at 1, 1 + stride, ... below n - duration + 1
 * (its make_dataset), so a video's last frames (and any video shorter than
 * a clip) go unclassified there. */
typedef struct st3d_stream_params {
    int sample_duration;  /* frames per clip (16) */
    int stride;           /* frames between clip starts (0: sample_duration) */
    int sample_size;      /* clip height and width after Resize + CenterCrop (112) */
    float value_scale;    /* 1: pixel values in [0, 1], 255: [0, 255] (1) */
    float mean[3];        /* subtracted per channel, already x value_scale (kinetics) */
    float std[3];         /* divided per channel, already x value_scale (kinetics) */
    int drop_tail;        /* 1: no loop-padded last clip (0) */
    int n_threads;        /* decoder threads: videos decoded at once (2) */
    int decoder_threads;  /* libavcodec threads per video (1) */
    int queue_clips;      /* clips buffered between decoding and the caller (16) */
    int live;             /* 1: the paths are live sources (st3d_video_params.live) */
} st3d_stream_params;

st3d_stream_params st3d_stream_default_params(void);

/* What the stream hands out, in order; one video's items come in the order
 * BEGIN, CLIP..., then END or FAIL; items of videos decoded at once
 * interleave. */
typedef enum st3d_stream_kind {
    ST3D_STREAM_BEGIN = 0, /* a video opened: info is set */
    ST3D_STREAM_CLIP = 1,  /* a clip (its pixels copied out by st3d_clip_stream_next) */
    ST3D_STREAM_END = 2,   /* a video fully decoded: n_clips, n_frames set */
    ST3D_STREAM_FAIL = 3,  /* a video could not be opened or decoded: message says
                              why; clips it gave before are to be discarded */
} st3d_stream_kind;

typedef struct st3d_stream_item {
    st3d_stream_kind kind; /* what this is */
    int64_t video;         /* index into the list the stream was made with */
    int64_t clip;          /* CLIP: number within its video, from 0 */
    int64_t first, last;   /* CLIP: 1-based numbers of its first and last real frame
                              (the companion's "segment" [first, last]) */
    int n_real;            /* CLIP: frames before loop padding (< sample_duration: padded) */
    double start, end;     /* CLIP: seconds, the first frame's timestamp and the last
                              real frame's plus one frame duration */
    double decoded_at;     /* CLIP: st3d's monotonic clock (seconds) when its last frame
                              was decoded, for latency */
    int64_t n_clips;       /* END: clips the video gave */
    int64_t n_frames;      /* END: frames decoded */
    st3d_video_info info;  /* BEGIN, END: the video (n_frames: the container's index) */
    char message[768];     /* FAIL: one line naming the file and the reason */
} st3d_stream_item;

typedef struct st3d_clip_stream st3d_clip_stream;

/* Starts decoding paths[0..n) (copied) at once.  Bad parameters fail here;
 * a bad video is a FAIL item later. */
st3d_clip_stream *st3d_clip_stream_new(const char *const *paths, int64_t n,
                                       const st3d_stream_params *params, st3d_error *err);
/* Stops the decoder threads (an unfinished stream is abandoned) and frees. */
void st3d_clip_stream_free(st3d_clip_stream *s);
/* Shape of one clip, {3, sample_duration, sample_size, sample_size} (CDHW). */
void st3d_clip_stream_clip_shape(const st3d_clip_stream *s, int64_t shape[4]);
/* Waits for the next item; a CLIP's pixels are copied to clip (NCDHW order
 * for one clip; may be NULL to drop them).  Returns 1 with an item, 0 when
 * every video has ended, -1 on error. */
int st3d_clip_stream_next(st3d_clip_stream *s, float *clip, st3d_stream_item *item,
                          st3d_error *err);

/* =============================================== end of video and data ===== */

/* ============================================================= distributed */
/* Data-parallel work across processes and machines over Open MPI (started
 * with mpirun, or srun under Slurm), as PyTorch's DistributedDataParallel:
 * every rank runs the same network on its share of each batch's samples
 * and gradients are averaged across ranks.  A build without MPI has these
 * functions too: st3d_dist_init then fails with a clear message. */

typedef struct st3d_dist st3d_dist;

typedef struct st3d_dist_params {
    double timeout_s;        /* a collective that waits longer than this for the
                                other ranks stops the whole job (600; 0: never) */
    void (*on_timeout)(const char *msg, void *user); /* told why, before the job
                                is stopped (from a watchdog thread); may be NULL */
    void *user;              /* handed to on_timeout */
} st3d_dist_params;

st3d_dist_params st3d_dist_default_params(void);
/* 1 when st3d was built with MPI. */
int st3d_dist_available(void);
/* 1 when this process was started by an MPI launcher (Open MPI's mpirun,
 * or srun with PMI / PMIx), as its environment tells. */
int st3d_dist_launched(void);
/* Joins the job (MPI_Init_thread; once per process).  Errors are returned,
 * not fatal; rank and size are MPI_COMM_WORLD's. */
st3d_dist *st3d_dist_init(const st3d_dist_params *params, st3d_error *err);
/* Leaves the job (MPI_Finalize). */
void st3d_dist_free(st3d_dist *d);
/* This process's rank and the number of ranks; 0 and 1 for d == NULL, so
 * that code written for several ranks runs alone unchanged. */
int st3d_dist_rank(const st3d_dist *d);
int st3d_dist_size(const st3d_dist *d);
/* Blocking collectives over every rank (all must call them in the same
 * order): sums in place (every rank gets the sum), root's bytes to all. */
int st3d_dist_allreduce_f32(st3d_dist *d, float *buf, int64_t n, st3d_error *err);
int st3d_dist_allreduce_f64(st3d_dist *d, double *buf, int64_t n, st3d_error *err);
int st3d_dist_broadcast(st3d_dist *d, void *buf, int64_t bytes, int root, st3d_error *err);
int st3d_dist_barrier(st3d_dist *d, st3d_error *err);
/* Gathers each rank's bytes (any length) at root: there *out gets them all,
 * rank after rank (free()), and lens[rank] each length (size entries). */
int st3d_dist_gather(st3d_dist *d, const void *buf, int64_t bytes, int root, void **out,
                     int64_t *lens, st3d_error *err);
/* Sums that overlap computation: start queues an in-place sum of buf and
 * returns at once (a communication thread runs the queued sums in order);
 * wait_all waits for every queued one.  buf must stay untouched until then. */
int st3d_dist_allreduce_start(st3d_dist *d, float *buf, int64_t n, st3d_error *err);
int st3d_dist_wait_all(st3d_dist *d, st3d_error *err);

/* What this rank's collectives cost so far. */
typedef struct st3d_dist_stats {
    int64_t n_reduced_floats; /* floats summed through allreduce_start */
    int64_t n_started;        /* non-blocking sums started */
    double wait_seconds;      /* time blocked in wait_all (communication not hidden) */
    double blocking_seconds;  /* time in the blocking collectives */
} st3d_dist_stats;
void st3d_dist_get_stats(const st3d_dist *d, st3d_dist_stats *stats);
/* Stops every rank of the job after an error on this one (MPI_Abort, or
 * leaving at once, which the launcher turns into stopping the job, when
 * MPI was not granted MPI_THREAD_MULTIPLE).  Does not return. */
void st3d_dist_abort(st3d_dist *d, int code);
/* Changes the watchdog's limit (0: none), e.g. before the collective that
 * ends a run whose ranks legitimately finish far apart (each classifying
 * its own share of a corpus). */
void st3d_dist_set_timeout(st3d_dist *d, double timeout_s);

/* ================================================================ training */
/* The original main.py's experiment loop as library calls: SGD with
 * momentum, a learning-rate schedule, epochs of training and validation over
 * loaders, the original's logs, and checkpoints that resume exactly. */

/* ------------------------------------------------------------ schedulers */

typedef enum st3d_lr_kind {
    ST3D_LR_MULTISTEP = 0, /* MultiStepLR (--lr_scheduler multistep) */
    ST3D_LR_PLATEAU = 1,   /* ReduceLROnPlateau on the validation loss (plateau) */
} st3d_lr_kind;

#define ST3D_MAX_MILESTONES 32

typedef struct st3d_scheduler_params {
    st3d_lr_kind kind;                     /* which schedule */
    int milestones[ST3D_MAX_MILESTONES];   /* multistep epochs ([50, 100, 150]) */
    int n_milestones;                      /* used entries of milestones */
    double gamma;                          /* multistep gamma / plateau factor (0.1) */
    int patience;                          /* plateau: epochs without improvement (10) */
    double threshold;                      /* plateau: relative improvement (1e-4) */
    int cooldown;                          /* plateau: epochs to wait after a cut (0) */
    double min_lr;                         /* plateau: floor (0) */
    double eps;                            /* plateau: smallest change applied (1e-8) */
} st3d_scheduler_params;

st3d_scheduler_params st3d_scheduler_default_params(void);

/* A schedule's whole state (saved in checkpoints as it is). */
typedef struct st3d_scheduler {
    st3d_scheduler_params p; /* settings */
    double lr;               /* the current learning rate */
    int64_t last_epoch;      /* steps taken (PyTorch's last_epoch, from 0) */
    double best;             /* plateau: best metric so far (inf at first) */
    int num_bad_epochs;      /* plateau: epochs since the best */
    int cooldown_counter;    /* plateau: cooldown left */
} st3d_scheduler;

int st3d_scheduler_init(st3d_scheduler *s, const st3d_scheduler_params *p, double base_lr,
                        st3d_error *err);
/* One scheduler.step() at the end of an epoch (metric: the validation loss,
 * used by plateau only).  Returns the learning rate from now on. */
double st3d_scheduler_step(st3d_scheduler *s, double metric);
/* "[50,100,150]", "50 100 150" or "50,100" into p's milestones. */
int st3d_parse_milestones(const char *text, st3d_scheduler_params *p, st3d_error *err);

/* --------------------------------------------------------------- trainer */

/* What one step (or one validation batch) did, for a progress display. */
typedef struct st3d_step_report {
    int validation;         /* 0: a training step, 1: a validation batch */
    int64_t epoch;          /* 1-based, as the original's logs */
    int64_t batch;          /* 1-based batch number within the epoch */
    int64_t n_batches;      /* batches in the epoch (before skips) */
    int64_t iteration;      /* training steps since the start of training */
    int clips;              /* clips in this batch */
    double loss, acc;       /* this batch: mean loss, top-1 accuracy */
    double mean_loss;       /* the epoch so far, weighted by clips (AverageMeter) */
    double mean_acc;
    double lr;              /* learning rate of this step */
    double data_seconds;    /* the epoch so far: time spent waiting for the loader */
    double seconds;         /* the epoch so far: wall time */
    int64_t epoch_clips;    /* clips so far this epoch */
    int64_t skipped;        /* unreadable videos skipped so far this epoch */
} st3d_step_report;

/* Called after every step; a non-zero return stops the epoch (an error). */
typedef int (*st3d_step_fn)(const st3d_step_report *report, void *user);

typedef struct st3d_epoch_result {
    int64_t epoch;          /* 1-based */
    double loss, acc;       /* means over the epoch's clips */
    double lr;              /* learning rate used */
    int64_t clips;          /* clips seen */
    int64_t batches;        /* batches run */
    int64_t skipped;        /* unreadable videos skipped */
    double seconds;         /* wall time */
    double data_seconds;    /* of which waiting for the loader */
} st3d_epoch_result;

typedef struct st3d_trainer_params {
    double lr;                     /* initial learning rate (0.1), in double as the
                                      original's Python float: schedules multiply it */
    st3d_sgd_params sgd;           /* the optimizer's other settings (its lr is set from lr) */
    st3d_scheduler_params sched;   /* learning-rate schedule */
    char ft_begin_module[64];      /* fine-tuning: first trained module, "" for all */
    st3d_step_fn on_step;          /* progress callback, or NULL */
    void *user;                    /* handed to on_step */
    st3d_dist *dist;               /* data-parallel over these ranks (NULL: alone); the
                                      loaders must take shard rank of size */
    int sync_bn;                   /* 1: batch statistics over all ranks' clips
                                      (PyTorch's SyncBatchNorm, --sync-bn) */
    double bucket_cap_mb;          /* gradients go out in buckets of this size (25,
                                      DDP's bucket_cap_mb), as each fills in the backward */
    int no_overlap;                /* 1: the all-reduces after the backward instead */
    int check_replicas;            /* 1: after every step, check that every rank's
                                      weights equal rank 0's bit for bit (slow) */
} st3d_trainer_params;

st3d_trainer_params st3d_trainer_default_params(void);

typedef struct st3d_trainer st3d_trainer;

/* A trainer borrows model (which must outlive it) and owns its execution
 * state (st3d_exec), optimizer and scheduler. */
st3d_trainer *st3d_trainer_new(st3d_model *model, const st3d_trainer_params *params,
                               st3d_error *err);
void st3d_trainer_free(st3d_trainer *t);
/* One epoch of training over loader (its epoch `epoch - 1` order): a train
 * step and an SGD step per batch. */
int st3d_trainer_train_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch,
                             st3d_epoch_result *out, st3d_error *err);
/* One epoch of validation: eval-mode forward, mean loss and accuracy over
 * clips (the original's val_epoch). */
int st3d_trainer_val_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch,
                           st3d_epoch_result *out, st3d_error *err);
/* The scheduler's step that closes an epoch (val_loss for plateau, else
 * ignored); returns the next learning rate, which the optimizer now uses. */
double st3d_trainer_end_epoch(st3d_trainer *t, double val_loss);
double st3d_trainer_lr(const st3d_trainer *t);
int64_t st3d_trainer_iteration(const st3d_trainer *t);
st3d_exec *st3d_trainer_exec(st3d_trainer *t);

/* Checkpoints (safetensors): the state_dict, the SGD momentum buffers
 * ("optimizer.momentum_buffer.<key>"), and as metadata the epoch, the
 * architecture, the step count and the scheduler's state; `extra` metadata
 * (key, value pairs, NULL-terminated; may be NULL) is added.  A path ending
 * in ".pth" gets instead what the original main.py's save_checkpoint writes
 * with torch.save ({'epoch', 'arch', 'state_dict', 'optimizer',
 * 'scheduler'}, PyTorch's state dicts; `extra` is not used), which
 * torch.load reads.  Written atomically (temporary file, fsync, rename). */
int st3d_trainer_save(const st3d_trainer *t, const char *path, int64_t epoch,
                      const char *const *extra, st3d_error *err);
/* Restores what st3d_trainer_save wrote, or a .pth checkpoint of the
 * original main.py as its resume does (whose optimizer and scheduler
 * settings then replace the trainer's); *epoch gets the epoch it closed. */
int st3d_trainer_resume(st3d_trainer *t, const char *path, int64_t *epoch, st3d_error *err);

/* ------------------------------------------------------------- inference */

/* One video's clip scores (softmax per clip) and their mean. */
typedef struct st3d_video_scores {
    int64_t sample;            /* dataset index */
    int n_clips;               /* clips cut from it */
    int n_classes;             /* scores per clip */
    const float *clip_scores;  /* n_clips x n_classes */
    const int64_t *segments;   /* n_clips x 2: [first, one past last] frame numbers */
    const float *mean_scores;  /* n_classes: the clips' mean (the video's score) */
} st3d_video_scores;

/* Called once per video, in dataset order; non-zero stops the run. */
typedef int (*st3d_video_fn)(const st3d_video_scores *video, void *user);

/* The original's inference (inference.py): every clip of every video the
 * loader gives (no shuffling; SlidingWindow for --inference) through an
 * eval-mode forward of model on exec, softmax, and fn per complete video. */
int st3d_predict(st3d_exec *exec, st3d_model *model, st3d_loader *loader, st3d_video_fn fn,
                 void *user, st3d_error *err);

/* The results JSON inference.py writes: {"results": {video_id: [{"label",
 * "score"}, ...top_k]}}, or with average 0 (--inference_no_average) a list
 * of {"segment": [b, e], "result": [...]} per clip. */
typedef struct st3d_results st3d_results;
st3d_results *st3d_results_new(int top_k, int average, st3d_error *err);
void st3d_results_free(st3d_results *r);
int st3d_results_add(st3d_results *r, const st3d_dataset *ds, const st3d_video_scores *video,
                     st3d_error *err);
/* Written atomically. */
int st3d_results_write(const st3d_results *r, const char *path, st3d_error *err);
/* Across ranks (each ran st3d_predict on its share): rank 0's r gets every
 * rank's videos, in dataset order, as one process would have them; the
 * other ranks' r is unchanged.  Every rank must call it. */
int st3d_results_gather(st3d_results *r, st3d_dist *dist, st3d_error *err);

/* Clips of a st3d_clip_stream through an eval-mode forward, batch_size
 * clips at a time (from several videos when they interleave), and every
 * item of the stream handed to fn in the stream's order, clips with their
 * outputs; the companion's classify_video for any number of videos, its
 * --mode score (scores) and --mode feature (features) at once.  A BEGIN,
 * END or FAIL item waits for the clips queued before it. */
typedef struct st3d_clip_result {
    const st3d_stream_item *item; /* the stream's item */
    const float *logits;          /* CLIP: fc's n_classes outputs (the companion's
                                     "scores"), else NULL */
    const float *scores;          /* CLIP: their softmax, else NULL */
    const float *features;        /* CLIP: the feature_dim pooled values fc reads,
                                     else NULL */
} st3d_clip_result;

/* Called per item; a non-zero return stops the run (an error). */
typedef int (*st3d_clip_fn)(const st3d_clip_result *result, void *user);

int st3d_classify_stream(st3d_exec *exec, st3d_model *model, st3d_clip_stream *stream,
                         int batch_size, st3d_clip_fn fn, void *user, st3d_error *err);

/* A label drawn over a run of frames. */
typedef struct st3d_overlay_span {
    int64_t first, last; /* 1-based frame numbers it covers (a clip's segment) */
    char text[128];      /* what is drawn, e.g. "MoveLeft 0.93" */
} st3d_overlay_span;

/* Writes video_path again to out_path (H.264 when libavcodec has libx264,
 * else MPEG-4 part 2; container from out_path's extension; written under a
 * temporary name and renamed when complete) with, on each frame, the text
 * of the newest span covering it in a box at the top left (cairo), as the
 * companion's generate_result_video.py.  spans sorted by first.  Decodes
 * the video once more, a frame at a time. */
int st3d_overlay_video(const char *video_path, const char *out_path,
                       const st3d_overlay_span *spans, int64_t n_spans, st3d_error *err);

/* ----------------------------------------------------------------- logs */

/* The original's Logger (utils.py): a tab-separated file with a header row,
 * one row per log() call, flushed at once; rows end in \r\n as Python's csv
 * writer ends them; numbers as Python's repr prints them.  keep_until > 0
 * (resuming) keeps the rows whose first column (epoch) is below it and
 * appends after them; 0 starts the file anew. */
typedef struct st3d_logger st3d_logger;
st3d_logger *st3d_logger_open(const char *path, const char *const *columns, int n_columns,
                              int64_t keep_until, st3d_error *err);
/* One row: n_columns numbers (integral ones print without a decimal point
 * when is_int[i] is set; is_int may be NULL). */
int st3d_logger_log(st3d_logger *log, const double *values, const int *is_int, st3d_error *err);
void st3d_logger_close(st3d_logger *log);


/* ================================================ evaluation and figures */
/* What the original's util_scripts do after a run: learning curves from its
 * logs, and video-level accuracy of its inference results
 * (util_scripts/eval_accuracy.py), with pictures drawn by cairo. */

/* Draws the loss and accuracy per epoch of a training run, from
 * result_path/train.log and, when present, result_path/val.log (the
 * original's Logger files), to png_path (NULL: result_path/curves.png):
 * 1200 x 520 pixels, loss and accuracy panels, training and validation
 * lines.  Written atomically.  A malformed log fails naming file and line. */
int st3d_plot_curves(const char *result_path, const char *png_path, st3d_error *err);

typedef struct st3d_eval_params {
    const char *subset; /* annotation subset scored ("validation") */
    int top_k;          /* k of the second accuracy (5) */
    int ignore_missing; /* 0: videos absent from the results count as wrong
                           (eval_accuracy.py's default); 1: they are left
                           out of every denominator (its --ignore) */
} st3d_eval_params;

st3d_eval_params st3d_eval_default_params(void);

/* One class of the annotation's "labels". */
typedef struct st3d_eval_class {
    const char *label;  /* class name (owned by the st3d_eval) */
    int64_t n_videos;   /* videos of the subset with this label */
    int64_t n_missing;  /* of those, absent from the results */
    int64_t n_top1;     /* of those, with this label ranked first */
    int64_t n_topk;     /* of those, with this label among the first top_k */
    double top1, topk;  /* n_top1, n_topk over the videos counted; NaN when none is */
} st3d_eval_class;

typedef struct st3d_eval {
    const char *subset;     /* the subset scored (owned) */
    int top_k;              /* k of topk */
    int ignore_missing;     /* as the parameter */
    int64_t n_videos;       /* labelled videos of the subset (the ground truth) */
    int64_t n_missing;      /* of those, absent from the results */
    int64_t n_counted;      /* the denominator: n_videos, less n_missing when ignored */
    int64_t n_results;      /* videos in the results file (any subset) */
    int64_t n_top1, n_topk; /* videos whose label is ranked first / in the first top_k */
    double top1, topk;      /* n_top1 / n_counted, n_topk / n_counted */
    double mean_class_top1; /* mean of the classes' top1, over classes with videos counted */
    int64_t n_classes;      /* entries of classes (the annotation's "labels") */
    st3d_eval_class *classes; /* per class, in "labels" order */
    int64_t *confusion;     /* n_classes x n_classes video counts, row: true class,
                               column: top-1 prediction; missing videos in no cell */
} st3d_eval;

/* Scores results_path, the original's inference JSON ({"results": {video_id:
 * [{"label": name, "score": s}, ...]}}, from main.py --inference without
 * --no_average), against the labels of params->subset in annotation_path
 * (the original's annotation JSON; no video is opened).  Each video's
 * entries are ranked by score, ties kept in file order, as eval_accuracy.py.
 * A results label absent from "labels", a results video absent from the
 * annotation's "database" (which eval_accuracy.py would ignore), a subset
 * video without a label, or an empty result list fail naming the file and
 * the video. */
int st3d_eval_results(const char *results_path, const char *annotation_path,
                      const st3d_eval_params *params, st3d_eval **out, st3d_error *err);
void st3d_eval_free(st3d_eval *ev);
/* The summary as JSON: top1, top<k>, k, mean_class_top1, n_videos,
 * n_missing, n_counted, n_results, subset, ignore_missing, per_class (label,
 * n_videos, n_missing, top1, top<k>; null when no video is counted) and
 * confusion (the matrix as rows of counts).  Written atomically. */
int st3d_eval_write_json(const st3d_eval *ev, const char *json_path, st3d_error *err);
/* Draws the confusion matrix, each row normalised by its videos, with a
 * colour scale; class names on both axes up to 150 classes (smaller type for
 * many), none beyond.  Written atomically. */
int st3d_eval_plot_confusion(const st3d_eval *ev, const char *png_path, st3d_error *err);

/* ========================================= end of evaluation and figures == */

/* ======================================================= built-in datasets */
/* Datasets st3d makes itself, for demos and tests (`st3d make-dataset`).
 *
 * "motion": real encoded videos (MPEG-4 part 2 in .avi, libavcodec's own
 * encoder) of a textured shape moving over a textured background that
 * drifts in a random direction; the class is the shape's motion alone:
 * MoveLeft, MoveRight, MoveUp, MoveDown, Approach (growing), Recede
 * (shrinking), RotateClockwise, RotateAnticlockwise (fewer classes take the
 * first ones).  Shape, textures, colours, place, size, speeds and the
 * background's drift are drawn independently of the class, so no single
 * frame tells it.  Laid out as UCF-101:
 *   DIR/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi, clips in groups of 4, the
 *     test videos in the first groups, the training videos in the next;
 *   DIR/splits/classInd.txt, trainlist01.txt, testlist01.txt as UCF-101's;
 *   DIR/motion_params.txt, the parameters (to resume a run);
 * so that st3d_make_annotations (dataset "ucf101", src DIR/splits,
 * video_root DIR/videos) gives the original code's annotation JSON.  The
 * same parameters give byte-identical files; video (class c, number i)
 * depends on (seed, c, i), frames and size only.  Train on it without
 * horizontal flips (the original's --no_hflip): a flip turns MoveLeft into
 * MoveRight and RotateClockwise into RotateAnticlockwise. */

/* Called after each finished video from a worker thread (one call at a
 * time): done of total videos are there, path is the last one written. */
typedef void (*st3d_motion_progress_fn)(void *user, int64_t done, int64_t total, const char *path);

typedef struct st3d_motion_params {
    int n_classes;                    /* 1..8, the first of the list above (8) */
    int train_per_class;              /* training videos per class (40) */
    int test_per_class;               /* test videos per class (10) */
    int n_frames;                     /* frames per video, >= 2 (48) */
    int size;                         /* frame width and height, even, 32..2048 (128) */
    int fps;                          /* frame rate (25) */
    uint64_t seed;                    /* every video derives from (seed, class, index) (1) */
    int threads;                      /* videos encoded at once (one encoder thread each);
                                         0: all cores */
    int force;                        /* 0: resume a dataset of the same parameters found in
                                         DIR (its videos are kept), refuse another dataset or
                                         a non-empty folder; 1: remove an old dataset's files
                                         and make everything anew */
    st3d_motion_progress_fn progress; /* NULL: none */
    void *progress_user;              /* passed to progress */
} st3d_motion_params;

st3d_motion_params st3d_motion_default_params(void);

/* Name of class cls (0-based), e.g. "MoveLeft"; NULL out of range. */
const char *st3d_motion_class_name(int cls);

/* What a st3d_make_motion_dataset call did. */
typedef struct st3d_motion_stats {
    int64_t n_videos;  /* videos of the dataset */
    int64_t n_written; /* encoded by this call */
    int64_t n_present; /* found complete (a resumed run) and kept */
    int64_t bytes;     /* size of all the dataset's videos */
    double seconds;    /* wall time of the call */
} st3d_motion_stats;

/* Writes the "motion" dataset into dir (created if needed).  Each video is
 * encoded to a hidden temporary file and renamed into place when complete;
 * the split files are written last.  Bad parameters and an unusable dir
 * (not creatable or writable, another dataset, a non-empty folder without
 * force) fail with ST3D_ERR_INVALID.  stats may be NULL. */
int st3d_make_motion_dataset(const st3d_motion_params *params, const char *dir,
                             st3d_motion_stats *stats, st3d_error *err);

/* ================================================ end of built-in datasets */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* ST3D_H */

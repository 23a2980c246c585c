/*
 * model.h - inside an st3d_model: the network as a graph of nodes, the
 * parameter registry, and the flat buffers that hold parameters, gradients
 * and batch-norm statistics.
 *
 * A network is built once, independent of input size, as a list of nodes in
 * execution order, each producing one value.  Names are PyTorch module paths
 * ("layer2.0.downsample.0"), so parameter keys are name + ".weight" etc.,
 * registered in the order PyTorch's state_dict lists them.
 *
 * Executable plans (plan.h) are compiled from the graph per input shape.
 */
#ifndef ST3D_MODEL_H
#define ST3D_MODEL_H

#include "ops/ops.h"

typedef enum node_kind {
    NODE_INPUT,      /* the clip batch */
    NODE_CONV,       /* nn.Conv3d */
    NODE_BN,         /* nn.BatchNorm3d */
    NODE_RELU,       /* nn.ReLU */
    NODE_POOL,       /* nn.MaxPool3d or nn.AvgPool3d */
    NODE_SHORTCUT_A, /* zero-padded strided identity */
    NODE_ADD,        /* residual sum: in0 + in1 */
    NODE_GAP,        /* AdaptiveAvgPool3d(1) + flatten */
    NODE_FC,         /* nn.Linear */
    NODE_CONCAT,     /* torch.cat([in0, in1], dim=1) */
    NODE_DROPOUT,    /* nn.Dropout (identity at inference) */
    NODE_FLATTEN,    /* x.view(N, -1) of a 5-d tensor */
} node_kind;

typedef struct node {
    node_kind kind;   /* what it computes */
    char name[64];    /* module path (state_dict prefix), "" when parameter-free */
    int in0, in1;     /* producing nodes, -1 when unused */
    int channels;     /* output channels (features for FC) */
    conv_geom conv;   /* NODE_CONV geometry */
    pool_geom pool;   /* NODE_POOL geometry */
    float p;          /* NODE_DROPOUT probability */
    int stride;       /* NODE_SHORTCUT_A stride */
    int64_t w, b;     /* parameter offsets of weight and bias in the flat buffer, -1: none */
    int64_t rm, rv;   /* NODE_BN running mean / var offsets in the stats buffer */
    int bn;           /* NODE_BN index into num_batches_tracked */
} node;

typedef enum entry_kind { ENTRY_PARAM, ENTRY_STAT, ENTRY_COUNT } entry_kind;

/* One state_dict entry. */
typedef struct entry {
    char name[96];       /* key, e.g. "layer1.0.bn1.running_var" */
    entry_kind kind;     /* learnable parameter, running statistic, or batch counter */
    int ndim;            /* rank */
    int64_t shape[6];    /* sizes */
    int64_t offset;      /* into params (PARAM), stats (STAT) or nbt index (COUNT) */
    int64_t numel;       /* element count */
} entry;

struct plan;

struct st3d_model {
    st3d_model_params p;      /* how it was built */
    node *nodes;              /* graph in execution order */
    int n_nodes, cap_nodes;
    entry *entries;           /* state_dict in PyTorch's order */
    int n_entries, cap_entries;
    int64_t n_params;         /* floats in params and grads */
    int64_t n_stats;          /* floats in stats */
    int n_bn;                 /* batch norms (entries of nbt) */
    float *params;            /* learnable parameters, flat */
    float *grads;             /* their gradients, same layout */
    float *stats;             /* running means and variances */
    int64_t *nbt;             /* num_batches_tracked per batch norm */
    int feature_dim;          /* width of the pooled features */
    int logits_node;          /* the classifier node */
    int features_node;        /* the pooling node whose output is the feature vector */
    uint64_t version;         /* bumped whenever parameters change */
    st3d_exec *exec;          /* execution state of st3d_model_forward / _train_step,
                                 made on first use (exec.c) */
    int n_execs;              /* execs running this model (exec.c) */
    const st3d_tensor_map *weights_src; /* st3d_model_keep_weights_source: the file's map the
                                 parameters came from (borrowed), or NULL */
    uint8_t *dropped;         /* per node: 1 when its conv weights' pages were handed back
                                 (exec.c); NULL until a prepare may drop, and after a restore */
    uint8_t *drop_allowed;    /* per node, set by exec.c before a prepare: 1 when every
                                 cached plan reads that conv's weights in prepare only */
};

/* exec.c, for inference from a weights file (st3d_model_keep_weights_source):
 * after a plan is prepared, conv weights that no cached plan reads at run
 * time are dropped from memory; model_restore_params reads them back from
 * the file before anything reads the parameters again.  Both are no-ops
 * for a model without a weights source. */
int model_restore_params(st3d_model *m, st3d_error *err);
/* A prepare step's end of conv node j's weights: dropped if allowed. */
void model_drop_conv_weights(st3d_model *m, int j);

/* ---- graph construction (model.c), used by the family builders ---- */

/* Each returns the new node's index, or -1 with err set.  Parameter names
 * are derived from `name`. */
int g_input(st3d_model *m, int channels, st3d_error *err);
int g_conv(st3d_model *m, const char *name, int in, int oc, const int k[3], const int stride[3],
           const int pad[3], int groups, int bias, st3d_error *err);
int g_bn(st3d_model *m, const char *name, int in, st3d_error *err);
int g_relu(st3d_model *m, int in, st3d_error *err);
int g_pool(st3d_model *m, int in, const pool_geom *g, st3d_error *err);
int g_concat(st3d_model *m, int a, int b, st3d_error *err);
int g_dropout(st3d_model *m, int in, float p, st3d_error *err);
/* Flattens to `features` values per clip (C x D x H x W, checked per shape). */
int g_flatten(st3d_model *m, int in, int features, st3d_error *err);
/* nn.Linear followed by nothing; the classifier. */
int g_shortcut_a(st3d_model *m, int in, int channels, int stride, st3d_error *err);
int g_add(st3d_model *m, int a, int b, st3d_error *err);
int g_gap(st3d_model *m, int in, st3d_error *err);
int g_fc(st3d_model *m, const char *name, int in, int out, st3d_error *err);

/* Shorthand for cubic kernels: k x k x k, stride s, padding p. */
int g_conv_cube(st3d_model *m, const char *name, int in, int oc, int k, int s, int p, int groups,
                st3d_error *err);

/* The family builders.  Each returns 0 or -1, and sets feature_dim,
 * features_node and logits_node. */
int build_resnet_family(st3d_model *m, st3d_error *err);  /* resnet.c */
int build_resnet2p1d(st3d_model *m, st3d_error *err);     /* resnet2p1d.c */
int build_densenet(st3d_model *m, st3d_error *err);       /* densenet.c */
int build_c3d(st3d_model *m, st3d_error *err);            /* c3d.c */
int build_tv_resnet(st3d_model *m, st3d_error *err);      /* tv_resnet.c */

/* Blocks per stage of the ResNets of each depth (10 .. 200); -1 if none. */
int resnet_stage_blocks(int depth, int out[4]);
/* Checks the options every ResNet-like family shares. */
int resnet_check_common(const st3d_model_params *p, st3d_error *err);
/* A residual block's end: the shortcut of x (identity, or when
 * need_downsample type A / type B named prefix.downsample.*), the sum with
 * the main path y, and a ReLU when relu.  Returns the last node. */
int add_residual(st3d_model *m, const char *prefix, int x, int y, int out_planes, int stride,
                 int need_downsample, char shortcut, int relu, st3d_error *err);
/* The stem's max pool (3, stride 2, pad 1) unless --no-max-pool. */
int add_stem_pool(st3d_model *m, int x, st3d_error *err);
/* Appends global average pooling and the classifier `name`, and records
 * the features and logits nodes. */
int add_head(st3d_model *m, int x, const char *name, st3d_error *err);

/* Output dims (C, D, H, W) of every node for an input of C0 x D x H x W;
 * dims must hold 4 * n_nodes values. */
int model_infer_shapes(const st3d_model *m, const int64_t in_dhw[3], int64_t *dims,
                       st3d_error *err);

#endif /* ST3D_MODEL_H */

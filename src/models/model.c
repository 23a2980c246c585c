/*
 * model.c - building a network graph, registering its state_dict entries,
 * and the questions one can ask of it without running it (shapes, layer
 * table, parameter count, FLOPs).
 *
 * Construction is two-phase: the family builder adds nodes, each node
 * registers its entries (with offsets into flat buffers still to come); then
 * model_alloc_buffers() allocates parameters, gradients and statistics in
 * one go.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------ registry */

/* Registers a state_dict entry; returns its offset in its buffer. */
static int64_t add_entry(st3d_model *m, const char *prefix, const char *suffix, entry_kind kind,
                         int ndim, const int64_t *shape, st3d_error *err) {
    ST3D_GROW(m->entries, m->n_entries, m->cap_entries, err);
    entry *e = &m->entries[m->n_entries++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s.%s", prefix, suffix);
    e->kind = kind;
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    switch (kind) {
    case ENTRY_PARAM: e->offset = m->n_params; m->n_params += e->numel; break;
    case ENTRY_STAT: e->offset = m->n_stats; m->n_stats += e->numel; break;
    case ENTRY_COUNT: e->offset = m->n_bn; break;
    }
    return e->offset;
}

static int add_node(st3d_model *m, node_kind kind, const char *name, int in0, int in1,
                    st3d_error *err) {
    ST3D_GROW(m->nodes, m->n_nodes, m->cap_nodes, err);
    node *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    n->in0 = in0;
    n->in1 = in1;
    n->w = n->b = n->rm = n->rv = -1;
    n->bn = -1;
    n->channels = in0 >= 0 ? m->nodes[in0].channels : 0;
    return m->n_nodes++;
}

int g_input(st3d_model *m, int channels, st3d_error *err) {
    int i = add_node(m, NODE_INPUT, "", -1, -1, err);
    if (i >= 0) m->nodes[i].channels = channels;
    return i;
}

int g_conv(st3d_model *m, const char *name, int in, int oc, const int k[3], const int stride[3],
           const int pad[3], int groups, int bias, st3d_error *err) {
    int ic = m->nodes[in].channels;
    if (groups < 1 || ic % groups || oc % groups)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: %d and %d channels do not split into %d groups",
                         name, ic, oc, groups);
    int i = add_node(m, NODE_CONV, name, in, -1, err);
    if (i < 0) return -1;
    node *n = &m->nodes[i];
    n->channels = oc;
    conv_geom *g = &n->conv;
    g->ic = ic;
    g->oc = oc;
    g->groups = groups;
    for (int d = 0; d < 3; d++) {
        g->k[d] = k[d];
        g->stride[d] = stride[d];
        g->pad[d] = pad[d];
    }
    int64_t wshape[5] = {oc, ic / groups, k[0], k[1], k[2]};
    n->w = add_entry(m, name, "weight", ENTRY_PARAM, 5, wshape, err);
    if (bias) {
        int64_t bshape[1] = {oc};
        n->b = add_entry(m, name, "bias", ENTRY_PARAM, 1, bshape, err);
    }
    return i;
}

int g_conv_cube(st3d_model *m, const char *name, int in, int oc, int k, int s, int p, int groups,
                st3d_error *err) {
    int kk[3] = {k, k, k}, ss[3] = {s, s, s}, pp[3] = {p, p, p};
    if (m->p.spatial_only) kk[0] = 1, pp[0] = 0; /* the 2D control: k x k per frame */
    return g_conv(m, name, in, oc, kk, ss, pp, groups, 0, err);
}

int g_bn(st3d_model *m, const char *name, int in, st3d_error *err) {
    int i = add_node(m, NODE_BN, name, in, -1, err);
    if (i < 0) return -1;
    node *n = &m->nodes[i];
    int64_t c[1] = {n->channels};
    n->w = add_entry(m, name, "weight", ENTRY_PARAM, 1, c, err);
    n->b = add_entry(m, name, "bias", ENTRY_PARAM, 1, c, err);
    n->rm = add_entry(m, name, "running_mean", ENTRY_STAT, 1, c, err);
    n->rv = add_entry(m, name, "running_var", ENTRY_STAT, 1, c, err);
    add_entry(m, name, "num_batches_tracked", ENTRY_COUNT, 0, c, err);
    n->bn = m->n_bn++;
    return i;
}

int g_relu(st3d_model *m, int in, st3d_error *err) {
    return add_node(m, NODE_RELU, "", in, -1, err);
}

int g_pool(st3d_model *m, int in, const pool_geom *g, st3d_error *err) {
    int i = add_node(m, NODE_POOL, "", in, -1, err);
    if (i >= 0) m->nodes[i].pool = *g;
    return i;
}

int g_concat(st3d_model *m, int a, int b, st3d_error *err) {
    int i = add_node(m, NODE_CONCAT, "", a, b, err);
    if (i >= 0) m->nodes[i].channels = m->nodes[a].channels + m->nodes[b].channels;
    return i;
}

int g_dropout(st3d_model *m, int in, float p, st3d_error *err) {
    int i = add_node(m, NODE_DROPOUT, "", in, -1, err);
    if (i >= 0) m->nodes[i].p = p;
    return i;
}

int g_flatten(st3d_model *m, int in, int features, st3d_error *err) {
    int i = add_node(m, NODE_FLATTEN, "", in, -1, err);
    if (i >= 0) m->nodes[i].channels = features;
    return i;
}

int g_shortcut_a(st3d_model *m, int in, int channels, int stride, st3d_error *err) {
    int i = add_node(m, NODE_SHORTCUT_A, "", in, -1, err);
    if (i >= 0) {
        m->nodes[i].channels = channels;
        m->nodes[i].stride = stride;
    }
    return i;
}

int g_add(st3d_model *m, int a, int b, st3d_error *err) {
    if (m->nodes[a].channels != m->nodes[b].channels)
        return st3d_fail(err, ST3D_ERR_INVALID, "residual sum of %d and %d channels",
                         m->nodes[a].channels, m->nodes[b].channels);
    return add_node(m, NODE_ADD, "", a, b, err);
}

int g_gap(st3d_model *m, int in, st3d_error *err) {
    return add_node(m, NODE_GAP, "", in, -1, err);
}

int g_fc(st3d_model *m, const char *name, int in, int out, st3d_error *err) {
    int i = add_node(m, NODE_FC, name, in, -1, err);
    if (i < 0) return -1;
    node *n = &m->nodes[i];
    int64_t wshape[2] = {out, m->nodes[in].channels}, bshape[1] = {out};
    n->channels = out;
    n->w = add_entry(m, name, "weight", ENTRY_PARAM, 2, wshape, err);
    n->b = add_entry(m, name, "bias", ENTRY_PARAM, 1, bshape, err);
    return i;
}

/* ------------------------------------------------------------ shapes */

int model_infer_shapes(const st3d_model *m, const int64_t in_dhw[3], int64_t *dims,
                       st3d_error *err) {
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        int64_t *o = dims + 4 * i;
        const int64_t *a = n->in0 >= 0 ? dims + 4 * n->in0 : NULL;
        o[0] = n->channels;
        switch (n->kind) {
        case NODE_INPUT:
            for (int d = 0; d < 3; d++) o[1 + d] = in_dhw[d];
            break;
        case NODE_CONV:
            for (int d = 0; d < 3; d++)
                o[1 + d] = (a[1 + d] + 2 * n->conv.pad[d] - n->conv.k[d]) / n->conv.stride[d] + 1;
            break;
        case NODE_POOL:
            for (int d = 0; d < 3; d++)
                o[1 + d] = (a[1 + d] + 2 * n->pool.pad[d] - n->pool.k[d]) / n->pool.stride[d] + 1;
            break;
        case NODE_SHORTCUT_A:
            for (int d = 0; d < 3; d++) o[1 + d] = (a[1 + d] - 1) / n->stride + 1;
            break;
        case NODE_ADD: {
            const int64_t *b = dims + 4 * n->in1;
            for (int d = 0; d < 3; d++) {
                if (a[1 + d] != b[1 + d])
                    return st3d_fail(err, ST3D_ERR_INVALID,
                                     "input %lldx%lldx%lld is too small for this network",
                                     (long long)in_dhw[0], (long long)in_dhw[1],
                                     (long long)in_dhw[2]);
                o[1 + d] = a[1 + d];
            }
            break;
        }
        case NODE_FLATTEN:
            if (a[0] * a[1] * a[2] * a[3] != n->channels)
                return st3d_fail(err, ST3D_ERR_INVALID,
                                 "input %lldx%lldx%lld gives %lld features before %s, which "
                                 "needs %d (use the input size the network was made for)",
                                 (long long)in_dhw[0], (long long)in_dhw[1], (long long)in_dhw[2],
                                 (long long)(a[0] * a[1] * a[2] * a[3]),
                                 m->nodes[i + 1 < m->n_nodes ? i + 1 : i].name, n->channels);
            o[1] = o[2] = o[3] = 1;
            break;
        case NODE_GAP: case NODE_FC:
            o[1] = o[2] = o[3] = 1;
            break;
        default:
            for (int d = 0; d < 3; d++) o[1 + d] = a[1 + d];
        }
        for (int d = 1; d < 4; d++)
            if (o[d] < 1)
                return st3d_fail(err, ST3D_ERR_INVALID,
                                 "input %lldx%lldx%lld is too small for this network",
                                 (long long)in_dhw[0], (long long)in_dhw[1], (long long)in_dhw[2]);
    }
    return 0;
}

/* ------------------------------------------------------------ questions */

const st3d_model_params *st3d_model_get_params(const st3d_model *m) { return &m->p; }
int64_t st3d_model_n_params(const st3d_model *m) { return m->n_params; }
int st3d_model_feature_dim(const st3d_model *m) { return m->feature_dim; }

float *st3d_model_param_data(st3d_model *m, int64_t *count) {
    if (count) *count = m->n_params;
    /* a writable view: whatever the caller writes is no longer the file's */
    if (model_restore_params(m, NULL) != 0) return NULL;
    m->weights_src = NULL;
    return m->params;
}

float *st3d_model_grad_data(st3d_model *m, int64_t *count) {
    if (count) *count = m->n_params;
    return m->grads;
}

size_t st3d_model_n_layers(const st3d_model *m) { return (size_t)m->n_nodes - 1; }

static const char *kind_name(node_kind k) {
    switch (k) {
    case NODE_INPUT: return "input";
    case NODE_CONV: return "conv3d";
    case NODE_BN: return "batchnorm3d";
    case NODE_RELU: return "relu";
    case NODE_POOL: return "pool3d";
    case NODE_CONCAT: return "concat";
    case NODE_DROPOUT: return "dropout";
    case NODE_FLATTEN: return "flatten";
    case NODE_SHORTCUT_A: return "shortcut-A";
    case NODE_ADD: return "add";
    case NODE_GAP: return "avgpool3d(1)";
    case NODE_FC: return "linear";
    }
    return "?";
}

static int64_t node_params(const st3d_model *m, const node *n) {
    int64_t total = 0;
    size_t len = strlen(n->name);
    if (!len) return 0;
    for (int i = 0; i < m->n_entries; i++) {
        const entry *e = &m->entries[i];
        if (e->kind == ENTRY_PARAM && !strncmp(e->name, n->name, len) && e->name[len] == '.' &&
            !strchr(e->name + len + 1, '.'))
            total += e->numel;
    }
    return total;
}

int st3d_model_layer(const st3d_model *m, size_t i, const int64_t in_dhw[3], st3d_layer_info *info,
                     st3d_error *err) {
    if (i >= st3d_model_n_layers(m))
        return st3d_fail(err, ST3D_ERR_INVALID, "layer %zu out of range", i);
    int64_t *dims = st3d_malloc(sizeof(int64_t) * 4 * (size_t)m->n_nodes, err);
    if (!dims) return -1;
    if (model_infer_shapes(m, in_dhw, dims, err) != 0) {
        free(dims);
        return -1;
    }
    const node *n = &m->nodes[i + 1];
    memset(info, 0, sizeof *info);
    info->name = n->name;
    info->kind = n->kind == NODE_POOL ? (n->pool.max ? "maxpool3d" : "avgpool3d")
                                      : kind_name(n->kind);
    for (int d = 0; d < 4; d++) info->out_shape[d] = dims[4 * (i + 1) + d];
    if (n->kind == NODE_CONV) {
        for (int d = 0; d < 3; d++) {
            info->kernel[d] = n->conv.k[d];
            info->stride[d] = n->conv.stride[d];
        }
        info->groups = n->conv.groups;
    } else if (n->kind == NODE_POOL) {
        for (int d = 0; d < 3; d++) {
            info->kernel[d] = n->pool.k[d];
            info->stride[d] = n->pool.stride[d];
        }
    }
    info->n_params = node_params(m, n);
    free(dims);
    return 0;
}

double st3d_model_flops(const st3d_model *m, const int64_t in_dhw[3]) {
    int64_t *dims = malloc(sizeof(int64_t) * 4 * (size_t)m->n_nodes);
    if (!dims || model_infer_shapes(m, in_dhw, dims, NULL) != 0) {
        free(dims);
        return 0.0;
    }
    double flops = 0.0;
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        const int64_t *o = dims + 4 * i;
        if (n->kind == NODE_CONV) {
            double macs = (double)o[0] * o[1] * o[2] * o[3] * (n->conv.ic / n->conv.groups) *
                          n->conv.k[0] * n->conv.k[1] * n->conv.k[2];
            flops += 2.0 * macs;
        } else if (n->kind == NODE_FC) {
            flops += 2.0 * n->channels * m->nodes[n->in0].channels;
        }
    }
    free(dims);
    return flops;
}

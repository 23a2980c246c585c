/*
 * model_io.c - the life of an st3d_model: creation (graph, flat buffers,
 * initialization as PyTorch does it), loading a state_dict from a tensor map
 * with exact key and shape checks, and exporting state_dict and gradients.
 */
#include "model.h"
#include "plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

st3d_model_params st3d_model_default_params(void) {
    st3d_model_params p;
    memset(&p, 0, sizeof p);
    snprintf(p.model, sizeof p.model, "resnet");
    p.model_depth = 18;
    p.n_classes = 400;
    p.n_input_channels = 3;
    p.resnet_shortcut = 'B';
    p.conv1_t_size = 7;
    p.conv1_t_stride = 1;
    p.resnet_widen_factor = 1.0f;
    p.wide_resnet_k = 2;
    p.resnext_cardinality = 32;
    p.dropout = 0.5f;
    return p;
}

/* ------------------------------------------------------------ random init */

/* splitmix64: small, seedable, good enough for weight initialization. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((next_u64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static double normal(uint64_t *s) {
    double u = uniform01(s), v = uniform01(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* As the original code's constructors: kaiming_normal_(mode='fan_out',
 * nonlinearity='relu') for convs, weight 1 / bias 0 for batch norms, and
 * nn.Linear's default U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
static void init_params(st3d_model *m, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        if (n->kind == NODE_CONV) {
            const conv_geom *g = &n->conv;
            int64_t ksz = (int64_t)g->k[0] * g->k[1] * g->k[2];
            int64_t count = (int64_t)g->oc * (g->ic / g->groups) * ksz;
            double std = sqrt(2.0 / (double)(g->oc * ksz));
            for (int64_t j = 0; j < count; j++) m->params[n->w + j] = (float)(std * normal(&s));
            if (n->b >= 0) {
                double bound = 1.0 / sqrt((double)(g->ic / g->groups) * ksz);
                for (int j = 0; j < g->oc; j++)
                    m->params[n->b + j] = (float)((2.0 * uniform01(&s) - 1.0) * bound);
            }
        } else if (n->kind == NODE_BN) {
            for (int j = 0; j < n->channels; j++) {
                m->params[n->w + j] = 1.0f;
                m->params[n->b + j] = 0.0f;
                m->stats[n->rm + j] = 0.0f;
                m->stats[n->rv + j] = 1.0f;
            }
            m->nbt[n->bn] = 0;
        } else if (n->kind == NODE_FC) {
            int in = m->nodes[n->in0].channels;
            double bound = 1.0 / sqrt((double)in);
            for (int64_t j = 0; j < (int64_t)n->channels * in; j++)
                m->params[n->w + j] = (float)((2.0 * uniform01(&s) - 1.0) * bound);
            for (int j = 0; j < n->channels; j++)
                m->params[n->b + j] = (float)((2.0 * uniform01(&s) - 1.0) * bound);
        }
    }
}

/* ------------------------------------------------------------ life cycle */

/* The family builder for p.model. */
static int build_network(st3d_model *m, st3d_error *err) {
    static const struct {
        const char *name;
        int (*build)(st3d_model *, st3d_error *);
    } families[] = {
        {"resnet", build_resnet_family},     {"preresnet", build_resnet_family},
        {"wideresnet", build_resnet_family}, {"resnext", build_resnet_family},
        {"resnet2p1d", build_resnet2p1d},    {"densenet", build_densenet},
        {"c3d", build_c3d},                  {"tv-r3d", build_tv_resnet},
        {"tv-mc3", build_tv_resnet},         {"tv-r2plus1d", build_tv_resnet},
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        if (strcmp(m->p.model, families[i].name)) continue;
        if (m->p.spatial_only && families[i].build != build_resnet_family)
            return st3d_fail(err, ST3D_ERR_INVALID,
                             "--spatial-only is for resnet, preresnet, wideresnet and resnext, not %s",
                             m->p.model);
        return families[i].build(m, err);
    }
    return st3d_fail(err, ST3D_ERR_INVALID,
                     "unknown model '%s' (choose resnet, preresnet, wideresnet, resnext, "
                     "resnet2p1d, densenet, c3d, tv-r3d, tv-mc3, tv-r2plus1d)",
                     m->p.model);
}

/* The network of params; its parameters drawn from seed when init is 1,
 * else zero.  The buffers come from calloc, which hands out fresh pages
 * untouched: the gradients of a network that never trains, and the values
 * of a blank one until st3d_model_load writes them, cost no memory and no
 * time. */
static st3d_model *model_create(const st3d_model_params *params, uint64_t seed, int init,
                                st3d_error *err) {
    st3d_model *m = st3d_calloc(1, sizeof *m, err);
    if (!m) return NULL;
    m->p = *params;
    m->logits_node = m->features_node = -1;
    if (build_network(m, err) != 0) goto fail;
    m->params = st3d_calloc((size_t)m->n_params, sizeof(float), err);
    m->grads = m->params ? st3d_calloc((size_t)m->n_params, sizeof(float), err) : NULL;
    m->stats = m->grads ? st3d_calloc((size_t)m->n_stats + 1, sizeof(float), err) : NULL;
    m->nbt = m->stats ? st3d_calloc((size_t)m->n_bn + 1, sizeof(int64_t), err) : NULL;
    if (!m->nbt) goto fail;
    if (init) init_params(m, seed);
    return m;
fail:
    st3d_model_free(m);
    return NULL;
}

st3d_model *st3d_model_new(const st3d_model_params *params, uint64_t seed, st3d_error *err) {
    return model_create(params, seed, 1, err);
}

st3d_model *st3d_model_new_blank(const st3d_model_params *params, st3d_error *err) {
    return model_create(params, 0, 0, err);
}

void st3d_model_free(st3d_model *m) {
    if (!m) return;
    st3d_exec_free(m->exec);
    free(m->dropped);
    free(m->drop_allowed);
    free(m->params);
    free(m->grads);
    free(m->stats);
    free(m->nbt);
    free(m->nodes);
    free(m->entries);
    free(m);
}

/* ------------------------------------------------------------ state_dict */

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
}

/* Is key a parameter of the node `skip` (a classifier being replaced)? */
static int skipped(const st3d_model *m, int skip, const char *key) {
    if (skip < 0) return 0;
    size_t n = strlen(m->nodes[skip].name);
    return !strncmp(key, m->nodes[skip].name, n) && key[n] == '.';
}

/* Loads map into m; the parameters of node `skip` (or none: -1) are left
 * out on both sides. */
static int load_entries(st3d_model *m, const st3d_tensor_map *map, const char *source, int skip,
                        st3d_error *err) {
    const char *src = source ? source : "weights";
    /* every key of the map must belong to the network */
    for (size_t i = 0; i < st3d_tensor_map_count(map); i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(map, i);
        if (skipped(m, skip, t->name)) continue;
        /* a training checkpoint's optimizer state (st3d_trainer_save) is not
         * part of the network: the checkpoint loads as weights */
        if (!strncmp(t->name, "optimizer.", 10)) continue;
        int known = 0;
        for (int j = 0; j < m->n_entries && !known; j++) known = !strcmp(m->entries[j].name, t->name);
        if (!known)
            return st3d_fail(err, ST3D_ERR_MISMATCH,
                             "%s: unexpected tensor '%s' (not part of %s-%d)", src, t->name,
                             m->p.model, m->p.model_depth);
    }
    /* check everything before changing anything */
    for (int j = 0; j < m->n_entries; j++) {
        const entry *e = &m->entries[j];
        const st3d_tensor_info *t = st3d_tensor_map_find(map, e->name);
        if (skipped(m, skip, e->name)) continue;
        if (!t) {
            if (e->kind == ENTRY_COUNT) continue; /* old checkpoints lack it */
            return st3d_fail(err, ST3D_ERR_MISMATCH, "%s: missing tensor '%s'", src, e->name);
        }
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        int same = t->ndim == e->ndim || (e->kind == ENTRY_COUNT && numel == 1);
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) {
            char want[96], got[96];
            format_shape(want, sizeof want, e->ndim, e->shape);
            format_shape(got, sizeof got, t->ndim, t->shape);
            return st3d_fail(err, ST3D_ERR_MISMATCH, "%s: tensor '%s' has shape %s, expected %s",
                             src, e->name, got, want);
        }
    }
    for (int j = 0; j < m->n_entries; j++) {
        const entry *e = &m->entries[j];
        const st3d_tensor_info *t = st3d_tensor_map_find(map, e->name);
        if (!t || skipped(m, skip, e->name)) continue;
        if (e->kind == ENTRY_COUNT) {
            float v = 0.0f;
            if (st3d_tensor_to_f32(t, &v, err) != 0) return -1;
            m->nbt[e->offset] = (int64_t)v;
            continue;
        }
        float *dst = (e->kind == ENTRY_PARAM ? m->params : m->stats) + e->offset;
        if (st3d_tensor_to_f32(t, dst, err) != 0) return -1;
        st3d_tensor_map_release(map, t); /* a mapped file's pages: one copy at a time */
    }
    /* every dropped weight was just written; another map is no source */
    free(m->dropped);
    m->dropped = NULL;
    if (map != m->weights_src) m->weights_src = NULL;
    m->version++;
    return 0;
}

/* ---------------------------------------------- weights read back (exec.c) */

void st3d_model_keep_weights_source(st3d_model *m, const st3d_tensor_map *map) {
    m->weights_src = map;
}

void model_drop_conv_weights(st3d_model *m, int j) {
    if (!m->drop_allowed || !m->drop_allowed[j] || !m->dropped || m->dropped[j]) return;
    const conv_geom *g = &m->nodes[j].conv;
    int64_t count = (int64_t)g->oc * (g->ic / g->groups) * g->k[0] * g->k[1] * g->k[2];
    st3d_drop_pages(m->params + m->nodes[j].w, sizeof(float) * (size_t)count);
    m->dropped[j] = 1;
}

int model_restore_params(st3d_model *m, st3d_error *err) {
    if (!m->dropped) return 0;
    for (int j = 0; j < m->n_nodes; j++) {
        if (!m->dropped[j]) continue;
        const node *n = &m->nodes[j];
        const st3d_tensor_info *t = NULL;
        for (int k = 0; k < m->n_entries && !t; k++)
            if (m->entries[k].kind == ENTRY_PARAM && m->entries[k].offset == n->w)
                t = st3d_tensor_map_find(m->weights_src, m->entries[k].name);
        if (!t) return st3d_fail(err, ST3D_ERR_MISMATCH, "the weights of '%s' are gone from their file's map",
                                 n->name);
        if (st3d_tensor_to_f32(t, m->params + n->w, err) != 0) return -1;
        st3d_tensor_map_release(m->weights_src, t);
    }
    free(m->dropped);
    m->dropped = NULL; /* no version bump: the values are the ones the plans were prepared from */
    return 0;
}

int st3d_model_load(st3d_model *m, const st3d_tensor_map *map, const char *source,
                    st3d_error *err) {
    return load_entries(m, map, source, -1, err);
}

int st3d_model_load_pretrained(st3d_model *m, const st3d_tensor_map *map, const char *source,
                               st3d_error *err) {
    /* mirrors the original's fine-tuning: the pretrained classifier is
     * replaced by a new one (model.fc = nn.Linear(in, n_finetune_classes)) */
    const node *fc = &m->nodes[m->logits_node];
    char key[96];
    snprintf(key, sizeof key, "%s.weight", fc->name);
    const st3d_tensor_info *w = st3d_tensor_map_find(map, key);
    int replace = w && w->ndim == 2 && w->shape[0] != fc->channels;
    return load_entries(m, map, source, replace ? m->logits_node : -1, err);
}

/* The map's entries point into the model's buffers (borrowed, no copy). */
static int export_entries(const st3d_model *m, int grads, st3d_tensor_map **out, st3d_error *err) {
    /* parameters handed back after a prepare are read back first (a cache,
     * not part of the model's value: hence the const cast) */
    if (model_restore_params((st3d_model *)m, err) != 0) return -1;
    st3d_tensor_map *map = st3d_tensor_map_new();
    if (!map) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
    for (int j = 0; j < m->n_entries; j++) {
        const entry *e = &m->entries[j];
        int rc;
        if (grads && e->kind != ENTRY_PARAM) continue;
        if (e->kind == ENTRY_COUNT)
            rc = st3d_tensor_map_add_borrowed(map, e->name, ST3D_I64, 0, e->shape, &m->nbt[e->offset],
                                              err);
        else
            rc = st3d_tensor_map_add_borrowed(map, e->name, ST3D_F32, e->ndim, e->shape,
                                     (e->kind == ENTRY_STAT ? m->stats
                                      : grads             ? m->grads
                                                          : m->params) + e->offset,
                                     err);
        if (rc != 0) {
            st3d_tensor_map_free(map);
            return -1;
        }
    }
    *out = map;
    return 0;
}

int st3d_model_state_dict(const st3d_model *m, st3d_tensor_map **out, st3d_error *err) {
    return export_entries(m, 0, out, err);
}

int st3d_model_grad_dict(const st3d_model *m, st3d_tensor_map **out, st3d_error *err) {
    return export_entries(m, 1, out, err);
}

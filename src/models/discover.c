/*
 * discover.c - which network does a state_dict describe?
 *
 * A weights file written by `st3d convert` records its architecture in the
 * safetensors metadata; anything else (a .pth of the original code, of
 * torchvision, of the user's own training) is recognised from its keys and
 * shapes: the family from the names (features.denseblock*, conv1_s, stem.0,
 * conv3a, conv1 + layer*), the depth from the blocks per stage, the
 * shortcut from the presence of downsample convs, widths from conv shapes,
 * and n_classes from the classifier.  What keys cannot tell (conv1's
 * temporal stride, whether the max pool is skipped) keeps its default.
 */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const st3d_tensor_info *find(const st3d_tensor_map *map, const char *fmt, ...)
    ST3D_PRINTF(2, 3);
static const st3d_tensor_info *find(const st3d_tensor_map *map, const char *fmt, ...) {
    char key[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    return st3d_tensor_map_find(map, key);
}

/* Number of blocks of stage s: the count of "<prefix>layer<s>.<i>.<probe>". */
static int count_blocks(const st3d_tensor_map *map, int stage, const char *probe) {
    int n = 0;
    while (find(map, "layer%d.%d.%s", stage, n, probe)) n++;
    return n;
}

static int depth_from_blocks(const int n[4], int bottleneck) {
    static const struct { int depth, n[4], bottleneck; } table[] = {
        {10, {1, 1, 1, 1}, 0},   {18, {2, 2, 2, 2}, 0},   {34, {3, 4, 6, 3}, 0},
        {50, {3, 4, 6, 3}, 1},   {101, {3, 4, 23, 3}, 1}, {152, {3, 8, 36, 3}, 1},
        {200, {3, 24, 36, 3}, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!memcmp(table[i].n, n, sizeof table[i].n) && table[i].bottleneck == bottleneck)
            return table[i].depth;
    return -1;
}

static int classes_of(const st3d_tensor_info *fc) { return fc && fc->ndim == 2 ? (int)fc->shape[0] : -1; }

/* Metadata written by st3d convert. */
static int from_metadata(const st3d_tensor_map *map, st3d_model_params *p) {
    const char *model = st3d_tensor_map_get_meta(map, "st3d.model");
    if (!model) return 0;
    snprintf(p->model, sizeof p->model, "%s", model);
#define META_INT(key, field)                                              \
    do {                                                                  \
        const char *v_ = st3d_tensor_map_get_meta(map, "st3d." key);      \
        if (v_) p->field = atoi(v_);                                      \
    } while (0)
    META_INT("model_depth", model_depth);
    META_INT("n_classes", n_classes);
    META_INT("n_input_channels", n_input_channels);
    META_INT("conv1_t_size", conv1_t_size);
    META_INT("conv1_t_stride", conv1_t_stride);
    META_INT("no_max_pool", no_max_pool);
    META_INT("wide_resnet_k", wide_resnet_k);
    META_INT("resnext_cardinality", resnext_cardinality);
    META_INT("conv1_planes", conv1_planes);
    META_INT("c3d_bn", c3d_bn);
    META_INT("spatial_only", spatial_only);
#undef META_INT
    const char *v = st3d_tensor_map_get_meta(map, "st3d.resnet_shortcut");
    if (v && (v[0] == 'A' || v[0] == 'B')) p->resnet_shortcut = v[0];
    v = st3d_tensor_map_get_meta(map, "st3d.resnet_widen_factor");
    if (v) p->resnet_widen_factor = (float)atof(v);
    return 1;
}

int st3d_model_params_from_weights(const st3d_tensor_map *map, st3d_model_params *p,
                                   st3d_error *err) {
    *p = st3d_model_default_params();
    if (from_metadata(map, p)) return 0;
    const st3d_tensor_info *t;

    if ((t = find(map, "features.conv1.weight")) && t->ndim == 5) { /* DenseNet */
        static const struct { int depth, n3, n4; } dn[] = {{121, 24, 16}, {169, 32, 32}, {201, 48, 32}, {264, 64, 48}};
        int n3 = 0, n4 = 0;
        while (find(map, "features.denseblock3.denselayer%d.conv1.weight", n3 + 1)) n3++;
        while (find(map, "features.denseblock4.denselayer%d.conv1.weight", n4 + 1)) n4++;
        snprintf(p->model, sizeof p->model, "densenet");
        p->model_depth = -1;
        for (size_t i = 0; i < 4; i++)
            if (dn[i].n3 == n3 && dn[i].n4 == n4) p->model_depth = dn[i].depth;
        p->n_input_channels = (int)t->shape[1];
        p->conv1_t_size = (int)t->shape[2];
        p->n_classes = classes_of(find(map, "classifier.weight"));
    } else if ((t = find(map, "stem.0.weight")) && t->ndim == 5) { /* torchvision */
        const st3d_tensor_info *l2 = find(map, "layer2.0.conv1.0.weight");
        snprintf(p->model, sizeof p->model, "%s",
                 find(map, "stem.3.weight") ? "tv-r2plus1d"
                 : (l2 && l2->ndim == 5 && l2->shape[2] == 1) ? "tv-mc3"
                                                               : "tv-r3d");
        p->model_depth = 18;
        p->n_input_channels = (int)t->shape[1];
        p->n_classes = classes_of(find(map, "fc.weight"));
    } else if ((t = find(map, "conv3a.weight")) && t->ndim == 5) { /* C3D */
        snprintf(p->model, sizeof p->model, "c3d");
        p->c3d_bn = find(map, "bn1.weight") != NULL;
        const st3d_tensor_info *c1 = find(map, "conv1.weight");
        if (c1 && c1->ndim == 5) p->n_input_channels = (int)c1->shape[1];
        p->n_classes = classes_of(find(map, "fc8.weight"));
    } else if ((t = find(map, "conv1_s.weight")) && t->ndim == 5) { /* R(2+1)D */
        const st3d_tensor_info *ct = find(map, "conv1_t.weight");
        int bottleneck = find(map, "layer1.0.conv3.weight") != NULL, n[4];
        for (int s = 0; s < 4; s++)
            n[s] = count_blocks(map, s + 1, bottleneck ? "conv3.weight" : "conv2_t.weight");
        snprintf(p->model, sizeof p->model, "resnet2p1d");
        p->model_depth = depth_from_blocks(n, bottleneck);
        p->n_input_channels = (int)t->shape[1];
        if (ct && ct->ndim == 5) {
            p->conv1_t_size = (int)ct->shape[2];
            p->resnet_widen_factor = (float)ct->shape[0] / 64.0f;
        }
        p->resnet_shortcut = find(map, "layer2.0.downsample.0.weight") ? 'B' : 'A';
        p->n_classes = classes_of(find(map, "fc.weight"));
    } else if ((t = find(map, "conv1.weight")) && t->ndim == 5 && find(map, "layer1.0.conv1.weight")) {
        /* the ResNet family: resnet, preresnet, wideresnet, resnext */
        const st3d_tensor_info *c1 = find(map, "layer1.0.conv1.weight");
        const st3d_tensor_info *c2 = find(map, "layer1.0.conv2.weight");
        const st3d_tensor_info *c3 = find(map, "layer1.0.conv3.weight");
        const st3d_tensor_info *bn1 = find(map, "layer2.0.bn1.weight");
        const st3d_tensor_info *l2c1 = find(map, "layer2.0.conv1.weight");
        int bottleneck = c3 != NULL, n[4];
        for (int s = 0; s < 4; s++) n[s] = count_blocks(map, s + 1, "conv1.weight");
        p->model_depth = depth_from_blocks(n, bottleneck);
        /* pre-activation: a block's bn1 normalizes its input, not conv1's output */
        int pre = bn1 && l2c1 && l2c1->ndim == 5 && bn1->shape[0] == l2c1->shape[1] &&
                  bn1->shape[0] != l2c1->shape[0];
        int groups = 1;
        if (c2 && c1 && c2->ndim == 5 && c1->ndim == 5 && c2->shape[1] > 0)
            groups = (int)(c1->shape[0] / c2->shape[1]);
        int mid = c1 && c1->ndim == 5 ? (int)c1->shape[0] : 64;
        int out = c3 && c3->ndim == 5 ? (int)c3->shape[0] : mid;
        if (pre) {
            snprintf(p->model, sizeof p->model, "preresnet");
        } else if (bottleneck && groups > 1) {
            snprintf(p->model, sizeof p->model, "resnext");
            p->resnext_cardinality = groups;
        } else if (bottleneck && out == 2 * mid) {
            snprintf(p->model, sizeof p->model, "wideresnet");
            p->wide_resnet_k = mid / 64 > 0 ? mid / 64 : 1;
        } else {
            snprintf(p->model, sizeof p->model, "resnet");
            p->resnet_widen_factor = (float)mid / 64.0f;
        }
        p->n_input_channels = (int)t->shape[1];
        p->conv1_t_size = (int)t->shape[2];
        /* the 2D control: layer1's 3x3x3 convolution is 1x3x3 */
        const st3d_tensor_info *k3 = bottleneck ? c2 : c1;
        p->spatial_only = k3 && k3->ndim == 5 && k3->shape[2] == 1 && k3->shape[3] == 3;
        /* the 2018 code's wideresnet and resnext have a 64-wide conv1 */
        int stem_default = !strcmp(p->model, "resnext")      ? 128
                           : !strcmp(p->model, "wideresnet") ? 64 * p->wide_resnet_k
                                                             : (int)(64 * p->resnet_widen_factor);
        if ((int)t->shape[0] != stem_default) p->conv1_planes = (int)t->shape[0];
        p->resnet_shortcut = find(map, "layer2.0.downsample.0.weight") ? 'B' : 'A';
        p->n_classes = classes_of(find(map, "fc.weight"));
    } else {
        return st3d_fail(err, ST3D_ERR_MISMATCH,
                         "these weights match no known network (no conv1, features.conv1, "
                         "conv1_s, stem.0 or conv3a); give --model");
    }
    if (p->model_depth < 0 || p->n_classes < 1)
        return st3d_fail(err, ST3D_ERR_MISMATCH,
                         "the weights look like %s but their depth or classifier is not recognised; "
                         "give --model and --model-depth",
                         p->model);
    return 0;
}

int st3d_model_params_to_meta(const st3d_model_params *p, st3d_tensor_map *map, st3d_error *err) {
    char v[64];
#define PUT(key, fmt, val)                                                             \
    do {                                                                               \
        snprintf(v, sizeof v, fmt, val);                                               \
        if (st3d_tensor_map_set_meta(map, "st3d." key, v, err) != 0) return -1;        \
    } while (0)
    PUT("model", "%s", p->model);
    PUT("model_depth", "%d", p->model_depth);
    PUT("n_classes", "%d", p->n_classes);
    PUT("n_input_channels", "%d", p->n_input_channels);
    PUT("resnet_shortcut", "%c", p->resnet_shortcut);
    PUT("conv1_t_size", "%d", p->conv1_t_size);
    PUT("conv1_t_stride", "%d", p->conv1_t_stride);
    PUT("no_max_pool", "%d", p->no_max_pool);
    PUT("resnet_widen_factor", "%g", (double)p->resnet_widen_factor);
    PUT("wide_resnet_k", "%d", p->wide_resnet_k);
    PUT("resnext_cardinality", "%d", p->resnext_cardinality);
    PUT("conv1_planes", "%d", p->conv1_planes);
    PUT("c3d_bn", "%d", p->c3d_bn);
    PUT("spatial_only", "%d", p->spatial_only);
#undef PUT
    return 0;
}

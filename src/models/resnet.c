/*
 * resnet.c - the 3D ResNet family of Hara et al. (CVPR 2018, Table 1):
 * ResNet (basic and bottleneck blocks), pre-activation ResNet, Wide ResNet
 * and ResNeXt, with the module names of the original 3D-ResNets-PyTorch
 * (models/resnet.py, pre_act_resnet.py, wide_resnet.py, resnext.py), so that
 * state_dict keys map one to one.
 *
 * Shapes for a 3 x 16 x 112 x 112 clip (ResNet-18):
 *   conv1   (t,7,7) stride (ts,2,2) -> 64 x 16 x 56 x 56
 *   maxpool 3 stride 2 pad 1        -> 64 x 8 x 28 x 28
 *   layer1..4 (stride 1,2,2,2)      -> 64/128/256/512 x ... x 4 x 4 (layer4 1x4x4)
 *   avgpool (1,1,1), fc             -> n_classes
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

typedef enum block_kind { BASIC, BOTTLENECK, PREACT_BASIC, PREACT_BOTTLENECK } block_kind;

/* Block counts per stage, as generate_model() of each family. */
int resnet_stage_blocks(int depth, int out[4]) {
    static const struct { int depth, n[4]; } table[] = {
        {10, {1, 1, 1, 1}},  {18, {2, 2, 2, 2}},  {34, {3, 4, 6, 3}},   {50, {3, 4, 6, 3}},
        {101, {3, 4, 23, 3}}, {152, {3, 8, 36, 3}}, {200, {3, 24, 36, 3}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].depth == depth) {
            memcpy(out, table[i].n, sizeof table[i].n);
            return 0;
        }
    return -1;
}

/* What distinguishes the four families. */
typedef struct family {
    block_kind block;   /* block type */
    int expansion;      /* block output = planes * expansion */
    int inplanes[4];    /* planes per stage */
    int cardinality;    /* groups of the middle conv (ResNeXt), else 1 */
} family;

static int pick_family(const st3d_model_params *p, family *f, st3d_error *err) {
    static const int base[4] = {64, 128, 256, 512};
    int d = p->model_depth;
    int deep = d >= 50;
    memset(f, 0, sizeof *f);
    f->cardinality = 1;
    if (!strcmp(p->model, "resnet") || !strcmp(p->model, "preresnet")) {
        /* resnet.py: widen_factor scales every stage (int() truncation); the
         * original's model.py does not pass --resnet_widen_factor to
         * preresnet, so it has no effect there */
        int pre = !strcmp(p->model, "preresnet");
        float widen = pre ? 1.0f : p->resnet_widen_factor;
        for (int i = 0; i < 4; i++) f->inplanes[i] = (int)(base[i] * widen);
        f->block = deep ? (pre ? PREACT_BOTTLENECK : BOTTLENECK) : (pre ? PREACT_BASIC : BASIC);
        f->expansion = deep ? 4 : 1;
        if (widen <= 0.0f || f->inplanes[0] < 1)
            return st3d_fail(err, ST3D_ERR_INVALID, "--resnet-widen-factor %g is not positive",
                             p->resnet_widen_factor);
    } else if (!strcmp(p->model, "wideresnet")) {
        /* wide_resnet.py: WideBottleneck (expansion 2), planes x k; depths >= 50 */
        if (!deep)
            return st3d_fail(err, ST3D_ERR_INVALID,
                             "wideresnet has no depth %d (choose 50, 101, 152 or 200)", d);
        if (p->wide_resnet_k < 1)
            return st3d_fail(err, ST3D_ERR_INVALID, "--wide-resnet-k %d is not positive",
                             p->wide_resnet_k);
        for (int i = 0; i < 4; i++) f->inplanes[i] = base[i] * p->wide_resnet_k;
        f->block = BOTTLENECK;
        f->expansion = 2;
    } else if (!strcmp(p->model, "resnext")) {
        /* resnext.py: planes 128..1024, expansion 2, mid = cardinality * planes / 32 */
        if (!deep)
            return st3d_fail(err, ST3D_ERR_INVALID,
                             "resnext has no depth %d (choose 50, 101, 152 or 200)", d);
        if (p->resnext_cardinality < 1 || 128 * p->resnext_cardinality / 32 < 1 ||
            (128 * p->resnext_cardinality / 32) % p->resnext_cardinality)
            return st3d_fail(err, ST3D_ERR_INVALID, "--resnext-cardinality %d is not usable",
                             p->resnext_cardinality);
        static const int rx[4] = {128, 256, 512, 1024};
        memcpy(f->inplanes, rx, sizeof rx);
        f->block = BOTTLENECK;
        f->expansion = 2;
        f->cardinality = p->resnext_cardinality;
    } else {
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "unknown model '%s' (choose resnet, preresnet, wideresnet, resnext)",
                         p->model);
    }
    return 0;
}

/* One residual block (BasicBlock, Bottleneck, their pre-activation forms and
 * ResNeXtBottleneck).  Returns the block's output node. */
static int add_block(st3d_model *m, const family *f, const char *prefix, int x, int planes,
                     int stride, int need_downsample, char shortcut, st3d_error *err) {
    char nm[64];
#define NAME(s) (snprintf(nm, sizeof nm, "%s.%s", prefix, s), nm)
    int out_planes = planes * f->expansion;
    int y;
    switch (f->block) {
    case BASIC:
        y = g_conv_cube(m, NAME("conv1"), x, planes, 3, stride, 1, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn1"), y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv2"), y, planes, 3, 1, 1, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn2"), y, err);
        break;
    case BOTTLENECK: {
        /* ResNeXt: mid = cardinality * planes // 32, grouped 3x3x3 */
        int mid = f->cardinality > 1 ? f->cardinality * planes / 32 : planes;
        y = g_conv_cube(m, NAME("conv1"), x, mid, 1, 1, 0, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn1"), y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv2"), y, mid, 3, stride, 1, f->cardinality, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn2"), y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv3"), y, out_planes, 1, 1, 0, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn3"), y, err);
        break;
    }
    case PREACT_BASIC:
        y = g_bn(m, NAME("bn1"), x, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv1"), y, planes, 3, stride, 1, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn2"), y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv2"), y, planes, 3, 1, 1, 1, err);
        break;
    default: /* PREACT_BOTTLENECK */
        y = g_bn(m, NAME("bn1"), x, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv1"), y, planes, 1, 1, 0, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn2"), y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv2"), y, planes, 3, stride, 1, 1, err);
        y = y < 0 ? -1 : g_bn(m, NAME("bn3"), y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : g_conv_cube(m, NAME("conv3"), y, out_planes, 1, 1, 0, 1, err);
        break;
    }
    if (y < 0) return -1;

    /* post-activation blocks end with a ReLU; pre-activation ones do not */
    return add_residual(m, prefix, x, y, out_planes, stride, need_downsample, shortcut,
                        f->block == BASIC || f->block == BOTTLENECK, err);
#undef NAME
}

int build_resnet_family(st3d_model *m, st3d_error *err) {
    const st3d_model_params *p = &m->p;
    int blocks[4];
    family f;
    if (pick_family(p, &f, err) != 0) return -1;
    if (resnet_stage_blocks(p->model_depth, blocks) != 0)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "%s has no depth %d (choose 10, 18, 34, 50, 101, 152 or 200)", p->model,
                         p->model_depth);
    if (resnet_check_common(p, err) != 0) return -1;

    /* stem: conv1 (t,7,7) stride (ts,2,2) pad (t/2,3,3), bn1, relu, maxpool */
    int in_planes = p->conv1_planes > 0 ? p->conv1_planes : f.inplanes[0];
    int x = g_input(m, p->n_input_channels, err);
    int k[3] = {p->conv1_t_size, 7, 7}, s[3] = {p->conv1_t_stride, 2, 2},
        pad[3] = {p->conv1_t_size / 2, 3, 3};
    if (p->spatial_only) k[0] = 1, pad[0] = 0; /* the 2D control */
    x = x < 0 ? -1 : g_conv(m, "conv1", x, in_planes, k, s, pad, 1, 0, err);
    x = x < 0 ? -1 : g_bn(m, "bn1", x, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    x = x < 0 ? -1 : add_stem_pool(m, x, err);
    if (x < 0) return -1;

    /* layer1..layer4 (_make_layer): the first block of a stage strides and
     * gets a downsample when stride != 1 or the width changes */
    for (int st = 0; st < 4; st++) {
        int planes = f.inplanes[st], stride = st == 0 ? 1 : 2;
        for (int bi = 0; bi < blocks[st]; bi++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", st + 1, bi);
            int first = bi == 0;
            int need = first && (stride != 1 || in_planes != planes * f.expansion);
            x = add_block(m, &f, prefix, x, planes, first ? stride : 1, need, p->resnet_shortcut, err);
            if (x < 0) return -1;
            in_planes = planes * f.expansion;
        }
    }
    /* ResNeXt's fc width is cardinality * 32 * expansion in the original,
     * which runs only when that equals layer4's width (cardinality 32):
     * st3d sizes fc from layer4 */
    return add_head(m, x, "fc", err);
}

int add_residual(st3d_model *m, const char *prefix, int x, int y, int out_planes, int stride,
                 int need_downsample, char shortcut, int relu, st3d_error *err) {
    /* the shortcut of the block's raw input: identity, type A (zero-padded,
     * _downsample_basic_block) or type B (downsample.0 conv + downsample.1 BN) */
    char nm[80];
    int r = x;
    if (need_downsample) {
        if (shortcut == 'A') {
            r = g_shortcut_a(m, x, out_planes, stride, err);
        } else {
            snprintf(nm, sizeof nm, "%s.downsample.0", prefix);
            r = g_conv_cube(m, nm, x, out_planes, 1, stride, 0, 1, err);
            snprintf(nm, sizeof nm, "%s.downsample.1", prefix);
            r = r < 0 ? -1 : g_bn(m, nm, r, err);
        }
        if (r < 0) return -1;
    }
    y = g_add(m, y, r, err);
    return y >= 0 && relu ? g_relu(m, y, err) : y;
}

int add_stem_pool(st3d_model *m, int x, st3d_error *err) {
    if (m->p.no_max_pool) return x;
    pool_geom mp = {.max = 1, .k = {3, 3, 3}, .stride = {2, 2, 2}, .pad = {1, 1, 1}};
    /* the 2D control pools within frames only (a 3-frame max would leave a
     * trail of the shape's positions, which shows the axis of its motion) */
    if (m->p.spatial_only) mp.k[0] = 1, mp.pad[0] = 0;
    return g_pool(m, x, &mp, err);
}

int resnet_check_common(const st3d_model_params *p, st3d_error *err) {
    if (p->resnet_shortcut != 'A' && p->resnet_shortcut != 'B')
        return st3d_fail(err, ST3D_ERR_INVALID, "--resnet-shortcut must be A or B, not '%c'",
                         p->resnet_shortcut);
    if (p->conv1_t_size < 1 || p->conv1_t_stride < 1 || p->n_input_channels < 1 || p->n_classes < 1)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "conv1-t-size, conv1-t-stride, n-input-channels and n-classes must be positive");
    return 0;
}

int add_head(st3d_model *m, int x, const char *name, st3d_error *err) {
    x = g_gap(m, x, err);
    if (x < 0) return -1;
    m->features_node = x;
    m->feature_dim = m->nodes[x].channels;
    x = g_fc(m, name, x, m->p.n_classes, err);
    if (x < 0) return -1;
    m->logits_node = x;
    return 0;
}

/*
 * densenet.c - 3D DenseNet-BC as the original 3D-ResNets-PyTorch
 * (models/densenet.py): growth rate 32, bottleneck size 4 (1x1x1 conv to
 * 128 channels, then 3x3x3 to 32), every layer's output concatenated to
 * its input; transitions of BN, ReLU, 1x1x1 conv halving the channels and
 * 2x2x2 average pooling; a final BN, ReLU, global pooling and classifier.
 *
 * The paper (Table 1 caption) describes a 3x3x3 transition convolution; the
 * public code, whose checkpoints users hold, uses 1x1x1, and so does st3d.
 *
 * Keys: features.conv1, features.norm1, features.denseblockB.denselayerL.
 * {norm1,conv1,norm2,conv2}, features.transitionB.{norm,conv},
 * features.norm5, classifier.
 */
#include "model.h"

#include <stdio.h>

int build_densenet(st3d_model *m, st3d_error *err) {
    const st3d_model_params *p = &m->p;
    static const struct { int depth, blocks[4]; } configs[] = {
        {121, {6, 12, 24, 16}}, {169, {6, 12, 32, 32}}, {201, {6, 12, 48, 32}}, {264, {6, 12, 64, 48}},
    };
    const int *blocks = NULL;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (configs[i].depth == p->model_depth) blocks = configs[i].blocks;
    if (!blocks)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "densenet has no depth %d (choose 121, 169, 201 or 264)", p->model_depth);
    if (p->conv1_t_size < 1 || p->conv1_t_stride < 1 || p->n_input_channels < 1 || p->n_classes < 1)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "conv1-t-size, conv1-t-stride, n-input-channels and n-classes must be positive");
    const int growth = 32, bn_size = 4, init_features = 64;

    int k[3] = {p->conv1_t_size, 7, 7}, s[3] = {p->conv1_t_stride, 2, 2},
        pad[3] = {p->conv1_t_size / 2, 3, 3};
    int x = g_input(m, p->n_input_channels, err);
    x = x < 0 ? -1 : g_conv(m, "features.conv1", x, init_features, k, s, pad, 1, 0, err);
    x = x < 0 ? -1 : g_bn(m, "features.norm1", x, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    x = x < 0 ? -1 : add_stem_pool(m, x, err); /* features.pool1 */
    if (x < 0) return -1;

    char nm[96];
    for (int b = 0; b < 4; b++) {
        for (int l = 0; l < blocks[b]; l++) {
            /* _DenseLayer: norm1, relu1, conv1 (1x1x1), norm2, relu2, conv2 (3x3x3), cat */
            const char *pre = "features.denseblock";
            snprintf(nm, sizeof nm, "%s%d.denselayer%d.norm1", pre, b + 1, l + 1);
            int y = g_bn(m, nm, x, err);
            y = y < 0 ? -1 : g_relu(m, y, err);
            snprintf(nm, sizeof nm, "%s%d.denselayer%d.conv1", pre, b + 1, l + 1);
            y = y < 0 ? -1 : g_conv_cube(m, nm, y, bn_size * growth, 1, 1, 0, 1, err);
            snprintf(nm, sizeof nm, "%s%d.denselayer%d.norm2", pre, b + 1, l + 1);
            y = y < 0 ? -1 : g_bn(m, nm, y, err);
            y = y < 0 ? -1 : g_relu(m, y, err);
            snprintf(nm, sizeof nm, "%s%d.denselayer%d.conv2", pre, b + 1, l + 1);
            y = y < 0 ? -1 : g_conv_cube(m, nm, y, growth, 3, 1, 1, 1, err);
            x = y < 0 ? -1 : g_concat(m, x, y, err);
            if (x < 0) return -1;
        }
        if (b == 3) break;
        /* _Transition: norm, relu, conv (1x1x1, half the channels), avg pool 2 */
        int half = m->nodes[x].channels / 2;
        snprintf(nm, sizeof nm, "features.transition%d.norm", b + 1);
        x = g_bn(m, nm, x, err);
        x = x < 0 ? -1 : g_relu(m, x, err);
        snprintf(nm, sizeof nm, "features.transition%d.conv", b + 1);
        x = x < 0 ? -1 : g_conv_cube(m, nm, x, half, 1, 1, 0, 1, err);
        pool_geom ap = {.max = 0, .k = {2, 2, 2}, .stride = {2, 2, 2}, .pad = {0, 0, 0}};
        x = x < 0 ? -1 : g_pool(m, x, &ap, err);
        if (x < 0) return -1;
    }
    /* features.norm5, then (forward) ReLU, global pooling, classifier */
    x = g_bn(m, "features.norm5", x, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    if (x < 0) return -1;
    return add_head(m, x, "classifier", err);
}

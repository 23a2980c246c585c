/*
 * c3d.c - C3D (Tran et al., ICCV 2015), the baseline of the paper's poster:
 * eight 3x3x3 convolutions (64, 128, 256, 256, 512, 512, 512, 512), five max
 * pools (the first 1x2x2, then 2x2x2; pool5 padded (0,1,1) so a 16x112x112
 * clip ends at 512 x 1 x 4 x 4), fc6 and fc7 of 4096 with ReLU and dropout,
 * and fc8 the classifier.  Key names follow the widely used PyTorch port of
 * the Sports-1M weights: conv1, conv2, conv3a, conv3b, ..., fc6, fc7, fc8.
 * With --c3d-bn every convolution loses its bias and is followed by a batch
 * norm named bn1, bn2, bn3a, ... .  The features are fc7's output.
 */
#include "model.h"

#include <stdio.h>

int build_c3d(st3d_model *m, st3d_error *err) {
    const st3d_model_params *p = &m->p;
    static const struct { const char *conv, *bn; int out, pool; } layers[] = {
        {"conv1", "bn1", 64, 1},     {"conv2", "bn2", 128, 2},    {"conv3a", "bn3a", 256, 0},
        {"conv3b", "bn3b", 256, 3},  {"conv4a", "bn4a", 512, 0},  {"conv4b", "bn4b", 512, 4},
        {"conv5a", "bn5a", 512, 0},  {"conv5b", "bn5b", 512, 5},
    };
    if (p->n_input_channels < 1 || p->n_classes < 1)
        return st3d_fail(err, ST3D_ERR_INVALID, "n-input-channels and n-classes must be positive");
    if (!(p->dropout >= 0.0f && p->dropout < 1.0f))
        return st3d_fail(err, ST3D_ERR_INVALID, "--dropout %g outside [0, 1)", p->dropout);
    int x = g_input(m, p->n_input_channels, err);
    for (size_t i = 0; i < sizeof layers / sizeof layers[0] && x >= 0; i++) {
        int k[3] = {3, 3, 3}, s[3] = {1, 1, 1}, pad[3] = {1, 1, 1};
        x = g_conv(m, layers[i].conv, x, layers[i].out, k, s, pad, 1, !p->c3d_bn, err);
        if (x >= 0 && p->c3d_bn) x = g_bn(m, layers[i].bn, x, err);
        x = x < 0 ? -1 : g_relu(m, x, err);
        if (x >= 0 && layers[i].pool) {
            pool_geom g = {.max = 1, .k = {2, 2, 2}, .stride = {2, 2, 2}, .pad = {0, 0, 0}};
            if (layers[i].pool == 1) g.k[0] = g.stride[0] = 1;
            if (layers[i].pool == 5) g.pad[1] = g.pad[2] = 1;
            x = g_pool(m, x, &g, err);
        }
    }
    /* 512 x 1 x 4 x 4 for the 16 x 112 x 112 clips C3D is made for */
    x = x < 0 ? -1 : g_flatten(m, x, 512 * 1 * 4 * 4, err);
    x = x < 0 ? -1 : g_fc(m, "fc6", x, 4096, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    x = x < 0 ? -1 : g_dropout(m, x, p->dropout, err);
    x = x < 0 ? -1 : g_fc(m, "fc7", x, 4096, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    x = x < 0 ? -1 : g_dropout(m, x, p->dropout, err);
    if (x < 0) return -1;
    m->features_node = x;
    m->feature_dim = 4096;
    x = g_fc(m, "fc8", x, p->n_classes, err);
    if (x < 0) return -1;
    m->logits_node = x;
    return 0;
}

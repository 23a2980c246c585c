/*
 * tv_resnet.c - torchvision's video ResNets (torchvision.models.video):
 * r3d_18 (3D convolutions throughout), mc3_18 (3D in layer1, then 1x3x3
 * "no temporal" convolutions) and r2plus1d_18 (every 3x3x3 factorised into
 * 1x3x3 to `mid` channels, BN, ReLU, 3x1x1).  Key names are torchvision's:
 * stem.0 / stem.1 (and stem.3 / stem.4 for R(2+1)D), layerN.M.conv1.0
 * (conv1.0.0, conv1.0.1, conv1.0.3 when factorised), conv1.1 (its BN),
 * conv2.0, conv2.1, downsample.0, downsample.1, fc.
 *
 * Shapes for 3 x 16 x 112 x 112: stem -> 64 x 16 x 56 x 56 (no max pool),
 * layer1..4 -> 64/128/256/512 x 16/8/4/2 x 56/28/14/7 (mc3 keeps 16 frames).
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

typedef enum conv_kind { SIMPLE, NO_TEMPORAL, TWO_PLUS_ONE } conv_kind;

/* One conv_builder of torchvision; returns the output node (before the BN
 * torchvision puts after it). */
static int tv_conv(st3d_model *m, const char *name, conv_kind kind, int x, int out, int mid,
                   int stride, st3d_error *err) {
    if (kind == SIMPLE) return g_conv_cube(m, name, x, out, 3, stride, 1, 1, err);
    int ks[3] = {1, 3, 3}, ss[3] = {1, stride, stride}, ps[3] = {0, 1, 1};
    if (kind == NO_TEMPORAL) return g_conv(m, name, x, out, ks, ss, ps, 1, 0, err);
    char nm[96];
    int kt[3] = {3, 1, 1}, st[3] = {stride, 1, 1}, pt[3] = {1, 0, 0};
    snprintf(nm, sizeof nm, "%s.0", name);
    int y = g_conv(m, nm, x, mid, ks, ss, ps, 1, 0, err);
    snprintf(nm, sizeof nm, "%s.1", name);
    y = y < 0 ? -1 : g_bn(m, nm, y, err);
    y = y < 0 ? -1 : g_relu(m, y, err);
    snprintf(nm, sizeof nm, "%s.3", name);
    return y < 0 ? -1 : g_conv(m, nm, y, out, kt, st, pt, 1, 0, err);
}

int build_tv_resnet(st3d_model *m, st3d_error *err) {
    const st3d_model_params *p = &m->p;
    conv_kind kinds[4];
    if (!strcmp(p->model, "tv-r3d")) {
        for (int i = 0; i < 4; i++) kinds[i] = SIMPLE;
    } else if (!strcmp(p->model, "tv-mc3")) {
        kinds[0] = SIMPLE;
        for (int i = 1; i < 4; i++) kinds[i] = NO_TEMPORAL;
    } else {
        for (int i = 0; i < 4; i++) kinds[i] = TWO_PLUS_ONE;
    }
    if (p->model_depth != 18)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s exists only with depth 18, not %d", p->model,
                         p->model_depth);
    if (p->n_input_channels < 1 || p->n_classes < 1)
        return st3d_fail(err, ST3D_ERR_INVALID, "n-input-channels and n-classes must be positive");

    int x = g_input(m, p->n_input_channels, err);
    if (kinds[0] == TWO_PLUS_ONE) {
        /* R2Plus1dStem: (1,7,7) to 45, BN, ReLU, (3,1,1) to 64, BN, ReLU */
        int ks[3] = {1, 7, 7}, ss[3] = {1, 2, 2}, ps[3] = {0, 3, 3};
        int kt[3] = {3, 1, 1}, st[3] = {1, 1, 1}, pt[3] = {1, 0, 0};
        x = x < 0 ? -1 : g_conv(m, "stem.0", x, 45, ks, ss, ps, 1, 0, err);
        x = x < 0 ? -1 : g_bn(m, "stem.1", x, err);
        x = x < 0 ? -1 : g_relu(m, x, err);
        x = x < 0 ? -1 : g_conv(m, "stem.3", x, 64, kt, st, pt, 1, 0, err);
        x = x < 0 ? -1 : g_bn(m, "stem.4", x, err);
    } else {
        /* BasicStem: (3,7,7) stride (1,2,2) pad (1,3,3) to 64, BN, ReLU */
        int k[3] = {3, 7, 7}, s[3] = {1, 2, 2}, pd[3] = {1, 3, 3};
        x = x < 0 ? -1 : g_conv(m, "stem.0", x, 64, k, s, pd, 1, 0, err);
        x = x < 0 ? -1 : g_bn(m, "stem.1", x, err);
    }
    x = x < 0 ? -1 : g_relu(m, x, err);
    if (x < 0) return -1;

    int in_planes = 64;
    for (int s = 0; s < 4; s++) {
        int planes = 64 << s, stride = s == 0 ? 1 : 2;
        for (int bi = 0; bi < 2; bi++) {
            char pre[32], nm[96];
            snprintf(pre, sizeof pre, "layer%d.%d", s + 1, bi);
            int st = bi == 0 ? stride : 1;
            /* torchvision computes one midplanes per block, from its inplanes */
            int mid = (in_planes * planes * 27) / (in_planes * 9 + 3 * planes);
            snprintf(nm, sizeof nm, "%s.conv1.0", pre);
            int y = tv_conv(m, nm, kinds[s], x, planes, mid, st, err);
            snprintf(nm, sizeof nm, "%s.conv1.1", pre);
            y = y < 0 ? -1 : g_bn(m, nm, y, err);
            y = y < 0 ? -1 : g_relu(m, y, err);
            snprintf(nm, sizeof nm, "%s.conv2.0", pre);
            y = y < 0 ? -1 : tv_conv(m, nm, kinds[s], y, planes, mid, 1, err);
            snprintf(nm, sizeof nm, "%s.conv2.1", pre);
            y = y < 0 ? -1 : g_bn(m, nm, y, err);
            int r = x;
            if (y >= 0 && (st != 1 || in_planes != planes)) {
                /* the downsample stride follows the conv kind */
                int k[3] = {1, 1, 1}, ds[3] = {st, st, st}, pd[3] = {0, 0, 0};
                if (kinds[s] == NO_TEMPORAL) ds[0] = 1;
                snprintf(nm, sizeof nm, "%s.downsample.0", pre);
                r = g_conv(m, nm, x, planes, k, ds, pd, 1, 0, err);
                snprintf(nm, sizeof nm, "%s.downsample.1", pre);
                r = r < 0 ? -1 : g_bn(m, nm, r, err);
            }
            y = (y < 0 || r < 0) ? -1 : g_add(m, y, r, err);
            x = y < 0 ? -1 : g_relu(m, y, err);
            if (x < 0) return -1;
            in_planes = planes;
        }
    }
    return add_head(m, x, "fc", err);
}

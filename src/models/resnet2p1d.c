/*
 * resnet2p1d.c - R(2+1)D, the 2020 headline family of the original
 * 3D-ResNets-PyTorch (models/resnet2p1d.py): every 3x3x3 convolution of the
 * ResNet is factorised into a 1x3x3 spatial convolution to `mid` channels,
 * batch norm and ReLU, then a 3x1x1 temporal convolution, with
 *   mid = (in * out * 3*3*3) // (in * 3*3 + 3 * out)
 * so that the parameter count matches the 3D convolution.  The stem is
 * factorised the same way: (1,7,7) to mid = (3 * planes * t*7*7) //
 * (3*7*7 + t * planes), then (t,1,1).  Key names: conv1_s, bn1_s, conv1_t,
 * bn1_t, layerN.M.conv1_s ... as the original.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

/* spatial (1,3,3) stride (1,s,s), then BN, ReLU, temporal (3,1,1) stride
 * (s,1,1), then BN; returns the BN output (no ReLU). */
static int conv2p1d(st3d_model *m, const char *prefix, const char *tag, int x, int in, int out,
                    int stride, st3d_error *err) {
    char a[80], b[80];
    int mid = (in * out * 27) / (in * 9 + 3 * out);
    int ks[3] = {1, 3, 3}, ss[3] = {1, stride, stride}, ps[3] = {0, 1, 1};
    int kt[3] = {3, 1, 1}, st[3] = {stride, 1, 1}, pt[3] = {1, 0, 0};
    snprintf(a, sizeof a, "%s.conv%s_s", prefix, tag);
    snprintf(b, sizeof b, "%s.bn%s_s", prefix, tag);
    int y = g_conv(m, a, x, mid, ks, ss, ps, 1, 0, err);
    y = y < 0 ? -1 : g_bn(m, b, y, err);
    y = y < 0 ? -1 : g_relu(m, y, err);
    snprintf(a, sizeof a, "%s.conv%s_t", prefix, tag);
    snprintf(b, sizeof b, "%s.bn%s_t", prefix, tag);
    y = y < 0 ? -1 : g_conv(m, a, y, out, kt, st, pt, 1, 0, err);
    return y < 0 ? -1 : g_bn(m, b, y, err);
}

static int block2p1d(st3d_model *m, const char *prefix, int x, int in_planes, int planes,
                     int stride, int bottleneck, int need_downsample, char shortcut,
                     st3d_error *err) {
    char nm[80];
    int out_planes = planes * (bottleneck ? 4 : 1), y;
    if (!bottleneck) {
        y = conv2p1d(m, prefix, "1", x, in_planes, planes, stride, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : conv2p1d(m, prefix, "2", y, planes, planes, 1, err);
    } else {
        snprintf(nm, sizeof nm, "%s.conv1", prefix);
        y = g_conv_cube(m, nm, x, planes, 1, 1, 0, 1, err);
        snprintf(nm, sizeof nm, "%s.bn1", prefix);
        y = y < 0 ? -1 : g_bn(m, nm, y, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        y = y < 0 ? -1 : conv2p1d(m, prefix, "2", y, planes, planes, stride, err);
        y = y < 0 ? -1 : g_relu(m, y, err);
        snprintf(nm, sizeof nm, "%s.conv3", prefix);
        y = y < 0 ? -1 : g_conv_cube(m, nm, y, out_planes, 1, 1, 0, 1, err);
        snprintf(nm, sizeof nm, "%s.bn3", prefix);
        y = y < 0 ? -1 : g_bn(m, nm, y, err);
    }
    if (y < 0) return -1;
    return add_residual(m, prefix, x, y, out_planes, stride, need_downsample, shortcut, 1, err);
}

int build_resnet2p1d(st3d_model *m, st3d_error *err) {
    const st3d_model_params *p = &m->p;
    static const int base[4] = {64, 128, 256, 512};
    int blocks[4], planes[4];
    if (resnet_stage_blocks(p->model_depth, blocks) != 0)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "resnet2p1d has no depth %d (choose 10, 18, 34, 50, 101, 152 or 200)",
                         p->model_depth);
    if (resnet_check_common(p, err) != 0) return -1;
    for (int i = 0; i < 4; i++) planes[i] = (int)(base[i] * p->resnet_widen_factor);
    if (planes[0] < 1)
        return st3d_fail(err, ST3D_ERR_INVALID, "--resnet-widen-factor %g is too small",
                         p->resnet_widen_factor);
    int bottleneck = p->model_depth >= 50, expansion = bottleneck ? 4 : 1;

    /* stem, factorised; the original counts 3 input channels in mid */
    int t = p->conv1_t_size, in_planes = planes[0];
    int mid = (3 * in_planes * t * 49) / (3 * 49 + t * in_planes);
    int ks[3] = {1, 7, 7}, ss[3] = {1, 2, 2}, ps[3] = {0, 3, 3};
    int kt[3] = {t, 1, 1}, st[3] = {p->conv1_t_stride, 1, 1}, pt[3] = {t / 2, 0, 0};
    int x = g_input(m, p->n_input_channels, err);
    x = x < 0 ? -1 : g_conv(m, "conv1_s", x, mid, ks, ss, ps, 1, 0, err);
    x = x < 0 ? -1 : g_bn(m, "bn1_s", x, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    x = x < 0 ? -1 : g_conv(m, "conv1_t", x, in_planes, kt, st, pt, 1, 0, err);
    x = x < 0 ? -1 : g_bn(m, "bn1_t", x, err);
    x = x < 0 ? -1 : g_relu(m, x, err);
    x = x < 0 ? -1 : add_stem_pool(m, x, err);
    if (x < 0) return -1;
    for (int s = 0; s < 4; s++) {
        int stride = s == 0 ? 1 : 2;
        for (int bi = 0; bi < blocks[s]; bi++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, bi);
            int first = bi == 0;
            int need = first && (stride != 1 || in_planes != planes[s] * expansion);
            x = block2p1d(m, prefix, x, in_planes, planes[s], first ? stride : 1, bottleneck, need,
                          p->resnet_shortcut, err);
            if (x < 0) return -1;
            in_planes = planes[s] * expansion;
        }
    }
    return add_head(m, x, "fc", err);
}

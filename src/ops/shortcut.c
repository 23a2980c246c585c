/*
 * shortcut.c - the parameter-free residual shortcut of type A.
 *
 * Mirrors _downsample_basic_block of the original 3D-ResNets-PyTorch
 * (option --resnet_shortcut A): F.avg_pool3d(x, kernel_size=1, stride=s),
 * i.e. every s-th voxel, then zero channels appended up to the block's
 * output width.  The original concatenates `out.data`, which detaches the
 * path from autograd: no gradient flows back through it, and st3d does the
 * same, so this operator has no backward.
 *
 *   src  N x C x D x H x W
 *   dst  N x C' x OD x OH x OW,  C' >= C,  O* = (I* - 1) / s + 1
 *        channels [0, C) = src[:, :, ::s, ::s, ::s], channels [C, C') = 0
 */
#include "ops.h"

#include <string.h>

typedef struct pad_ctx {
    tensor sub, dst;       /* strided input, padded output */
    int64_t n, cin, cout;  /* batch, input and output channels */
    int64_t volume;        /* OD * OH * OW */
    int channels_last;     /* ndhwc layout (else channel-major per sample) */
} pad_ctx;

/* Copies the subsampled tensor into the first channels of dst, zeroes the
 * rest.  In ncdhw and in blocked nCdhw<b>c layouts (C a multiple of b) a
 * sample's first C channels are its first C*volume floats; in ndhwc each
 * voxel holds its channels contiguously. */
static void pad_fn(const step *s) {
    const pad_ctx *c = s->ctx;
    const float *src = tensor_ptr(&c->sub);
    float *dst = tensor_ptr(&c->dst);
    if (!c->channels_last) {
        size_t in = (size_t)(c->cin * c->volume), out = (size_t)(c->cout * c->volume);
        for (int64_t n = 0; n < c->n; n++) {
            memcpy(dst + n * out, src + n * in, in * sizeof(float));
            memset(dst + n * out + in, 0, (out - in) * sizeof(float));
        }
    } else {
        int64_t vox = c->n * c->volume;
        for (int64_t v = 0; v < vox; v++) {
            memcpy(dst + v * c->cout, src + v * c->cin, (size_t)c->cin * sizeof(float));
            memset(dst + v * c->cout + c->cin, 0, (size_t)(c->cout - c->cin) * sizeof(float));
        }
    }
}

int shortcut_a_build_forward(builder *b, program *fwd, const tensor *src, int out_channels,
                             int stride, shortcut_a_op *op) {
    memset(op, 0, sizeof *op);
    pool_geom g = {.max = 0};
    for (int i = 0; i < 3; i++) {
        g.k[i] = 1;
        g.stride[i] = stride;
    }
    if (pool_build_forward(b, fwd, src, &g, 0, &op->sub) != 0) return -1;
    const dnnl_memory_desc_t *smd = &op->sub.dst.md;
    int64_t cin = smd->dims[1];
    if (out_channels < cin)
        return st3d_fail(b->err, ST3D_ERR_INVALID, "shortcut A cannot shrink %lld to %d channels",
                         (long long)cin, out_channels);

    /* find the subsampled tensor's layout among those pad_fn understands */
    static const dnnl_format_tag_t tags[] = {dnnl_nCdhw16c, dnnl_nCdhw8c, dnnl_ncdhw, dnnl_ndhwc};
    dnnl_dims_t odims = {smd->dims[0], out_channels, smd->dims[2], smd->dims[3], smd->dims[4]};
    dnnl_memory_desc_t dmd;
    int found = -1;
    for (int t = 0; t < 4 && found < 0; t++) {
        dnnl_memory_desc_t probe;
        dnnl_memory_desc_init_by_tag(&probe, 5, smd->dims, dnnl_f32, tags[t]);
        if (md_equal(&probe, smd)) found = t;
    }
    /* pad_fn copies whole channel blocks: a blocked layout whose block does
     * not divide both channel counts (a partly filled block, e.g. 12 -> 24
     * channels in nCdhw8c), or a layout not listed, goes through a plain copy */
    tensor sub = op->sub.dst;
    int block = found == 0 ? 16 : found == 1 ? 8 : 1;
    if (found < 0 || cin % block != 0 || out_channels % block != 0) {
        dnnl_memory_desc_t plain;
        md_plain(&plain, 5, smd->dims);
        if (op_to_layout(b, fwd, &op->sub.dst, &plain, &sub) != 0) return -1;
        found = 2;
    }
    dnnl_memory_desc_init_by_tag(&dmd, 5, odims, dnnl_f32, tags[found]);
    if (bld_act(b, &dmd, &op->dst) != 0) return -1;

    pad_ctx *c = bld_blob(b, sizeof *c);
    if (!c) return -1;
    c->sub = sub;
    c->dst = op->dst;
    c->n = odims[0];
    c->cin = cin;
    c->cout = out_channels;
    c->volume = odims[2] * odims[3] * odims[4];
    c->channels_last = tags[found] == dnnl_ndhwc;
    step s = {.fn = pad_fn, .ctx = c, .what = "shortcut A zero padding"};
    return prog_push(fwd, &s, b->err);
}

/*
 * dropout.c - nn.Dropout: in training, each element is zeroed with
 * probability p and the others scaled by 1 / (1 - p); at inference it is
 * the identity (and not built at all).
 *
 *   src, dst  any shape, same layout (elementwise, so layout-agnostic)
 *   mask      one byte per element, 1 = kept; the backward reuses it
 *
 * The mask comes from a counter-based generator keyed by (seed, call,
 * element), so it is reproducible for a seed and independent of threads.
 */
#include "ops.h"

#include <string.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void dropout_fwd_fn(const step *s) {
    dropout_op *op = s->ctx;
    const float *x = tensor_ptr(&op->src);
    float *y = tensor_ptr(&op->dst);
    int64_t n = (int64_t)(md_bytes(&op->src.md) / sizeof(float));
    const float scale = 1.0f / (1.0f - op->p);
    /* keep when a uniform 53-bit draw is >= p */
    const uint64_t threshold = (uint64_t)((double)op->p * 9007199254740992.0);
    const uint64_t key = mix64(op->seed ^ mix64(op->calls + 0x9e3779b97f4a7c15ull));
    op->calls++;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = mix64(key + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)) >> 11;
        uint8_t keep = r >= threshold;
        op->mask[i] = keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

static void dropout_bwd_fn(const step *s) {
    const dropout_op *op = s->ctx;
    const tensor *dd = (const tensor *)op->bwd_io[0], *ds = (const tensor *)op->bwd_io[1];
    const float *gy = tensor_ptr(dd);
    float *gx = tensor_ptr(ds);
    int64_t n = (int64_t)(md_bytes(&op->src.md) / sizeof(float));
    const float scale = 1.0f / (1.0f - op->p);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) gx[i] = op->mask[i] ? gy[i] * scale : 0.0f;
}

int dropout_build_forward(builder *b, program *fwd, const tensor *src, float p, uint64_t seed,
                          dropout_op **out) {
    if (!(p >= 0.0f && p < 1.0f))
        return st3d_fail(b->err, ST3D_ERR_INVALID, "dropout probability %g outside [0, 1)", p);
    dropout_op *op = bld_blob(b, sizeof *op);
    if (!op) return -1;
    op->src = *src;
    op->p = p;
    op->seed = seed;
    op->mask = bld_alloc(b, md_bytes(&src->md) / sizeof(float) + 1);
    if (!op->mask || bld_act(b, &src->md, &op->dst) != 0) return -1;
    step s = {.fn = dropout_fwd_fn, .ctx = op, .what = "dropout forward"};
    *out = op;
    return prog_push(fwd, &s, b->err);
}

int dropout_build_backward(builder *b, program *bwd, dropout_op *op, const tensor *diff_dst,
                           const tensor *diff_src) {
    tensor *io = bld_blob(b, 2 * sizeof(tensor));
    if (!io) return -1;
    io[0] = *diff_dst;
    io[1] = *diff_src;
    op->bwd_io[0] = &io[0];
    op->bwd_io[1] = &io[1];
    step s = {.fn = dropout_bwd_fn, .ctx = op, .what = "dropout backward"};
    return prog_push(bwd, &s, b->err);
}

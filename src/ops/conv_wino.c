/*
 * conv_wino.c - a 3D convolution as Winograd's minimal filtering along time
 * over oneDNN's direct 2D convolutions in space (inference plans only).
 *
 * With temporal kernel r and temporal stride 1, each output frame of a 3D
 * convolution is a sum of r 2D convolutions, one per temporal tap d, of r
 * consecutive input frames:
 *
 *   y[t] = sum_d  W_d (*) x[t - pad + d]      W_d: OC x IC/G x KH x KW
 *
 * Along time this is a 1D correlation whose coefficients W_d are 2D
 * convolutions.  Those are linear and the same for every t, so Winograd's
 * F(m, r) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2016) applies to them as to numbers: a tile of m consecutive output frames
 * comes from a = m + r - 1 2D convolutions instead of m x r:
 *
 *   U_k = sum_j BT[k][j] x[t0 + j]         input transform, a frames -> a
 *   V_k = sum_d G[k][d]  W_d               weights, once per prepare
 *   M_k = V_k (*) U_k                      a 2D convolutions (oneDNN)
 *   y[t0 + pad + i] = sum_k AT[i][k] M_k   output transform, a -> m frames,
 *                                          with bias, residual sum and ReLU
 *
 * where t0 = tile * m - pad.  ResNet-18's conv1 (r = 7, 16 output frames)
 * then does 40 2D convolutions where the direct one does 100 that touch
 * real frames, layer1's 3x3x3 convolutions (8 frames) 12 where it does 22.
 * The 2D convolutions are oneDNN's: its own Winograd F(2x2, 3x3) in space
 * where it has one (3x3 kernels, stride 1, on AVX-512), so that a 3x3x3
 * convolution is Winograd in all three dimensions; its direct kernels
 * otherwise.
 * The matrices come from the Toom-Cook construction below, with points
 * chosen per a for float32 accuracy; m is kept small (m <= 6, a <= 10) so
 * that whole networks stay within 1e-4 of PyTorch (tests/torch compares
 * them, with --conv auto and direct).
 *
 * Layouts: the 2D convolution picks its own (plain nchw, nChw4c / 8c /
 * 16c, or channels-last nhwc with AVX-512's brgemm kernels; a residual's
 * layout when it sums into one), and the 3D source and output take the
 * matching 3D layout (ncdhw, nCdhw4c / 8c / 16c, ndhwc), in which a frame
 * of one channel block (channels last: of all channels) is one contiguous
 * plane of H x W x block floats, so both transforms are sums of whole
 * planes.  The transformed frames U and results M live in the plan's
 * transient area (engine.c), shared by every such convolution.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#define WINO_MAX_A 10      /* transformed frames per tile, at most */
#define WINO_MAX_R 7       /* temporal kernel, at most */
#define WINO_MAX_M 6       /* output frames per tile, at most */
#define WINO_CHUNK 256     /* floats of a plane summed at a time (a multiple of 16) */
#define WINO_MAX_BYTES ((size_t)64 << 20) /* U + M, at most: else the direct kernel */

/* ------------------------------------------------------------ matrices */

/* Toom-Cook F(m, r) for correlation, a = m + r - 1, from the a - 1 finite
 * points p_j and the point at infinity (the last row / column).  Correlation
 * is the transpose of polynomial multiplication: with V the a x a matrix
 * that evaluates a polynomial of degree a - 1 at the points (V[j][i] = p_j^i,
 * the infinity row picking the leading coefficient),
 *   AT[i][j] = p_j^i   (m x a),   G[j][d] = p_j^d   (a x r),
 *   BT = (V^-1)^T      (a x a).
 * Returns -1 if V cannot be inverted (it always can for distinct points). */
/* The finite points for a = 4, 6, 8, 10.  Beyond the classic 0, +-1, +-2,
 * these were picked by simulation (float32 products summed over 147 to 576
 * channel taps, against float64), among symmetric sets of 0 and +-{1/4, 1/3,
 * 1/2, 2/3, 3/4, 1, 4/3, 3/2, 2, 5/2, 3}, for the smallest mean error: F(4, 3)
 * with +-2/3, +-4/3 errs 0.6x as much as with +-1, +-2; F(4, 7) with the
 * set below 0.45x as much as with 0, +-1, +-2, +-1/2, +-3/2. */
static const double wino_points[4][WINO_MAX_A - 1] = {
    {0, 1, -1},
    {0, 2.0 / 3, -2.0 / 3, 4.0 / 3, -4.0 / 3},
    {0, 0.5, -0.5, 1, -1, 2.5, -2.5},
    {0, 1.0 / 3, -1.0 / 3, 0.75, -0.75, 4.0 / 3, -4.0 / 3, 2.5, -2.5},
};

static int wino_matrices(int m, int r, float *AT, float *G, float *BT) {
    int a = m + r - 1;
    if (a % 2 || a < 4 || a > WINO_MAX_A) return -1;
    const double *pts = wino_points[a / 2 - 2];
    double V[WINO_MAX_A][2 * WINO_MAX_A];
    for (int j = 0; j < a; j++)
        for (int i = 0; i < 2 * a; i++) {
            double v = i >= a ? (i - a == j) : j < a - 1 ? pow(pts[j], i) : (i == a - 1);
            V[j][i] = v;
        }
    /* Gauss-Jordan with partial pivoting on [V | I] */
    for (int c = 0; c < a; c++) {
        int piv = c;
        for (int j = c + 1; j < a; j++)
            if (fabs(V[j][c]) > fabs(V[piv][c])) piv = j;
        if (fabs(V[piv][c]) < 1e-12) return -1;
        for (int i = 0; i < 2 * a; i++) {
            double t = V[c][i];
            V[c][i] = V[piv][i];
            V[piv][i] = t;
        }
        double inv = 1.0 / V[c][c];
        for (int i = 0; i < 2 * a; i++) V[c][i] *= inv;
        for (int j = 0; j < a; j++) {
            if (j == c || V[j][c] == 0) continue;
            double f = V[j][c];
            for (int i = 0; i < 2 * a; i++) V[j][i] -= f * V[c][i];
        }
    }
    for (int k = 0; k < a; k++)
        for (int j = 0; j < a; j++) BT[k * a + j] = (float)V[j][a + k]; /* (V^-1)[j][k] */
    for (int j = 0; j < a; j++) {
        int inf = j == a - 1;
        for (int i = 0; i < m; i++)
            AT[i * a + j] = inf ? (float)(i == m - 1) : (float)pow(pts[j], i);
        for (int d = 0; d < r; d++)
            G[j * r + d] = inf ? (float)(d == r - 1) : (float)pow(pts[j], d);
    }
    return 0;
}

/* The tile size m for a temporal kernel r over id input / od output frames,
 * or 0 when Winograd would not do at least a fifth fewer 2D convolutions
 * than the direct kernel does on real (not padding) frames. */
static int choose_tile(const conv_geom *g, int64_t id, int64_t od) {
    int r = g->k[0];
    if (g->stride[0] != 1 || r % 2 == 0 || r < 3 || r > WINO_MAX_R) return 0; /* a is even */
    int64_t direct = 0;
    for (int64_t t = 0; t < od; t++)
        for (int d = 0; d < r; d++) {
            int64_t s = t - g->pad[0] + d;
            direct += s >= 0 && s < id;
        }
    int best = 0;
    int64_t best_cost = 0;
    for (int m = 2; m <= WINO_MAX_M; m += 2) {
        int a = m + r - 1;
        if (a > WINO_MAX_A || (m > 4 && r > 3)) continue; /* accuracy: few, small points */
        int64_t cost = (od + m - 1) / m * a;
        if (!best || cost < best_cost) {
            best = m;
            best_cost = cost;
        }
    }
    return best && 5 * best_cost <= 4 * direct ? best : 0;
}

/* ------------------------------------------------------------ steps */

/* The weights' transform (a prepare step). */
typedef struct wino_weights {
    const float *w;    /* OC x IC/G x r x KH x KW, PyTorch's layout (maybe BN-folded) */
    float *v;          /* a x OC x IC/G x KH x KW: V_k = sum_d G[k][d] W_d */
    int64_t rows;      /* OC x IC/G */
    int64_t plane;     /* KH x KW */
    int r, a;          /* taps, transformed frames */
    float G[WINO_MAX_A * WINO_MAX_R];
} wino_weights;

static void wino_weights_fn(const step *s) {
    const wino_weights *c = s->ctx;
    for (int k = 0; k < c->a; k++)
        for (int64_t row = 0; row < c->rows; row++)
            for (int64_t e = 0; e < c->plane; e++) {
                double acc = 0;
                for (int d = 0; d < c->r; d++)
                    acc += (double)c->G[k * c->r + d] * c->w[(row * c->r + d) * c->plane + e];
                c->v[((int64_t)k * c->rows + row) * c->plane + e] = (float)acc;
            }
}

/* What the forward's two C steps share.  Tiles run in chunks of `per`
 * tiles of every clip (the 2D convolutions' batch is n x per), so that U and
 * M take about as much memory as the output, not a / m times it. */
typedef struct wino_run {
    int m, r, a, pad;              /* tile, taps, transformed frames, temporal padding */
    float AT[WINO_MAX_M * WINO_MAX_A];
    float BT[WINO_MAX_A * WINO_MAX_A];
    int64_t n, per;                /* clips; tiles per chunk */
    int64_t id, od;                /* input and output frames */
    int64_t cb_in, plane_in;       /* source channel blocks; floats per block and frame */
    int64_t cb_out, plane_out;     /* the same for the output */
    int64_t blk_out;               /* channels per output block (1 plain, C channels last) */
    int oc;                        /* output channels */
    const float *bias;             /* OC, or NULL */
    int sum, relu;                 /* add the output's previous content; then ReLU */
    tensor src, dst;               /* 3D source and output, in this operator's layouts */
    tensor u0, m0;                 /* U_0 and M_0 in the transient area ... */
    int64_t u_stride, m_stride;    /* ... with U_k, M_k this many floats further */
    /* the transforms' per-job bodies for this CPU (wino_pick_bodies) */
    void (*input_job)(const struct wino_run *c, const float *x, int64_t t0, float *u, int64_t eb,
                      int64_t ee);
    void (*output_job)(const struct wino_run *c, const float *mk, int64_t ocb, int64_t t0,
                       float *y, int64_t eb, int64_t ee);
} wino_run;

/* One chunk's transform step. */
typedef struct wino_chunk {
    const wino_run *run;
    int64_t first;                 /* its first tile */
} wino_chunk;

/* The transforms are sums of whole planes, a few multiply-adds per float
 * read: each job's body is compiled for the x86-64 baseline and for AVX2 and
 * AVX-512 (8 and 16 lanes where the baseline has 4), chosen once at run time
 * (as spatial.c's taps_line).  Without contraction into FMAs (C11 mode) the
 * three give the same bits. */

/* U_k = sum_j BT[k][j] x[t0 + j], k < a, for one clip's tile and channel
 * block, floats eb .. ee - 1 of each plane: x points at its input frame 0
 * (frames t outside 0 .. id - 1 are the zero padding; t0 = tile x m - pad),
 * u at U_0's plane for it.
 *   x: id frames of P floats      U_k: P floats, k x u_stride apart */
static inline __attribute__((always_inline)) void wino_input_body(const wino_run *c,
                                                                  const float *x, int64_t t0,
                                                                  float *u, int64_t eb,
                                                                  int64_t ee) {
    const int64_t P = c->plane_in;
    float acc[WINO_CHUNK];
    for (int64_t e0 = eb; e0 < ee; e0 += WINO_CHUNK) {
        int len = ee - e0 < WINO_CHUNK ? (int)(ee - e0) : WINO_CHUNK;
        for (int k = 0; k < c->a; k++) {
            memset(acc, 0, sizeof acc);
            for (int j = 0; j < c->a; j++) {
                float w = c->BT[k * c->a + j];
                int64_t t = t0 + j;
                if (w == 0.0f || t < 0 || t >= c->id) continue; /* zero padding */
                const float *xt = x + t * P + e0;
                for (int e = 0; e < len; e++) acc[e] += w * xt[e];
            }
            memcpy(u + k * c->u_stride + e0, acc, sizeof(float) * (size_t)len);
        }
    }
}

/* bias[e] for the floats e0 .. e0 + len - 1 of a plane of output block ocb
 * (channel ocb x B + (e0 + e) mod B; 0 for the block's padding channels). */
static void fill_bias(const wino_run *c, int64_t ocb, int64_t e0, int len, float *bias) {
    const int64_t B = c->blk_out;
    int64_t ch = e0 % B;
    for (int e = 0; e < len; e++) {
        int64_t oc = ocb * B + ch;
        bias[e] = c->bias && oc < c->oc ? c->bias[oc] : 0.0f;
        if (++ch == B) ch = 0;
    }
}

/* y[t0 + i] = act(sum_k AT[i][k] M_k + bias (+ y[t0 + i])), i < m (a last
 * tile past od is cut), for one clip's tile and output channel block,
 * floats eb .. ee - 1 of each plane: mk points at M_0's plane for it, y at
 * the block's frame 0.  Plane chunk by chunk, so that the a chunks of M stay
 * in L1 while the m outputs are made.
 *   M_k: P floats, k x m_stride apart      y: od frames of P floats */
static inline __attribute__((always_inline)) void wino_output_body(const wino_run *c,
                                                                   const float *mk, int64_t ocb,
                                                                   int64_t t0, float *y,
                                                                   int64_t eb, int64_t ee) {
    const int64_t P = c->plane_out;
    const int mt = t0 + c->m <= c->od ? c->m : (int)(c->od - t0);
    float bias[WINO_CHUNK], acc[WINO_CHUNK];
    int bias_once = WINO_CHUNK % c->blk_out == 0; /* else its pattern shifts chunk to chunk */
    if (bias_once) fill_bias(c, ocb, 0, WINO_CHUNK, bias);
    for (int64_t e0 = eb; e0 < ee; e0 += WINO_CHUNK) {
        int len = ee - e0 < WINO_CHUNK ? (int)(ee - e0) : WINO_CHUNK;
        if (!bias_once) fill_bias(c, ocb, e0, len, bias);
        for (int i = 0; i < mt; i++) {
            float *yt = y + (t0 + i) * P + e0;
            for (int e = 0; e < len; e++) acc[e] = bias[e] + (c->sum ? yt[e] : 0.0f);
            for (int k = 0; k < c->a; k++) {
                float w = c->AT[i * c->a + k];
                if (w == 0.0f) continue;
                const float *m = mk + k * c->m_stride + e0;
                for (int e = 0; e < len; e++) acc[e] += w * m[e];
            }
            if (c->relu)
                for (int e = 0; e < len; e++) acc[e] = acc[e] > 0.0f ? acc[e] : 0.0f;
            memcpy(yt, acc, sizeof(float) * (size_t)len);
        }
    }
}

/* wino_input_<isa> and wino_output_<isa>: the bodies compiled for one ISA. */
#define WINO_BODIES(isa, attr)                                                                 \
    attr static void wino_input_##isa(const wino_run *c, const float *x, int64_t t0, float *u,  \
                                      int64_t eb, int64_t ee) {                                \
        wino_input_body(c, x, t0, u, eb, ee);                                                  \
    }                                                                                          \
    attr static void wino_output_##isa(const wino_run *c, const float *mk, int64_t ocb,         \
                                       int64_t t0, float *y, int64_t eb, int64_t ee) {         \
        wino_output_body(c, mk, ocb, t0, y, eb, ee);                                           \
    }
WINO_BODIES(base, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
WINO_BODIES(avx2, __attribute__((target("avx2"))))
WINO_BODIES(avx512, __attribute__((target("avx512f"))))
#endif

/* The widest of those this CPU runs. */
static void wino_pick_bodies(wino_run *c) {
    c->input_job = wino_input_base;
    c->output_job = wino_output_base;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx512f")) {
        c->input_job = wino_input_avx512;
        c->output_job = wino_output_avx512;
    } else if (__builtin_cpu_supports("avx2")) {
        c->input_job = wino_input_avx2;
        c->output_job = wino_output_avx2;
    }
#endif
}

/* Floats of a plane per job at most (a multiple of WINO_CHUNK): a plane is
 * split in parts so that a step has jobs for every thread even when a
 * chunk holds one tile of one clip with few channel blocks (conv1's input,
 * 3 planes). */
#define WINO_PART (16 * WINO_CHUNK)

static int64_t plane_parts(int64_t P) { return (P + WINO_PART - 1) / WINO_PART; }

/* Floats [*eb, *ee) of a plane of P floats: its part `part`. */
static void plane_part(int64_t P, int64_t part, int64_t *eb, int64_t *ee) {
    *eb = part * WINO_PART;
    *ee = *eb + WINO_PART < P ? *eb + WINO_PART : P;
}

/* The chunk's input transform, one job per clip, tile, channel block and
 * part of a plane.
 *   x: n x cb_in x id x plane_in      U_k: (n x per) x cb_in x plane_in */
static void wino_input_fn(const step *s) {
    const wino_chunk *ch = s->ctx;
    const wino_run *c = ch->run;
    const float *x = tensor_ptr(&c->src);
    float *u = tensor_ptr(&c->u0);
    const int64_t P = c->plane_in, parts = plane_parts(P), jobs = c->n * c->per * c->cb_in * parts;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < jobs; job++) {
        int64_t part = job % parts, rest = job / parts;
        int64_t cb = rest % c->cb_in, nt = rest / c->cb_in; /* nt = clip x per + tile in chunk */
        int64_t n = nt / c->per, t0 = (ch->first + nt % c->per) * c->m - c->pad;
        int64_t eb, ee;
        plane_part(P, part, &eb, &ee);
        c->input_job(c, x + (n * c->cb_in + cb) * c->id * P, t0, u + (nt * c->cb_in + cb) * P, eb,
                     ee);
    }
}

/* The chunk's output transform, one job per clip, output channel block,
 * tile and part of a plane.
 *   M_k: (n x per) x cb_out x plane_out      y: n x cb_out x od x plane_out */
static void wino_output_fn(const step *s) {
    const wino_chunk *ch = s->ctx;
    const wino_run *c = ch->run;
    const float *mb = tensor_ptr(&c->m0);
    float *y = tensor_ptr(&c->dst);
    const int64_t P = c->plane_out, parts = plane_parts(P),
                  jobs = c->n * c->cb_out * c->per * parts;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < jobs; job++) {
        int64_t part = job % parts, rest = job / parts;
        int64_t jj = rest % c->per, ocb = rest / c->per % c->cb_out, n = rest / c->per / c->cb_out;
        int64_t eb, ee;
        plane_part(P, part, &eb, &ee);
        c->output_job(c, mb + ((n * c->per + jj) * c->cb_out + ocb) * P, ocb,
                      (ch->first + jj) * c->m, y + (n * c->cb_out + ocb) * c->od * P, eb, ee);
    }
}

/* ------------------------------------------------------------ build */

/* The 2D activation layouts the transforms take and their 3D twins, in
 * which a frame of one channel block (channels last: of all channels) is one
 * contiguous plane of H x W x block floats. */
#define WINO_LAYOUTS 5
static const dnnl_format_tag_t wino_tags2[WINO_LAYOUTS] = {dnnl_nchw, dnnl_nChw4c, dnnl_nChw8c,
                                                           dnnl_nChw16c, dnnl_nhwc};
static const dnnl_format_tag_t wino_tags3[WINO_LAYOUTS] = {dnnl_ncdhw, dnnl_nCdhw4c, dnnl_nCdhw8c,
                                                           dnnl_nCdhw16c, dnnl_ndhwc};

/* Which of those md is (-1: none), for a 2D (nd 4) or 3D (nd 5) md. */
static int wino_layout_of(const dnnl_memory_desc_t *md, int nd) {
    if (md->ndims != nd) return -1;
    for (int i = 0; i < WINO_LAYOUTS; i++) {
        dnnl_memory_desc_t want;
        dnnl_memory_desc_init_by_tag(&want, nd, md->dims, dnnl_f32,
                                     nd == 4 ? wino_tags2[i] : wino_tags3[i]);
        if (md_equal(md, &want)) return i;
    }
    return -1;
}

/* Channels per block of a 2D activation layout oneDNN chose (nchw: 1,
 * nChw4c/8c/16c: 4/8/16, nhwc: C), 0 for any other; *md3 receives the
 * matching 3D layout for dims3. */
static int layout_block(const dnnl_memory_desc_t *md2, const int64_t dims3[5],
                        dnnl_memory_desc_t *md3) {
    const int blocks[WINO_LAYOUTS] = {1, 4, 8, 16, (int)md2->dims[1]};
    int i = wino_layout_of(md2, 4);
    if (i < 0) return 0;
    dnnl_dims_t full = {0};
    memcpy(full, dims3, 5 * sizeof *dims3);
    dnnl_memory_desc_init_by_tag(md3, 5, full, dnnl_f32, wino_tags3[i]);
    return blocks[i];
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The 2D convolution each transformed frame goes through: nt images of
 * IC x H x W, no bias (added after the output transform), its activations
 * in the layout `tag` (dnnl_format_tag_any: the kernel's choice), by
 * algorithm alg (direct, or oneDNN's own Winograd in space); 0 when oneDNN
 * has no kernel for it but its reference one. */
static int make_2d_pd(builder *b, const conv_geom *g, const dnnl_dims_t src2,
                      const dnnl_dims_t dst2, dnnl_format_tag_t tag, dnnl_alg_kind_t alg,
                      dnnl_primitive_desc_t *pd) {
    int64_t wdims[5];
    int wn = 0;
    if (g->groups > 1) wdims[wn++] = g->groups;
    wdims[wn++] = g->oc / g->groups;
    wdims[wn++] = g->ic / g->groups;
    wdims[wn++] = g->k[1];
    wdims[wn++] = g->k[2];
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_memory_desc_init_by_tag(&smd, 4, src2, dnnl_f32, tag);
    md_any(&wmd, wn, wdims);
    dnnl_memory_desc_init_by_tag(&dmd, 4, dst2, dnnl_f32, tag);
    dnnl_dims_t strides = {g->stride[1], g->stride[2]}, pad = {g->pad[1], g->pad[2]};
    dnnl_convolution_desc_t desc;
    if (dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, alg, &smd, &wmd, NULL,
                                           &dmd, strides, pad, pad) != dnnl_success)
        return 0;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_primitive_desc_create(pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return 0;
    if (pd_is_reference(*pd)) {
        dnnl_primitive_desc_destroy(*pd);
        return 0;
    }
    return 1;
}

/* Weights: V_k in plain 2D layout (a prepare step), then into the kernel's
 * layout (reorders; the plain copy's pages go back afterwards). */
static int build_weights(builder *b, program *prepare, const conv_geom *g, int m,
                         const float *G, float *w_user, const dnnl_memory_desc_t *want,
                         tensor *v_kernel) {
    int r = g->k[0], a = m + r - 1;
    int64_t rows = (int64_t)g->oc * (g->ic / g->groups), plane = (int64_t)g->k[1] * g->k[2];
    size_t per = sizeof(float) * (size_t)(rows * plane);
    wino_weights *c = bld_blob(b, sizeof *c);
    if (!c) return -1;
    *c = (wino_weights){.w = w_user, .rows = rows, .plane = plane, .r = r, .a = a};
    memcpy(c->G, G, sizeof(float) * (size_t)(a * r));
    c->v = bld_alloc_scratch(b, per * (size_t)a);
    if (!c->v) return -1;
    step s = {.fn = wino_weights_fn, .ctx = c, .what = "winograd weight transform"};
    if (prog_push(prepare, &s, b->err) != 0) return -1;
    dnnl_memory_desc_t plain;
    md_plain(&plain, want->ndims, want->dims);
    for (int k = 0; k < a; k++) {
        tensor vk;
        if (bld_view(b, &plain, c->v + (size_t)k * (per / sizeof(float)), &vk) != 0) return -1;
        if (md_equal(&plain, want)) {
            v_kernel[k] = vk; /* the kernel reads the plain copy itself */
            continue;
        }
        if (bld_tensor(b, want, &v_kernel[k]) != 0 || op_reorder(b, prepare, &vk, &v_kernel[k]) != 0)
            return -1;
    }
    if (v_kernel[0].data == c->v) return 0;
    return op_drop_pages(b, prepare, c->v, per * (size_t)a, "winograd plain weights released");
}

/* Tiles per chunk: the largest divisor of `tiles` whose U and M (estimated
 * with channels padded to 16) take no more bytes than the output does. */
static int64_t chunk_tiles(const conv_geom *g, const int64_t *in, const int64_t *out, int a,
                           int64_t tiles) {
    int64_t pad16_in = (g->ic + 15) / 16 * 16, pad16_out = (g->oc + 15) / 16 * 16;
    int64_t per_tile = a * in[0] * (pad16_in * in[3] * in[4] + pad16_out * out[3] * out[4]);
    int64_t budget = in[0] * g->oc * out[2] * out[3] * out[4];
    int64_t per = 1;
    for (int64_t d = 2; d <= tiles; d++)
        if (tiles % d == 0 && d * per_tile <= budget) per = d;
    return per;
}

int conv_wino_build(builder *b, program *prepare, program *fwd, const conv_geom *g,
                    const tensor *src, float *w_user, float *bias, const conv_fuse *fuse,
                    const tensor *residual, conv_op *op) {
    const int64_t *in = src->md.dims;
    int64_t out[5] = {in[0], g->oc, 0, 0, 0};
    for (int i = 0; i < 3; i++) out[2 + i] = (in[2 + i] + 2 * g->pad[i] - g->k[i]) / g->stride[i] + 1;
    int m = choose_tile(g, in[2], out[2]);
    if (!m) return 0;
    int r = g->k[0], a = m + r - 1;
    int64_t tiles = (out[2] + m - 1) / m, per = chunk_tiles(g, in, out, a, tiles);
    dnnl_dims_t src2 = {in[0] * per, g->ic, in[3], in[4]}, dst2 = {in[0] * per, g->oc, out[3], out[4]};

    /* Decide everything before the first step is pushed.  The 2D kernel:
     * oneDNN's Winograd F(2x2, 3x3) in space where it has one (3x3, stride
     * 1, AVX-512: 1.3-1.7x its direct kernels on ResNet-18's layer1 and
     * layer2 planes, bench/RESULTS.md), else its direct kernel; either in
     * the layout of the residual a sum writes into, if it takes that (else
     * the residual is reordered first, below). */
    dnnl_format_tag_t tags[2];
    int ntags = 0, res = fuse && fuse->sum ? wino_layout_of(&residual->md, 5) : -1;
    if (res >= 0) tags[ntags++] = wino_tags2[res];
    tags[ntags++] = dnnl_format_tag_any;
    static const dnnl_alg_kind_t algs[2] = {dnnl_convolution_winograd, dnnl_convolution_direct};
    dnnl_primitive_desc_t pd = NULL;
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++)
        for (int t = 0; t < ntags && rc == 0; t++)
            rc = make_2d_pd(b, g, src2, dst2, tags[t], algs[k], &pd);
    if (rc <= 0) return rc;
    dnnl_memory_desc_t src2_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t dst2_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t w2_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t src3_md, dst3_md;
    int blk_in = layout_block(&src2_md, in, &src3_md), blk_out = layout_block(&dst2_md, out, &dst3_md);
    size_t u1 = align64(md_bytes(&src2_md)), m1 = align64(md_bytes(&dst2_md));
    float AT[WINO_MAX_M * WINO_MAX_A], G[WINO_MAX_A * WINO_MAX_R], BT[WINO_MAX_A * WINO_MAX_A];
    if (!blk_in || !blk_out ||
        (u1 + m1) * (size_t)a > WINO_MAX_BYTES || wino_matrices(m, r, AT, G, BT) != 0) {
        dnnl_primitive_desc_destroy(pd);
        return 0; /* the direct kernel, then */
    }

    memset(op, 0, sizeof *op);
    op->g = *g;
    wino_run *c = bld_blob(b, sizeof *c);
    tensor *v = bld_blob(b, sizeof(tensor) * (size_t)a);
    tensor *u = bld_blob(b, sizeof(tensor) * (size_t)a), *mm = bld_blob(b, sizeof(tensor) * (size_t)a);
    if (!c || !v || !u || !mm) goto fail;
    *c = (wino_run){.m = m, .r = r, .a = a, .pad = g->pad[0], .n = in[0], .per = per,
                    .id = in[2], .od = out[2], .cb_in = src2_md.padded_dims[1] / blk_in,
                    .plane_in = in[3] * in[4] * blk_in, .cb_out = dst2_md.padded_dims[1] / blk_out,
                    .plane_out = out[3] * out[4] * blk_out, .blk_out = blk_out, .oc = g->oc,
                    .bias = bias, .sum = fuse && fuse->sum, .relu = fuse && fuse->relu,
                    .u_stride = (int64_t)(u1 / sizeof(float)), .m_stride = (int64_t)(m1 / sizeof(float))};
    memcpy(c->AT, AT, sizeof AT);
    memcpy(c->BT, BT, sizeof BT);
    wino_pick_bodies(c);
    if (op_to_layout(b, fwd, src, &src3_md, &op->src_k) != 0) goto fail;
    c->src = op->src_k;
    if (build_weights(b, prepare, g, m, G, w_user, &w2_md, v) != 0) goto fail;
    op->wt = v[0];
    if (bias) {
        int64_t oc = g->oc;
        dnnl_memory_desc_t bmd;
        md_plain(&bmd, 1, &oc);
        if (bld_view(b, &bmd, bias, &op->bias) != 0) goto fail;
    }
    /* the output (the slot allocator's latest activation: the group's value) */
    if (c->sum && md_equal(&residual->md, &dst3_md))
        op->dst = *residual;
    else if (bld_act(b, &dst3_md, &op->dst) != 0 ||
             (c->sum && op_reorder(b, fwd, residual, &op->dst) != 0)) /* the sum's starting value */
        goto fail;
    c->dst = op->dst;
    /* U_k and M_k, the same bytes for every chunk */
    for (int k = 0; k < a; k++)
        if (bld_transient(b, &src2_md, (size_t)k * u1, &u[k]) != 0 ||
            bld_transient(b, &dst2_md, (size_t)a * u1 + (size_t)k * m1, &mm[k]) != 0)
            goto fail;
    c->u0 = u[0];
    c->m0 = mm[0];

    /* the forward, chunk by chunk: input transform, a convolutions, output transform */
    step conv = {.what = "winograd 2D convolution"};
    conv.nargs = 3; /* SRC, WEIGHTS, DST; bld_primitive appends the scratchpad */
    dnnl_primitive_desc_t owned = pd;
    pd = NULL;
    if (bld_primitive(b, owned, &conv) != 0) goto fail;
    for (int64_t first = 0; first < tiles; first += per) {
        wino_chunk *ch = bld_blob(b, sizeof *ch);
        if (!ch) goto fail;
        *ch = (wino_chunk){.run = c, .first = first};
        step in_step = {.fn = wino_input_fn, .ctx = ch, .what = "winograd input transform"};
        if (prog_push(fwd, &in_step, b->err) != 0) goto fail;
        for (int k = 0; k < a; k++) {
            step sk = conv;
            sk.args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, u[k].mem};
            sk.args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, v[k].mem};
            sk.args[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, mm[k].mem};
            if (prog_push(fwd, &sk, b->err) != 0) goto fail;
        }
        step out_step = {.fn = wino_output_fn, .ctx = ch, .what = "winograd output transform"};
        if (prog_push(fwd, &out_step, b->err) != 0) goto fail;
    }
    return 1;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    return -1;
}

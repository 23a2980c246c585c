/*
 * resize.c - Pillow's bilinear resampler (Image.resize(..., BILINEAR), its
 * Resample.c) re-implemented so that pixels equal PIL's byte for byte: the
 * filter's support widened by the downscale factor, 22-bit fixed-point taps
 * (precompute_coeffs + normalize_coeffs_8bpc), the horizontal pass first
 * into 8-bit rows, then the vertical pass; a window of the output can be
 * computed alone (a center crop resizes only the columns it keeps).
 *
 * Every sum is an integer sum of pixel x tap, so any order of additions
 * gives Pillow's result; the loops are arranged for SIMD:
 *   vertical pass     one output row = sum over taps of whole source rows
 *                     (taps_line: along the row, 16 bytes at a time)
 *   horizontal pass   a vertical pass on the transposed rows (resize_rows):
 *                     pixel by pixel on the rows themselves, even with
 *                     vpmaddwd on two rows at once, is slower
 * With AVX2 the multiply-adds are vpmaddwd on 16-bit pairs, each 22-bit tap
 * split into two 11-bit halves so that every product is exact.
 */
#include "data/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREC_BITS 22 /* Pillow's PRECISION_BITS for 8-bit pictures */

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs for out_size outputs over in_size inputs, then
 * its normalize_coeffs_8bpc.  Returns taps per output, or -1. */
static int make_coeffs(int in_size, int out_size, int **bounds, int32_t **taps, st3d_error *err) {
    double scale = (double)in_size / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = st3d_malloc((size_t)ksize * sizeof *k, err);
    int *b = st3d_malloc((size_t)out_size * 2 * sizeof *b, err);
    int32_t *t = st3d_malloc((size_t)out_size * ksize * sizeof *t, err);
    if (!k || !b || !t) {
        free(k), free(b), free(t);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / fscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            k[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax && ww != 0.0 ? k[x] / ww : 0.0;
            t[xx * ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PREC_BITS) : 0.5 + v * (1 << PREC_BITS));
        }
        b[2 * xx] = xmin;
        b[2 * xx + 1] = xmax;
    }
    free(k);
    free(*bounds), free(*taps);
    *bounds = b;
    *taps = t;
    return ksize;
}

static inline uint8_t clip8(int v) {
    v >>= PREC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* (data.h) */
void *st3d_work_grow(void *buf, size_t *cap, size_t need, st3d_error *err) {
    if (need <= *cap) return buf;
    void *p = st3d_malloc(need, err);
    if (!p) return NULL;
    free(buf);
    *cap = need;
    return p;
}

/* One output line from `taps` source lines of n bytes (line t at lines +
 * t * stride), weights k: Pillow's fixed-point sums, in an order that runs
 * along the line (vectorized); integer sums are Pillow's in any order. */
static inline __attribute__((always_inline)) void taps_line_body(
    const uint8_t *lines, size_t stride, int taps, const int32_t *k, int n, int32_t *acc,
    uint8_t *out) {
    enum { CHUNK = 32 }; /* sums kept in registers over all taps */
    int i0 = 0;
    for (; i0 + CHUNK <= n; i0 += CHUNK) {
        int32_t a[CHUNK];
        for (int j = 0; j < CHUNK; j++) a[j] = 1 << (PREC_BITS - 1);
        for (int t = 0; t < taps; t++) {
            const uint8_t *p = lines + (size_t)t * stride + i0;
            int32_t kt = k[t];
            for (int j = 0; j < CHUNK; j++) a[j] += p[j] * kt;
        }
        for (int j = 0; j < CHUNK; j++) out[i0 + j] = clip8(a[j]);
    }
    for (int i = i0; i < n; i++) acc[i] = 1 << (PREC_BITS - 1); /* the rest */
    for (int t = 0; t < taps; t++) {
        const uint8_t *p = lines + (size_t)t * stride;
        int32_t kt = k[t];
        for (int i = i0; i < n; i++) acc[i] += p[i] * kt;
    }
    for (int i = i0; i < n; i++) out[i] = clip8(acc[i]);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* Two taps' weights, as the 16-bit pairs vpmaddwd multiplies: a weight k
 * (|k| <= 2^22, Pillow's normalized taps) = hi * 2^11 + lo with lo in
 * [0, 2^11) and hi in [-2^11, 2^11], both int16; {lo_t, lo_t+1} in *lo,
 * {hi_t, hi_t+1} in *hi (a tap past the last weighs 0). */
static inline __attribute__((always_inline)) void split_pair(const int32_t *k, int t, int taps,
                                                             int32_t *lo, int32_t *hi) {
    int32_t a = k[t], b = t + 1 < taps ? k[t + 1] : 0;
    *lo = (int32_t)((uint32_t)(a & 2047) | (uint32_t)(b & 2047) << 16);
    *hi = (int32_t)((uint32_t)(uint16_t)(a >> 11) | (uint32_t)(uint16_t)(b >> 11) << 16);
}

/* taps_line with AVX2's vpmaddwd: 16 bytes along the line at a time, two
 * taps per multiply-add (bytes of lines t and t+1 interleaved as 16-bit
 * pairs), each weight split into 11-bit halves (split_pair) so that the
 * 16-bit products are exact: sum = (sum_hi << 11) + sum_lo, the very
 * integer Pillow's 32-bit loop computes; packing saturates as clip8. */
__attribute__((target("avx2"))) static void taps_line_avx2(const uint8_t *lines, size_t stride,
                                                           int taps, const int32_t *k, int n,
                                                           int32_t *acc, uint8_t *out) {
    int32_t lo[16], hi[16]; /* a pair per two taps (taps <= 32: a 15x downscale) */
    int pairs = (taps + 1) / 2;
    if (pairs > 16) {
        taps_line_body(lines, stride, taps, k, n, acc, out);
        return;
    }
    for (int q = 0; q < pairs; q++) split_pair(k, 2 * q, taps, &lo[q], &hi[q]);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i half = _mm256_set1_epi32(1 << (PREC_BITS - 1));
    int i0 = 0;
    for (; i0 + 16 <= n; i0 += 16) {
        /* l: sums over the weights' low halves (and Pillow's rounding
         * half), h: over their high halves; 0: positions 0-3 and 8-11
         * (vpunpcklwd's), 1: 4-7 and 12-15 */
        __m256i l0 = half, l1 = half, h0 = zero, h1 = zero;
        for (int q = 0; q < pairs; q++) {
            const uint8_t *p = lines + (size_t)(2 * q) * stride + i0;
            __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
            __m256i b = 2 * q + 1 < taps
                            ? _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + stride)))
                            : zero;
            __m256i ab0 = _mm256_unpacklo_epi16(a, b), ab1 = _mm256_unpackhi_epi16(a, b);
            __m256i wl = _mm256_set1_epi32(lo[q]), wh = _mm256_set1_epi32(hi[q]);
            l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(ab0, wl));
            l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(ab1, wl));
            h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(ab0, wh));
            h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(ab1, wh));
        }
        __m256i s0 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h0, 11), l0), PREC_BITS);
        __m256i s1 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h1, 11), l1), PREC_BITS);
        __m256i w16 = _mm256_packs_epi32(s0, s1); /* back in order: 0-7 | 8-15 */
        __m256i b8 = _mm256_packus_epi16(w16, w16); /* 0-7 0-7 | 8-15 8-15, clipped */
        b8 = _mm256_permute4x64_epi64(b8, 0x08);    /* 0-7 8-15 in the low half */
        _mm_storeu_si128((__m128i *)(out + i0), _mm256_castsi256_si128(b8));
    }
    if (i0 < n) /* the last n - i0 < 16 bytes */
        taps_line_body(lines + i0, stride, taps, k, n - i0, acc, out + i0);
}
#define HAVE_TAPS_AVX2 1
#endif

static void taps_line(const uint8_t *lines, size_t stride, int taps, const int32_t *k, int n,
                      int32_t *acc, uint8_t *out) {
#ifdef HAVE_TAPS_AVX2
    if (__builtin_cpu_supports("avx2")) {
        taps_line_avx2(lines, stride, taps, k, n, acc, out);
        return;
    }
#endif
    taps_line_body(lines, stride, taps, k, n, acc, out);
}

/* transpose_px (below) from row r0 on, one pixel at a time. */
static void transpose_px_plain(const uint8_t *in, size_t in_stride, int rows, int cols,
                               uint8_t *out, size_t out_stride, int r0) {
    for (int r = r0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            memcpy(out + (size_t)c * out_stride + (size_t)r * 3,
                   in + (size_t)r * in_stride + (size_t)c * 3, 3);
}

#ifdef HAVE_TAPS_AVX2
/* transpose_px in 4 x 4 blocks: four 16-byte loads (4 pixels of 4 rows),
 * each widened to 4-byte pixels, a 32-bit 4 x 4 transpose, narrowed back
 * and stored as 12 bytes (a 16-byte store where its last 4 bytes stay
 * inside that row of out, to be rewritten by the next block); the columns
 * and rows left over, one pixel at a time. */
__attribute__((target("avx2"))) static void transpose_px_avx2(const uint8_t *in, size_t in_stride,
                                                              int rows, int cols, uint8_t *out,
                                                              size_t out_stride) {
    const __m128i widen = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    const __m128i narrow = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint8_t *i0 = in + (size_t)r * in_stride;
        int c = 0;
        for (; c + 6 <= cols; c += 4) { /* 16 bytes from pixel c stay in the row */
            __m128i e[4];
            for (int k = 0; k < 4; k++)
                e[k] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(i0 + (size_t)k * in_stride + (size_t)c * 3)),
                    widen);
            __m128i t0 = _mm_unpacklo_epi32(e[0], e[1]), t1 = _mm_unpacklo_epi32(e[2], e[3]);
            __m128i t2 = _mm_unpackhi_epi32(e[0], e[1]), t3 = _mm_unpackhi_epi32(e[2], e[3]);
            __m128i col[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1),
                              _mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)};
            for (int k = 0; k < 4; k++) {
                __m128i v = _mm_shuffle_epi8(col[k], narrow);
                uint8_t *o = out + (size_t)(c + k) * out_stride + (size_t)r * 3;
                if (r + 6 <= rows) { /* 4 bytes over, inside this row of out */
                    _mm_storeu_si128((__m128i *)o, v);
                } else { /* near the end of this row of out: 12 bytes exactly */
                    _mm_storel_epi64((__m128i *)o, v);
                    uint32_t last = (uint32_t)_mm_extract_epi32(v, 2);
                    memcpy(o + 8, &last, 4);
                }
            }
        }
        for (; c < cols; c++)
            for (int k = 0; k < 4; k++)
                memcpy(out + (size_t)c * out_stride + (size_t)(r + k) * 3,
                       i0 + (size_t)k * in_stride + (size_t)c * 3, 3);
    }
    transpose_px_plain(in, in_stride, rows, cols, out, out_stride, r);
}
#endif

/* Pixels of `rows` rows x `cols` columns (3 bytes each, rows `in_stride`
 * apart) transposed: column c becomes row c of out (rows `out_stride`
 * apart), pixel r at out + c * out_stride + r * 3.  Only those bytes are
 * written. */
static void transpose_px(const uint8_t *in, size_t in_stride, int rows, int cols, uint8_t *out,
                         size_t out_stride) {
#ifdef HAVE_TAPS_AVX2
    if (__builtin_cpu_supports("avx2")) {
        transpose_px_avx2(in, in_stride, rows, cols, out, out_stride);
        return;
    }
#endif
    transpose_px_plain(in, in_stride, rows, cols, out, out_stride, 0);
}

/* Pillow's horizontal pass over source rows y0 .. y0 + nr - 1, for output
 * columns wx .. wx + ww - 1, into w->tmp (nr rows of ww RGB pixels).  Done
 * as a vertical pass on the transposed image: the source columns it reads
 * become lines of nr pixels (w->cols), each output column one taps_line over
 * them, then transposed back.  Pixel by pixel, the taps of one output are a
 * short scalar loop over three interleaved channels (perf: the loaders'
 * largest cost for small clips, 15% of `st3d test` on 56 x 56 clips); this
 * way resizing a frame takes 0.7-0.8x the time (bench/RESULTS.md). */
static int resize_rows(const uint8_t *src, size_t src_stride, int y0, int nr, int wx, int ww,
                       st3d_spatial_work *w, st3d_error *err) {
    int xf = w->bx[2 * wx], xl = w->bx[2 * (wx + ww - 1)] + w->bx[2 * (wx + ww - 1) + 1];
    size_t line = (size_t)nr * 3, need = (size_t)(xl - xf + ww) * line;
    uint8_t *c = st3d_work_grow(w->cols, &w->cols_cap, need, err);
    if (!c) return -1;
    w->cols = c;
    uint8_t *t = st3d_work_grow(w->tmp, &w->tmp_cap, (size_t)nr * ww * 3, err);
    if (!t) return -1;
    w->tmp = t;
    uint8_t *cols = w->cols, *outc = w->cols + (size_t)(xl - xf) * line;
    /* source columns xf .. xl-1 as lines */
    transpose_px(src + (size_t)y0 * src_stride + (size_t)xf * 3, src_stride, nr, xl - xf, cols, line);
    for (int xx = 0; xx < ww; xx++)
        taps_line(cols + (size_t)(w->bx[2 * (wx + xx)] - xf) * line, line, w->bx[2 * (wx + xx) + 1],
                  w->wx + (size_t)(wx + xx) * w->kx, nr * 3, w->acc, outc + (size_t)xx * line);
    transpose_px(outc, line, ww, nr, w->tmp, (size_t)ww * 3); /* back to rows */
    return 0;
}

int st3d_resize_pil_bilinear(const uint8_t *src, int src_w, int src_h, size_t src_stride,
                             int dst_w, int dst_h, int wx, int wy, int ww, int wh, uint8_t *dst,
                             st3d_spatial_work *w, st3d_error *err) {
    if (src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0 || wx < 0 || wy < 0 ||
        wx + ww > dst_w || wy + wh > dst_h)
        return st3d_fail(err, ST3D_ERR_INVALID, "bad resize %dx%d -> %dx%d", src_w, src_h, dst_w,
                         dst_h);
    int key[6] = {src_w, src_h, dst_w, dst_h, 0, 1};
    if (memcmp(key, w->key, sizeof key) != 0) {
        if ((w->kx = make_coeffs(src_w, dst_w, &w->bx, &w->wx, err)) < 0) return -1;
        if ((w->ky = make_coeffs(src_h, dst_h, &w->by, &w->wy, err)) < 0) return -1;
        memcpy(w->key, key, sizeof key);
    }
    int need_h = dst_w != src_w, need_v = dst_h != src_h;
    /* rows of the source the window's vertical taps touch */
    int y0 = need_v ? w->by[2 * wy] : wy;
    int y1 = need_v ? w->by[2 * (wy + wh - 1)] + w->by[2 * (wy + wh - 1) + 1] : wy + wh;
    int nr = y1 - y0, n_acc = (nr > ww ? nr : ww) * 3;
    int32_t *acc = st3d_work_grow(w->acc, &w->acc_cap, (size_t)n_acc * sizeof(int32_t), err);
    if (!acc) return -1;
    w->acc = acc;
    const uint8_t *rows = src + (size_t)y0 * src_stride;
    size_t rows_stride = src_stride;
    int cx0 = 0; /* column of `rows` holding window column 0 */
    if (need_h) {
        if (resize_rows(src, src_stride, y0, nr, wx, ww, w, err) != 0) return -1;
        rows = w->tmp;
        rows_stride = (size_t)ww * 3;
    } else {
        cx0 = wx;
    }
    for (int yy = 0; yy < wh; yy++) {
        uint8_t *out = dst + (size_t)yy * ww * 3;
        if (!need_v) {
            memcpy(out, rows + (size_t)(wy + yy - y0) * rows_stride + (size_t)cx0 * 3,
                   (size_t)ww * 3);
            continue;
        }
        int ymin = w->by[2 * (wy + yy)] - y0, yn = w->by[2 * (wy + yy) + 1];
        taps_line(rows + (size_t)ymin * rows_stride + (size_t)cx0 * 3, rows_stride, yn,
                  w->wy + (size_t)(wy + yy) * w->ky, ww * 3, w->acc, out);
    }
    return 0;
}

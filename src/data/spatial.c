/*
 * spatial.c - the spatial augmentations of the original spatial_transforms.py
 * and main.py's get_train_utils / get_val_utils, on 8-bit RGB pictures
 * (h x w x 3, as PIL images), ending in the NCDHW float tensor:
 *
 *   MultiScaleCornerCrop  scale from {1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2} (each
 *                         the previous times 1/2^(1/4)), position from
 *                         c, tl, tr, bl, br; side int(short_side * scale);
 *                         the centre rounds half to even (Python's round);
 *                         then a bilinear resize to size x size.
 *   RandomResizedCrop     torchvision's get_params: 10 tries of an area in
 *                         [min_scale, 1] x area and a log-uniform aspect in
 *                         [min_ratio, 1/min_ratio], else the central
 *                         fallback; then a bilinear resize.
 *   Resize + CenterCrop   short side to size (the other side truncated),
 *                         then the centre (Python rounding) size x size.
 *   Resize alone          main.py get_inference_utils with --inference_crop
 *                         nocrop: the whole resized frame, short side size,
 *                         long side int(size * long / short) as torchvision's
 *                         Resize(int) computes it (truncated: 320x240 at 112
 *                         gives 149x112), aspect kept; clips then have their
 *                         video's own height and width.
 *   RandomHorizontalFlip  with probability 1/2.
 *   ColorJitter           torchvision's: factors uniform in [max(0, 1-s),
 *                         1+s] (hue in [-h, h]) applied in a random order
 *                         through PIL's ImageEnhance; the original passes
 *                         all strengths 0, which makes it an identity.
 *   ToTensor, ScaleValue, Normalize  x / 255 * value_scale, minus mean,
 *                         over std, folded into a 256-entry table per channel.
 *
 * Resizing is Pillow's bilinear resampler re-implemented (support 1 widened
 * by the downscale factor, 22-bit fixed-point taps, horizontal pass first),
 * so pixels equal PIL's; a window of the output can be computed alone.
 */
#include "data/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREC_BITS 22 /* Pillow's PRECISION_BITS for 8-bit pictures */

void st3d_spatial_make_lut(st3d_spatial_cfg *cfg, float value_scale, const float mean[3],
                           const float std[3], int mean_norm, int std_norm) {
    /* mirrors main.py's get_normalize_method: no_mean_norm -> mean 0,
     * no_std_norm -> std 1 */
    for (int c = 0; c < 3; c++) {
        float m = mean_norm ? mean[c] : 0.0f, s = std_norm ? std[c] : 1.0f;
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            x *= value_scale;
            cfg->lut[c][v] = (x - m) / s;
        }
    }
}

void st3d_spatial_draw(const st3d_spatial_cfg *cfg, int w, int h, st3d_rng *rng,
                       st3d_spatial_choice *ch) {
    memset(ch, 0, sizeof *ch);
    ch->out_w = ch->out_h = cfg->size; /* every crop but nocrop's */
    if (cfg->crop == ST3D_SCROP_CORNER) {
        double scales[5] = {1.0};
        double step = 1.0 / pow(2.0, 1.0 / 4.0);
        for (int i = 1; i < 5; i++) scales[i] = scales[i - 1] * step;
        double scale = scales[st3d_rng_int(rng, 0, 4)];
        int pos = (int)st3d_rng_int(rng, 0, 4); /* c, tl, tr, bl, br */
        int side = (int)((double)(w < h ? w : h) * scale);
        if (side < 1) side = 1;
        int x = 0, y = 0;
        switch (pos) {
        case 0:
            y = (int)nearbyint((double)(h - side) / 2.0);
            x = (int)nearbyint((double)(w - side) / 2.0);
            break;
        case 1: break;
        case 2: x = w - side; break;
        case 3: y = h - side; break;
        default: x = w - side, y = h - side; break;
        }
        ch->crop_x = x, ch->crop_y = y, ch->crop_w = side, ch->crop_h = side;
    } else if (cfg->crop == ST3D_SCROP_RANDOM) {
        double area = (double)w * h;
        double r0 = cfg->min_ratio, r1 = 1.0 / cfg->min_ratio;
        double lr0 = log(r0), lr1 = log(r1);
        int found = 0;
        for (int t = 0; t < 10 && !found; t++) {
            double target = area * (cfg->min_scale + (1.0 - cfg->min_scale) * st3d_rng_uniform(rng));
            double aspect = exp(lr0 + (lr1 - lr0) * st3d_rng_uniform(rng));
            int cw = (int)nearbyint(sqrt(target * aspect));
            int chh = (int)nearbyint(sqrt(target / aspect));
            if (cw > 0 && cw <= w && chh > 0 && chh <= h) {
                ch->crop_y = (int)st3d_rng_int(rng, 0, h - chh);
                ch->crop_x = (int)st3d_rng_int(rng, 0, w - cw);
                ch->crop_w = cw, ch->crop_h = chh;
                found = 1;
            }
        }
        if (!found) {
            double in_ratio = (double)w / (double)h;
            double lo = r0 < r1 ? r0 : r1, hi = r0 < r1 ? r1 : r0;
            int cw = w, chh = h;
            if (in_ratio < lo) chh = (int)nearbyint(cw / lo);
            else if (in_ratio > hi) cw = (int)nearbyint(chh * hi);
            ch->crop_w = cw, ch->crop_h = chh;
            ch->crop_y = (h - chh) / 2, ch->crop_x = (w - cw) / 2;
        }
    } else { /* Resize(size), then CenterCrop(size) unless nocrop */
        int rw, rh;
        if (w <= h) {
            rw = cfg->size;
            rh = (int)((int64_t)cfg->size * h / w);
        } else {
            rh = cfg->size;
            rw = (int)((int64_t)cfg->size * w / h);
        }
        ch->resize_w = rw, ch->resize_h = rh;
        if (cfg->crop == ST3D_SCROP_CENTER) {
            ch->crop_y = (int)nearbyint((double)(rh - cfg->size) / 2.0);
            ch->crop_x = (int)nearbyint((double)(rw - cfg->size) / 2.0);
        } else {
            ch->out_w = rw, ch->out_h = rh;
        }
        ch->crop_w = rw, ch->crop_h = rh;
    }
    if (cfg->hflip) ch->flip = st3d_rng_uniform(rng) < 0.5;
    if (cfg->colorjitter) {
        ch->jitter = 1;
        int ord[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) {
            int j = (int)st3d_rng_int(rng, 0, i), t = ord[i];
            ord[i] = ord[j], ord[j] = t;
        }
        memcpy(ch->order, ord, sizeof ord);
        for (int k = 0; k < 3; k++) {
            float s = cfg->jitter[k], lo = 1.0f - s < 0 ? 0 : 1.0f - s;
            ch->factor[k] = s > 0 ? lo + (1.0f + s - lo) * (float)st3d_rng_uniform(rng) : 1.0f;
        }
        float hs = cfg->jitter[3];
        ch->factor[3] = hs > 0 ? -hs + 2.0f * hs * (float)st3d_rng_uniform(rng) : 0.0f;
    }
}

void st3d_spatial_work_free(st3d_spatial_work *w) {
    free(w->bx), free(w->by), free(w->wx), free(w->wy), free(w->tmp), free(w->out), free(w->acc),
        free(w->cols);
    memset(w, 0, sizeof *w);
}

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

/* A work buffer of at least `need` bytes: *buf itself when its *cap bytes
 * are enough, else a new one (the old is freed).  NULL on failure. */
static void *grown(void *buf, size_t *cap, size_t need, st3d_error *err) {
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
/* The same loop compiled for AVX2 (8 lanes and a 32-bit multiply, where the
 * x86-64 baseline has 4 and emulates it), chosen at run time. */
__attribute__((target("avx2"))) static void taps_line_avx2(const uint8_t *lines, size_t stride,
                                                           int taps, const int32_t *k, int n,
                                                           int32_t *acc, uint8_t *out) {
    taps_line_body(lines, stride, taps, k, n, acc, out);
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
    /* a pixel is moved as 4 bytes (one load, one store), its fourth byte
     * overwritten by the next pixel moved, or landing in the byte of
     * padding after each line and after tmp */
    size_t line = (size_t)nr * 3 + 1, need = (size_t)(xl - xf + ww) * line;
    uint8_t *c = grown(w->cols, &w->cols_cap, need, err);
    if (!c) return -1;
    w->cols = c;
    uint8_t *t = grown(w->tmp, &w->tmp_cap, (size_t)nr * ww * 3 + 1, err);
    if (!t) return -1;
    w->tmp = t;
    uint8_t *cols = w->cols, *outc = w->cols + (size_t)(xl - xf) * line;
    for (int y = 0; y < nr; y++) { /* source columns xf .. xl-1 as lines */
        const uint8_t *in = src + (size_t)(y0 + y) * src_stride + (size_t)xf * 3;
        uint8_t *o = cols + (size_t)y * 3;
        int x = 0;
        for (; x < xl - xf - 1; x++) memcpy(o + (size_t)x * line, in + x * 3, 4);
        memcpy(o + (size_t)x * line, in + x * 3, 3); /* 4 bytes could pass the frame's end */
    }
    for (int xx = 0; xx < ww; xx++)
        taps_line(cols + (size_t)(w->bx[2 * (wx + xx)] - xf) * line, line, w->bx[2 * (wx + xx) + 1],
                  w->wx + (size_t)(wx + xx) * w->kx, nr * 3, w->acc, outc + (size_t)xx * line);
    for (int y = 0; y < nr; y++) { /* back to rows */
        uint8_t *out = w->tmp + (size_t)y * ww * 3;
        for (int xx = 0; xx < ww; xx++) memcpy(out + xx * 3, outc + (size_t)xx * line + (size_t)y * 3, 4);
    }
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
    int32_t *acc = grown(w->acc, &w->acc_cap, (size_t)n_acc * sizeof(int32_t), err);
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

/* Pillow's Image.blend(degenerate, img, f) per byte: interpolation truncates,
 * extrapolation clips then truncates. */
static inline uint8_t blend(int deg, int v, float f) {
    float t = (float)deg + f * (float)(v - deg);
    if (f >= 0.0f && f <= 1.0f) return (uint8_t)t;
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

/* Pillow's RGB -> L (ITU-R 601-2 luma, 16-bit fixed point, rounded). */
static inline int luma(const uint8_t *p) {
    return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

void st3d_adjust_brightness(uint8_t *rgb, int64_t n, float f) {
    for (int64_t i = 0; i < n * 3; i++) rgb[i] = blend(0, rgb[i], f);
}

void st3d_adjust_contrast(uint8_t *rgb, int64_t n, float f) {
    /* ImageEnhance.Contrast: a flat grey at int(mean(L) + 0.5) */
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += luma(rgb + 3 * i);
    int m = (int)(sum / (double)n + 0.5);
    for (int64_t i = 0; i < n * 3; i++) rgb[i] = blend(m, rgb[i], f);
}

void st3d_adjust_saturation(uint8_t *rgb, int64_t n, float f) {
    /* ImageEnhance.Color: the picture's own grey version */
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = rgb + 3 * i;
        int l = luma(p);
        for (int c = 0; c < 3; c++) p[c] = blend(l, p[c], f);
    }
}

static inline int clip255(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

void st3d_adjust_hue(uint8_t *rgb, int64_t n, float f) {
    /* torchvision's adjust_hue on PIL: to HSV (Pillow's conversion), add
     * uint8(f * 255) to H modulo 256, back to RGB.  The float / double mix
     * below is Pillow's, so that results are bit-identical. */
    int shift = (int)((double)f * 255.0);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = rgb + 3 * i;
        int r = p[0], g = p[1], b = p[2];
        int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
        int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
        int uh = 0, us = 0, uv = maxc;
        if (maxc != minc) {
            float cr = (float)(maxc - minc), s = cr / (float)maxc;
            float rc = (float)(maxc - r) / cr, gc = (float)(maxc - g) / cr, bc = (float)(maxc - b) / cr;
            float h;
            if (r == maxc) h = bc - gc;
            else if (g == maxc) h = (float)(2.0 + rc - bc);
            else h = (float)(4.0 + gc - rc);
            h = (float)fmod(h / 6.0 + 1.0, 1.0);
            uh = clip255((int)(h * 255.0));
            us = clip255((int)(s * 255.0));
        }
        uh = (uh + shift) & 255;
        if (us == 0) {
            p[0] = p[1] = p[2] = (uint8_t)uv;
            continue;
        }
        int ii = (int)floor((float)uh * 6.0 / 255.0);
        float fr = (float)((float)uh * 6.0 / 255.0 - (float)ii);
        float fs = (float)((float)us / 255.0);
        int pp = clip255((int)round((float)uv * (1.0 - fs)));
        int q = clip255((int)round((float)uv * (1.0 - fs * fr)));
        int t = clip255((int)round((float)uv * (1.0 - fs * (1.0 - fr))));
        int o[3];
        switch (ii % 6) {
        case 0: o[0] = uv, o[1] = t, o[2] = pp; break;
        case 1: o[0] = q, o[1] = uv, o[2] = pp; break;
        case 2: o[0] = pp, o[1] = uv, o[2] = t; break;
        case 3: o[0] = pp, o[1] = q, o[2] = uv; break;
        case 4: o[0] = t, o[1] = pp, o[2] = uv; break;
        default: o[0] = uv, o[1] = pp, o[2] = q; break;
        }
        p[0] = (uint8_t)o[0], p[1] = (uint8_t)o[1], p[2] = (uint8_t)o[2];
    }
}

const uint8_t *st3d_spatial_pixels(const st3d_spatial_cfg *cfg, const st3d_spatial_choice *ch,
                                   const st3d_image *frame, st3d_spatial_work *w,
                                   st3d_error *err) {
    int S = cfg->size, OW = ch->out_w, OH = ch->out_h; /* S x S but with nocrop */
    size_t need = (size_t)OW * OH * 3;
    uint8_t *o = grown(w->out, &w->out_cap, need, err);
    if (!o) return NULL;
    w->out = o;
    size_t stride = (size_t)frame->width * 3;
    int rc;
    if (cfg->crop == ST3D_SCROP_CENTER || cfg->crop == ST3D_SCROP_NONE) {
        /* the window (crop_x, crop_y, OW, OH) of the resized frame: its
         * centre, or all of it */
        if (ch->crop_x < 0 || ch->crop_y < 0 || ch->crop_x + OW > ch->resize_w ||
            ch->crop_y + OH > ch->resize_h) {
            st3d_fail(err, ST3D_ERR_INVALID, "center crop does not fit");
            return NULL;
        }
        rc = st3d_resize_pil_bilinear(frame->data, frame->width, frame->height, stride,
                                      ch->resize_w, ch->resize_h, ch->crop_x, ch->crop_y, OW, OH,
                                      w->out, w, err);
    } else {
        if (ch->crop_x < 0 || ch->crop_y < 0 || ch->crop_x + ch->crop_w > frame->width ||
            ch->crop_y + ch->crop_h > frame->height) {
            st3d_fail(err, ST3D_ERR_INVALID, "crop %dx%d+%d+%d outside a %dx%d frame", ch->crop_w,
                      ch->crop_h, ch->crop_x, ch->crop_y, frame->width, frame->height);
            return NULL;
        }
        const uint8_t *src = frame->data + (size_t)ch->crop_y * stride + (size_t)ch->crop_x * 3;
        rc = st3d_resize_pil_bilinear(src, ch->crop_w, ch->crop_h, stride, S, S, 0, 0, S, S,
                                      w->out, w, err);
    }
    if (rc != 0) return NULL;
    uint8_t *px = w->out;
    if (ch->flip)
        for (int y = 0; y < OH; y++) {
            uint8_t *row = px + (size_t)y * OW * 3;
            for (int a = 0, b = OW - 1; a < b; a++, b--)
                for (int c = 0; c < 3; c++) {
                    uint8_t t = row[3 * a + c];
                    row[3 * a + c] = row[3 * b + c], row[3 * b + c] = t;
                }
        }
    if (ch->jitter)
        for (int k = 0; k < 4; k++) {
            int op = ch->order[k];
            float f = ch->factor[op];
            int64_t n = (int64_t)OW * OH;
            if (op == 0 && cfg->jitter[0] > 0) st3d_adjust_brightness(px, n, f);
            else if (op == 1 && cfg->jitter[1] > 0) st3d_adjust_contrast(px, n, f);
            else if (op == 2 && cfg->jitter[2] > 0) st3d_adjust_saturation(px, n, f);
            else if (op == 3 && cfg->jitter[3] > 0) st3d_adjust_hue(px, n, f);
        }
    return px;
}

void st3d_spatial_normalize(const st3d_spatial_cfg *cfg, const uint8_t *px, int64_t n,
                            float *dst, int64_t plane) {
    /* HWC uint8 -> three planes of floats (ToTensor's transpose) */
    float *d0 = dst, *d1 = dst + plane, *d2 = dst + 2 * plane;
    for (int64_t i = 0; i < n; i++) {
        d0[i] = cfg->lut[0][px[3 * i]];
        d1[i] = cfg->lut[1][px[3 * i + 1]];
        d2[i] = cfg->lut[2][px[3 * i + 2]];
    }
}

int st3d_spatial_apply(const st3d_spatial_cfg *cfg, const st3d_spatial_choice *ch,
                       const st3d_image *frame, st3d_spatial_work *w, float *dst, int64_t plane,
                       st3d_error *err) {
    const uint8_t *px = st3d_spatial_pixels(cfg, ch, frame, w, err);
    if (!px) return -1;
    st3d_spatial_normalize(cfg, px, (int64_t)ch->out_w * ch->out_h, dst, plane);
    return 0;
}

int st3d_mean_std(const char *mean_dataset, float value_scale, float mean[3], float std[3],
                  st3d_error *err) {
    /* the values of the original's mean.py get_mean_std */
    static const double table[3][2][3] = {
        {{0.4345, 0.4051, 0.3775}, {0.2768, 0.2713, 0.2737}}, /* kinetics */
        {{0.4477, 0.4209, 0.3906}, {0.2767, 0.2695, 0.2714}}, /* activitynet */
        {{0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}},                   /* 0.5 */
    };
    int k = !strcmp(mean_dataset, "kinetics") ? 0 : !strcmp(mean_dataset, "activitynet") ? 1
          : !strcmp(mean_dataset, "0.5") ? 2 : -1;
    if (k < 0)
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "mean dataset '%s' is not one of kinetics, activitynet, 0.5", mean_dataset);
    for (int c = 0; c < 3; c++) {
        mean[c] = (float)(table[k][0][c] * (double)value_scale);
        std[c] = (float)(table[k][1][c] * (double)value_scale);
    }
    return 0;
}

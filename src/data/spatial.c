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
 * Resizing is Pillow's bilinear resampler re-implemented (resize.c), so
 * pixels equal PIL's; a window of the output can be computed alone.
 */
#include "data/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


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
    uint8_t *o = st3d_work_grow(w->out, &w->out_cap, need, err);
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

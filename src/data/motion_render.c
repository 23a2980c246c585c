/*
 * motion_render.c - the scenes of the built-in "motion" dataset (see
 * motion.h): random periodic textures (value noise, sine gratings,
 * checkers, dots, stripes) coloured from random palettes, eight shapes
 * given by approximate signed distances (so edges are anti-aliased and
 * rimmed), and frames composed by sampling the drifting background and the
 * moving, turning or scaling shape bilinearly.
 *
 * Every random choice comes from one splitmix64 generator seeded with
 * (seed, class, index), drawn in the same order for every class, so a
 * video's scene depends on nothing else (not on the thread that renders it,
 * nor on the other videos of the dataset).
 */
#include "data/motion.h"
#include "data/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TEX ST3D_MOTION_TEX
#define TEX_MASK (ST3D_MOTION_TEX - 1)
#define PI_F 3.14159265358979f

/* Tag mixed into every scene's generator, so that other users of
 * st3d_rng_for with the same numbers draw other values. */
#define SCENE_TAG 0x6d6f74696f6e3031ull /* "motion01" */

static float frand(st3d_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)st3d_rng_uniform(r);
}

static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static float dist3(const float *a, const float *b) {
    float d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return sqrtf(d0 * d0 + d1 * d1 + d2 * d2);
}

/* ----------------------------------------------------------------- textures */

enum { TEX_NOISE, TEX_GRATING, TEX_CHECKER, TEX_DOTS, TEX_STRIPES, N_TEX_KINDS };

/* Smooth periodic value noise: random values on a cells x cells lattice
 * (cells divides TEX), interpolated with smoothstep weights, added into v
 * with weight w. */
static void value_noise(st3d_rng *r, int cells, float w, float *v) {
    float lat[32 * 32];
    for (int i = 0; i < cells * cells; i++) lat[i] = (float)st3d_rng_uniform(r);
    int step = TEX / cells;
    for (int y = 0; y < TEX; y++) {
        int y0 = y / step, y1 = (y0 + 1) % cells;
        float b = (float)(y % step) / (float)step;
        b = b * b * (3 - 2 * b);
        for (int x = 0; x < TEX; x++) {
            int x0 = x / step, x1 = (x0 + 1) % cells;
            float a = (float)(x % step) / (float)step;
            a = a * a * (3 - 2 * a);
            float top = lat[y0 * cells + x0] + a * (lat[y0 * cells + x1] - lat[y0 * cells + x0]);
            float bot = lat[y1 * cells + x0] + a * (lat[y1 * cells + x1] - lat[y1 * cells + x0]);
            v[y * TEX + x] += w * (top + b * (bot - top));
        }
    }
}

/* A random sine wave with a whole number of periods across the tile (so it
 * wraps): its integer frequencies and phase. */
static void wave(st3d_rng *r, int kmax, int *kx, int *ky, float *phase) {
    do {
        *kx = (int)st3d_rng_int(r, -kmax, kmax);
        *ky = (int)st3d_rng_int(r, -kmax, kmax);
    } while (*kx == 0 && *ky == 0);
    *phase = frand(r, 0, 2 * PI_F);
}

static float wave_at(int kx, int ky, float phase, int x, int y) {
    return sinf(2 * PI_F * (float)(kx * x + ky * y) / TEX + phase);
}

/* Fills v (TEX x TEX) with one random pattern scaled to [0, 1]; fine: only
 * the finer scales (for the shape, whose turning its texture shows). */
static void pattern(st3d_rng *r, int fine, float *v) {
    int kind = (int)st3d_rng_int(r, 0, N_TEX_KINDS - 1);
    memset(v, 0, sizeof(float) * TEX * TEX);
    switch (kind) {
    case TEX_NOISE: {
        int cells = 4 << st3d_rng_int(r, fine, 2);
        value_noise(r, cells, 1.0f, v);
        value_noise(r, 2 * cells, 0.5f, v);
        break;
    }
    case TEX_GRATING: {
        int n = (int)st3d_rng_int(r, 1, 3);
        for (int k = 0; k < n; k++) {
            int kx, ky;
            float ph;
            wave(r, 6, &kx, &ky, &ph);
            for (int y = 0; y < TEX; y++)
                for (int x = 0; x < TEX; x++) v[y * TEX + x] += wave_at(kx, ky, ph, x, y);
        }
        break;
    }
    case TEX_CHECKER: {
        int c = 8 << st3d_rng_int(r, 0, 2 - fine);
        for (int y = 0; y < TEX; y++)
            for (int x = 0; x < TEX; x++) v[y * TEX + x] = (float)((x / c + y / c) & 1);
        break;
    }
    case TEX_DOTS: {
        int n = (int)st3d_rng_int(r, 8, 24);
        for (int k = 0; k < n; k++) {
            float cx = frand(r, 0, TEX), cy = frand(r, 0, TEX), rad = frand(r, 4, 14);
            for (int y = 0; y < TEX; y++)
                for (int x = 0; x < TEX; x++) {
                    float dx = fabsf((float)x - cx), dy = fabsf((float)y - cy);
                    if (dx > TEX / 2) dx = TEX - dx; /* distance on the torus */
                    if (dy > TEX / 2) dy = TEX - dy;
                    float in = clampf(rad - sqrtf(dx * dx + dy * dy) + 0.5f, 0, 1);
                    if (in > v[y * TEX + x]) v[y * TEX + x] = in;
                }
        }
        break;
    }
    default: { /* TEX_STRIPES: a square wave with a random duty cycle */
        int kx, ky;
        float ph, duty = frand(r, -0.5f, 0.5f);
        wave(r, 8, &kx, &ky, &ph);
        for (int y = 0; y < TEX; y++)
            for (int x = 0; x < TEX; x++)
                v[y * TEX + x] = clampf(4 * (wave_at(kx, ky, ph, x, y) - duty) + 0.5f, 0, 1);
        break;
    }
    }
    float lo = v[0], hi = v[0];
    for (int i = 1; i < TEX * TEX; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
    float s = hi > lo ? 1 / (hi - lo) : 0;
    for (int i = 0; i < TEX * TEX; i++) v[i] = (v[i] - lo) * s;
}

/* Two random colours at least min_dist apart (RGB distance). */
static void palette(st3d_rng *r, float min_dist, float max_dist, float c0[3], float c1[3]) {
    do
        for (int k = 0; k < 3; k++) c0[k] = frand(r, 0, 255), c1[k] = frand(r, 0, 255);
    while (dist3(c0, c1) < min_dist);
    float d = dist3(c0, c1); /* then drawn towards c0 down to max_dist */
    if (d > max_dist)
        for (int k = 0; k < 3; k++) c1[k] = c0[k] + (c1[k] - c0[k]) * max_dist / d;
}

/* A coloured tile: pattern v mapped from c0 (0) to c1 (1). */
static void colour_tile(const float *v, const float c0[3], const float c1[3], float *rgb) {
    for (int i = 0; i < TEX * TEX; i++)
        for (int k = 0; k < 3; k++) rgb[3 * i + k] = c0[k] + v[i] * (c1[k] - c0[k]);
}

/* Bilinear sample of a tile at texel (u, v), wrapping around. */
static inline void sample(const float *tile, float u, float v, float out[3]) {
    float fu = floorf(u), fv = floorf(v), a = u - fu, b = v - fv;
    int x0 = (int)fu & TEX_MASK, y0 = (int)fv & TEX_MASK;
    int x1 = (x0 + 1) & TEX_MASK, y1 = (y0 + 1) & TEX_MASK;
    const float *p00 = tile + 3 * (y0 * TEX + x0), *p01 = tile + 3 * (y0 * TEX + x1);
    const float *p10 = tile + 3 * (y1 * TEX + x0), *p11 = tile + 3 * (y1 * TEX + x1);
    for (int k = 0; k < 3; k++) {
        float top = p00[k] + a * (p01[k] - p00[k]), bot = p10[k] + a * (p11[k] - p10[k]);
        out[k] = top + b * (bot - top);
    }
}

/* ------------------------------------------------------------------- shapes */

enum {
    SH_DISC, SH_ELLIPSE, SH_SQUARE, SH_TRIANGLE, SH_HEXAGON, SH_STAR, SH_CROSS, SH_RING, N_SHAPES
};

static float box_dist(float x, float y, float a, float b) {
    float dx = fabsf(x) - a, dy = fabsf(y) - b;
    return dx > dy ? dx : dy;
}

/* Approximate signed distance (negative inside) from (x, y) to the outline
 * of a shape that fits in the unit disc, in units of the shape's radius. */
static float shape_dist(int shape, float x, float y) {
    switch (shape) {
    case SH_DISC: return sqrtf(x * x + y * y) - 0.95f;
    case SH_ELLIPSE: return (sqrtf(x * x / 0.9025f + y * y / 0.2025f) - 1) * 0.45f;
    case SH_SQUARE: return box_dist(x, y, 0.67f, 0.67f);
    case SH_TRIANGLE: { /* equilateral, corners on the circle of radius 0.95 */
        float d0 = -y, d1 = 0.866f * x + 0.5f * y, d2 = -0.866f * x + 0.5f * y;
        float d = d0 > d1 ? d0 : d1;
        return (d > d2 ? d : d2) - 0.475f;
    }
    case SH_HEXAGON: {
        float d0 = fabsf(y), d1 = fabsf(0.866f * x + 0.5f * y), d2 = fabsf(0.866f * x - 0.5f * y);
        float d = d0 > d1 ? d0 : d1;
        return (d > d2 ? d : d2) - 0.82f;
    }
    case SH_STAR: { /* five points: a radius that swings between 0.45 and 0.95 */
        float rho = sqrtf(x * x + y * y), phi = atan2f(y, x);
        return (rho - (0.45f + 0.5f * (0.5f + 0.5f * cosf(5 * phi)))) * 0.55f;
    }
    case SH_CROSS: {
        float a = box_dist(x, y, 0.9f, 0.3f), b = box_dist(x, y, 0.3f, 0.9f);
        return a < b ? a : b;
    }
    default: return fabsf(sqrtf(x * x + y * y) - 0.66f) - 0.28f; /* SH_RING */
    }
}

/* ------------------------------------------------------------------- scenes */

int st3d_motion_scene_init(st3d_motion_scene *s, uint64_t seed, int cls, int64_t index, int size,
                           int n_frames, st3d_error *err) {
    memset(s, 0, sizeof *s);
    if (cls < 0 || cls >= ST3D_MOTION_MAX_CLASSES || size < 8 || n_frames < 1)
        return st3d_fail(err, ST3D_ERR_INVALID, "motion scene: bad class %d, size %d or frames %d",
                         cls, size, n_frames);
    s->size = size, s->n_frames = n_frames, s->cls = cls;
    float *v = st3d_malloc(sizeof(float) * TEX * TEX, err);
    s->bg = st3d_malloc(sizeof(float) * TEX * TEX * 3, err);
    s->fg = st3d_malloc(sizeof(float) * TEX * TEX * 3, err);
    if (!v || !s->bg || !s->fg) {
        free(v);
        st3d_motion_scene_release(s);
        return -1;
    }
    st3d_rng r = st3d_rng_for(seed, (uint64_t)cls, (uint64_t)index, SCENE_TAG);
    float k = (float)size / 128; /* speeds and rims are given for 128-pixel frames */

    /* textures: the shape's palette differs from the background's, and its
     * rim is black or white, whichever stands out more, so it stays visible */
    float b0[3], b1[3], f0[3], f1[3], bm[3], fm[3];
    pattern(&r, 0, v);
    palette(&r, 40, 60, b0, b1); /* a background of low contrast */
    colour_tile(v, b0, b1, s->bg);
    pattern(&r, 1, v);
    for (int tries = 0;; tries++) {
        palette(&r, 150, 170, f0, f1);
        for (int c = 0; c < 3; c++) bm[c] = 0.5f * (b0[c] + b1[c]), fm[c] = 0.5f * (f0[c] + f1[c]);
        if (dist3(bm, fm) >= 100 || tries > 100) break;
    }
    colour_tile(v, f0, f1, s->fg);
    free(v);
    float luma = 0.299f * bm[0] + 0.587f * bm[1] + 0.114f * bm[2];
    for (int c = 0; c < 3; c++) s->outline[c] = luma > 128 ? 16 : 240;
    s->outline_w = 1.5f * k;

    /* the background's zoom and drift: a random direction, slower than
     * any motion of the shape */
    s->bg_zoom = expf(frand(&r, logf(0.6f), logf(1.6f)));
    s->bg_u0 = frand(&r, 0, TEX), s->bg_v0 = frand(&r, 0, TEX);
    float drift = frand(&r, 0.1f, 0.6f) * k, dir = frand(&r, 0, 2 * PI_F);
    s->bg_du = drift * cosf(dir) * s->bg_zoom;
    s->bg_dv = drift * sinf(dir) * s->bg_zoom;

    /* the shape's look and place */
    s->shape = (int)st3d_rng_int(&r, 0, N_SHAPES - 1);
    s->theta0 = frand(&r, 0, 2 * PI_F);
    s->cx0 = frand(&r, 0, (float)size), s->cy0 = frand(&r, 0, (float)size);
    s->fg_k = frand(&r, 10, 24);
    s->fg_u0 = frand(&r, 0, TEX), s->fg_v0 = frand(&r, 0, TEX);

    /* the motion: a speed and one of eight directions, 45 degrees apart
     * (the class); the shape's size within a narrow range, so that its
     * moving edges weigh about the same in every video */
    float speed = frand(&r, 3.0f, 5.0f) * k; /* pixels per frame */
    s->log_r0 = logf(frand(&r, 0.2f, 0.3f) * (float)size);
    static const signed char DIR[ST3D_MOTION_MAX_CLASSES][2] = {
        {-1, 0}, {1, 0}, {0, -1}, {0, 1}, /* left, right, up, down (rows grow downwards) */
        {-1, -1}, {1, -1}, {-1, 1}, {1, 1}}; /* up-left, up-right, down-left, down-right */
    float norm = DIR[cls][0] && DIR[cls][1] ? 0.70710678f : 1.0f;
    s->vx = speed * norm * DIR[cls][0];
    s->vy = speed * norm * DIR[cls][1];
    return 0;
}

void st3d_motion_scene_release(st3d_motion_scene *s) {
    free(s->bg);
    free(s->fg);
    s->bg = s->fg = NULL;
}

void st3d_motion_render(const st3d_motion_scene *s, int t, float *acc, uint8_t *rgb) {
    const int n = s->size;
    const float ft = (float)t, z = s->bg_zoom;
    const float u0 = s->bg_u0 + s->bg_du * ft, v0 = s->bg_v0 + s->bg_dv * ft;
    /* the background: a pure shift and zoom, so the taps and weights of a
     * column (and of a row) are the same all along it */
    int cx0[ST3D_MOTION_MAX_SIZE], cx1[ST3D_MOTION_MAX_SIZE];
    float ca[ST3D_MOTION_MAX_SIZE];
    for (int x = 0; x < n; x++) {
        float u = u0 + z * (float)x, fu = floorf(u);
        cx0[x] = 3 * ((int)fu & TEX_MASK), cx1[x] = 3 * (((int)fu + 1) & TEX_MASK), ca[x] = u - fu;
    }
    for (int y = 0; y < n; y++) {
        float v = v0 + z * (float)y, fv = floorf(v), b = v - fv;
        const float *r0 = s->bg + 3 * TEX * ((int)fv & TEX_MASK);
        const float *r1 = s->bg + 3 * TEX * (((int)fv + 1) & TEX_MASK);
        float *o = acc + (size_t)3 * y * n;
        for (int x = 0; x < n; x++, o += 3) {
            const float *p00 = r0 + cx0[x], *p01 = r0 + cx1[x];
            const float *p10 = r1 + cx0[x], *p11 = r1 + cx1[x];
            float a = ca[x];
            for (int k = 0; k < 3; k++) {
                float top = p00[k] + a * (p01[k] - p00[k]), bot = p10[k] + a * (p11[k] - p10[k]);
                o[k] = top + b * (bot - top);
            }
        }
    }

    /* the shape, wrapped around the frame's edges (its box is narrower than
     * the frame, so no pixel is drawn twice) */
    float cx = fmodf(s->cx0 + s->vx * ft, (float)n), cy = fmodf(s->cy0 + s->vy * ft, (float)n);
    if (cx < 0) cx += (float)n;
    if (cy < 0) cy += (float)n;
    const float rad = expf(s->log_r0 + s->dlog_r * ft), th = s->theta0 + s->dtheta * ft;
    const float c = cosf(th), sn = sinf(th), inv = 1 / rad, ow = s->outline_w;
    const int x_lo = (int)floorf(cx - rad - 2), x_hi = (int)ceilf(cx + rad + 2);
    const int y_lo = (int)floorf(cy - rad - 2), y_hi = (int)ceilf(cy + rad + 2);
    for (int y = y_lo; y <= y_hi; y++) {
        int yy = ((y % n) + n) % n;
        for (int x = x_lo; x <= x_hi; x++) {
            float dx = (float)x - cx, dy = (float)y - cy;
            float qx = (c * dx + sn * dy) * inv, qy = (-sn * dx + c * dy) * inv;
            float d = shape_dist(s->shape, qx, qy) * rad; /* pixels */
            float alpha = clampf(0.5f - d, 0, 1);
            if (alpha <= 0) continue;
            float inner = clampf(0.5f - (d + ow), 0, 1), tex[3];
            sample(s->fg, s->fg_u0 + s->fg_k * qx, s->fg_v0 + s->fg_k * qy, tex);
            float *p = acc + 3 * ((size_t)yy * n + ((x % n) + n) % n);
            for (int k = 0; k < 3; k++) {
                float fill = s->outline[k] + inner * (tex[k] - s->outline[k]);
                p[k] += alpha * (fill - p[k]);
            }
        }
    }
    for (size_t i = 0; i < (size_t)n * n * 3; i++) rgb[i] = (uint8_t)clampf(acc[i] + 0.5f, 0, 255);
}

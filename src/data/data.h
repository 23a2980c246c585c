/*
 * data.h - internal pieces of src/data/: the seeded random generator every
 * augmentation draws from, temporal sampling (temporal.c), spatial
 * transforms on RGB pictures (spatial.c) and the dataset records the loader
 * walks (annotations.c).  Not installed.
 */
#ifndef ST3D_DATA_H
#define ST3D_DATA_H

#include "core/core.h"
#include "io/video.h"

#include <stdint.h>

/* ------------------------------------------------------------------ random */

/* splitmix64: small, fast, and seedable from any 64-bit value, so that each
 * clip's generator derives from (seed, epoch, position, clip) alone and the
 * same seed gives the same clips whatever the thread schedule. */
typedef struct st3d_rng {
    uint64_t s; /* state */
} st3d_rng;

static inline uint64_t st3d_rng_next(st3d_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A generator for the tuple (a, b, c, d). */
static inline st3d_rng st3d_rng_for(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    st3d_rng r = {a};
    r.s = st3d_rng_next(&r) ^ b;
    r.s = st3d_rng_next(&r) ^ c;
    r.s = st3d_rng_next(&r) ^ d;
    st3d_rng_next(&r);
    return r;
}

/* Uniform in [0, 1) with 53 random bits (as Python's random.random()). */
static inline double st3d_rng_uniform(st3d_rng *r) {
    return (double)(st3d_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [lo, hi], both included (as Python's random.randint). */
static inline int64_t st3d_rng_int(st3d_rng *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1, lim = UINT64_MAX - UINT64_MAX % span, x;
    do x = st3d_rng_next(r);
    while (x >= lim);
    return lo + (int64_t)(x % span);
}

/* ---------------------------------------------------------------- temporal */

/* How clips are cut from a segment's frame numbers. */
typedef struct st3d_temporal_cfg {
    st3d_temporal_crop mode; /* which of the original's temporal transforms */
    int size;                /* frames per clip (sample_duration) */
    int t_stride;            /* TemporalSubsampling stride applied first (1: none) */
    int n_clips;             /* TemporalEvenCrop's n_samples */
    int window_stride;       /* SlidingWindow's stride (0: size) */
} st3d_temporal_cfg;

/* Cuts the clips of the segment [begin, end) (frame numbers).  Writes up to
 * cap clips of cfg->size frame numbers each into out (clip-major) and
 * returns the number of clips the segment gives (which may exceed cap: call
 * with cap 0 to count), or -1 on error.  rng is used by the random crop only
 * and may be NULL otherwise. */
int64_t st3d_temporal_clips(int64_t begin, int64_t end, const st3d_temporal_cfg *cfg,
                            st3d_rng *rng, int64_t *out, int64_t cap, st3d_error *err);

/* ----------------------------------------------------------------- spatial */

/* The random (or fixed) choices of one clip's spatial transform, applied to
 * every frame of the clip (the original's randomize_parameters per clip). */
typedef struct st3d_spatial_choice {
    int crop_x, crop_y, crop_w, crop_h; /* region of the source cut out */
    int resize_w, resize_h;             /* center crop, nocrop: size of the resized frame */
    int out_w, out_h;                   /* size of the picture made: size x size, or
                                           with nocrop the whole resized frame */
    int flip;                           /* 1: mirror left-right */
    int jitter;                         /* 1: apply the factors below */
    float factor[4];                    /* brightness, contrast, saturation, hue */
    int order[4];                       /* order of the four adjustments */
} st3d_spatial_choice;

/* Spatial configuration shared by all clips of a loader. */
typedef struct st3d_spatial_cfg {
    st3d_spatial_crop crop; /* which crop */
    int size;               /* output height and width */
    float min_scale;        /* RandomResizedCrop area lower bound */
    float min_ratio;        /* RandomResizedCrop aspect lower bound */
    int hflip;              /* 1: draw a flip */
    int colorjitter;        /* 1: draw ColorJitter factors */
    float jitter[4];        /* ColorJitter strengths b, c, s, h */
    float lut[3][256];      /* uint8 -> normalized float, per channel */
} st3d_spatial_cfg;

/* Fills cfg->lut from value_scale, mean, std and the norm switches, as
 * ToTensor, ScaleValue and Normalize in that order. */
void st3d_spatial_make_lut(st3d_spatial_cfg *cfg, float value_scale, const float mean[3],
                           const float std[3], int mean_norm, int std_norm);

/* Draws the choices for a clip whose frames are w x h. */
void st3d_spatial_draw(const st3d_spatial_cfg *cfg, int w, int h, st3d_rng *rng,
                       st3d_spatial_choice *ch);

/* Scratch a worker keeps between frames (coefficients and a row buffer). */
typedef struct st3d_spatial_work {
    int key[6];          /* geometry the coefficients were built for */
    int kx, ky;          /* taps per output column / row */
    int *bx, *by;        /* first tap and tap count per output column / row */
    int32_t *wx, *wy;    /* fixed-point taps */
    uint8_t *tmp;        /* horizontal pass output */
    size_t tmp_cap;      /* bytes at tmp */
    uint8_t *cols;       /* horizontal pass: the source columns as lines, and its output */
    size_t cols_cap;     /* bytes at cols */
    int32_t *acc;        /* sums of one output line */
    size_t acc_cap;      /* bytes at acc */
    uint8_t *out;        /* size x size x 3 result before normalization */
    size_t out_cap;      /* bytes at out */
} st3d_spatial_work;

void st3d_spatial_work_free(st3d_spatial_work *w);
/* A work buffer of at least `need` bytes: buf itself when its *cap bytes
 * are enough, else a new one (buf is freed, *cap updated).  NULL on failure
 * (buf is kept). */
void *st3d_work_grow(void *buf, size_t *cap, size_t need, st3d_error *err);

/* Applies the transform to one frame and writes its 3 channels (out_h x
 * out_w each) at dst, channel c at dst + c * plane (NCDHW: plane = T *
 * out_h * out_w): st3d_spatial_pixels, then st3d_spatial_normalize. */
int st3d_spatial_apply(const st3d_spatial_cfg *cfg, const st3d_spatial_choice *ch,
                       const st3d_image *frame, st3d_spatial_work *w, float *dst,
                       int64_t plane, st3d_error *err);
/* The transform's pixels before ToTensor: out_h x out_w x 3 bytes (RGB),
 * in w->out, also returned (NULL on failure). */
const uint8_t *st3d_spatial_pixels(const st3d_spatial_cfg *cfg, const st3d_spatial_choice *ch,
                                   const st3d_image *frame, st3d_spatial_work *w,
                                   st3d_error *err);
/* ToTensor + Normalize of n RGB pixels through cfg->lut: channel c to
 * dst + c * plane (n floats each). */
void st3d_spatial_normalize(const st3d_spatial_cfg *cfg, const uint8_t *px, int64_t n,
                            float *dst, int64_t plane);

/* PIL's Image.resize(..., BILINEAR) (Pillow's two-pass fixed-point
 * resampler with antialiasing), of the src_w x src_h picture at src (row
 * stride src_stride bytes) to a dst_w x dst_h picture of which only the
 * window (wx, wy, ww, wh) is written to dst (ww x wh x 3). */
int st3d_resize_pil_bilinear(const uint8_t *src, int src_w, int src_h, size_t src_stride,
                             int dst_w, int dst_h, int wx, int wy, int ww, int wh, uint8_t *dst,
                             st3d_spatial_work *w, st3d_error *err);

/* ColorJitter's adjustments on an RGB picture (n pixels), as PIL's
 * ImageEnhance and torchvision's adjust_hue. */
void st3d_adjust_brightness(uint8_t *rgb, int64_t n, float f);
void st3d_adjust_contrast(uint8_t *rgb, int64_t n, float f);
void st3d_adjust_saturation(uint8_t *rgb, int64_t n, float f);
void st3d_adjust_hue(uint8_t *rgb, int64_t n, float f);

/* ---------------------------------------------------------------- datasets */

/* Finds the frame folder or video file for base (a path without
 * extension: base itself as a folder or file, else base + .mp4, .avi, ...).
 * Fills out and *folder; returns 0, or -1 when there is none. */
int st3d_resolve_video(const char *base, char *out, size_t cap, int *folder);

/* Frames of a frame folder (the original's get_n_frames count) or of a
 * video file (its packet index); fills *fps (may be NULL) for videos. */
int64_t st3d_count_frames(const char *path, int folder, double *fps, st3d_error *err);

/* Accessor used by the loader: 1 when sample i is a frame folder. */
int st3d_dataset_is_folder(const st3d_dataset *ds, int64_t i);

#endif /* ST3D_DATA_H */

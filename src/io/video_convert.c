/*
 * video_convert.c - decoded FFmpeg pictures to RGB24: libswscale at the
 * video's output size, then the display matrix's quarter turns.
 *
 * st3d_video_read_frame decodes and converts in one call, through the
 * video's own converter.  A caller that wants the conversion done on
 * another thread (the clip stream's cutter, so that its decoder thread only
 * decodes) reads pictures instead: each holds a reference to the decoded
 * frame (its buffers stay valid whatever the decoder does next, and go back
 * to the decoder's pool when released) and what converting it needs; a
 * converter per thread turns them into RGB.
 *
 * A converter keeps one SwsContext for the last geometry it met (source
 * size, pixel format, range, colour space, output size, scaler) and builds
 * a new one when a picture differs, so one converter serves the videos of
 * a list one after another.
 */
#include "io/video.h"

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include <stdlib.h>
#include <string.h>

struct st3d_rgb_converter {
    struct SwsContext *sws; /* for the geometry in key */
    int key[8];             /* in w, h, format, full range, colour space, out w, h, scaler */
    st3d_image rot;         /* the unrotated picture, when rotating */
};

struct st3d_video_picture {
    AVFrame *frame;     /* a reference to the decoded frame (unreferenced: none) */
    int out_w, out_h;   /* the video's converted size before rotation */
    int scaler;         /* its st3d_video_params.scaler */
    int rotation;       /* its st3d_video_info.rotation */
    const char *path;   /* the video, for error messages (borrowed: its
                           st3d_video's, converted while that is open) */
};

st3d_rgb_converter *st3d_rgb_converter_new(st3d_error *err) {
    return st3d_calloc(1, sizeof(st3d_rgb_converter), err);
}

void st3d_rgb_converter_free(st3d_rgb_converter *c) {
    if (!c) return;
    sws_freeContext(c->sws);
    st3d_image_release(&c->rot);
    free(c);
}

/* The JPEG ("full range") pixel formats as their plain twins, *full set. */
static enum AVPixelFormat plain_format(enum AVPixelFormat f, int *full) {
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

/* Clockwise quarter turns of an RGB picture (src w x h) into dst, as the
 * ffmpeg program's transpose=clock, hflip+vflip and transpose=cclock. */
static void rotate_rgb(const uint8_t *src, int w, int h, int rotation, uint8_t *dst) {
    if (rotation == 180) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(dst + ((size_t)(h - 1 - y) * w + (w - 1 - x)) * 3,
                       src + ((size_t)y * w + x) * 3, 3);
    } else if (rotation == 90) { /* output h wide, w tall: out[r][c] = in[h-1-c][r] */
        for (int r = 0; r < w; r++)
            for (int c = 0; c < h; c++)
                memcpy(dst + ((size_t)r * h + c) * 3, src + ((size_t)(h - 1 - c) * w + r) * 3, 3);
    } else { /* 270: out[r][c] = in[c][w-1-r] */
        for (int r = 0; r < w; r++)
            for (int c = 0; c < h; c++)
                memcpy(dst + ((size_t)r * h + c) * 3, src + ((size_t)c * w + (w - 1 - r)) * 3, 3);
    }
}

int st3d_rgb_convert_frame(st3d_rgb_converter *c, const struct AVFrame *f, int out_w, int out_h,
                           int scaler, int rotation, const char *path, uint8_t *rgb,
                           st3d_error *err) {
    int full = f->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat fmt = plain_format((enum AVPixelFormat)f->format, &full);
    int cs = f->colorspace;
    if (cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB || cs >= AVCOL_SPC_NB)
        cs = SWS_CS_DEFAULT;
    int key[8] = {f->width, f->height, (int)fmt, full, cs, out_w, out_h, scaler};
    if (!c->sws || memcmp(key, c->key, sizeof key) != 0) {
        static const int flags[] = {SWS_BILINEAR, SWS_BICUBIC, SWS_AREA, SWS_POINT};
        int sf = flags[(unsigned)scaler < 4 ? scaler : 0];
        sws_freeContext(c->sws);
        c->sws = sws_getContext(f->width, f->height, fmt, out_w, out_h, AV_PIX_FMT_RGB24, sf, NULL,
                                NULL, NULL);
        if (!c->sws)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot convert %dx%d %s frames to RGB",
                             path, f->width, f->height, av_get_pix_fmt_name(fmt));
        sws_setColorspaceDetails(c->sws, sws_getCoefficients(cs), full,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
        memcpy(c->key, key, sizeof key);
    }
    if (rotation && st3d_image_reserve(&c->rot, out_w, out_h, err) != 0) return -1;
    uint8_t *planes[4] = {rotation ? c->rot.data : rgb, NULL, NULL, NULL};
    int strides[4] = {out_w * 3, 0, 0, 0};
    sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides);
    if (rotation) rotate_rgb(c->rot.data, out_w, out_h, rotation, rgb);
    return 0;
}

st3d_video_picture *st3d_video_picture_new(st3d_error *err) {
    st3d_video_picture *p = st3d_calloc(1, sizeof *p, err);
    if (!p) return NULL;
    if (!(p->frame = av_frame_alloc())) {
        free(p);
        st3d_fail(err, ST3D_ERR_NOMEM, "out of memory for a picture");
        return NULL;
    }
    return p;
}

void st3d_video_picture_release(st3d_video_picture *p) {
    if (p) av_frame_unref(p->frame);
}

void st3d_video_picture_free(st3d_video_picture *p) {
    if (!p) return;
    av_frame_free(&p->frame);
    free(p);
}

int st3d_video_picture_hold(st3d_video_picture *p, const struct AVFrame *f, int out_w, int out_h,
                            int scaler, int rotation, const char *path, st3d_error *err) {
    av_frame_unref(p->frame);
    if (av_frame_ref(p->frame, f) < 0)
        return st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory holding a frame", path);
    p->out_w = out_w;
    p->out_h = out_h;
    p->scaler = scaler;
    p->rotation = rotation;
    p->path = path;
    return 0;
}

int st3d_rgb_convert(st3d_rgb_converter *c, const st3d_video_picture *p, uint8_t *rgb,
                     st3d_error *err) {
    if (!p->frame->data[0])
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: no picture to convert", p->path);
    return st3d_rgb_convert_frame(c, p->frame, p->out_w, p->out_h, p->scaler, p->rotation, p->path,
                                  rgb, err);
}

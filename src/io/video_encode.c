/*
 * video_encode.c - st3d_video_writer: RGB24 frames in, a video file out,
 * encoded with libavcodec (H.264 through libx264 when the library has it,
 * else libavcodec's own MPEG-4 part 2) and muxed by libavformat into the
 * container the path's extension names (.mp4, .mkv, .avi ...).  Frames
 * are converted to YUV 4:2:0 by libswscale (an odd width or height loses
 * its last column or row: 4:2:0 needs even sizes).  The file is written
 * under a temporary name in the same folder and renamed into place by
 * st3d_video_writer_close, so an interrupted run leaves no half video.
 * Memory: one frame and the encoder's lookahead.
 */
#define _POSIX_C_SOURCE 200809L
#include "io/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st3d_video_writer {
    char *path;              /* destination */
    char *tmp;               /* where it is written until closed */
    int w, h;                /* RGB frames given */
    AVFormatContext *oc;     /* the muxer */
    AVCodecContext *enc;     /* the encoder */
    AVStream *st;            /* the video stream */
    AVFrame *frame;          /* one YUV frame */
    AVPacket *pkt;           /* packets out */
    struct SwsContext *sws;  /* RGB24 -> YUV420P */
    int64_t n;               /* frames written (the next pts) */
};

static int av_fail(st3d_error *err, st3d_status code, const char *path, const char *what, int r) {
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(r, msg, sizeof msg);
    return st3d_fail(err, code, "%s: %s: %s", path, what, msg);
}

st3d_video_writer *st3d_video_writer_open(const char *path, int w, int h, double fps,
                                          st3d_error *err) {
    int ew = w & ~1, eh = h & ~1, r;
    if (ew < 2 || eh < 2 || (int64_t)w * h > ST3D_MAX_PIXELS) {
        st3d_fail(err, ST3D_ERR_INVALID, "%s: cannot encode %dx%d frames", path, w, h);
        return NULL;
    }
    st3d_video_writer *vw = st3d_calloc(1, sizeof *vw, err);
    if (!vw) return NULL;
    vw->w = w, vw->h = h;
    size_t n = strlen(path) + 40;
    vw->path = strdup(path);
    vw->tmp = malloc(n);
    if (!vw->path || !vw->tmp) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* the extension stays last: some muxers look at it */
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) dot = path + strlen(path);
    snprintf(vw->tmp, n, "%.*s.tmp.%ld%s", (int)(dot - path), path, (long)getpid(), dot);
    if (avformat_alloc_output_context2(&vw->oc, NULL, NULL, path) < 0 || !vw->oc) {
        st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: no container for this file name", path);
        goto fail;
    }
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) {
        st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: libavcodec has no H.264 or MPEG-4 encoder", path);
        goto fail;
    }
    vw->enc = avcodec_alloc_context3(codec);
    vw->frame = av_frame_alloc();
    vw->pkt = av_packet_alloc();
    if (!vw->enc || !vw->frame || !vw->pkt) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    AVRational rate = av_d2q(fps > 0 && isfinite(fps) ? fps : 25.0, 100000);
    vw->enc->width = ew;
    vw->enc->height = eh;
    vw->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    vw->enc->time_base = av_inv_q(rate);
    vw->enc->framerate = rate;
    vw->enc->sample_aspect_ratio = (AVRational){1, 1};
    vw->enc->gop_size = 50;
    vw->enc->thread_count = 1;
    if (codec->id == AV_CODEC_ID_MPEG4) {
        vw->enc->flags |= AV_CODEC_FLAG_QSCALE;
        vw->enc->global_quality = FF_QP2LAMBDA * 3;
    }
    if (vw->oc->oformat->flags & AVFMT_GLOBALHEADER) vw->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((r = avcodec_open2(vw->enc, codec, NULL)) < 0) {
        av_fail(err, ST3D_ERR_BACKEND, path, "cannot open the encoder", r);
        goto fail;
    }
    if (!(vw->st = avformat_new_stream(vw->oc, NULL)) ||
        avcodec_parameters_from_context(vw->st->codecpar, vw->enc) < 0) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    vw->st->time_base = vw->enc->time_base;
    vw->st->avg_frame_rate = rate;
    if ((r = avio_open(&vw->oc->pb, vw->tmp, AVIO_FLAG_WRITE)) < 0) {
        av_fail(err, ST3D_ERR_IO, vw->tmp, "cannot create", r);
        goto fail;
    }
    if ((r = avformat_write_header(vw->oc, NULL)) < 0) {
        av_fail(err, ST3D_ERR_IO, path, "cannot write the header", r);
        goto fail;
    }
    vw->frame->format = AV_PIX_FMT_YUV420P;
    vw->frame->width = ew;
    vw->frame->height = eh;
    if ((r = av_frame_get_buffer(vw->frame, 0)) < 0) {
        av_fail(err, ST3D_ERR_NOMEM, path, "no frame buffer", r);
        goto fail;
    }
    vw->sws = sws_getContext(ew, eh, AV_PIX_FMT_RGB24, ew, eh, AV_PIX_FMT_YUV420P, SWS_BILINEAR,
                             NULL, NULL, NULL);
    if (!vw->sws) {
        st3d_fail(err, ST3D_ERR_BACKEND, "%s: cannot convert RGB to YUV", path);
        goto fail;
    }
    return vw;
fail:
    st3d_video_writer_abort(vw);
    return NULL;
}

/* Moves every packet the encoder has ready into the file. */
static int drain(st3d_video_writer *vw, st3d_error *err) {
    for (;;) {
        int r = avcodec_receive_packet(vw->enc, vw->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return av_fail(err, ST3D_ERR_BACKEND, vw->path, "encoding failed", r);
        av_packet_rescale_ts(vw->pkt, vw->enc->time_base, vw->st->time_base);
        vw->pkt->stream_index = vw->st->index;
        if ((r = av_interleaved_write_frame(vw->oc, vw->pkt)) < 0)
            return av_fail(err, ST3D_ERR_IO, vw->path, "write failed", r);
    }
}

int st3d_video_writer_put(st3d_video_writer *vw, const uint8_t *rgb, st3d_error *err) {
    int r = av_frame_make_writable(vw->frame);
    if (r < 0) return av_fail(err, ST3D_ERR_NOMEM, vw->path, "no frame buffer", r);
    const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
    int stride[4] = {vw->w * 3, 0, 0, 0};
    sws_scale(vw->sws, src, stride, 0, vw->h & ~1, vw->frame->data, vw->frame->linesize);
    vw->frame->pts = vw->n++;
    if ((r = avcodec_send_frame(vw->enc, vw->frame)) < 0)
        return av_fail(err, ST3D_ERR_BACKEND, vw->path, "encoding failed", r);
    return drain(vw, err);
}

int st3d_video_writer_close(st3d_video_writer *vw, st3d_error *err) {
    int r, rc = -1;
    if ((r = avcodec_send_frame(vw->enc, NULL)) < 0) {
        av_fail(err, ST3D_ERR_BACKEND, vw->path, "encoding failed", r);
        goto out;
    }
    if (drain(vw, err) != 0) goto out;
    if ((r = av_write_trailer(vw->oc)) < 0) {
        av_fail(err, ST3D_ERR_IO, vw->path, "cannot finish the file", r);
        goto out;
    }
    if ((r = avio_closep(&vw->oc->pb)) < 0) {
        av_fail(err, ST3D_ERR_IO, vw->path, "close failed", r);
        goto out;
    }
    if (rename(vw->tmp, vw->path) != 0) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot rename into place", vw->path);
        goto out;
    }
    rc = 0;
out:
    st3d_video_writer_abort(vw); /* removes the temporary unless renamed; frees */
    return rc;
}

void st3d_video_writer_abort(st3d_video_writer *vw) {
    if (!vw) return;
    if (vw->oc) {
        if (vw->oc->pb) avio_closep(&vw->oc->pb);
        avformat_free_context(vw->oc);
    }
    if (vw->tmp) remove(vw->tmp);
    avcodec_free_context(&vw->enc);
    av_frame_free(&vw->frame);
    av_packet_free(&vw->pkt);
    sws_freeContext(vw->sws);
    free(vw->path);
    free(vw->tmp);
    free(vw);
}

/*
 * video_decode.c - st3d_video: any container and codec FFmpeg reads, decoded
 * with libavcodec (frame threading when asked), converted to RGB24 at a
 * chosen size by libswscale, rotated as the stream's display matrix says.
 *
 * Frame numbering.  At open, a demux-only pass (src/io/video_index.c)
 * records the presentation timestamp of every video packet (packets marked
 * for discard by an edit list excluded) and sorts them: frame i is the i-th
 * timestamp.  A decoded frame is numbered by looking its timestamp up, so
 * seeking is frame accurate even with B-frames or a variable frame rate.
 * When some packet has no timestamp (some AVI files), frames are numbered by
 * counting from the start and every seek restarts decoding from the
 * beginning.  Opened through an st3d_video_cache, a video already seen
 * reuses that index and, for MP4/MOV, the probed stream parameters.
 *
 * Skipping.  Frames before the next one to return (after a seek to the
 * previous key frame) are decoded only to serve as references.  For H.264
 * the decoder is told, packet by packet, to drop such a frame when it is
 * not a reference (nal_ref_idc 0): nothing else reads it, and the standard
 * lets a non-reference picture change no decoder state (it carries no
 * reference marking, and POC / frame_num derivations use reference pictures
 * or give the same result without it), so every returned frame is
 * unchanged.  Should a wanted frame still not come out, decoding restarts
 * from the beginning without skipping.
 *
 * Draining.  When the caller says nothing will be read next from where a
 * read ends (the loader's last clip of a video), the decoder is flushed as
 * soon as the packet of the last frame wanted is in, instead of being fed
 * the frames that would push that frame out of its reordering delay.
 *
 * Live sources (st3d_video_params.live: a pipe, "-" for standard input, a
 * URL) are read once, as they come: no index pass, frames numbered as they
 * are decoded, no seeking.
 *
 * Memory: the index (8 bytes per frame), one decoded frame, the decoder's
 * reference frames and one RGB frame when rotating; never the whole video.
 * The conversion to RGB is video_convert.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include "io/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct st3d_video {
    char *path;                /* as given, for error messages */
    st3d_video_params params;  /* as given at open */
    st3d_video_info info;      /* what st3d_video_get_info returns */
    AVFormatContext *fmt;      /* the demuxer */
    AVCodecContext *dec;       /* the decoder */
    int stream;                /* index of the video stream in fmt */
    AVPacket *pkt;             /* packet being fed */
    AVFrame *frame;            /* last decoded frame */
    st3d_rgb_converter *conv;  /* its conversion to RGB (video_convert.c) */
    int out_w, out_h;          /* converted size before rotation */
    int64_t *pts;              /* sorted timestamps, info.n_frames (NULL: counting) */
    int64_t next_index;        /* number of the next frame read_frame may return */
    int64_t cur_index;         /* number of the frame in `frame` */
    int eof_sent;              /* 1: the decoder has been sent the flush packet */
    int bad_packets;           /* consecutive packets the decoder refused */
    int skip_nonref;           /* 1: unwanted non-reference frames may be dropped (H.264);
                                  0: not this codec; -1: never (a wanted frame went missing) */
    int64_t drain_pts;         /* once the packet with this timestamp is in, drain the
                                  decoder instead of feeding it more (AV_NOPTS_VALUE: no) */
    int64_t sent[64];          /* timestamps of the packets sent since the last reset (ring) */
    int n_sent;                /* packets sent since the last reset */
    st3d_file_id id;           /* the file's identity at open */
    AVCodecParameters *par;    /* probed stream parameters to reopen without probing
                                  (NULL: probe at every open) */
};

st3d_video_params st3d_video_default_params(void) {
    st3d_video_params p;
    memset(&p, 0, sizeof p);
    p.threads = 0;
    p.autorotate = 1;
    p.scaler = ST3D_SCALER_BILINEAR;
    return p;
}

const st3d_video_info *st3d_video_get_info(const st3d_video *v) { return &v->info; }

static const char *averr(int code, char *buf, size_t cap) {
    av_strerror(code, buf, cap);
    return buf;
}

/* Clockwise rotation from the stream's display matrix, rounded to a quarter
 * turn (as the ffmpeg program's autorotate: theta = -av_display_rotation_get). */
static int stream_rotation(const AVStream *st) {
    const uint8_t *sd = NULL;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData *p = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                        st->codecpar->nb_coded_side_data,
                                                        AV_PKT_DATA_DISPLAYMATRIX);
    if (p) sd = p->data;
#else
    sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
#endif
    if (!sd) return 0;
    double theta = -av_display_rotation_get((const int32_t *)sd);
    if (isnan(theta)) return 0;
    theta -= 360.0 * floor(theta / 360.0 + 0.9 / 360.0);
    int q = (int)lrint(theta / 90.0) % 4;
    return q * 90;
}

/* Opens demuxer and decoder (also used to restart from the beginning).
 * With v->par (the parameters an earlier open probed), the probe is skipped
 * and the decoder gets those parameters. */
static int open_streams(st3d_video *v, st3d_error *err) {
    char eb[128];
    int r = avformat_open_input(&v->fmt, v->path, NULL, NULL);
    if (r < 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: not a video FFmpeg can read (%s)", v->path,
                         averr(r, eb, sizeof eb));
    /* refuse absurd sizes as the header states them, before any decoder
     * (or find_stream_info, which would reset them) sees them */
    for (unsigned i = 0; i < v->fmt->nb_streams; i++) {
        const AVCodecParameters *cp = v->fmt->streams[i]->codecpar;
        if (cp->codec_type == AVMEDIA_TYPE_VIDEO &&
            (int64_t)cp->width * (int64_t)(cp->height < 0 ? -(int64_t)cp->height : cp->height) >
                ST3D_MAX_PIXELS)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: header declares %dx%d pixels, refusing",
                             v->path, cp->width, cp->height < 0 ? -cp->height : cp->height);
    }
    const AVCodec *codec = NULL;
    if (v->par) { /* reopening: the stream and its parameters are known */
        if (v->stream < 0 || (unsigned)v->stream >= v->fmt->nb_streams ||
            v->fmt->streams[v->stream]->codecpar->codec_id != v->par->codec_id)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: the video stream changed", v->path);
        r = avcodec_parameters_copy(v->fmt->streams[v->stream]->codecpar, v->par);
        if (r < 0) return st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", v->path);
        codec = avcodec_find_decoder(v->par->codec_id);
        if (!codec)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: no decoder for its video stream", v->path);
        r = v->stream;
    } else {
        r = avformat_find_stream_info(v->fmt, NULL);
        if (r < 0)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot read stream information (%s)",
                             v->path, averr(r, eb, sizeof eb));
        r = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
        if (r < 0 || !codec)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: %s", v->path,
                             r == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video stream"
                                                            : "no video stream");
    }
    v->stream = r;
    AVStream *st = v->fmt->streams[r];
    AVCodecParameters *par = st->codecpar;
    if (par->width <= 0 || par->height <= 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: video stream has no frame size", v->path);
    if ((int64_t)par->width * par->height > ST3D_MAX_PIXELS)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: header declares %dx%d pixels, refusing",
                         v->path, par->width, par->height);
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) return st3d_fail(err, ST3D_ERR_NOMEM, "%s: cannot allocate a decoder", v->path);
    r = avcodec_parameters_to_context(v->dec, par);
    if (r < 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: bad codec parameters (%s)", v->path,
                         averr(r, eb, sizeof eb));
    v->dec->thread_count = v->params.threads > 0 ? v->params.threads : 0;
    v->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    v->dec->pkt_timebase = st->time_base;
    r = avcodec_open2(v->dec, codec, NULL);
    if (r < 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot open the %s decoder (%s)", v->path,
                         codec->name, averr(r, eb, sizeof eb));
    v->eof_sent = 0;
    v->bad_packets = 0;
    v->next_index = 0;
    v->cur_index = -1;
    v->n_sent = 0;
    if (v->skip_nonref >= 0) v->skip_nonref = codec->id == AV_CODEC_ID_H264;
    return 0;
}

static void close_streams(st3d_video *v) {
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
}

/* Output size from the parameters: the short side rule rounds the long side
 * to nearest, as ffmpeg's scale=-1:N (av_rescale). */
static void output_size(const st3d_video_params *p, int w, int h, int *ow, int *oh) {
    if (p->width > 0 && p->height > 0) {
        *ow = p->width;
        *oh = p->height;
    } else if (p->short_side > 0) {
        if (w <= h) {
            *ow = p->short_side;
            *oh = (int)av_rescale(p->short_side, h, w);
        } else {
            *oh = p->short_side;
            *ow = (int)av_rescale(p->short_side, w, h);
        }
    } else {
        *ow = w;
        *oh = h;
    }
    if (*ow < 1) *ow = 1;
    if (*oh < 1) *oh = 1;
}

/* The MP4/MOV demuxer takes every timestamp from the file's sample tables,
 * so its packets do not depend on what avformat_find_stream_info learns:
 * a reopen may skip the probe and hand the decoder the probed parameters. */
static int reopen_without_probe(const AVFormatContext *fmt) {
    return !strcmp(fmt->iformat->name, "mov,mp4,m4a,3gp,3g2,mj2");
}

static int finish_open(st3d_video *v, st3d_error *err);

/* A live source: demuxer and decoder only; frames are numbered as they are
 * decoded (the counting mode of a file without timestamps), nothing is
 * indexed and nothing is ever read twice. */
static st3d_video *open_live(const char *path, const st3d_video_params *params,
                             st3d_error *err) {
    st3d_video *v = st3d_calloc(1, sizeof *v, err);
    if (!v) return NULL;
    v->params = *params;
    v->path = strdup(strcmp(path, "-") ? path : "pipe:0");
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    v->drain_pts = AV_NOPTS_VALUE;
    v->skip_nonref = -1; /* nothing is skipped: every frame is wanted */
    if (!v->path || !v->pkt || !v->frame) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (open_streams(v, err) != 0) goto fail;
    AVStream *st = v->fmt->streams[v->stream];
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    v->info.fps = fr.den ? av_q2d(fr) : 0.0;
    if (finish_open(v, err) != 0) goto fail;
    return v;
fail:
    st3d_video_free(v);
    return NULL;
}

st3d_video *st3d_video_open_cached(const char *path, const st3d_video_params *params,
                                   st3d_video_cache *cache, st3d_error *err) {
    if (params && params->live) return open_live(path, params, err);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st3d_fail(err, ST3D_ERR_IO, "%s: no such file", path);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        st3d_fail(err, ST3D_ERR_IO, "%s: not a regular file", path);
        return NULL;
    }
    if (sb.st_size == 0) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: empty file", path);
        return NULL;
    }
    st3d_video_facts facts;
    memset(&facts, 0, sizeof facts);
    st3d_video *v = st3d_calloc(1, sizeof *v, err);
    if (!v) return NULL;
    v->params = params ? *params : st3d_video_default_params();
    v->path = strdup(path);
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    v->drain_pts = AV_NOPTS_VALUE;
    v->id.dev = (uint64_t)sb.st_dev;
    v->id.ino = (uint64_t)sb.st_ino;
    v->id.size = (int64_t)sb.st_size;
    v->id.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    if (!v->path || !v->pkt || !v->frame) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    int hit = cache && st3d_video_cache_get(cache, path, &v->id, &facts);
    if (hit) { /* the index, and the parameters when the container allows */
        v->par = facts.par;
        facts.par = NULL;
        v->stream = facts.stream;
    }
    if (open_streams(v, err) != 0) goto fail;
    if (hit && facts.stream != v->stream) { /* cannot happen with an unchanged file */
        st3d_video_facts_clear(&facts);
        hit = 0;
    }
    AVStream *st = v->fmt->streams[v->stream];
    if (!hit) {
        if (st3d_video_build_index(path, v->stream, &facts, err) != 0) goto fail;
        facts.stream = v->stream;
        AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
        facts.fps = fr.den ? av_q2d(fr) : 0.0;
        if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
            facts.duration = (double)st->duration * av_q2d(st->time_base);
        else if (v->fmt->duration != AV_NOPTS_VALUE && v->fmt->duration > 0)
            facts.duration = (double)v->fmt->duration / AV_TIME_BASE;
        if (cache && reopen_without_probe(v->fmt)) {
            v->par = avcodec_parameters_alloc();
            if (v->par && avcodec_parameters_copy(v->par, st->codecpar) < 0)
                avcodec_parameters_free(&v->par);
            facts.par = v->par; /* borrowed for the copy st3d_video_cache_put makes */
        }
        if (cache && facts.n_frames > 0) st3d_video_cache_put(cache, path, &v->id, &facts);
        facts.par = NULL;
    }
    st3d_video_info *in = &v->info;
    in->n_frames = facts.n_frames;
    in->frame_accurate = facts.pts != NULL;
    v->pts = facts.pts;
    facts.pts = NULL;
    in->fps = facts.fps;
    in->duration = facts.duration;
    if (in->n_frames == 0) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: the video stream has no frames", path);
        goto fail;
    }
    if (finish_open(v, err) != 0) goto fail;
    return v;
fail:
    st3d_video_facts_clear(&facts);
    st3d_video_free(v);
    return NULL;
}

/* Output geometry, rotation and names, once the streams are open. */
static int finish_open(st3d_video *v, st3d_error *err) {
    AVStream *st = v->fmt->streams[v->stream];
    st3d_video_info *in = &v->info;
    in->coded_width = st->codecpar->width;
    in->coded_height = st->codecpar->height;
    in->rotation = v->params.autorotate ? stream_rotation(st) : 0;
    int dw = in->coded_width, dh = in->coded_height;
    if (in->rotation % 180) dw = in->coded_height, dh = in->coded_width;
    output_size(&v->params, dw, dh, &in->width, &in->height);
    /* swscale's output is the unrotated picture */
    v->out_w = in->rotation % 180 ? in->height : in->width;
    v->out_h = in->rotation % 180 ? in->width : in->height;
    if ((int64_t)v->out_w * v->out_h > ST3D_MAX_PIXELS)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: output size %dx%d is too large", v->path,
                         in->width, in->height);
    if (!(v->conv = st3d_rgb_converter_new(err))) return -1;
    snprintf(in->codec, sizeof in->codec, "%s", v->dec->codec->name);
    snprintf(in->container, sizeof in->container, "%s", v->fmt->iformat->name);
    return 0;
}

st3d_video *st3d_video_open(const char *path, const st3d_video_params *params, st3d_error *err) {
    return st3d_video_open_cached(path, params, NULL, err);
}

const st3d_file_id *st3d_video_file_id(const st3d_video *v) { return &v->id; }

size_t st3d_video_memory(const st3d_video *v) {
    /* the decoder's pictures (at most 16 references plus reordering and
     * the one being decoded, 4:2:0 or more), the RGB staging, the index */
    size_t pic = (size_t)v->info.coded_width * (size_t)v->info.coded_height * 2;
    return sizeof *v + pic * 20 + (v->info.rotation ? (size_t)v->out_w * v->out_h * 3 : 0) +
           (v->pts ? (size_t)v->info.n_frames * sizeof *v->pts : 0);
}

void st3d_video_free(st3d_video *v) {
    if (!v) return;
    close_streams(v);
    st3d_rgb_converter_free(v->conv);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    free(v->pts);
    avcodec_parameters_free(&v->par);
    free(v->path);
    free(v);
}

/* Number of the frame with timestamp ts, or -1 when it is not in the index. */
static int64_t lookup_pts(const st3d_video *v, int64_t ts) {
    int64_t lo = 0, hi = v->info.n_frames;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->pts[mid] < ts) lo = mid + 1;
        else hi = mid;
    }
    return lo < v->info.n_frames && v->pts[lo] == ts ? lo : -1;
}

/* 1 when a packet with timestamp ts was sent since the decoder's last reset
 * (among the last 64). */
static int was_sent(const st3d_video *v, int64_t ts) {
    int n = v->n_sent < 64 ? v->n_sent : 64;
    for (int i = 0; i < n; i++)
        if (v->sent[i] == ts) return 1;
    return 0;
}

/* Decodes one more frame into v->frame, numbered in v->cur_index.  Returns
 * 1, 0 at the end of the stream, -1 on error.  Corrupt packets are passed
 * over (as the ffmpeg program does) unless too many come in a row. */
static int decode_next(st3d_video *v, st3d_error *err) {
    char eb[128];
    for (;;) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) {
            int64_t idx = -1;
            int64_t ts = v->frame->best_effort_timestamp;
            if (ts == AV_NOPTS_VALUE) ts = v->frame->pts;
            if (v->pts && ts != AV_NOPTS_VALUE) idx = lookup_pts(v, ts);
            if (idx < 0) idx = v->cur_index + 1;
            v->cur_index = idx;
            v->bad_packets = 0;
            return 1;
        }
        if (r == AVERROR_EOF) return 0;
        if (r != AVERROR(EAGAIN))
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: decoding failed (%s)", v->path,
                             averr(r, eb, sizeof eb));
        if (v->eof_sent) return 0;
        if (v->drain_pts != AV_NOPTS_VALUE && was_sent(v, v->drain_pts)) {
            /* the last frame wanted is in the decoder: flush it out rather
             * than decode the frames that would push it out */
            avcodec_send_packet(v->dec, NULL);
            v->eof_sent = 1;
            continue;
        }
        r = av_read_frame(v->fmt, v->pkt);
        if (r < 0) {
            /* end of file, or a read error in a truncated file: drain */
            avcodec_send_packet(v->dec, NULL);
            v->eof_sent = 1;
            continue;
        }
        if (v->pkt->stream_index != v->stream) {
            av_packet_unref(v->pkt);
            continue;
        }
        if (v->skip_nonref > 0) /* a frame before the next one wanted: only a reference matters */
            v->dec->skip_frame = v->pkt->pts != AV_NOPTS_VALUE && v->pts &&
                                         v->next_index < v->info.n_frames &&
                                         v->pkt->pts < v->pts[v->next_index]
                                     ? AVDISCARD_NONREF
                                     : AVDISCARD_DEFAULT;
        int64_t pkt_pts = v->pkt->pts;
        r = avcodec_send_packet(v->dec, v->pkt);
        av_packet_unref(v->pkt);
        if (r >= 0) v->sent[v->n_sent++ % 64] = pkt_pts;
        if (r < 0 && r != AVERROR(EAGAIN)) {
            if (r == AVERROR(ENOMEM))
                return st3d_fail(err, ST3D_ERR_NOMEM, "%s: decoder out of memory", v->path);
            if (++v->bad_packets > 64)
                return st3d_fail(err, ST3D_ERR_FORMAT, "%s: undecodable video data (%s)",
                                 v->path, averr(r, eb, sizeof eb));
        }
    }
}

/* Converts v->frame to RGB24 at the output size into rgb (rotated). */
static int convert_frame(st3d_video *v, uint8_t *rgb, st3d_error *err) {
    return st3d_rgb_convert_frame(v->conv, v->frame, v->out_w, v->out_h, v->params.scaler,
                                  v->info.rotation, v->path, rgb, err);
}

/* Restarts decoding so that the next frames returned begin at `target`:
 * seeks to a key frame at or before its timestamp, or restarts from the
 * beginning (counting mode, or when a seek overshoots). */
static int go_to(st3d_video *v, int64_t target, int from_start, st3d_error *err) {
    if (!v->pts || from_start || target == 0) {
        if (v->cur_index < 0 && v->next_index == 0 && !v->eof_sent) {
            v->next_index = target;
            return 0;
        }
        close_streams(v);
        if (open_streams(v, err) != 0) return -1;
        v->next_index = target;
        return 0;
    }
    int r = av_seek_frame(v->fmt, v->stream, v->pts[target], AVSEEK_FLAG_BACKWARD);
    if (r < 0) return go_to(v, target, 1, err);
    avcodec_flush_buffers(v->dec);
    v->eof_sent = 0;
    v->n_sent = 0;
    v->cur_index = -1;
    v->next_index = target;
    return 0;
}

/* Decodes until a frame numbered >= v->next_index; on overshoot after a seek
 * (an open GOP, an imprecise demuxer), retries from the beginning. */
static int advance(st3d_video *v, st3d_error *err) {
    int restarted = 0;
    for (;;) {
        int r = decode_next(v, err);
        if (r == 0 && v->skip_nonref > 0 && !restarted && v->pts &&
            v->next_index < v->info.n_frames) {
            /* the end came before a frame the index has: never seen, but
             * retry without skipping rather than trust the skipping */
            v->skip_nonref = -1;
            v->dec->skip_frame = AVDISCARD_DEFAULT;
            if (go_to(v, v->next_index, 1, err) != 0) return -1;
            restarted = 1;
            continue;
        }
        if (r <= 0) return r;
        if (v->cur_index < v->next_index) continue;
        if (v->cur_index > v->next_index && !restarted && v->pts) {
            /* the seek landed after the frame wanted (or, in theory, a
             * skipped frame upset the decoder's output order): start over,
             * decoding every frame */
            int64_t want = v->next_index;
            if (v->skip_nonref > 0) v->dec->skip_frame = AVDISCARD_DEFAULT;
            v->skip_nonref = -1;
            if (go_to(v, want, 1, err) != 0) return -1;
            restarted = 1;
            continue;
        }
        return 1;
    }
}

int st3d_video_seek(st3d_video *v, double seconds, st3d_error *err) {
    if (v->params.live)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: a live source cannot seek", v->path);
    AVStream *st = v->fmt->streams[v->stream];
    int64_t target = 0;
    if (v->pts) {
        int64_t ts = (int64_t)ceil(seconds / av_q2d(st->time_base) - 1e-6);
        int64_t lo = 0, hi = v->info.n_frames;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (v->pts[mid] < ts) lo = mid + 1;
            else hi = mid;
        }
        target = lo;
    } else {
        target = v->info.fps > 0 ? (int64_t)ceil(seconds * v->info.fps - 1e-6) : 0;
    }
    if (target < 0) target = 0;
    if (target >= v->info.n_frames) {
        /* past the end: the next read reports the end */
        if (go_to(v, v->info.n_frames - 1, 0, err) != 0) return -1;
        v->next_index = v->info.n_frames;
        return 0;
    }
    return go_to(v, target, 0, err);
}

/* After a frame is read: its number and timestamp (seconds) to the
 * caller's pointers (each may be NULL), and the next frame to return. */
static void frame_read(st3d_video *v, int64_t *index, double *pts) {
    if (index) *index = v->cur_index;
    if (pts) {
        int64_t ts = v->frame->best_effort_timestamp;
        if (ts == AV_NOPTS_VALUE) ts = v->frame->pts;
        *pts = ts == AV_NOPTS_VALUE ? (v->info.fps > 0 ? (double)v->cur_index / v->info.fps : 0)
                                    : (double)ts * av_q2d(v->fmt->streams[v->stream]->time_base);
    }
    v->next_index = v->cur_index + 1;
}

int st3d_video_read_frame(st3d_video *v, uint8_t *rgb, int64_t *index, double *pts,
                          st3d_error *err) {
    int r = advance(v, err);
    if (r <= 0) return r;
    if (convert_frame(v, rgb, err) != 0) return -1;
    frame_read(v, index, pts);
    return 1;
}

int st3d_video_read_picture(st3d_video *v, st3d_video_picture *pic, int64_t *index, double *pts,
                            st3d_error *err) {
    st3d_video_picture_release(pic);
    int r = advance(v, err);
    if (r <= 0) return r;
    if (st3d_video_picture_hold(pic, v->frame, v->out_w, v->out_h, v->params.scaler,
                                v->info.rotation, v->path, err) != 0)
        return -1;
    frame_read(v, index, pts);
    return 1;
}

/* A requested frame and where it goes. */
typedef struct want {
    int64_t index; /* frame number */
    int slot;      /* position in the caller's output */
} want;

static int cmp_want(const void *a, const void *b) {
    const want *x = a, *y = b;
    if (x->index != y->index) return (x->index > y->index) - (x->index < y->index);
    return (x->slot > y->slot) - (x->slot < y->slot);
}

int st3d_video_read_frames_to(st3d_video *v, const int64_t *indices, int n, uint8_t *const *dst,
                              int last, st3d_error *err) {
    if (n <= 0) return 0;
    if (v->params.live)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: a live source is read in order only", v->path);
    want *w = st3d_malloc((size_t)n * sizeof *w, err);
    if (!w) return -1;
    for (int i = 0; i < n; i++) {
        if (indices[i] < 0 || indices[i] >= v->info.n_frames) {
            free(w);
            return st3d_fail(err, ST3D_ERR_INVALID, "%s: frame %lld requested but the video has %lld",
                             v->path, (long long)indices[i], (long long)v->info.n_frames);
        }
        w[i].index = indices[i];
        w[i].slot = i;
    }
    qsort(w, (size_t)n, sizeof *w, cmp_want);
    size_t fsz = (size_t)v->info.width * v->info.height * 3;
    int64_t first = w[0].index;
    /* keep decoding forward when the first frame is near; else seek */
    int64_t gap = first - v->next_index;
    int64_t near = v->info.fps > 0 ? (int64_t)(v->info.fps * 2) : 48;
    if (gap < 0 || gap > near || v->eof_sent) {
        if (go_to(v, first, 0, err) != 0) goto fail;
    } else {
        v->next_index = first;
    }
    int k = 0;
    while (k < n) {
        v->next_index = w[k].index;
        if (last && v->pts && w[n - 1].index == w[k].index) v->drain_pts = v->pts[w[k].index];
        int r = advance(v, err);
        if (r < 0) goto fail;
        if (r == 0) {
            st3d_fail(err, ST3D_ERR_FORMAT,
                      "%s: frame %lld requested but decoding ended after frame %lld", v->path,
                      (long long)w[k].index, (long long)v->cur_index);
            goto fail;
        }
        if (v->cur_index != w[k].index) {
            st3d_fail(err, ST3D_ERR_FORMAT, "%s: frame %lld could not be decoded", v->path,
                      (long long)w[k].index);
            goto fail;
        }
        uint8_t *d = dst[w[k].slot];
        if (convert_frame(v, d, err) != 0) goto fail;
        int64_t idx = w[k].index;
        for (k++; k < n && w[k].index == idx; k++) memcpy(dst[w[k].slot], d, fsz);
        v->next_index = idx + 1;
    }
    v->drain_pts = AV_NOPTS_VALUE;
    free(w);
    return 0;
fail:
    v->drain_pts = AV_NOPTS_VALUE;
    free(w);
    return -1;
}

int st3d_video_read_frames(st3d_video *v, const int64_t *indices, int n, uint8_t *rgb,
                           st3d_error *err) {
    if (n <= 0) return 0;
    uint8_t **dst = st3d_malloc((size_t)n * sizeof *dst, err);
    if (!dst) return -1;
    size_t fsz = (size_t)v->info.width * v->info.height * 3;
    for (int i = 0; i < n; i++) dst[i] = rgb + (size_t)i * fsz;
    int rc = st3d_video_read_frames_to(v, indices, n, dst, 0, err);
    free(dst);
    return rc;
}

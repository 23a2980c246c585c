/*
 * st3d/data.h - video decoding, annotations, transforms, the loader and
 * the clip stream.
 *
 * Part of the public API: include st3d.h, which includes this file inside
 * its extern "C" block and visibility pragma, after the core types it uses.
 */
#ifndef ST3D_PUBLIC_DATA_H
#define ST3D_PUBLIC_DATA_H
#ifndef ST3D_H
#error "include st3d.h, not st3d/data.h"
#endif

/* ===================================================== video and data ===== */
/* Reading what users have on disk (videos through FFmpeg's libraries, folders
 * of JPEG frames through libjpeg-turbo), the original code's annotation JSON,
 * its temporal and spatial augmentations (Hara et al., Section 3.3) and a
 * threaded loader that turns all of it into NCDHW float32 batches. */

/* --------------------------------------------------------- video decoding */

/* swscale algorithm used to scale decoded frames. */
typedef enum st3d_scaler {
    ST3D_SCALER_BILINEAR = 0, /* SWS_BILINEAR, as ffmpeg -sws_flags bilinear */
    ST3D_SCALER_BICUBIC = 1,  /* SWS_BICUBIC (the ffmpeg program's default) */
    ST3D_SCALER_AREA = 2,     /* SWS_AREA */
    ST3D_SCALER_POINT = 3,    /* SWS_POINT (nearest neighbour) */
} st3d_scaler;

typedef struct st3d_video_params {
    int short_side;     /* scale so the shorter side has this many pixels, the
                           other rounded to nearest (as ffmpeg's scale=-1:N);
                           0: the video's own size */
    int width, height;  /* exact output size when both > 0 (overrides short_side) */
    int threads;        /* libavcodec decoding threads (frame threading);
                           0: automatic, 1: decode on the calling thread */
    int autorotate;     /* 1: apply the stream's rotation metadata as the
                           ffmpeg program does (default 1) */
    st3d_scaler scaler; /* scaling algorithm (default bilinear) */
    int live;           /* 1: a source read once as it comes (a pipe, "-" for standard
                           input, an RTSP/HTTP URL): no indexing pass, frames counted
                           as decoded, n_frames 0 (unknown), no seeking (default 0) */
} st3d_video_params;

st3d_video_params st3d_video_default_params(void);

typedef struct st3d_video_info {
    int width, height;             /* size of returned frames (scaled, rotated) */
    int coded_width, coded_height; /* the stream's own size, before rotation */
    int rotation;                  /* clockwise degrees applied: 0, 90, 180, 270 */
    double fps;                    /* average frame rate, 0 when unknown */
    double duration;               /* seconds, 0 when unknown */
    int64_t n_frames;              /* frames in presentation order (from an index
                                      of the packets built at open) */
    int frame_accurate;            /* 1: every packet has a timestamp, seeks are
                                      exact; 0: seeks decode from the start */
    char codec[32];                /* libavcodec's name, e.g. "h264" */
    char container[32];            /* libavformat's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" (cut) */
} st3d_video_info;

typedef struct st3d_video st3d_video;

/* Opens any file FFmpeg reads and indexes its video packets (a demux pass
 * without decoding).  Memory is one frame plus the decoder's references and
 * 8 bytes per frame of index, never the whole video. */
st3d_video *st3d_video_open(const char *path, const st3d_video_params *params,
                            st3d_error *err);
void st3d_video_free(st3d_video *video);
const st3d_video_info *st3d_video_get_info(const st3d_video *video);

/* Positions the video so that the next st3d_video_read_frame returns the
 * first frame whose timestamp is >= seconds. */
int st3d_video_seek(st3d_video *video, double seconds, st3d_error *err);

/* Decodes the next frame in presentation order into rgb (height x width x 3
 * bytes, RGB24, rows top to bottom).  Returns 1 with a frame, 0 at the end,
 * -1 on error.  index (0-based frame number) and pts (seconds, the stream's
 * presentation timestamp) may be NULL. */
int st3d_video_read_frame(st3d_video *video, uint8_t *rgb, int64_t *index, double *pts,
                          st3d_error *err);

/* Frame-accurate clip extraction: decodes the frames indices[0..n) (0-based,
 * any order, repeats allowed) into rgb (n x height x width x 3).  Seeks to the
 * key frame before the first one needed and decodes only up to the last;
 * only requested frames are converted.  A frame past the end is an error. */
int st3d_video_read_frames(st3d_video *video, const int64_t *indices, int n, uint8_t *rgb,
                           st3d_error *err);

/* ------------------------------------------------------------ annotations */

/* The original code's annotation JSON:
 *   {"labels": [names...],
 *    "database": {video_id: {"subset": "training"|"validation"|"testing",
 *                            "annotations": {"label": name, "segment": [b, e]},
 *                            "video_path": optional}}}
 * and ActivityNet v1.3's (a "taxonomy" whose leaves are the labels, lists of
 * annotations with segments in seconds, a per-video "fps"). */
typedef struct st3d_dataset st3d_dataset;

typedef struct st3d_sample_info {
    const char *video_id; /* the database key */
    const char *path;     /* frame folder or video file */
    int64_t label;        /* index into labels, -1 when unlabeled (testing) */
    int64_t begin, end;   /* frames [begin, end), numbered from 1 as the
                             original's image_%05d.jpg */
} st3d_sample_info;

/* Reads the samples of one subset ("training", "validation", "testing").  A
 * video is looked up as video_root/label/video_id (ActivityNet:
 * video_root/v_video_id), a frame folder or, failing that, a video file with
 * a known extension (.mp4 .avi .webm .mkv .mov ...).  Missing videos and
 * entries naming a label absent from "labels" are skipped and recorded as
 * warnings; malformed JSON fails naming the file, line and column. */
st3d_dataset *st3d_dataset_open(const char *annotation_path, const char *video_root,
                                const char *subset, st3d_error *err);
/* A dataset of whole videos or frame folders (labels may be NULL: all -1),
 * for classifying files that have no annotation.  Frames are counted here. */
st3d_dataset *st3d_dataset_from_paths(const char *const *paths, const int64_t *labels,
                                      int64_t n, st3d_error *err);
void st3d_dataset_free(st3d_dataset *ds);
int64_t st3d_dataset_size(const st3d_dataset *ds);
int st3d_dataset_sample(const st3d_dataset *ds, int64_t i, st3d_sample_info *info);
int64_t st3d_dataset_n_classes(const st3d_dataset *ds);
const char *st3d_dataset_class_name(const st3d_dataset *ds, int64_t label);
/* Problems met while reading (one line each, naming the file). */
int64_t st3d_dataset_n_warnings(const st3d_dataset *ds);
const char *st3d_dataset_warning(const st3d_dataset *ds, int64_t i);

/* Builds the original code's JSON (util_scripts/ucf101_json.py,
 * hmdb51_json.py, kinetics_json.py; for ActivityNet the v1.3 file plus
 * "labels" and each video's "fps").  dataset: "ucf101", "hmdb51", "kinetics",
 * "activitynet".  src: UCF-101's folder of classInd.txt/trainlist0N.txt/
 * testlist0N.txt, HMDB-51's folder of *_test_splitN.txt, Kinetics' folder of
 * kinetics-K_{train,val,test}.csv, ActivityNet's JSON file.  video_root, when
 * not NULL, is where frame counts (segments) and frame rates are found. */
typedef struct st3d_annotation_params {
    const char *dataset;    /* "ucf101" | "hmdb51" | "kinetics" | "activitynet" */
    const char *src;        /* split files folder, or the ActivityNet JSON */
    const char *video_root; /* frame folders / videos; NULL: no segments */
    int split;              /* UCF-101 / HMDB-51 split 1..3 */
    int n_classes;          /* Kinetics: 400, 600 or 700 (file names) */
    double fps;             /* ActivityNet: frame rate when no video gives one (0: none) */
    const char *classes;    /* "A,B,C": keep only these classes, labelled in this order,
                               and their videos (not ActivityNet); NULL: all */
} st3d_annotation_params;
st3d_annotation_params st3d_annotation_default_params(void);
int st3d_make_annotations(const st3d_annotation_params *params, const char *dst_json,
                          int64_t *n_videos, st3d_error *err);

/* ------------------------------------------------------------- transforms */

/* Temporal cropping (the original's temporal_transforms.py). */
typedef enum st3d_temporal_crop {
    ST3D_TCROP_RANDOM = 0,  /* TemporalRandomCrop: one clip, uniform start */
    ST3D_TCROP_CENTER = 1,  /* TemporalCenterCrop: one clip around the middle */
    ST3D_TCROP_BEGIN = 2,   /* TemporalBeginCrop: the first frames */
    ST3D_TCROP_EVEN = 3,    /* TemporalEvenCrop: n_clips clips spread evenly */
    ST3D_TCROP_SLIDING = 4, /* SlidingWindow: every window_stride frames */
} st3d_temporal_crop;

/* Spatial cropping (the original's spatial_transforms.py / main.py). */
typedef enum st3d_spatial_crop {
    ST3D_SCROP_RANDOM = 0, /* RandomResizedCrop (--train_crop random) */
    ST3D_SCROP_CORNER = 1, /* MultiScaleCornerCrop (--train_crop corner) */
    ST3D_SCROP_CENTER = 2, /* Resize + CenterCrop (--train_crop center, validation) */
    ST3D_SCROP_NONE = 3,   /* Resize alone (--inference_crop nocrop): short side
                              sample_size, aspect kept, so clips have their video's
                              height and width and a batch holds one video's clips
                              (see st3d_loader_peek) */
} st3d_spatial_crop;

/* Fills mean and std (3 values each) for --mean_dataset ("kinetics",
 * "activitynet", "0.5") scaled by value_scale, as the original's mean.py. */
int st3d_mean_std(const char *mean_dataset, float value_scale, float mean[3], float std[3],
                  st3d_error *err);

/* ----------------------------------------------------------------- loader */

typedef struct st3d_loader_params {
    int batch_size;               /* clips per batch (--batch_size) */
    int n_threads;                /* worker threads (--n_threads) */
    int queue_batches;            /* ready batches buffered ahead (>= 1) */
    int sample_size;              /* output height and width (--sample_size 112) */
    int sample_duration;          /* frames per clip (--sample_duration 16) */
    int sample_t_stride;          /* temporal subsampling (--sample_t_stride 1) */
    st3d_temporal_crop t_crop;    /* --train_t_crop, or validation/inference modes */
    int n_clips;                  /* clips per video for ST3D_TCROP_EVEN (--n_val_samples) */
    int window_stride;            /* ST3D_TCROP_SLIDING stride (--inference_stride; 0: duration) */
    st3d_spatial_crop crop;       /* --train_crop (or validation's / inference's) */
    float train_crop_min_scale;   /* RandomResizedCrop area range (min, 1) */
    float train_crop_min_ratio;   /* RandomResizedCrop aspect range (r, 1/r) */
    int hflip;                    /* 1: flip with probability 1/2 (not --no_hflip) */
    int colorjitter;              /* 1: ColorJitter (--colorjitter) */
    int shuffle_frames;           /* 1: the frames of every clip in a random order
                                     (the 2D control: no motion left to see) */
    float jitter_brightness;      /* ColorJitter strengths; the original's defaults */
    float jitter_contrast;        /*   are all 0, which makes it an identity */
    float jitter_saturation;
    float jitter_hue;             /* 0 .. 0.5 */
    float value_scale;            /* 1: values in [0, 1]; 255: [0, 255] (--value_scale) */
    float mean[3];                /* subtracted per channel (already x value_scale) */
    float std[3];                 /* divided per channel (already x value_scale) */
    int mean_norm;                /* 0: no mean subtraction (--no_mean_norm) */
    int std_norm;                 /* 0: no division by std (--no_std_norm) */
    int shuffle;                  /* 1: a new random order every epoch */
    int drop_last;                /* 1: drop a last, incomplete batch */
    uint64_t seed;                /* every random choice derives from (seed, epoch, sample) */
    int shard_index, shard_count; /* this process's share, as DistributedSampler */
    int shard_no_pad;             /* 1: shares without DistributedSampler's padding
                                     (every sample exactly once over all shards:
                                     validation and inference across ranks) */
    int video_short_side;         /* videos: scale at decode to this short side (0: native) */
    int decoder_threads;          /* videos: libavcodec threads per worker (1) */
} st3d_loader_params;

st3d_loader_params st3d_loader_default_params(void);

/* Per clip of a batch: where it came from and what was drawn. */
typedef struct st3d_clip_info {
    int64_t sample;       /* dataset index */
    int64_t begin, end;   /* first and one-past-last frame number (1-based) used */
    int clip;             /* clip number within its video (multi-clip crops) */
    int crop_x, crop_y;   /* crop origin in the source frame (center crop:
                             in the frame after Resize; nocrop: 0) */
    int crop_w, crop_h;   /* crop size in the source frame (center crop and
                             nocrop: the size of the frame after Resize) */
    int flipped;          /* 1: horizontally flipped */
    float jitter[4];      /* brightness, contrast, saturation, hue factors */
    int jitter_order[4];  /* order applied (0 b, 1 c, 2 s, 3 h) */
} st3d_clip_info;

typedef struct st3d_loader_stats {
    int64_t epoch;          /* the current epoch */
    int64_t n_batches;      /* batches of this epoch (before skips) */
    int64_t n_clips;        /* clips delivered so far this epoch */
    int64_t n_skipped;      /* unreadable videos skipped so far this epoch */
    int64_t n_skipped_total;/* distinct unreadable videos met since creation */
    double busy_seconds;    /* worker time spent decoding and augmenting */
} st3d_loader_stats;

typedef struct st3d_loader st3d_loader;

/* The loader borrows ds, which must outlive it.  Workers start at the first
 * st3d_loader_start_epoch. */
st3d_loader *st3d_loader_new(const st3d_dataset *ds, const st3d_loader_params *params,
                             st3d_error *err);
void st3d_loader_free(st3d_loader *loader);
/* Starts epoch (0, 1, ...): its order (shuffled from seed and epoch), this
 * shard's part, then workers fill the queue.  Abandons an unfinished epoch. */
int st3d_loader_start_epoch(st3d_loader *loader, int64_t epoch, st3d_error *err);
/* Shape of a full batch: {batch_size, 3, sample_duration, sample_size, sample_size}
 * (with ST3D_SCROP_NONE, H and W are only known batch by batch: st3d_loader_peek). */
void st3d_loader_batch_shape(const st3d_loader *loader, int64_t shape[5]);
/* Waits for the next batch and gives its shape {N, 3, T, H, W} without
 * taking it: N as st3d_loader_next's *n, H x W sample_size x sample_size
 * but with ST3D_SCROP_NONE, where they are the batch's video's (every clip
 * of a batch is of one video then; a video with more clips than batch_size
 * fills several batches).  Returns 1, 0 at the end of the epoch, -1 on error. */
int st3d_loader_peek(st3d_loader *loader, int64_t shape[5], st3d_error *err);
/* Waits for the next batch and copies it out: clips (N x 3 x T x H x W,
 * NCDHW float32), labels (N; may be NULL), info (N; may be NULL).  *n gets
 * the clips in it (< batch_size for the last batch, or when a video was
 * skipped).  Returns 1 with a batch, 0 at the end of the epoch, -1 on error.
 * With ST3D_SCROP_NONE the batch must have been peeked at (H and W vary;
 * clips must hold st3d_loader_peek's shape), else this is refused. */
int st3d_loader_next(st3d_loader *loader, float *clips, int64_t *labels, st3d_clip_info *info,
                     int *n, st3d_error *err);
/* Pops the oldest unread message about a skipped video into buf; returns 1,
 * or 0 when there is none.  Each video is reported once. */
int st3d_loader_pop_message(st3d_loader *loader, char *buf, size_t cap);
void st3d_loader_get_stats(const st3d_loader *loader, st3d_loader_stats *stats);

/* ------------------------------------------------------------ clip stream */

/* Whole videos cut into clips as they decode, for classifying or embedding
 * any number of videos of any length (`st3d classify`, `st3d features`; the
 * companion tool video-classification-3d-cnn-pytorch's job, without its
 * frame dumps).  Decoder threads each take the next video of the list,
 * decode it from start to end (the decoder drained at the end, so every
 * frame it gives is seen), transform each frame once (Resize of the short
 * side + CenterCrop, then normalization: the companion's Scale, CenterCrop,
 * ToTensor, Normalize) into a ring of sample_duration frames, and put each
 * clip, the moment its last frame is in, into a bounded queue the caller
 * drains.  Memory is the ring, the queue and one decoder per thread, never
 * a whole video.
 *
 * Clips start at frames 0, stride, 2 * stride, ... as the original's
 * SlidingWindow; the first clip that runs past the last frame is
 * loop-padded (LoopPadding: its frames repeated from its first) and ends
 * the video, unless drop_tail is set.  The companion tool itself cuts
 * only full clips starting at 1, 1 + stride, ... below n - duration + 1
 * (its make_dataset), so a video's last frames (and any video shorter than
 * a clip) go unclassified there. */
typedef struct st3d_stream_params {
    int sample_duration;  /* frames per clip (16) */
    int stride;           /* frames between clip starts (0: sample_duration) */
    int sample_size;      /* clip height and width after Resize + CenterCrop (112) */
    float value_scale;    /* 1: pixel values in [0, 1], 255: [0, 255] (1) */
    float mean[3];        /* subtracted per channel, already x value_scale (kinetics) */
    float std[3];         /* divided per channel, already x value_scale (kinetics) */
    int drop_tail;        /* 1: no loop-padded last clip (0) */
    int n_threads;        /* decoder threads: videos decoded at once (2) */
    int decoder_threads;  /* libavcodec threads per video (1) */
    int queue_clips;      /* clips buffered between decoding and the caller (16) */
    int live;             /* 1: the paths are live sources (st3d_video_params.live) */
    int pause_for_compute; /* 1: st3d_classify_stream holds the decoder threads while a
                              batch runs (st3d_clip_stream_hold), so that decoding runs
                              between batches on every core instead of preempting the
                              compute threads; for when the network takes every core (0) */
} st3d_stream_params;

st3d_stream_params st3d_stream_default_params(void);

/* What the stream hands out, in order; one video's items come in the order
 * BEGIN, CLIP..., then END or FAIL; items of videos decoded at once
 * interleave. */
typedef enum st3d_stream_kind {
    ST3D_STREAM_BEGIN = 0, /* a video opened: info is set */
    ST3D_STREAM_CLIP = 1,  /* a clip (its pixels copied out by st3d_clip_stream_next) */
    ST3D_STREAM_END = 2,   /* a video fully decoded: n_clips, n_frames set */
    ST3D_STREAM_FAIL = 3,  /* a video could not be opened or decoded: message says
                              why; clips it gave before are to be discarded */
} st3d_stream_kind;

typedef struct st3d_stream_item {
    st3d_stream_kind kind; /* what this is */
    int64_t video;         /* index into the list the stream was made with */
    int64_t clip;          /* CLIP: number within its video, from 0 */
    int64_t first, last;   /* CLIP: 1-based numbers of its first and last real frame
                              (the companion's "segment" [first, last]) */
    int n_real;            /* CLIP: frames before loop padding (< sample_duration: padded) */
    double start, end;     /* CLIP: seconds, the first frame's timestamp and the last
                              real frame's plus one frame duration */
    double decoded_at;     /* CLIP: st3d's monotonic clock (seconds) when its last frame
                              was decoded, for latency */
    int64_t n_clips;       /* END: clips the video gave */
    int64_t n_frames;      /* END: frames decoded */
    st3d_video_info info;  /* BEGIN, END: the video (n_frames: the container's index) */
    char message[768];     /* FAIL: one line naming the file and the reason */
} st3d_stream_item;

typedef struct st3d_clip_stream st3d_clip_stream;

/* Starts decoding paths[0..n) (copied) at once.  Bad parameters fail here;
 * a bad video is a FAIL item later. */
st3d_clip_stream *st3d_clip_stream_new(const char *const *paths, int64_t n,
                                       const st3d_stream_params *params, st3d_error *err);
/* Stops the decoder threads (an unfinished stream is abandoned) and frees. */
void st3d_clip_stream_free(st3d_clip_stream *s);
/* Shape of one clip, {3, sample_duration, sample_size, sample_size} (CDHW). */
void st3d_clip_stream_clip_shape(const st3d_clip_stream *s, int64_t shape[4]);
/* Waits for the next item; a CLIP's pixels are copied to clip (NCDHW order
 * for one clip; may be NULL to drop them).  Returns 1 with an item, 0 when
 * every video has ended, -1 on error. */
int st3d_clip_stream_next(st3d_clip_stream *s, float *clip, st3d_stream_item *item,
                          st3d_error *err);
/* hold 1: each decoder thread stops before its next frame (the frames it
 * has handed over are still cut into clips) until hold 0, or until
 * st3d_clip_stream_next has to wait for an item (the caller is then not
 * computing: a held stream never deadlocks).  Items already queued can be
 * taken.  The parameters the stream was made with (stride resolved) say
 * whether st3d_classify_stream holds it during each forward. */
void st3d_clip_stream_hold(st3d_clip_stream *s, int hold);
const st3d_stream_params *st3d_clip_stream_get_params(const st3d_clip_stream *s);

/* =============================================== end of video and data ===== */

#endif /* ST3D_PUBLIC_DATA_H */

/*
 * clip_stream.c - st3d_clip_stream: videos decoded one after another by
 * decoder threads, cut into clips as the frames arrive, handed to one
 * consumer through a bounded queue (see st3d.h for the clip rules).
 *
 * Each decoder thread takes the next video of the list and reads its frames
 * in order with st3d_video_read_picture (which drains the decoder at the
 * end of the stream, so every frame the decoder gives is counted), leaving
 * them unconverted; its cutter thread, a few frames behind, converts them
 * to RGB, resizes and crops them and keeps the last sample_duration
 * frames, as sample_size x sample_size RGB bytes, in a ring: frame f lives
 * in slot f % duration.  (The conversion is the cutter's so that the two
 * threads take about as long per frame: libavcodec alone, against swscale
 * and the resize.)  A frame that no clip will use (stride > duration) is
 * decoded, counted and not converted.  When frame start + duration - 1 is
 * in, the clip [start, start + duration) is copied from the ring into a
 * queue slot;
 * at the end of the video the first clip that runs past the last frame is
 * loop-padded from the frames still in the ring (the original's
 * SlidingWindow + LoopPadding, temporal_transforms.py).
 *
 * Transform per frame: Resize (short side to sample_size, PIL bilinear,
 * the other side truncated) + CenterCrop in the cutter, then ToTensor and
 * Normalize as a lookup table as the consumer takes the clip (bytes travel
 * through the queue, a quarter of the floats they become): the companion
 * tool's Scale + CenterCrop + ToTensor + Normalize (classify.py), via the
 * loader's own spatial code (spatial.c).
 *
 * Queue: queue_clips slots.  A producer reserves the tail slot under the
 * lock, fills it without the lock, then marks it ready; the consumer takes
 * the head slot once ready, copies it out without the lock, then frees it.
 * Items of one video keep their order (one thread decodes it); items of
 * videos decoded at once interleave.
 *
 * Hold: while the caller holds the stream (st3d_clip_stream_hold, around
 * each forward when pause_for_compute is set), a decoder thread waits
 * before reading its next frame.  When the compute threads take every core,
 * a decoder running beside them preempts one of them in the middle of a
 * parallel region while the others wait at its barrier, so each millisecond
 * of decoding costs about one of every core; held, decoding runs between
 * batches, the decoder, its cutter and FFmpeg's threads on all cores.
 */
#define _POSIX_C_SOURCE 200809L
#include "data/data.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* State of a queue slot. */
enum { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_READY = 2 };

/* One queue entry: an item and, for a clip, its pixels. */
typedef struct slot {
    st3d_stream_item item; /* what it carries */
    uint8_t *data;         /* duration frames of S x S x 3 bytes (CLIP items) */
    int state;             /* SLOT_* */
} slot;

/* Decoded frames a worker holds between its two threads: up to HELD_MAX,
 * fewer for large frames (HELD_BYTES of RGB in all, at least 2; held as
 * FFmpeg's pictures, 4:2:0 frames take half that). */
enum { HELD_MAX = 8, HELD_BYTES = 4 << 20 };

/* A decoder thread, its cutter thread and their scratch.  The decoder reads
 * frame f into pics[f % n_held] and hands it over; the cutter converts and
 * transforms it into the ring and queues the clip it completes, while the
 * decoder goes on with the next frames (so the transform, as large a part
 * of a small clip's cost as decoding, runs beside it).  Several frames in hand, so
 * that neither thread waits for the other at every frame. */
typedef struct worker {
    struct st3d_clip_stream *s; /* the stream */
    pthread_t thread;           /* the decoder thread */
    pthread_t cutter;           /* the cutter thread */
    int started;                /* 1 once the decoder thread runs */
    int cutter_started;         /* 1 once the cutter thread runs */
    st3d_video_picture *pics[HELD_MAX]; /* decoded frames, not yet RGB: frame f in
                                           pics[f % n_held] */
    double held_pts[HELD_MAX];  /* their timestamps, seconds */
    double held_at[HELD_MAX];   /* st3d_now() when each was decoded */
    int n_held;                 /* frames used for this video */
    st3d_rgb_converter *conv;   /* the cutter's conversion to RGB */
    st3d_image rgb;             /* the frame being cut, in RGB (cutter) */
    st3d_spatial_work work;     /* resize scratch (cutter) */
    uint8_t *ring;              /* duration frames of S x S x 3 bytes (cutter) */
    double *ring_pts;           /* their timestamps, seconds */
    /* the hand-over, guarded by mu */
    pthread_mutex_t mu;         /* guards the fields below */
    pthread_cond_t cv;          /* broadcast when handed, cut or quit change */
    int64_t handed;             /* frames of this video handed over */
    int64_t cut;                /* frames of this video cut (<= handed) */
    int quit;                   /* 1: the cutter thread ends */
    int stopped;                /* 1: the stream stopped while the cutter queued */
    int failed;                 /* 1: the cutter failed; cut_err says why */
    st3d_error cut_err;         /* the cutter's failure */
    /* the video being cut: set by the decoder while the cutter is idle */
    int64_t v;                  /* its index */
    int64_t start;              /* first frame of the next clip */
    int64_t clips;              /* clips queued so far */
    st3d_spatial_choice ch;     /* its Resize + CenterCrop */
    double dt;                  /* one frame's duration, seconds (0: unknown) */
    double last_at;             /* held_at of the last frame cut */
} worker;

struct st3d_clip_stream {
    st3d_stream_params p;  /* as given (stride resolved) */
    char **paths;          /* n videos (owned copies) */
    int64_t n;             /* videos */
    int64_t clip_bytes;    /* duration * S * S * 3 */
    int64_t frame_bytes;   /* S * S * 3 */
    st3d_spatial_cfg cfg;  /* Resize + CenterCrop and the normalization table */
    worker *workers;       /* p.n_threads */
    slot *slots;           /* p.queue_clips */
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv_put; /* producers wait here for a free slot */
    pthread_cond_t cv_get; /* the consumer waits here for a ready slot */
    pthread_cond_t cv_go;  /* producers wait here while the stream is held */
    int held;              /* 1: producers wait before their next frame */
    int head, count;       /* queue: first slot, slots in use */
    int64_t next_video;    /* next video a thread takes */
    int running;           /* threads not finished */
    int stop;              /* 1: abandon everything (free) */
};

st3d_stream_params st3d_stream_default_params(void) {
    st3d_stream_params p;
    memset(&p, 0, sizeof p);
    p.sample_duration = 16;
    p.stride = 0;
    p.sample_size = 112;
    p.value_scale = 1.0f;
    st3d_mean_std("kinetics", 1.0f, p.mean, p.std, NULL);
    p.n_threads = 2;
    p.decoder_threads = 1;
    p.queue_clips = 16;
    return p;
}

void st3d_clip_stream_clip_shape(const st3d_clip_stream *s, int64_t shape[4]) {
    shape[0] = 3;
    shape[1] = s->p.sample_duration;
    shape[2] = shape[3] = s->p.sample_size;
}

/* Reserves the tail slot (waiting for room); NULL when the stream stops. */
static slot *reserve(st3d_clip_stream *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->stop && s->count == s->p.queue_clips) pthread_cond_wait(&s->cv_put, &s->mu);
    slot *sl = NULL;
    if (!s->stop) {
        sl = &s->slots[(s->head + s->count) % s->p.queue_clips];
        sl->state = SLOT_FILLING;
        s->count++;
    }
    pthread_mutex_unlock(&s->mu);
    return sl;
}

/* Waits while the stream is held; -1 when the stream stops. */
static int wait_unheld(st3d_clip_stream *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->stop && s->held) pthread_cond_wait(&s->cv_go, &s->mu);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop ? -1 : 0;
}

void st3d_clip_stream_hold(st3d_clip_stream *s, int hold) {
    pthread_mutex_lock(&s->mu);
    s->held = hold != 0;
    if (!s->held) pthread_cond_broadcast(&s->cv_go);
    pthread_mutex_unlock(&s->mu);
}

const st3d_stream_params *st3d_clip_stream_get_params(const st3d_clip_stream *s) {
    return &s->p;
}

static void publish(st3d_clip_stream *s, slot *sl) {
    pthread_mutex_lock(&s->mu);
    sl->state = SLOT_READY;
    pthread_cond_signal(&s->cv_get);
    pthread_mutex_unlock(&s->mu);
}

/* Queues an item without pixels; -1 when the stream stops. */
static int put_item(st3d_clip_stream *s, const st3d_stream_item *it) {
    slot *sl = reserve(s);
    if (!sl) return -1;
    sl->item = *it;
    publish(s, sl);
    return 0;
}

/* Queues the worker's next clip: frames [start, start + n_real) of its
 * video, loop-padded to the duration, from the ring; its last frame was
 * decoded at w->last_at. */
static int put_clip(st3d_clip_stream *s, worker *w, int n_real) {
    slot *sl = reserve(s);
    if (!sl) return -1;
    int T = s->p.sample_duration;
    int64_t start = w->start;
    for (int t = 0; t < T; t++)
        memcpy(sl->data + t * s->frame_bytes, w->ring + ((start + t % n_real) % T) * s->frame_bytes,
               (size_t)s->frame_bytes);
    st3d_stream_item *it = &sl->item;
    memset(it, 0, sizeof *it);
    it->kind = ST3D_STREAM_CLIP;
    it->video = w->v;
    it->clip = w->clips++;
    it->first = start + 1;
    it->last = start + n_real;
    it->n_real = n_real;
    it->start = w->ring_pts[start % T];
    it->end = w->ring_pts[(start + n_real - 1) % T] + w->dt;
    it->decoded_at = w->last_at;
    publish(s, sl);
    return 0;
}

/* The cutter's work on the frame handed over: converted to RGB and into
 * the ring if a clip uses it (a frame no clip uses, stride > duration, is
 * only counted), then the clip it completes, if any, queued.  0, 1 on
 * failure (w->cut_err), -1 when the stream stops. */
static int cut_frame(worker *w, int64_t f) {
    st3d_clip_stream *s = w->s;
    int T = s->p.sample_duration, h = (int)(f % w->n_held);
    w->last_at = w->held_at[h];
    if (f >= w->start) {
        const uint8_t *px = NULL;
        if (st3d_rgb_convert(w->conv, w->pics[h], w->rgb.data, &w->cut_err) == 0)
            px = st3d_spatial_pixels(&s->cfg, &w->ch, &w->rgb, &w->work, &w->cut_err);
        if (!px) return 1;
        memcpy(w->ring + (f % T) * s->frame_bytes, px, (size_t)s->frame_bytes);
        w->ring_pts[f % T] = w->held_pts[h];
    }
    st3d_video_picture_release(w->pics[h]); /* its buffers back to the decoder */
    if (f == w->start + T - 1) {
        if (put_clip(s, w, T) != 0) return -1;
        w->start += s->p.stride;
    }
    return 0;
}

static void *cutter_main(void *arg) {
    worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->cut == w->handed && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (w->cut == w->handed) break; /* quit, nothing in hand */
        int64_t f = w->cut;
        int skip = w->stopped || w->failed; /* the rest of a failed video */
        pthread_mutex_unlock(&w->mu);
        int rc = skip ? 0 : cut_frame(w, f);
        pthread_mutex_lock(&w->mu);
        if (rc < 0) w->stopped = 1;
        if (rc > 0) w->failed = 1;
        w->cut++;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Waits until the cutter holds at most `most` frames not yet cut (0: it
 * has cut or skipped all); 0, 1 if it failed, -1 if the stream stopped. */
static int cutter_wait(worker *w, int most) {
    pthread_mutex_lock(&w->mu);
    while (w->handed - w->cut > most && (most == 0 || !(w->stopped || w->failed)))
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->stopped ? -1 : w->failed ? 1 : 0;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Hands the next frame (in pics[handed % n_held]), its timestamp pts,
 * decoded at st3d_now() = at, to the cutter. */
static void cutter_give(worker *w, double pts, double at) {
    pthread_mutex_lock(&w->mu);
    int h = (int)(w->handed % w->n_held);
    w->held_pts[h] = pts;
    w->held_at[h] = at;
    w->handed++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Decodes video v and queues its items.  Returns -1 only when the stream
 * stops; a bad video is a FAIL item. */
static int run_video(st3d_clip_stream *s, worker *w, int64_t v) {
    st3d_stream_item it;
    memset(&it, 0, sizeof it);
    it.video = v;
    st3d_error err = {0};
    st3d_video_params vp = st3d_video_default_params();
    vp.threads = s->p.decoder_threads;
    vp.live = s->p.live;
    st3d_video *vid = st3d_video_open(s->paths[v], &vp, &err);
    if (!vid) goto fail;
    it.info = *st3d_video_get_info(vid);
    st3d_rng rng = st3d_rng_for(0, 0, 0, 0); /* the center crop draws nothing */
    st3d_spatial_draw(&s->cfg, it.info.width, it.info.height, &rng, &w->ch);
    if (w->ch.crop_x < 0 || w->ch.crop_y < 0) {
        st3d_fail(&err, ST3D_ERR_INVALID, "%s: frames of %dx%d are too small", s->paths[v],
                  it.info.width, it.info.height);
        goto fail;
    }
    /* the cutter is idle between videos */
    size_t fit = HELD_BYTES / ((size_t)it.info.width * it.info.height * 3);
    w->n_held = fit > HELD_MAX ? HELD_MAX : fit < 2 ? 2 : (int)fit;
    if (st3d_image_reserve(&w->rgb, it.info.width, it.info.height, &err) != 0) goto fail;
    it.kind = ST3D_STREAM_BEGIN;
    if (put_item(s, &it) != 0) goto stop;
    pthread_mutex_lock(&w->mu); /* the cutter, idle, reads these once handed a frame */
    w->v = v;
    w->start = w->clips = w->handed = w->cut = 0;
    w->dt = it.info.fps > 0 ? 1.0 / it.info.fps : 0.0;
    pthread_mutex_unlock(&w->mu);
    int64_t f = 0;
    for (;;) {
        double pts = 0;
        if (wait_unheld(s) != 0) goto stop;
        int c = cutter_wait(w, w->n_held - 1); /* pics[f % n_held] is free */
        if (c < 0) goto stop;
        if (c > 0) goto cut_failed;
        int r = st3d_video_read_picture(vid, w->pics[f % w->n_held], NULL, &pts, &err);
        if (r < 0) goto fail;
        if (r == 0) break;
        cutter_give(w, pts, st3d_now());
        f++;
    }
    int c = cutter_wait(w, 0);
    if (c < 0) goto stop;
    if (c > 0) goto cut_failed;
    if (f == 0) {
        st3d_fail(&err, ST3D_ERR_FORMAT, "%s: no frame could be decoded", s->paths[v]);
        goto fail;
    }
    if (w->start < f && !s->p.drop_tail) /* the short last clip, loop-padded */
        if (put_clip(s, w, (int)(f - w->start)) != 0) goto stop;
    st3d_video_free(vid);
    it.kind = ST3D_STREAM_END;
    it.n_clips = w->clips;
    it.n_frames = f;
    return put_item(s, &it);
cut_failed:
    err = w->cut_err;
fail:
    if (cutter_wait(w, 0) < 0) goto stop;
    w->failed = 0; /* the cutter is idle: its failure was this video's */
    st3d_video_free(vid);
    it.kind = ST3D_STREAM_FAIL;
    snprintf(it.message, sizeof it.message, "%s", err.msg);
    return put_item(s, &it);
stop:
    cutter_wait(w, 0);
    st3d_video_free(vid);
    return -1;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    st3d_clip_stream *s = w->s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int64_t v = s->stop ? s->n : s->next_video++;
        pthread_mutex_unlock(&s->mu);
        if (v >= s->n || run_video(s, w, v) != 0) break;
    }
    pthread_mutex_lock(&s->mu);
    s->running--;
    pthread_cond_signal(&s->cv_get);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

st3d_clip_stream *st3d_clip_stream_new(const char *const *paths, int64_t n,
                                       const st3d_stream_params *params, st3d_error *err) {
    st3d_stream_params p = params ? *params : st3d_stream_default_params();
    if (p.stride <= 0) p.stride = p.sample_duration;
    if (n < 0 || p.sample_duration < 1 || p.sample_duration > 4096 || p.sample_size < 1 ||
        p.sample_size > 4096 || p.n_threads < 1 || p.n_threads > 256 || p.queue_clips < 1 ||
        p.queue_clips > 4096 || p.decoder_threads < 0) {
        st3d_fail(err, ST3D_ERR_INVALID,
                  "clip stream: bad parameters (duration %d, size %d, threads %d, queue %d)",
                  p.sample_duration, p.sample_size, p.n_threads, p.queue_clips);
        return NULL;
    }
    st3d_clip_stream *s = st3d_calloc(1, sizeof *s, err);
    if (!s) return NULL;
    s->p = p;
    s->n = n;
    s->frame_bytes = (int64_t)3 * p.sample_size * p.sample_size;
    s->clip_bytes = s->frame_bytes * p.sample_duration;
    s->cfg.crop = ST3D_SCROP_CENTER;
    s->cfg.size = p.sample_size;
    st3d_spatial_make_lut(&s->cfg, p.value_scale, p.mean, p.std, 1, 1);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_put, NULL);
    pthread_cond_init(&s->cv_get, NULL);
    pthread_cond_init(&s->cv_go, NULL);
    s->paths = st3d_calloc(n ? (size_t)n : 1, sizeof *s->paths, err);
    s->slots = st3d_calloc((size_t)p.queue_clips, sizeof *s->slots, err);
    s->workers = st3d_calloc((size_t)p.n_threads, sizeof *s->workers, err);
    for (int i = 0; s->workers && i < p.n_threads; i++) { /* before any failure: free destroys */
        pthread_mutex_init(&s->workers[i].mu, NULL);
        pthread_cond_init(&s->workers[i].cv, NULL);
    }
    if (!s->paths || !s->slots || !s->workers) goto fail;
    for (int64_t i = 0; i < n; i++)
        if (!(s->paths[i] = strdup(paths[i]))) {
            st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
            goto fail;
        }
    for (int i = 0; i < p.queue_clips; i++)
        if (!(s->slots[i].data = st3d_malloc((size_t)s->clip_bytes, err)))
            goto fail;
    for (int i = 0; i < p.n_threads; i++) {
        worker *w = &s->workers[i];
        w->s = s;
        w->ring = st3d_malloc((size_t)(s->frame_bytes * p.sample_duration), err);
        w->ring_pts = st3d_calloc((size_t)p.sample_duration, sizeof(double), err);
        if (!w->ring || !w->ring_pts || !(w->conv = st3d_rgb_converter_new(err))) goto fail;
        for (int k = 0; k < HELD_MAX; k++)
            if (!(w->pics[k] = st3d_video_picture_new(err))) goto fail;
    }
    for (int i = 0; i < p.n_threads; i++) {
        if (pthread_create(&s->workers[i].cutter, NULL, cutter_main, &s->workers[i]) != 0) {
            st3d_fail(err, ST3D_ERR_BACKEND, "cannot start a clip cutting thread");
            goto fail;
        }
        s->workers[i].cutter_started = 1;
    }
    s->running = p.n_threads;
    for (int i = 0; i < p.n_threads; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            pthread_mutex_lock(&s->mu);
            s->running -= p.n_threads - i;
            pthread_mutex_unlock(&s->mu);
            st3d_fail(err, ST3D_ERR_BACKEND, "cannot start a decoder thread");
            goto fail;
        }
        s->workers[i].started = 1;
    }
    return s;
fail:
    st3d_clip_stream_free(s);
    return NULL;
}

void st3d_clip_stream_free(st3d_clip_stream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv_put);
    pthread_cond_broadcast(&s->cv_go);
    pthread_mutex_unlock(&s->mu);
    if (s->workers)
        for (int i = 0; i < s->p.n_threads; i++) {
            worker *w = &s->workers[i];
            if (w->started) pthread_join(w->thread, NULL); /* its cutter is idle now */
            pthread_mutex_lock(&w->mu);
            w->quit = 1;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
            if (w->cutter_started) pthread_join(w->cutter, NULL);
            pthread_cond_destroy(&w->cv);
            pthread_mutex_destroy(&w->mu);
            for (int k = 0; k < HELD_MAX; k++) st3d_video_picture_free(w->pics[k]);
            st3d_rgb_converter_free(w->conv);
            st3d_image_release(&w->rgb);
            st3d_spatial_work_free(&w->work);
            free(w->ring);
            free(w->ring_pts);
        }
    if (s->slots)
        for (int i = 0; i < s->p.queue_clips; i++) free(s->slots[i].data);
    if (s->paths)
        for (int64_t i = 0; i < s->n; i++) free(s->paths[i]);
    free(s->paths);
    free(s->slots);
    free(s->workers);
    pthread_cond_destroy(&s->cv_put);
    pthread_cond_destroy(&s->cv_get);
    pthread_cond_destroy(&s->cv_go);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int st3d_clip_stream_next(st3d_clip_stream *s, float *clip, st3d_stream_item *item,
                          st3d_error *err) {
    (void)err; /* every failure so far is a video's own (a FAIL item) */
    pthread_mutex_lock(&s->mu);
    while (!(s->count > 0 && s->slots[s->head].state == SLOT_READY) &&
           !(s->count == 0 && s->running == 0)) {
        if (s->held) { /* waiting for an item: the caller is not computing */
            s->held = 0;
            pthread_cond_broadcast(&s->cv_go);
        }
        pthread_cond_wait(&s->cv_get, &s->mu);
    }
    if (s->count == 0) { /* every thread finished and the queue is empty */
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    slot *sl = &s->slots[s->head];
    pthread_mutex_unlock(&s->mu);
    *item = sl->item;
    if (clip && sl->item.kind == ST3D_STREAM_CLIP) { /* bytes to NCDHW floats */
        int T = s->p.sample_duration;
        int64_t hw = (int64_t)s->p.sample_size * s->p.sample_size;
        for (int t = 0; t < T; t++)
            st3d_spatial_normalize(&s->cfg, sl->data + t * s->frame_bytes, hw, clip + t * hw,
                                   (int64_t)T * hw);
    }
    pthread_mutex_lock(&s->mu);
    sl->state = SLOT_FREE;
    s->head = (s->head + 1) % s->p.queue_clips;
    s->count--;
    pthread_cond_signal(&s->cv_put);
    pthread_mutex_unlock(&s->mu);
    return 1;
}

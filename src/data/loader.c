/*
 * loader.c - st3d_loader: worker threads decode and augment clips into a
 * bounded ring of batches that st3d_loader_next hands out in order.
 *
 * An epoch is a sequence of videos: the dataset order, shuffled from
 * (seed, epoch) when asked, then this shard's share the way PyTorch's
 * DistributedSampler takes it (padded by wrapping to a multiple of
 * shard_count, then every shard_count-th video from shard_index).  Each
 * video gives a known number of clips (1, or as many as TemporalEvenCrop /
 * SlidingWindow cut from its segment), so every clip has a fixed position in
 * the epoch's stream, and batch b is stream positions [b*B, (b+1)*B).  The
 * unit of work, an item, is a run of at most B clips of one video, so an
 * item touches at most two batches and a long video is shared by workers.
 *
 * Workers claim items in order, but only while every batch the item writes
 * to is within queue_batches of the batch the consumer reads next: memory is
 * queue_batches batches plus one clip's frames per worker.  A clip's random
 * choices come from a generator seeded by (seed, epoch, position, clip), so
 * the same seed gives the same batches whatever the thread schedule.
 *
 * An unreadable item is recorded once (a message the caller can pop, the
 * video remembered so later epochs skip it without retrying), counted, and
 * its clips left out of their batch, which then comes out smaller.
 *
 * Ring layout: slot r holds batch b with b % queue_batches == r; clips are
 * NCDHW float32, clip k of the slot at clips + k * 3 * T * H * W, where H x W
 * is S x S.
 *
 * Nocrop (ST3D_SCROP_NONE, main.py get_inference_utils with --inference_crop
 * nocrop, whose help says a mini-batch holds the clips of one video): clips
 * are their video's resized frames, H x W varies by video, so each video's
 * first clip starts a batch (its stream position rounded up to a multiple
 * of B, the positions skipped left empty): every item is then exactly one
 * batch, and its worker, the slot's only writer, sets the slot's H x W and
 * grows the slot to hold the item's clips before writing.  The consumer learns
 * H x W from st3d_loader_peek.  Other crops keep the dense stream above.
 *
 * Videos.  The loader keeps one st3d_video_cache for all workers (each
 * video's frame index and probed stream parameters, LRU, bounded in
 * entries and bytes), so a video file is demuxed for its index once while
 * it stays cached, not once per item; and each worker keeps its last few
 * videos open (LRU, bounded in count and in decoder memory), so an item
 * continuing a video that worker just read (the clips of a long video cut
 * by TemporalEvenCrop / SlidingWindow, ActivityNet segments of one file)
 * neither reopens it nor, when its first clip is a little ahead, decodes
 * again from the key frame.  After a video's last clip the decoder is
 * drained rather than fed further frames.  None of this changes a decoded
 * pixel (see src/io/video_decode.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "data/data.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { ITEM_TODO = 0, ITEM_BUSY = 1, ITEM_DONE = 2, ITEM_FAILED = 3 };

/* Bounds of the shared video cache (an entry is ~2.5 KB for a 10 s clip at
 * 25 fps, ~30 KB for a 2-minute video at 30 fps: the entry bound binds for
 * short clips, the byte bound for long videos) and of each worker's open
 * videos (their decoders' memory as st3d_video_memory estimates it). */
enum { VCACHE_ENTRIES = 4096, OPEN_VIDEOS = 4 };
#define VCACHE_BYTES ((size_t)32 << 20)
#define OPEN_VIDEO_BYTES ((size_t)48 << 20)

/* A video a worker keeps open between items. */
typedef struct open_video {
    st3d_video *v;              /* the decoder, where the last item left it (NULL: free) */
    char *path;                 /* its file, owned */
    uint64_t used;              /* worker's item counter at its last use */
} open_video;

/* Everything a worker keeps between items. */
typedef struct worker {
    struct st3d_loader *L;      /* owner */
    pthread_t thread;           /* its thread */
    st3d_image *frames;         /* decoded frames of the clip (sample_duration) */
    st3d_rect *rects;           /* frame folders: the part of each picture in frames */
    uint8_t **fptr;             /* frames[t].data, where video frames are decoded to */
    int64_t *tidx;              /* frame numbers of the item's clips */
    int64_t tidx_cap;           /* entries at tidx */
    st3d_spatial_work sw;       /* resize coefficients and buffers */
    open_video open[OPEN_VIDEOS]; /* videos kept open, least recently used evicted */
    uint64_t n_items;           /* items run (recency clock of open) */
} worker;

struct st3d_loader {
    const st3d_dataset *ds;     /* borrowed samples */
    st3d_loader_params p;       /* as given */
    st3d_temporal_cfg tcfg;     /* temporal part of p */
    st3d_spatial_cfg scfg;      /* spatial part of p, with its lookup table */
    int64_t clip_floats;        /* 3 * T * S * S */
    int per_video;              /* 1: nocrop: a batch holds one video's clips */
    int R;                      /* ring slots (queue_batches) */
    float **buf;                /* R slots of batch_size clips */
    int *slot_h, *slot_w;       /* R: height and width of the slot's clips */
    size_t *slot_cap;           /* R: floats at buf[r] */
    int64_t peeked;             /* batch st3d_loader_peek last gave (-1: none) */
    int64_t **labels;           /* R slots of batch_size labels */
    st3d_clip_info **info;      /* R slots of batch_size records */
    uint8_t **valid;            /* R slots of batch_size flags: clip written */
    /* the epoch's plan (guarded by mu) */
    int64_t epoch;              /* current epoch, -1 before the first */
    int64_t n_items;            /* items of this shard */
    int64_t *order;             /* dataset index per item */
    int64_t *pos;               /* its video's position in the unsharded order (seeds) */
    int64_t *clip_off;          /* first stream position per item, n_items + 1 */
    int64_t *item_n;            /* clips per item (nocrop: fewer than the next
                                   item's clip_off minus this one's, the gap) */
    int64_t *first_clip;        /* clip number (within its video) of the item's first clip */
    uint8_t *state;             /* ITEM_* per item */
    uint8_t *counted;           /* per dataset sample: skip counted this epoch */
    int64_t n_batches;          /* batches of the epoch */
    int64_t next_item;          /* next item to claim */
    int64_t consumer;           /* next batch st3d_loader_next returns */
    int64_t generation;         /* bumped when an epoch is abandoned */
    int busy;                   /* workers inside an item */
    int stop;                   /* 1: workers exit */
    uint8_t *bad;               /* per dataset sample: 1 when known unreadable */
    char **msgs;                /* unread messages (ring) */
    int64_t msg_head, msg_n, msg_cap; /* ring of msgs */
    st3d_loader_stats stats;    /* counters */
    pthread_mutex_t mu;         /* guards everything above marked so, and stats */
    pthread_cond_t cv_work;     /* workers wait here for claimable items */
    pthread_cond_t cv_ready;    /* the consumer and start_epoch wait here */
    worker *workers;            /* n_threads */
    int n_started;              /* threads running */
    st3d_video_cache *vcache;   /* frame indexes and stream parameters, shared (own lock) */
};

st3d_loader_params st3d_loader_default_params(void) {
    st3d_loader_params p;
    memset(&p, 0, sizeof p);
    p.batch_size = 128; /* the original opts.py defaults */
    p.n_threads = 4;
    p.queue_batches = 2;
    p.sample_size = 112;
    p.sample_duration = 16;
    p.sample_t_stride = 1;
    p.t_crop = ST3D_TCROP_RANDOM;
    p.n_clips = 3;
    p.window_stride = 16;
    p.crop = ST3D_SCROP_RANDOM;
    p.train_crop_min_scale = 0.25f;
    p.train_crop_min_ratio = 0.75f;
    p.hflip = 1;
    p.value_scale = 1.0f;
    st3d_mean_std("kinetics", 1.0f, p.mean, p.std, NULL);
    p.mean_norm = 1;
    p.std_norm = 1;
    p.shuffle = 1;
    p.seed = 1;
    p.shard_count = 1;
    p.decoder_threads = 1;
    return p;
}

static void *worker_main(void *arg);

void st3d_loader_batch_shape(const st3d_loader *L, int64_t shape[5]) {
    shape[0] = L->p.batch_size, shape[1] = 3, shape[2] = L->p.sample_duration;
    shape[3] = shape[4] = L->p.sample_size;
}

/* Makes slot r hold n clips of h x w frames (nocrop: called by the worker
 * of the slot's one item, before it writes). */
static int fit_slot(st3d_loader *L, int r, int64_t clips, int h, int w, st3d_error *err) {
    int64_t n = st3d_mul_checked(st3d_mul_checked((int64_t)3 * L->p.sample_duration * h, w), clips);
    if (n < 0) return st3d_fail(err, ST3D_ERR_NOMEM, "loader: batch of %dx%d clips too large", w, h);
    if ((size_t)n > L->slot_cap[r]) {
        st3d_aligned_free(L->buf[r]);
        L->slot_cap[r] = 0;
        if (!(L->buf[r] = st3d_aligned_alloc((size_t)n * sizeof(float), err))) return -1;
        L->slot_cap[r] = (size_t)n;
    }
    L->slot_h[r] = h, L->slot_w[r] = w;
    return 0;
}

st3d_loader *st3d_loader_new(const st3d_dataset *ds, const st3d_loader_params *params,
                             st3d_error *err) {
    const st3d_loader_params *p = params;
    if (p->batch_size < 1 || p->n_threads < 1 || p->queue_batches < 1 || p->sample_size < 1 ||
        p->sample_duration < 1 || p->sample_t_stride < 1 || p->shard_count < 1 ||
        p->shard_index < 0 || p->shard_index >= p->shard_count || p->n_threads > 256) {
        st3d_fail(err, ST3D_ERR_INVALID, "loader: invalid parameters (batch %d, threads %d, "
                  "queue %d, size %d, duration %d, t stride %d, shard %d of %d)",
                  p->batch_size, p->n_threads, p->queue_batches, p->sample_size,
                  p->sample_duration, p->sample_t_stride, p->shard_index, p->shard_count);
        return NULL;
    }
    if (p->crop == ST3D_SCROP_RANDOM &&
        !(p->train_crop_min_scale > 0 && p->train_crop_min_scale <= 1 &&
          p->train_crop_min_ratio > 0)) {
        st3d_fail(err, ST3D_ERR_INVALID, "loader: crop min scale must be in (0, 1] and min ratio > 0");
        return NULL;
    }
    st3d_loader *L = st3d_calloc(1, sizeof *L, err);
    if (!L) return NULL;
    L->ds = ds;
    L->p = *p;
    L->tcfg = (st3d_temporal_cfg){p->t_crop, p->sample_duration, p->sample_t_stride, p->n_clips,
                                  p->window_stride};
    L->scfg.crop = p->crop;
    L->scfg.size = p->sample_size;
    L->scfg.min_scale = p->train_crop_min_scale;
    L->scfg.min_ratio = p->train_crop_min_ratio;
    L->scfg.hflip = p->hflip;
    L->scfg.colorjitter = p->colorjitter;
    L->scfg.jitter[0] = p->jitter_brightness, L->scfg.jitter[1] = p->jitter_contrast;
    L->scfg.jitter[2] = p->jitter_saturation, L->scfg.jitter[3] = p->jitter_hue;
    st3d_spatial_make_lut(&L->scfg, p->value_scale, p->mean, p->std, p->mean_norm, p->std_norm);
    L->clip_floats = (int64_t)3 * p->sample_duration * p->sample_size * p->sample_size;
    L->per_video = p->crop == ST3D_SCROP_NONE;
    L->R = p->queue_batches < 2 ? 2 : p->queue_batches; /* an item spans <= 2 batches */
    L->epoch = -1;
    L->peeked = -1;
    L->stats.epoch = -1;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_ready, NULL);
    L->buf = st3d_calloc((size_t)L->R, sizeof *L->buf, err);
    L->labels = st3d_calloc((size_t)L->R, sizeof *L->labels, err);
    L->info = st3d_calloc((size_t)L->R, sizeof *L->info, err);
    L->valid = st3d_calloc((size_t)L->R, sizeof *L->valid, err);
    L->slot_h = st3d_calloc((size_t)L->R, sizeof *L->slot_h, err);
    L->slot_w = st3d_calloc((size_t)L->R, sizeof *L->slot_w, err);
    L->slot_cap = st3d_calloc((size_t)L->R, sizeof *L->slot_cap, err);
    L->bad = st3d_calloc((size_t)(st3d_dataset_size(ds) + 1), 1, err);
    L->counted = st3d_calloc((size_t)(st3d_dataset_size(ds) + 1), 1, err);
    L->workers = st3d_calloc((size_t)p->n_threads, sizeof *L->workers, err);
    L->vcache = st3d_video_cache_new(VCACHE_ENTRIES, VCACHE_BYTES, err);
    if (!L->buf || !L->labels || !L->info || !L->valid || !L->slot_h || !L->slot_w ||
        !L->slot_cap || !L->bad || !L->counted || !L->workers || !L->vcache)
        goto fail;
    for (int r = 0; r < L->R; r++) {
        size_t nf = (size_t)p->batch_size * (size_t)L->clip_floats;
        if (nf / (size_t)p->batch_size != (size_t)L->clip_floats) {
            st3d_fail(err, ST3D_ERR_NOMEM, "loader: batch too large");
            goto fail;
        }
        if (!L->per_video) { /* nocrop: sized by the workers, video by video */
            if (!(L->buf[r] = st3d_aligned_alloc(nf * sizeof(float), err))) goto fail;
            L->slot_cap[r] = nf;
            L->slot_h[r] = L->slot_w[r] = p->sample_size;
        }
        L->labels[r] = st3d_calloc((size_t)p->batch_size, sizeof(int64_t), err);
        L->info[r] = st3d_calloc((size_t)p->batch_size, sizeof(st3d_clip_info), err);
        L->valid[r] = st3d_calloc((size_t)p->batch_size, 1, err);
        if (!L->labels[r] || !L->info[r] || !L->valid[r]) goto fail;
    }
    return L;
fail:
    st3d_loader_free(L);
    return NULL;
}

void st3d_loader_free(st3d_loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->n_started; i++) pthread_join(L->workers[i].thread, NULL);
    if (L->workers)
        for (int i = 0; i < L->p.n_threads; i++) {
            worker *w = &L->workers[i];
            for (int k = 0; w->frames && k < L->p.sample_duration; k++)
                st3d_image_release(&w->frames[k]);
            free(w->frames), free(w->fptr), free(w->rects), free(w->tidx);
            st3d_spatial_work_free(&w->sw);
            for (int k = 0; k < OPEN_VIDEOS; k++)
                st3d_video_free(w->open[k].v), free(w->open[k].path);
        }
    for (int r = 0; r < L->R; r++) {
        if (L->buf) st3d_aligned_free(L->buf[r]);
        if (L->labels) free(L->labels[r]);
        if (L->info) free(L->info[r]);
        if (L->valid) free(L->valid[r]);
    }
    for (int64_t i = 0; i < L->msg_n; i++) free(L->msgs[(L->msg_head + i) % L->msg_cap]);
    free(L->msgs);
    free(L->buf), free(L->labels), free(L->info), free(L->valid), free(L->bad), free(L->workers);
    free(L->slot_h), free(L->slot_w), free(L->slot_cap);
    free(L->order), free(L->pos), free(L->clip_off), free(L->first_clip), free(L->state);
    free(L->item_n), free(L->counted);
    st3d_video_cache_free(L->vcache);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_ready);
    free(L);
}

/* Number of clips item (dataset index i) gives. */
static int64_t clips_of(const st3d_loader *L, int64_t i, st3d_error *err) {
    st3d_sample_info s;
    st3d_dataset_sample(L->ds, i, &s);
    if (L->tcfg.mode != ST3D_TCROP_EVEN && L->tcfg.mode != ST3D_TCROP_SLIDING) return 1;
    return st3d_temporal_clips(s.begin, s.end, &L->tcfg, NULL, NULL, 0, err);
}

int st3d_loader_start_epoch(st3d_loader *L, int64_t epoch, st3d_error *err) {
    int64_t N = st3d_dataset_size(L->ds);
    if (N == 0) return st3d_fail(err, ST3D_ERR_INVALID, "loader: the dataset has no samples");
    pthread_mutex_lock(&L->mu);
    /* abandon the current epoch: no more claims, wait for items in flight */
    L->generation++;
    L->next_item = L->n_items;
    while (L->busy > 0) pthread_cond_wait(&L->cv_ready, &L->mu);
    int64_t S = L->p.shard_count, per = (N + S - 1) / S, B = L->p.batch_size;
    int64_t *order = st3d_malloc((size_t)N * sizeof *order, err);
    int64_t *vids = st3d_malloc((size_t)per * sizeof *vids, err);
    int64_t *vclips = st3d_malloc((size_t)per * sizeof *vclips, err);
    int64_t *items = NULL, *pos = NULL, *off = NULL, *first = NULL, *inum = NULL;
    uint8_t *state = NULL;
    if (!order || !vids || !vclips) goto nomem;
    for (int64_t i = 0; i < N; i++) order[i] = i;
    if (L->p.shuffle) {
        st3d_rng rng = st3d_rng_for(L->p.seed, (uint64_t)epoch, 0x5348554646ull, 0);
        for (int64_t i = N - 1; i > 0; i--) {
            int64_t j = st3d_rng_int(&rng, 0, i), t = order[i];
            order[i] = order[j], order[j] = t;
        }
    }
    /* DistributedSampler: pad by wrapping to per * S, take every S-th
     * (without padding, the last shares are one sample shorter) */
    int64_t n_items = 0;
    if (L->p.shard_no_pad) per = L->p.shard_index < N ? (N - L->p.shard_index + S - 1) / S : 0;
    for (int64_t k = 0; k < per; k++) {
        vids[k] = order[(L->p.shard_index + k * S) % N];
        vclips[k] = clips_of(L, vids[k], err);
        if (vclips[k] < 0) vclips[k] = 0; /* an empty segment gives no clip */
        n_items += vclips[k] > 0 ? (vclips[k] + B - 1) / B : 1;
    }
    items = st3d_malloc((size_t)n_items * sizeof *items, err);
    pos = st3d_malloc((size_t)n_items * sizeof *pos, err);
    first = st3d_malloc((size_t)n_items * sizeof *first, err);
    off = st3d_malloc((size_t)(n_items + 1) * sizeof *off, err);
    inum = st3d_malloc((size_t)n_items * sizeof *inum, err);
    state = st3d_calloc((size_t)n_items, 1, err);
    if (!items || !pos || !first || !off || !inum || !state) goto nomem;
    int64_t total = 0, it = 0;
    for (int64_t k = 0; k < per; k++) {
        int64_t c = 0;
        if (L->per_video) total = (total + B - 1) / B * B; /* a batch of its own */
        do {
            int64_t m = vclips[k] - c < B ? vclips[k] - c : B;
            items[it] = vids[k], pos[it] = L->p.shard_index + k * S, first[it] = c;
            off[it] = total, inum[it] = m;
            total += m, c += m, it++;
        } while (c < vclips[k]);
    }
    off[n_items] = total;
    free(order), free(vids), free(vclips);
    free(L->order), free(L->pos), free(L->clip_off), free(L->first_clip), free(L->state);
    free(L->item_n);
    L->order = items, L->pos = pos, L->clip_off = off, L->first_clip = first, L->state = state;
    L->item_n = inum;
    L->n_items = n_items;
    memset(L->counted, 0, (size_t)N);
    L->n_batches = L->p.drop_last ? total / B : (total + B - 1) / B;
    L->next_item = 0;
    L->consumer = 0;
    L->peeked = -1;
    L->epoch = epoch;
    L->stats.epoch = epoch;
    L->stats.n_batches = L->n_batches;
    L->stats.n_clips = 0;
    L->stats.n_skipped = 0;
    for (int r = 0; r < L->R; r++) memset(L->valid[r], 0, (size_t)B);
    while (L->n_started < L->p.n_threads) {
        worker *w = &L->workers[L->n_started];
        w->L = L;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            if (L->n_started > 0) break; /* run with fewer */
            pthread_mutex_unlock(&L->mu);
            return st3d_fail(err, ST3D_ERR_BACKEND, "loader: cannot start a worker thread");
        }
        L->n_started++;
    }
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return 0;
nomem:
    free(order), free(vids), free(vclips), free(items), free(pos), free(first), free(off);
    free(inum), free(state);
    pthread_mutex_unlock(&L->mu);
    return -1;
}

/* Ensures w->frames has one picture per clip frame. */
static int worker_frames(worker *w, int T, st3d_error *err) {
    if (!w->frames && !(w->frames = st3d_calloc((size_t)T, sizeof *w->frames, err))) return -1;
    if (!w->fptr && !(w->fptr = st3d_calloc((size_t)T, sizeof *w->fptr, err))) return -1;
    if (!w->rects && !(w->rects = st3d_calloc((size_t)T, sizeof *w->rects, err))) return -1;
    return 0;
}

/* The video at path, open: one this worker kept (when the file is
 * unchanged), else a new one through the loader's cache. */
static st3d_video *take_video(worker *w, const char *path, st3d_error *err) {
    for (int k = 0; k < OPEN_VIDEOS; k++) {
        open_video *o = &w->open[k];
        if (!o->v || strcmp(o->path, path)) continue;
        st3d_video *v = o->v;
        st3d_file_id id;
        const st3d_file_id *was = st3d_video_file_id(v);
        free(o->path);
        memset(o, 0, sizeof *o);
        if (st3d_file_identity(path, &id) == 0 && id.dev == was->dev && id.ino == was->ino &&
            id.size == was->size && id.mtime_ns == was->mtime_ns)
            return v;
        st3d_video_free(v); /* replaced on disk: open it afresh */
        break;
    }
    st3d_video_params vp = st3d_video_default_params();
    vp.short_side = w->L->p.video_short_side;
    vp.threads = w->L->p.decoder_threads;
    return st3d_video_open_cached(path, &vp, w->L->vcache, err);
}

/* Keeps v open for a later item (evicting the least recently used beyond
 * OPEN_VIDEOS or OPEN_VIDEO_BYTES), or frees it. */
static void keep_video(worker *w, const char *path, st3d_video *v) {
    size_t mem = st3d_video_memory(v);
    char *p = mem <= OPEN_VIDEO_BYTES ? strdup(path) : NULL;
    if (!p) {
        st3d_video_free(v);
        return;
    }
    for (;;) {
        size_t total = mem;
        int n = 0, lru = -1;
        for (int k = 0; k < OPEN_VIDEOS; k++)
            if (w->open[k].v) {
                total += st3d_video_memory(w->open[k].v), n++;
                if (lru < 0 || w->open[k].used < w->open[lru].used) lru = k;
            }
        if (n < OPEN_VIDEOS && total <= OPEN_VIDEO_BYTES) break;
        st3d_video_free(w->open[lru].v);
        free(w->open[lru].path);
        memset(&w->open[lru], 0, sizeof w->open[lru]);
    }
    for (int k = 0; k < OPEN_VIDEOS; k++)
        if (!w->open[k].v) {
            w->open[k] = (open_video){v, p, w->n_items};
            return;
        }
}

/* A frame folder's picture number f of sample s: its path, or why not. */
static int frame_file(char *path, size_t cap, const st3d_sample_info *s, int64_t f,
                      st3d_error *err) {
    if (st3d_frame_path(path, cap, s->path, f) != 0)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: path too long", s->path);
    if (!st3d_is_file(path)) /* say which frame of which segment is missing */
        return st3d_fail(err, ST3D_ERR_IO, "%s: missing frame %lld of the segment [%lld, %lld)",
                         path, (long long)f, (long long)s->begin, (long long)s->end);
    return 0;
}

/* Decodes the frames numbered fr[0..T) of sample s into w->frames; last: 1
 * when no later clip of this video follows (videos only).  From a frame
 * folder only the rectangle `want` of each w x h picture (want.w == 0: all)
 * is decoded, into w->rects[t]; a picture of another size is an error;
 * first is frame fr[0], already open. */
static int load_frames(worker *w, const st3d_sample_info *s, st3d_jpeg *first, st3d_video **vid,
                       const int64_t *fr, int T, int last, st3d_rect want, st3d_error *err) {
    if (first) {
        char path[4200];
        for (int t = 0; t < T; t++) {
            int dup = -1;
            for (int u = 0; u < t && dup < 0; u++)
                if (fr[u] == fr[t]) dup = u;
            if (dup >= 0) { /* loop padding repeats frames: copy, don't decode */
                st3d_image *d = &w->frames[t], *o = &w->frames[dup];
                if (st3d_image_reserve(d, o->width, o->height, err) != 0) return -1;
                memcpy(d->data, o->data, (size_t)o->width * o->height * 3);
                w->rects[t] = w->rects[dup];
                continue;
            }
            if (t == 0) {
                if (st3d_jpeg_decode(first, want, &w->frames[0], &w->rects[0], err) != 0)
                    return -1;
                continue;
            }
            if (frame_file(path, sizeof path, s, fr[t], err) != 0) return -1;
            if (st3d_jpeg_read_rect(path, want, &w->frames[t], &w->rects[t], err) != 0) return -1;
            if (w->rects[t].full_w != want.full_w || w->rects[t].full_h != want.full_h)
                return st3d_fail(err, ST3D_ERR_FORMAT, "%s: picture is %dx%d, frame %lld of the "
                                 "clip %dx%d", path, w->rects[t].full_w, w->rects[t].full_h,
                                 (long long)fr[0], want.full_w, want.full_h);
        }
        return 0;
    }
    if (!*vid && !(*vid = take_video(w, s->path, err))) return -1;
    const st3d_video_info *vi = st3d_video_get_info(*vid);
    int64_t idx[1024];
    if (T > 1024) return st3d_fail(err, ST3D_ERR_INVALID, "sample duration %d too long", T);
    for (int t = 0; t < T; t++) {
        idx[t] = fr[t] - 1; /* frame numbers are 1-based */
        if (st3d_image_reserve(&w->frames[t], vi->width, vi->height, err) != 0) return -1;
        w->fptr[t] = w->frames[t].data;
    }
    return st3d_video_read_frames_to(*vid, idx, T, w->fptr, last, err);
}

/* Produces every clip of item k into the ring.  Returns 0 or -1. */
static int run_item(worker *w, int64_t k, int64_t epoch, st3d_error *err) {
    st3d_loader *L = w->L;
    int T = L->p.sample_duration;
    int64_t B = L->p.batch_size;
    int64_t di = L->order[k];
    st3d_sample_info s;
    st3d_dataset_sample(L->ds, di, &s);
    int folder = st3d_dataset_is_folder(L->ds, di);
    int64_t c0 = L->clip_off[k], nc = L->item_n[k], fc = L->first_clip[k];
    if (nc <= 0) return 0;
    if (worker_frames(w, T, err) != 0) return -1;
    int64_t all = st3d_temporal_clips(s.begin, s.end, &L->tcfg, NULL, NULL, 0, err);
    if (all < fc + nc)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: clip count changed", s.path);
    if (all * T > w->tidx_cap) {
        int64_t *p = st3d_malloc((size_t)(all * T) * sizeof *p, err);
        if (!p) return -1;
        free(w->tidx);
        w->tidx = p, w->tidx_cap = all * T;
    }
    st3d_rng trng = st3d_rng_for(L->p.seed, (uint64_t)epoch, (uint64_t)L->pos[k], 0x54454d50ull);
    if (st3d_temporal_clips(s.begin, s.end, &L->tcfg, &trng, w->tidx, all, err) < 0) return -1;
    st3d_video *vid = NULL;
    int rc = 0;
    for (int64_t c = 0; c < nc && rc == 0; c++) {
        int64_t spos = c0 + c, b = spos / B, slot_i = spos % B;
        if (b >= L->n_batches) break; /* dropped by drop_last */
        int r = (int)(b % L->R);
        const int64_t *fr = w->tidx + (fc + c) * T;
        st3d_rng srng = st3d_rng_for(L->p.seed, (uint64_t)epoch, (uint64_t)L->pos[k],
                                     (uint64_t)(fc + c) + 1);
        st3d_spatial_choice ch;
        st3d_rect want = {0};
        st3d_jpeg *first = NULL;
        char first_path[4200];
        if (folder) { /* the crop first, from the first frame's header: decode only it */
            if ((rc = frame_file(first_path, sizeof first_path, &s, fr[0], err)) != 0) break;
            if (!(first = st3d_jpeg_open(first_path, &want.full_w, &want.full_h, err))) {
                rc = -1;
                break;
            }
            st3d_spatial_draw(&L->scfg, want.full_w, want.full_h, &srng, &ch);
            if (L->scfg.crop != ST3D_SCROP_CENTER && L->scfg.crop != ST3D_SCROP_NONE)
                want.x = ch.crop_x, want.y = ch.crop_y, want.w = ch.crop_w, want.h = ch.crop_h;
        }
        rc = load_frames(w, &s, first, &vid, fr, T, fc + c + 1 == all, want, err);
        st3d_jpeg_close(first);
        if (rc != 0) break;
        if (!folder)
            st3d_spatial_draw(&L->scfg, w->frames[0].width, w->frames[0].height, &srng, &ch);
        if (L->per_video && c == 0) { /* this item is the whole batch */
            if ((rc = fit_slot(L, r, nc, ch.out_h, ch.out_w, err)) != 0) break;
        } else if (ch.out_h != L->slot_h[r] || ch.out_w != L->slot_w[r]) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: clip %lld: frames of another size",
                           s.path, (long long)(fc + c));
            break;
        }
        int64_t pixels = (int64_t)ch.out_h * ch.out_w, plane = T * pixels;
        float *dst = L->buf[r] + slot_i * 3 * plane;
        int slot[1024]; /* where frame t of the clip goes: t, or a random permutation */
        for (int t = 0; t < T; t++) slot[t] = t;
        if (L->p.shuffle_frames) {
            st3d_rng frng = st3d_rng_for(L->p.seed, (uint64_t)epoch, (uint64_t)L->pos[k],
                                         ((uint64_t)(fc + c) << 32) ^ 0x53484646ull /* "SHFF" */);
            for (int t = T - 1; t > 0; t--) {
                int j = (int)st3d_rng_int(&frng, 0, t), tmp = slot[t];
                slot[t] = slot[j], slot[j] = tmp;
            }
        }
        for (int t = 0; t < T && rc == 0; t++) {
            st3d_spatial_choice cht = ch; /* in the decoded rectangle's coordinates */
            if (folder) cht.crop_x -= w->rects[t].x, cht.crop_y -= w->rects[t].y;
            rc = st3d_spatial_apply(&L->scfg, &cht, &w->frames[t], &w->sw, dst + slot[t] * pixels,
                                    plane, err);
        }
        if (rc != 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            st3d_fail(err, err->code, "%s: %s", s.path, msg);
            break;
        }
        st3d_clip_info *ci = &L->info[r][slot_i];
        int64_t lo = fr[0], hi = fr[0];
        for (int t = 1; t < T; t++) {
            if (fr[t] < lo) lo = fr[t];
            if (fr[t] > hi) hi = fr[t];
        }
        ci->sample = di, ci->begin = lo, ci->end = hi + 1, ci->clip = (int)(fc + c);
        ci->crop_x = ch.crop_x, ci->crop_y = ch.crop_y, ci->crop_w = ch.crop_w, ci->crop_h = ch.crop_h;
        ci->flipped = ch.flip;
        for (int j = 0; j < 4; j++) ci->jitter[j] = ch.factor[j], ci->jitter_order[j] = ch.order[j];
        L->labels[r][slot_i] = s.label;
        L->valid[r][slot_i] = 1;
    }
    w->n_items++;
    if (vid && rc == 0) keep_video(w, s.path, vid);
    else st3d_video_free(vid);
    if (rc != 0) /* withdraw the clips already written */
        for (int64_t c = 0; c < nc; c++) {
            int64_t spos = c0 + c, b = spos / B;
            if (b < L->n_batches) L->valid[b % L->R][spos % B] = 0;
        }
    return rc;
}

static void push_message(st3d_loader *L, const char *msg) {
    if (L->msg_n == L->msg_cap) {
        int64_t cap = L->msg_cap ? L->msg_cap * 2 : 16;
        char **m = malloc((size_t)cap * sizeof *m);
        if (!m) return;
        for (int64_t i = 0; i < L->msg_n; i++) m[i] = L->msgs[(L->msg_head + i) % L->msg_cap];
        free(L->msgs);
        L->msgs = m, L->msg_cap = cap, L->msg_head = 0;
    }
    char *s = strdup(msg);
    if (!s) return;
    L->msgs[(L->msg_head + L->msg_n) % L->msg_cap] = s;
    L->msg_n++;
}

/* Last batch item k writes to. */
static int64_t last_batch(const st3d_loader *L, int64_t k) {
    int64_t e = L->clip_off[k] + L->item_n[k];
    return e > L->clip_off[k] ? (e - 1) / L->p.batch_size : L->clip_off[k] / L->p.batch_size;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    st3d_loader *L = w->L;
    pthread_mutex_lock(&L->mu);
    while (!L->stop) {
        int64_t k = L->next_item;
        if (k >= L->n_items || last_batch(L, k) >= L->consumer + L->R) {
            pthread_cond_wait(&L->cv_work, &L->mu);
            continue;
        }
        L->next_item++;
        int64_t gen = L->generation, epoch = L->epoch, di = L->order[k];
        if (L->bad[di] || L->clip_off[k] / L->p.batch_size >= L->n_batches) {
            L->state[k] = L->bad[di] ? ITEM_FAILED : ITEM_DONE;
            if (L->bad[di] && !L->counted[di]) {
                L->counted[di] = 1;
                L->stats.n_skipped++;
            }
            pthread_cond_broadcast(&L->cv_ready);
            continue;
        }
        L->state[k] = ITEM_BUSY;
        L->busy++;
        pthread_mutex_unlock(&L->mu);
        st3d_error err;
        st3d_error_clear(&err);
        double t0 = st3d_now();
        int rc = run_item(w, k, epoch, &err);
        double dt = st3d_now() - t0;
        pthread_mutex_lock(&L->mu);
        L->busy--;
        L->stats.busy_seconds += dt;
        if (gen == L->generation) {
            L->state[k] = rc == 0 ? ITEM_DONE : ITEM_FAILED;
            if (rc != 0) {
                if (!L->counted[di]) {
                    L->counted[di] = 1;
                    L->stats.n_skipped++;
                }
                if (!L->bad[di]) {
                    L->bad[di] = 1;
                    L->stats.n_skipped_total++;
                    push_message(L, err.msg);
                }
            }
        }
        pthread_cond_broadcast(&L->cv_ready);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* First item whose clips reach stream position p (clip_off is sorted; a
 * nocrop gap counts as its preceding item's). */
static int64_t item_at(const st3d_loader *L, int64_t p) {
    int64_t lo = 0, hi = L->n_items;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (L->clip_off[mid + 1] <= p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Waits until every item of the consumer's batch is done; fills the
 * batch's stream positions [*p0, *p1).  Returns 1, 0 at the end of the
 * epoch, -1 before the first epoch. */
static int wait_batch(st3d_loader *L, int64_t *p0, int64_t *p1, st3d_error *err) {
    pthread_mutex_lock(&L->mu);
    if (L->epoch < 0) {
        pthread_mutex_unlock(&L->mu);
        return st3d_fail(err, ST3D_ERR_INVALID, "loader: st3d_loader_start_epoch was not called");
    }
    if (L->consumer >= L->n_batches) {
        pthread_mutex_unlock(&L->mu);
        return 0;
    }
    int64_t B = L->p.batch_size, b = L->consumer;
    int64_t total = L->clip_off[L->n_items];
    *p0 = b * B, *p1 = (b + 1) * B < total ? (b + 1) * B : total;
    int64_t k0 = item_at(L, *p0), k1 = item_at(L, *p1 - 1);
    for (int64_t k = k0; k <= k1 && k < L->n_items; k++)
        while (L->state[k] < ITEM_DONE) pthread_cond_wait(&L->cv_ready, &L->mu);
    pthread_mutex_unlock(&L->mu);
    return 1;
}

int st3d_loader_peek(st3d_loader *L, int64_t shape[5], st3d_error *err) {
    int64_t p0, p1;
    int got = wait_batch(L, &p0, &p1, err);
    if (got <= 0) return got;
    int r = (int)(L->consumer % L->R), m = 0;
    for (int64_t j = 0; j < p1 - p0; j++) m += L->valid[r][j];
    shape[0] = m, shape[1] = 3, shape[2] = L->p.sample_duration;
    shape[3] = L->slot_h[r] ? L->slot_h[r] : L->p.sample_size;
    shape[4] = L->slot_w[r] ? L->slot_w[r] : L->p.sample_size;
    L->peeked = L->consumer;
    return 1;
}

int st3d_loader_next(st3d_loader *L, float *clips, int64_t *labels, st3d_clip_info *info, int *n,
                     st3d_error *err) {
    *n = 0;
    int64_t p0, p1;
    int got = wait_batch(L, &p0, &p1, err);
    if (got <= 0) return got;
    int r = (int)(L->consumer % L->R);
    if (L->per_video && L->peeked != L->consumer)
        return st3d_fail(err, ST3D_ERR_INVALID, "loader: nocrop batches vary in size: "
                         "st3d_loader_peek each one before st3d_loader_next");
    size_t per = (size_t)3 * (size_t)L->p.sample_duration * (size_t)L->slot_h[r] * (size_t)L->slot_w[r];
    int m = 0;
    for (int64_t j = 0; j < p1 - p0; j++) {
        if (!L->valid[r][j]) continue;
        memcpy(clips + (size_t)m * per, L->buf[r] + (size_t)j * per, per * sizeof(float));
        if (labels) labels[m] = L->labels[r][j];
        if (info) info[m] = L->info[r][j];
        L->valid[r][j] = 0;
        m++;
    }
    pthread_mutex_lock(&L->mu);
    L->consumer++;
    L->stats.n_clips += m;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    *n = m;
    return 1;
}

int st3d_loader_pop_message(st3d_loader *L, char *buf, size_t cap) {
    pthread_mutex_lock(&L->mu);
    int got = 0;
    if (L->msg_n > 0) {
        char *m = L->msgs[L->msg_head];
        L->msg_head = (L->msg_head + 1) % L->msg_cap;
        L->msg_n--;
        if (cap) snprintf(buf, cap, "%s", m);
        free(m);
        got = 1;
    }
    pthread_mutex_unlock(&L->mu);
    return got;
}

void st3d_loader_get_stats(const st3d_loader *L, st3d_loader_stats *stats) {
    pthread_mutex_lock((pthread_mutex_t *)&L->mu);
    *stats = L->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&L->mu);
}

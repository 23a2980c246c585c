/*
 * classify.c - st3d_classify_stream: the clips of a st3d_clip_stream through
 * the network in batches, results handed back item by item in the stream's
 * order (the companion tool's classify_video, over a whole list of videos).
 *
 * Items are gathered in arrival order: a clip's pixels go to the next slot
 * of the batch, every item (clip or not) to a pending list.  When the batch
 * is full, or the stream ends, the batch runs (logits and pooled features
 * at once) and the pending items are handed to fn in order.  An item that
 * is not a clip, met while no clip is pending, is handed over at once, so a
 * video's END is not held back by clips that are not there yet.  The
 * pending list is bounded: when it fills with items that are not clips,
 * the batch runs part-full.
 *
 * Shapes: batch x (3 x T x S x S) in, logits batch x n_classes, features
 * batch x feature_dim out; scores = softmax(logits) per clip.  Every
 * forward has the full batch shape (a part-full batch is padded).  With the
 * stream's pause_for_compute, its decoders are held during each forward
 * (clip_stream.c says why).
 */
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What a run holds. */
typedef struct run_state {
    st3d_exec *exec;         /* plans (borrowed) */
    st3d_clip_stream *stream; /* the clips (borrowed) */
    int64_t shape[5];        /* a full batch: {B, 3, T, S, S} */
    int64_t clip_floats;     /* 3 * T * S * S */
    int n_classes;           /* fc outputs */
    int feature_dim;         /* fc inputs */
    float *x;                /* B clips */
    float *logits;           /* B x n_classes */
    float *scores;           /* B x n_classes */
    float *features;         /* B x feature_dim */
    st3d_stream_item *items; /* pending items, in order */
    int n_items, cap_items;  /* pending, room */
    int n_clips;             /* clips among them (filled batch slots) */
    double network_s;        /* seconds in st3d_exec_forward so far */
    double waiting_s;        /* seconds in st3d_clip_stream_next so far */
    st3d_clip_fn fn;         /* receiver */
    void *user;              /* its argument */
} run_state;

/* softmax of n values, max subtracted first (as torch.softmax) */
static void softmax(const float *x, float *y, int n) {
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += y[i] = expf(x[i] - m);
    for (int i = 0; i < n; i++) y[i] = (float)(y[i] / sum);
}

/* Runs the batch (if it holds clips) and hands every pending item over. */
static int flush(run_state *r, st3d_error *err) {
    if (r->n_clips > 0) {
        /* a part-full batch (the last) runs at the full shape, zeros after
         * its clips: one plan, built once, whatever the videos' lengths
         * (a second shape would build a second plan with its own weights
         * and activations).  Eval mode treats every clip on its own. */
        if (r->n_clips < r->shape[0])
            memset(r->x + r->n_clips * r->clip_floats, 0,
                   (size_t)((r->shape[0] - r->n_clips) * r->clip_floats) * sizeof(float));
        int hold = st3d_clip_stream_get_params(r->stream)->pause_for_compute;
        if (hold) st3d_clip_stream_hold(r->stream, 1);
        double t0 = st3d_now();
        int rc = st3d_exec_forward(r->exec, r->x, r->shape, r->logits, r->features, err);
        r->network_s += st3d_now() - t0;
        if (hold) st3d_clip_stream_hold(r->stream, 0);
        if (rc != 0) return -1;
        for (int i = 0; i < r->n_clips; i++)
            softmax(r->logits + (int64_t)i * r->n_classes, r->scores + (int64_t)i * r->n_classes,
                    r->n_classes);
    }
    int k = 0;
    for (int i = 0; i < r->n_items; i++) {
        st3d_clip_result res = {&r->items[i], NULL, NULL, NULL, r->network_s, r->waiting_s};
        if (r->items[i].kind == ST3D_STREAM_CLIP) {
            res.logits = r->logits + (int64_t)k * r->n_classes;
            res.scores = r->scores + (int64_t)k * r->n_classes;
            res.features = r->features + (int64_t)k * r->feature_dim;
            k++;
        }
        if (r->fn(&res, r->user) != 0)
            return st3d_fail(err, ST3D_ERR_INVALID, "classification stopped by its caller");
    }
    r->n_items = r->n_clips = 0;
    return 0;
}

/* Builds the plan and prepares its weights once the stream's first item is
 * in, while the decoders make the first clips (the stream is not held:
 * this is mostly one thread's work, the JIT's code and the weights'
 * reorders).  Not sooner: a video's open indexes its timestamps, and that
 * pass's buffers (about 13 MB for a 2-hour video) on top of the reorders'
 * transient copies raised the run's peak memory. */
static int prepare(run_state *r, st3d_error *err) {
    double t0 = st3d_now();
    int rc = st3d_exec_prepare(r->exec, r->shape, err);
    r->network_s += st3d_now() - t0;
    return rc;
}

int st3d_classify_stream(st3d_exec *exec, st3d_model *model, st3d_clip_stream *stream,
                         int batch_size, st3d_clip_fn fn, void *user, st3d_error *err) {
    if (!exec || !model || !stream || !fn || batch_size < 1 || batch_size > 4096)
        return st3d_fail(err, ST3D_ERR_INVALID, "classify: bad arguments (batch size %d)",
                         batch_size);
    run_state r;
    memset(&r, 0, sizeof r);
    r.exec = exec;
    r.stream = stream;
    r.fn = fn;
    r.user = user;
    r.shape[0] = batch_size;
    st3d_clip_stream_clip_shape(stream, r.shape + 1);
    r.clip_floats = r.shape[1] * r.shape[2] * r.shape[3] * r.shape[4];
    r.n_classes = st3d_model_get_params(model)->n_classes;
    r.feature_dim = st3d_model_feature_dim(model);
    r.cap_items = 4 * batch_size + 64;
    int rc = -1;
    r.x = st3d_aligned_alloc((size_t)(batch_size * r.clip_floats) * sizeof(float), err);
    r.logits = st3d_malloc((size_t)batch_size * (size_t)r.n_classes * sizeof(float), err);
    r.scores = st3d_malloc((size_t)batch_size * (size_t)r.n_classes * sizeof(float), err);
    r.features = st3d_malloc((size_t)batch_size * (size_t)r.feature_dim * sizeof(float), err);
    r.items = st3d_malloc((size_t)r.cap_items * sizeof *r.items, err);
    if (!r.x || !r.logits || !r.scores || !r.features || !r.items) goto done;
    for (int prepared = 0;;) {
        st3d_stream_item *it = &r.items[r.n_items];
        double t0 = st3d_now();
        int got = st3d_clip_stream_next(stream, r.x + (int64_t)r.n_clips * r.clip_floats, it, err);
        r.waiting_s += st3d_now() - t0;
        if (got < 0) goto done;
        if (got == 0) break;
        if (!prepared) {
            prepared = 1;
            if (prepare(&r, err) != 0) goto done;
        }
        r.n_items++;
        if (it->kind == ST3D_STREAM_CLIP) r.n_clips++;
        if (r.n_clips == batch_size || r.n_clips == 0 || r.n_items == r.cap_items)
            if (flush(&r, err) != 0) goto done;
    }
    if (flush(&r, err) != 0) goto done;
    rc = 0;
done:
    st3d_aligned_free(r.x);
    free(r.logits);
    free(r.scores);
    free(r.features);
    free(r.items);
    return rc;
}

/*
 * predict.c - the original's inference (inference.py): every clip a loader
 * cuts from each video (SlidingWindow for --inference, TemporalEvenCrop for
 * validation, ...) through an eval-mode forward, softmax per clip, and per
 * video the clips' scores and their mean, handed to a callback once the
 * video is complete; and the results JSON inference.py writes.
 *
 * The loader gives the clips of a video in order and the videos in dataset
 * order (no shuffling), so a video is complete when a clip of another one
 * arrives, or at the end.  Memory: one batch, plus one video's clip scores.
 *
 * Each batch's shape comes from st3d_loader_peek: always the loader's batch
 * shape but with nocrop (--inference_crop nocrop), where a batch is one
 * video's clips at that video's resized height and width (the network
 * ends in adaptive average pooling, so any size runs); the clip buffer then
 * grows to the largest, and st3d_exec keeps a plan per shape met.
 */
#include "core/core.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One video being gathered. */
typedef struct video_acc {
    int64_t sample;          /* dataset index, -1 before the first clip */
    int n, cap;              /* clips gathered / room */
    float *scores;           /* cap x k softmax scores */
    int64_t *segments;       /* cap x 2: [begin, end) frame numbers */
    double *sum;             /* k: running sum of the scores (double) */
    float *mean;             /* k: the mean handed out */
} video_acc;

static int flush_video(video_acc *v, int k, st3d_video_fn fn, void *user, st3d_error *err) {
    if (v->sample < 0 || v->n == 0) return 0;
    for (int j = 0; j < k; j++) v->mean[j] = (float)(v->sum[j] / v->n);
    st3d_video_scores vs = {.sample = v->sample, .n_clips = v->n, .n_classes = k,
                            .clip_scores = v->scores, .segments = v->segments, .mean_scores = v->mean};
    int rc = fn ? fn(&vs, user) : 0;
    v->n = 0;
    memset(v->sum, 0, sizeof(double) * (size_t)k);
    if (rc != 0) return st3d_fail(err, ST3D_ERR_INVALID, "stopped by the video callback");
    return 0;
}

static int add_clip(video_acc *v, int k, const float *scores, const st3d_clip_info *ci, st3d_error *err) {
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 16;
        float *s = realloc(v->scores, sizeof(float) * (size_t)cap * (size_t)k);
        if (!s) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
        v->scores = s;
        int64_t *g = realloc(v->segments, sizeof(int64_t) * 2 * (size_t)cap);
        if (!g) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
        v->segments = g;
        v->cap = cap;
    }
    memcpy(v->scores + (size_t)v->n * k, scores, sizeof(float) * (size_t)k);
    v->segments[2 * v->n] = ci->begin;
    v->segments[2 * v->n + 1] = ci->end;
    for (int j = 0; j < k; j++) v->sum[j] += scores[j];
    v->n++;
    return 0;
}

/* Softmax of one row in place (F.softmax in float32, max subtracted). */
static void softmax_row(float *z, int k) {
    float mx = z[0];
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    float s = 0.0f;
    for (int j = 0; j < k; j++) s += (z[j] = expf(z[j] - mx));
    for (int j = 0; j < k; j++) z[j] /= s;
}

int st3d_predict(st3d_exec *exec, st3d_model *model, st3d_loader *loader, st3d_video_fn fn,
                 void *user, st3d_error *err) {
    const int k = st3d_model_get_params(model)->n_classes;
    int64_t shape[5];
    st3d_loader_batch_shape(loader, shape);
    size_t cap = (size_t)(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]);
    float *clips = st3d_aligned_alloc(sizeof(float) * cap, err);
    float *logits = st3d_malloc(sizeof(float) * (size_t)(shape[0] * k), err);
    st3d_clip_info *info = st3d_calloc((size_t)shape[0], sizeof *info, err);
    video_acc v = {.sample = -1};
    v.sum = st3d_calloc((size_t)k, sizeof(double), err);
    v.mean = st3d_calloc((size_t)k, sizeof(float), err);
    int rc = -1;
    if (!clips || !logits || !info || !v.sum || !v.mean) goto out;
    if (st3d_loader_start_epoch(loader, 0, err) != 0) goto out;
    for (;;) {
        int n = 0;
        int got = st3d_loader_peek(loader, shape, err);
        if (got < 0) goto out;
        if (got == 0) break;
        size_t need = (size_t)(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]);
        if (need > cap) { /* nocrop: a video of a larger picture */
            st3d_aligned_free(clips);
            cap = 0;
            if (!(clips = st3d_aligned_alloc(sizeof(float) * need, err))) goto out;
            cap = need;
        }
        if (st3d_loader_next(loader, clips, NULL, info, &n, err) < 0) goto out;
        if (n == 0) continue;
        shape[0] = n;
        if (st3d_exec_forward(exec, clips, shape, logits, NULL, err) != 0) goto out;
        for (int i = 0; i < n; i++) {
            float *z = logits + (size_t)i * k;
            softmax_row(z, k);
            if (info[i].sample != v.sample) {
                if (flush_video(&v, k, fn, user, err) != 0) goto out;
                v.sample = info[i].sample;
            }
            if (add_clip(&v, k, z, &info[i], err) != 0) goto out;
        }
    }
    rc = flush_video(&v, k, fn, user, err);
out:
    st3d_aligned_free(clips);
    free(logits);
    free(info);
    free(v.scores);
    free(v.segments);
    free(v.sum);
    free(v.mean);
    return rc;
}

/* ------------------------------------------------------------ results JSON */

struct st3d_results {
    json_t *root;            /* {"results": {video_id: [...]}} */
    json_t *results;         /* the inner object (borrowed from root) */
    json_t *samples;         /* dataset index of each entry of results, in order */
    int top_k;               /* --output_topk */
    int average;             /* 0: per clip (--inference_no_average) */
};

st3d_results *st3d_results_new(int top_k, int average, st3d_error *err) {
    st3d_results *r = st3d_calloc(1, sizeof *r, err);
    if (!r) return NULL;
    r->root = json_object();
    r->results = json_object();
    r->samples = json_array();
    if (!r->root || !r->results || !r->samples ||
        json_object_set_new(r->root, "results", r->results) != 0) {
        st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
        st3d_results_free(r);
        return NULL;
    }
    r->top_k = top_k < 1 ? 1 : top_k;
    r->average = average;
    return r;
}

void st3d_results_free(st3d_results *r) {
    if (!r) return;
    json_decref(r->root);
    json_decref(r->samples);
    free(r);
}

/* get_video_results: the top-k labels and scores, highest first (ties to
 * the lower index, as torch.topk on CPU). */
static json_t *top_k_list(const float *s, int k, int top, const st3d_dataset *ds) {
    json_t *list = json_array();
    uint8_t *used = calloc((size_t)k, 1);
    if (!used) return list;
    for (int t = 0; t < top && t < k; t++) {
        int best = -1;
        for (int j = 0; j < k; j++)
            if (!used[j] && (best < 0 || s[j] > s[best])) best = j;
        used[best] = 1;
        const char *name = st3d_dataset_class_name(ds, best);
        json_t *o = json_object();
        json_object_set_new(o, "label", json_string(name ? name : ""));
        json_object_set_new(o, "score", json_real(s[best]));
        json_array_append_new(list, o);
    }
    free(used);
    return list;
}

int st3d_results_add(st3d_results *r, const st3d_dataset *ds, const st3d_video_scores *v,
                     st3d_error *err) {
    st3d_sample_info si;
    if (st3d_dataset_sample(ds, v->sample, &si) != 0)
        return st3d_fail(err, ST3D_ERR_INVALID, "results: no sample %lld", (long long)v->sample);
    json_t *entry;
    if (r->average) {
        entry = top_k_list(v->mean_scores, v->n_classes, r->top_k, ds);
    } else {
        entry = json_array();
        for (int c = 0; c < v->n_clips; c++) {
            json_t *o = json_object();
            json_t *seg = json_array();
            json_array_append_new(seg, json_integer(v->segments[2 * c]));
            json_array_append_new(seg, json_integer(v->segments[2 * c + 1]));
            json_object_set_new(o, "segment", seg);
            json_object_set_new(o, "result",
                                top_k_list(v->clip_scores + (size_t)c * v->n_classes, v->n_classes, r->top_k, ds));
            json_array_append_new(entry, o);
        }
    }
    if (!entry || json_object_set_new(r->results, si.video_id, entry) != 0 ||
        json_array_append_new(r->samples, json_integer(v->sample)) != 0)
        return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
    return 0;
}

/* Each rank sends [[sample, video_id, entry], ...]; root puts every entry
 * back in dataset order, so the file is the one a single process writes. */
int st3d_results_gather(st3d_results *r, st3d_dist *dist, st3d_error *err) {
    if (st3d_dist_size(dist) == 1) return 0;
    int size = st3d_dist_size(dist), rc = -1;
    json_t *mine = json_array(), *all = json_array();
    char *text = NULL, *got = NULL;
    int64_t *lens = st3d_calloc((size_t)size, sizeof *lens, err);
    const char *id;
    json_t *entry;
    size_t i = 0;
    if (!mine || !all || !lens) goto out;
    json_object_foreach(r->results, id, entry) {
        json_array_append_new(mine, json_pack("[OsO]", json_array_get(r->samples, i++), id, entry));
    }
    if (!(text = json_dumps(mine, JSON_COMPACT))) {
        st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (st3d_dist_gather(dist, text, (int64_t)strlen(text), 0, (void **)&got, lens, err) != 0) goto out;
    if (st3d_dist_rank(dist) != 0) {
        rc = 0;
        goto out;
    }
    /* root: every rank's triples, sorted by dataset index */
    int64_t at = 0;
    for (int k = 0; k < size; k++) {
        json_error_t je;
        json_t *part = json_loadb(got + at, (size_t)lens[k], 0, &je);
        at += lens[k];
        if (!part || json_array_extend(all, part) != 0) {
            json_decref(part);
            st3d_fail(err, ST3D_ERR_FORMAT, "results from rank %d do not parse: %s", k, je.text);
            goto out;
        }
        json_decref(part);
    }
    size_t n = json_array_size(all);
    json_t **sorted = st3d_calloc(n ? n : 1, sizeof *sorted, err);
    if (!sorted) goto out;
    for (i = 0; i < n; i++) sorted[i] = json_array_get(all, i);
    for (i = 1; i < n; i++) /* insertion sort: the parts arrive nearly in order */
        for (size_t j = i; j > 0 && json_integer_value(json_array_get(sorted[j - 1], 0)) >
                                        json_integer_value(json_array_get(sorted[j], 0)); j--) {
            json_t *t = sorted[j];
            sorted[j] = sorted[j - 1], sorted[j - 1] = t;
        }
    json_object_clear(r->results);
    json_array_clear(r->samples);
    for (i = 0; i < n; i++) {
        json_object_set(r->results, json_string_value(json_array_get(sorted[i], 1)),
                        json_array_get(sorted[i], 2));
        json_array_append(r->samples, json_array_get(sorted[i], 0));
    }
    free(sorted);
    rc = 0;
out:
    json_decref(mine);
    json_decref(all);
    free(text);
    free(got);
    free(lens);
    return rc;
}

static int write_json(FILE *f, void *user, st3d_error *err) {
    if (json_dumpf((json_t *)user, f, JSON_COMPACT) != 0)
        return st3d_fail(err, ST3D_ERR_IO, "cannot write the results JSON");
    return 0;
}

int st3d_results_write(const st3d_results *r, const char *path, st3d_error *err) {
    return st3d_write_atomic(path, write_json, r->root, err);
}

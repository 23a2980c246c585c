/*
 * video_results.c - see video_results.h.  Everything is printed straight
 * into st3d_atomic_file temporaries; what is kept in memory is one running
 * sum (n_classes or dim floats), whatever the video's length.  The .npy
 * preamble is first written for a shape of 0 clips, padded to 128 bytes,
 * and rewritten in place with the real count at the end (the same length:
 * st3d_npy_header pads to it).
 */
#define _POSIX_C_SOURCE 200809L
#include "train/video_results.h"
#include "io/io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPY_HEAD 128 /* room for any clips x dim preamble */

void st3d_json_put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", f);
        else if (*c == '\t') fputs("\\t", f);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

void st3d_json_put_float(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

/* The clip entries both writers share: "segment", "start", "end". */
static void put_clip_head(FILE *f, const st3d_stream_item *c, int64_t n) {
    fprintf(f, "%s\n  {\"segment\": [%lld, %lld], \"start\": ", n ? "," : "", (long long)c->first,
            (long long)c->last);
    st3d_json_put_float(f, c->start);
    fputs(", \"end\": ", f);
    st3d_json_put_float(f, c->end);
}

/* The closing entries both writers share: "n_frames", "fps". */
static void put_video_tail(FILE *f, const st3d_stream_item *end) {
    fprintf(f, "\n ],\n \"n_frames\": %lld, \"fps\": ", (long long)end->n_frames);
    st3d_json_put_float(f, end->info.fps);
}

static int write_check(FILE *f, const char *path, st3d_error *err) {
    if (ferror(f)) return st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------ scores */

struct st3d_score_writer {
    st3d_atomic_file af;        /* the JSON being written */
    const char *const *labels;  /* class names (borrowed), or NULL */
    int n_classes;              /* scores per clip */
    int top_k;                  /* entries of "top_k" */
    int raw;                    /* 1: "scores" are logits */
    int64_t n_clips;            /* clips written */
    double *sum;                /* n_classes running sums of the written scores */
};

/* The name of class k. */
static void put_label(FILE *f, const char *const *labels, int k) {
    if (labels) st3d_json_put_string(f, labels[k]);
    else fprintf(f, "\"%d\"", k);
}

st3d_score_writer *st3d_score_writer_open(const char *path, const char *video,
                                          const char *const *labels, int n_classes, int top_k,
                                          int raw_scores, st3d_error *err) {
    st3d_score_writer *w = st3d_calloc(1, sizeof *w, err);
    if (!w) return NULL;
    w->labels = labels;
    w->n_classes = n_classes;
    w->top_k = top_k < 1 ? 1 : top_k > n_classes ? n_classes : top_k;
    w->raw = raw_scores;
    w->sum = st3d_calloc((size_t)n_classes, sizeof *w->sum, err);
    if (!w->sum || st3d_atomic_open(&w->af, path, err) != 0) {
        free(w->sum);
        free(w);
        return NULL;
    }
    fputs("{\"video\": ", w->af.f);
    st3d_json_put_string(w->af.f, video);
    fputs(",\n \"clips\": [", w->af.f);
    return w;
}

static int argmax(const float *x, int n) {
    int k = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[k]) k = i;
    return k;
}

int st3d_score_writer_clip(st3d_score_writer *w, const st3d_stream_item *clip,
                           const float *logits, const float *scores, st3d_error *err) {
    FILE *f = w->af.f;
    const float *out = w->raw ? logits : scores;
    put_clip_head(f, clip, w->n_clips);
    fputs(", \"label\": ", f);
    put_label(f, w->labels, argmax(scores, w->n_classes));
    fputs(", \"scores\": [", f);
    for (int k = 0; k < w->n_classes; k++) {
        if (k) fputs(", ", f);
        st3d_json_put_float(f, out[k]);
        w->sum[k] += out[k];
    }
    fputs("]}", f);
    w->n_clips++;
    return write_check(f, w->af.path, err);
}

int st3d_score_writer_finish(st3d_score_writer *w, const st3d_stream_item *end, float *mean,
                             st3d_error *err) {
    FILE *f = w->af.f;
    int n = w->n_classes;
    float *m = st3d_malloc((size_t)n * sizeof *m, err);
    int *order = st3d_malloc((size_t)n * sizeof *order, err);
    if (!m || !order) {
        free(m), free(order);
        st3d_score_writer_abort(w);
        return -1;
    }
    for (int k = 0; k < n; k++) m[k] = w->n_clips ? (float)(w->sum[k] / (double)w->n_clips) : 0.0f;
    put_video_tail(f, end);
    fputs(",\n \"label\": ", f);
    put_label(f, w->labels, argmax(m, n));
    fputs(", \"scores\": [", f);
    for (int k = 0; k < n; k++) {
        if (k) fputs(", ", f);
        st3d_json_put_float(f, m[k]);
    }
    fputs("],\n \"top_k\": [", f);
    /* the top_k classes, by score, ties in class order */
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 0; i < w->top_k; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (m[order[j]] > m[order[best]]) best = j;
        int t = order[i];
        order[i] = order[best], order[best] = t;
        fputs(i ? ", {\"label\": " : "{\"label\": ", f);
        put_label(f, w->labels, order[i]);
        fputs(", \"score\": ", f);
        st3d_json_put_float(f, m[order[i]]);
        fputs("}", f);
    }
    fputs("]}\n", f);
    if (mean) memcpy(mean, m, (size_t)n * sizeof *m);
    free(m);
    free(order);
    int rc = st3d_atomic_commit(&w->af, err);
    st3d_score_writer_abort(w); /* frees what is left */
    return rc;
}

void st3d_score_writer_abort(st3d_score_writer *w) {
    if (!w) return;
    st3d_atomic_abort(&w->af);
    free(w->sum);
    free(w);
}

/* ---------------------------------------------------------------- features */

struct st3d_feature_writer {
    st3d_atomic_file npy;   /* the array being written */
    st3d_atomic_file index; /* the index JSON being written */
    char *npy_name;         /* the array's file name, for the index */
    int dim;                /* features per clip */
    int average;            /* 1: one mean vector */
    int64_t n_clips;        /* clips written */
    double *sum;            /* dim running sums (average) */
};

st3d_feature_writer *st3d_feature_writer_open(const char *npy_path, const char *index_path,
                                              const char *video, int dim, int average,
                                              st3d_error *err) {
    st3d_feature_writer *w = st3d_calloc(1, sizeof *w, err);
    if (!w) return NULL;
    w->dim = dim;
    w->average = average;
    const char *base = strrchr(npy_path, '/');
    w->npy_name = strdup(base ? base + 1 : npy_path);
    w->sum = average ? st3d_calloc((size_t)dim, sizeof *w->sum, err) : NULL;
    if (!w->npy_name || (average && !w->sum)) goto fail;
    if (st3d_atomic_open(&w->npy, npy_path, err) != 0) goto fail;
    if (st3d_atomic_open(&w->index, index_path, err) != 0) {
        st3d_atomic_abort(&w->npy);
        goto fail;
    }
    char head[NPY_HEAD];
    int64_t shape[2] = {0, dim};
    size_t len = st3d_npy_header(head, sizeof head, average ? 1 : 2, average ? shape + 1 : shape,
                                 NPY_HEAD);
    fwrite(head, 1, len, w->npy.f);
    FILE *f = w->index.f;
    fputs("{\"video\": ", f);
    st3d_json_put_string(f, video);
    fputs(", \"features\": ", f);
    st3d_json_put_string(f, w->npy_name);
    fprintf(f, ", \"dim\": %d, \"average\": %s,\n \"clips\": [", dim, average ? "true" : "false");
    return w;
fail:
    if (!err || err->code == ST3D_OK) st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
    free(w->npy_name);
    free(w->sum);
    free(w);
    return NULL;
}

int st3d_feature_writer_clip(st3d_feature_writer *w, const st3d_stream_item *clip,
                             const float *features, st3d_error *err) {
    if (w->average)
        for (int k = 0; k < w->dim; k++) w->sum[k] += features[k];
    else
        fwrite(features, sizeof(float), (size_t)w->dim, w->npy.f);
    put_clip_head(w->index.f, clip, w->n_clips);
    fputs("}", w->index.f);
    w->n_clips++;
    if (write_check(w->npy.f, w->npy.path, err) || write_check(w->index.f, w->index.path, err))
        return -1;
    return 0;
}

int st3d_feature_writer_finish(st3d_feature_writer *w, const st3d_stream_item *end,
                               st3d_error *err) {
    int rc = -1;
    if (w->average)
        for (int k = 0; k < w->dim; k++) {
            float v = w->n_clips ? (float)(w->sum[k] / (double)w->n_clips) : 0.0f;
            fwrite(&v, sizeof v, 1, w->npy.f);
        }
    char head[NPY_HEAD];
    int64_t shape[2] = {w->n_clips, w->dim};
    size_t len = st3d_npy_header(head, sizeof head, w->average ? 1 : 2,
                                 w->average ? shape + 1 : shape, NPY_HEAD);
    if (len != NPY_HEAD || fseek(w->npy.f, 0, SEEK_SET) != 0 ||
        fwrite(head, 1, len, w->npy.f) != len) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot write the array's header", w->npy.path);
        goto out;
    }
    put_video_tail(w->index.f, end);
    fputs("}\n", w->index.f);
    /* the array first: a present index says both are complete */
    if (st3d_atomic_commit(&w->npy, err) != 0) goto out;
    rc = st3d_atomic_commit(&w->index, err);
out:
    st3d_feature_writer_abort(w); /* removes what was not committed, frees */
    return rc;
}

void st3d_feature_writer_abort(st3d_feature_writer *w) {
    if (!w) return;
    st3d_atomic_abort(&w->npy);
    st3d_atomic_abort(&w->index);
    free(w->npy_name);
    free(w->sum);
    free(w);
}

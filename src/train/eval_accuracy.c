/*
 * eval_accuracy.c - st3d_eval_results: video-level accuracy of the
 * original code's inference results, as its util_scripts/eval_accuracy.py
 * computes it, plus per-class accuracy and the top-1 confusion matrix.
 *
 * What eval_accuracy.py does, and st3d with it:
 *   - the ground truth is every video of the subset in the annotation JSON,
 *     its label's index in "labels" (a label not there, or a video without
 *     one, stops the script with a KeyError: here an error naming both);
 *   - each results entry is a list of {"label", "score"}; the list is
 *     sorted by score, descending, with Python's stable sort (ties keep file
 *     order), and its first k labels are the video's top-k; every label of
 *     every entry, in any subset, must be in "labels" (KeyError again);
 *   - st3d only: every results video must be in the annotation's
 *     "database" (any subset).  eval_accuracy.py ignores one that is not;
 *     here it is an error naming the file and the video, since it means
 *     results of another dataset or annotation file;
 *   - a video is right when its label is among its top-k;
 *   - accuracy = right / number of ground-truth videos: a video missing
 *     from the results counts as wrong.  With --ignore (ignore_missing
 *     here) missing videos leave the denominator instead.  Results for
 *     videos outside the subset are ignored.
 * Per-class accuracy applies the same rule to each class's videos, and
 * the confusion matrix counts (true label, top-1 label) over videos present.
 */
#include "train/eval.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

st3d_eval_params st3d_eval_default_params(void) {
    st3d_eval_params p;
    p.subset = "validation";
    p.top_k = 5;
    p.ignore_missing = 0;
    return p;
}

void st3d_eval_free(st3d_eval *ev) {
    if (!ev) return;
    if (ev->classes)
        for (int64_t i = 0; i < ev->n_classes; i++) free((char *)ev->classes[i].label);
    free(ev->classes);
    free(ev->confusion);
    free((char *)ev->subset);
    free(ev);
}

static json_t *load_json(const char *path, st3d_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (je.line < 0 || !strncmp(je.text, "unable to open", 14))
            st3d_fail(err, ST3D_ERR_IO, "%s: %s", path, je.text);
        else
            st3d_fail(err, ST3D_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s", path,
                      je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: the top level is not a JSON object", path);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A name -> index map (a JSON object of integers, for jansson's hashing). */
static json_t *label_map(json_t *labels, st3d_eval *ev, const char *path, st3d_error *err) {
    json_t *map = json_object();
    size_t n = json_array_size(labels), i;
    ev->classes = st3d_calloc(n ? n : 1, sizeof *ev->classes, err);
    ev->confusion = st3d_calloc(n ? n * n : 1, sizeof *ev->confusion, err);
    if (!map || !ev->classes || !ev->confusion) goto fail;
    json_t *l;
    json_array_foreach(labels, i, l) {
        if (!json_is_string(l)) {
            st3d_fail(err, ST3D_ERR_FORMAT, "%s: \"labels\"[%zu] is not a string", path, i);
            goto fail;
        }
        const char *name = json_string_value(l);
        if (json_object_get(map, name)) {
            st3d_fail(err, ST3D_ERR_FORMAT, "%s: label '%s' appears twice in \"labels\"", path,
                      name);
            goto fail;
        }
        size_t len = strlen(name) + 1;
        char *copy = st3d_malloc(len, err);
        if (!copy) goto fail;
        memcpy(copy, name, len);
        ev->classes[i].label = copy;
        ev->n_classes = (int64_t)i + 1;
        if (json_object_set_new(map, name, json_integer((json_int_t)i)) != 0) {
            st3d_fail(err, ST3D_ERR_NOMEM, "out of memory reading labels");
            goto fail;
        }
    }
    return map;
fail:
    json_decref(map);
    return NULL;
}

/* One result: a class index and its score. */
typedef struct ranked {
    int64_t label; /* index in "labels" */
    double score;  /* the entry's score */
} ranked;

/* Reads one video's result list into r (room for its size), sorted by score
 * descending with ties in file order (an insertion sort: the lists are the
 * original's output_topk, 5 by default).  Returns the count or -1. */
static int64_t rank_entries(json_t *list, json_t *map, const char *path, const char *id,
                            ranked *r, st3d_error *err) {
    if (!json_is_array(list))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: video '%s': the result is not a list", path,
                         id);
    size_t i;
    json_t *e;
    int64_t n = 0;
    json_array_foreach(list, i, e) {
        json_t *l = json_object_get(e, "label"), *s = json_object_get(e, "score");
        if (json_object_get(e, "result") || json_object_get(e, "segment"))
            return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                             "%s: video '%s': per-clip results (inference with --no_average); "
                             "video-level accuracy needs averaged results",
                             path, id);
        if (!json_is_string(l) || !json_is_number(s))
            return st3d_fail(err, ST3D_ERR_FORMAT,
                             "%s: video '%s': entry %zu has no string \"label\" and number "
                             "\"score\"",
                             path, id, i);
        json_t *idx = json_object_get(map, json_string_value(l));
        if (!idx)
            return st3d_fail(err, ST3D_ERR_MISMATCH,
                             "%s: video '%s': label '%s' is not in the annotation's \"labels\"",
                             path, id, json_string_value(l));
        ranked v = {(int64_t)json_integer_value(idx), json_number_value(s)};
        int64_t j = n++;
        while (j > 0 && r[j - 1].score < v.score) r[j] = r[j - 1], j--;
        r[j] = v;
    }
    return n;
}

/* The ground truth: fills the per-class video counts and scores each video
 * of the subset against results. */
static int score(st3d_eval *ev, json_t *db, json_t *results, json_t *map, const char *ann_path,
                 const char *res_path, ranked *r, st3d_error *err) {
    const char *id;
    json_t *v;
    json_object_foreach(db, id, v) {
        json_t *sub = json_object_get(v, "subset");
        if (!json_is_string(sub) || strcmp(json_string_value(sub), ev->subset) != 0) continue;
        json_t *ann = json_object_get(v, "annotations");
        json_t *l = json_is_object(ann) ? json_object_get(ann, "label") : NULL;
        if (!json_is_string(l))
            return st3d_fail(err, ST3D_ERR_FORMAT,
                             "%s: video '%s' of subset '%s' has no \"annotations\": "
                             "{\"label\": ...}",
                             ann_path, id, ev->subset);
        json_t *idx = json_object_get(map, json_string_value(l));
        if (!idx)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: video '%s': label '%s' is not in \"labels\"",
                             ann_path, id, json_string_value(l));
        int64_t t = (int64_t)json_integer_value(idx);
        st3d_eval_class *c = &ev->classes[t];
        ev->n_videos++, c->n_videos++;
        json_t *list = json_object_get(results, id);
        if (!list) {
            ev->n_missing++, c->n_missing++;
            continue;
        }
        int64_t n = rank_entries(list, map, res_path, id, r, err);
        if (n <= 0) return -1; /* check_results has refused empty lists */
        ev->confusion[t * ev->n_classes + r[0].label]++;
        if (r[0].label == t) ev->n_top1++, c->n_top1++;
        for (int64_t j = 0; j < n && j < ev->top_k; j++)
            if (r[j].label == t) {
                ev->n_topk++, c->n_topk++;
                break;
            }
    }
    return 0;
}

/* Every label of every result must be known and no list empty, as
 * eval_accuracy.py's load_result demands of the whole file (KeyError,
 * IndexError), and every video in db (st3d's rule); r gets room for the
 * longest list. */
static int check_results(json_t *results, json_t *map, json_t *db, const char *path,
                         const char *ann_path, ranked **r, st3d_error *err) {
    size_t longest = 1;
    const char *id;
    json_t *list;
    json_object_foreach(results, id, list) {
        if (json_array_size(list) > longest) longest = json_array_size(list);
    }
    *r = st3d_malloc(longest * sizeof **r, err);
    if (!*r) return -1;
    json_object_foreach(results, id, list) {
        if (!json_object_get(db, id))
            return st3d_fail(err, ST3D_ERR_MISMATCH, "%s: video '%s' is not in %s", path, id,
                             ann_path);
        int64_t n = rank_entries(list, map, path, id, *r, err);
        if (n < 0) return -1;
        if (n == 0)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: video '%s': an empty result list", path,
                             id);
    }
    return 0;
}

int st3d_eval_results(const char *results_path, const char *annotation_path,
                      const st3d_eval_params *params, st3d_eval **out, st3d_error *err) {
    *out = NULL;
    st3d_eval_params p = params ? *params : st3d_eval_default_params();
    if (!p.subset || !*p.subset) p.subset = "validation";
    if (p.top_k < 1)
        return st3d_fail(err, ST3D_ERR_INVALID, "top-k must be at least 1, got %d", p.top_k);
    json_t *ann = NULL, *res = NULL, *map = NULL;
    ranked *r = NULL;
    int rc = -1;
    st3d_eval *ev = st3d_calloc(1, sizeof *ev, err);
    if (!ev) return -1;
    size_t sl = strlen(p.subset) + 1;
    char *subset = st3d_malloc(sl, err);
    if (!subset) goto done;
    memcpy(subset, p.subset, sl);
    ev->subset = subset, ev->top_k = p.top_k, ev->ignore_missing = p.ignore_missing;
    if (!(ann = load_json(annotation_path, err)) || !(res = load_json(results_path, err)))
        goto done;
    json_t *labels = json_object_get(ann, "labels"), *db = json_object_get(ann, "database");
    json_t *results = json_object_get(res, "results");
    if (!json_is_array(labels) || !json_is_object(db)) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: no \"labels\" list and \"database\" object",
                  annotation_path);
        goto done;
    }
    if (!json_is_object(results)) {
        st3d_fail(err, ST3D_ERR_FORMAT,
                  "%s: no \"results\" object (the original's inference JSON)", results_path);
        goto done;
    }
    ev->n_results = (int64_t)json_object_size(results);
    if (!(map = label_map(labels, ev, annotation_path, err))) goto done;
    if (check_results(results, map, db, results_path, annotation_path, &r, err) != 0) goto done;
    if (score(ev, db, results, map, annotation_path, results_path, r, err) != 0) goto done;
    if (ev->n_videos == 0) {
        st3d_fail(err, ST3D_ERR_INVALID, "%s: no video in subset '%s'", annotation_path,
                  ev->subset);
        goto done;
    }
    ev->n_counted = ev->n_videos - (p.ignore_missing ? ev->n_missing : 0);
    if (ev->n_counted == 0) {
        st3d_fail(err, ST3D_ERR_MISMATCH, "%s: none of the %lld videos of subset '%s' is in %s",
                  annotation_path, (long long)ev->n_videos, ev->subset, results_path);
        goto done;
    }
    ev->top1 = (double)ev->n_top1 / (double)ev->n_counted;
    ev->topk = (double)ev->n_topk / (double)ev->n_counted;
    double sum = 0;
    int64_t n_with = 0;
    for (int64_t i = 0; i < ev->n_classes; i++) {
        st3d_eval_class *c = &ev->classes[i];
        int64_t counted = c->n_videos - (p.ignore_missing ? c->n_missing : 0);
        c->top1 = counted ? (double)c->n_top1 / (double)counted : NAN;
        c->topk = counted ? (double)c->n_topk / (double)counted : NAN;
        if (counted) sum += c->top1, n_with++;
    }
    ev->mean_class_top1 = sum / (double)n_with;
    rc = 0;
done:
    free(r);
    json_decref(map);
    json_decref(ann);
    json_decref(res);
    if (rc == 0) *out = ev;
    else st3d_eval_free(ev);
    return rc;
}

/* A number, or null for NaN (a class without videos), which JSON lacks. */
static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* What the atomic writer's callback needs. */
typedef struct json_job {
    json_t *doc;      /* the document */
    const char *path; /* its final name, for messages */
} json_job;

static int write_doc(FILE *f, void *user, st3d_error *err) {
    json_job *job = user;
    if (json_dumpf(job->doc, f, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0 ||
        fputc('\n', f) == EOF)
        return st3d_fail(err, ST3D_ERR_IO, "%s: write failed", job->path);
    return 0;
}

int st3d_eval_write_json(const st3d_eval *ev, const char *json_path, st3d_error *err) {
    char topk[32];
    snprintf(topk, sizeof topk, "top%d", ev->top_k);
    json_t *doc = json_object(), *classes = json_array(), *conf = json_array();
    int bad = !doc || !classes || !conf;
    bad |= json_object_set_new(doc, "subset", json_string(ev->subset));
    bad |= json_object_set_new(doc, "ignore_missing", json_boolean(ev->ignore_missing));
    bad |= json_object_set_new(doc, "n_videos", json_integer(ev->n_videos));
    bad |= json_object_set_new(doc, "n_missing", json_integer(ev->n_missing));
    bad |= json_object_set_new(doc, "n_counted", json_integer(ev->n_counted));
    bad |= json_object_set_new(doc, "n_results", json_integer(ev->n_results));
    bad |= json_object_set_new(doc, "k", json_integer(ev->top_k));
    bad |= json_object_set_new(doc, "top1", real_or_null(ev->top1));
    bad |= json_object_set_new(doc, topk, real_or_null(ev->topk));
    bad |= json_object_set_new(doc, "mean_class_top1", real_or_null(ev->mean_class_top1));
    for (int64_t i = 0; i < ev->n_classes && !bad; i++) {
        const st3d_eval_class *c = &ev->classes[i];
        json_t *o = json_object(), *row = json_array();
        bad |= !o || !row;
        bad |= json_object_set_new(o, "label", json_string(c->label));
        bad |= json_object_set_new(o, "n_videos", json_integer(c->n_videos));
        bad |= json_object_set_new(o, "n_missing", json_integer(c->n_missing));
        bad |= json_object_set_new(o, "top1", real_or_null(c->top1));
        bad |= json_object_set_new(o, topk, real_or_null(c->topk));
        bad |= json_array_append_new(classes, o);
        for (int64_t j = 0; j < ev->n_classes; j++)
            bad |= json_array_append_new(row, json_integer(ev->confusion[i * ev->n_classes + j]));
        bad |= json_array_append_new(conf, row);
    }
    bad |= json_object_set_new(doc, "per_class", classes);
    bad |= json_object_set_new(doc, "confusion", conf);
    int rc;
    if (bad) {
        rc = st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory building the summary", json_path);
    } else {
        json_job job = {doc, json_path};
        rc = st3d_write_atomic(json_path, write_doc, &job, err);
    }
    json_decref(doc);
    return rc;
}

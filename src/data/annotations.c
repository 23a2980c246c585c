/*
 * annotations.c - st3d_dataset: the samples of one subset of an annotation
 * JSON, read with jansson, with the semantics of the original
 * datasets/videodataset.py (VideoDataset) and datasets/activitynet.py:
 *
 *   - class indices are the positions in "labels" (ActivityNet: the leaves
 *     of "taxonomy", in file order, when there is no "labels");
 *   - a video is root/label/video_id, or "video_path" when the entry has
 *     one (ActivityNet: root/v_video_id); entries without a label are
 *     unlabeled (-1) and looked up under root/test;
 *   - missing videos are skipped, as are segments ending at frame 1;
 *   - ActivityNet: one sample per annotated instance, frames
 *     [floor(t0 * fps) + 1, min(floor(t1 * fps) + 1, n_frames)), kept when
 *     at least 8 frames long.
 *
 * Where the original would stop with an exception (a label not in the list,
 * a malformed entry) st3d skips the entry and records a warning naming the
 * file and the video; malformed JSON fails naming the line and column.
 */
#define _POSIX_C_SOURCE 200809L
#include "data/data.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* One sample: a clip source and its label. */
typedef struct ds_sample {
    char *video_id;        /* database key (or the path for from_paths) */
    char *path;            /* frame folder or video file */
    int64_t label;         /* class index, -1 when unlabeled */
    int64_t begin, end;    /* frames [begin, end), 1-based */
    int folder;            /* 1: path is a frame folder */
} ds_sample;

struct st3d_dataset {
    ds_sample *s;          /* samples in file order */
    int64_t n, cap;        /* count and room of s */
    char **classes;        /* class names by index */
    int64_t n_classes;     /* entries of classes */
    char **warn;           /* warning lines */
    int64_t n_warn, warn_cap; /* count and room of warn */
};

/* Video file extensions tried after the folder, in this order. */
static const char *const VIDEO_EXTS[] = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v",
                                         ".mpg", ".mpeg", ".flv", ".ogv", ".3gp", ".y4m"};

static void warnf(st3d_dataset *ds, const char *fmt, ...) ST3D_PRINTF(2, 3);
static void warnf(st3d_dataset *ds, const char *fmt, ...) {
    if (ds->n_warn == ds->warn_cap) {
        int64_t cap = ds->warn_cap ? ds->warn_cap * 2 : 16;
        char **w = realloc(ds->warn, (size_t)cap * sizeof *w);
        if (!w) return;
        ds->warn = w, ds->warn_cap = cap;
    }
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *line = strdup(buf);
    if (line) ds->warn[ds->n_warn++] = line;
}

static int add_sample(st3d_dataset *ds, const char *id, const char *path, int64_t label,
                      int64_t b, int64_t e, int folder, st3d_error *err) {
    if (ds->n == ds->cap) {
        int64_t cap = ds->cap ? ds->cap * 2 : 64;
        ds_sample *s = realloc(ds->s, (size_t)cap * sizeof *s);
        if (!s) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory reading annotations");
        ds->s = s, ds->cap = cap;
    }
    ds_sample *s = &ds->s[ds->n];
    s->video_id = strdup(id);
    s->path = strdup(path);
    if (!s->video_id || !s->path) {
        free(s->video_id), free(s->path);
        return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory reading annotations");
    }
    s->label = label, s->begin = b, s->end = e, s->folder = folder;
    ds->n++;
    return 0;
}

/* Finds the frame folder or video file for base (a path without extension).
 * Fills out and *folder; returns 0, or -1 when there is none. */
int st3d_resolve_video(const char *base, char *out, size_t cap, int *folder) {
    if (st3d_is_dir(base)) {
        snprintf(out, cap, "%s", base);
        *folder = 1;
        return 0;
    }
    *folder = 0;
    if (st3d_is_file(base)) {
        snprintf(out, cap, "%s", base);
        return 0;
    }
    for (size_t i = 0; i < sizeof VIDEO_EXTS / sizeof VIDEO_EXTS[0]; i++) {
        snprintf(out, cap, "%s%s", base, VIDEO_EXTS[i]);
        if (st3d_is_file(out)) return 0;
    }
    return -1;
}

/* Frames of a folder (the original's count) or of a video (its index). */
int64_t st3d_count_frames(const char *path, int folder, double *fps, st3d_error *err) {
    if (folder) return st3d_frame_folder_count(path, err);
    st3d_video_params vp = st3d_video_default_params();
    vp.threads = 1;
    st3d_video *v = st3d_video_open(path, &vp, err);
    if (!v) return -1;
    int64_t n = st3d_video_get_info(v)->n_frames;
    if (fps) *fps = st3d_video_get_info(v)->fps;
    st3d_video_free(v);
    return n;
}

void st3d_dataset_free(st3d_dataset *ds) {
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) free(ds->s[i].video_id), free(ds->s[i].path);
    for (int64_t i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    for (int64_t i = 0; i < ds->n_warn; i++) free(ds->warn[i]);
    free(ds->s), free(ds->classes), free(ds->warn);
    free(ds);
}

static int add_class(st3d_dataset *ds, const char *name, st3d_error *err) {
    char **c = realloc(ds->classes, (size_t)(ds->n_classes + 1) * sizeof *c);
    if (!c) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory reading labels");
    ds->classes = c;
    if (!(c[ds->n_classes] = strdup(name)))
        return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory reading labels");
    ds->n_classes++;
    return 0;
}

static int64_t class_index(const st3d_dataset *ds, const char *name) {
    for (int64_t i = 0; i < ds->n_classes; i++)
        if (!strcmp(ds->classes[i], name)) return i;
    return -1;
}

/* "labels", or the leaves of ActivityNet's "taxonomy". */
static int read_labels(st3d_dataset *ds, json_t *root, const char *file, st3d_error *err) {
    json_t *labels = json_object_get(root, "labels"), *tax = json_object_get(root, "taxonomy");
    if (json_is_array(labels)) {
        size_t i;
        json_t *l;
        json_array_foreach(labels, i, l) {
            if (!json_is_string(l))
                return st3d_fail(err, ST3D_ERR_FORMAT, "%s: \"labels\"[%zu] is not a string", file, i);
            if (add_class(ds, json_string_value(l), err) != 0) return -1;
        }
        return 0;
    }
    if (json_is_array(tax)) { /* mirrors activitynet.py get_class_labels */
        size_t i, j;
        json_t *a, *b;
        json_array_foreach(tax, i, a) {
            json_t *id = json_object_get(a, "nodeId"), *name = json_object_get(a, "nodeName");
            if (!json_is_string(name))
                return st3d_fail(err, ST3D_ERR_FORMAT, "%s: taxonomy[%zu] has no nodeName", file, i);
            int leaf = 1;
            json_array_foreach(tax, j, b) {
                if (json_equal(json_object_get(b, "parentId"), id)) {
                    leaf = 0;
                    break;
                }
            }
            if (leaf && add_class(ds, json_string_value(name), err) != 0) return -1;
        }
        return 0;
    }
    return st3d_fail(err, ST3D_ERR_FORMAT, "%s: no \"labels\" list (nor an ActivityNet taxonomy)",
                     file);
}

static int read_entry(st3d_dataset *ds, const char *file, const char *root_dir, const char *key,
                      json_t *v, int activitynet, st3d_error *err) {
    char base[4096], path[4160];
    int folder = 0;
    json_t *ann = json_object_get(v, "annotations");
    if (!activitynet) {
        const char *label = "test";
        int64_t li = -1;
        if (json_is_object(ann) && json_object_get(ann, "label")) {
            json_t *l = json_object_get(ann, "label");
            if (!json_is_string(l)) {
                warnf(ds, "%s: video '%s': label is not a string, skipped", file, key);
                return 0;
            }
            label = json_string_value(l);
            li = class_index(ds, label);
            if (li < 0) {
                warnf(ds, "%s: video '%s': label '%s' is not in \"labels\", skipped", file, key, label);
                return 0;
            }
        }
        json_t *vp = json_object_get(v, "video_path");
        if (json_is_string(vp)) snprintf(base, sizeof base, "%s", json_string_value(vp));
        else snprintf(base, sizeof base, "%s/%s/%s", root_dir, label, key);
        if (st3d_resolve_video(base, path, sizeof path, &folder) != 0) {
            warnf(ds, "%s: video '%s': no frame folder or video at %s, skipped", file, key, base);
            return 0;
        }
        int64_t b = 1, e = -1;
        json_t *seg = json_is_object(ann) ? json_object_get(ann, "segment") : NULL;
        if (json_is_array(seg) && json_array_size(seg) == 2 &&
            json_is_number(json_array_get(seg, 0)) && json_is_number(json_array_get(seg, 1))) {
            b = (int64_t)json_number_value(json_array_get(seg, 0));
            e = (int64_t)json_number_value(json_array_get(seg, 1));
        } else {
            st3d_error e2;
            int64_t n = st3d_count_frames(path, folder, NULL, &e2);
            if (n < 0) {
                warnf(ds, "%s: video '%s': %s, skipped", file, key, e2.msg);
                return 0;
            }
            e = n + 1;
        }
        if (e <= b || e == 1) return 0; /* empty, as the original's segment[1] == 1 */
        return add_sample(ds, key, path, li, b, e, folder, err);
    }
    /* ActivityNet v1.3 */
    snprintf(base, sizeof base, "%s/v_%s", root_dir, key);
    if (st3d_resolve_video(base, path, sizeof path, &folder) != 0) {
        warnf(ds, "%s: video '%s': no frame folder or video at %s, skipped", file, key, base);
        return 0;
    }
    json_t *fpsj = json_object_get(v, "fps");
    double fps = json_is_number(fpsj) ? json_number_value(fpsj) : 0;
    st3d_error e2;
    double vfps = 0;
    int64_t n_frames = st3d_count_frames(path, folder, &vfps, &e2);
    if (n_frames < 0) {
        warnf(ds, "%s: video '%s': %s, skipped", file, key, e2.msg);
        return 0;
    }
    if (fps <= 0) fps = vfps;
    if (fps <= 0) {
        warnf(ds, "%s: video '%s': no \"fps\", skipped", file, key);
        return 0;
    }
    if (!json_is_array(ann) || json_array_size(ann) == 0) {
        /* unannotated (testing): the whole video, as the untrimmed setting */
        if (n_frames >= 1) return add_sample(ds, key, path, -1, 1, n_frames + 1, folder, err);
        return 0;
    }
    size_t i;
    json_t *a;
    json_array_foreach(ann, i, a) {
        json_t *seg = json_object_get(a, "segment"), *l = json_object_get(a, "label");
        if (!json_is_array(seg) || json_array_size(seg) != 2) {
            warnf(ds, "%s: video '%s': annotation %zu has no segment, skipped", file, key, i);
            continue;
        }
        int64_t li = -1;
        if (l) {
            li = json_is_string(l) ? class_index(ds, json_string_value(l)) : -1;
            if (li < 0) {
                warnf(ds, "%s: video '%s': label '%s' is not in \"labels\", skipped", file, key,
                      json_is_string(l) ? json_string_value(l) : "?");
                continue;
            }
        }
        int64_t b = (int64_t)floor(json_number_value(json_array_get(seg, 0)) * fps) + 1;
        int64_t e = (int64_t)floor(json_number_value(json_array_get(seg, 1)) * fps) + 1;
        if (e > n_frames) e = n_frames;
        if (e - b < 8) continue; /* the original drops instances under 8 frames */
        if (add_sample(ds, key, path, li, b, e, folder, err) != 0) return -1;
    }
    return 0;
}

st3d_dataset *st3d_dataset_open(const char *annotation_path, const char *video_root,
                                const char *subset, st3d_error *err) {
    json_error_t je;
    json_t *root = json_load_file(annotation_path, 0, &je);
    if (!root) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s",
                  annotation_path, je.line, je.column, je.text);
        return NULL;
    }
    st3d_dataset *ds = st3d_calloc(1, sizeof *ds, err);
    if (!ds) goto fail;
    json_t *db = json_object_get(root, "database");
    if (!json_is_object(root) || !json_is_object(db)) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: no \"database\" object", annotation_path);
        goto fail;
    }
    if (read_labels(ds, root, annotation_path, err) != 0) goto fail;
    int activitynet = !json_object_get(root, "labels") && json_object_get(root, "taxonomy");
    const char *key;
    json_t *v;
    json_object_foreach(db, key, v) {
        json_t *sub = json_object_get(v, "subset");
        if (!json_is_string(sub)) {
            warnf(ds, "%s: video '%s': no \"subset\", skipped", annotation_path, key);
            continue;
        }
        if (strcmp(json_string_value(sub), subset) != 0) continue;
        int is_list = json_is_array(json_object_get(v, "annotations"));
        if (read_entry(ds, annotation_path, video_root, key, v, activitynet || is_list, err) != 0)
            goto fail;
    }
    json_decref(root);
    return ds;
fail:
    json_decref(root);
    st3d_dataset_free(ds);
    return NULL;
}

st3d_dataset *st3d_dataset_from_paths(const char *const *paths, const int64_t *labels, int64_t n,
                                      st3d_error *err) {
    st3d_dataset *ds = st3d_calloc(1, sizeof *ds, err);
    if (!ds) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int folder = st3d_is_dir(paths[i]);
        st3d_error e2;
        int64_t nf = st3d_count_frames(paths[i], folder, NULL, &e2);
        if (nf <= 0) {
            warnf(ds, "%s", nf < 0 ? e2.msg : "no frames");
            continue;
        }
        if (add_sample(ds, paths[i], paths[i], labels ? labels[i] : -1, 1, nf + 1, folder, err)) {
            st3d_dataset_free(ds);
            return NULL;
        }
    }
    return ds;
}

int64_t st3d_dataset_size(const st3d_dataset *ds) { return ds->n; }

int st3d_dataset_sample(const st3d_dataset *ds, int64_t i, st3d_sample_info *info) {
    if (i < 0 || i >= ds->n) return -1;
    const ds_sample *s = &ds->s[i];
    info->video_id = s->video_id;
    info->path = s->path;
    info->label = s->label;
    info->begin = s->begin;
    info->end = s->end;
    return 0;
}

int st3d_dataset_is_folder(const st3d_dataset *ds, int64_t i) { return ds->s[i].folder; }
int64_t st3d_dataset_n_classes(const st3d_dataset *ds) { return ds->n_classes; }
const char *st3d_dataset_class_name(const st3d_dataset *ds, int64_t label) {
    return label >= 0 && label < ds->n_classes ? ds->classes[label] : NULL;
}
int64_t st3d_dataset_n_warnings(const st3d_dataset *ds) { return ds->n_warn; }
const char *st3d_dataset_warning(const st3d_dataset *ds, int64_t i) {
    return i >= 0 && i < ds->n_warn ? ds->warn[i] : NULL;
}

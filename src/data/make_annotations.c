/*
 * make_annotations.c - st3d_make_annotations: the annotation JSON of the
 * original code's util_scripts, built from each dataset's official files:
 *
 *   ucf101     classInd.txt ("1 ApplyEyeMakeup") gives "labels" in order;
 *              trainlist0N.txt -> "training", testlist0N.txt ->
 *              "validation"; the key is the file name up to its first '.',
 *              the label the folder before the '/' (as ucf101_json.py).
 *   hmdb51     files <label>_test_split<N>.txt, lines "<video>.avi <0|1|2>":
 *              1 training, 2 validation, 0 left out; "labels" are the
 *              sorted distinct <label>s of all files (as hmdb51_json.py).
 *   kinetics   kinetics-<K>_{train,val,test}.csv (test optional) with
 *              columns label, youtube_id, time_start, time_end; the key is
 *              youtube_id_%06d(time_start)_%06d(time_end), "labels" the
 *              train labels in order of first appearance, test entries have
 *              empty annotations (as kinetics_json.py).
 *   activitynet  the v1.3 JSON kept as it is, plus "labels" (the taxonomy's
 *              leaves) and each video's "fps" (as
 *              add_fps_into_activitynet_json.py), read from its video.
 *
 * Segments are [1, n_frames + 1) of the frame folder (or video) found under
 * video_root/label/key; entries whose video is absent get no segment (the
 * reader then counts frames itself, or skips the entry).
 */
#define _POSIX_C_SOURCE 200809L
#include "data/data.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

st3d_annotation_params st3d_annotation_default_params(void) {
    st3d_annotation_params p;
    memset(&p, 0, sizeof p);
    p.dataset = "ucf101";
    p.split = 1;
    p.n_classes = 400;
    return p;
}

/* 1 when the JSON array of strings holds s. */
static int has_string(const json_t *arr, const char *s) {
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (!strcmp(json_string_value(json_array_get(arr, i)), s)) return 1;
    return 0;
}

/* Reads a whole text file (NUL-terminated); NULL on failure. */
static char *slurp(const char *path, st3d_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *b2 = realloc(buf, cap * 2);
        if (!b2) free(buf);
        buf = b2, cap *= 2;
    }
    fclose(f);
    if (!buf) st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
    else buf[n] = '\0';
    return buf;
}

/* Next line of *s (CR LF or LF), cut in place; NULL at the end. */
static char *next_line(char **s) {
    if (!*s || !**s) return NULL;
    char *l = *s, *e = strchr(l, '\n');
    if (e) *e = '\0', *s = e + 1;
    else *s = l + strlen(l);
    size_t n = strlen(l);
    if (n && l[n - 1] == '\r') l[n - 1] = '\0';
    return l;
}

/* Adds the segment of video_root/label/key to ann when its video exists. */
static void add_segment(json_t *ann, const char *video_root, const char *label, const char *key) {
    if (!video_root) return;
    char base[4096], path[4160];
    int folder;
    snprintf(base, sizeof base, "%s/%s/%s", video_root, label, key);
    if (st3d_resolve_video(base, path, sizeof path, &folder) != 0) return;
    st3d_error e;
    int64_t n = st3d_count_frames(path, folder, NULL, &e);
    if (n < 0) return;
    json_object_set_new(ann, "segment", json_pack("[I, I]", (json_int_t)1, (json_int_t)(n + 1)));
}

static json_t *entry(const char *subset, const char *label) {
    json_t *ann = label ? json_pack("{s:s}", "label", label) : json_object();
    return json_pack("{s:s, s:o}", "subset", subset, "annotations", ann);
}

static int ucf101(const st3d_annotation_params *p, json_t *root, st3d_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/classInd.txt", p->src);
    char *txt = slurp(path, err), *cur = txt, *l;
    if (!txt) return -1;
    json_t *labels = json_object_get(root, "labels"), *db = json_object_get(root, "database");
    while ((l = next_line(&cur)) != NULL) {
        char name[512];
        int idx;
        if (sscanf(l, "%d %511s", &idx, name) == 2) json_array_append_new(labels, json_string(name));
    }
    free(txt);
    static const char *const kinds[2][2] = {{"trainlist", "training"}, {"testlist", "validation"}};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s%02d.txt", p->src, kinds[k][0], p->split);
        if (!(txt = slurp(path, err))) return -1;
        cur = txt;
        while ((l = next_line(&cur)) != NULL) {
            char rel[1024];
            if (sscanf(l, "%1023s", rel) != 1) continue;
            char *slash = strchr(rel, '/');
            if (!slash) {
                free(txt);
                return st3d_fail(err, ST3D_ERR_FORMAT, "%s: line '%s' is not Label/video.avi", path, l);
            }
            *slash = '\0';
            char *key = slash + 1, *dot = strchr(key, '.');
            if (dot) *dot = '\0';
            json_object_set_new(db, key, entry(kinds[k][1], rel));
        }
        free(txt);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int hmdb51(const st3d_annotation_params *p, json_t *root, st3d_error *err) {
    DIR *d = opendir(p->src);
    if (!d) return st3d_fail(err, ST3D_ERR_IO, "%s: cannot list: %s", p->src, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn) break;
        names = nn;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    json_t *labels = json_object_get(root, "labels"), *db = json_object_get(root, "database");
    char want[32];
    snprintf(want, sizeof want, "split%d", p->split);
    int rc = 0;
    /* the label is the name without its last two '_' fields */
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (size_t i = 0; i < n && rc == 0; i++) {
            char label[512];
            snprintf(label, sizeof label, "%s", names[i] ? names[i] : "");
            char *u = strrchr(label, '_');
            if (u) *u = '\0';
            u = strrchr(label, '_');
            if (!u) continue;
            *u = '\0';
            if (pass == 0) { /* distinct labels, sorted (names are sorted) */
                size_t m = json_array_size(labels);
                if (!m || strcmp(json_string_value(json_array_get(labels, m - 1)), label))
                    json_array_append_new(labels, json_string(label));
                continue;
            }
            if (!strstr(names[i], want)) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", p->src, names[i]);
            char *txt = slurp(path, err), *cur = txt, *l;
            if (!txt) {
                rc = -1;
                break;
            }
            while ((l = next_line(&cur)) != NULL) {
                char vid[1024];
                int sub;
                if (sscanf(l, "%1023s %d", vid, &sub) != 2 || sub == 0) continue;
                char *dot = strchr(vid, '.');
                if (dot) *dot = '\0';
                json_object_set_new(db, vid, entry(sub == 1 ? "training" : "validation", label));
            }
            free(txt);
        }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* Splits one CSV record (RFC 4180 quoting) into at most max fields, in place. */
static int csv_fields(char *l, char **f, int max) {
    int n = 0;
    while (n < max) {
        char *out = l;
        f[n++] = l;
        if (*l == '"') {
            l++;
            for (;;) {
                if (!*l) break;
                if (*l == '"' && l[1] == '"') *out++ = '"', l += 2;
                else if (*l == '"') {
                    l++;
                    break;
                } else *out++ = *l++;
            }
            while (*l && *l != ',') l++;
        } else {
            while (*l && *l != ',') *out++ = *l++;
        }
        int end = !*l;
        *out = '\0';
        if (end) break;
        l++;
    }
    return n;
}

static int kinetics_csv(const char *path, const char *subset, json_t *root, int add_labels,
                        st3d_error *err) {
    char *txt = slurp(path, err), *cur = txt, *l;
    if (!txt) return -1;
    json_t *labels = json_object_get(root, "labels"), *db = json_object_get(root, "database");
    int col[4] = {-1, -1, -1, -1}; /* label, youtube_id, time_start, time_end */
    static const char *const names[4] = {"label", "youtube_id", "time_start", "time_end"};
    char *f[16];
    if ((l = next_line(&cur)) != NULL) {
        int n = csv_fields(l, f, 16);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 4; k++)
                if (!strcmp(f[i], names[k])) col[k] = i;
    }
    if (col[1] < 0 || col[2] < 0 || col[3] < 0) {
        free(txt);
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: no youtube_id, time_start, time_end columns", path);
    }
    int labeled = strcmp(subset, "testing") != 0 && col[0] >= 0;
    while ((l = next_line(&cur)) != NULL) {
        if (!*l) continue;
        int n = csv_fields(l, f, 16);
        if (n <= col[1] || n <= col[2] || n <= col[3] || (labeled && n <= col[0])) continue;
        char key[512];
        snprintf(key, sizeof key, "%s_%06ld_%06ld", f[col[1]], strtol(f[col[2]], NULL, 10),
                 strtol(f[col[3]], NULL, 10));
        const char *label = labeled ? f[col[0]] : NULL;
        json_object_set_new(db, key, entry(subset, label));
        if (add_labels && label && !has_string(labels, label))
            json_array_append_new(labels, json_string(label));
    }
    free(txt);
    return 0;
}

static int kinetics(const st3d_annotation_params *p, json_t *root, st3d_error *err) {
    static const char *const parts[3][2] = {
        {"train", "training"}, {"val", "validation"}, {"test", "testing"}};
    for (int k = 0; k < 3; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/kinetics-%d_%s.csv", p->src, p->n_classes, parts[k][0]);
        if (k == 2 && !st3d_is_file(path)) break; /* the test list is optional */
        if (kinetics_csv(path, parts[k][1], root, k == 0, err) != 0) return -1;
    }
    return 0;
}

static int activitynet(const st3d_annotation_params *p, json_t **rootp, st3d_error *err) {
    json_error_t je;
    json_t *root = json_load_file(p->src, 0, &je);
    if (!root)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s",
                         p->src, je.line, je.column, je.text);
    json_t *tax = json_object_get(root, "taxonomy"), *db = json_object_get(root, "database");
    if (!json_is_array(tax) || !json_is_object(db)) {
        json_decref(root);
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: not ActivityNet v1.3 (no taxonomy / database)",
                         p->src);
    }
    json_t *labels = json_array();
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(tax, i, a) {
        int leaf = 1;
        json_array_foreach(tax, j, b) if (json_equal(json_object_get(b, "parentId"),
                                                     json_object_get(a, "nodeId"))) leaf = 0;
        if (leaf) json_array_append(labels, json_object_get(a, "nodeName"));
    }
    json_object_set_new(root, "labels", labels);
    const char *key;
    json_t *v;
    json_object_foreach(db, key, v) {
        double fps = 0;
        if (p->video_root) {
            char base[4096], path[4160];
            int folder;
            snprintf(base, sizeof base, "%s/v_%s", p->video_root, key);
            if (st3d_resolve_video(base, path, sizeof path, &folder) == 0 && !folder) {
                st3d_error e;
                if (st3d_count_frames(path, 0, &fps, &e) < 0) fps = 0;
            }
        }
        if (fps <= 0) fps = p->fps;
        if (fps > 0) json_object_set_new(v, "fps", json_real(fps));
    }
    *rootp = root;
    return 0;
}

/* Keeps the classes of the comma-separated list (in its order) and the
 * videos labelled with one of them; unlabelled (test) entries stay. */
static int keep_classes(json_t *root, const char *list, st3d_error *err) {
    json_t *labels = json_object_get(root, "labels"), *keep = json_array();
    const char *s = list;
    while (*s) {
        size_t n = strcspn(s, ",");
        char name[512];
        if (n == 0 || n >= sizeof name) {
            json_decref(keep);
            return st3d_fail(err, ST3D_ERR_INVALID, "--classes '%s': an empty or too long name", list);
        }
        memcpy(name, s, n), name[n] = 0;
        if (!has_string(labels, name)) {
            json_decref(keep);
            return st3d_fail(err, ST3D_ERR_INVALID, "--classes: '%s' is not a class of the dataset", name);
        }
        json_array_append_new(keep, json_string(name));
        s += n + (s[n] == ',');
    }
    json_t *db = json_object_get(root, "database");
    const char *key;
    json_t *v, *tmp;
    json_object_foreach_safe(db, tmp, key, v) {
        json_t *l = json_object_get(json_object_get(v, "annotations"), "label");
        if (json_is_string(l) && !has_string(keep, json_string_value(l))) json_object_del(db, key);
    }
    json_object_set_new(root, "labels", keep);
    return 0;
}

static int dump_cb(FILE *f, void *user, st3d_error *err) {
    if (json_dumpf((json_t *)user, f, 0) != 0)
        return st3d_fail(err, ST3D_ERR_IO, "cannot write the annotation JSON");
    return 0;
}

int st3d_make_annotations(const st3d_annotation_params *p, const char *dst_json, int64_t *n_videos,
                          st3d_error *err) {
    json_t *root = json_pack("{s:[], s:{}}", "labels", "database");
    int rc;
    if (!strcmp(p->dataset, "ucf101")) rc = ucf101(p, root, err);
    else if (!strcmp(p->dataset, "hmdb51")) rc = hmdb51(p, root, err);
    else if (!strcmp(p->dataset, "kinetics")) rc = kinetics(p, root, err);
    else if (!strcmp(p->dataset, "activitynet")) {
        json_decref(root);
        root = NULL;
        rc = activitynet(p, &root, err);
    } else
        rc = st3d_fail(err, ST3D_ERR_INVALID,
                       "dataset '%s' is not one of ucf101, hmdb51, kinetics, activitynet", p->dataset);
    if (rc == 0 && strcmp(p->dataset, "activitynet") != 0) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(root, "database"), key, v) {
            json_t *ann = json_object_get(v, "annotations"), *l = json_object_get(ann, "label");
            add_segment(ann, p->video_root, l ? json_string_value(l) : "test", key);
        }
    }
    if (rc == 0 && p->classes) {
        if (!strcmp(p->dataset, "activitynet"))
            rc = st3d_fail(err, ST3D_ERR_INVALID, "--classes: not for activitynet");
        else
            rc = keep_classes(root, p->classes, err);
    }
    if (rc == 0) {
        if (n_videos) *n_videos = (int64_t)json_object_size(json_object_get(root, "database"));
        rc = st3d_write_atomic(dst_json, dump_cb, root, err);
    }
    json_decref(root);
    return rc;
}

/*
 * inputs.c - see inputs.h.  Output names: a video found in a folder D is
 * named by its path under D; a video named on the command line or in a
 * list by its path as written when that is relative and has no "..", else
 * by its file name; the extension is dropped either way.  Sharding keeps
 * every N-th video of the full list, so N processes given the same inputs
 * split them without talking to each other and together cover them once.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli/inputs.h"
#include "cli.h"
#include "io/video.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const EXTS[] = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg",
                                   ".mpeg", ".flv", ".ogv", ".3gp", ".ts", ".wmv", ".y4m"};

int cli_is_video_name(const char *name, const char *ext) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (!dot || base[0] == '.') return 0;
    if (ext) return !strcmp(dot, ext);
    for (size_t i = 0; i < sizeof EXTS / sizeof EXTS[0]; i++)
        if (!strcmp(dot, EXTS[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char **cli_list_dir(const char *dir, size_t *n) {
    DIR *d = opendir(dir);
    *n = 0;
    if (!d) return NULL;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char **v2 = realloc(v, (*n + 1) * sizeof *v);
        if (!v2) break;
        v = v2;
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v) qsort(v, *n, sizeof *v, cmp_str);
    else v = calloc(1, sizeof *v);
    return v;
}

void cli_mkdirs(const char *path) {
    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *c = tmp + 1; *c; c++)
        if (*c == '/') {
            *c = '\0';
            mkdir(tmp, 0777);
            *c = '/';
        }
    mkdir(tmp, 0777);
}

void cli_stem(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s", name);
    char *slash = strrchr(out, '/');
    char *dot = strrchr(slash ? slash + 1 : out, '.');
    if (dot && dot != (slash ? slash + 1 : out)) *dot = '\0';
}

int cli_inputs_add_one(cli_inputs *in, const char *path, const char *name) {
    if (in->n == in->cap) {
        int64_t cap = in->cap ? 2 * in->cap : 64;
        cli_input *v = realloc(in->v, (size_t)cap * sizeof *v);
        if (!v) return cli_errorf("out of memory");
        in->v = v, in->cap = cap;
    }
    char stem[4096];
    cli_stem(name, stem, sizeof stem);
    cli_input *e = &in->v[in->n];
    e->path = strdup(path);
    e->name = strdup(stem);
    if (!e->path || !e->name) return cli_errorf("out of memory");
    in->n++;
    return 0;
}

/* The output name of a path given directly or in a list. */
static const char *direct_name(const char *path) {
    if (path[0] != '/' && !strstr(path, "..")) return path[0] == '.' && path[1] == '/' ? path + 2 : path;
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The videos under dir, named by their path under top (rel: that path). */
static int add_dir(cli_inputs *in, const char *dir, const char *rel) {
    size_t n;
    char **names = cli_list_dir(dir, &n);
    if (!names) return cli_errorf("%s: cannot read the folder", dir);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char p[8192], r[8192];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        if (st3d_is_dir(p)) rc = add_dir(in, p, r);
        else if (cli_is_video_name(names[i], NULL)) rc = cli_inputs_add_one(in, p, r);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* One path from a list, under root when given. */
static int add_listed(cli_inputs *in, const char *line, const char *root) {
    char p[8192];
    int k = root && line[0] != '/' ? snprintf(p, sizeof p, "%s/%s", root, line)
                                   : snprintf(p, sizeof p, "%s", line);
    if (k < 0 || (size_t)k >= sizeof p) return cli_errorf("%s: path too long", line);
    if (st3d_is_dir(p)) return add_dir(in, p, direct_name(line));
    return cli_inputs_add_one(in, p, direct_name(line));
}

static int add_list(cli_inputs *in, FILE *f, const char *root) {
    char line[8192];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') continue;
        rc = add_listed(in, line, root);
    }
    return rc;
}

int cli_inputs_add(cli_inputs *in, const char *arg, const char *root) {
    if (!strcmp(arg, "-")) return add_list(in, stdin, root);
    if (st3d_is_dir(arg)) return add_dir(in, arg, "");
    if (!st3d_is_file(arg) || cli_is_video_name(arg, NULL)) return cli_inputs_add_one(in, arg, direct_name(arg));
    FILE *f = fopen(arg, "r");
    if (!f) return cli_errorf("%s: cannot open the list", arg);
    int rc = add_list(in, f, root);
    fclose(f);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const cli_input *const *)a)->name, (*(const cli_input *const *)b)->name);
}

int cli_inputs_shard(cli_inputs *in, int index, int count) {
    int64_t k = 0;
    for (int64_t i = 0; i < in->n; i++) {
        if (i % count == index) in->v[k++] = in->v[i];
        else free(in->v[i].path), free(in->v[i].name);
    }
    in->n = k;
    /* two videos writing one output would overwrite each other */
    const cli_input **s = malloc((size_t)(k ? k : 1) * sizeof *s);
    if (!s) return cli_errorf("out of memory");
    for (int64_t i = 0; i < k; i++) s[i] = &in->v[i];
    qsort(s, (size_t)k, sizeof *s, cmp_name);
    int rc = 0;
    for (int64_t i = 1; i < k && !rc; i++)
        if (!strcmp(s[i - 1]->name, s[i]->name))
            rc = cli_errorf("%s and %s would both write the outputs named '%s'", s[i - 1]->path,
                            s[i]->path, s[i]->name);
    free(s);
    return rc;
}

void cli_inputs_free(cli_inputs *in) {
    for (int64_t i = 0; i < in->n; i++) free(in->v[i].path), free(in->v[i].name);
    free(in->v);
    memset(in, 0, sizeof *in);
}

int cli_parse_shard(const char *s, int *index, int *count) {
    char *end;
    long k = strtol(s, &end, 10);
    if (end == s || *end != '/') return cli_errorf("--shard: expected K/N, got '%s'", s);
    const char *t = end + 1;
    long n = strtol(t, &end, 10);
    if (end == t || *end || n < 1 || n > 1000000 || k < 0 || k >= n)
        return cli_errorf("--shard: expected K/N with 0 <= K < N, got '%s'", s);
    *index = (int)k, *count = (int)n;
    return 0;
}

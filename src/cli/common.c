/*
 * common.c - option parsing and error printing shared by all subcommands.
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const st3d_error *err) {
    fprintf(stderr, "st3d: %s\n", err->msg[0] ? err->msg : st3d_status_name(err->code));
    return 1;
}

int cli_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("st3d: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_opt_is(const char *arg, const char *name) {
    if (strncmp(arg, "--", 2) != 0) return 0;
    arg += 2;
    for (; *arg && *name; arg++, name++) {
        char a = *arg == '_' ? '-' : *arg;
        if (a != *name) return 0;
    }
    return *arg == '\0' && *name == '\0';
}

int cli_parse_int(const char *opt, const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -2147483647L || v > 2147483647L) {
        cli_errorf("%s: expected an integer, got '%s'", opt, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) {
        cli_errorf("%s: expected a number, got '%s'", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Reads class names into a JSON array (one per line, or "labels" of a JSON
 * annotation file as the original code writes). */
json_t *cli_read_labels(const char *path) {
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".json")) {
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!root) {
            cli_errorf("%s: line %d: %s", path, je.line, je.text);
            return NULL;
        }
        json_t *labels = json_object_get(root, "labels");
        if (!json_is_array(labels)) {
            json_decref(root);
            cli_errorf("%s: no \"labels\" list", path);
            return NULL;
        }
        json_incref(labels);
        json_decref(root);
        return labels;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_errorf("%s: cannot open", path);
        return NULL;
    }
    json_t *arr = json_array();
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len) json_array_append_new(arr, json_string(line));
    }
    fclose(f);
    return arr;
}

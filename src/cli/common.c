/*
 * common.c - option parsing and error printing shared by all subcommands.
 */
#include "cli.h"

#include <errno.h>
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

/*
 * logger.c - the original's Logger (utils.py): a tab-separated log with a
 * header row, written through Python's csv module, so rows end in "\r\n",
 * and every value printed as Python prints it (str(x): the shortest decimal
 * that reads back as the same double, "0.1", "1e-05", "3.0").  train.log,
 * train_batch.log and val.log of `st3d train` are written this way, and so
 * read by anything that reads the original's.
 *
 * Resuming keeps the rows of the epochs already done (the original opens
 * its logs afresh and loses them) and appends after them.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct st3d_logger {
    FILE *f;            /* open for appending */
    char path[4096];    /* for errors */
    int n_columns;      /* values per row */
};

/* Python's repr of a double: shortest round-trip digits; exponent form when
 * the decimal exponent is < -4 or >= 16; a ".0" on integral values. */
static void python_repr(double v, char *out, size_t cap) {
    if (isnan(v)) { snprintf(out, cap, "nan"); return; }
    if (isinf(v)) { snprintf(out, cap, v < 0 ? "-inf" : "inf"); return; }
    char e[64];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    snprintf(e, sizeof e, "%.*e", prec - 1, v);
    /* e = [-]d[.ddd]e[+-]XX: split digits and exponent */
    char digits[32];
    int nd = 0, neg = e[0] == '-';
    const char *c = e + neg;
    for (; *c && *c != 'e'; c++)
        if (*c != '.') digits[nd++] = *c;
    digits[nd] = 0;
    int exp10 = atoi(c + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    char *o = out;
    size_t left = cap;
#define PUT(...) do { int w_ = snprintf(o, left, __VA_ARGS__); if (w_ < 0 || (size_t)w_ >= left) return; o += w_; left -= (size_t)w_; } while (0)
    if (neg) PUT("-");
    if (exp10 < -4 || exp10 >= 16) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 < 0) {
        PUT("0.");
        for (int i = 0; i < -exp10 - 1; i++) PUT("0");
        PUT("%s", digits);
    } else {
        for (int i = 0; i <= exp10; i++) PUT("%c", i < nd ? digits[i] : '0');
        PUT(".");
        if (nd > exp10 + 1) PUT("%s", digits + exp10 + 1);
        else PUT("0");
    }
#undef PUT
}

/* Keeps the header and the rows whose first field is an integer below
 * keep_until; returns the kept text (malloc'ed) or NULL with err. */
static char *kept_rows(const char *path, int64_t keep_until, st3d_error *err) {
    FILE *f = fopen(path, "rb");
    char *kept = st3d_calloc(1, 1, err);
    if (!kept) { if (f) fclose(f); return NULL; }
    if (!f) return kept; /* nothing logged yet */
    size_t len = 0, cap = 1;
    char line[8192];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (!first) {
            char *end;
            long long ep = strtoll(line, &end, 10);
            if (end == line || *end != '\t' || ep >= keep_until) { first = 0; continue; }
        }
        first = 0;
        size_t n = strlen(line);
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            char *k = realloc(kept, cap);
            if (!k) { free(kept); fclose(f); st3d_fail(err, ST3D_ERR_NOMEM, "out of memory"); return NULL; }
            kept = k;
        }
        memcpy(kept + len, line, n + 1);
        len += n;
    }
    fclose(f);
    return kept;
}

st3d_logger *st3d_logger_open(const char *path, const char *const *columns, int n_columns,
                              int64_t keep_until, st3d_error *err) {
    if (n_columns < 1) {
        st3d_fail(err, ST3D_ERR_INVALID, "%s: a log needs at least one column", path);
        return NULL;
    }
    char *kept = keep_until > 0 ? kept_rows(path, keep_until, err) : NULL;
    if (keep_until > 0 && !kept) return NULL;
    st3d_logger *L = st3d_calloc(1, sizeof *L, err);
    if (!L) { free(kept); return NULL; }
    snprintf(L->path, sizeof L->path, "%s", path);
    L->n_columns = n_columns;
    L->f = fopen(path, "wb");
    if (!L->f) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(kept);
        free(L);
        return NULL;
    }
    if (kept && *kept) {
        fputs(kept, L->f);
    } else {
        for (int i = 0; i < n_columns; i++) fprintf(L->f, "%s%s", i ? "\t" : "", columns[i]);
        fputs("\r\n", L->f);
    }
    free(kept);
    if (fflush(L->f) != 0) {
        st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        st3d_logger_close(L);
        return NULL;
    }
    return L;
}

int st3d_logger_log(st3d_logger *L, const double *values, const int *is_int, st3d_error *err) {
    char buf[64];
    for (int i = 0; i < L->n_columns; i++) {
        if (is_int && is_int[i]) snprintf(buf, sizeof buf, "%lld", (long long)values[i]);
        else python_repr(values[i], buf, sizeof buf);
        fprintf(L->f, "%s%s", i ? "\t" : "", buf);
    }
    fputs("\r\n", L->f);
    if (fflush(L->f) != 0)
        return st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", L->path, strerror(errno));
    return 0;
}

void st3d_logger_close(st3d_logger *L) {
    if (!L) return;
    if (L->f) fclose(L->f);
    free(L);
}

/*
 * eval_logs.c - reads the per-epoch logs of a training run as the original
 * 3D-ResNets-PyTorch writes them.  Its Logger (utils.py) is a csv.writer
 * with delimiter '\t' over a file opened in text mode: a header row of
 * column names, then one row per epoch, each ended by csv's default
 * "\r\n"; values are Python's str() of floats and ints ("0.1", "1e-05",
 * "nan").  main.py logs train.log with epoch, loss, acc, lr and val.log
 * with epoch, loss, acc.  Columns are found by name in the header, so
 * extra columns or another order are accepted; blank lines are skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include "train/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns kept, in eval_log order. */
enum { COL_EPOCH, COL_LOSS, COL_ACC, COL_LR, N_COLS };
static const char *const COL_NAMES[N_COLS] = {"epoch", "loss", "acc", "lr"};

/* Most fields a row may have (the original's logs have 3 or 4; batch logs 6). */
#define MAX_FIELDS 64

/* Splits line in place at tabs into at most MAX_FIELDS fields, each without
 * surrounding spaces or one pair of csv's double quotes.  Returns the field
 * count, or -1 when there are more. */
static int split_fields(char *line, char **fields) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (tab) *tab = '\0';
        if (n == MAX_FIELDS) return -1;
        while (*p == ' ') p++;
        size_t len = strlen(p);
        while (len > 0 && p[len - 1] == ' ') p[--len] = '\0';
        if (len >= 2 && p[0] == '"' && p[len - 1] == '"') p[len - 1] = '\0', p++;
        fields[n++] = p;
        if (!tab) return n;
        p = tab + 1;
    }
}

/* Appends one row's kept values (vals: N_COLS, lr may be unused). */
static int push_row(eval_log *log, int64_t *cap, const double *vals, int has_lr,
                    st3d_error *err) {
    if (log->n == *cap) {
        int64_t c = *cap ? 2 * *cap : 64;
        double **arrs[N_COLS] = {&log->epoch, &log->loss, &log->acc, &log->lr};
        for (int k = 0; k < N_COLS; k++) {
            if (k == COL_LR && !has_lr) continue;
            double *p = realloc(*arrs[k], (size_t)c * sizeof *p);
            if (!p) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory reading a log");
            *arrs[k] = p;
        }
        *cap = c;
    }
    log->epoch[log->n] = vals[COL_EPOCH];
    log->loss[log->n] = vals[COL_LOSS];
    log->acc[log->n] = vals[COL_ACC];
    if (has_lr) log->lr[log->n] = vals[COL_LR];
    log->n++;
    return 0;
}

void eval_log_free(eval_log *log) {
    if (!log) return;
    free(log->epoch), free(log->loss), free(log->acc), free(log->lr);
    memset(log, 0, sizeof *log);
}

int eval_log_read(const char *path, eval_log *log, st3d_error *err) {
    memset(log, 0, sizeof *log);
    FILE *f = fopen(path, "rb");
    if (!f) return st3d_fail(err, ST3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL, *fields[MAX_FIELDS];
    size_t line_cap = 0;
    int col[N_COLS] = {-1, -1, -1, -1}, n_header = 0, rc = 0;
    int64_t lineno = 0, cap = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if ((size_t)len != strlen(line)) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: line %lld: a NUL byte (not a text log)",
                           path, (long long)lineno);
            break;
        }
        if (len == 0) continue;
        int n = split_fields(line, fields);
        if (n < 0) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: line %lld: more than %d fields", path,
                           (long long)lineno, MAX_FIELDS);
            break;
        }
        if (n_header == 0) { /* the header row */
            n_header = n;
            for (int i = 0; i < n; i++)
                for (int k = 0; k < N_COLS; k++)
                    if (col[k] < 0 && !strcmp(fields[i], COL_NAMES[k])) col[k] = i;
            for (int k = 0; k < COL_LR && rc == 0; k++)
                if (col[k] < 0)
                    rc = st3d_fail(err, ST3D_ERR_FORMAT,
                                   "%s: line %lld: the header has no '%s' column (expected "
                                   "the original Logger's epoch, loss, acc[, lr], tab-separated)",
                                   path, (long long)lineno, COL_NAMES[k]);
            if (rc) break;
            continue;
        }
        if (n != n_header) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: line %lld: %d fields, the header has %d",
                           path, (long long)lineno, n, n_header);
            break;
        }
        double vals[N_COLS] = {0, 0, 0, 0};
        for (int k = 0; k < N_COLS && rc == 0; k++) {
            if (col[k] < 0) continue;
            const char *s = fields[col[k]];
            char *end;
            errno = 0;
            vals[k] = strtod(s, &end);
            if (end == s || *end)
                rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: line %lld: %s '%s' is not a number",
                               path, (long long)lineno, COL_NAMES[k], s);
            else if (k == COL_EPOCH && !isfinite(vals[k]))
                rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: line %lld: epoch '%s' is not finite",
                               path, (long long)lineno, s);
        }
        if (rc || (rc = push_row(log, &cap, vals, col[COL_LR] >= 0, err)) != 0) break;
    }
    if (rc == 0 && ferror(f))
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: read error: %s", path, strerror(errno));
    if (rc == 0 && n_header == 0)
        rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: empty (no header row)", path);
    free(line);
    fclose(f);
    if (rc != 0) eval_log_free(log);
    return rc;
}

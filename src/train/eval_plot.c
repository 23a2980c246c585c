/*
 * eval_plot.c - st3d_plot_curves: the loss and accuracy of a training run,
 * per epoch, from the original code's train.log and val.log (eval_logs.c),
 * drawn as the learning-curve figures of Hara et al.: two panels side by
 * side (loss, accuracy), epoch on the x axis, training and validation as
 * lines with one legend, ticks at round numbers with light grid lines.
 *
 * Geometry, which tests/eval relies on: the picture is PLOT_W x PLOT_H;
 * each panel's plot area is framed by a 1-pixel black rectangle; the x axis
 * spans exactly the first to the last epoch logged (either file); the loss
 * axis runs from 0 (or the lowest loss when negative) up to the highest
 * loss rounded up to a tick; the accuracy axis is [0, 1] when every value
 * lies there (the original logs fractions), else rounded like the loss.
 * Non-finite values (a diverged run's "nan") break the line.
 */
#define _POSIX_C_SOURCE 200809L
#include "train/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PLOT_W 1200 /* picture width, pixels */
#define PLOT_H 520  /* picture height */
#define MARKERS_UP_TO 60 /* points per line drawn with a marker, at most */

static const eval_rgb TRAIN_RGB = {0.122, 0.467, 0.706}; /* blue */
static const eval_rgb VAL_RGB = {1.000, 0.498, 0.055};   /* orange */
static const eval_rgb GRID_RGB = {0.88, 0.88, 0.88};

/* One panel: its plot area and axis ranges. */
typedef struct panel {
    int x0, y0, x1, y1;  /* plot area, pixels: frame lines at these columns and rows */
    double xlo, xhi;     /* epoch range of the x axis */
    eval_ticks xt;       /* x ticks (step only; range is xlo..xhi) */
    eval_ticks yt;       /* y ticks; yt.lo .. yt.hi is the y axis */
    const char *title;   /* above the plot area */
    const char *ylabel;  /* left of the y tick labels, reading upwards */
} panel;

/* One line: n points (x[i], y[i]). */
typedef struct series {
    const double *x, *y; /* epochs and values */
    int64_t n;           /* points */
    eval_rgb color;      /* line and marker colour */
} series;

static double px_x(const panel *p, double x) {
    return p->x0 + (x - p->xlo) / (p->xhi - p->xlo) * (p->x1 - p->x0);
}
static double px_y(const panel *p, double y) {
    return p->y1 - (y - p->yt.lo) / (p->yt.hi - p->yt.lo) * (p->y1 - p->y0);
}

/* Widens [*lo, *hi] by the finite values of v; *any is set when one is met. */
static void widen(const double *v, int64_t n, double *lo, double *hi, int *any) {
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        if (!*any || v[i] < *lo) *lo = v[i];
        if (!*any || v[i] > *hi) *hi = v[i];
        *any = 1;
    }
}

static void draw_axes(cairo_t *cr, const panel *p) {
    char buf[64];
    cairo_set_line_width(cr, 1.0);
    /* grid and ticks: y */
    eval_font(cr, 12, 0);
    /* (at most 50 ticks: epochs or values so large that k + 1 == k would
     * otherwise never end the loop) */
    double k0 = round(p->yt.lo / p->yt.step);
    for (double k = k0; k * p->yt.step <= p->yt.hi + 1e-9 * p->yt.step && k < k0 + 50; k++) {
        double v = k * p->yt.step, y = floor(px_y(p, v)) + 0.5;
        eval_set_rgb(cr, GRID_RGB);
        cairo_move_to(cr, p->x0, y), cairo_line_to(cr, p->x1, y), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, p->x0 - 5, y), cairo_line_to(cr, p->x0, y), cairo_stroke(cr);
        eval_format(buf, sizeof buf, v, p->yt.decimals);
        eval_text(cr, buf, p->x0 - 8, y, 1.0, 0.5, 0);
    }
    /* grid and ticks: x, at whole multiples of the step inside the range */
    k0 = ceil(p->xlo / p->xt.step - 1e-9);
    for (double k = k0; k * p->xt.step <= p->xhi + 1e-9 && k < k0 + 50; k++) {
        double v = k * p->xt.step, x = floor(px_x(p, v)) + 0.5;
        eval_set_rgb(cr, GRID_RGB);
        cairo_move_to(cr, x, p->y0), cairo_line_to(cr, x, p->y1), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, p->y1), cairo_line_to(cr, x, p->y1 + 5), cairo_stroke(cr);
        eval_format(buf, sizeof buf, v, p->xt.decimals);
        eval_text(cr, buf, x, p->y1 + 9, 0.5, 0.0, 0);
    }
    /* the frame, on pixel centres so that it is one crisp black pixel wide */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, p->x0 + 0.5, p->y0 + 0.5, p->x1 - p->x0, p->y1 - p->y0);
    cairo_stroke(cr);
    /* labels */
    eval_font(cr, 14, 0);
    eval_text(cr, "epoch", 0.5 * (p->x0 + p->x1), p->y1 + 40, 0.5, 0.0, 0);
    eval_text(cr, p->ylabel, p->x0 - 58, 0.5 * (p->y0 + p->y1), 0.5, 0.0, -EVAL_PI / 2);
    eval_font(cr, 14, 1);
    eval_text(cr, p->title, 0.5 * (p->x0 + p->x1), p->y0 - 10, 0.5, 1.0, 0);
}

static void draw_series(cairo_t *cr, const panel *p, const series *s) {
    cairo_save(cr);
    /* every finite value lies inside the axes; the clip only spares the
     * frame's neighbours from a stray stroke, and leaves markers at the
     * first and last epochs whole */
    cairo_rectangle(cr, p->x0 - 5, p->y0 - 5, p->x1 - p->x0 + 10, p->y1 - p->y0 + 10);
    cairo_clip(cr);
    eval_set_rgb(cr, s->color);
    cairo_set_line_width(cr, 2.0);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    int open = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i])) { /* a gap */
            open = 0;
            continue;
        }
        double x = px_x(p, s->x[i]), y = px_y(p, s->y[i]);
        if (open) cairo_line_to(cr, x, y);
        else cairo_move_to(cr, x, y);
        open = 1;
    }
    cairo_stroke(cr);
    if (s->n <= MARKERS_UP_TO) {
        for (int64_t i = 0; i < s->n; i++) {
            if (!isfinite(s->y[i])) continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, px_x(p, s->x[i]), px_y(p, s->y[i]), 3.5, 0, 2 * EVAL_PI);
        }
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

/* One legend for both panels, centred under the title. */
static void draw_legend(cairo_t *cr, int with_val, double y) {
    const char *names[2] = {"training", "validation"};
    const eval_rgb colors[2] = {TRAIN_RGB, VAL_RGB};
    int n = with_val ? 2 : 1;
    eval_font(cr, 14, 0);
    double w = 0;
    for (int i = 0; i < n; i++) w += 36 + eval_text_width(cr, names[i]) + (i ? 24 : 0);
    double x = 0.5 * (PLOT_W - w);
    for (int i = 0; i < n; i++) {
        eval_set_rgb(cr, colors[i]);
        cairo_set_line_width(cr, 2.0);
        cairo_move_to(cr, x, y), cairo_line_to(cr, x + 28, y), cairo_stroke(cr);
        cairo_arc(cr, x + 14, y, 3.5, 0, 2 * EVAL_PI), cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        eval_text(cr, names[i], x + 36, y, 0.0, 0.5, 0);
        x += 36 + eval_text_width(cr, names[i]) + 24;
    }
}

/* "lowest validation loss 1.234 (epoch 7)" style notes for a panel title. */
static void best_note(char *buf, size_t cap, const char *what, const eval_log *v, const double *y,
                      int lowest) {
    int64_t best = -1;
    for (int64_t i = 0; i < v->n; i++)
        if (isfinite(y[i]) && (best < 0 || (lowest ? y[i] < y[best] : y[i] > y[best]))) best = i;
    if (best < 0) snprintf(buf, cap, "%s", what);
    else
        snprintf(buf, cap, "%s (%s validation %.4g, epoch %.10g)", what,
                 lowest ? "lowest" : "best", y[best], v->epoch[best]);
}

/* The last path component of a folder name, without trailing slashes. */
static void folder_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), path + b);
}

static int draw(const eval_log *tr, const eval_log *va, const char *result_path,
                const char *png_path, st3d_error *err) {
    panel pl;
    memset(&pl, 0, sizeof pl);
    pl.x0 = 80, pl.y0 = 92, pl.x1 = PLOT_W / 2 - 30, pl.y1 = PLOT_H - 62, pl.ylabel = "loss";
    panel pa = pl;
    pa.x0 += PLOT_W / 2, pa.x1 += PLOT_W / 2, pa.ylabel = "accuracy";
    /* x: exactly the epochs logged */
    double lo = 0, hi = 0;
    int any = 0;
    widen(tr->epoch, tr->n, &lo, &hi, &any);
    widen(va->epoch, va->n, &lo, &hi, &any);
    if (hi == lo) { /* one epoch: a little room either side */
        double d = fmax(1.0, 0.01 * fabs(lo));
        lo -= d, hi += d;
    }
    pl.xlo = pa.xlo = lo, pl.xhi = pa.xhi = hi;
    pl.xt = eval_nice_ticks(lo, hi, 8);
    if (pl.xt.step < 1 && floor(lo) == lo && floor(hi) == hi) pl.xt.step = 1, pl.xt.decimals = 0;
    pa.xt = pl.xt;
    /* y: loss from 0, accuracy [0, 1] */
    any = 0, lo = hi = 0;
    widen(tr->loss, tr->n, &lo, &hi, &any);
    widen(va->loss, va->n, &lo, &hi, &any);
    pl.yt = any ? eval_nice_ticks(fmin(lo, 0.0), hi, 6) : eval_nice_ticks(0, 1, 5);
    any = 0, lo = hi = 0;
    widen(tr->acc, tr->n, &lo, &hi, &any);
    widen(va->acc, va->n, &lo, &hi, &any);
    pa.yt = !any || (lo >= 0 && hi <= 1) ? eval_nice_ticks(0, 1, 5)
                                         : eval_nice_ticks(fmin(lo, 0.0), hi, 6);
    char tl[160], ta[160], title[400], name[200];
    best_note(tl, sizeof tl, "loss", va, va->loss, 1);
    best_note(ta, sizeof ta, "accuracy", va, va->acc, 0);
    pl.title = tl, pa.title = ta;
    folder_name(result_path, name, sizeof name);
    snprintf(title, sizeof title, "%s: %lld training epoch%s%s", name, (long long)tr->n,
             tr->n == 1 ? "" : "s", va->n ? "" : " (no validation epochs)");

    cairo_surface_t *surface;
    cairo_t *cr;
    if (eval_canvas(PLOT_W, PLOT_H, &surface, &cr, err) != 0) return -1;
    cairo_set_source_rgb(cr, 0, 0, 0);
    eval_font(cr, 18, 1);
    eval_text(cr, title, 0.5 * PLOT_W, 16, 0.5, 0.0, 0);
    draw_legend(cr, va->n > 0, 56);
    const panel *panels[2] = {&pl, &pa};
    for (int k = 0; k < 2; k++) {
        draw_axes(cr, panels[k]);
        series st = {tr->epoch, k ? tr->acc : tr->loss, tr->n, TRAIN_RGB};
        series sv = {va->epoch, k ? va->acc : va->loss, va->n, VAL_RGB};
        draw_series(cr, panels[k], &st);
        if (va->n) draw_series(cr, panels[k], &sv);
    }
    int rc = cairo_status(cr) == CAIRO_STATUS_SUCCESS ? eval_write_png(surface, png_path, err) : 0;
    if (eval_canvas_finish(surface, cr, png_path, err) != 0) rc = -1;
    return rc;
}

int st3d_plot_curves(const char *result_path, const char *png_path, st3d_error *err) {
    if (!result_path)
        return st3d_fail(err, ST3D_ERR_INVALID, "st3d_plot_curves: no result path");
    size_t n = strlen(result_path) + 32;
    char *train = st3d_malloc(3 * n, err);
    if (!train) return -1;
    char *val = train + n, *png = train + 2 * n;
    snprintf(train, n, "%s/train.log", result_path);
    snprintf(val, n, "%s/val.log", result_path);
    snprintf(png, n, "%s/curves.png", result_path);
    eval_log tr, va;
    memset(&va, 0, sizeof va);
    int rc = eval_log_read(train, &tr, err);
    if (rc == 0 && tr.n == 0)
        rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: no epochs logged (only the header)", train);
    struct stat sb;
    if (rc == 0 && !(stat(val, &sb) != 0 && errno == ENOENT)) /* val.log is optional */
        rc = eval_log_read(val, &va, err);
    if (rc == 0) rc = draw(&tr, &va, result_path, png_path ? png_path : png, err);
    eval_log_free(&tr);
    eval_log_free(&va);
    free(train);
    return rc;
}

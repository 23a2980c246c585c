/*
 * eval_confusion.c - st3d_eval_plot_confusion: the top-1 confusion matrix
 * of an evaluation as a picture.  Row i is true class i, column j the
 * classes predicted first; each row is divided by its videos present in
 * the results, so a cell is the fraction of that class's videos given that
 * prediction and the diagonal is the per-class accuracy.  A row without any
 * video is grey.  Colours run from near-white (0) to dark blue (1) with a
 * scale at the right.
 *
 * Readability from a handful of classes to Kinetics-700: cells are as large
 * as fits about 1200 pixels (56 at most, 11 at least while names are
 * shown), class names label both axes (columns written upwards) in type
 * scaled to the cell, up to NAMES_UP_TO classes; beyond that the names go
 * and cells shrink to fit 1000 pixels.  Fractions are written in cells of
 * 36 pixels and more.  The matrix is framed by a 1-pixel black rectangle
 * just outside its cells (tests/eval finds it).
 */
#include "train/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_UP_TO 150 /* most classes whose names are written */

/* The colour scale: stops of a white-to-blue ramp, linearly interpolated. */
static eval_rgb ramp(double v) {
    static const eval_rgb STOPS[5] = {{0.969, 0.984, 1.000},
                                      {0.776, 0.859, 0.937},
                                      {0.420, 0.682, 0.839},
                                      {0.129, 0.443, 0.710},
                                      {0.031, 0.188, 0.420}};
    if (!(v > 0)) return STOPS[0];
    if (v >= 1) return STOPS[4];
    double t = v * 4;
    int i = (int)t;
    double f = t - i;
    eval_rgb a = STOPS[i], b = STOPS[i + 1], c = {a.r + f * (b.r - a.r), a.g + f * (b.g - a.g),
                                                  a.b + f * (b.b - a.b)};
    return c;
}

/* Layout of the picture. */
typedef struct layout {
    int n;          /* classes */
    int cell;       /* cell side, pixels */
    int names;      /* 1: class names are written */
    double font;    /* their type size */
    double name_w;  /* widest class name in that type, pixels (0 without names) */
    int x0, y0;     /* top-left pixel of the first cell */
    int w, h;       /* picture size */
} layout;

static void plan(const st3d_eval *ev, cairo_t *probe, layout *L) {
    int n = (int)ev->n_classes;
    L->n = n;
    L->names = n <= NAMES_UP_TO;
    if (L->names) {
        L->cell = 1200 / n;
        if (L->cell > 56) L->cell = 56;
        if (L->cell < 11) L->cell = 11;
        L->font = fmin(13.0, 0.85 * L->cell);
    } else {
        L->cell = 1000 / n > 1 ? 1000 / n : 1;
        L->font = 0;
    }
    double name_w = 0;
    if (L->names) {
        eval_font(probe, L->font, 0);
        for (int i = 0; i < n; i++)
            name_w = fmax(name_w, eval_text_width(probe, ev->classes[i].label));
    }
    L->name_w = name_w;
    int side = n * L->cell;
    L->x0 = 40 + (int)ceil(name_w) + 10;
    L->y0 = 84;
    L->w = L->x0 + side + 130;
    L->h = L->y0 + side + (int)ceil(name_w) + 10 + 46;
    if (L->w < 860) { /* room for the title */
        L->x0 += (860 - L->w) / 2;
        L->w = 860;
    }
}

static void draw_scale(cairo_t *cr, const layout *L) {
    int side = L->n * L->cell, x = L->x0 + side + 30, bw = 18;
    int h = side < 200 ? side : side > 600 ? 600 : side, y = L->y0;
    for (int i = 0; i < h; i++) {
        eval_set_rgb(cr, ramp(1.0 - (double)i / (h - 1)));
        cairo_rectangle(cr, x, y + i, bw, 1);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x - 0.5, y - 0.5, bw + 1, h + 1);
    cairo_stroke(cr);
    eval_font(cr, 12, 0);
    char buf[16];
    for (int k = 0; k <= 5; k++) {
        double yy = floor(y + (h - 1) * (1.0 - k / 5.0)) + 0.5;
        cairo_move_to(cr, x + bw, yy), cairo_line_to(cr, x + bw + 4, yy), cairo_stroke(cr);
        eval_format(buf, sizeof buf, k / 5.0, 1);
        eval_text(cr, buf, x + bw + 7, yy, 0.0, 0.5, 0);
    }
}

int st3d_eval_plot_confusion(const st3d_eval *ev, const char *png_path, st3d_error *err) {
    if (!ev || ev->n_classes < 1)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: no classes to draw", png_path);
    if (ev->n_classes > 4000)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: %lld classes are too many to draw",
                         png_path, (long long)ev->n_classes);
    cairo_surface_t *surface;
    cairo_t *cr;
    if (eval_canvas(1, 1, &surface, &cr, err) != 0) return -1; /* to measure text */
    layout L;
    plan(ev, cr, &L);
    eval_canvas_finish(surface, cr, png_path, NULL);
    if (eval_canvas(L.w, L.h, &surface, &cr, err) != 0) return -1;
    int n = L.n, c = L.cell, side = n * c;
    char buf[256];
    /* title */
    cairo_set_source_rgb(cr, 0, 0, 0);
    eval_font(cr, 17, 1);
    snprintf(buf, sizeof buf, "Confusion matrix, %s: %lld videos, top-1 %.4f, top-%d %.4f",
             ev->subset, (long long)ev->n_counted, ev->top1, ev->top_k, ev->topk);
    eval_text(cr, buf, 0.5 * L.w, 14, 0.5, 0.0, 0);
    eval_font(cr, 13, 0);
    if (ev->n_missing)
        snprintf(buf, sizeof buf,
                 "rows: true class; columns: top-1 prediction; each row divided by its videos "
                 "in the results (%lld missing, %s)",
                 (long long)ev->n_missing, ev->ignore_missing ? "left out" : "counted wrong");
    else
        snprintf(buf, sizeof buf,
                 "rows: true class; columns: top-1 prediction; each row divided by its videos");
    eval_text(cr, buf, 0.5 * L.w, 42, 0.5, 0.0, 0);
    /* cells */
    for (int i = 0; i < n; i++) {
        int64_t row = 0;
        for (int j = 0; j < n; j++) row += ev->confusion[(int64_t)i * n + j];
        for (int j = 0; j < n; j++) {
            double v = row ? (double)ev->confusion[(int64_t)i * n + j] / (double)row : 0;
            if (row) eval_set_rgb(cr, ramp(v));
            else cairo_set_source_rgb(cr, 0.82, 0.82, 0.82);
            cairo_rectangle(cr, L.x0 + j * c, L.y0 + i * c, c, c);
            cairo_fill(cr);
            if (row && c >= 36 && ev->confusion[(int64_t)i * n + j] > 0) {
                double g = v > 0.5 ? 1.0 : 0.0;
                cairo_set_source_rgb(cr, g, g, g);
                eval_font(cr, fmin(13.0, 0.3 * c), 0);
                eval_format(buf, sizeof buf, v, 2);
                eval_text(cr, buf, L.x0 + (j + 0.5) * c, L.y0 + (i + 0.5) * c, 0.5, 0.5, 0);
            }
        }
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L.x0 - 0.5, L.y0 - 0.5, side + 1, side + 1);
    cairo_stroke(cr);
    /* class names: rows at the left, columns below, written upwards */
    if (L.names) {
        eval_font(cr, L.font, 0);
        for (int i = 0; i < n; i++) {
            const char *name = ev->classes[i].label;
            eval_text(cr, name, L.x0 - 6, L.y0 + (i + 0.5) * c, 1.0, 0.5, 0);
            eval_text(cr, name, L.x0 + (i + 0.5) * c, L.y0 + side + 6, 1.0, 0.5, -EVAL_PI / 2);
        }
    }
    eval_font(cr, 14, 0);
    eval_text(cr, "true class", 22, L.y0 + 0.5 * side, 0.5, 0.5, -EVAL_PI / 2);
    eval_text(cr, "predicted class (top-1)", L.x0 + 0.5 * side,
              L.y0 + side + (L.names ? L.name_w + 16 : 10), 0.5, 0.0, 0);
    draw_scale(cr, &L);
    int rc = cairo_status(cr) == CAIRO_STATUS_SUCCESS ? eval_write_png(surface, png_path, err) : 0;
    if (eval_canvas_finish(surface, cr, png_path, err) != 0) rc = -1;
    return rc;
}

/*
 * eval.h - internal pieces behind `st3d plot` and `st3d eval`: the table
 * read from a training log (eval_logs.c), the drawing helpers shared by
 * both pictures (eval_draw.c, on cairo), and the figures themselves
 * (eval_plot.c: loss and accuracy curves; eval_confusion.c: the confusion
 * matrix; eval_accuracy.c: video-level accuracy).  Not installed.
 */
#ifndef ST3D_EVAL_H
#define ST3D_EVAL_H

#include "core/core.h"

#include <cairo.h>
#include <stdint.h>

#define EVAL_PI 3.14159265358979323846 /* M_PI is not C11 */

/* ----------------------------------------------------------- training logs */

/* The per-epoch rows of a log written by the original code's Logger
 * (utils.py: csv.writer with delimiter '\t', a header row, then one row
 * per epoch): train.log has epoch, loss, acc, lr; val.log epoch, loss, acc.
 * Only the columns named here are kept; others are allowed and ignored. */
typedef struct eval_log {
    int64_t n;      /* rows */
    double *epoch;  /* "epoch" column, n values */
    double *loss;   /* "loss" column (NaN / inf kept as read) */
    double *acc;    /* "acc" column */
    double *lr;     /* "lr" column, NULL when the log has none */
} eval_log;

/* Reads path.  A missing or unreadable file is ST3D_ERR_IO; a missing
 * column, a row with the wrong number of fields or a field that is not a
 * number is ST3D_ERR_FORMAT naming the file and the line. */
int eval_log_read(const char *path, eval_log *log, st3d_error *err);
void eval_log_free(eval_log *log);

/* ----------------------------------------------------------------- drawing */

/* An RGB colour, components in [0, 1]. */
typedef struct eval_rgb {
    double r, g, b; /* red, green, blue */
} eval_rgb;

/* Axis ticks: a "nice" step (1, 2 or 5 times a power of ten) and the range
 * widened to whole steps. */
typedef struct eval_ticks {
    double lo, hi;  /* axis range, multiples of step */
    double step;    /* distance between ticks */
    int decimals;   /* digits after the point that labels need */
} eval_ticks;

/* Ticks covering [lo, hi] with about `target` intervals.  lo == hi is
 * widened around the value. */
eval_ticks eval_nice_ticks(double lo, double hi, int target);

/* Draws s with its anchor at (x, y): ax is the fraction of the text's width
 * left of x (0 left-aligned, 0.5 centred, 1 right-aligned), ay the fraction
 * of a capital letter's height above y (0: y is the top of the letters, 0.5
 * their middle, 1 the baseline).  angle turns the text about the anchor
 * (radians, clockwise on the picture; -pi/2 reads upwards). */
void eval_text(cairo_t *cr, const char *s, double x, double y, double ax, double ay, double angle);
/* Width in pixels of s in the current font. */
double eval_text_width(cairo_t *cr, const char *s);
/* Formats v with the given decimals into buf ("-0" printed as "0"). */
void eval_format(char *buf, size_t cap, double v, int decimals);

/* Selects the sans-serif face (DejaVu Sans on Debian) at size px, bold or not. */
void eval_font(cairo_t *cr, double px, int bold);
void eval_set_rgb(cairo_t *cr, eval_rgb c);

/* Writes surface to path as PNG, atomically (temporary file renamed). */
int eval_write_png(cairo_surface_t *surface, const char *path, st3d_error *err);
/* An opaque white ARGB32 surface of w x h and a context on it, or -1 with
 * err filled. */
int eval_canvas(int w, int h, cairo_surface_t **surface, cairo_t **cr, st3d_error *err);
/* Checks the context for a cairo error (reported naming what), frees both. */
int eval_canvas_finish(cairo_surface_t *surface, cairo_t *cr, const char *what, st3d_error *err);

#endif /* ST3D_EVAL_H */

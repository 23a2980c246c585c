/*
 * eval_draw.c - the few drawing helpers both pictures of st3d (training
 * curves, confusion matrix) share, on cairo's image surfaces and its "toy"
 * text API: a white canvas, anchored and rotated labels, axis ticks at
 * round numbers, and writing the PNG atomically (cairo streams it into the
 * temporary file that st3d_write_atomic renames into place).
 */
#include "train/eval.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

eval_ticks eval_nice_ticks(double lo, double hi, int target) {
    eval_ticks t;
    if (!(hi > lo)) { /* one value: a small range around it */
        double d = fabs(lo) > 0 ? 0.1 * fabs(lo) : 1.0;
        lo -= d, hi += d;
    }
    if (target < 1) target = 1;
    double raw = (hi - lo) / target;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    double m = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
    t.step = m * p;
    if (!(t.step > 0) || !isfinite(t.step) || !isfinite(lo) || !isfinite(hi)) {
        /* ranges at the ends of double (subnormal or near overflow): no
         * rounding, one interval */
        t.lo = isfinite(lo) ? lo : -1.0, t.hi = isfinite(hi) ? hi : 1.0;
        t.step = t.hi > t.lo ? t.hi - t.lo : 1.0;
        t.decimals = 3;
        return t;
    }
    /* the small tolerance keeps a value that is already a multiple (4.0
     * with step 1) from being pushed a whole step out by rounding */
    t.lo = floor(lo / t.step + 1e-9) * t.step;
    t.hi = ceil(hi / t.step - 1e-9) * t.step;
    t.decimals = t.step >= 1.0 ? 0 : (int)ceil(-log10(t.step) - 1e-9);
    return t;
}

void eval_format(char *buf, size_t cap, double v, int decimals) {
    snprintf(buf, cap, "%.*f", decimals, v);
    /* "-0", "-0.0": a tick at zero computed as -1e-17 */
    int zero = 1;
    for (const char *c = buf; *c; c++)
        if (*c >= '1' && *c <= '9') zero = 0;
    if (zero && buf[0] == '-') memmove(buf, buf + 1, strlen(buf));
}

void eval_font(cairo_t *cr, double px, int bold) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, px);
}

void eval_set_rgb(cairo_t *cr, eval_rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

double eval_text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* 1 when s is well-formed UTF-8 (cairo's text calls put the context in an
 * error state otherwise; a folder name may be any bytes). */
static int utf8_ok(const unsigned char *s) {
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2
              : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0) return 0;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xC0) != 0x80) return 0;
    }
    return 1;
}

void eval_text(cairo_t *cr, const char *s, double x, double y, double ax, double ay,
               double angle) {
    char safe[512];
    if (!utf8_ok((const unsigned char *)s)) { /* bytes beyond ASCII become '?' */
        size_t i = 0;
        for (; s[i] && i + 1 < sizeof safe; i++) safe[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
        safe[i] = '\0';
        s = safe;
    }
    cairo_text_extents_t te, cap;
    cairo_text_extents(cr, s, &te);
    cairo_text_extents(cr, "X", &cap);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (angle != 0.0) cairo_rotate(cr, angle);
    cairo_move_to(cr, -ax * te.x_advance, (1.0 - ay) * cap.height);
    cairo_show_text(cr, s);
    cairo_new_path(cr);
    cairo_restore(cr);
}

int eval_canvas(int w, int h, cairo_surface_t **surface, cairo_t **cr, st3d_error *err) {
    *surface = NULL, *cr = NULL;
    if (w <= 0 || h <= 0 || w > 32767 || h > 32767)
        return st3d_fail(err, ST3D_ERR_INVALID, "picture size %d x %d out of range", w, h);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        st3d_fail(err, ST3D_ERR_NOMEM, "cannot make a %d x %d picture: %s", w, h,
                  cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return -1;
    }
    cairo_t *c = cairo_create(s);
    cairo_set_source_rgb(c, 1, 1, 1);
    cairo_paint(c);
    *surface = s, *cr = c;
    return 0;
}

int eval_canvas_finish(cairo_surface_t *surface, cairo_t *cr, const char *what, st3d_error *err) {
    int rc = 0;
    if (cr && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = st3d_fail(err, ST3D_ERR_BACKEND, "%s: cairo: %s", what,
                       cairo_status_to_string(cairo_status(cr)));
    if (cr) cairo_destroy(cr);
    if (surface) cairo_surface_destroy(surface);
    return rc;
}

/* cairo's PNG writer hands its bytes here; closure is the open file. */
static cairo_status_t png_sink(void *closure, const unsigned char *data, unsigned int len) {
    return fwrite(data, 1, len, (FILE *)closure) == len ? CAIRO_STATUS_SUCCESS
                                                        : CAIRO_STATUS_WRITE_ERROR;
}

/* What the atomic writer's callback needs. */
typedef struct png_job {
    cairo_surface_t *surface; /* the picture */
    const char *path;         /* its final name, for messages */
} png_job;

static int write_png(FILE *f, void *user, st3d_error *err) {
    png_job *job = user;
    cairo_surface_flush(job->surface);
    cairo_status_t st = cairo_surface_write_to_png_stream(job->surface, png_sink, f);
    if (st != CAIRO_STATUS_SUCCESS)
        return st3d_fail(err, ST3D_ERR_IO, "%s: cannot write PNG: %s", job->path,
                         cairo_status_to_string(st));
    return 0;
}

int eval_write_png(cairo_surface_t *surface, const char *path, st3d_error *err) {
    png_job job = {surface, path};
    return st3d_write_atomic(path, write_png, &job, err);
}

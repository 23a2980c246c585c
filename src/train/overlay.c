/*
 * overlay.c - st3d_overlay_video: a video re-encoded with each clip's label
 * drawn on its frames, as the companion tool's generate_result_video.py
 * (and MMAction2's demo) show their results.  A second decoding pass over
 * the video, frame by frame (memory: one frame), text drawn by cairo on an
 * image surface that wraps a copy of the frame, frames encoded by
 * st3d_video_writer (src/io/video_encode.c).
 *
 * Frame f (1-based) shows the text of the span that started last among
 * those covering it (with overlapping clips, the newest clip's label);
 * frames no span covers are written without text.
 */
#include "io/video.h"

#include <cairo.h>
#include <stdlib.h>
#include <string.h>

/* Draws text in a dark box at the top left of the w x h xRGB surface. */
static void draw_label(cairo_t *cr, int w, int h, const char *text) {
    double px = h / 14.0 < 10.0 ? 10.0 : h / 14.0, pad = px * 0.35;
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, px);
    cairo_text_extents_t te;
    cairo_text_extents(cr, text, &te);
    double bw = te.x_advance + 2 * pad, bh = px * 1.3 + pad;
    if (bw > w) bw = w;
    cairo_set_source_rgba(cr, 0, 0, 0, 0.6);
    cairo_rectangle(cr, 0, 0, bw, bh);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_move_to(cr, pad, pad + px);
    cairo_show_text(cr, text);
    cairo_new_path(cr);
}

/* RGB24 <-> cairo's xRGB words (native endian) of one w x h picture. */
static void rgb_to_surface(const uint8_t *rgb, int w, int h, uint8_t *data, int stride) {
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        const uint8_t *p = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, p += 3)
            row[x] = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    }
}

static void surface_to_rgb(const uint8_t *data, int stride, int w, int h, uint8_t *rgb) {
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)y * stride);
        uint8_t *p = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, p += 3) {
            p[0] = (uint8_t)(row[x] >> 16);
            p[1] = (uint8_t)(row[x] >> 8);
            p[2] = (uint8_t)row[x];
        }
    }
}

int st3d_overlay_video(const char *video_path, const char *out_path,
                       const st3d_overlay_span *spans, int64_t n_spans, st3d_error *err) {
    st3d_video_params vp = st3d_video_default_params();
    vp.threads = 1;
    st3d_video *v = st3d_video_open(video_path, &vp, err);
    if (!v) return -1;
    const st3d_video_info *in = st3d_video_get_info(v);
    int w = in->width, h = in->height, rc = -1;
    uint8_t *rgb = st3d_malloc((size_t)w * h * 3, err);
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = NULL;
    st3d_video_writer *vw = NULL;
    if (!rgb) goto out;
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: cannot make a %dx%d drawing surface", out_path, w, h);
        goto out;
    }
    cr = cairo_create(surf);
    if (!(vw = st3d_video_writer_open(out_path, w, h, in->fps, err))) goto out;
    int64_t f = 0, k = 0; /* frame (0-based), first span not yet started */
    const char *text = NULL;
    for (;;) {
        int r = st3d_video_read_frame(v, rgb, NULL, NULL, err);
        if (r < 0) goto out;
        if (r == 0) break;
        f++;
        /* the newest span started at or before f that still covers it */
        while (k < n_spans && spans[k].first <= f) k++;
        text = NULL;
        for (int64_t j = k - 1; j >= 0 && !text; j--)
            if (spans[j].first <= f && f <= spans[j].last) text = spans[j].text;
        if (text) {
            cairo_surface_flush(surf);
            rgb_to_surface(rgb, w, h, cairo_image_surface_get_data(surf),
                           cairo_image_surface_get_stride(surf));
            cairo_surface_mark_dirty(surf);
            draw_label(cr, w, h, text);
            cairo_surface_flush(surf);
            surface_to_rgb(cairo_image_surface_get_data(surf), cairo_image_surface_get_stride(surf),
                           w, h, rgb);
        }
        if (st3d_video_writer_put(vw, rgb, err) != 0) goto out;
    }
    rc = st3d_video_writer_close(vw, err);
    vw = NULL;
out:
    st3d_video_writer_abort(vw);
    if (cr) cairo_destroy(cr);
    cairo_surface_destroy(surf);
    free(rgb);
    st3d_video_free(v);
    return rc;
}

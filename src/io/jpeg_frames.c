/*
 * jpeg_frames.c - JPEG pictures through libjpeg-turbo, and frame folders as
 * the original 3D-ResNets-PyTorch stores videos (one folder per video,
 * image_00001.jpg ... numbered from 1).
 *
 * libjpeg reports fatal errors through a callback that must not return; it
 * longjmps back into st3d_jpeg_read, which turns the message into an
 * st3d_error naming the file.  Warnings are ignored, except a premature end
 * of data, which PIL also refuses (a truncated file).
 */
#define _POSIX_C_SOURCE 200809L
#include "io/video.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>

int st3d_image_reserve(st3d_image *img, int w, int h, st3d_error *err) {
    if (w <= 0 || h <= 0 || (int64_t)w * h > ST3D_MAX_PIXELS)
        return st3d_fail(err, ST3D_ERR_INVALID, "picture size %dx%d is out of range", w, h);
    size_t need = (size_t)w * h * 3;
    if (need > img->cap) {
        uint8_t *p = st3d_malloc(need, err);
        if (!p) return -1;
        free(img->data);
        img->data = p;
        img->cap = need;
    }
    img->width = w;
    img->height = h;
    return 0;
}

void st3d_image_release(st3d_image *img) {
    free(img->data);
    memset(img, 0, sizeof *img);
}

int st3d_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int st3d_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* libjpeg's error manager extended with a way back and the message. */
typedef struct jerr {
    struct jpeg_error_mgr mgr; /* libjpeg's part (must come first) */
    jmp_buf back;              /* where error_exit returns to */
    char msg[JMSG_LENGTH_MAX]; /* the fatal message */
    int truncated;             /* 1: "premature end of JPEG file" was warned */
} jerr;

static void on_error_exit(j_common_ptr cinfo) {
    jerr *e = (jerr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->back, 1);
}

static void on_emit_message(j_common_ptr cinfo, int level) {
    jerr *e = (jerr *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Routes a decompressor's errors and warnings to je (before creating it). */
static void attach_jerr(struct jpeg_decompress_struct *cinfo, jerr *je) {
    memset(je, 0, sizeof *je);
    cinfo->err = jpeg_std_error(&je->mgr);
    je->mgr.error_exit = on_error_exit;
    je->mgr.emit_message = on_emit_message;
    je->mgr.output_message = on_output_message;
}

/* Columns and rows decoded beyond a requested rectangle.  libjpeg's fancy
 * upsampling reads one chroma sample on each side of a pixel (two pixels at
 * 2x subsampling, four at 4x); a margin of 16 keeps every requested pixel
 * that far from where a cropped or skipped decode starts or stops, so its
 * value is the one a full decode gives (tests/data/test_transforms.py checks
 * cropped clips against PIL's full decode). */
#define RECT_MARGIN 16

/* An open JPEG file whose header has been read. */
struct st3d_jpeg {
    FILE *f;                             /* the file */
    const char *path;                    /* its name, for messages (the caller's) */
    struct jpeg_decompress_struct cinfo; /* libjpeg's decompressor */
    jerr je;                             /* where its errors go */
};

void st3d_jpeg_close(st3d_jpeg *j) {
    if (!j) return;
    jpeg_destroy_decompress(&j->cinfo); /* safe on a zeroed one too */
    if (j->f) fclose(j->f);
    free(j);
}

st3d_jpeg *st3d_jpeg_open(const char *path, int *width, int *height, st3d_error *err) {
    st3d_jpeg *j = st3d_calloc(1, sizeof *j, err);
    if (!j) return NULL;
    j->path = path;
    if (!(j->f = fopen(path, "rb"))) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        st3d_jpeg_close(j);
        return NULL;
    }
    attach_jerr(&j->cinfo, &j->je);
    if (setjmp(j->je.back)) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: not a readable JPEG (%s)", path, j->je.msg);
        st3d_jpeg_close(j);
        return NULL;
    }
    jpeg_create_decompress(&j->cinfo);
    jpeg_stdio_src(&j->cinfo, j->f);
    jpeg_read_header(&j->cinfo, TRUE);
    int w = (int)j->cinfo.image_width, h = (int)j->cinfo.image_height;
    if ((int64_t)w * h > ST3D_MAX_PIXELS) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: header declares %dx%d pixels, refusing", path, w, h);
        st3d_jpeg_close(j);
        return NULL;
    }
    *width = w, *height = h;
    return j;
}

int st3d_jpeg_decode(st3d_jpeg *j, st3d_rect want, st3d_image *img, st3d_rect *got,
                     st3d_error *err) {
    struct jpeg_decompress_struct *cinfo = &j->cinfo;
    const char *path = j->path;
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile row_tmp = NULL;
    if (setjmp(j->je.back)) {
        free(row_tmp);
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: not a readable JPEG (%s)", path, j->je.msg);
    }
    int full_w = (int)cinfo->image_width, full_h = (int)cinfo->image_height;
    /* rows [y0, y1) and columns [x0, x0 + w) to decode: the request widened
     * by the margin, clipped to the picture; everything when want.w == 0 */
    int x0 = 0, y0 = 0, x1 = full_w, y1 = full_h;
    if (want.w > 0 && want.h > 0) {
        x0 = want.x - RECT_MARGIN, y0 = want.y - RECT_MARGIN;
        x1 = want.x + want.w + RECT_MARGIN, y1 = want.y + want.h + RECT_MARGIN;
        x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
        x1 = x1 > full_w ? full_w : x1, y1 = y1 > full_h ? full_h : y1;
        if (x0 >= x1 || y0 >= y1)
            return st3d_fail(err, ST3D_ERR_INVALID, "%s: region %dx%d+%d+%d is outside the %dx%d "
                             "picture", path, want.w, want.h, want.x, want.y, full_w, full_h);
    }
    int cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
    cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (x0 > 0 || x1 < full_w) { /* libjpeg-turbo widens this to whole iMCU columns */
        JDIMENSION cx = (JDIMENSION)x0, cw = (JDIMENSION)(x1 - x0);
        jpeg_crop_scanline(cinfo, &cx, &cw);
        x0 = (int)cx;
    }
    int w = (int)cinfo->output_width, h = y1 - y0;
    if (st3d_image_reserve(img, w, h, err) != 0) return -1;
    if (cmyk) {
        row_tmp = malloc((size_t)w * 4);
        if (!row_tmp) return st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
    }
    /* rows above are entropy-decoded only; rows below are not read at all */
    if (y0 > 0 && (int)jpeg_skip_scanlines(cinfo, (JDIMENSION)y0) != y0) j->je.truncated = 1;
    while (!j->je.truncated && (int)cinfo->output_scanline < y1) {
        /* up to 8 rows per call (one per call for CMYK, through row_tmp) */
        int at = (int)cinfo->output_scanline - y0, n = cmyk ? 1 : y1 - y0 - at;
        JSAMPROW rp[8];
        n = n > 8 ? 8 : n;
        for (int r = 0; r < n; r++) rp[r] = img->data + (size_t)(at + r) * w * 3;
        if (cmyk) rp[0] = row_tmp;
        if (jpeg_read_scanlines(cinfo, rp, (JDIMENSION)n) == 0) j->je.truncated = 1;
        if (cmyk && !j->je.truncated) { /* Adobe's inverted CMYK, as PIL's CMYK -> RGB */
            uint8_t *row = img->data + (size_t)at * w * 3;
            for (int x = 0; x < w; x++) {
                const uint8_t *c = row_tmp + 4 * x;
                for (int k = 0; k < 3; k++) row[3 * x + k] = (uint8_t)((c[k] * c[3] + 127) / 255);
            }
        }
    }
    if (!j->je.truncated && y1 == full_h) jpeg_finish_decompress(cinfo);
    else jpeg_abort_decompress(cinfo);
    free(row_tmp);
    if (j->je.truncated)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: truncated JPEG (premature end of data)", path);
    if (got) got->x = x0, got->y = y0, got->w = w, got->h = h, got->full_w = full_w,
             got->full_h = full_h;
    return 0;
}

int st3d_jpeg_read_rect(const char *path, st3d_rect want, st3d_image *img, st3d_rect *got,
                        st3d_error *err) {
    int w, h;
    st3d_jpeg *j = st3d_jpeg_open(path, &w, &h, err);
    if (!j) return -1;
    int rc = st3d_jpeg_decode(j, want, img, got, err);
    st3d_jpeg_close(j);
    return rc;
}

int st3d_jpeg_read(const char *path, st3d_image *img, st3d_error *err) {
    st3d_rect all = {0};
    return st3d_jpeg_read_rect(path, all, img, NULL, err);
}

/* What write_jpeg_cb encodes. */
typedef struct jpeg_job {
    const uint8_t *rgb; /* picture, h x w x 3 */
    int w, h;           /* size */
    int quality;        /* 1..100 */
    const char *path;   /* for messages */
} jpeg_job;

static int write_jpeg_cb(FILE *f, void *user, st3d_error *err) {
    jpeg_job *job = user;
    struct jpeg_compress_struct cinfo;
    jerr je;
    memset(&je, 0, sizeof je);
    cinfo.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = on_error_exit;
    je.mgr.output_message = on_output_message;
    if (setjmp(je.back)) {
        jpeg_destroy_compress(&cinfo);
        return st3d_fail(err, ST3D_ERR_IO, "%s: JPEG encoding failed (%s)", job->path, je.msg);
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)job->w;
    cinfo.image_height = (JDIMENSION)job->h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, job->quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rp = (JSAMPROW)(job->rgb + (size_t)cinfo.next_scanline * job->w * 3);
        jpeg_write_scanlines(&cinfo, &rp, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return 0;
}

int st3d_jpeg_write(const char *path, const uint8_t *rgb, int w, int h, int quality,
                    st3d_error *err) {
    if (quality < 1 || quality > 100)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: JPEG quality %d is not in 1..100", path,
                         quality);
    jpeg_job job = {rgb, w, h, quality, path};
    FILE *f = fopen(path, "wb");
    if (!f) return st3d_fail(err, ST3D_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int rc = write_jpeg_cb(f, &job, err);
    if (fclose(f) != 0 && rc == 0)
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (rc != 0) remove(path);
    return rc;
}

int st3d_frame_path(char *buf, size_t cap, const char *dir, int64_t index) {
    int n = snprintf(buf, cap, "%s/image_%05lld.jpg", dir, (long long)index);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int64_t st3d_frame_folder_count(const char *dir, st3d_error *err) {
    DIR *d = opendir(dir);
    if (!d) return st3d_fail(err, ST3D_ERR_IO, "%s: cannot list frames: %s", dir, strerror(errno));
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strstr(e->d_name, "image")) n++;
    closedir(d);
    return n;
}

/*
 * npy.c - NumPy .npy arrays: float32 batches in and out, integer labels in.
 *
 * Layout: the magic "\x93NUMPY", a major and minor version byte, a header
 * length (2 bytes little endian for version 1.0, 4 bytes for 2.0 and 3.0),
 * then that many bytes of a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ended by a newline, then the raw elements.
 *
 * Only what st3d needs is accepted: little-endian float32 ('<f4') for data
 * and int64 / int32 ('<i8', '<i4') for labels, in C order.  The header is
 * parsed by a small tokenizer (never evaluated); the element count is
 * checked against the bytes actually present before anything is allocated.
 * Writing uses version 1.0 with the header padded so that the data starts at
 * a multiple of 64 bytes, as NumPy does, through st3d_write_atomic.
 */
#include "io/io.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_HEADER (1u << 20) /* far above any header of a plain array */

/* The parsed header. */
typedef struct npy_header {
    char descr[16];                /* e.g. "<f4" */
    int fortran;                   /* fortran_order */
    int ndim;                      /* rank */
    int64_t shape[ST3D_MAX_DIMS];  /* sizes */
    int64_t count;                 /* product of shape */
    uint64_t data_off;             /* first byte of the elements */
} npy_header;

/* Cursor over the header text. */
typedef struct npy_lex {
    const char *p, *end; /* current position and end of the header */
} npy_lex;

static void skip_ws(npy_lex *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

static int eat(npy_lex *l, char c) {
    skip_ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return 1;
    }
    return 0;
}

/* A quoted string (no escapes are needed for the keys and dtypes we accept). */
static int lex_string(npy_lex *l, char *out, size_t cap) {
    skip_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return -1;
    char q = *l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || n + 1 >= cap) return -1;
        out[n++] = *l->p++;
    }
    if (l->p >= l->end) return -1;
    l->p++;
    out[n] = '\0';
    return 0;
}

static int lex_word(npy_lex *l, const char *w) {
    skip_ws(l);
    size_t n = strlen(w);
    if ((size_t)(l->end - l->p) >= n && memcmp(l->p, w, n) == 0) {
        l->p += n;
        return 1;
    }
    return 0;
}

static int lex_int(npy_lex *l, int64_t *out) {
    skip_ws(l);
    int64_t v = 0;
    const char *start = l->p;
    while (l->p < l->end && isdigit((unsigned char)*l->p)) {
        int digit = *l->p++ - '0';
        if (v > (INT64_MAX - digit) / 10) return -1;
        v = v * 10 + digit;
    }
    if (l->p == start) return -1;
    if (l->p < l->end && *l->p == 'L') l->p++; /* Python 2 long suffix */
    *out = v;
    return 0;
}

static int parse_shape(npy_lex *l, npy_header *h) {
    if (!eat(l, '(')) return -1;
    h->ndim = 0;
    while (!eat(l, ')')) {
        if (h->ndim == ST3D_MAX_DIMS) return -2;
        if (lex_int(l, &h->shape[h->ndim]) != 0) return -1;
        h->ndim++;
        if (!eat(l, ',')) {
            if (!eat(l, ')')) return -1;
            /* "(3)" is not a tuple, but NumPy never writes it; accept it */
            break;
        }
    }
    return 0;
}

/* Reads and parses the header of s into h. */
static int read_header(st3d_src *s, npy_header *h, st3d_error *err) {
    const char *path = s->name;
    unsigned char pre[12];
    memset(h, 0, sizeof *h);
    if (s->size < 10 || st3d_src_read(s, 0, pre, 10, err) != 0 || memcmp(pre, NPY_MAGIC, 6) != 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
    int major = pre[6], minor = pre[7];
    uint64_t hlen, hstart;
    if (major == 1) {
        hlen = st3d_le16(pre + 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (st3d_src_read(s, 0, pre, 12, err) != 0) return -1;
        hlen = st3d_le32(pre + 8);
        hstart = 12;
    } else {
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported",
                         path, major, minor);
    }
    if (minor != 0)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported",
                         path, major, minor);
    if (hlen > NPY_MAX_HEADER)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: header length %" PRIu64 " is implausible",
                         path, hlen);
    if (hlen > s->size - hstart)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: truncated header", path);
    char *text = st3d_malloc((size_t)hlen, err);
    if (!text) return -1;
    if (st3d_src_read(s, hstart, text, (size_t)hlen, err) != 0) {
        free(text);
        return -1;
    }
    npy_lex l = {text, text + hlen};
    int have_descr = 0, have_fortran = 0, have_shape = 0, bad = !eat(&l, '{');
    const char *what = "expected '{'";
    while (!bad && !eat(&l, '}')) {
        char key[32];
        if (lex_string(&l, key, sizeof key) != 0 || !eat(&l, ':')) {
            bad = 1;
            what = "expected a quoted key and ':'";
        } else if (strcmp(key, "descr") == 0 && !have_descr) {
            have_descr = 1;
            bad = lex_string(&l, h->descr, sizeof h->descr) != 0;
            what = "bad 'descr' (structured dtypes are not supported)";
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
            have_fortran = 1;
            if (lex_word(&l, "True")) h->fortran = 1;
            else if (!lex_word(&l, "False")) bad = 1;
            what = "bad 'fortran_order'";
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            have_shape = 1;
            int r = parse_shape(&l, h);
            bad = r != 0;
            what = r == -2 ? "rank exceeds 8" : "bad 'shape'";
        } else {
            bad = 1;
            what = "unexpected or repeated key";
        }
        if (!bad && !eat(&l, ',')) {
            if (!eat(&l, '}')) {
                bad = 1;
                what = "expected ',' or '}'";
            }
            break;
        }
    }
    skip_ws(&l);
    if (!bad && l.p != l.end) {
        bad = 1;
        what = "trailing characters after the dict";
    }
    if (!bad && !(have_descr && have_fortran && have_shape)) {
        bad = 1;
        what = "missing 'descr', 'fortran_order' or 'shape'";
    }
    free(text);
    if (bad) return st3d_fail(err, ST3D_ERR_FORMAT, "%s: bad .npy header: %s", path, what);
    h->count = 1;
    for (int d = 0; d < h->ndim; d++) {
        h->count = st3d_mul_checked(h->count, h->shape[d]);
        if (h->count < 0)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: shape overflows", path);
    }
    int nontrivial = 0;
    for (int d = 0; d < h->ndim; d++) nontrivial += h->shape[d] > 1;
    if (h->fortran && nontrivial > 1)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                         "%s: Fortran-order arrays are not supported (save with "
                         "np.ascontiguousarray)",
                         path);
    h->data_off = hstart + hlen;
    return 0;
}

/* Checks that the elements are all there; returns their byte count or -1. */
static int64_t check_data(st3d_src *s, const npy_header *h, size_t elem, st3d_error *err) {
    int64_t nbytes = st3d_mul_checked(h->count, (int64_t)elem);
    uint64_t avail = s->size - h->data_off;
    if (nbytes < 0 || (uint64_t)nbytes > avail) {
        char shp[256];
        st3d_format_shape(shp, sizeof shp, h->ndim, h->shape);
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: truncated data: shape (%s) of '%s' needs %" PRId64
                         " elements but only %" PRIu64 " bytes follow the header",
                         s->name, shp, h->descr, h->count, avail);
    }
    if ((uint64_t)nbytes != avail)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: %" PRIu64 " unexpected bytes after the data", s->name,
                         avail - (uint64_t)nbytes);
    return nbytes;
}

static int read_f32_src(st3d_src *s, float **data, int *ndim, int64_t *shape,
                        st3d_error *err) {
    npy_header h;
    *data = NULL;
    if (read_header(s, &h, err) != 0) return -1;
    if (strcmp(h.descr, "<f4") != 0)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: dtype '%s' is not float32 ('<f4')",
                         s->name, h.descr);
    int64_t nbytes = check_data(s, &h, 4, err);
    if (nbytes < 0) return -1;
    float *buf = st3d_aligned_alloc((size_t)nbytes, err);
    if (!buf) return -1;
    if (st3d_src_read(s, h.data_off, buf, (size_t)nbytes, err) != 0) {
        free(buf);
        return -1;
    }
    *data = buf;
    *ndim = h.ndim;
    for (int d = 0; d < h.ndim; d++) shape[d] = h.shape[d];
    return 0;
}

int st3d_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape,
                      st3d_error *err) {
    st3d_src s;
    *data = NULL;
    if (st3d_src_open(&s, path, err) != 0) return -1;
    int rc = read_f32_src(&s, data, ndim, shape, err);
    st3d_src_close(&s);
    return rc;
}

int st3d_npy_read_f32_mem(const void *buf, size_t n, const char *name, float **data,
                          int *ndim, int64_t *shape, st3d_error *err) {
    st3d_src s;
    st3d_src_mem(&s, buf, n, name);
    return read_f32_src(&s, data, ndim, shape, err);
}

int st3d_npy_read_i64(const char *path, int64_t **data, int64_t *n, st3d_error *err) {
    st3d_src s;
    npy_header h;
    int rc = -1;
    *data = NULL;
    if (st3d_src_open(&s, path, err) != 0) return -1;
    if (read_header(&s, &h, err) != 0) goto done;
    size_t elem = strcmp(h.descr, "<i8") == 0 ? 8 : strcmp(h.descr, "<i4") == 0 ? 4 : 0;
    if (!elem) {
        st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: dtype '%s' is not int64 ('<i8') or int32 ('<i4')",
                  path, h.descr);
        goto done;
    }
    if (h.ndim != 1) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: labels must be a 1-D array, got rank %d", path,
                  h.ndim);
        goto done;
    }
    int64_t nbytes = check_data(&s, &h, elem, err);
    if (nbytes < 0) goto done;
    int64_t *out = st3d_malloc((size_t)h.count * sizeof *out, err);
    if (!out) goto done;
    if (st3d_src_read(&s, h.data_off, out, (size_t)nbytes, err) != 0) {
        free(out);
        goto done;
    }
    if (elem == 4) /* widen in place, from the back */
        for (int64_t i = h.count - 1; i >= 0; i--) {
            int32_t v;
            memcpy(&v, (const unsigned char *)out + 4 * i, 4);
            out[i] = v;
        }
    *data = out;
    *n = h.count;
    rc = 0;
done:
    st3d_src_close(&s);
    return rc;
}

/* ------------------------------------------------------------------ write */

/* What the atomic-write callback needs. */
typedef struct npy_writer {
    const char *path;  /* destination, for errors */
    const char *head;  /* complete preamble: magic, version, length, dict */
    size_t head_len;   /* its length (a multiple of 64) */
    const float *data; /* elements */
    size_t nbytes;     /* their size */
} npy_writer;

static int write_npy(FILE *f, void *user, st3d_error *err) {
    const npy_writer *w = user;
    if (fwrite(w->head, 1, w->head_len, f) != w->head_len ||
        (w->nbytes && fwrite(w->data, 1, w->nbytes, f) != w->nbytes))
        return st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

size_t st3d_npy_header(char *head, size_t cap, int ndim, const int64_t *shape, size_t min_len) {
    char dims[ST3D_MAX_DIMS * 24 + 8];
    size_t used = 0;
    dims[0] = '\0';
    for (int d = 0; d < ndim && d < ST3D_MAX_DIMS; d++)
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%s%" PRId64, d ? ", " : "",
                                 shape[d]);
    if (ndim == 1) snprintf(dims + used, sizeof dims - used, ",");
    if (cap < 10) return 0;
    memcpy(head, NPY_MAGIC "\x01\x00", 8);
    int k = snprintf(head + 10, cap - 10,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    size_t len = 10 + (size_t)k + 1; /* + the newline */
    size_t total = (len + 63) / 64 * 64;
    if (total < min_len) total = (min_len + 63) / 64 * 64;
    if (k < 0 || total > cap || total - 10 > 0xffff) return 0;
    memset(head + 10 + k, ' ', total - 10 - (size_t)k);
    head[total - 1] = '\n';
    head[8] = (char)((total - 10) & 0xff);
    head[9] = (char)((total - 10) >> 8);
    return total;
}

int st3d_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                       st3d_error *err) {
    if (ndim < 0 || ndim > ST3D_MAX_DIMS)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: rank %d out of range", path, ndim);
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        count = st3d_mul_checked(count, shape[d]);
        if (count < 0) return st3d_fail(err, ST3D_ERR_INVALID, "%s: invalid shape", path);
    }
    int64_t nbytes = st3d_mul_checked(count, 4);
    if (nbytes < 0 || (uint64_t)nbytes > SIZE_MAX)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: array too large", path);
    char head[512];
    size_t total = st3d_npy_header(head, sizeof head, ndim, shape, 0);
    if (!total) return st3d_fail(err, ST3D_ERR_INVALID, "%s: invalid shape", path);
    npy_writer w = {path, head, total, data, (size_t)nbytes};
    return st3d_write_atomic(path, write_npy, &w, err);
}

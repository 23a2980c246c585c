/*
 * safetensors.c - reading and writing safetensors files.
 *
 * Layout: an 8-byte little-endian length N, N bytes of JSON (an object that
 * maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of string pairs; possibly padded
 * with trailing spaces), then the tensor bytes, little endian and row major.
 * Offsets are relative to the first byte after the header.
 *
 * Reading trusts nothing: the header length is checked against the file
 * size, every entry's dtype, shape and offsets are validated, and the
 * offsets must tile the data region exactly (no overlaps, no holes, no
 * trailing bytes), as the format's specification requires.  All of this is
 * checked before any tensor memory is allocated, so tensor allocations are
 * bounded by the file's real size.
 *
 * Writing puts the tensors in map order, pads the header with spaces to a
 * multiple of 8 bytes, and goes through st3d_write_atomic.
 */
#include "io/io.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Largest JSON header accepted (the reference implementation's limit). */
#define MAX_HEADER_BYTES ((uint64_t)100 << 20)

/* One tensor entry of the header, validated. */
typedef struct st_entry {
    const char *name;              /* key in the header (owned by the JSON tree) */
    st3d_dtype dtype;              /* element type */
    int ndim;                      /* rank */
    int64_t shape[ST3D_MAX_DIMS];  /* sizes */
    uint64_t begin, end;           /* data_offsets, relative to the data region */
} st_entry;

static int parse_dtype(const char *s, st3d_dtype *out) {
    static const struct {
        const char *name;  /* safetensors spelling */
        st3d_dtype dtype;  /* ours */
    } table[] = {
        {"F32", ST3D_F32}, {"F16", ST3D_F16}, {"BF16", ST3D_BF16},
        {"F64", ST3D_F64}, {"I64", ST3D_I64}, {"I32", ST3D_I32},
        {"U8", ST3D_U8},   {"I8", ST3D_I8},   {"BOOL", ST3D_BOOL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0) {
            *out = table[i].dtype;
            return 0;
        }
    return -1;
}

/* Validates one header entry (everything but its place among the others). */
static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_len,
                       st_entry *e, st3d_error *err) {
    memset(e, 0, sizeof *e);
    e->name = name;
    if (!json_is_object(v))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object",
                         path, name);
    json_t *dt = json_object_get(v, "dtype");
    json_t *sh = json_object_get(v, "shape");
    json_t *of = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"",
                         path, name);
    if (parse_dtype(json_string_value(dt), &e->dtype) != 0)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                         "%s: tensor '%s': unsupported dtype '%s' (known: F32 F16 BF16 F64 I64 "
                         "I32 U8 I8 BOOL)",
                         path, name, json_string_value(dt));
    if (!json_is_array(sh))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"",
                         path, name);
    if (json_array_size(sh) > ST3D_MAX_DIMS)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: tensor '%s': rank %zu exceeds %d", path,
                         name, json_array_size(sh), ST3D_MAX_DIMS);
    e->ndim = (int)json_array_size(sh);
    int64_t count = 1;
    for (int d = 0; d < e->ndim; d++) {
        json_t *x = json_array_get(sh, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return st3d_fail(err, ST3D_ERR_FORMAT,
                             "%s: tensor '%s': shape entry %d is not a non-negative integer", path,
                             name, d);
        e->shape[d] = (int64_t)json_integer_value(x);
        count = count < 0 ? -1 : st3d_mul_checked(count, e->shape[d]);
    }
    if (!json_is_array(of) || json_array_size(of) != 2 ||
        !json_is_integer(json_array_get(of, 0)) || !json_is_integer(json_array_get(of, 1)))
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: tensor '%s': \"data_offsets\" is not a pair of integers", path, name);
    json_int_t b = json_integer_value(json_array_get(of, 0));
    json_int_t en = json_integer_value(json_array_get(of, 1));
    if (b < 0 || en < b || (uint64_t)en > data_len)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] outside the %" PRIu64
                         " data bytes",
                         path, name, (long long)b, (long long)en, data_len);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    int64_t nbytes = count < 0 ? -1 : st3d_mul_checked(count, (int64_t)st3d_dtype_size(e->dtype));
    if (nbytes < 0 || (uint64_t)nbytes != e->end - e->begin) {
        char shp[256];
        st3d_format_shape(shp, sizeof shp, e->ndim, e->shape);
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] do not match shape [%s] of %s",
                         path, name, (long long)b, (long long)en, shp,
                         st3d_dtype_name(e->dtype));
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The offsets must tile [0, data_len) exactly. */
static int check_tiling(const char *path, st_entry *ents, size_t n, uint64_t data_len,
                        st3d_error *err) {
    st_entry **order = st3d_calloc(n, sizeof *order, err);
    if (!order) return -1;
    for (size_t i = 0; i < n; i++) order[i] = &ents[i];
    qsort(order, n, sizeof *order, cmp_by_offset);
    uint64_t pos = 0;
    const char *prev = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const st_entry *e = order[i];
        if (e->begin < pos)
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           "] overlap tensor '%s'",
                           path, e->name, e->begin, e->end, prev);
        else if (e->begin > pos)
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           "] leave a hole of %" PRIu64 " bytes before it",
                           path, e->name, e->begin, e->end, e->begin - pos);
        pos = e->end;
        prev = e->name;
    }
    if (rc == 0 && pos != data_len)
        rc = st3d_fail(err, ST3D_ERR_FORMAT,
                       "%s: %" PRIu64 " bytes after the last tensor's data are not described "
                       "by the header",
                       path, data_len - pos);
    free(order);
    return rc;
}

static int read_metadata(const char *path, json_t *md, st3d_tensor_map *map, st3d_error *err) {
    if (json_is_null(md)) return 0;
    if (!json_is_object(md))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", path);
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (!json_is_string(v))
            return st3d_fail(err, ST3D_ERR_FORMAT,
                             "%s: metadata '%s' is not a string (the format allows strings only)",
                             path, k);
        if (st3d_tensor_map_set_meta(map, k, json_string_value(v), err) != 0) return -1;
    }
    return 0;
}

int st3d_safetensors_read_src(st3d_src *s, st3d_tensor_map **out, st3d_error *err) {
    const char *path = s->name;
    *out = NULL;
    unsigned char lenb[8];
    if (s->size < 8)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: %" PRIu64 " bytes is too short for a safetensors file", path,
                         s->size);
    if (st3d_src_read(s, 0, lenb, 8, err) != 0) return -1;
    uint64_t hlen = st3d_le64(lenb);
    if (hlen > s->size - 8)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: header length %" PRIu64 " exceeds the file size %" PRIu64
                         " (not a safetensors file?)",
                         path, hlen, s->size);
    if (hlen > MAX_HEADER_BYTES)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds %" PRIu64,
                         path, hlen, MAX_HEADER_BYTES);
    if (hlen < 2)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: header of %" PRIu64 " bytes is too short",
                         path, hlen);
    char *hdr = st3d_malloc((size_t)hlen, err);
    if (!hdr) return -1;
    if (st3d_src_read(s, 8, hdr, (size_t)hlen, err) != 0) {
        free(hdr);
        return -1;
    }
    if (hdr[0] != '{') {
        free(hdr);
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: header does not start with '{'", path);
    }
    json_error_t jerr;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    free(hdr);
    if (!root)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: bad JSON header at byte %d: %s", path,
                         jerr.position, jerr.text);
    int rc = -1;
    st_entry *ents = NULL;
    st3d_tensor_map *map = NULL;
    void *buf = NULL;
    const uint64_t data_off = 8 + hlen, data_len = s->size - data_off;
    if (!json_is_object(root)) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    ents = st3d_calloc(json_object_size(root), sizeof *ents, err);
    if (!ents) goto done;
    size_t n = 0;
    json_t *meta = NULL;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            meta = val;
            continue;
        }
        if (parse_entry(path, key, val, data_len, &ents[n], err) != 0) goto done;
        n++;
    }
    if (check_tiling(path, ents, n, data_len, err) != 0) goto done;
    map = st3d_tensor_map_new();
    if (!map) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (meta && read_metadata(path, meta, map, err) != 0) goto done;
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = &ents[i];
        size_t nb = (size_t)(e->end - e->begin);
        const void *data;
        if (s->mem) {
            data = s->mem + data_off + e->begin;
        } else {
            buf = st3d_malloc(nb, err);
            if (!buf) goto done;
            if (st3d_src_read(s, data_off + e->begin, buf, nb, err) != 0) goto done;
            data = buf;
        }
        /* from a file mapping: point into it (the map takes the mapping over below) */
        int added = s->mapping ? st3d_tensor_map_add_borrowed(map, e->name, e->dtype, e->ndim, e->shape,
                                                              data, err)
                               : st3d_tensor_map_add(map, e->name, e->dtype, e->ndim, e->shape, data, err);
        if (added != 0) {
            st3d_fail_prefix(err, path);
            goto done;
        }
        free(buf);
        buf = NULL;
    }
    if (s->mapping) {
        st3d_tensor_map_adopt_mapping(map, s->mapping, (size_t)s->size);
        s->mapping = NULL;
    }
    *out = map;
    map = NULL;
    rc = 0;
done:
    free(buf);
    st3d_tensor_map_free(map);
    free(ents);
    json_decref(root);
    return rc;
}

int st3d_safetensors_read(const char *path, st3d_tensor_map **out, st3d_error *err) {
    st3d_src s;
    *out = NULL;
    if (st3d_src_map(&s, path, err) != 0) return -1;
    int rc = st3d_safetensors_read_src(&s, out, err);
    st3d_src_close(&s);
    return rc;
}

int st3d_safetensors_read_mem(const void *buf, size_t n, const char *name,
                              st3d_tensor_map **out, st3d_error *err) {
    st3d_src s;
    st3d_src_mem(&s, buf, n, name);
    return st3d_safetensors_read_src(&s, out, err);
}

/* ------------------------------------------------------------------ write */

/* What the atomic-write callback needs. */
typedef struct st_writer {
    const char *path;           /* destination, for error messages */
    const st3d_tensor_map *map; /* tensors to write, in order */
    const char *header;         /* compact JSON header */
    size_t hlen, pad;           /* its length and the spaces that follow */
} st_writer;

static int write_body(FILE *f, void *user, st3d_error *err) {
    const st_writer *w = user;
    unsigned char lenb[8];
    uint64_t n = (uint64_t)(w->hlen + w->pad);
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(n >> (8 * i));
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(w->header, 1, w->hlen, f) == w->hlen;
    for (size_t i = 0; ok && i < w->pad; i++) ok = fputc(' ', f) != EOF;
    size_t count = st3d_tensor_map_count(w->map);
    for (size_t i = 0; ok && i < count; i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(w->map, i);
        ok = t->nbytes == 0 || fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    }
    return ok ? 0 : st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
}

/* Builds the header object; NULL on failure (err filled). */
static json_t *build_header(const char *path, const st3d_tensor_map *map, st3d_error *err) {
    json_t *root = json_object();
    if (!root) goto nomem;
    size_t nm = st3d_tensor_map_meta_count(map);
    if (nm) {
        json_t *md = json_object();
        if (!md || json_object_set_new(root, "__metadata__", md) != 0) goto nomem;
        for (size_t i = 0; i < nm; i++) {
            const char *k = st3d_tensor_map_meta_key(map, i);
            const char *v = st3d_tensor_map_get_meta(map, k);
            json_t *js = json_string(v);
            if (!js || json_object_set_new(md, k, js) != 0) {
                st3d_fail(err, ST3D_ERR_INVALID,
                          "%s: metadata '%s' is not valid UTF-8 text", path, k);
                json_decref(root);
                return NULL;
            }
        }
    }
    uint64_t off = 0;
    for (size_t i = 0; i < st3d_tensor_map_count(map); i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(map, i);
        if (strcmp(t->name, "__metadata__") == 0) {
            st3d_fail(err, ST3D_ERR_INVALID, "%s: a tensor may not be named '__metadata__'", path);
            json_decref(root);
            return NULL;
        }
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !e || !shape || !offs;
        for (int d = 0; !bad && d < t->ndim; d++)
            bad = json_array_append_new(shape, json_integer((json_int_t)t->shape[d])) != 0;
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)off)) != 0 ||
              json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes))) != 0 ||
              json_object_set_new(e, "dtype", json_string(st3d_dtype_name(t->dtype))) != 0;
        if (bad) {
            json_decref(e);
            json_decref(shape);
            json_decref(offs);
            goto nomem;
        }
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        if (json_object_set_new(root, t->name, e) != 0) {
            st3d_fail(err, ST3D_ERR_INVALID, "%s: tensor name '%s' is not valid UTF-8 text", path,
                      t->name);
            json_decref(root);
            return NULL;
        }
        off += t->nbytes;
    }
    return root;
nomem:
    json_decref(root);
    st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory building the header", path);
    return NULL;
}

int st3d_safetensors_write(const char *path, const st3d_tensor_map *map, st3d_error *err) {
    json_t *root = build_header(path, map, err);
    if (!root) return -1;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) return st3d_fail(err, ST3D_ERR_NOMEM, "%s: cannot serialize the header", path);
    st_writer w = {path, map, text, strlen(text), 0};
    w.pad = (8 - w.hlen % 8) % 8;
    int rc = st3d_write_atomic(path, write_body, &w, err);
    free(text);
    return rc;
}

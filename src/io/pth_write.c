/*
 * pth_write.c - writing checkpoints as torch.save does (its zip format,
 * PyTorch >= 1.6): a pickle emitter, and the archive around the pickle.
 *
 * The pickle (protocol 2, torch.save's default) is emitted while the caller
 * walks its object: scalars, strings, containers opened and closed (dict,
 * collections.OrderedDict, collections.Counter, list, tuple) and tensors.
 * Containers are written as Python's pickler writes them: an empty one,
 * then its items added with SETITEMS / APPENDS at most 1000 at a time;
 * OrderedDict as OrderedDict() followed by SETITEMS, Counter as
 * Counter({...}).  A tensor is what torch pickles for one:
 *     torch._utils._rebuild_tensor_v2(<persistent id>, 0, size, stride,
 *                                     False, OrderedDict())
 * whose persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel)
 * names the archive record data/<key> holding the elements.  Keys count
 * "0", "1", ... in the order tensors are emitted, as torch numbers them.
 * No memo is written: nothing in such an object is shared.
 *
 * The archive (libzip) holds, under the folder "archive/" (what torch.save
 * names it when writing to a file object): data.pkl, byteorder ("little"),
 * data/0 .. data/N-1, and version ("3\n").  Records are stored
 * uncompressed and each one's bytes start at a multiple of 64 bytes in the
 * file, as torch aligns them (the padding is a local extra field); times
 * are fixed, so the same object always gives the same bytes.  libzip writes
 * through a zip source over the temporary file of st3d_write_atomic, so the
 * tensors are never copied in memory, and the file is fsync'ed and renamed
 * into place.
 *
 * The emitting functions keep the first failure in the writer (so that the
 * caller's code reads like the object it writes); pth_write_file reports it.
 */
#define _POSIX_C_SOURCE 200809L
#include "io/pth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zip.h>

#define PKW_MAX_DEPTH 32 /* container nesting */
#define PKW_BATCH 1000   /* items per SETITEMS / APPENDS, as Python's pickler */
#define PTH_ALIGN 64     /* where each record's bytes start, as torch's writer */
#define PTH_FOLDER "archive"

/* A container being written. */
typedef struct pkw_level {
    pkw_kind kind; /* what it is */
    int marked;    /* a MARK is open for its pending items */
    int64_t items; /* values written since that MARK */
} pkw_level;

/* The elements behind one persistent id. */
typedef struct pkw_storage {
    const void *data; /* borrowed from the caller */
    size_t nbytes;    /* their size */
} pkw_storage;

struct pkw {
    unsigned char *buf;                /* the pickle so far */
    size_t len, cap;                   /* its length and allocation */
    pkw_level stack[PKW_MAX_DEPTH];    /* open containers, outermost first */
    int depth;                         /* entries of stack in use */
    pkw_storage *storages;             /* one per tensor, in key order */
    size_t n_storages, cap_storages;   /* used and allocated */
    int finished;                      /* STOP written */
    st3d_error err;                    /* the first failure (code ST3D_OK while none) */
};


void pkw_free(pkw *w) {
    if (!w) return;
    free(w->buf);
    free(w->storages);
    free(w);
}

/* ------------------------------------------------------------ raw bytes */

static void put(pkw *w, const void *p, size_t n) {
    if (w->err.code != ST3D_OK) return;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap - w->len < n) cap *= 2;
        unsigned char *b = realloc(w->buf, cap);
        if (!b) {
            st3d_fail(&w->err, ST3D_ERR_NOMEM, "out of memory writing a pickle");
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void op(pkw *w, unsigned char c) { put(w, &c, 1); }

pkw *pkw_new(st3d_error *err) {
    static const unsigned char proto[2] = {0x80, 0x02}; /* PROTO 2 */
    pkw *w = st3d_calloc(1, sizeof *w, err);
    if (!w) return NULL;
    put(w, proto, sizeof proto);
    if (w->err.code == ST3D_OK) return w;
    st3d_fail(err, w->err.code, "%s", w->err.msg);
    pkw_free(w);
    return NULL;
}

/* n bytes of v, little endian, after opcode c. */
static void op_le(pkw *w, unsigned char c, uint64_t v, int n) {
    unsigned char b[9];
    b[0] = c;
    for (int i = 0; i < n; i++) b[1 + i] = (unsigned char)(v >> (8 * i));
    put(w, b, (size_t)n + 1);
}

/* Mirrors pickle.py's save_long for protocol 2: the shortest of BININT1,
 * BININT2 and BININT, else LONG1 (minimal two's complement). */
static void raw_int(pkw *w, int64_t v) {
    if (v >= 0 && v <= 0xff) return op_le(w, 'K', (uint64_t)v, 1);
    if (v >= 0 && v <= 0xffff) return op_le(w, 'M', (uint64_t)v, 2);
    if (v >= INT32_MIN && v <= INT32_MAX) return op_le(w, 'J', (uint64_t)v, 4);
    int n = 5;
    while (n < 8 && (v >= (int64_t)1 << (8 * n - 1) || v < -((int64_t)1 << (8 * n - 1)))) n++;
    op_le(w, 0x8a, (uint64_t)n, 1);
    for (int i = 0; i < n; i++) op(w, (unsigned char)((uint64_t)v >> (8 * i)));
}

static void raw_str(pkw *w, const char *s) {
    size_t n = strlen(s);
    op_le(w, 'X', (uint64_t)n, 4);
    put(w, s, n);
}

static void raw_global(pkw *w, const char *module, const char *name) {
    op(w, 'c');
    put(w, module, strlen(module));
    op(w, '\n');
    put(w, name, strlen(name));
    op(w, '\n');
}

/* ------------------------------------------------------------ items */

/* Before a value: the MARK its container's pending items need. */
static void item_begin(pkw *w) {
    if (w->depth == 0) return;
    pkw_level *l = &w->stack[w->depth - 1];
    if (l->kind != PKW_TUPLE && !l->marked) {
        op(w, '(');
        l->marked = 1;
    }
}

/* Closes the pending items of a dict-like or list container. */
static void flush_items(pkw *w, pkw_level *l) {
    if (!l->marked) return;
    op(w, l->kind == PKW_LIST ? 'e' : 'u'); /* APPENDS, SETITEMS */
    l->marked = 0;
    l->items = 0;
}

/* After a value: a batch of 1000 items (pairs in a dict) is added. */
static void item_end(pkw *w) {
    if (w->depth == 0) return;
    pkw_level *l = &w->stack[w->depth - 1];
    l->items++;
    if (l->kind == PKW_TUPLE) return;
    if (l->items == (l->kind == PKW_LIST ? PKW_BATCH : 2 * PKW_BATCH)) flush_items(w, l);
}

void pkw_none(pkw *w) {
    item_begin(w);
    op(w, 'N');
    item_end(w);
}

void pkw_bool(pkw *w, int v) {
    item_begin(w);
    op(w, v ? 0x88 : 0x89); /* NEWTRUE, NEWFALSE */
    item_end(w);
}

void pkw_int(pkw *w, int64_t v) {
    item_begin(w);
    raw_int(w, v);
    item_end(w);
}

void pkw_float(pkw *w, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    unsigned char b[9] = {'G'}; /* BINFLOAT: big endian */
    for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
    item_begin(w);
    put(w, b, sizeof b);
    item_end(w);
}

void pkw_str(pkw *w, const char *s) {
    item_begin(w);
    raw_str(w, s);
    item_end(w);
}

void pkw_begin(pkw *w, pkw_kind kind) {
    if (w->depth == PKW_MAX_DEPTH) {
        if (w->err.code == ST3D_OK)
            st3d_fail(&w->err, ST3D_ERR_INVALID, "pickle: containers nested deeper than %d",
                      PKW_MAX_DEPTH);
        return;
    }
    item_begin(w);
    switch (kind) {
    case PKW_DICT: op(w, '}'); break;
    case PKW_LIST: op(w, ']'); break;
    case PKW_TUPLE: op(w, '('); break;
    case PKW_ORDERED_DICT: /* OrderedDict(), then its items */
        raw_global(w, "collections", "OrderedDict");
        op(w, ')');
        op(w, 'R');
        break;
    case PKW_COUNTER: /* Counter({...}): the dict is the argument */
        raw_global(w, "collections", "Counter");
        op(w, '}');
        break;
    }
    w->stack[w->depth++] = (pkw_level){kind, 0, 0};
}

void pkw_end(pkw *w) {
    if (w->depth == 0) {
        if (w->err.code == ST3D_OK)
            st3d_fail(&w->err, ST3D_ERR_INVALID, "pickle: pkw_end without an open container");
        return;
    }
    pkw_level *l = &w->stack[--w->depth];
    if (l->kind == PKW_TUPLE) {
        op(w, 't');
    } else {
        flush_items(w, l);
        if (l->kind == PKW_COUNTER) {
            op(w, 0x85); /* TUPLE1 */
            op(w, 'R');
        }
    }
    item_end(w);
}

void pkw_tensor(pkw *w, st3d_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    const char *type = pk_storage_type(dtype);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel = numel < 0 ? -1 : st3d_mul_checked(numel, shape[d]);
    int64_t nbytes = numel < 0 ? -1 : st3d_mul_checked(numel, (int64_t)st3d_dtype_size(dtype));
    if (w->err.code != ST3D_OK) return;
    if (!type || ndim < 0 || ndim > ST3D_MAX_DIMS || nbytes < 0) {
        st3d_fail(&w->err, ST3D_ERR_INVALID, "pickle: cannot write a tensor of %s, rank %d",
                  st3d_dtype_name(dtype), ndim);
        return;
    }
    if (w->n_storages == w->cap_storages) {
        size_t cap = w->cap_storages ? 2 * w->cap_storages : 64;
        pkw_storage *s = realloc(w->storages, cap * sizeof *s);
        if (!s) {
            st3d_fail(&w->err, ST3D_ERR_NOMEM, "out of memory writing a pickle");
            return;
        }
        w->storages = s;
        w->cap_storages = cap;
    }
    char key[32];
    snprintf(key, sizeof key, "%zu", w->n_storages);
    w->storages[w->n_storages++] = (pkw_storage){data, (size_t)nbytes};
    item_begin(w);
    raw_global(w, "torch._utils", "_rebuild_tensor_v2");
    op(w, '(');
    op(w, '('); /* the persistent id */
    raw_str(w, "storage");
    raw_global(w, "torch", type);
    raw_str(w, key);
    raw_str(w, "cpu");
    raw_int(w, numel);
    op(w, 't');
    op(w, 'Q'); /* BINPERSID */
    raw_int(w, 0); /* storage offset */
    op(w, '(');
    for (int d = 0; d < ndim; d++) raw_int(w, shape[d]);
    op(w, 't');
    op(w, '('); /* contiguous strides */
    for (int d = 0; d < ndim; d++) {
        int64_t stride = 1;
        for (int e = d + 1; e < ndim; e++) stride *= shape[e];
        raw_int(w, stride);
    }
    op(w, 't');
    op(w, 0x89); /* requires_grad */
    raw_global(w, "collections", "OrderedDict"); /* backward hooks */
    op(w, ')');
    op(w, 'R');
    op(w, 't');
    op(w, 'R');
    item_end(w);
}

/* ------------------------------------------------------------ the archive */

/* A libzip destination over the FILE st3d_write_atomic opened: libzip
 * writes, seeks back to complete local headers, and asks positions. */
typedef struct file_sink {
    FILE *f;           /* the temporary file */
    zip_error_t error; /* the last failure, for ZIP_SOURCE_ERROR */
} file_sink;

static zip_int64_t sink_fail(file_sink *s, int ze) {
    zip_error_set(&s->error, ze, errno);
    return -1;
}

static zip_int64_t sink_cb(void *user, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
    file_sink *s = user;
    switch (cmd) {
    case ZIP_SOURCE_SUPPORTS: return ZIP_SOURCE_SUPPORTS_WRITABLE;
    case ZIP_SOURCE_STAT: /* no archive there yet: libzip starts a new one */
        zip_error_set(&s->error, ZIP_ER_READ, ENOENT);
        return -1;
    case ZIP_SOURCE_ERROR: return zip_error_to_data(&s->error, data, len);
    case ZIP_SOURCE_BEGIN_WRITE:
    case ZIP_SOURCE_ROLLBACK_WRITE: /* st3d_write_atomic removes the file */
    case ZIP_SOURCE_REMOVE:
    case ZIP_SOURCE_FREE:
    case ZIP_SOURCE_CLOSE: return 0;
    case ZIP_SOURCE_COMMIT_WRITE: return fflush(s->f) == 0 ? 0 : sink_fail(s, ZIP_ER_WRITE);
    case ZIP_SOURCE_WRITE:
        return fwrite(data, 1, (size_t)len, s->f) == len ? (zip_int64_t)len
                                                         : sink_fail(s, ZIP_ER_WRITE);
    case ZIP_SOURCE_SEEK_WRITE: {
        zip_source_args_seek_t *a = ZIP_SOURCE_GET_ARGS(zip_source_args_seek_t, data, len, &s->error);
        if (!a) return -1;
        return fseeko(s->f, (off_t)a->offset, a->whence) == 0 ? 0 : sink_fail(s, ZIP_ER_SEEK);
    }
    case ZIP_SOURCE_TELL_WRITE: {
        off_t pos = ftello(s->f);
        return pos >= 0 ? (zip_int64_t)pos : sink_fail(s, ZIP_ER_TELL);
    }
    default: /* nothing is ever read back */
        zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

/* What the atomic-write callback needs. */
typedef struct zip_job {
    const char *path; /* destination, for messages */
    const pkw *w;     /* the finished pickle and its storages */
} zip_job;

/* Adds one stored record whose bytes start at a multiple of PTH_ALIGN;
 * *offset tracks where the next local header goes (libzip writes records
 * in the order they are added, each a 30-byte header, the name, the extra
 * fields, then the bytes). */
static int add_record(zip_t *za, const char *name, const void *data, size_t n, uint64_t *offset) {
    static const unsigned char pad[PTH_ALIGN]; /* the extra field's contents */
    const uint64_t head = 30 + strlen(name) + 4; /* + the extra field's own header */
    const size_t fill = (size_t)((PTH_ALIGN - (*offset + head) % PTH_ALIGN) % PTH_ALIGN);
    zip_source_t *src = zip_source_buffer(za, n ? data : pad, n, 0);
    if (!src) return -1;
    zip_int64_t idx = zip_file_add(za, name, src, 0);
    if (idx < 0) {
        zip_source_free(src);
        return -1;
    }
    /* 'FB' (0x4246): the id torch's writer gives its padding */
    if (zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0) != 0 ||
        zip_file_extra_field_set(za, (zip_uint64_t)idx, 0x4246, ZIP_EXTRA_FIELD_NEW, pad,
                                 (zip_uint16_t)fill, ZIP_FL_LOCAL) != 0 ||
        zip_file_set_mtime(za, (zip_uint64_t)idx, 946728000, 0) != 0) /* 2000-01-01 */
        return -1;
    *offset += head + fill + n;
    return 0;
}

static int write_zip(FILE *f, void *user, st3d_error *err) {
    const zip_job *job = user;
    const pkw *w = job->w;
    file_sink sink = {f, {0}};
    zip_error_t ze;
    zip_error_init(&ze);
    zip_error_init(&sink.error);
    zip_t *za = NULL;
    zip_source_t *src = zip_source_function_create(sink_cb, &sink, &ze);
    if (src && !(za = zip_open_from_source(src, ZIP_CREATE | ZIP_TRUNCATE, &ze))) zip_source_free(src);
    if (!za) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot start the zip archive: %s", job->path,
                  zip_error_strerror(&ze));
        zip_error_fini(&ze);
        zip_error_fini(&sink.error);
        return -1;
    }
    zip_error_fini(&ze);
    uint64_t offset = 0;
    char name[64];
    int ok = add_record(za, PTH_FOLDER "/data.pkl", w->buf, w->len, &offset) == 0 &&
             add_record(za, PTH_FOLDER "/byteorder", "little", 6, &offset) == 0;
    for (size_t i = 0; ok && i < w->n_storages; i++) {
        snprintf(name, sizeof name, PTH_FOLDER "/data/%zu", i);
        ok = add_record(za, name, w->storages[i].data, w->storages[i].nbytes, &offset) == 0;
    }
    ok = ok && add_record(za, PTH_FOLDER "/version", "3\n", 2, &offset) == 0;
    if (ok && zip_close(za) == 0) {
        zip_error_fini(&sink.error);
        return 0;
    }
    st3d_fail(err, ST3D_ERR_IO, "%s: cannot write the zip archive: %s", job->path, zip_strerror(za));
    zip_discard(za);
    zip_error_fini(&sink.error);
    return -1;
}

int pth_write_file(const char *path, pkw *w, st3d_error *err) {
    if (w->err.code == ST3D_OK && w->depth != 0)
        st3d_fail(&w->err, ST3D_ERR_INVALID, "pickle: %d containers left open", w->depth);
    if (w->err.code == ST3D_OK && !w->finished) {
        op(w, '.'); /* STOP */
        w->finished = 1;
    }
    if (w->err.code != ST3D_OK) return st3d_fail(err, w->err.code, "%s: %s", path, w->err.msg);
    zip_job job = {path, w};
    return st3d_write_atomic(path, write_zip, &job, err);
}

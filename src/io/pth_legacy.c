/*
 * pth_legacy.c - PyTorch's legacy checkpoint format (before 1.6, and
 * torch.save(..., _use_new_zipfile_serialization=False) since).
 *
 * The file is five pickles back to back, then raw storages:
 *   1. the magic number 0x1950a86a20f9469cfc6c,
 *   2. the protocol version, 1001,
 *   3. system info: {'protocol_version', 'little_endian', 'type_sizes'},
 *   4. the object itself, whose storages are persistent ids
 *      ('storage', type, key, location, numel, view_metadata),
 *   5. the list of storage keys, in the order their data follows;
 * then, for each key, an int64 element count and that many elements.
 *
 * The pickles are small, but their total length is only known by parsing
 * them, so they are read from a prefix of the file that grows (and the parse
 * restarts) while the parser runs out of input.  The storage region is then
 * walked once to learn where each storage lies, checking every count against
 * the pickle's declaration and the file's size; a storage is read only when a
 * state-dict tensor needs it.
 */
#include "io/pth.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                        0x20, 0x6a, 0xa8, 0x50, 0x19};

/* Where one storage's elements lie in the file. */
typedef struct legacy_rec {
    const char *key;   /* storage key */
    st3d_dtype dtype;  /* element type (from the pickle) */
    int64_t numel;     /* elements */
    uint64_t offset;   /* first byte of the elements */
} legacy_rec;

/* State shared with the storage loader. */
typedef struct legacy_reader {
    st3d_src *s;       /* the file */
    legacy_rec *recs;  /* storages sorted by key */
    size_t n_recs;     /* their number */
} legacy_reader;

static int cmp_rec(const void *a, const void *b) {
    return strcmp(((const legacy_rec *)a)->key, ((const legacy_rec *)b)->key);
}

static int cmp_storage(const void *a, const void *b) {
    const pk_obj *x = *(const pk_obj *const *)a, *y = *(const pk_obj *const *)b;
    return strcmp(x->u.storage.key, y->u.storage.key);
}

static int load_storage(void *user, const pk_obj *st, unsigned char **data, st3d_error *err) {
    legacy_reader *lr = user;
    legacy_rec probe = {st->u.storage.key, ST3D_F32, 0, 0};
    const legacy_rec *r = bsearch(&probe, lr->recs, lr->n_recs, sizeof *r, cmp_rec);
    if (!r)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage '%s' is not in the file",
                         lr->s->name, st->u.storage.key);
    if (r->dtype != st->u.storage.dtype || r->numel != st->u.storage.numel)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: storage '%s' is referenced with different types or sizes",
                         lr->s->name, r->key);
    size_t nbytes = (size_t)r->numel * st3d_dtype_size(r->dtype); /* checked in index() */
    *data = st3d_malloc(nbytes, err);
    if (!*data) return -1;
    if (st3d_src_read(lr->s, r->offset, *data, nbytes, err) != 0) {
        free(*data);
        *data = NULL;
        return -1;
    }
    return 0;
}

/* The five pickles, parsed from buf. */
typedef struct legacy_pickles {
    pk_obj *root;      /* the checkpoint object */
    pk_obj *keys;      /* list of storage keys */
    size_t data_start; /* first byte after the last pickle */
} legacy_pickles;

/* Returns 0, -1 (error) or -2 (input ended early). */
static int parse_pickles(const char *path, pk_ctx *pc, const unsigned char *buf, size_t len,
                         legacy_pickles *lp, st3d_error *err) {
    pk_obj *obj[5];
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        size_t used = 0;
        pk_set_base(pc, pos); /* messages give file offsets */
        int rc = pk_load(pc, buf + pos, len - pos, &used, &obj[i], err);
        if (rc != 0) return rc;
        pos += used;
    }
    if (obj[0]->type != PK_BIGINT || obj[0]->u.str.len != 10 ||
        memcmp(obj[0]->u.str.s, MAGIC, 10) != 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: bad magic number for a legacy checkpoint",
                         path);
    if (obj[1]->type != PK_INT || obj[1]->u.i != 1001)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                         "%s: legacy checkpoint protocol version is not 1001", path);
    const pk_obj *little = pk_dict_get(obj[2], "little_endian");
    if (!little || little->type != PK_BOOL)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: malformed system info in legacy checkpoint",
                         path);
    if (!little->u.i)
        return st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                         "%s: checkpoint was written on a big-endian machine", path);
    if (obj[4]->type != PK_LIST)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage key list is a %s, not a list", path,
                         pk_type_name(obj[4]));
    lp->root = obj[3];
    lp->keys = obj[4];
    lp->data_start = pos;
    return 0;
}

/* Walks the storage region and fills lr->recs. */
static int index_storages(st3d_src *s, pk_ctx *pc, const legacy_pickles *lp,
                          legacy_reader *lr, st3d_error *err) {
    size_t ns = pk_storage_count(pc), nk = lp->keys->u.seq.n;
    const pk_obj **sts = st3d_calloc(ns, sizeof *sts, err);
    lr->recs = st3d_calloc(nk, sizeof *lr->recs, err);
    if (!sts || !lr->recs) {
        free(sts);
        return -1;
    }
    for (size_t i = 0; i < ns; i++) sts[i] = pk_storage_at(pc, i);
    qsort(sts, ns, sizeof *sts, cmp_storage);
    uint64_t pos = lp->data_start;
    int rc = 0;
    for (size_t i = 0; i < nk && rc == 0; i++) {
        const pk_obj *k = lp->keys->u.seq.items[i];
        if (k->type != PK_STR && k->type != PK_BYTES) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage key %zu is a %s, not a string",
                           s->name, i, pk_type_name(k));
            break;
        }
        pk_obj probe_obj;
        probe_obj.type = PK_STORAGE;
        probe_obj.u.storage.key = k->u.str.s;
        const pk_obj *probe = &probe_obj;
        const pk_obj **hit = bsearch(&probe, sts, ns, sizeof *sts, cmp_storage);
        if (!hit) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: storage key '%s' is listed but never referenced", s->name,
                           k->u.str.s);
            break;
        }
        unsigned char cnt[8];
        if (st3d_src_read(s, pos, cnt, 8, err) != 0) {
            rc = -1;
            break;
        }
        int64_t numel = (int64_t)st3d_le64(cnt);
        size_t esize = st3d_dtype_size((*hit)->u.storage.dtype);
        int64_t nbytes = st3d_mul_checked(numel, (int64_t)esize);
        if (numel != (*hit)->u.storage.numel) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: storage '%s' at byte %" PRIu64 " holds %" PRId64
                           " elements, the pickle declares %" PRId64,
                           s->name, k->u.str.s, pos, numel, (*hit)->u.storage.numel);
            break;
        }
        if (nbytes < 0 || (uint64_t)nbytes > s->size - pos - 8) {
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: truncated: storage '%s' at byte %" PRIu64 " needs %" PRId64
                           " elements of %s but only %" PRIu64 " bytes remain",
                           s->name, k->u.str.s, pos, numel, st3d_dtype_name((*hit)->u.storage.dtype),
                           s->size - pos - 8);
            break;
        }
        lr->recs[i].key = k->u.str.s;
        lr->recs[i].dtype = (*hit)->u.storage.dtype;
        lr->recs[i].numel = numel;
        lr->recs[i].offset = pos + 8;
        pos += 8 + (uint64_t)nbytes;
    }
    free(sts);
    if (rc != 0) return -1;
    lr->n_recs = nk;
    qsort(lr->recs, nk, sizeof *lr->recs, cmp_rec);
    for (size_t i = 1; i < nk; i++)
        if (strcmp(lr->recs[i - 1].key, lr->recs[i].key) == 0)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage key '%s' is listed twice",
                             s->name, lr->recs[i].key);
    return 0;
}

int pth_read_legacy(st3d_src *s, pth_consume_fn fn, void *user, st3d_error *err) {
    legacy_reader lr = {s, NULL, 0};
    legacy_pickles lp = {NULL, NULL, 0};
    pk_ctx *pc = NULL;
    unsigned char *buf = NULL;
    const unsigned char *bytes = s->mem;
    uint64_t limit = s->size < PTH_MAX_PICKLE ? s->size : PTH_MAX_PICKLE;
    uint64_t len = s->mem ? limit : (limit < (1u << 20) ? limit : (1u << 20));
    int rc;
    for (;;) {
        if (!s->mem) {
            free(buf);
            buf = st3d_malloc((size_t)len, err);
            if (!buf || st3d_src_read(s, 0, buf, (size_t)len, err) != 0) {
                rc = -1;
                break;
            }
            bytes = buf;
        }
        pk_free(pc);
        if (!(pc = pk_new(s->name, err))) {
            rc = -1;
            break;
        }
        rc = parse_pickles(s->name, pc, bytes, (size_t)len, &lp, err);
        if (rc != -2 || len == limit) break;
        len = len > limit / 4 ? limit : 4 * len; /* the pickles go on: read more */
    }
    if (rc == -2 && s->size > PTH_MAX_PICKLE && err)
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: legacy checkpoint pickles exceed %" PRIu64 " bytes",
                  s->name, PTH_MAX_PICKLE);
    free(buf); /* the tree lives in the arena; the pickle bytes are not needed */
    if (rc == 0) rc = index_storages(s, pc, &lp, &lr, err);
    if (rc == 0) {
        pth_loader ld = {load_storage, &lr, NULL}; /* the legacy format is read by copying */
        rc = fn(s->name, lp.root, "pth-legacy", &ld, user, err);
    }
    free(lr.recs);
    pk_free(pc);
    return rc < 0 ? -1 : 0;
}

/*
 * pth_zip.c - PyTorch's zip checkpoint format (torch.save since 1.6).
 *
 * The archive holds, under one top-level folder whose name varies
 * ("archive", or the file's stem): data.pkl (the pickled object, whose
 * tensors refer to storages by key), data/<key> (each storage's raw bytes,
 * little endian unless the optional "byteorder" record says otherwise),
 * version, and in newer releases a few more small records.  Zip access goes
 * through libzip, which also verifies each record's CRC as it is read.
 *
 * Record sizes from the archive are cross-checked with the sizes the pickle
 * declares, and records are read in growing chunks, so that no header, zip or
 * pickle, can make us allocate much more than the data actually present.
 */
#include "io/pth.h"
#include "io/pth_zip_map.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

/* State shared with the storage loader. */
typedef struct zip_reader {
    const char *path;  /* the checkpoint, for messages */
    zip_t *za;         /* the open archive */
    char prefix[256];  /* top-level folder, without the slash */
    zip_map_src *ms;   /* the source over the file mapping, NULL when not mapped */
} zip_reader;

/* Reads record idx, which must hold exactly `expect` bytes (or, when expect
 * is negative, at most `cap` bytes), into a new buffer. */
static int read_record(zip_reader *z, zip_uint64_t idx, int64_t expect, uint64_t cap,
                       unsigned char **out, size_t *len, st3d_error *err) {
    const char *name = zip_get_name(z->za, idx, ZIP_FL_ENC_RAW);
    zip_stat_t st;
    *out = NULL;
    if (!name) name = "?";
    if (zip_stat_index(z->za, idx, ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot stat record '%s': %s", z->path, name,
                         zip_strerror(z->za));
    if (expect >= 0 && st.size != (uint64_t)expect)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: record '%s' holds %" PRIu64 " bytes, the pickle declares %" PRId64,
                         z->path, name, (uint64_t)st.size, expect);
    if (expect < 0 && st.size > cap)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: record '%s' of %" PRIu64 " bytes exceeds the limit of %" PRIu64,
                         z->path, name, (uint64_t)st.size, cap);
    if (st.size > ST3D_MAX_ALLOC)
        return st3d_fail(err, ST3D_ERR_NOMEM, "%s: record '%s' is too large", z->path, name);
    zip_file_t *f = zip_fopen_index(z->za, idx, 0);
    if (!f)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot open record '%s': %s", z->path, name,
                         zip_strerror(z->za));
    size_t total = (size_t)st.size, used = 0, have = total < (1u << 20) ? total : (1u << 20);
    unsigned char *buf = st3d_malloc(have, err);
    int rc = buf ? 0 : -1;
    while (rc == 0 && used < total) {
        if (used == have) { /* grow only as the data really arrives */
            size_t next = have > total / 2 ? total : 2 * have;
            unsigned char *nb = realloc(buf, next);
            if (!nb) {
                rc = st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory reading '%s'", z->path,
                               name);
                break;
            }
            buf = nb;
            have = next;
        }
        zip_int64_t got = zip_fread(f, buf + used, have - used);
        if (got < 0)
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot read record '%s': %s", z->path, name,
                           zip_file_strerror(f));
        else if (got == 0)
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: record '%s' is truncated (%zu of %zu bytes)", z->path, name, used,
                           total);
        else
            used += (size_t)got;
    }
    if (rc == 0) { /* one more read reaches the end, where libzip checks the CRC */
        unsigned char extra;
        zip_int64_t got = zip_fread(f, &extra, 1);
        if (got != 0)
            rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: record '%s' is corrupt: %s", z->path, name,
                           got < 0 ? zip_file_strerror(f) : "longer than its declared size");
    }
    zip_fclose(f);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = total;
    return 0;
}

/* The record of storage st: its index and its size in bytes. */
static int storage_record(zip_reader *z, const pk_obj *st, zip_uint64_t *idx, int64_t *nbytes,
                          st3d_error *err) {
    const char *key = st->u.storage.key;
    char name[512];
    if (strlen(key) > 128)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage key '%.40s...' is too long", z->path,
                         key);
    snprintf(name, sizeof name, "%s/data/%s", z->prefix, key);
    zip_int64_t i = zip_name_locate(z->za, name, ZIP_FL_ENC_RAW);
    if (i < 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage record '%s' is missing", z->path,
                         name);
    *idx = (zip_uint64_t)i;
    *nbytes = st3d_mul_checked(st->u.storage.numel, (int64_t)st3d_dtype_size(st->u.storage.dtype));
    if (*nbytes < 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: storage '%s' size overflows", z->path, key);
    return 0;
}

static int load_storage(void *user, const pk_obj *st, unsigned char **data, st3d_error *err) {
    zip_reader *z = user;
    zip_uint64_t idx = 0;
    int64_t nbytes = 0;
    size_t len;
    if (storage_record(z, st, &idx, &nbytes, err) != 0) return -1;
    return read_record(z, idx, nbytes, 0, data, &len, err);
}

/* The storage's bytes in the file mapping, when they can be read in place
 * (pth_zip_map.c), else NULL. */
static const unsigned char *borrow_storage(void *user, const pk_obj *st) {
    zip_reader *z = user;
    zip_uint64_t idx = 0;
    int64_t nbytes = 0;
    if (!z->ms || storage_record(z, st, &idx, &nbytes, NULL) != 0) return NULL;
    return zip_map_src_locate(z->ms, z->za, idx, (uint64_t)nbytes);
}

/* Finds the one "<prefix>/data.pkl" record. */
static int find_pickle(zip_reader *z, zip_uint64_t *idx, st3d_error *err) {
    zip_int64_t n = zip_get_num_entries(z->za, 0);
    int found = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) continue;
        const char *slash = strchr(name, '/');
        if (!slash || slash == name || strcmp(slash, "/data.pkl") != 0) continue;
        if (found++)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: archive holds more than one data.pkl",
                             z->path);
        size_t plen = (size_t)(slash - name);
        if (plen >= sizeof z->prefix)
            return st3d_fail(err, ST3D_ERR_FORMAT, "%s: archive folder name too long", z->path);
        memcpy(z->prefix, name, plen);
        z->prefix[plen] = '\0';
        *idx = (zip_uint64_t)i;
    }
    if (!found)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: zip archive without a data.pkl record (not a PyTorch checkpoint)",
                         z->path);
    return 0;
}

/* Only little-endian storages are supported (what every x86/ARM host writes). */
static int check_byteorder(zip_reader *z, st3d_error *err) {
    char name[300];
    snprintf(name, sizeof name, "%s/byteorder", z->prefix);
    zip_int64_t idx = zip_name_locate(z->za, name, ZIP_FL_ENC_RAW);
    if (idx < 0) return 0; /* before PyTorch 2.1: always the writer's order, in practice little */
    unsigned char *buf;
    size_t len;
    if (read_record(z, (zip_uint64_t)idx, -1, 16, &buf, &len, err) != 0) return -1;
    int little = len == 6 && memcmp(buf, "little", 6) == 0;
    free(buf);
    return little ? 0
                  : st3d_fail(err, ST3D_ERR_UNSUPPORTED,
                              "%s: storages are not little endian (byteorder record)", z->path);
}

int pth_read_zip(st3d_src *s, pth_consume_fn fn, void *user, st3d_error *err) {
    zip_reader z;
    memset(&z, 0, sizeof z);
    z.path = s->name;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_map_src ms;
    if (s->mapping) { /* a mapped file: storages may be read in place */
        zip_source_t *zs = zip_map_src_create(&ms, s->mem, s->size, &ze);
        if (zs) {
            z.za = zip_open_from_source(zs, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
            if (!z.za) zip_source_free(zs);
        }
        z.ms = &ms;
    } else if (s->mem) {
        zip_source_t *zs = zip_source_buffer_create(s->mem, s->size, 0, &ze);
        if (zs) {
            z.za = zip_open_from_source(zs, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
            if (!z.za) zip_source_free(zs);
        }
    } else {
        int code = 0;
        z.za = zip_open(s->name, ZIP_RDONLY | ZIP_CHECKCONS, &code);
        if (!z.za) zip_error_init_with_code(&ze, code);
    }
    if (!z.za) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: not a readable zip archive (truncated or corrupt?): %s", s->name,
                  zip_error_strerror(&ze));
        zip_error_fini(&ze);
        if (z.ms) zip_map_src_fini(z.ms);
        return -1;
    }
    zip_error_fini(&ze);
    int rc = -1;
    unsigned char *pkl = NULL;
    size_t pkl_len = 0, used = 0;
    pk_ctx *pc = NULL;
    pk_obj *root = NULL;
    zip_uint64_t idx = 0;
    if (find_pickle(&z, &idx, err) != 0 || check_byteorder(&z, err) != 0) goto done;
    if (read_record(&z, idx, -1, PTH_MAX_PICKLE, &pkl, &pkl_len, err) != 0) goto done;
    if (!(pc = pk_new(s->name, err))) goto done;
    if (pk_load(pc, pkl, pkl_len, &used, &root, err) != 0) goto done;
    if (used != pkl_len) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: %zu stray bytes after the pickle in data.pkl",
                  s->name, pkl_len - used);
        goto done;
    }
    pth_loader ld = {load_storage, &z, borrow_storage};
    rc = fn(s->name, root, "pth-zip", &ld, user, err);
done:
    pk_free(pc);
    free(pkl);
    zip_discard(z.za);
    if (z.ms) zip_map_src_fini(z.ms);
    return rc;
}

/*
 * tensor_map.c - an ordered list of named tensors plus string metadata.
 *
 * This is the common currency between weight files (safetensors, .pth) and
 * networks: readers fill a map, a network loads its parameters from one and
 * exports its state_dict into one.  Lookups are linear; maps hold hundreds of
 * entries at most, and a load does one pass.
 *
 * A map read from a safetensors file does not copy the tensors: it owns a
 * read-only mapping of the file, and its entries point into it ("borrowed").
 * st3d_tensor_map_release hands a borrowed tensor's pages back to the kernel
 * once it has been converted (they are read again from the page cache if
 * touched later), so loading a network never holds two copies of it.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct entry {
    st3d_tensor_info info; /* public view; info.name owned here, info.data too unless borrowed */
    int borrowed;          /* 1: info.data points into the map's file mapping */
} entry;

typedef struct meta {
    char *key;   /* owned */
    char *value; /* owned */
} meta;

struct st3d_tensor_map {
    entry *items;     /* tensors in insertion order */
    size_t n, cap;    /* used and allocated entries */
    meta *metas;      /* metadata pairs */
    size_t n_meta, cap_meta;
    void *mapping;    /* a file mapping that borrowed entries point into, or NULL */
    size_t mapping_len;
};

static char *dup_str(const char *s, st3d_error *err) {
    size_t n = strlen(s) + 1;
    char *d = st3d_malloc(n, err);
    if (d) memcpy(d, s, n);
    return d;
}

size_t st3d_dtype_size(st3d_dtype dtype) {
    switch (dtype) {
    case ST3D_F32: case ST3D_I32: return 4;
    case ST3D_F16: case ST3D_BF16: return 2;
    case ST3D_F64: case ST3D_I64: return 8;
    case ST3D_U8: case ST3D_I8: case ST3D_BOOL: return 1;
    }
    return 0;
}

const char *st3d_dtype_name(st3d_dtype dtype) {
    switch (dtype) {
    case ST3D_F32: return "F32";
    case ST3D_F16: return "F16";
    case ST3D_BF16: return "BF16";
    case ST3D_F64: return "F64";
    case ST3D_I64: return "I64";
    case ST3D_I32: return "I32";
    case ST3D_U8: return "U8";
    case ST3D_I8: return "I8";
    case ST3D_BOOL: return "BOOL";
    }
    return "?";
}

st3d_tensor_map *st3d_tensor_map_new(void) {
    return calloc(1, sizeof(st3d_tensor_map));
}

void st3d_tensor_map_free(st3d_tensor_map *map) {
    if (!map) return;
    for (size_t i = 0; i < map->n; i++) {
        free((char *)map->items[i].info.name);
        if (!map->items[i].borrowed) free((void *)map->items[i].info.data);
    }
    if (map->mapping) munmap(map->mapping, map->mapping_len);
    for (size_t i = 0; i < map->n_meta; i++) {
        free(map->metas[i].key);
        free(map->metas[i].value);
    }
    free(map->items);
    free(map->metas);
    free(map);
}

/* Checks and appends one entry; copies data unless borrow is set. */
static int add_entry(st3d_tensor_map *map, const char *name, st3d_dtype dtype, int ndim,
                     const int64_t *shape, const void *data, int borrow, st3d_error *err) {
    if (ndim < 0 || ndim > ST3D_MAX_DIMS)
        return st3d_fail(err, ST3D_ERR_INVALID, "tensor '%s': rank %d out of range", name, ndim);
    if (st3d_tensor_map_find(map, name))
        return st3d_fail(err, ST3D_ERR_FORMAT, "tensor '%s' appears twice", name);
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        count = st3d_mul_checked(count, shape[d]);
        if (count < 0)
            return st3d_fail(err, ST3D_ERR_FORMAT, "tensor '%s': invalid shape", name);
    }
    int64_t nbytes = st3d_mul_checked(count, (int64_t)st3d_dtype_size(dtype));
    if (nbytes < 0 || (uint64_t)nbytes > ST3D_MAX_ALLOC)
        return st3d_fail(err, ST3D_ERR_NOMEM, "tensor '%s': too large", name);
    if (map->n == map->cap) {
        size_t cap = map->cap ? 2 * map->cap : 64;
        entry *items = realloc(map->items, cap * sizeof *items);
        if (!items) return st3d_fail(err, ST3D_ERR_NOMEM, "tensor map: out of memory");
        map->items = items;
        map->cap = cap;
    }
    char *nm = dup_str(name, err);
    void *copy = borrow ? (void *)data : nm ? st3d_malloc((size_t)nbytes, err) : NULL;
    if (!nm || !copy) {
        free(nm);
        return -1;
    }
    if (!borrow && nbytes) memcpy(copy, data, (size_t)nbytes);
    entry *e = &map->items[map->n++];
    st3d_tensor_info *t = &e->info;
    memset(e, 0, sizeof *e);
    e->borrowed = borrow;
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->data = copy;
    t->nbytes = (size_t)nbytes;
    return 0;
}

int st3d_tensor_map_add(st3d_tensor_map *map, const char *name, st3d_dtype dtype,
                        int ndim, const int64_t *shape, const void *data,
                        st3d_error *err) {
    return add_entry(map, name, dtype, ndim, shape, data, 0, err);
}

int st3d_tensor_map_add_borrowed(st3d_tensor_map *map, const char *name, st3d_dtype dtype,
                                 int ndim, const int64_t *shape, const void *data,
                                 st3d_error *err) {
    return add_entry(map, name, dtype, ndim, shape, data, 1, err);
}

void st3d_tensor_map_adopt_mapping(st3d_tensor_map *map, void *base, size_t len) {
    map->mapping = base;
    map->mapping_len = len;
}

void st3d_tensor_map_release(const st3d_tensor_map *map, const st3d_tensor_info *t) {
    if (!map->mapping || t->nbytes == 0) return;
    const entry *e = (const entry *)(const void *)t; /* info is the entry's first member */
    /* only the pages wholly inside this tensor: neighbours may still be needed */
    if (e->borrowed) st3d_drop_pages(t->data, t->nbytes);
}

int st3d_tensor_map_strip_prefix(st3d_tensor_map *map, const char *prefix, st3d_error *err) {
    size_t k = strlen(prefix);
    for (size_t i = 0; i < map->n; i++) {
        const char *name = map->items[i].info.name;
        if (strncmp(name, prefix, k) != 0) continue;
        if (st3d_tensor_map_find(map, name + k))
            return st3d_fail(err, ST3D_ERR_FORMAT,
                             "key '%s' appears both with and without the '%s' prefix", name + k,
                             prefix);
        memmove((char *)name, name + k, strlen(name + k) + 1);
    }
    return 0;
}

size_t st3d_tensor_map_count(const st3d_tensor_map *map) { return map->n; }

const st3d_tensor_info *st3d_tensor_map_at(const st3d_tensor_map *map, size_t i) {
    return i < map->n ? &map->items[i].info : NULL;
}

const st3d_tensor_info *st3d_tensor_map_find(const st3d_tensor_map *map, const char *name) {
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->items[i].info.name, name) == 0) return &map->items[i].info;
    return NULL;
}

int st3d_tensor_map_set_meta(st3d_tensor_map *map, const char *key, const char *value,
                             st3d_error *err) {
    char *v = dup_str(value, err);
    if (!v) return -1;
    for (size_t i = 0; i < map->n_meta; i++) {
        if (strcmp(map->metas[i].key, key) == 0) {
            free(map->metas[i].value);
            map->metas[i].value = v;
            return 0;
        }
    }
    if (map->n_meta == map->cap_meta) {
        size_t cap = map->cap_meta ? 2 * map->cap_meta : 16;
        meta *m = realloc(map->metas, cap * sizeof *m);
        if (!m) {
            free(v);
            return st3d_fail(err, ST3D_ERR_NOMEM, "tensor map: out of memory");
        }
        map->metas = m;
        map->cap_meta = cap;
    }
    char *k = dup_str(key, err);
    if (!k) {
        free(v);
        return -1;
    }
    map->metas[map->n_meta].key = k;
    map->metas[map->n_meta].value = v;
    map->n_meta++;
    return 0;
}

const char *st3d_tensor_map_get_meta(const st3d_tensor_map *map, const char *key) {
    for (size_t i = 0; i < map->n_meta; i++)
        if (strcmp(map->metas[i].key, key) == 0) return map->metas[i].value;
    return NULL;
}

size_t st3d_tensor_map_meta_count(const st3d_tensor_map *map) { return map->n_meta; }

const char *st3d_tensor_map_meta_key(const st3d_tensor_map *map, size_t i) {
    return i < map->n_meta ? map->metas[i].key : NULL;
}

/* IEEE half -> float, exact for every input including subnormals and NaN. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st3d_tensor_to_f32(const st3d_tensor_info *t, float *out, st3d_error *err) {
    size_t n = t->nbytes / (st3d_dtype_size(t->dtype) ? st3d_dtype_size(t->dtype) : 1);
    const unsigned char *p = t->data;
    if (t->dtype == ST3D_F32) {
        if (n) memcpy(out, p, 4 * n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ST3D_F32: memcpy(&out[i], p + 4 * i, 4); break;
        case ST3D_F16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = half_to_float(h);
            break;
        }
        case ST3D_BF16: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        case ST3D_F64: {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        case ST3D_I64: {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            out[i] = (float)v;
            break;
        }
        case ST3D_I32: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = (float)v;
            break;
        }
        case ST3D_U8: case ST3D_BOOL: out[i] = (float)p[i]; break;
        case ST3D_I8: out[i] = (float)(int8_t)p[i]; break;
        default:
            return st3d_fail(err, ST3D_ERR_UNSUPPORTED, "tensor '%s': dtype %d not convertible",
                             t->name, (int)t->dtype);
        }
    }
    return 0;
}

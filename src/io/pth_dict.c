/*
 * pth_dict.c - the format-independent half of the .pth reader: finds the
 * state dict in an unpickled checkpoint, checks every tensor view against
 * its storage, and copies each tensor out as a contiguous row-major block
 * into a tensor map.
 *
 * Storages are fetched through the container format's loader only when a
 * state-dict tensor needs them (an optimizer's momentum buffers are never
 * read), once each however many tensors share them, and released as soon as
 * the last tensor using them is copied, so peak memory stays near the size
 * of the map being built.  pth_add_tensor copies out any other one tensor
 * (a training checkpoint's momentum buffers, checkpoint_pth.c).
 */
#include "io/pth.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A view may hold more elements than its storage only when it is small
 * (overlapping or broadcast views); this bounds what a hostile shape with
 * zero strides can make us allocate. */
#define PTH_MAX_OVERLAP_ELEMS ((int64_t)1 << 20)

/* One tensor of the state dict. */
typedef struct pth_item {
    const char *name;      /* state-dict key */
    const pk_tensor *t;    /* its description */
    size_t group;          /* index of its storage in the loaded table */
} pth_item;

/* A storage shared by one or more items. */
typedef struct pth_group {
    const pk_obj *st;      /* first reference seen (key, dtype, numel) */
    unsigned char *data;   /* loaded bytes, or NULL while not needed yet */
    size_t uses;           /* items still to be copied from it */
    int borrowed;          /* 1: data points into the file mapping (not freed) */
} pth_group;

static int all_tensors(const pk_obj *d) {
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (d->u.dict.vals[i]->type != PK_TENSOR) return 0;
    return 1;
}

/* The state dict: root itself, or its 'state_dict' or 'model' entry. */
static const pk_obj *find_state_dict(const char *path, const pk_obj *root, st3d_error *err) {
    if (root->type != PK_DICT) {
        st3d_fail(err, ST3D_ERR_FORMAT, "%s: checkpoint holds a %s, not a dict", path,
                  pk_type_name(root));
        return NULL;
    }
    if (root->u.dict.n && all_tensors(root)) return root;
    static const char *const keys[] = {"state_dict", "model"};
    for (size_t k = 0; k < 2; k++) {
        const pk_obj *d = pk_dict_get(root, keys[k]);
        if (d && d->type == PK_DICT) return d;
    }
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < root->u.dict.n && used + 1 < sizeof list; i++) {
        const pk_obj *k = root->u.dict.keys[i];
        int n = snprintf(list + used, sizeof list - used, "%s'%.40s'", i ? ", " : "",
                         k->type == PK_STR ? k->u.str.s : pk_type_name(k));
        if (n > 0) used += (size_t)n;
    }
    st3d_fail(err, ST3D_ERR_FORMAT,
              "%s: no state dict found (neither a dict of tensors nor one with a 'state_dict' "
              "or 'model' entry; top-level keys: %s)",
              path, root->u.dict.n ? list : "none");
    return NULL;
}

static int set_meta(const char *path, const pk_obj *root, const char *format,
                    st3d_tensor_map *map, st3d_error *err) {
    if (st3d_tensor_map_set_meta(map, "format", format, err) != 0) return -1;
    const pk_obj *arch = pk_dict_get(root, "arch");
    if (arch && arch->type == PK_STR && strlen(arch->u.str.s) == arch->u.str.len &&
        st3d_tensor_map_set_meta(map, "arch", arch->u.str.s, err) != 0)
        return -1;
    const pk_obj *epoch = pk_dict_get(root, "epoch");
    if (epoch && epoch->type == PK_INT) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRId64, epoch->u.i);
        if (st3d_tensor_map_set_meta(map, "epoch", buf, err) != 0) return -1;
    }
    (void)path;
    return 0;
}

static int cmp_items_by_key(const void *a, const void *b) {
    const pth_item *x = *(const pth_item *const *)a, *y = *(const pth_item *const *)b;
    return strcmp(x->t->storage->u.storage.key, y->t->storage->u.storage.key);
}

/* Groups items by storage key; returns the number of groups or -1. */
static int64_t group_items(const char *path, pth_item *items, size_t n, pth_group **groups,
                           st3d_error *err) {
    pth_item **order = st3d_calloc(n, sizeof *order, err);
    pth_group *g = st3d_calloc(n, sizeof *g, err);
    if (!order || !g) {
        free(order);
        free(g);
        return -1;
    }
    for (size_t i = 0; i < n; i++) order[i] = &items[i];
    qsort(order, n, sizeof *order, cmp_items_by_key);
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        const pk_obj *st = order[i]->t->storage;
        if (i == 0 || cmp_items_by_key(&order[i - 1], &order[i]) != 0) {
            g[ng].st = st;
            ng++;
        } else if (g[ng - 1].st->u.storage.dtype != st->u.storage.dtype ||
                   g[ng - 1].st->u.storage.numel != st->u.storage.numel) {
            st3d_fail(err, ST3D_ERR_FORMAT,
                      "%s: storage '%s' is referenced with different types or sizes", path,
                      st->u.storage.key);
            free(order);
            free(g);
            return -1;
        }
        order[i]->group = ng - 1;
        g[ng - 1].uses++;
    }
    free(order);
    *groups = g;
    return (int64_t)ng;
}

/* Checks the view of item it against its storage; sets *base (first
 * element), *count (elements) and *contig (row-major without gaps). */
static int check_view(const char *path, const pth_item *it, int64_t *base, int64_t *count,
                      int *contig, st3d_error *err) {
    const pk_tensor *t = it->t;
    const pk_obj *st = t->storage;
    int64_t limit = st->u.storage.numel, start = 0;
    if (st->u.storage.view_numel >= 0) { /* a legacy storage view */
        start = st->u.storage.view_offset;
        if (start > limit || st->u.storage.view_numel > limit - start)
            return st3d_fail(err, ST3D_ERR_FORMAT,
                             "%s: tensor '%s': storage view [%" PRId64 ", +%" PRId64
                             "] exceeds storage '%s' of %" PRId64 " elements",
                             path, it->name, start, st->u.storage.view_numel, st->u.storage.key,
                             limit);
        limit = start + st->u.storage.view_numel;
    }
    int64_t n = 1, last = start;
    if (t->offset > INT64_MAX - start) goto too_far;
    last = start + t->offset;
    for (int d = 0; d < t->ndim; d++) n = n < 0 ? -1 : st3d_mul_checked(n, t->shape[d]);
    if (n < 0)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: tensor '%s': element count overflows", path,
                         it->name);
    *count = n;
    *base = last;
    *contig = 1;
    if (n == 0) return 0;
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t step = st3d_mul_checked(t->shape[d] - 1, t->stride[d]);
        if (step < 0 || step > INT64_MAX - last) goto too_far;
        last += step;
        if (t->shape[d] != 1 && t->stride[d] != expect) *contig = 0;
        expect = st3d_mul_checked(expect, t->shape[d]);
    }
    if (last >= limit) goto too_far;
    if (n > limit - start && n > PTH_MAX_OVERLAP_ELEMS)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: tensor '%s': %" PRId64 " elements viewed from a storage of %" PRId64,
                         path, it->name, n, limit - start);
    return 0;
too_far: {
    char shp[200], strd[200];
    st3d_format_shape(shp, sizeof shp, t->ndim, t->shape);
    st3d_format_shape(strd, sizeof strd, t->ndim, t->stride);
    return st3d_fail(err, ST3D_ERR_FORMAT,
                     "%s: tensor '%s': view (offset %" PRId64 ", shape [%s], stride [%s]) "
                     "reaches beyond storage '%s' of %" PRId64 " elements",
                     path, it->name, t->offset, shp, strd, st->u.storage.key,
                     st->u.storage.numel);
}
}

/* Copies a strided view into dst, row-major. */
static void gather(unsigned char *dst, const unsigned char *src, size_t esize, int64_t base,
                   const pk_tensor *t, int64_t count) {
    int64_t idx[ST3D_MAX_DIMS] = {0};
    int64_t off = base;
    int nd = t->ndim;
    for (int64_t i = 0; i < count; i++) {
        memcpy(dst + (size_t)i * esize, src + (size_t)off * esize, esize);
        for (int d = nd - 1; d >= 0; d--) { /* odometer */
            if (++idx[d] < t->shape[d]) {
                off += t->stride[d];
                break;
            }
            off -= (t->shape[d] - 1) * t->stride[d];
            idx[d] = 0;
        }
    }
}

static int add_item(const char *path, const pth_item *it, pth_group *g, const pth_loader *ld,
                    st3d_tensor_map *map, st3d_error *err) {
    int64_t base = 0, count = 0;
    int contig = 1;
    const pk_tensor *t = it->t;
    st3d_dtype dt = t->storage->u.storage.dtype;
    size_t esize = st3d_dtype_size(dt);
    if (check_view(path, it, &base, &count, &contig, err) != 0) return -1;
    if (count > 0 && !g->data) {
        const unsigned char *at = ld->borrow ? ld->borrow(ld->user, g->st) : NULL;
        if (at) {
            g->data = (unsigned char *)at; /* read only */
            g->borrowed = 1;
        } else if (ld->load(ld->user, g->st, &g->data, err) != 0) {
            return -1;
        }
    }
    const unsigned char *src = count > 0 ? g->data + (size_t)base * esize : NULL;
    unsigned char *tmp = NULL;
    if (count > 0 && !contig) {
        int64_t nbytes = st3d_mul_checked(count, (int64_t)esize);
        tmp = nbytes < 0 ? NULL : st3d_malloc((size_t)nbytes, err);
        if (!tmp) return nbytes < 0 ? st3d_fail(err, ST3D_ERR_NOMEM, "%s: tensor '%s' too large",
                                                path, it->name)
                                    : -1;
        gather(tmp, g->data, esize, base, t, count);
        src = tmp;
    }
    static const unsigned char empty[8];
    /* a contiguous view of a storage read in place points into the file */
    int rc = g->borrowed && !tmp && src
                 ? st3d_tensor_map_add_borrowed(map, it->name, dt, t->ndim, t->shape, src, err)
                 : st3d_tensor_map_add(map, it->name, dt, t->ndim, t->shape, src ? src : empty, err);
    free(tmp);
    if (rc != 0) st3d_fail_prefix(err, path);
    if (--g->uses == 0) {
        if (!g->borrowed) free(g->data);
        g->data = NULL;
    }
    return rc;
}

int pth_add_tensor(const char *path, const char *name, const pk_obj *tensor,
                   const pth_loader *ld, st3d_tensor_map *map, st3d_error *err) {
    if (tensor->type != PK_TENSOR)
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: '%s' is a %s, not a tensor", path, name,
                         pk_type_name(tensor));
    pth_item it = {name, tensor->u.tensor, 0};
    pth_group g = {tensor->u.tensor->storage, NULL, 1, 0};
    int rc = add_item(path, &it, &g, ld, map, err);
    if (!g.borrowed) free(g.data); /* left there when add_item failed */
    return rc;
}

int pth_build_map(const char *path, const pk_obj *root, const char *format,
                  const pth_loader *ld, st3d_tensor_map **out, st3d_error *err) {
    *out = NULL;
    const pk_obj *sd = find_state_dict(path, root, err);
    if (!sd) return -1;
    size_t n = sd->u.dict.n;
    pth_item *items = st3d_calloc(n, sizeof *items, err);
    if (!items) return -1;
    pth_group *groups = NULL;
    int64_t ng = 0;
    st3d_tensor_map *map = NULL;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const pk_obj *k = sd->u.dict.keys[i], *v = sd->u.dict.vals[i];
        if (k->type != PK_STR || strlen(k->u.str.s) != k->u.str.len) {
            st3d_fail(err, ST3D_ERR_FORMAT, "%s: state dict key %zu is a %s, not a string", path,
                      i, pk_type_name(k));
            goto done;
        }
        if (v->type != PK_TENSOR) {
            st3d_fail(err, ST3D_ERR_FORMAT, "%s: state dict entry '%s' is a %s, not a tensor",
                      path, k->u.str.s, pk_type_name(v));
            goto done;
        }
        items[i].name = k->u.str.s;
        items[i].t = v->u.tensor;
    }
    ng = group_items(path, items, n, &groups, err);
    if (ng < 0) goto done;
    map = st3d_tensor_map_new();
    if (!map) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (set_meta(path, root, format, map, err) != 0) goto done;
    for (size_t i = 0; i < n; i++)
        if (add_item(path, &items[i], &groups[items[i].group], ld, map, err) != 0) goto done;
    *out = map;
    map = NULL;
    rc = 0;
done:
    for (int64_t g = 0; g < ng; g++)
        if (!groups[g].borrowed) free(groups[g].data);
    free(groups);
    free(items);
    st3d_tensor_map_free(map);
    return rc;
}

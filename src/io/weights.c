/*
 * weights.c - st3d_weights_read: opens any supported weights file by looking
 * at its first bytes (a zip archive is a .pth of PyTorch >= 1.6, a pickle of
 * the legacy magic number a .pth of the old format, and anything whose first
 * 8 bytes are a plausible header length followed by '{' a safetensors file),
 * then strips the "module." prefix nn.DataParallel puts on every key.
 */
#include "io/io.h"
#include "io/pth.h"

#include <stdlib.h>
#include <string.h>

/* Returns a copy of map with "module." removed from the front of each key. */
static int strip_module(const char *path, st3d_tensor_map **map, st3d_error *err) {
    st3d_tensor_map *in = *map;
    size_t n = st3d_tensor_map_count(in);
    int any = 0;
    for (size_t i = 0; i < n && !any; i++)
        any = strncmp(st3d_tensor_map_at(in, i)->name, "module.", 7) == 0;
    if (!any) return 0;
    st3d_tensor_map *out = st3d_tensor_map_new();
    if (!out) return st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < st3d_tensor_map_meta_count(in); i++) {
        const char *k = st3d_tensor_map_meta_key(in, i);
        if (st3d_tensor_map_set_meta(out, k, st3d_tensor_map_get_meta(in, k), err) != 0)
            goto bad;
    }
    for (size_t i = 0; i < n; i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(in, i);
        const char *name = strncmp(t->name, "module.", 7) == 0 ? t->name + 7 : t->name;
        if (st3d_tensor_map_find(out, name)) {
            st3d_fail(err, ST3D_ERR_FORMAT,
                      "%s: key '%s' appears both with and without the 'module.' prefix", path,
                      name);
            goto bad;
        }
        if (st3d_tensor_map_add(out, name, t->dtype, t->ndim, t->shape, t->data, err) != 0)
            goto bad;
        /* release each input tensor as soon as it is copied: peak memory
         * stays near one model's size plus one tensor */
        free((void *)t->data);
        ((st3d_tensor_info *)t)->data = NULL;
    }
    st3d_tensor_map_free(in);
    *map = out;
    return 0;
bad:
    st3d_tensor_map_free(out);
    return -1;
}

int st3d_weights_read(const char *path, st3d_tensor_map **out, st3d_error *err) {
    st3d_src s;
    *out = NULL;
    if (st3d_src_open(&s, path, err) != 0) return -1;
    unsigned char head[16] = {0};
    size_t n = s.size < sizeof head ? (size_t)s.size : sizeof head;
    int rc = st3d_src_read(&s, 0, head, n, err);
    if (rc == 0) {
        switch (st3d_weights_sniff(head, n)) {
        case ST3D_WEIGHTS_SAFETENSORS: rc = st3d_safetensors_read_src(&s, out, err); break;
        case ST3D_WEIGHTS_PTH_ZIP:
        case ST3D_WEIGHTS_PTH_LEGACY: rc = st3d_pth_read_src(&s, out, err); break;
        default:
            rc = st3d_fail(err, ST3D_ERR_FORMAT,
                           "%s: not a weights file (neither a PyTorch checkpoint nor safetensors)",
                           path);
        }
    }
    st3d_src_close(&s);
    if (rc == 0) rc = strip_module(path, out, err);
    if (rc != 0) {
        st3d_tensor_map_free(*out);
        *out = NULL;
    }
    return rc;
}

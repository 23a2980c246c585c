/*
 * pth.c - entry points of the PyTorch checkpoint reader: recognizes the
 * container format from the first bytes and hands over to pth_zip.c or
 * pth_legacy.c, which unpickle the checkpoint and pass it to a consumer:
 * the state-dict builder (pth_dict.c) for st3d_pth_read, or the training
 * checkpoint reader (src/train/checkpoint_pth.c).  Also classifies files for
 * st3d_weights_read.
 */
#include "io/pth.h"

#include <string.h>

/* What pickle.dump(0x1950a86a20f9469cfc6c, protocol=2) starts with. */
static const unsigned char LEGACY_HEAD[14] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                              0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

st3d_weights_kind st3d_weights_sniff(const unsigned char *head, size_t n) {
    if (n >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) return ST3D_WEIGHTS_PTH_ZIP;
    /* the magic is pickled with protocol 2 or higher: accept any PROTO byte */
    if (n >= 14 && head[0] == 0x80 && memcmp(head + 2, LEGACY_HEAD + 2, 12) == 0)
        return ST3D_WEIGHTS_PTH_LEGACY;
    if (n >= 9 && head[8] == '{') return ST3D_WEIGHTS_SAFETENSORS;
    return ST3D_WEIGHTS_UNKNOWN;
}

st3d_weights_kind st3d_weights_sniff_path(const char *path) {
    st3d_src s;
    unsigned char head[16] = {0};
    if (st3d_src_open(&s, path, NULL) != 0) return ST3D_WEIGHTS_UNKNOWN;
    size_t n = s.size < sizeof head ? (size_t)s.size : sizeof head;
    int rc = st3d_src_read(&s, 0, head, n, NULL);
    st3d_src_close(&s);
    return rc == 0 ? st3d_weights_sniff(head, n) : ST3D_WEIGHTS_UNKNOWN;
}

int pth_read_with(st3d_src *s, pth_consume_fn fn, void *user, st3d_error *err) {
    unsigned char head[16] = {0};
    size_t n = s->size < sizeof head ? (size_t)s->size : sizeof head;
    if (st3d_src_read(s, 0, head, n, err) != 0) return -1;
    switch (st3d_weights_sniff(head, n)) {
    case ST3D_WEIGHTS_PTH_ZIP: return pth_read_zip(s, fn, user, err);
    case ST3D_WEIGHTS_PTH_LEGACY: return pth_read_legacy(s, fn, user, err);
    default: break;
    }
    if (n >= 2 && head[0] == 0x80)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: a plain pickle, not a torch.save checkpoint (no legacy magic number)",
                         s->name);
    return st3d_fail(err, ST3D_ERR_FORMAT,
                     "%s: not a PyTorch checkpoint (neither a zip archive nor the legacy format)",
                     s->name);
}

static int build_map(const char *path, const pk_obj *root, const char *format,
                     const pth_loader *ld, void *out, st3d_error *err) {
    return pth_build_map(path, root, format, ld, out, err);
}

int st3d_pth_read_src(st3d_src *s, st3d_tensor_map **out, st3d_error *err) {
    *out = NULL;
    if (pth_read_with(s, build_map, out, err) != 0) return -1;
    if (s->mapping) { /* tensors read in place point into it: the map keeps it */
        st3d_tensor_map_adopt_mapping(*out, s->mapping, (size_t)s->size);
        s->mapping = NULL;
    }
    return 0;
}

int st3d_pth_read(const char *path, st3d_tensor_map **out, st3d_error *err) {
    st3d_src s;
    *out = NULL;
    if (st3d_src_open(&s, path, err) != 0) return -1;
    int rc = st3d_pth_read_src(&s, out, err);
    st3d_src_close(&s);
    return rc;
}

int st3d_pth_read_mem(const void *buf, size_t n, const char *name, st3d_tensor_map **out,
                      st3d_error *err) {
    st3d_src s;
    st3d_src_mem(&s, buf, n, name);
    return st3d_pth_read_src(&s, out, err);
}

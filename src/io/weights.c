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

int st3d_weights_read(const char *path, st3d_tensor_map **out, st3d_error *err) {
    st3d_src s;
    *out = NULL;
    if (st3d_src_map(&s, path, err) != 0) return -1;
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
    if (rc == 0 && st3d_tensor_map_strip_prefix(*out, "module.", err) != 0) rc = st3d_fail_prefix(err, path);
    if (rc != 0) {
        st3d_tensor_map_free(*out);
        *out = NULL;
    }
    return rc;
}

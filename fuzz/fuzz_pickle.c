/*
 * fuzz_pickle.c - libFuzzer target for the restricted unpickler and the
 * state-dict builder, without a container format around them: the input is
 * a pickle; its storages are served by a fake loader that hands out
 * deterministic bytes of the declared size (refusing sizes over 1 MiB), so
 * that view checks and strided copies run on whatever the fuzzer invents.
 */
#include "io/pth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_load(void *user, const pk_obj *st, unsigned char **out, st3d_error *err) {
    (void)user;
    int64_t n = st3d_mul_checked(st->u.storage.numel,
                                 (int64_t)st3d_dtype_size(st->u.storage.dtype));
    if (n < 0 || n > (1 << 20))
        return st3d_fail(err, ST3D_ERR_FORMAT, "fake storage '%s' too large", st->u.storage.key);
    *out = malloc((size_t)n + 1);
    if (!*out) return st3d_fail(err, ST3D_ERR_NOMEM, "out of memory");
    memset(*out, 0x3c, (size_t)n + 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st3d_error err;
    pk_ctx *c = pk_new("fuzz.pkl", &err);
    if (!c) return 0;
    pk_obj *root = NULL;
    size_t used = 0;
    if (pk_load(c, data, size, &used, &root, &err) == 0) {
        pth_loader ld = {fake_load, NULL};
        st3d_tensor_map *map = NULL;
        if (pth_build_map("fuzz.pkl", root, "pth-zip", &ld, &map, &err) == 0)
            st3d_tensor_map_free(map);
    }
    pk_free(c);
    return 0;
}

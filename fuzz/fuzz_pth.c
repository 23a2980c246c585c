/*
 * fuzz_pth.c - libFuzzer target for the PyTorch checkpoint reader: the
 * input is a whole .pth file (zip or legacy format) read from memory, so the
 * zip layer (libzip), the legacy storage index, the restricted unpickler,
 * the state-dict search and the view materialization are all exercised.
 */
#include "io/pth.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st3d_error err;
    st3d_tensor_map *map = NULL;
    if (st3d_pth_read_mem(data, size, "fuzz.pth", &map, &err) == 0) st3d_tensor_map_free(map);
    return 0;
}

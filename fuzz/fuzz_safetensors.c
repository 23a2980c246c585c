/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors reader: parses
 * the input as a safetensors file from memory and, when it is accepted,
 * converts every tensor to float32 (touching every byte the reader claims
 * is there).
 */
#include "io/io.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st3d_error err;
    st3d_tensor_map *map = NULL;
    if (st3d_safetensors_read_mem(data, size, "fuzz.safetensors", &map, &err) != 0) return 0;
    for (size_t i = 0; i < st3d_tensor_map_count(map); i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(map, i);
        size_t n = t->nbytes / st3d_dtype_size(t->dtype);
        float *f = malloc((n ? n : 1) * sizeof *f);
        if (f) st3d_tensor_to_f32(t, f, &err);
        free(f);
    }
    st3d_tensor_map_free(map);
    return 0;
}

/*
 * fuzz_npy.c - libFuzzer target for the .npy header parser and reader,
 * reading float32 arrays from memory.
 */
#include "io/io.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st3d_error err;
    float *out = NULL;
    int ndim = 0;
    int64_t shape[ST3D_MAX_DIMS];
    if (st3d_npy_read_f32_mem(data, size, "fuzz.npy", &out, &ndim, shape, &err) == 0) free(out);
    return 0;
}

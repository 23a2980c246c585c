/*
 * resize_bench.c - time st3d's Pillow-exact bilinear resize (the spatial
 * transforms' resampling, src/data/spatial.c) on one RGB frame.
 *
 *   resize_bench FRAME.rgb SRC_W SRC_H DST ITERS OUT.rgb
 *
 * Reads SRC_W x SRC_H RGB bytes, resizes to DST x DST ITERS times, prints
 * "RESULT us_per_frame=..." and writes the last result to OUT.rgb, so that
 * bench/resize_bench.py can check it against Pillow's byte for byte and time
 * Pillow's Image.resize on the same frame, side by side.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: resize_bench FRAME.rgb SRC_W SRC_H DST ITERS OUT.rgb\n");
        return 2;
    }
    int sw = atoi(argv[2]), sh = atoi(argv[3]), d = atoi(argv[4]), iters = atoi(argv[5]);
    if (sw <= 0 || sh <= 0 || d <= 0 || iters <= 0) {
        fprintf(stderr, "resize_bench: sizes and ITERS must be positive\n");
        return 2;
    }
    size_t n = (size_t)sw * sh * 3;
    uint8_t *src = malloc(n), *dst = malloc((size_t)d * d * 3);
    FILE *f = fopen(argv[1], "rb");
    if (!src || !dst || !f || fread(src, 1, n, f) != n) {
        fprintf(stderr, "resize_bench: %s: cannot read %zu bytes\n", argv[1], n);
        return 1;
    }
    fclose(f);
    st3d_spatial_work w = {0};
    st3d_error err = {0};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < iters; i++)
        if (st3d_resize_pil_bilinear(src, sw, sh, (size_t)sw * 3, d, d, 0, 0, d, d, dst, &w, &err) != 0) {
            fprintf(stderr, "resize_bench: %s\n", err.msg);
            return 1;
        }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / iters / 1e3;
    printf("RESULT us_per_frame=%.2f\n", us);
    FILE *o = fopen(argv[6], "wb");
    if (!o || fwrite(dst, 1, (size_t)d * d * 3, o) != (size_t)d * d * 3 || fclose(o) != 0) {
        fprintf(stderr, "resize_bench: cannot write %s\n", argv[6]);
        return 1;
    }
    st3d_spatial_work_free(&w);
    free(src);
    free(dst);
    return 0;
}

/*
 * temporal_tool.c - st3d's temporal transforms over many segments in one
 * process, for test_transforms.py (which would otherwise start `st3d
 * sample-clips --segment` hundreds of times).  Reads one query per line on
 * standard input:
 *   BEGIN END MODE SIZE T_STRIDE N_CLIPS WINDOW_STRIDE SEED
 * with MODE one of random|center|begin|even|sliding, and prints the clips
 * (frame numbers, one clip per line) followed by a line "end".  The random
 * generator is seeded as `st3d sample-clips --segment` seeds it.
 */
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    static const char *const modes[] = {"random", "center", "begin", "even", "sliding"};
    long long b, e, seed;
    char mode[16];
    int size, t_stride, n_clips, window_stride;
    while (scanf("%lld %lld %15s %d %d %d %d %lld", &b, &e, mode, &size, &t_stride, &n_clips,
                 &window_stride, &seed) == 8) {
        int m = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(mode, modes[i])) m = i;
        if (m < 0) {
            fprintf(stderr, "temporal_tool: unknown mode '%s'\n", mode);
            return 2;
        }
        st3d_temporal_cfg c = {(st3d_temporal_crop)m, size, t_stride, n_clips, window_stride};
        st3d_error err = {0};
        st3d_rng rng = st3d_rng_for((uint64_t)seed, 0, 0, 0);
        int64_t n = st3d_temporal_clips(b, e, &c, &rng, NULL, 0, &err);
        if (n < 0) {
            fprintf(stderr, "temporal_tool: %s\n", err.msg);
            return 1;
        }
        int64_t *out = malloc((size_t)(n * size + 1) * sizeof *out);
        if (!out) return 1;
        rng = st3d_rng_for((uint64_t)seed, 0, 0, 0);
        st3d_temporal_clips(b, e, &c, &rng, out, n, &err);
        for (int64_t k = 0; k < n; k++) {
            for (int t = 0; t < size; t++) printf(t ? " %lld" : "%lld", (long long)out[k * size + t]);
            printf("\n");
        }
        printf("end\n");
        free(out);
    }
    return 0;
}

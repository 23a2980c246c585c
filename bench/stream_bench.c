/*
 * stream_bench.c - the decoding side of `st3d features` alone: every clip of
 * a st3d_clip_stream over one video (decode, resize, crop, normalize into a
 * caller's buffer), no network, timed.  What `st3d features` waits for
 * between forwards when its decoders are held (bench/RESULTS.md).
 *
 * usage: stream_bench VIDEO [FFMPEG_THREADS (1)] [RUNS (3)]
 * prints one line per run: clips, seconds; 16 x 112 x 112 clips every 16
 * frames, one decoder thread (as `st3d features` on one video).
 */
#define _POSIX_C_SOURCE 200809L
#include "st3d.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: stream_bench VIDEO [FFMPEG_THREADS] [RUNS]\n");
        return 2;
    }
    st3d_stream_params p = st3d_stream_default_params();
    p.n_threads = 1;
    p.decoder_threads = argc > 2 ? atoi(argv[2]) : 1;
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    const char *paths[1] = {argv[1]};
    float *clip = malloc((size_t)3 * p.sample_duration * p.sample_size * p.sample_size *
                         sizeof(float));
    if (!clip) return 1;
    for (int r = 0; r < runs; r++) {
        st3d_error err = {0};
        double t0 = now();
        st3d_clip_stream *s = st3d_clip_stream_new(paths, 1, &p, &err);
        if (!s) {
            fprintf(stderr, "stream_bench: %s\n", err.msg);
            return 1;
        }
        st3d_stream_item it;
        int n = 0, got;
        while ((got = st3d_clip_stream_next(s, clip, &it, &err)) == 1) {
            if (it.kind == ST3D_STREAM_FAIL) {
                fprintf(stderr, "stream_bench: %s\n", it.message);
                return 1;
            }
            n += it.kind == ST3D_STREAM_CLIP;
        }
        st3d_clip_stream_free(s);
        if (got < 0) return 1;
        printf("%d clips in %.3f s (FFmpeg threads %d)\n", n, now() - t0, p.decoder_threads);
    }
    free(clip);
    return 0;
}

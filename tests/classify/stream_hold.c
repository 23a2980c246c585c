/*
 * stream_hold.c - st3d_clip_stream_hold, checked through the clips' decode
 * times (test_classify.py --part stream makes the video and runs this).
 *
 * usage: stream_hold VIDEO N_FRAMES
 *
 * 1. A stream over VIDEO (16-frame clips, one decoder thread, a queue with
 *    room for every clip, so that nothing but the hold stops decoding) is
 *    held as soon as it is made, for HOLD_S seconds.  Every clip but those
 *    finished from frames decoded before the hold began (at most two: the
 *    decoder thread may have started) must have been decoded after the
 *    hold ended: a stream that goes on decoding while held decodes the
 *    whole video during the hold.
 * 2. A second stream over it, held, then read to its end without releasing
 *    it: st3d_clip_stream_next releases the hold when it has to wait, so
 *    this ends (ctest's timeout would catch a deadlock), with every clip.
 * Prints one line per check; exit 1 if one fails.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { T = 16 };
static const double HOLD_S = 0.5;

static int failed;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failed = 1;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Reads the stream to its end; counts its clips, and those whose last frame
 * was decoded before `before`.  -1 on an error or a FAIL item. */
static int drain(st3d_clip_stream *s, double before, int *n_clips, int *n_before) {
    st3d_stream_item it;
    st3d_error err = {0};
    int r;
    *n_clips = *n_before = 0;
    while ((r = st3d_clip_stream_next(s, NULL, &it, &err)) == 1) {
        if (it.kind == ST3D_STREAM_FAIL) {
            fprintf(stderr, "stream_hold: %s\n", it.message);
            return -1;
        }
        if (it.kind != ST3D_STREAM_CLIP) continue;
        (*n_clips)++;
        if (it.decoded_at < before) (*n_before)++;
    }
    return r;
}

static st3d_clip_stream *open_stream(const char *video, int n_frames) {
    st3d_stream_params p = st3d_stream_default_params();
    p.sample_duration = T;
    p.n_threads = 1;
    p.decoder_threads = 1;
    p.queue_clips = n_frames / T + 4; /* room for all: only the hold stops it */
    st3d_error err = {0};
    st3d_clip_stream *s = st3d_clip_stream_new(&video, 1, &p, &err);
    if (!s) fprintf(stderr, "stream_hold: %s\n", err.msg);
    return s;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: stream_hold VIDEO N_FRAMES\n");
        return 2;
    }
    int n_frames = atoi(argv[2]), want = (n_frames + T - 1) / T;
    char line[256];

    st3d_clip_stream *s = open_stream(argv[1], n_frames);
    if (!s) return 1;
    st3d_clip_stream_hold(s, 1);
    sleep_s(HOLD_S);
    double released = st3d_now();
    st3d_clip_stream_hold(s, 0);
    int n = 0, early = 0;
    if (drain(s, released, &n, &early) != 0) return 1;
    snprintf(line, sizeof line,
             "held %.1f s: %d of %d clips, %d decoded before the hold ended (at most 2)", HOLD_S,
             n, want, early);
    check(n == want && early <= 2, line);
    st3d_clip_stream_free(s);

    s = open_stream(argv[1], n_frames);
    if (!s) return 1;
    st3d_clip_stream_hold(s, 1);
    if (drain(s, 0, &n, &early) != 0) return 1;
    snprintf(line, sizeof line, "read while held: %d of %d clips (the hold released)", n, want);
    check(n == want, line);
    st3d_clip_stream_free(s);
    return failed;
}

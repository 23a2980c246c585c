/*
 * stream_hold.c - st3d_clip_stream_hold, checked through the clips' decode
 * times (test_classify.py --part stream makes the video and runs this).
 *
 * usage: stream_hold VIDEO N_FRAMES
 *
 * 1. A stream over VIDEO (16-frame clips, one decoder thread, a queue with
 *    room for every clip, so that nothing but the hold stops decoding) is
 *    held as soon as it is made, for HOLD_S seconds, then released and left
 *    alone for LEFT_S seconds before it is read.  No clip may have its last
 *    frame decoded from SETTLE_S after the hold began until the release
 *    (the frames in hand at the hold are decoded before it), and at least
 *    half the clips must be decoded after the release (a hold that does
 *    nothing lets the whole video decode at once, in tens of ms).
 * 2. A second stream, held 0.1 s, released and not read for LEFT_S: some
 *    clips are decoded meanwhile (the release itself wakes the decoders,
 *    not st3d_clip_stream_next).
 * 3. A third, held, then read to its end without releasing it:
 *    st3d_clip_stream_next releases the hold when it has to wait, so this
 *    ends (ctest's timeout would catch a deadlock), with every clip.
 * Prints one line per check; exit 1 if one fails.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { T = 16 };
static const double HOLD_S = 0.5, LEFT_S = 0.3, SETTLE_S = 0.05;

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
 * was decoded in [a, b) and in [b, c).  -1 on an error or a FAIL item. */
static int drain(st3d_clip_stream *s, double a, double b, double c, int *n_clips, int *n_ab,
                 int *n_bc) {
    st3d_stream_item it;
    st3d_error err = {0};
    int r;
    *n_clips = *n_ab = *n_bc = 0;
    while ((r = st3d_clip_stream_next(s, NULL, &it, &err)) == 1) {
        if (it.kind == ST3D_STREAM_FAIL) {
            fprintf(stderr, "stream_hold: %s\n", it.message);
            return -1;
        }
        if (it.kind != ST3D_STREAM_CLIP) continue;
        (*n_clips)++;
        *n_ab += it.decoded_at >= a && it.decoded_at < b;
        *n_bc += it.decoded_at >= b && it.decoded_at < c;
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
    double held = st3d_now();
    sleep_s(HOLD_S);
    double released = st3d_now();
    st3d_clip_stream_hold(s, 0);
    sleep_s(LEFT_S);
    int n = 0, during = 0, after = 0;
    if (drain(s, held + SETTLE_S, released, 1e30, &n, &during, &after) != 0) return 1;
    snprintf(line, sizeof line,
             "held %.1f s: %d of %d clips; decoded while held %d (none), after the release %d "
             "(at least half)", HOLD_S, n, want, during, after);
    check(n == want && during == 0 && 2 * after >= want, line);
    st3d_clip_stream_free(s);

    s = open_stream(argv[1], n_frames);
    if (!s) return 1;
    st3d_clip_stream_hold(s, 1);
    sleep_s(0.1);
    released = st3d_now();
    st3d_clip_stream_hold(s, 0);
    sleep_s(LEFT_S);
    if (drain(s, released, released + LEFT_S, 1e30, &n, &during, &after) != 0) return 1;
    snprintf(line, sizeof line,
             "released, not read for %.1f s: %d clips decoded meanwhile (some)", LEFT_S, during);
    check(during > 0, line);
    st3d_clip_stream_free(s);

    s = open_stream(argv[1], n_frames);
    if (!s) return 1;
    st3d_clip_stream_hold(s, 1);
    if (drain(s, 0, 0, 0, &n, &during, &after) != 0) return 1;
    snprintf(line, sizeof line, "read while held: %d of %d clips (the hold released)", n, want);
    check(n == want, line);
    st3d_clip_stream_free(s);
    return failed;
}

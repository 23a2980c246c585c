/*
 * temporal.c - which frames make a clip, with the semantics of the original
 * temporal_transforms.py (facts about its behaviour, re-implemented):
 *
 *   TemporalSubsampling(stride)  keeps every stride-th frame number.
 *   LoopPadding(size)            repeats the list cyclically until it has
 *                                size entries: [a b c] -> [a b c a b c a].
 *   TemporalRandomCrop(size)     start uniform in [0, max(0, n - size - 1)]
 *                                (the last possible start is never drawn, as
 *                                in the original), then loop padding.
 *   TemporalCenterCrop(size)     start max(0, n/2 - size/2), loop padding.
 *   TemporalBeginCrop(size)      the first size entries, loop padding.
 *   TemporalEvenCrop(size, k)    starts taken every max(1, ceil((n - 1 -
 *                                size) / (k - 1))) entries, at most k clips.
 *   SlidingWindow(size, stride)  starts every stride entries.
 *
 * For the last two, as in the original, a clip is the run of consecutive
 * frame numbers from its start value (not from the subsampled list), cut at
 * the last frame number of the list; the first clip shorter than size is
 * loop-padded and ends the list.
 */
#include "data/data.h"

#include <math.h>

/* Writes the run [b, e) loop-padded to size entries at out. */
static void loop_pad_run(int64_t b, int64_t e, int size, int64_t *out) {
    int64_t n = e - b;
    for (int i = 0; i < size; i++) out[i] = b + i % n;
}

int64_t st3d_temporal_clips(int64_t begin, int64_t end, const st3d_temporal_cfg *cfg,
                            st3d_rng *rng, int64_t *out, int64_t cap, st3d_error *err) {
    int size = cfg->size;
    int64_t ts = cfg->t_stride > 1 ? cfg->t_stride : 1;
    if (size < 1) return st3d_fail(err, ST3D_ERR_INVALID, "sample duration %d must be >= 1", size);
    if (end <= begin)
        return st3d_fail(err, ST3D_ERR_INVALID, "empty segment [%lld, %lld)", (long long)begin,
                         (long long)end);
    /* the subsampled list is begin, begin + ts, ...; n entries, last value */
    int64_t n = (end - begin + ts - 1) / ts;
    int64_t last = begin + (n - 1) * ts;
#define AT(k) (begin + (int64_t)(k) * ts)
    switch (cfg->mode) {
    case ST3D_TCROP_RANDOM:
    case ST3D_TCROP_CENTER:
    case ST3D_TCROP_BEGIN: {
        int64_t b = 0;
        if (cfg->mode == ST3D_TCROP_RANDOM) {
            int64_t rand_end = n - size - 1 > 0 ? n - size - 1 : 0;
            b = rng ? st3d_rng_int(rng, 0, rand_end) : 0;
        } else if (cfg->mode == ST3D_TCROP_CENTER) {
            b = n / 2 - size / 2;
            if (b < 0) b = 0;
        }
        int64_t e = b + size < n ? b + size : n;
        if (cap >= 1)
            for (int i = 0; i < size; i++) out[i] = AT(b + i % (e - b));
        return 1;
    }
    case ST3D_TCROP_EVEN:
    case ST3D_TCROP_SLIDING: {
        int64_t step;
        int64_t max_clips = INT64_MAX;
        if (cfg->mode == ST3D_TCROP_EVEN) {
            int k = cfg->n_clips > 0 ? cfg->n_clips : 1;
            max_clips = k;
            /* k == 1 would divide by zero in the original; one clip is cut */
            step = k > 1 ? (int64_t)ceil((double)(n - 1 - size) / (double)(k - 1)) : 1;
            if (step < 1) step = 1;
        } else {
            step = cfg->window_stride > 0 ? cfg->window_stride : size;
        }
        int64_t count = 0;
        for (int64_t k = 0; k < n && count < max_clips; k += step) {
            int64_t b = AT(k);
            int64_t e = b + size < last + 1 ? b + size : last + 1;
            if (count < cap) loop_pad_run(b, e, size, out + count * size);
            count++;
            if (e - b < size) break;
        }
        return count;
    }
    }
#undef AT
    return st3d_fail(err, ST3D_ERR_INVALID, "unknown temporal crop %d", (int)cfg->mode);
}

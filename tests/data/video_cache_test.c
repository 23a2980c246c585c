/*
 * video_cache_test.c - checks st3d_video_cache (src/io/video_index.c) and
 * st3d_video_open_cached: LRU order, the entry and byte bounds, a changed
 * file identity, deep copies; and, given a video, that an open through the
 * cache (miss, then hit, which skips the index pass and for MP4 the probe)
 * reports the same information and decodes the same pixels as a plain open,
 * with and without the drain of st3d_video_read_frames_to(last = 1).
 * Prints one line per check; exits 1 when one fails.
 *
 * usage: video_cache_test [VIDEO]
 */
#define _POSIX_C_SOURCE 200809L
#include "io/video.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checks run and failed. */
typedef struct checker {
    int n;      /* checks run */
    int failed; /* checks failed */
} checker;

static void check(checker *c, int ok, const char *what) {
    c->n++;
    if (!ok) c->failed++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}

/* Facts with n frames whose timestamps are base, base+1, ... */
static st3d_video_facts facts_of(int64_t n, int64_t base) {
    st3d_video_facts f;
    memset(&f, 0, sizeof f);
    f.n_frames = n;
    f.pts = malloc((size_t)n * sizeof *f.pts);
    for (int64_t i = 0; f.pts && i < n; i++) f.pts[i] = base + i;
    f.fps = 25;
    return f;
}

static int has(st3d_video_cache *c, const char *path, const st3d_file_id *id, int64_t base) {
    st3d_video_facts f;
    int got = st3d_video_cache_get(c, path, id, &f);
    int ok = got && f.pts && f.pts[0] == base;
    st3d_video_facts_clear(&f);
    return got ? ok : 0;
}

static void mechanics(checker *ck) {
    st3d_error err;
    st3d_file_id id = {1, 2, 3, 4};
    const char *names[] = {"a", "b", "c", "d", "e"};
    st3d_video_cache *c = st3d_video_cache_new(3, (size_t)1 << 20, &err);
    check(ck, c != NULL, "cache created");
    if (!c) return;
    for (int i = 0; i < 4; i++) {
        st3d_video_facts f = facts_of(10, 100 * i);
        st3d_video_cache_put(c, names[i], &id, &f);
        st3d_video_facts_clear(&f);
    }
    check(ck, !has(c, "a", &id, 0), "4 puts into 3 entries evict the oldest");
    check(ck, has(c, "b", &id, 100) && has(c, "c", &id, 200) && has(c, "d", &id, 300),
          "the 3 newest are kept, with their own timestamps");
    check(ck, has(c, "b", &id, 100), "a lookup makes an entry the newest");
    st3d_video_facts f = facts_of(10, 400);
    st3d_video_cache_put(c, "e", &id, &f);
    st3d_video_facts_clear(&f);
    check(ck, has(c, "b", &id, 100) && !has(c, "c", &id, 200),
          "eviction takes the least recently used, not the oldest put");
    st3d_file_id other = id;
    other.mtime_ns++;
    check(ck, !has(c, "d", &other, 300) && !has(c, "d", &id, 300),
          "a changed file identity misses and drops the entry");
    /* copies are deep: changing one does not reach the cache */
    st3d_video_cache_get(c, "e", &id, &f);
    if (f.pts) f.pts[0] = -1;
    st3d_video_facts_clear(&f);
    check(ck, has(c, "e", &id, 400), "entries are copied out, not lent");
    int64_t hits = 0, misses = 0;
    st3d_video_cache_counts(c, &hits, &misses);
    check(ck, hits > 0 && misses > 0, "lookups are counted");
    st3d_video_cache_free(c);

    /* the byte bound: 1000-frame entries (~8 KB each) into 20 KB */
    c = st3d_video_cache_new(100, 20000, &err);
    for (int i = 0; c && i < 5; i++) {
        f = facts_of(1000, 1000 * i);
        st3d_video_cache_put(c, names[i], &id, &f);
        st3d_video_facts_clear(&f);
    }
    check(ck, c && !has(c, "a", &id, 0) && !has(c, "c", &id, 2000) && has(c, "d", &id, 3000) &&
                  has(c, "e", &id, 4000),
          "the byte bound keeps 2 entries of 8 KB in 20 KB");
    f = facts_of(5000, 0);
    if (c) st3d_video_cache_put(c, "big", &id, &f);
    st3d_video_facts_clear(&f);
    check(ck, c && !has(c, "big", &id, 0) && has(c, "e", &id, 4000),
          "an entry larger than the bound is not stored and evicts nothing");
    st3d_video_cache_free(c);
}

/* Decodes indices with v into a new buffer (NULL on error). */
static uint8_t *decode(st3d_video *v, const int64_t *idx, int n, int last) {
    const st3d_video_info *vi = st3d_video_get_info(v);
    size_t fsz = (size_t)vi->width * vi->height * 3;
    uint8_t *buf = malloc(fsz * (size_t)n);
    uint8_t *dst[64];
    st3d_error err;
    if (!buf || n > 64) return free(buf), NULL;
    for (int i = 0; i < n; i++) dst[i] = buf + fsz * (size_t)i;
    if (st3d_video_read_frames_to(v, idx, n, dst, last, &err) != 0) {
        printf("     %s\n", err.msg);
        free(buf);
        return NULL;
    }
    return buf;
}

static void with_video(checker *ck, const char *path) {
    st3d_error err;
    st3d_video_params p = st3d_video_default_params();
    p.threads = 1;
    st3d_video_cache *c = st3d_video_cache_new(16, (size_t)1 << 20, &err);
    st3d_video *plain = st3d_video_open(path, &p, &err);
    st3d_video *miss = c ? st3d_video_open_cached(path, &p, c, &err) : NULL;
    st3d_video *hit = c ? st3d_video_open_cached(path, &p, c, &err) : NULL;
    check(ck, plain && miss && hit, "plain, first and second cached opens succeed");
    if (!plain || !miss || !hit) goto done;
    int64_t hits = 0, misses = 0;
    st3d_video_cache_counts(c, &hits, &misses);
    check(ck, hits == 1 && misses == 1, "the second open is a cache hit");
    const st3d_video_info *a = st3d_video_get_info(plain), *b = st3d_video_get_info(hit);
    check(ck, a->width == b->width && a->height == b->height && a->n_frames == b->n_frames &&
                  a->fps == b->fps && a->duration == b->duration && a->rotation == b->rotation &&
                  a->frame_accurate == b->frame_accurate && !strcmp(a->codec, b->codec) &&
                  !strcmp(a->container, b->container),
          "a cached open reports the same information");
    int64_t n = a->n_frames;
    /* clips in order, out of order with repeats, and the very end */
    int64_t sets[4][8] = {{n / 2, n / 2 + 1, n / 2 + 2, n / 2 + 3, n / 2 + 4, n / 2 + 5,
                           n / 2 + 6, n / 2 + 7},
                          {n - 1, 3, 3, n / 3, 0, n / 4, n - 2, 1},
                          {n - 8, n - 7, n - 6, n - 5, n - 4, n - 3, n - 2, n - 1},
                          {1, 2, 3, 4, 5, 6, 7, 8}};
    size_t fsz = (size_t)a->width * a->height * 3;
    int same = 1;
    for (int s = 0; s < 4; s++)
        for (int last = 0; last < 2; last++) {
            uint8_t *x = decode(plain, sets[s], 8, 0), *y = decode(hit, sets[s], 8, last);
            uint8_t *z = decode(miss, sets[s], 8, !last);
            if (!x || !y || !z || memcmp(x, y, fsz * 8) || memcmp(x, z, fsz * 8)) same = 0;
            free(x), free(y), free(z);
        }
    check(ck, same, "cached opens decode the same pixels, drained or not, in any order");
done:
    st3d_video_free(plain);
    st3d_video_free(miss);
    st3d_video_free(hit);
    st3d_video_cache_free(c);
}

int main(int argc, char **argv) {
    checker ck = {0, 0};
    mechanics(&ck);
    if (argc > 1) with_video(&ck, argv[1]);
    printf("%d checks, %d failed\n", ck.n, ck.failed);
    return ck.failed ? 1 : 0;
}

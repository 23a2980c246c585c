/*
 * video_index.c - what opening a video learns from the file alone: the
 * demux-only index pass (the sorted presentation timestamps of the video
 * packets, which number the frames), and st3d_video_cache, a bounded LRU of
 * those facts and of the probed stream parameters keyed by path and file
 * identity, so that a loader reopening a video skips the index pass and,
 * for MP4/MOV, the stream probe.
 *
 * The cache is a hash table (chained, FNV-1a of the path) over a doubly
 * linked recency list; it is bounded in entries and in bytes (entry, path,
 * 8 bytes per frame, codec parameters), and evicts from the least recently
 * used end.  An entry whose file identity (device, inode, size, mtime) no
 * longer matches is dropped at lookup.  One mutex guards it; lookups copy
 * the entry out, so callers never hold a pointer into the cache.
 */
#define _POSIX_C_SOURCE 200809L
#include "io/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void st3d_video_facts_clear(st3d_video_facts *f) {
    free(f->pts);
    avcodec_parameters_free(&f->par);
    memset(f, 0, sizeof *f);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int st3d_video_build_index(const char *path, int stream, st3d_video_facts *f, st3d_error *err) {
    AVFormatContext *fmt = NULL;
    char eb[128];
    int r = avformat_open_input(&fmt, path, NULL, NULL);
    if (r < 0) {
        av_strerror(r, eb, sizeof eb);
        return st3d_fail(err, ST3D_ERR_FORMAT, "%s: cannot reopen for indexing: %s", path, eb);
    }
    AVPacket *pkt = av_packet_alloc();
    int64_t n = 0, cap = 1024;
    int64_t *ts = malloc((size_t)cap * sizeof *ts);
    int counting = 0, rc = 0;
    if (!pkt || !ts) {
        rc = st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory while indexing", path);
        goto done;
    }
    while (av_read_frame(fmt, pkt) >= 0) {
        if (pkt->stream_index == stream && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
            if (pkt->pts == AV_NOPTS_VALUE) counting = 1;
            if (n == cap) {
                if (cap > ((int64_t)1 << 32)) {
                    av_packet_unref(pkt);
                    rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: absurd number of frames", path);
                    goto done;
                }
                int64_t *t2 = realloc(ts, (size_t)cap * 2 * sizeof *ts);
                if (!t2) {
                    av_packet_unref(pkt);
                    rc = st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory while indexing", path);
                    goto done;
                }
                ts = t2;
                cap *= 2;
            }
            ts[n++] = pkt->pts;
        }
        av_packet_unref(pkt);
    }
    if (!counting) {
        qsort(ts, (size_t)n, sizeof *ts, cmp_i64);
        for (int64_t i = 1; i < n; i++)
            if (ts[i] == ts[i - 1]) counting = 1;
    }
    f->n_frames = n;
    free(f->pts);
    f->pts = NULL;
    if (!counting) {
        f->pts = ts;
        ts = NULL;
    }
done:
    free(ts);
    av_packet_free(&pkt);
    avformat_close_input(&fmt);
    return rc;
}

int st3d_file_identity(const char *path, st3d_file_id *id) {
    struct stat sb;
    if (stat(path, &sb) != 0) return -1;
    id->dev = (uint64_t)sb.st_dev;
    id->ino = (uint64_t)sb.st_ino;
    id->size = (int64_t)sb.st_size;
    id->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    return 0;
}

/* ------------------------------------------------------------------ cache */

/* One cached video. */
typedef struct entry {
    char *path;              /* key, owned */
    uint64_t hash;           /* FNV-1a of path */
    st3d_file_id id;         /* the file's identity when indexed */
    st3d_video_facts f;      /* the facts, owned */
    size_t bytes;            /* what this entry counts against max_bytes */
    struct entry *hnext;     /* next entry of the same bucket */
    struct entry *newer;     /* recency list: toward the most recently used */
    struct entry *older;     /* recency list: toward the least recently used */
} entry;

struct st3d_video_cache {
    pthread_mutex_t mu;      /* guards everything below */
    entry **buckets;         /* n_buckets chains */
    size_t n_buckets;        /* a power of two, >= 2 x max_entries */
    entry *newest, *oldest;  /* ends of the recency list */
    int64_t n, max_n;        /* entries held, and the bound */
    size_t bytes, max_bytes; /* bytes held, and the bound */
    int64_t hits, misses;    /* lookup counts */
};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

st3d_video_cache *st3d_video_cache_new(int64_t max_entries, size_t max_bytes, st3d_error *err) {
    if (max_entries < 1) max_entries = 1;
    st3d_video_cache *c = st3d_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    size_t nb = 16;
    while ((int64_t)nb < 2 * max_entries && nb < ((size_t)1 << 24)) nb *= 2;
    c->buckets = st3d_calloc(nb, sizeof *c->buckets, err);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->n_buckets = nb;
    c->max_n = max_entries;
    c->max_bytes = max_bytes;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void entry_free(entry *e) {
    free(e->path);
    st3d_video_facts_clear(&e->f);
    free(e);
}

void st3d_video_cache_free(st3d_video_cache *c) {
    if (!c) return;
    for (entry *e = c->newest, *nx; e; e = nx) {
        nx = e->older;
        entry_free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Takes e out of its bucket and the recency list (not freed). */
static void unlink_entry(st3d_video_cache *c, entry *e) {
    entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->newer) e->newer->older = e->older;
    else c->newest = e->older;
    if (e->older) e->older->newer = e->newer;
    else c->oldest = e->newer;
    c->n--;
    c->bytes -= e->bytes;
}

static void push_newest(st3d_video_cache *c, entry *e) {
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest) c->newest->newer = e;
    c->newest = e;
    if (!c->oldest) c->oldest = e;
}

static entry *find(st3d_video_cache *c, const char *path, uint64_t h) {
    for (entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->hnext)
        if (e->hash == h && !strcmp(e->path, path)) return e;
    return NULL;
}

/* Deep copy of src into dst (empty on failure).  Returns 0 or -1. */
static int facts_copy(st3d_video_facts *dst, const st3d_video_facts *src) {
    *dst = *src;
    dst->pts = NULL;
    dst->par = NULL;
    if (src->pts) {
        dst->pts = malloc((size_t)src->n_frames * sizeof *dst->pts + 1);
        if (!dst->pts) goto fail;
        memcpy(dst->pts, src->pts, (size_t)src->n_frames * sizeof *dst->pts);
    }
    if (src->par) {
        dst->par = avcodec_parameters_alloc();
        if (!dst->par || avcodec_parameters_copy(dst->par, src->par) < 0) goto fail;
    }
    return 0;
fail:
    st3d_video_facts_clear(dst);
    return -1;
}

static int same_id(const st3d_file_id *a, const st3d_file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

int st3d_video_cache_get(st3d_video_cache *c, const char *path, const st3d_file_id *id,
                         st3d_video_facts *out) {
    memset(out, 0, sizeof *out);
    uint64_t h = fnv1a(path);
    int got = 0;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, path, h);
    if (e && !same_id(&e->id, id)) { /* the file changed: forget it */
        unlink_entry(c, e);
        entry_free(e);
        e = NULL;
    }
    if (e && facts_copy(out, &e->f) == 0) {
        if (c->newest != e) { /* move to the newest end */
            e->newer->older = e->older;
            if (e->older) e->older->newer = e->newer;
            else c->oldest = e->newer;
            push_newest(c, e);
        }
        got = 1;
    }
    if (got) c->hits++;
    else c->misses++;
    pthread_mutex_unlock(&c->mu);
    return got;
}

void st3d_video_cache_put(st3d_video_cache *c, const char *path, const st3d_file_id *id,
                          const st3d_video_facts *f) {
    size_t bytes = sizeof(entry) + strlen(path) + 1 +
                   (f->pts ? (size_t)f->n_frames * sizeof(int64_t) : 0) +
                   (f->par ? sizeof(AVCodecParameters) + (size_t)f->par->extradata_size : 0);
    if (bytes > c->max_bytes) return;
    entry *e = calloc(1, sizeof *e);
    if (!e) return;
    e->path = strdup(path);
    if (!e->path || facts_copy(&e->f, f) != 0) {
        free(e->path);
        free(e);
        return;
    }
    e->hash = fnv1a(path);
    e->id = *id;
    e->bytes = bytes;
    pthread_mutex_lock(&c->mu);
    entry *old = find(c, path, e->hash);
    if (old) {
        unlink_entry(c, old);
        entry_free(old);
    }
    while (c->oldest && (c->n + 1 > c->max_n || c->bytes + bytes > c->max_bytes)) {
        entry *v = c->oldest;
        unlink_entry(c, v);
        entry_free(v);
    }
    e->hnext = c->buckets[e->hash & (c->n_buckets - 1)];
    c->buckets[e->hash & (c->n_buckets - 1)] = e;
    push_newest(c, e);
    c->n++;
    c->bytes += bytes;
    pthread_mutex_unlock(&c->mu);
}

void st3d_video_cache_counts(st3d_video_cache *c, int64_t *hits, int64_t *misses) {
    pthread_mutex_lock(&c->mu);
    if (hits) *hits = c->hits;
    if (misses) *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}

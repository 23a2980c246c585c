/*
 * ddp.c - PyTorch's DistributedDataParallel for the trainer: every rank
 * runs the same step on its own clips, and the gradients are averaged
 * across ranks before the optimizer's step, so that every rank holds the
 * same weights after every step.
 *
 * As DDP's reducer: the learnable parameters are grouped into buckets in
 * the reverse of their registration order (the order in which the
 * backward pass completes them), the first of about 1 MiB, the others of
 * bucket_cap_mb (25 MiB).  During the backward, the exec's grad-ready hook
 * counts each finished gradient; a bucket whose gradients are all done is
 * divided by the number of ranks and handed to the communication thread's
 * all-reduce (sum), so its communication overlaps the rest of the backward.
 * Buckets go out strictly in index order (a complete bucket waits for the
 * ones before it), as DDP's reducer: every rank must start the same sums
 * in the same order, whatever order its hooks fire in.
 * After the backward, the step waits for the buckets still in flight.
 * Frozen parameters (fine-tuning) are in no bucket.
 *
 * Buffers (batch norms' running statistics and counters) are broadcast
 * from rank 0 before each training step's forward, as DDP's
 * broadcast_buffers (its default), and the parameters once at the start,
 * as DDP's constructor does.
 */
#include "models/model.h"
#include "train/train.h"

#include <stdlib.h>
#include <string.h>

/* DDP's _DEFAULT_FIRST_BUCKET_BYTES: a small first bucket goes out early. */
#define FIRST_BUCKET_BYTES (1 << 20)

typedef struct bucket {
    int64_t lo, hi;     /* floats [lo, hi) of the gradient buffer */
    int64_t ready;      /* floats of it complete in this step's backward */
} bucket;

struct ddp {
    st3d_dist *dist;    /* the ranks (borrowed) */
    st3d_model *m;      /* the network (borrowed) */
    bucket *buckets;    /* in the order they complete (high offsets first) */
    int n_buckets;
    int overlap;        /* 0: one all-reduce after the backward */
    int next;           /* the first bucket not started this step */
    float scale;        /* 1 / ranks */
    int failed;         /* a start failed inside the hook (reported at the end) */
    st3d_error hook_err;/* its reason */
    int64_t steps;      /* steps done */
};

ddp *ddp_new(st3d_model *m, st3d_dist *dist, int64_t frozen, double bucket_cap_mb, int overlap,
             st3d_error *err) {
    ddp *d = st3d_calloc(1, sizeof *d, err);
    if (!d) return NULL;
    d->dist = dist;
    d->m = m;
    d->overlap = overlap;
    d->scale = 1.0f / (float)st3d_dist_size(dist);
    if (!(d->buckets = st3d_calloc((size_t)m->n_entries + 1, sizeof *d->buckets, err))) {
        free(d);
        return NULL;
    }
    int64_t cap = FIRST_BUCKET_BYTES / (int64_t)sizeof(float);
    int64_t big = (int64_t)(bucket_cap_mb > 0 ? bucket_cap_mb * 1048576.0 / sizeof(float) : 1);
    bucket *cur = NULL;
    for (int i = m->n_entries - 1; i >= 0; i--) {
        const entry *e = &m->entries[i];
        if (e->kind != ENTRY_PARAM || e->offset < frozen) continue;
        /* a bucket is one contiguous range: it closes when full, or when the
         * next parameter does not sit right below it */
        if (cur && (cur->hi - cur->lo >= cap || e->offset + e->numel != cur->lo)) {
            if (cur->hi - cur->lo >= cap) cap = big;
            cur = NULL;
        }
        if (!cur) {
            cur = &d->buckets[d->n_buckets++];
            cur->lo = cur->hi = e->offset + e->numel;
        }
        cur->lo = e->offset;
    }
    return d;
}

void ddp_free(ddp *d) {
    if (!d) return;
    free(d->buckets);
    free(d);
}

/* Scales a bucket's gradients by 1 / ranks and starts their sum. */
static int start_bucket(ddp *d, bucket *b, st3d_error *err) {
    float *g = d->m->grads + b->lo;
    for (int64_t i = 0; i < b->hi - b->lo; i++) g[i] *= d->scale;
    return st3d_dist_allreduce_start(d->dist, g, b->hi - b->lo, err);
}

/* The exec's grad-ready hook: floats [first, first + count) are done. */
void ddp_grad_ready(int64_t first, int64_t count, void *user) {
    ddp *d = user;
    if (!d->overlap || d->failed) return;
    for (int i = 0; i < d->n_buckets; i++) {
        bucket *b = &d->buckets[i];
        if (first < b->lo || first >= b->hi) continue;
        b->ready += count;
        break;
    }
    /* every complete bucket from the next one on, in order */
    while (d->next < d->n_buckets) {
        bucket *b = &d->buckets[d->next];
        if (b->ready < b->hi - b->lo) break;
        d->next++;
        if (start_bucket(d, b, &d->hook_err) != 0) {
            d->failed = 1;
            return;
        }
    }
}

int ddp_sync_buffers(ddp *d, st3d_error *err) {
    st3d_model *m = d->m;
    if (st3d_dist_broadcast(d->dist, m->stats, (int64_t)sizeof(float) * m->n_stats, 0, err) != 0 ||
        st3d_dist_broadcast(d->dist, m->nbt, (int64_t)sizeof(int64_t) * m->n_bn, 0, err) != 0)
        return -1;
    m->version++;
    return 0;
}

int ddp_sync_params(ddp *d, st3d_error *err) {
    st3d_model *m = d->m;
    if (st3d_dist_broadcast(d->dist, m->params, (int64_t)sizeof(float) * m->n_params, 0, err) != 0)
        return -1;
    m->version++;
    return ddp_sync_buffers(d, err);
}

int ddp_begin_step(ddp *d, st3d_error *err) {
    for (int i = 0; i < d->n_buckets; i++) d->buckets[i].ready = 0;
    d->failed = 0;
    d->next = 0;
    if (d->steps == 0 && ddp_sync_params(d, err) != 0) return -1;
    return ddp_sync_buffers(d, err);
}

int ddp_finish_step(ddp *d, st3d_error *err) {
    if (d->failed) {
        *err = d->hook_err;
        return -1;
    }
    /* buckets the hook did not start (all of them, without overlap), in order */
    for (; d->next < d->n_buckets; d->next++)
        if (start_bucket(d, &d->buckets[d->next], err) != 0) return -1;
    if (st3d_dist_wait_all(d->dist, err) != 0) return -1;
    d->steps++;
    return 0;
}

/* FNV-1a over bytes: a fingerprint of the weights. */
static uint64_t fingerprint(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int ddp_check_replicas(ddp *d, int64_t step, st3d_error *err) {
    st3d_model *m = d->m;
    uint64_t h = fingerprint(m->params, sizeof(float) * (size_t)m->n_params, 0xcbf29ce484222325ull);
    uint64_t h0 = h;
    if (st3d_dist_broadcast(d->dist, &h0, sizeof h0, 0, err) != 0) return -1;
    double differ = h != h0;
    if (st3d_dist_allreduce_f64(d->dist, &differ, 1, err) != 0) return -1;
    if (differ > 0)
        return st3d_fail(err, ST3D_ERR_INVALID, "after step %lld the weights of %s differ from rank 0's",
                         (long long)step, h != h0 ? "this rank" : "another rank");
    return 0;
}

/* SyncBatchNorm's sums (st3d_exec_set_sync_bn's callback). */
int ddp_sum_f64(double *buf, int64_t n, void *user) {
    ddp *d = user;
    return st3d_dist_allreduce_f64(d->dist, buf, n, NULL);
}

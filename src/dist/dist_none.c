/*
 * dist_none.c - the distributed API in a build without MPI (CMake option
 * ST3D_MPI off, or Open MPI's headers absent).  One process is the whole
 * job: the collectives on a NULL st3d_dist are no-ops, and joining a job
 * fails with a message that says how to get one.
 */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

int st3d_dist_available(void) { return 0; }

st3d_dist *st3d_dist_init(const st3d_dist_params *params, st3d_error *err) {
    (void)params;
    st3d_fail(err, ST3D_ERR_UNSUPPORTED,
              "this st3d was built without MPI: install libopenmpi-dev and rebuild (cmake -DST3D_MPI=ON)");
    return NULL;
}

void st3d_dist_free(st3d_dist *d) { (void)d; }
int st3d_dist_rank(const st3d_dist *d) { (void)d; return 0; }
int st3d_dist_size(const st3d_dist *d) { (void)d; return 1; }

int st3d_dist_allreduce_f32(st3d_dist *d, float *buf, int64_t n, st3d_error *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return 0;
}

int st3d_dist_allreduce_f64(st3d_dist *d, double *buf, int64_t n, st3d_error *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return 0;
}

int st3d_dist_broadcast(st3d_dist *d, void *buf, int64_t bytes, int root, st3d_error *err) {
    (void)d, (void)buf, (void)bytes, (void)root, (void)err;
    return 0;
}

int st3d_dist_barrier(st3d_dist *d, st3d_error *err) {
    (void)d, (void)err;
    return 0;
}

int st3d_dist_gather(st3d_dist *d, const void *buf, int64_t bytes, int root, void **out,
                     int64_t *lens, st3d_error *err) {
    (void)d, (void)root;
    if (!out || !lens) return 0;
    if (!(*out = st3d_malloc((size_t)bytes, err))) return -1;
    memcpy(*out, buf, (size_t)bytes);
    lens[0] = bytes;
    return 0;
}

int st3d_dist_allreduce_start(st3d_dist *d, float *buf, int64_t n, st3d_error *err) {
    (void)d, (void)buf, (void)n, (void)err;
    return 0;
}

int st3d_dist_wait_all(st3d_dist *d, st3d_error *err) {
    (void)d, (void)err;
    return 0;
}

void st3d_dist_get_stats(const st3d_dist *d, st3d_dist_stats *stats) {
    (void)d;
    memset(stats, 0, sizeof *stats);
}

void st3d_dist_set_timeout(st3d_dist *d, double timeout_s) { (void)d, (void)timeout_s; }

void st3d_dist_abort(st3d_dist *d, int code) {
    (void)d;
    exit(code);
}

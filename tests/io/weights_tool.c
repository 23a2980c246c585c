/*
 * weights_tool.c - a small test driver for libst3d's weight-file and .npy
 * readers and writers, run by the Python tests of tests/io/.
 *
 *   weights_tool copy IN.safetensors OUT.safetensors
 *       read with st3d_safetensors_read, write back with st3d_safetensors_write
 *   weights_tool dump IN OUT.safetensors [--f32]
 *       read any weights file with st3d_weights_read (safetensors, .pth zip or
 *       legacy) and write every tensor to OUT (in its dtype, or converted to
 *       float32 with --f32), keeping the map's order and metadata
 *   weights_tool read IN
 *       st3d_weights_read only; prints "ok N" with the tensor count
 *   weights_tool pth-keys IN
 *       st3d_pth_read (keys as stored, no prefix stripping); prints each
 *       key, then each metadata pair as "meta KEY=VALUE"
 *   weights_tool npy-copy IN.npy OUT.npy
 *       st3d_npy_read_f32 then st3d_npy_write_f32
 *   weights_tool npy-labels IN.npy
 *       st3d_npy_read_i64; prints the labels, one per line
 *
 * Exit status: 0 on success, 1 when the library reported an error (printed
 * as "error: MESSAGE" on stderr, one line), 2 on misuse.
 */
#include "st3d.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const st3d_error *err) {
    fprintf(stderr, "error: %s\n", err->msg);
    return 1;
}

/* Rebuilds src with every tensor converted to float32. */
static st3d_tensor_map *to_f32(const st3d_tensor_map *src, st3d_error *err) {
    st3d_tensor_map *dst = st3d_tensor_map_new();
    if (!dst) return NULL;
    for (size_t i = 0; i < st3d_tensor_map_meta_count(src); i++) {
        const char *k = st3d_tensor_map_meta_key(src, i);
        if (st3d_tensor_map_set_meta(dst, k, st3d_tensor_map_get_meta(src, k), err) != 0)
            goto bad;
    }
    for (size_t i = 0; i < st3d_tensor_map_count(src); i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(src, i);
        size_t n = t->nbytes / st3d_dtype_size(t->dtype);
        float *buf = malloc((n ? n : 1) * sizeof *buf);
        if (!buf) goto bad;
        int rc = st3d_tensor_to_f32(t, buf, err);
        if (rc == 0) rc = st3d_tensor_map_add(dst, t->name, ST3D_F32, t->ndim, t->shape, buf, err);
        free(buf);
        if (rc != 0) goto bad;
    }
    return dst;
bad:
    st3d_tensor_map_free(dst);
    return NULL;
}

int main(int argc, char **argv) {
    st3d_error err = {ST3D_OK, ""};
    if (argc == 4 && strcmp(argv[1], "copy") == 0) {
        st3d_tensor_map *m;
        if (st3d_safetensors_read(argv[2], &m, &err) != 0) return fail(&err);
        int rc = st3d_safetensors_write(argv[3], m, &err);
        st3d_tensor_map_free(m);
        return rc ? fail(&err) : 0;
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "dump") == 0) {
        st3d_tensor_map *m;
        if (st3d_weights_read(argv[2], &m, &err) != 0) return fail(&err);
        if (argc == 5 && strcmp(argv[4], "--f32") == 0) {
            st3d_tensor_map *f = to_f32(m, &err);
            st3d_tensor_map_free(m);
            if (!f) return fail(&err);
            m = f;
        }
        int rc = st3d_safetensors_write(argv[3], m, &err);
        st3d_tensor_map_free(m);
        return rc ? fail(&err) : 0;
    }
    if (argc == 3 && strcmp(argv[1], "read") == 0) {
        st3d_tensor_map *m;
        if (st3d_weights_read(argv[2], &m, &err) != 0) return fail(&err);
        printf("ok %zu\n", st3d_tensor_map_count(m));
        st3d_tensor_map_free(m);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "pth-keys") == 0) {
        st3d_tensor_map *m;
        if (st3d_pth_read(argv[2], &m, &err) != 0) return fail(&err);
        for (size_t i = 0; i < st3d_tensor_map_count(m); i++)
            printf("%s\n", st3d_tensor_map_at(m, i)->name);
        for (size_t i = 0; i < st3d_tensor_map_meta_count(m); i++) {
            const char *k = st3d_tensor_map_meta_key(m, i);
            printf("meta %s=%s\n", k, st3d_tensor_map_get_meta(m, k));
        }
        st3d_tensor_map_free(m);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "npy-copy") == 0) {
        float *data;
        int ndim;
        int64_t shape[ST3D_MAX_DIMS];
        if (st3d_npy_read_f32(argv[2], &data, &ndim, shape, &err) != 0) return fail(&err);
        int rc = st3d_npy_write_f32(argv[3], data, ndim, shape, &err);
        free(data);
        return rc ? fail(&err) : 0;
    }
    if (argc == 3 && strcmp(argv[1], "npy-labels") == 0) {
        int64_t *labels, n;
        if (st3d_npy_read_i64(argv[2], &labels, &n, &err) != 0) return fail(&err);
        for (int64_t i = 0; i < n; i++) printf("%" PRId64 "\n", labels[i]);
        free(labels);
        return 0;
    }
    fprintf(stderr, "usage: weights_tool copy|dump|read|pth-keys|npy-copy|npy-labels ...\n");
    return 2;
}

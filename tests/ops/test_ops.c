/*
 * test_ops.c - operator tests for st3d, in the spirit of ggml's
 * test-backend-ops: every operator of src/ops, forward and backward, at the
 * geometries the network families use, against naive double-precision
 * references (ref_ops.c) whose own gradients are first verified by finite
 * differences.
 *
 *   test_ops [-v] [FILTER]
 *
 * FILTER keeps the cases whose operator name contains it (e.g. "conv",
 * "pool", "batchnorm"); -v prints every comparison's relative error.  One
 * line per case, a FAIL line per failed comparison, and finally
 * "N passed, M failed"; the exit status is 0 only when every selected case
 * passed (and at least one ran).
 *
 * The groups live in test_ops_conv.c (conv3d, fused conv3d, the im2col
 * weight gradient), test_ops_norm.c (batch norm, ReLU, dropout) and
 * test_ops_misc.c (pooling, global average, sums, shortcut A, concat,
 * linear, softmax cross-entropy).
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

extern const char *g_filter;
extern int g_verbose;
extern int g_passed, g_failed;

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) {
            g_verbose = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s [-v] [FILTER]\n", argv[0]);
            return 0;
        } else {
            g_filter = argv[i];
        }
    }
    if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&g_stream, g_eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "test_ops: cannot create the oneDNN CPU engine\n");
        return 2;
    }
    test_conv();
    test_norm();
    test_misc();
    dnnl_stream_destroy(g_stream);
    dnnl_engine_destroy(g_eng);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 && g_passed > 0 ? 0 : 1;
}

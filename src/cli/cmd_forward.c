/*
 * cmd_forward.c - `st3d forward`: eval-mode inference on a batch stored as
 * a NumPy array, writing logits and optionally the pooled features.
 *
 *   st3d forward [network options] --weights W --input X.npy --output Y.npy
 *                [--features F.npy]
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: st3d forward [network options] --weights W --input X.npy\n"
                 "                    --output Y.npy [--features F.npy]\n\n");
    cli_model_usage(out);
}

static int run(cli_model *cm, const char *input, const char *output, const char *features) {
    st3d_error err = {0};
    float *x = NULL;
    int ndim = 0;
    int64_t shape[ST3D_MAX_DIMS];
    /* the network first: a bad option is reported before any file */
    st3d_model *m = NULL;
    if (cli_model_open(cm, 0, &m) != 0) return 1;
    cli_model_for_inference(cm, m);
    if (st3d_npy_read_f32(input, &x, &ndim, shape, &err) != 0) {
        st3d_model_free(m);
        return cli_error(&err);
    }
    if (ndim != 5) {
        free(x);
        st3d_model_free(m);
        return cli_errorf("%s: expected a 5-d array N x C x D x H x W, found %d dimensions", input,
                          ndim);
    }
    int rc = 1;
    int64_t n = shape[0], k = cm->p.n_classes, f = st3d_model_feature_dim(m);
    st3d_exec *e = NULL;
    float *logits = malloc(sizeof(float) * (size_t)(n * k));
    float *feats = features ? malloc(sizeof(float) * (size_t)(n * f)) : NULL;
    if (!logits || (features && !feats)) {
        cli_errorf("out of memory");
    } else if (!(e = st3d_exec_new(m, &err))) {
        cli_error(&err);
    } else if (st3d_exec_set_winograd(e, cm->winograd),
               st3d_exec_forward(e, x, shape, logits, feats, &err) != 0) {
        cli_errorf("%s: %s", input, err.msg);
    } else {
        int64_t ls[2] = {n, k}, fs[2] = {n, f};
        if (st3d_npy_write_f32(output, logits, 2, ls, &err) != 0 ||
            (features && st3d_npy_write_f32(features, feats, 2, fs, &err) != 0))
            cli_error(&err);
        else
            rc = 0;
    }
    st3d_exec_free(e);
    free(logits);
    free(feats);
    free(x);
    st3d_model_free(m);
    return rc;
}

int cmd_forward(int argc, char **argv) {
    const char *input = NULL, *output = NULL, *features = NULL;
    for (int i = 1; i < argc; i++)
        if (cli_opt_is(argv[i], "help")) return usage(stdout), 0;
    cli_model cm;
    if (cli_model_begin(argc, argv, &cm) != 0) return 1;
    int rc = 2;
    for (int i = 1; i < argc;) {
        int r = cli_model_opt(argc, argv, &i, &cm);
        if (r < 0) goto out;
        if (r > 0) continue;
        const char *a = argv[i];
        if (i + 1 >= argc) {
            cli_errorf("unknown option or missing value: %s", a);
            goto out;
        }
        if (cli_opt_is(a, "input")) input = argv[i + 1];
        else if (cli_opt_is(a, "output")) output = argv[i + 1];
        else if (cli_opt_is(a, "features")) features = argv[i + 1];
        else {
            cli_errorf("unknown option: %s (see st3d forward --help)", a);
            goto out;
        }
        i += 2;
    }
    if ((!cm.weights && !cm.pretrain) || !input || !output) {
        cli_errorf("forward needs --weights, --input and --output (see --help)");
        goto out;
    }
    st3d_set_threads(cm.threads);
    rc = run(&cm, input, output, features);
out:
    cli_model_end(&cm);
    return rc;
}

/*
 * cmd_train_steps.c - `st3d train-steps`: K SGD steps on one batch, then
 * the state_dict (and the last step's gradients) written as safetensors.
 * This is how the equality tests compare training with PyTorch.
 *
 *   st3d train-steps [network options] --weights W --input X.npy --labels L.npy
 *       --steps K [--lr 0.1] [--momentum 0.9] [--dampening 0]
 *       [--weight-decay 1e-3] [--nesterov] --output OUT.safetensors [--grads G.safetensors]
 */
#include "cli.h"

#include <stdlib.h>

static void usage(FILE *out) {
    fprintf(out, "usage: st3d train-steps [network options] --weights W --input X.npy --labels L.npy\n"
                 "        --steps K [--lr 0.1] [--momentum 0.9] [--dampening 0] [--weight-decay 1e-3]\n"
                 "        [--nesterov] --output OUT.safetensors [--grads G.safetensors]\n\n");
    cli_model_usage(out);
}

static int run(cli_model *cm, const st3d_sgd_params *hp, int steps, const char *input,
               const char *labels_path, const char *output, const char *grads);

int cmd_train_steps(int argc, char **argv) {
    st3d_sgd_params h = st3d_sgd_default_params();
    int steps = 1;
    const char *input = NULL, *labels_path = NULL, *output = NULL, *grads = NULL;
    for (int i = 1; i < argc; i++)
        if (cli_opt_is(argv[i], "help")) return usage(stdout), 0;
    cli_model cm;
    if (cli_model_begin(argc, argv, &cm) != 0) return 1;
    int rc = 2;
    for (int i = 1; i < argc;) {
        int r = cli_model_opt(argc, argv, &i, &cm);
        if (r < 0) goto done;
        if (r > 0) continue;
        const char *a = argv[i];
        if (cli_opt_is(a, "nesterov")) {
            h.nesterov = 1;
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            cli_errorf("unknown option or missing value: %s", a);
            goto done;
        }
        const char *v = argv[i + 1];
        int bad = 0;
        if (cli_opt_is(a, "input")) input = v;
        else if (cli_opt_is(a, "labels")) labels_path = v;
        else if (cli_opt_is(a, "output")) output = v;
        else if (cli_opt_is(a, "grads")) grads = v;
        else if (cli_opt_is(a, "steps")) bad = cli_parse_int(a, v, &steps);
        else if (cli_opt_is(a, "lr") || cli_opt_is(a, "learning-rate")) bad = cli_parse_float(a, v, &h.lr);
        else if (cli_opt_is(a, "momentum")) bad = cli_parse_float(a, v, &h.momentum);
        else if (cli_opt_is(a, "dampening")) bad = cli_parse_float(a, v, &h.dampening);
        else if (cli_opt_is(a, "weight-decay")) bad = cli_parse_float(a, v, &h.weight_decay);
        else {
            cli_errorf("unknown option: %s (see st3d train-steps --help)", a);
            goto done;
        }
        if (bad) goto done;
        i += 2;
    }
    if (!input || !labels_path || !output) {
        cli_errorf("train-steps needs --input, --labels and --output (see --help)");
        goto done;
    }
    if (steps < 1) {
        cli_errorf("--steps must be positive");
        goto done;
    }
    st3d_set_threads(cm.threads);
    rc = run(&cm, &h, steps, input, labels_path, output, grads);
done:
    cli_model_end(&cm);
    return rc;
}

static int run(cli_model *cm, const st3d_sgd_params *hp, int steps, const char *input,
               const char *labels_path, const char *output, const char *grads) {
    st3d_sgd_params h = *hp;

    st3d_error err = {0};
    float *x = NULL;
    int64_t *labels = NULL, n_labels = 0, shape[ST3D_MAX_DIMS];
    int ndim = 0;
    if (st3d_npy_read_f32(input, &x, &ndim, shape, &err) != 0) return cli_error(&err);
    if (ndim != 5) {
        free(x);
        return cli_errorf("%s: expected a 5-d array N x C x D x H x W, found %d dimensions", input, ndim);
    }
    if (st3d_npy_read_i64(labels_path, &labels, &n_labels, &err) != 0) {
        free(x);
        return cli_error(&err);
    }
    int rc = 1;
    st3d_model *m = NULL;
    st3d_sgd *opt = NULL;
    if (n_labels != shape[0]) {
        cli_errorf("%s: %lld labels for a batch of %lld clips", labels_path, (long long)n_labels,
                   (long long)shape[0]);
        goto out;
    }
    for (int64_t i = 0; i < n_labels; i++)
        if (labels[i] < 0 || labels[i] >= cm->p.n_classes) {
            cli_errorf("%s: label %lld at index %lld is outside [0, %d)", labels_path,
                       (long long)labels[i], (long long)i, cm->p.n_classes);
            goto out;
        }
    if (cli_model_open(cm, 0, &m) != 0) goto out;
    opt = st3d_sgd_new(m, &h, &err);
    if (!opt) {
        cli_error(&err);
        goto out;
    }
    for (int s = 0; s < steps; s++) {
        float loss = 0.0f;
        if (st3d_model_train_step(m, x, shape, labels, &loss, NULL, &err) != 0 ||
            st3d_sgd_step(opt, m, &err) != 0) {
            cli_error(&err);
            goto out;
        }
        printf("step %d loss %.6f\n", s + 1, loss);
    }
    st3d_tensor_map *sd = NULL, *gd = NULL;
    if (st3d_model_state_dict(m, &sd, &err) != 0 || st3d_safetensors_write(output, sd, &err) != 0 ||
        (grads && (st3d_model_grad_dict(m, &gd, &err) != 0 ||
                   st3d_safetensors_write(grads, gd, &err) != 0))) {
        cli_error(&err);
    } else {
        rc = 0;
    }
    st3d_tensor_map_free(sd);
    st3d_tensor_map_free(gd);
out:
    st3d_sgd_free(opt);
    st3d_model_free(m);
    free(x);
    free(labels);
    return rc;
}

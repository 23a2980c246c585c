/*
 * cmd_convert.c - `st3d convert IN OUT`: any weights file (.pth of the
 * original code, torchvision or your own training; safetensors) to a
 * self-describing safetensors file: float32 state_dict under PyTorch's keys
 * plus "st3d.*" metadata with the architecture and its options, the class
 * labels (--labels), and the input normalization (--mean-dataset,
 * --value-scale, --no-mean-norm, --no-std-norm, as the original opts.py), so
 * that later commands need nothing but that file.
 */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: st3d convert IN OUT [--labels FILE] [--mean-dataset kinetics|activitynet|0.5]\n"
                 "                   [--value-scale 1|255] [--no-mean-norm] [--no-std-norm]\n"
                 "                   [network options, default: inferred from IN]\n\n"
                 "--labels: one class name per line, or an annotation JSON with a \"labels\" list\n\n");
    cli_model_usage(out);
}

static int set_meta(st3d_tensor_map *map, const char *key, const char *value) {
    st3d_error err = {0};
    return st3d_tensor_map_set_meta(map, key, value, &err) ? cli_error(&err) : 0;
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *labels_path = NULL, *mean_dataset = "kinetics";
    float value_scale = 1.0f, mean[3], std[3];
    int no_mean = 0, no_std = 0;
    st3d_error err = {0};
    st3d_model *m = NULL;
    st3d_tensor_map *sd = NULL;
    json_t *labels = NULL;
    for (int i = 1; i < argc; i++)
        if (cli_opt_is(argv[i], "help")) return usage(stdout), 0;
    /* positional IN and OUT; IN plays the part of --weights for inference */
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--", 2)) {
            int flag = cli_model_is_flag(argv[i]) || cli_opt_is(argv[i], "no-mean-norm") || cli_opt_is(argv[i], "no-std-norm");
            i += !flag;
            continue;
        }
        if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else return cli_errorf("convert takes IN and OUT, got a third file '%s'", argv[i]), 2;
    }
    if (!in || !out) return cli_errorf("convert needs IN and OUT (see --help)"), 2;
    char *fake[] = {argv[0], "--weights", (char *)in};
    int has_model = 0;
    for (int i = 1; i < argc; i++) has_model |= cli_opt_is(argv[i], "model");
    cli_model cm;
    if (cli_model_begin(3, fake, &cm) != 0) return 1;
    if (has_model) cm.p = st3d_model_default_params();
    cm.weights = in;
    int rc = 2;
    for (int i = 1; i < argc;) {
        if (strncmp(argv[i], "--", 2) != 0) {
            i++;
            continue;
        }
        int r = cli_model_opt(argc, argv, &i, &cm);
        if (r < 0) goto done;
        if (r > 0) continue;
        const char *a = argv[i];
        if (cli_opt_is(a, "no-mean-norm")) {
            no_mean = 1;
            i++;
            continue;
        }
        if (cli_opt_is(a, "no-std-norm")) {
            no_std = 1;
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            cli_errorf("unknown option or missing value: %s", a);
            goto done;
        }
        if (cli_opt_is(a, "labels")) labels_path = argv[i + 1];
        else if (cli_opt_is(a, "mean-dataset")) mean_dataset = argv[i + 1];
        else if (cli_opt_is(a, "value-scale")) {
            if (cli_parse_float(a, argv[i + 1], &value_scale)) goto done;
        } else {
            cli_errorf("unknown option: %s (see st3d convert --help)", a);
            goto done;
        }
        i += 2;
    }
    st3d_set_threads(cm.threads);
    rc = 1;
    if (st3d_mean_std(mean_dataset, value_scale, mean, std, &err) != 0) {
        cli_error(&err);
        goto done;
    }
    if (labels_path) {
        if (!(labels = cli_read_labels(labels_path))) goto done;
        if ((int)json_array_size(labels) != cm.p.n_classes) {
            cli_errorf("%s: %zu labels for a network of %d classes", labels_path,
                       json_array_size(labels), cm.p.n_classes);
            goto done;
        }
    }
    if (cli_model_open(&cm, 0, &m) != 0) goto done;
    if (st3d_model_state_dict(m, &sd, &err) != 0 || st3d_model_params_to_meta(&cm.p, sd, &err) != 0) {
        cli_error(&err);
        goto done;
    }
    char buf[160];
    if (no_mean) mean[0] = mean[1] = mean[2] = 0.0f;
    if (no_std) std[0] = std[1] = std[2] = 1.0f;
    snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g", mean[0], mean[1], mean[2]);
    if (set_meta(sd, "st3d.mean", buf)) goto done;
    snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g", std[0], std[1], std[2]);
    if (set_meta(sd, "st3d.std", buf)) goto done;
    snprintf(buf, sizeof buf, "%g", value_scale);
    if (set_meta(sd, "st3d.value_scale", buf)) goto done;
    if (labels) {
        char *s = json_dumps(labels, JSON_COMPACT);
        int bad = !s || set_meta(sd, "st3d.labels", s);
        free(s);
        if (bad) goto done;
    }
    const char *arch = st3d_tensor_map_get_meta(cm.map, "arch");
    if (arch && set_meta(sd, "st3d.source_arch", arch)) goto done;
    if (st3d_safetensors_write(out, sd, &err) != 0) {
        cli_error(&err);
        goto done;
    }
    printf("%s -> %s: %s-%d, %d classes, %lld parameters\n", in, out, cm.p.model, cm.p.model_depth,
           cm.p.n_classes, (long long)st3d_model_n_params(m));
    rc = 0;
done:
    json_decref(labels);
    st3d_tensor_map_free(sd);
    st3d_model_free(m);
    cli_model_end(&cm);
    return rc;
}

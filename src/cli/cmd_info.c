/*
 * cmd_info.c - `st3d info`: the layer table of a network (output shapes for
 * a clip of --sample-duration x --sample-size^2) and its parameter count.
 */
#include "cli.h"

#include <stdlib.h>

static void usage(FILE *out) {
    fprintf(out, "usage: st3d info [network options] [--sample-duration 16] [--sample-size 112]\n\n");
    cli_model_usage(out);
}

int cmd_info(int argc, char **argv) {
    st3d_model_params p = st3d_model_default_params();
    int threads = 0, duration = 16, size = 112;
    for (int i = 1; i < argc;) {
        int r = cli_model_opt(argc, argv, &i, &p, &threads);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (cli_opt_is(a, "help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) return cli_errorf("unknown option or missing value: %s", a), 2;
        if (cli_opt_is(a, "sample-duration")) {
            if (cli_parse_int(a, argv[i + 1], &duration)) return 2;
        } else if (cli_opt_is(a, "sample-size")) {
            if (cli_parse_int(a, argv[i + 1], &size)) return 2;
        } else {
            return cli_errorf("unknown option: %s (see st3d info --help)", a), 2;
        }
        i += 2;
    }
    st3d_error err = {0};
    st3d_model *m = st3d_model_new(&p, 0, &err);
    if (!m) return cli_error(&err);
    int64_t dhw[3] = {duration, size, size};
    printf("%s-%d, %d classes, input %d x %d x %d x %d\n\n", p.model, p.model_depth, p.n_classes,
           p.n_input_channels, duration, size, size);
    printf("%-28s %-13s %-22s %-9s %-9s %12s\n", "layer", "kind", "output (C x D x H x W)",
           "kernel", "stride", "params");
    for (size_t i = 0; i < st3d_model_n_layers(m); i++) {
        st3d_layer_info li;
        if (st3d_model_layer(m, i, dhw, &li, &err) != 0) {
            st3d_model_free(m);
            return cli_error(&err);
        }
        char shape[48], k[16] = "", s[16] = "";
        snprintf(shape, sizeof shape, "%lld x %lld x %lld x %lld", (long long)li.out_shape[0],
                 (long long)li.out_shape[1], (long long)li.out_shape[2], (long long)li.out_shape[3]);
        if (li.kernel[0]) {
            snprintf(k, sizeof k, "%dx%dx%d", li.kernel[0], li.kernel[1], li.kernel[2]);
            snprintf(s, sizeof s, "%dx%dx%d", li.stride[0], li.stride[1], li.stride[2]);
        }
        char name[40];
        if (li.groups > 1)
            snprintf(name, sizeof name, "%s (g%d)", li.name, li.groups);
        else
            snprintf(name, sizeof name, "%s", li.name);
        printf("%-28s %-13s %-22s %-9s %-9s %12lld\n", name, li.kind, shape, k, s,
               (long long)li.n_params);
    }
    printf("\nGFLOPs per clip: %.2f\n", st3d_model_flops(m, dhw) / 1e9);
    printf("parameters: %lld\n", (long long)st3d_model_n_params(m));
    st3d_model_free(m);
    return 0;
}

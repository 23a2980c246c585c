/*
 * model_opts.c - the network options shared by every command, named as in
 * the original opts.py (with '-' or '_'): --model, --model-depth,
 * --n-classes, --n-input-channels, --resnet-shortcut, --conv1-t-size,
 * --conv1-t-stride, --no-max-pool, --resnet-widen-factor, --wide-resnet-k,
 * --resnext-cardinality, plus --threads.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cli_model_opt(int argc, char **argv, int *i, st3d_model_params *p, int *threads) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int consumed = 2;
#define NEED_VALUE()                                                 \
    do {                                                             \
        if (!v) {                                                    \
            cli_errorf("%s needs a value", a);                       \
            return -1;                                               \
        }                                                            \
    } while (0)
    if (cli_opt_is(a, "model")) {
        NEED_VALUE();
        if (strlen(v) >= sizeof p->model) return cli_errorf("--model: unknown model '%s'", v), -1;
        snprintf(p->model, sizeof p->model, "%s", v);
    } else if (cli_opt_is(a, "model-depth")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->model_depth)) return -1;
    } else if (cli_opt_is(a, "n-classes")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->n_classes)) return -1;
    } else if (cli_opt_is(a, "n-input-channels")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->n_input_channels)) return -1;
    } else if (cli_opt_is(a, "resnet-shortcut")) {
        NEED_VALUE();
        if (strcmp(v, "A") && strcmp(v, "B"))
            return cli_errorf("--resnet-shortcut: expected A or B, got '%s'", v), -1;
        p->resnet_shortcut = v[0];
    } else if (cli_opt_is(a, "conv1-t-size")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->conv1_t_size)) return -1;
    } else if (cli_opt_is(a, "conv1-t-stride")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->conv1_t_stride)) return -1;
    } else if (cli_opt_is(a, "no-max-pool")) {
        p->no_max_pool = 1;
        consumed = 1;
    } else if (cli_opt_is(a, "resnet-widen-factor")) {
        NEED_VALUE();
        if (cli_parse_float(a, v, &p->resnet_widen_factor)) return -1;
    } else if (cli_opt_is(a, "wide-resnet-k")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->wide_resnet_k)) return -1;
    } else if (cli_opt_is(a, "resnext-cardinality")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, &p->resnext_cardinality)) return -1;
    } else if (cli_opt_is(a, "c3d-bn")) {
        p->c3d_bn = 1;
        consumed = 1;
    } else if (cli_opt_is(a, "dropout")) {
        NEED_VALUE();
        if (cli_parse_float(a, v, &p->dropout)) return -1;
    } else if (cli_opt_is(a, "threads")) {
        NEED_VALUE();
        if (cli_parse_int(a, v, threads)) return -1;
    } else {
        return 0;
    }
#undef NEED_VALUE
    *i += consumed;
    return 1;
}

void cli_model_usage(FILE *out) {
    fprintf(out,
            "network options (as the original opts.py; '-' or '_'):\n"
            "  --model resnet|preresnet|wideresnet|resnext|resnet2p1d|densenet|c3d|\n"
            "          tv-r3d|tv-mc3|tv-r2plus1d              (resnet)\n"
            "  --model-depth 10|18|34|50|101|152|200, densenet 121|169|201|264 (18)\n"
            "  --n-classes N                                  (400)\n"
            "  --n-input-channels N                           (3)\n"
            "  --resnet-shortcut A|B                          (B)\n"
            "  --conv1-t-size N  --conv1-t-stride N           (7, 1)\n"
            "  --no-max-pool\n"
            "  --resnet-widen-factor F                        (1.0)\n"
            "  --wide-resnet-k K                              (2)\n"
            "  --resnext-cardinality C                        (32)\n"
            "  --c3d-bn         batch norm after C3D's convolutions\n"
            "  --dropout P      C3D's fc6/fc7 dropout          (0.5)\n"
            "  --threads N      compute threads               (all cores)\n");
}

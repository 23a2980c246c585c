/*
 * model_opts.c - the network options shared by every command, named as in
 * the original opts.py (with '-' or '_'): --model, --model-depth,
 * --n-classes, --n-input-channels, --resnet-shortcut, --conv1-t-size,
 * --conv1-t-stride, --no-max-pool, --resnet-widen-factor, --wide-resnet-k,
 * --resnext-cardinality, --c3d-bn, --dropout; the weights (--weights, or
 * --pretrain-path with --n-pretrain-classes to fine-tune); --threads and
 * --conv (how inference runs convolutions).
 *
 * When --model is not given, the network is the one the weights file
 * describes (st3d_model_params_from_weights); any option given explicitly
 * still overrides what was inferred.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The weights path among the arguments (before option parsing). */
static const char *find_weights(int argc, char **argv, int *pretrain) {
    for (int i = 1; i + 1 < argc; i++) {
        if (cli_opt_is(argv[i], "weights")) return *pretrain = 0, argv[i + 1];
        if (cli_opt_is(argv[i], "pretrain-path")) return *pretrain = 1, argv[i + 1];
    }
    return NULL;
}

int cli_model_begin(int argc, char **argv, cli_model *cm) {
    memset(cm, 0, sizeof *cm);
    cm->p = st3d_model_default_params();
    cm->n_pretrain_classes = -1;
    cm->winograd = 1;
    int pretrain = 0, has_model = 0;
    const char *path = find_weights(argc, argv, &pretrain);
    for (int i = 1; i < argc; i++) has_model |= cli_opt_is(argv[i], "model");
    if (!path) return 0;
    st3d_error err = {0};
    if (st3d_weights_read(path, &cm->map, &err) != 0) return cli_error(&err);
    if (!has_model && st3d_model_params_from_weights(cm->map, &cm->p, &err) != 0)
        return cli_errorf("%s: %s", path, err.msg);
    return 0;
}

void cli_model_end(cli_model *cm) {
    st3d_tensor_map_free(cm->map);
    cm->map = NULL;
}

int cli_model_is_flag(const char *a) {
    return cli_opt_is(a, "no-max-pool") || cli_opt_is(a, "c3d-bn") || cli_opt_is(a, "spatial-only");
}

int cli_model_opt(int argc, char **argv, int *i, cli_model *cm) {
    st3d_model_params *p = &cm->p;
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int consumed = 2;
    int flag = cli_model_is_flag(a);
    if (!flag && !v) {
        static const char *with_value[] = {
            "model", "model-depth", "n-classes", "n-input-channels", "resnet-shortcut",
            "conv1-t-size", "conv1-t-stride", "resnet-widen-factor", "wide-resnet-k",
            "resnext-cardinality", "dropout", "threads", "weights", "pretrain-path",
            "n-pretrain-classes", "conv"};
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (cli_opt_is(a, with_value[k])) return cli_errorf("%s needs a value", a), -1;
        return 0;
    }
    int bad = 0;
    if (cli_opt_is(a, "model")) {
        if (strlen(v) >= sizeof p->model) return cli_errorf("--model: unknown model '%s'", v), -1;
        snprintf(p->model, sizeof p->model, "%s", v);
    } else if (cli_opt_is(a, "model-depth")) bad = cli_parse_int(a, v, &p->model_depth);
    else if (cli_opt_is(a, "n-classes")) bad = cli_parse_int(a, v, &p->n_classes);
    else if (cli_opt_is(a, "n-input-channels")) bad = cli_parse_int(a, v, &p->n_input_channels);
    else if (cli_opt_is(a, "resnet-shortcut")) {
        if (strcmp(v, "A") && strcmp(v, "B"))
            return cli_errorf("--resnet-shortcut: expected A or B, got '%s'", v), -1;
        p->resnet_shortcut = v[0];
    } else if (cli_opt_is(a, "conv1-t-size")) bad = cli_parse_int(a, v, &p->conv1_t_size);
    else if (cli_opt_is(a, "conv1-t-stride")) bad = cli_parse_int(a, v, &p->conv1_t_stride);
    else if (cli_opt_is(a, "no-max-pool")) {
        p->no_max_pool = 1;
        consumed = 1;
    } else if (cli_opt_is(a, "c3d-bn")) {
        p->c3d_bn = 1;
        consumed = 1;
    } else if (cli_opt_is(a, "spatial-only")) {
        p->spatial_only = 1;
        consumed = 1;
    } else if (cli_opt_is(a, "resnet-widen-factor")) bad = cli_parse_float(a, v, &p->resnet_widen_factor);
    else if (cli_opt_is(a, "wide-resnet-k")) bad = cli_parse_int(a, v, &p->wide_resnet_k);
    else if (cli_opt_is(a, "resnext-cardinality")) bad = cli_parse_int(a, v, &p->resnext_cardinality);
    else if (cli_opt_is(a, "dropout")) bad = cli_parse_float(a, v, &p->dropout);
    else if (cli_opt_is(a, "threads")) bad = cli_parse_int(a, v, &cm->threads);
    else if (cli_opt_is(a, "weights")) cm->weights = v;
    else if (cli_opt_is(a, "pretrain-path")) cm->pretrain = v;
    else if (cli_opt_is(a, "n-pretrain-classes")) bad = cli_parse_int(a, v, &cm->n_pretrain_classes);
    else if (cli_opt_is(a, "conv")) {
        if (strcmp(v, "auto") && strcmp(v, "direct"))
            return cli_errorf("--conv: expected auto or direct, got '%s'", v), -1;
        cm->winograd = !strcmp(v, "auto");
    } else return 0;
    if (bad) return -1;
    *i += consumed;
    return 1;
}

int cli_model_open(cli_model *cm, uint64_t seed, st3d_model **out) {
    st3d_error err = {0};
    if (cm->weights && cm->pretrain)
        return cli_errorf("give either --weights or --pretrain-path, not both");
    /* a complete checkpoint overwrites every value: nothing to draw first */
    st3d_model *m = cm->map && !cm->pretrain ? st3d_model_new_blank(&cm->p, &err)
                                             : st3d_model_new(&cm->p, seed, &err);
    if (!m) return cli_error(&err);
    int rc = 0;
    if (cm->map && cm->pretrain) {
        /* --n-pretrain-classes, when given, must be what the file holds */
        const st3d_tensor_info *w = NULL;
        for (size_t i = 0; i < st3d_tensor_map_count(cm->map); i++) {
            const st3d_tensor_info *t = st3d_tensor_map_at(cm->map, i);
            if (t->ndim == 2 && strstr(t->name, "weight")) w = t; /* the last linear: the classifier */
        }
        if (cm->n_pretrain_classes > 0 && w && w->shape[0] != cm->n_pretrain_classes)
            rc = cli_errorf("%s: classifier '%s' has %lld classes, --n-pretrain-classes says %d",
                            cm->pretrain, w->name, (long long)w->shape[0], cm->n_pretrain_classes);
        else if (st3d_model_load_pretrained(m, cm->map, cm->pretrain, &err) != 0)
            rc = cli_error(&err);
    } else if (cm->map && st3d_model_load(m, cm->map, cm->weights, &err) != 0) {
        rc = cli_error(&err);
    }
    if (rc) {
        st3d_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void cli_model_for_inference(cli_model *cm, st3d_model *m) {
    if (cm->map && !cm->pretrain) st3d_model_keep_weights_source(m, cm->map);
}

void cli_model_usage(FILE *out) {
    fprintf(out,
            "network options (as the original opts.py; '-' or '_'):\n"
            "  --model resnet|preresnet|wideresnet|resnext|resnet2p1d|densenet|c3d|\n"
            "          tv-r3d|tv-mc3|tv-r2plus1d    (default: what --weights holds, else resnet)\n"
            "  --model-depth 10|18|34|50|101|152|200, densenet 121|169|201|264 (18)\n"
            "  --n-classes N                                  (400)\n"
            "  --n-input-channels N                           (3)\n"
            "  --resnet-shortcut A|B                          (B)\n"
            "  --conv1-t-size N  --conv1-t-stride N           (7, 1)\n"
            "  --no-max-pool\n"
            "  --spatial-only   temporal kernel 1 in every convolution: a 2D CNN on each\n"
            "                   frame (resnet family; the control that sees no motion)\n"
            "  --resnet-widen-factor F                        (1.0)\n"
            "  --wide-resnet-k K                              (2)\n"
            "  --resnext-cardinality C                        (32)\n"
            "  --c3d-bn         batch norm after C3D's convolutions\n"
            "  --dropout P      C3D's fc6/fc7 dropout          (0.5)\n"
            "weights (.safetensors or PyTorch .pth; 'module.' prefixes are stripped):\n"
            "  --weights W              load every tensor, shapes must match\n"
            "  --pretrain-path W        fine-tune: load all but a classifier of another size\n"
            "  --n-pretrain-classes K   the classes of --pretrain-path (checked)\n"
            "  --threads N      compute threads               (all cores)\n"
            "  --conv auto|direct  inference: temporal Winograd where it pays, or oneDNN's\n"
            "                   direct kernel for every convolution    (auto)\n");
}

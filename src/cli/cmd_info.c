/*
 * cmd_info.c - `st3d info`: what a network is, or what a weights file holds.
 *
 *   st3d info [network options] [--sample-duration 16] [--sample-size 112]
 *       the layer table (output shapes for one clip), GFLOPs and parameters
 *   st3d info FILE
 *       format, metadata (arch, epoch), every tensor's key, dtype and shape,
 *       and the network the file matches
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: st3d info [network options] [--sample-duration 16] [--sample-size 112]\n"
                 "       st3d info FILE.pth|FILE.safetensors\n\n");
    cli_model_usage(out);
}

static void print_params(const st3d_model_params *p) {
    printf("model: %s", p->model);
    if (strcmp(p->model, "c3d")) printf(" --model-depth %d", p->model_depth);
    printf(" --n-classes %d --n-input-channels %d", p->n_classes, p->n_input_channels);
    if (!strncmp(p->model, "res", 3) || !strcmp(p->model, "preresnet") ||
        !strcmp(p->model, "wideresnet"))
        printf(" --resnet-shortcut %c", p->resnet_shortcut);
    if (strncmp(p->model, "tv-", 3) && strcmp(p->model, "c3d"))
        printf(" --conv1-t-size %d", p->conv1_t_size);
    if (!strcmp(p->model, "resnet") || !strcmp(p->model, "resnet2p1d"))
        printf(" --resnet-widen-factor %g", (double)p->resnet_widen_factor);
    if (!strcmp(p->model, "wideresnet")) printf(" --wide-resnet-k %d", p->wide_resnet_k);
    if (!strcmp(p->model, "resnext")) printf(" --resnext-cardinality %d", p->resnext_cardinality);
    if (p->c3d_bn) printf(" --c3d-bn");
    if (p->spatial_only) printf(" --spatial-only");
    if (p->conv1_planes) printf(" (conv1 width %d, as the 2018 code)", p->conv1_planes);
    printf("\n");
}

static int info_file(const char *path) {
    st3d_error err = {0};
    st3d_tensor_map *map = NULL;
    if (st3d_weights_read(path, &map, &err) != 0) return cli_error(&err);
    const char *format = st3d_tensor_map_get_meta(map, "format");
    printf("%s: %s, %zu tensors\n", path, format ? format : "safetensors", st3d_tensor_map_count(map));
    for (size_t i = 0; i < st3d_tensor_map_meta_count(map); i++) {
        const char *k = st3d_tensor_map_meta_key(map, i);
        if (strcmp(k, "format")) printf("  %s: %s\n", k, st3d_tensor_map_get_meta(map, k));
    }
    int64_t total = 0;
    for (size_t i = 0; i < st3d_tensor_map_count(map); i++) {
        const st3d_tensor_info *t = st3d_tensor_map_at(map, i);
        char shape[96];
        size_t off = (size_t)snprintf(shape, sizeof shape, "[");
        int64_t n = 1;
        for (int d = 0; d < t->ndim && off < sizeof shape; d++) {
            off += (size_t)snprintf(shape + off, sizeof shape - off, "%s%lld", d ? ", " : "",
                                    (long long)t->shape[d]);
            n *= t->shape[d];
        }
        if (off < sizeof shape) snprintf(shape + off, sizeof shape - off, "]");
        printf("  %-52s %-5s %s\n", t->name, st3d_dtype_name(t->dtype), shape);
        if (t->dtype != ST3D_I64) total += n;
    }
    printf("values (excluding integer counters): %lld\n", (long long)total);
    st3d_model_params p;
    int rc = 0;
    if (st3d_model_params_from_weights(map, &p, &err) != 0) {
        rc = cli_errorf("%s: %s", path, err.msg);
    } else {
        print_params(&p);
        st3d_model *m = st3d_model_new_blank(&p, &err);
        if (!m || st3d_model_load(m, map, path, &err) != 0)
            rc = cli_errorf("%s (while loading it as the network above)", err.msg);
        else
            printf("parameters: %lld (loads as this network)\n", (long long)st3d_model_n_params(m));
        st3d_model_free(m);
    }
    st3d_tensor_map_free(map);
    return rc;
}

int cmd_info(int argc, char **argv) {
    int duration = 16, size = 112;
    const char *file = NULL;
    cli_model cm;
    memset(&cm, 0, sizeof cm);
    cm.p = st3d_model_default_params();
    for (int i = 1; i < argc;) {
        int r = cli_model_opt(argc, argv, &i, &cm);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (cli_opt_is(a, "help")) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (file) return cli_errorf("info takes one file, got '%s' and '%s'", file, a), 2;
            file = a;
            i++;
            continue;
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
    if (file) return info_file(file);
    const st3d_model_params p = cm.p;
    st3d_error err = {0};
    st3d_model *m = st3d_model_new_blank(&p, &err);
    if (!m) return cli_error(&err);
    int64_t dhw[3] = {duration, size, size};
    printf("%s-%d, %d classes, input %d x %d x %d x %d\n\n", p.model, p.model_depth, p.n_classes,
           p.n_input_channels, duration, size, size);
    printf("%-44s %-13s %-22s %-9s %-9s %12s\n", "layer", "kind", "output (C x D x H x W)",
           "kernel", "stride", "params");
    for (size_t i = 0; i < st3d_model_n_layers(m); i++) {
        st3d_layer_info li;
        if (st3d_model_layer(m, i, dhw, &li, &err) != 0) {
            st3d_model_free(m);
            return cli_error(&err);
        }
        char shape[96], k[16] = "", s[16] = "", name[80];
        snprintf(shape, sizeof shape, "%lld x %lld x %lld x %lld", (long long)li.out_shape[0],
                 (long long)li.out_shape[1], (long long)li.out_shape[2], (long long)li.out_shape[3]);
        if (li.kernel[0]) {
            snprintf(k, sizeof k, "%dx%dx%d", li.kernel[0], li.kernel[1], li.kernel[2]);
            snprintf(s, sizeof s, "%dx%dx%d", li.stride[0], li.stride[1], li.stride[2]);
        }
        if (li.groups > 1)
            snprintf(name, sizeof name, "%.50s (g%d)", li.name, li.groups);
        else
            snprintf(name, sizeof name, "%.60s", li.name);
        printf("%-44s %-13s %-22s %-9s %-9s %12lld\n", name, li.kind, shape, k, s,
               (long long)li.n_params);
    }
    printf("\nGFLOPs per clip: %.2f\n", st3d_model_flops(m, dhw) / 1e9);
    printf("parameters: %lld\n", (long long)st3d_model_n_params(m));
    st3d_model_free(m);
    return 0;
}

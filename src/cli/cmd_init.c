/*
 * cmd_init.c - `st3d init`: writes a network's freshly initialized
 * state_dict (initialization as the original code's constructors) to a
 * safetensors file, e.g. to train from scratch or to try the other commands.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: st3d init [network options] [--seed S] --output W.safetensors\n\n");
    cli_model_usage(out);
}

int cmd_init(int argc, char **argv) {
    int seed = 1;
    const char *output = NULL;
    cli_model cm;
    memset(&cm, 0, sizeof cm);
    cm.p = st3d_model_default_params();
    st3d_model_params *pp = &cm.p;
    for (int i = 1; i < argc;) {
        int r = cli_model_opt(argc, argv, &i, &cm);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (cli_opt_is(a, "help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) return cli_errorf("unknown option or missing value: %s", a), 2;
        if (cli_opt_is(a, "output")) output = argv[i + 1];
        else if (cli_opt_is(a, "seed")) {
            if (cli_parse_int(a, argv[i + 1], &seed)) return 2;
        } else return cli_errorf("unknown option: %s (see st3d init --help)", a), 2;
        i += 2;
    }
    if (!output) return cli_errorf("init needs --output"), 2;
    st3d_error err = {0};
    const st3d_model_params p = *pp;
    st3d_model *m = st3d_model_new(&p, (uint64_t)seed, &err);
    if (!m) return cli_error(&err);
    st3d_tensor_map *sd = NULL;
    int rc = 0;
    if (st3d_model_state_dict(m, &sd, &err) != 0 || st3d_model_params_to_meta(&p, sd, &err) != 0 ||
        st3d_safetensors_write(output, sd, &err) != 0)
        rc = cli_error(&err);
    else
        printf("%s: %s-%d, %lld parameters\n", output, p.model, p.model_depth,
               (long long)st3d_model_n_params(m));
    st3d_tensor_map_free(sd);
    st3d_model_free(m);
    return rc;
}

/*
 * cmd_bench.c - `st3d bench`: clips per second and GFLOP/s of inference or
 * of a full training step (forward, backward, SGD), as the median of several
 * timed runs after warm-up, on random weights and clips.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *out) {
    fprintf(out, "usage: st3d bench [network options] [--batch 8] [--sample-duration 16]\n"
                 "                  [--sample-size 112] [--mode infer|train] [--runs 5] [--warmup 2]\n\n");
    cli_model_usage(out);
}

int cmd_bench(int argc, char **argv) {
    int batch = 8, duration = 16, size = 112, runs = 5, warmup = 2, train = 0;
    for (int i = 1; i < argc; i++)
        if (cli_opt_is(argv[i], "help")) return usage(stdout), 0;
    cli_model cm;
    if (cli_model_begin(argc, argv, &cm) != 0) return 1;
    for (int i = 1; i < argc;) {
        int r = cli_model_opt(argc, argv, &i, &cm);
        if (r < 0) return cli_model_end(&cm), 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (i + 1 >= argc) return cli_model_end(&cm), cli_errorf("unknown option or missing value: %s", a), 2;
        const char *v = argv[i + 1];
        int bad = 0;
        if (cli_opt_is(a, "batch") || cli_opt_is(a, "batch-size")) bad = cli_parse_int(a, v, &batch);
        else if (cli_opt_is(a, "sample-duration")) bad = cli_parse_int(a, v, &duration);
        else if (cli_opt_is(a, "sample-size")) bad = cli_parse_int(a, v, &size);
        else if (cli_opt_is(a, "runs")) bad = cli_parse_int(a, v, &runs);
        else if (cli_opt_is(a, "warmup")) bad = cli_parse_int(a, v, &warmup);
        else if (cli_opt_is(a, "mode")) {
            if (!strcmp(v, "train")) train = 1;
            else if (!strcmp(v, "infer")) train = 0;
            else bad = cli_errorf("--mode: expected infer or train, got '%s'", v);
        } else bad = cli_errorf("unknown option: %s (see st3d bench --help)", a);
        if (bad) return cli_model_end(&cm), 2;
        i += 2;
    }
    if (batch < 1 || duration < 1 || size < 1 || runs < 1 || warmup < 0)
        return cli_model_end(&cm), cli_errorf("--batch, --sample-duration, --sample-size and --runs must be positive"), 2;
    st3d_set_threads(cm.threads);
    const st3d_model_params p = cm.p;
    const int winograd = cm.winograd;
    st3d_error err = {0};
    st3d_model *m = NULL;
    int open_rc = cli_model_open(&cm, 1, &m);
    cli_model_end(&cm);
    if (open_rc != 0) return 1;
    int64_t shape[5] = {batch, p.n_input_channels, duration, size, size};
    size_t n_in = (size_t)(batch * p.n_input_channels) * duration * size * size;
    float *x = malloc(sizeof(float) * n_in);
    float *logits = malloc(sizeof(float) * (size_t)batch * p.n_classes);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)batch);
    double *times = malloc(sizeof(double) * (size_t)runs);
    st3d_sgd_params hp = st3d_sgd_default_params();
    hp.lr = 1e-4f;
    st3d_sgd *opt = st3d_sgd_new(m, &hp, &err);
    st3d_exec *ex = opt ? st3d_exec_new(m, &err) : NULL;
    int rc = 1;
    if (!x || !logits || !labels || !times || !opt || !ex) {
        if (ex) cli_errorf("out of memory");
        else cli_error(&err);
        goto out;
    }
    st3d_exec_set_winograd(ex, winograd);
    uint64_t s = 12345;
    for (size_t i = 0; i < n_in; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    for (int i = 0; i < batch; i++) labels[i] = i % p.n_classes;

    fprintf(stderr, "st3d bench: %s-%d %s, batch %d, %d x %d x %d, %d threads\n", p.model,
            p.model_depth, train ? "train" : "infer", batch, duration, size, size, st3d_get_threads());
    for (int r = 0; r < warmup + runs; r++) {
        double t0 = now();
        int ok;
        if (train) {
            float loss;
            ok = st3d_exec_train_step(ex, x, shape, labels, &loss, NULL, &err) == 0 &&
                 st3d_sgd_step(opt, m, &err) == 0;
        } else {
            ok = st3d_exec_forward(ex, x, shape, logits, NULL, &err) == 0;
        }
        if (!ok) {
            cli_error(&err);
            goto out;
        }
        double dt = now() - t0;
        if (r >= warmup) times[r - warmup] = dt;
        fprintf(stderr, "  run %d%s: %.3f s\n", r + 1, r < warmup ? " (warm-up)" : "", dt);
    }
    /* mean: all timed clips over all timed seconds, the way an end-to-end
     * job (st3d features, st3d train) is timed; the median drops the slow
     * runs that such a job cannot drop, so a pipeline is compared with the
     * mean over as many clips as it ran (bench/classify_bench.py) */
    double total = 0;
    for (int r = 0; r < runs; r++) total += times[r];
    double mean = total / runs;
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double med = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
    int64_t dhw[3] = {duration, size, size};
    /* a training step costs about 3 forward passes (forward, backward data, backward weights) */
    double flops = st3d_model_flops(m, dhw) * batch * (train ? 3.0 : 1.0);
    printf("%s-%d %s batch %d: %.2f clips/s, %.1f GFLOP/s (median of %d runs, %.3f s each; "
           "mean %.2f clips/s)\n",
           p.model, p.model_depth, train ? "train" : "infer", batch, batch / med, flops / med / 1e9,
           runs, med, batch / mean);
    if (!train)
        printf("activation memory: %.1f MiB; convolutions as temporal Winograd: %d\n",
               st3d_exec_activation_bytes(ex) / 1048576.0, st3d_exec_winograd_convs(ex));
    printf("RESULT clips_per_s=%.4f gflops=%.2f mean_clips_per_s=%.4f\n", batch / med,
           flops / med / 1e9, batch / mean);
    rc = 0;
out:
    free(x);
    free(logits);
    free(labels);
    free(times);
    st3d_exec_free(ex);
    st3d_sgd_free(opt);
    st3d_model_free(m);
    return rc;
}

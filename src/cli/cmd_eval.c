/*
 * cmd_eval.c - `st3d plot` and `st3d eval`: what the original's
 * util_scripts do once a run is over.
 *
 *   st3d plot RESULT_PATH [--output FILE.png]
 *       learning curves from RESULT_PATH/train.log and val.log
 *   st3d eval --results RESULTS.json --annotation-path ANN.json [--subset validation]
 *             [--top-k 5] [--ignore] [--confusion FILE.png] [--output-json FILE]
 *       video-level top-1 / top-k and per-class accuracy of inference results
 */
#include "cli.h"

#include <math.h>
#include <string.h>

static void plot_usage(FILE *out) {
    fprintf(out, "usage: st3d plot RESULT_PATH [--output FILE.png]\n\n"
                 "Draws training and validation loss and accuracy per epoch from the\n"
                 "original code's RESULT_PATH/train.log and RESULT_PATH/val.log (val.log\n"
                 "may be absent) to FILE.png (default RESULT_PATH/curves.png).\n");
}

int cmd_plot(int argc, char **argv) {
    const char *result_path = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_opt_is(a, "help") || !strcmp(a, "-h")) {
            plot_usage(stdout);
            return 0;
        } else if (cli_opt_is(a, "output") && i + 1 < argc) {
            output = argv[++i];
        } else if (cli_opt_is(a, "result-path") && i + 1 < argc) {
            result_path = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_errorf("plot: unknown option or missing value: %s", a), 2;
        } else if (!result_path) {
            result_path = a;
        } else {
            return cli_errorf("plot: one RESULT_PATH only (got '%s' too)", a), 2;
        }
    }
    if (!result_path) {
        plot_usage(stderr);
        return 2;
    }
    st3d_error err = {0};
    if (st3d_plot_curves(result_path, output, &err) != 0) return cli_error(&err);
    if (output) printf("%s\n", output);
    else printf("%s/curves.png\n", result_path);
    return 0;
}

static void eval_usage(FILE *out) {
    fprintf(out,
            "usage: st3d eval --results RESULTS.json --annotation-path ANN.json [options]\n\n"
            "Video-level accuracy of the original's inference results (main.py\n"
            "--inference), as its util_scripts/eval_accuracy.py: videos of the subset\n"
            "missing from the results count as wrong unless --ignore.\n\n"
            "  --subset NAME        annotation subset scored (validation)\n"
            "  --top-k K            k of the second accuracy (5)\n"
            "  --ignore             leave videos missing from the results out\n"
            "  --confusion FILE.png draw the top-1 confusion matrix\n"
            "  --output-json FILE   write the summary (accuracies, per class, matrix)\n"
            "  --quiet              print only the overall accuracies\n");
}

int cmd_eval(int argc, char **argv) {
    const char *results = NULL, *ann = NULL, *confusion = NULL, *json = NULL;
    int quiet = 0;
    st3d_eval_params p = st3d_eval_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (cli_opt_is(a, "help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            return 0;
        } else if (cli_opt_is(a, "results") && has) results = argv[++i];
        else if (cli_opt_is(a, "annotation-path") && has) ann = argv[++i];
        else if (cli_opt_is(a, "subset") && has) p.subset = argv[++i];
        else if (cli_opt_is(a, "confusion") && has) confusion = argv[++i];
        else if (cli_opt_is(a, "output-json") && has) json = argv[++i];
        else if (cli_opt_is(a, "ignore")) p.ignore_missing = 1;
        else if (cli_opt_is(a, "quiet")) quiet = 1;
        else if ((cli_opt_is(a, "top-k") || !strcmp(a, "-k")) && has) {
            if (cli_parse_int(a, argv[++i], &p.top_k)) return 2;
            if (p.top_k < 1) return cli_errorf("%s: must be at least 1", a), 2;
        } else return cli_errorf("eval: unknown option or missing value: %s", a), 2;
    }
    if (!results || !ann) {
        eval_usage(stderr);
        return 2;
    }
    st3d_error err = {0};
    st3d_eval *ev = NULL;
    if (st3d_eval_results(results, ann, &p, &ev, &err) != 0) return cli_error(&err);
    int rc = 0;
    printf("subset %s: %lld videos, %lld missing from the results%s\n", ev->subset,
           (long long)ev->n_videos, (long long)ev->n_missing,
           ev->n_missing ? (ev->ignore_missing ? " (left out)" : " (counted as wrong)") : "");
    printf("top-1 accuracy: %.4f (%lld / %lld)\n", ev->top1, (long long)ev->n_top1,
           (long long)ev->n_counted);
    printf("top-%d accuracy: %.4f (%lld / %lld)\n", ev->top_k, ev->topk, (long long)ev->n_topk,
           (long long)ev->n_counted);
    printf("mean class top-1 accuracy: %.4f\n", ev->mean_class_top1);
    if (!quiet) {
        printf("\n%-32s %7s %7s %8s %8s\n", "class", "videos", "missing", "top-1", "top-k");
        for (int64_t i = 0; i < ev->n_classes; i++) {
            const st3d_eval_class *c = &ev->classes[i];
            if (isnan(c->top1))
                printf("%-32.32s %7lld %7lld %8s %8s\n", c->label, (long long)c->n_videos,
                       (long long)c->n_missing, "-", "-");
            else
                printf("%-32.32s %7lld %7lld %8.4f %8.4f\n", c->label, (long long)c->n_videos,
                       (long long)c->n_missing, c->top1, c->topk);
        }
    }
    if (json && st3d_eval_write_json(ev, json, &err) != 0) rc = cli_error(&err);
    if (rc == 0 && confusion && st3d_eval_plot_confusion(ev, confusion, &err) != 0)
        rc = cli_error(&err);
    st3d_eval_free(ev);
    return rc;
}

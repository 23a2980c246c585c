/*
 * cmd_test.c - `st3d test`: the original main.py --inference.  Every video
 * of --inference-subset is cut into clips of --sample-duration frames every
 * --inference-stride frames (SlidingWindow, the last one loop-padded),
 * resized and center-cropped to --sample-size (or, with --inference-crop
 * nocrop, only resized: short side --sample-size, aspect kept, a batch per
 * video, as the original's fully convolutional inference), run through the
 * network, and
 * the clips' softmax scores averaged per video (or kept per clip with
 * --inference-no-average); RESULT_PATH/<subset>.json holds the top
 * --output-topk labels and scores, as inference.py writes them.  The work is
 * the library's st3d_predict; this file parses and reports.
 *
 * Under mpirun each rank classifies its share of the videos (every video
 * once) and rank 0 writes the gathered results: the same file as one
 * process writes.
 */
#include "cli.h"
#include "train_opts.h"
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct test_state {
    st3d_results *results;   /* the JSON being built */
    const st3d_dataset *ds;  /* for video ids and class names */
    int64_t done, total;     /* videos */
    int64_t clips;           /* clips so far */
    double t0, last;         /* start, last progress line */
    int tty;                 /* stderr is a terminal */
    int quiet;               /* no progress (a rank other than 0) */
    st3d_error err;          /* a failure inside the callback */
} test_state;

static int on_video(const st3d_video_scores *v, void *user) {
    test_state *s = user;
    if (st3d_results_add(s->results, s->ds, v, &s->err) != 0) return 1;
    s->done++;
    s->clips += v->n_clips;
    double now = st3d_now();
    if (!s->quiet && (now - s->last >= (s->tty ? 0.2 : 10.0) || s->done == s->total)) {
        s->last = now;
        double el = now - s->t0, rate = el > 0 ? s->clips / el : 0.0;
        double eta = s->done ? el / s->done * (double)(s->total - s->done) : 0.0;
        fprintf(stderr, "%stest %lld/%lld videos  %.2f clips/s  ETA %d:%02d%s", s->tty ? "\r" : "",
                (long long)s->done, (long long)s->total, rate, (int)eta / 60, (int)eta % 60,
                s->tty && s->done < s->total ? "" : "\n");
        fflush(stderr);
    }
    return 0;
}

int cmd_test(int argc, char **argv) {
    train_opts o;
    int rc = train_opts_parse(argc, argv, 1, &o);
    if (rc != 0) return rc < 0 ? 0 : rc;
    st3d_dataset *ds = NULL;
    st3d_model *m = NULL;
    st3d_loader *L = NULL;
    st3d_exec *e = NULL;
    test_state s = {.tty = isatty(2)};
    int agreed = 0; /* rc is every rank's (not this rank's failure) */
    st3d_error err = {0};
    if (train_opts_join(&o) != 0) {
        train_opts_free(&o);
        return 1;
    }
    int main_rank = st3d_dist_rank(o.dist) == 0;
    rc = test_opts_open(&o, &ds, &m);
    if (rc == 0) cli_model_for_inference(&o.model, m);
    if (rc != 0) goto out;
    /* get_inference_utils: TemporalSubsampling + SlidingWindow, Resize +
     * CenterCrop, or Resize alone with --inference_crop nocrop */
    st3d_loader_params lp = o.loader;
    lp.t_crop = ST3D_TCROP_SLIDING;
    lp.window_stride = o.inference_stride;
    lp.crop = o.inference_crop == 1 ? ST3D_SCROP_NONE : ST3D_SCROP_CENTER;
    lp.hflip = 0;
    lp.colorjitter = 0;
    lp.shuffle = 0;
    if (o.inference_batch_size > 0) lp.batch_size = o.inference_batch_size;
    lp.shard_index = st3d_dist_rank(o.dist);
    lp.shard_count = st3d_dist_size(o.dist);
    lp.shard_no_pad = 1;
    rc = 1;
    if (!(L = st3d_loader_new(ds, &lp, &err)) || !(e = st3d_exec_new(m, &err)) ||
        (st3d_exec_set_winograd(e, o.model.winograd), 0) ||
        !(s.results = st3d_results_new(o.output_topk, !o.inference_no_average, &err)))
        goto fail;
    s.ds = ds;
    s.total = (st3d_dataset_size(ds) - lp.shard_index + lp.shard_count - 1) / lp.shard_count;
    s.quiet = !main_rank;
    s.t0 = s.last = st3d_now();
    if (st3d_predict(e, m, L, on_video, &s, &err) != 0) {
        if (s.err.code != ST3D_OK) err = s.err;
        goto fail;
    }
    char msg[1024];
    while (st3d_loader_pop_message(L, msg, sizeof msg)) fprintf(stderr, "st3d: warning: %s\n", msg);
    static const char *const names[] = {"train", "val", "test"};
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", o.result_path, names[o.inference_subset]);
    st3d_loader_stats ls;
    st3d_loader_get_stats(L, &ls);
    double counts[3] = {(double)s.done, (double)s.clips, (double)ls.n_skipped_total};
    st3d_dist_set_timeout(o.dist, 0); /* ranks finish their shares far apart */
    if (st3d_results_gather(s.results, o.dist, &err) != 0 ||
        st3d_dist_allreduce_f64(o.dist, counts, 3, &err) != 0)
        goto fail;
    if (main_rank) {
        if (st3d_results_write(s.results, path, &err) != 0) goto fail;
        printf("%s: %.0f videos, %.0f clips, %.0f skipped\n", path, counts[0], counts[1], counts[2]);
    }
    rc = counts[2] > 0 ? 1 : 0;
    agreed = 1;
    goto out;
fail:
    rc = cli_error(&err);
out:
    st3d_results_free(s.results);
    st3d_exec_free(e);
    st3d_loader_free(L);
    st3d_model_free(m);
    st3d_dataset_free(ds);
    train_opts_free(&o);
    return cli_dist_end(o.dist, rc, agreed);
}

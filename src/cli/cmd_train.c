/*
 * cmd_train.c - `st3d train`: the original main.py's training run (Hara et
 * al., Section 3.3), with opts.py's options and defaults ('-' or '_').
 *
 * The command only parses, checks and reports; the work is the library's:
 * st3d_dataset and st3d_loader feed clips (training: --train-t-crop, the
 * --train-crop family, flips, colour jitter; validation: --n-val-samples
 * clips per video spread evenly, center crop, as get_validation_data), and
 * st3d_trainer runs epochs of SGD and validation, the schedule and the
 * checkpoints.  What a run leaves in --result-path, as the original's:
 *   opts.json                    every option's value
 *   train.log, train_batch.log,  the Logger files (tab-separated, header row)
 *   val.log
 *   save_<epoch>.safetensors     every --checkpoint epochs and at the end
 *                                (weights, momentum, schedule, epoch); with
 *                                --save-format pth save_<epoch>.pth, what
 *                                main.py's save_checkpoint writes
 * --resume-path continues a run from such a checkpoint exactly, or from a
 * .pth of the original main.py as its resume does.
 *
 * Under mpirun (or with --distributed) every rank trains on its share of
 * each epoch (DistributedSampler's), --batch-size clips per rank as the
 * original's; rank 0 alone shows progress and writes logs and checkpoints.
 */
#include "cli.h"
#include "train_opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Progress of one epoch on stderr: a redrawn bar on a terminal, a plain
 * line every few seconds otherwise. */
typedef struct progress_state {
    int tty;               /* stderr is a terminal */
    double last;           /* time of the last line / redraw */
    st3d_logger *batch_log;/* train_batch.log, a row per step */
} progress_state;

static int on_step(const st3d_step_report *r, void *user) {
    progress_state *ps = user;
    if (!r->validation && ps->batch_log) {
        /* train_epoch's batch_logger: epoch, batch, iter, loss, acc, lr */
        double row[6] = {(double)r->epoch, (double)r->batch, (double)r->iteration, r->loss, r->acc, r->lr};
        static const int ints[6] = {1, 1, 1, 0, 0, 0};
        st3d_error err = {0};
        if (st3d_logger_log(ps->batch_log, row, ints, &err) != 0) return cli_error(&err);
    }
    double now = r->seconds; /* from this epoch's start */
    if (r->batch == 1) ps->last = -1e9;
    int last_batch = r->batch >= r->n_batches;
    if (!last_batch && now - ps->last < (ps->tty ? 0.2 : 10.0)) return 0;
    ps->last = now;
    double rate = r->seconds > 0 ? r->epoch_clips / r->seconds : 0.0;
    double per_batch = r->batch ? r->seconds / (double)r->batch : 0.0;
    double eta = per_batch * (double)(r->n_batches - r->batch);
    char bar[32];
    int width = 20, fill = r->n_batches ? (int)(width * r->batch / r->n_batches) : width;
    if (fill > width) fill = width;
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "%s%s %3lld [%s] %lld/%lld loss %.4f acc %.3f  %.2f clips/s  data %2.0f%%  ETA %d:%02d%s",
            ps->tty ? "\r" : "", r->validation ? "val  " : "train", (long long)r->epoch, bar,
            (long long)r->batch, (long long)r->n_batches, r->mean_loss, r->mean_acc, rate,
            r->seconds > 0 ? 100.0 * r->data_seconds / r->seconds : 0.0, (int)eta / 60, (int)eta % 60,
            r->skipped ? " (skipped videos)" : "");
    if (!ps->tty || last_batch) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

/* The loader of one subset with the run's transforms: this rank's share. */
static st3d_loader *open_loader(const train_opts *o, const st3d_dataset *ds, int validation) {
    st3d_loader_params lp = o->loader;
    lp.shard_index = st3d_dist_rank(o->dist);
    lp.shard_count = st3d_dist_size(o->dist);
    lp.shard_no_pad = validation; /* every validation video once, as one process */
    if (validation) {
        /* get_validation_data: TemporalEvenCrop(n_val_samples) + Resize + CenterCrop */
        lp.t_crop = ST3D_TCROP_EVEN;
        lp.crop = ST3D_SCROP_CENTER;
        lp.hflip = 0;
        lp.colorjitter = 0;
        lp.shuffle = 0;
    }
    st3d_error err = {0};
    st3d_loader *L = st3d_loader_new(ds, &lp, &err);
    if (!L) cli_error(&err);
    return L;
}

static void print_skips(st3d_loader *L) {
    char msg[1024];
    while (L && st3d_loader_pop_message(L, msg, sizeof msg)) fprintf(stderr, "\nst3d: warning: %s\n", msg);
}

/* What the gradient all-reduce cost this run, per training step. */
static void print_comm(st3d_dist *d, int64_t steps) {
    st3d_dist_stats ds;
    st3d_dist_get_stats(d, &ds);
    if (steps <= 0 || ds.n_started == 0) return;
    double mib = (double)ds.n_reduced_floats * sizeof(float) / 1048576.0 / (double)steps;
    int p = st3d_dist_size(d);
    fprintf(stderr, "all-reduce per step: %.1f MiB of gradients in %.1f buckets, %.1f MiB sent per rank "
            "(ring: 2(p-1)/p of it); waiting after the backward %.1f ms; other collectives %.1f ms\n",
            mib, (double)ds.n_started / (double)steps, 2.0 * (p - 1) / p * mib,
            1e3 * ds.wait_seconds / (double)steps, 1e3 * ds.blocking_seconds / (double)steps);
}

/* Logs and checkpoints of an epoch, and the run's loop (main.py's main_worker). */
static int run(train_opts *o, st3d_model *m, st3d_dataset *train_ds, st3d_dataset *val_ds) {
    st3d_error err = {0};
    progress_state ps = {.tty = isatty(2)};
    st3d_trainer_params tp = o->trainer;
    int main_rank = st3d_dist_rank(o->dist) == 0;
    tp.on_step = main_rank ? on_step : NULL;
    tp.user = &ps;
    tp.dist = o->dist;
    int rc = 1;
    st3d_loader *train_l = NULL, *val_l = NULL;
    st3d_logger *train_log = NULL, *batch_log = NULL, *val_log = NULL;
    st3d_trainer *t = st3d_trainer_new(m, &tp, &err);
    if (!t) return cli_error(&err);
    st3d_exec_set_winograd(st3d_trainer_exec(t), o->model.winograd); /* validation */
    int64_t begin = 1;
    if (o->resume_path) {
        int64_t done = 0;
        if (st3d_trainer_resume(t, o->resume_path, &done, &err) != 0) goto out_err;
        begin = done + 1;
        if (main_rank)
            fprintf(stderr, "resumed from %s: epoch %lld done, lr %g\n", o->resume_path, (long long)done,
                st3d_trainer_lr(t));
    }
    if (train_ds && !(train_l = open_loader(o, train_ds, 0))) goto out;
    if (val_ds && !(val_l = open_loader(o, val_ds, 1))) goto out;
    char path[4200];
    static const char *const tcols[] = {"epoch", "loss", "acc", "lr"};
    static const char *const bcols[] = {"epoch", "batch", "iter", "loss", "acc", "lr"};
    static const char *const vcols[] = {"epoch", "loss", "acc"};
    if (st3d_dist_size(o->dist) > 1 && main_rank)
        fprintf(stderr, "training on %d ranks, %d clips per rank and step%s\n", st3d_dist_size(o->dist),
                o->loader.batch_size, tp.sync_bn ? ", batch-norm statistics over all ranks" : "");
    int64_t it0 = st3d_trainer_iteration(t); /* steps before this run (resumed) */
    if (train_l && main_rank) {
        snprintf(path, sizeof path, "%s/train.log", o->result_path);
        if (!(train_log = st3d_logger_open(path, tcols, 4, begin, &err))) goto out_err;
        snprintf(path, sizeof path, "%s/train_batch.log", o->result_path);
        if (!(batch_log = st3d_logger_open(path, bcols, 6, begin, &err))) goto out_err;
        ps.batch_log = batch_log;
    }
    if (val_l && main_rank) {
        snprintf(path, sizeof path, "%s/val.log", o->result_path);
        if (!(val_log = st3d_logger_open(path, vcols, 3, begin, &err))) goto out_err;
    }
    for (int64_t epoch = begin; epoch <= o->n_epochs; epoch++) {
        st3d_epoch_result tr, vr;
        double val_loss = NAN;
        if (train_l) {
            if (st3d_trainer_train_epoch(t, train_l, epoch, &tr, &err) != 0) goto out_err;
            print_skips(train_l);
            double row[4] = {(double)epoch, tr.loss, tr.acc, tr.lr};
            static const int ints[4] = {1, 0, 0, 0};
            if (train_log && st3d_logger_log(train_log, row, ints, &err) != 0) goto out_err;
            if (main_rank)
                fprintf(stderr, "epoch %lld: %lld clips on %d rank%s in %.1f s, %.2f clips/s\n",
                        (long long)epoch, (long long)tr.clips, st3d_dist_size(o->dist),
                        st3d_dist_size(o->dist) > 1 ? "s" : "", tr.seconds,
                        tr.seconds > 0 ? (double)tr.clips / tr.seconds : 0.0);
        }
        if (val_l) {
            if (st3d_trainer_val_epoch(t, val_l, epoch, &vr, &err) != 0) goto out_err;
            print_skips(val_l);
            val_loss = vr.loss;
            double row[3] = {(double)epoch, vr.loss, vr.acc};
            static const int ints[3] = {1, 0, 0};
            if (val_log && st3d_logger_log(val_log, row, ints, &err) != 0) goto out_err;
        }
        if (train_l) {
            st3d_trainer_end_epoch(t, val_loss);
            if (main_rank && (epoch % o->checkpoint == 0 || epoch == o->n_epochs)) {
                snprintf(path, sizeof path, "%s/save_%lld.%s", o->result_path, (long long)epoch,
                         o->save_format ? "pth" : "safetensors");
                const char *extra[] = {"st3d.mean_dataset", o->mean_dataset, NULL};
                if (st3d_trainer_save(t, path, epoch, extra, &err) != 0) goto out_err;
                fprintf(stderr, "saved %s\n", path);
            }
        }
    }
    if (main_rank && st3d_dist_size(o->dist) > 1 && train_l) print_comm(o->dist, st3d_trainer_iteration(t) - it0);
    rc = 0;
    goto out;
out_err:
    fputc('\n', stderr);
    rc = cli_error(&err);
out:
    st3d_logger_close(train_log);
    st3d_logger_close(batch_log);
    st3d_logger_close(val_log);
    st3d_loader_free(train_l);
    st3d_loader_free(val_l);
    st3d_trainer_free(t);
    return rc;
}

int cmd_train(int argc, char **argv) {
    train_opts o;
    int rc = train_opts_parse(argc, argv, 0, &o);
    if (rc != 0) return rc < 0 ? 0 : rc; /* -1: --help was printed */
    if (train_opts_join(&o) != 0) return 1;
    st3d_dataset *train_ds = NULL, *val_ds = NULL;
    st3d_model *m = NULL;
    rc = train_opts_open(&o, &train_ds, &val_ds, &m);
    if (rc == 0) rc = run(&o, m, train_ds, val_ds);
    rc = cli_dist_end(o.dist, rc, 0);
    st3d_model_free(m);
    st3d_dataset_free(train_ds);
    st3d_dataset_free(val_ds);
    train_opts_free(&o);
    return rc;
}

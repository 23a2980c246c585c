/*
 * train_opts.c - `st3d train`'s options: one table gives each option its
 * kind, its target and its default as --help prints it, so that parsing,
 * the help text and opts.json cannot disagree.  Names and defaults are the
 * original opts.py's; network options are model_opts.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include "train_opts.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum opt_kind { OPT_INT, OPT_FLOAT, OPT_DOUBLE, OPT_STR, OPT_FLAG, OPT_CHOICE } opt_kind;

enum { TRAIN = 1, TEST = 2, BOTH = 3 };

/* One option of the table. */
typedef struct opt_def {
    int cmds;             /* TRAIN, TEST or BOTH: the commands that take it */
    const char *name;     /* kebab-case, without "--" */
    opt_kind kind;        /* how its value is read */
    size_t offset;        /* where it goes in train_opts */
    const char *choices;  /* OPT_CHOICE: "a|b|c" (the index is stored) */
    const char *help;     /* one line, with the default */
} opt_def;

#define OFF(field) offsetof(train_opts, field)
static const opt_def OPTS[] = {
    {BOTH, "video-path", OPT_STR, OFF(video_path), NULL, "root of the videos or frame folders"},
    {BOTH, "annotation-path", OPT_STR, OFF(annotation_path), NULL, "annotation JSON (st3d make-annotations)"},
    {BOTH, "result-path", OPT_STR, OFF(result_path), NULL, "where logs and checkpoints go (results)"},
    {BOTH, "dataset", OPT_STR, OFF(dataset), NULL, "kinetics|activitynet|ucf101|hmdb51|mit (kinetics)"},
    {BOTH, "sample-size", OPT_INT, OFF(loader.sample_size), NULL, "height and width of clips (112)"},
    {BOTH, "sample-duration", OPT_INT, OFF(loader.sample_duration), NULL, "frames per clip (16)"},
    {BOTH, "sample-t-stride", OPT_INT, OFF(loader.sample_t_stride), NULL, "temporal stride of clips (1)"},
    {TRAIN, "train-crop", OPT_CHOICE, OFF(loader.crop), "random|corner|center", "spatial crop in training (random)"},
    {TRAIN, "train-crop-min-scale", OPT_FLOAT, OFF(loader.train_crop_min_scale), NULL, "random crop: min area (0.25)"},
    {TRAIN, "train-crop-min-ratio", OPT_FLOAT, OFF(loader.train_crop_min_ratio), NULL, "random crop: min aspect (0.75)"},
    {TRAIN, "no-hflip", OPT_FLAG, OFF(loader.hflip), NULL, "no horizontal flips in training"},
    {TRAIN, "colorjitter", OPT_FLAG, OFF(loader.colorjitter), NULL, "ColorJitter in training (off)"},
    {BOTH, "shuffle-frames", OPT_FLAG, OFF(loader.shuffle_frames), NULL, "frames of each clip in a random order (2D control)"},
    {TRAIN, "train-t-crop", OPT_CHOICE, OFF(loader.t_crop), "random|center", "temporal crop in training (random)"},
    {BOTH, "value-scale", OPT_FLOAT, OFF(loader.value_scale), NULL, "1: pixels in [0,1], 255: [0,255] (1)"},
    {BOTH, "mean-dataset", OPT_STR, OFF(mean_dataset), NULL, "kinetics|activitynet|0.5 (kinetics)"},
    {BOTH, "no-mean-norm", OPT_FLAG, OFF(no_mean_norm), NULL, "do not subtract the mean"},
    {BOTH, "no-std-norm", OPT_FLAG, OFF(no_std_norm), NULL, "do not divide by the std"},
    {BOTH, "batch-size", OPT_INT, OFF(loader.batch_size), NULL, "clips per step (128)"},
    {TRAIN, "n-epochs", OPT_INT, OFF(n_epochs), NULL, "epochs to train (200)"},
    {TRAIN, "learning-rate", OPT_DOUBLE, OFF(trainer.lr), NULL, "initial learning rate (0.1)"},
    {TRAIN, "momentum", OPT_FLOAT, OFF(trainer.sgd.momentum), NULL, "SGD momentum (0.9)"},
    {TRAIN, "dampening", OPT_FLOAT, OFF(trainer.sgd.dampening), NULL, "SGD dampening (0.0)"},
    {TRAIN, "weight-decay", OPT_FLOAT, OFF(trainer.sgd.weight_decay), NULL, "L2 weight decay (1e-3)"},
    {TRAIN, "nesterov", OPT_FLAG, OFF(trainer.sgd.nesterov), NULL, "Nesterov momentum"},
    {TRAIN, "lr-scheduler", OPT_CHOICE, OFF(trainer.sched.kind), "multistep|plateau", "learning-rate schedule (multistep)"},
    {TRAIN, "multistep-milestones", OPT_STR, 0, NULL, "epochs where lr *= 0.1 (50 100 150)"},
    {TRAIN, "plateau-patience", OPT_INT, OFF(trainer.sched.patience), NULL, "plateau: epochs without improvement (10)"},
    {TRAIN, "n-val-samples", OPT_INT, OFF(loader.n_clips), NULL, "clips per validation video (3)"},
    {TRAIN, "no-train", OPT_FLAG, OFF(no_train), NULL, "skip training"},
    {TRAIN, "no-val", OPT_FLAG, OFF(no_val), NULL, "skip validation"},
    {TRAIN, "checkpoint", OPT_INT, OFF(checkpoint), NULL, "save every this many epochs (10)"},
    {TRAIN, "save-format", OPT_CHOICE, OFF(save_format), "safetensors|pth",
     "checkpoints as safetensors, or .pth as main.py's (safetensors)"},
    {BOTH, "resume-path", OPT_STR, OFF(resume_path), NULL, "continue from a checkpoint (st3d train's or main.py's .pth)"},
    {TRAIN, "ft-begin-module", OPT_STR, 0, NULL, "fine-tuning: train from this module on, e.g. layer4 ('')"},
    {BOTH, "n-threads", OPT_INT, OFF(loader.n_threads), NULL, "loader worker threads (4)"},
    {BOTH, "manual-seed", OPT_INT, OFF(seed), NULL, "seed of initialization and sampling (1)"},
    {BOTH, "distributed", OPT_FLAG, OFF(distributed), NULL, "join an MPI job (automatic under mpirun / srun)"},
    {TRAIN, "sync-bn", OPT_FLAG, OFF(trainer.sync_bn), NULL, "batch-norm statistics over all ranks (SyncBatchNorm)"},
    {TRAIN, "bucket-cap-mb", OPT_DOUBLE, OFF(trainer.bucket_cap_mb), NULL, "gradient all-reduce bucket size, MiB (25)"},
    {TRAIN, "no-overlap", OPT_FLAG, OFF(trainer.no_overlap), NULL, "all-reduce after the backward, not during it"},
    {TRAIN, "check-replicas", OPT_FLAG, OFF(trainer.check_replicas), NULL, "check every rank's weights equal rank 0's after each step"},
    {BOTH, "dist-timeout", OPT_DOUBLE, OFF(dist_timeout), NULL, "stop the job when ranks wait this long, s (600)"},
    {TEST, "inference-subset", OPT_CHOICE, OFF(inference_subset), "train|val|test", "subset to run (val)"},
    {TEST, "inference-stride", OPT_INT, OFF(inference_stride), NULL, "frames between clips (16)"},
    {TEST, "inference-crop", OPT_CHOICE, OFF(inference_crop), "center|nocrop", "center crop, or nocrop: resize only (center)"},
    {TEST, "inference-no-average", OPT_FLAG, OFF(inference_no_average), NULL, "scores per clip, not per video"},
    {TEST, "output-topk", OPT_INT, OFF(output_topk), NULL, "labels kept per result (5)"},
    {TEST, "inference-batch-size", OPT_INT, OFF(inference_batch_size), NULL, "clips per forward (0: --batch-size)"},
};
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

static void usage(int testing) {
    if (testing)
        printf("usage: st3d test --video-path DIR --annotation-path FILE --resume-path CKPT [options]\n\n"
               "Classifies every video of a subset clip by clip, as the original main.py\n"
               "--inference: SlidingWindow clips, softmax averaged per video, written to\n"
               "RESULT_PATH/<subset>.json (read it with st3d eval).  Options as opts.py.\n\n");
    else
        printf("usage: st3d train --video-path DIR --annotation-path FILE --result-path DIR [options]\n\n"
               "Trains (or fine-tunes) a network as the original main.py; options and defaults as\n"
               "its opts.py ('-' or '_').\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[64];
        const opt_def *d = &OPTS[i];
        if (!(d->cmds & (testing ? TEST : TRAIN))) continue;
        snprintf(left, sizeof left, "--%s%s%s", d->name,
                 d->kind == OPT_FLAG ? "" : " ",
                 d->kind == OPT_FLAG ? "" : d->kind == OPT_CHOICE ? d->choices
                                          : d->kind == OPT_STR ? "S" : d->kind == OPT_INT ? "N" : "F");
        printf("  %-34s %s\n", left, d->help);
    }
    printf("\n");
    cli_model_usage(stdout);
    printf("  (--pretrain-path W --n-pretrain-classes K fine-tunes from W; --threads sets compute threads)\n");
}

static void defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->loader = st3d_loader_default_params();
    o->trainer = st3d_trainer_default_params();
    o->result_path = "results";
    o->dist_timeout = 600.0;
    o->dataset = "kinetics";
    o->mean_dataset = "kinetics";
    o->n_epochs = 200;
    o->checkpoint = 10;
    o->seed = 1;
    o->inference_subset = 1;
    o->inference_stride = 16;
    o->output_topk = 5;
    snprintf(o->milestones_text, sizeof o->milestones_text, "50 100 150");
}

/* The idx-th name of a "a|b|c" choice list into out ("" when out of range). */
static void choice_name(const char *choices, int idx, char *out, size_t cap) {
    const char *c = choices;
    for (int k = 0; k < idx && c; k++) {
        c = strchr(c, '|');
        if (c) c++;
    }
    const char *bar = c ? strchr(c, '|') : NULL;
    snprintf(out, cap, "%.*s", c ? (int)(bar ? (size_t)(bar - c) : strlen(c)) : 0, c ? c : "");
}

/* Reads argv[*i]'s value into the table's target. */
static int set_opt(train_opts *o, const opt_def *d, const char *a, const char *v, int *consumed) {
    char *base = (char *)o;
    *consumed = d->kind == OPT_FLAG ? 1 : 2;
    if (d->kind != OPT_FLAG && !v) return cli_errorf("%s needs a value", a);
    if (!strcmp(d->name, "multistep-milestones")) {
        snprintf(o->milestones_text, sizeof o->milestones_text, "%s", v);
        return 0;
    }
    if (!strcmp(d->name, "ft-begin-module")) {
        if (strlen(v) >= sizeof o->trainer.ft_begin_module)
            return cli_errorf("--ft-begin-module: '%s' is too long", v);
        snprintf(o->trainer.ft_begin_module, sizeof o->trainer.ft_begin_module, "%s", v);
        return 0;
    }
    void *dst = base + d->offset;
    switch (d->kind) {
    case OPT_INT: return cli_parse_int(a, v, dst) ? 1 : 0;
    case OPT_FLOAT: return cli_parse_float(a, v, dst) ? 1 : 0;
    case OPT_DOUBLE: {
        char *end;
        errno = 0;
        *(double *)dst = strtod(v, &end);
        if (errno || end == v || *end) return cli_errorf("%s: expected a number, got '%s'", a, v);
        return 0;
    }
    case OPT_STR: *(const char **)dst = v; return 0;
    case OPT_FLAG:
        /* --no-hflip turns a default-on field off; the others turn on */
        *(int *)dst = !strcmp(d->name, "no-hflip") ? 0 : 1;
        return 0;
    case OPT_CHOICE: {
        char name[32];
        for (int idx = 0; choice_name(d->choices, idx, name, sizeof name), name[0]; idx++)
            if (!strcmp(name, v)) {
                *(int *)dst = idx;
                return 0;
            }
        return cli_errorf("--%s: '%s' is not one of %s", d->name, v, d->choices);
    }
    }
    return 1;
}

int train_opts_parse(int argc, char **argv, int testing, train_opts *o) {
    defaults(o);
    o->testing = testing;
    if (cli_model_begin(argc, argv, &o->model) != 0) return 1;
    for (int i = 1; i < argc;) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(testing);
            return -1;
        }
        int r = cli_model_opt(argc, argv, &i, &o->model);
        if (r < 0) return 1;
        if (r > 0) continue;
        size_t k = 0;
        while (k < N_OPTS && !(cli_opt_is(a, OPTS[k].name) && (OPTS[k].cmds & (testing ? TEST : TRAIN)))) k++;
        if (k == N_OPTS)
            return cli_errorf("%s: unknown option '%s' (see st3d %s --help)", argv[0], a, argv[0]);
        int consumed;
        if (set_opt(o, &OPTS[k], a, v, &consumed) != 0) return 1;
        i += consumed;
    }
    st3d_error err = {0};
    if (st3d_parse_milestones(o->milestones_text, &o->trainer.sched, &err) != 0) return cli_error(&err);
    /* --train-t-crop indexes random|center, which are the enum's first two */
    o->loader.seed = (uint64_t)(int64_t)o->seed;
    o->loader.mean_norm = !o->no_mean_norm;
    o->loader.std_norm = !o->no_std_norm;
    if (st3d_mean_std(o->mean_dataset, o->loader.value_scale, o->loader.mean, o->loader.std, &err) != 0)
        return cli_errorf("--mean-dataset '%s': %s", o->mean_dataset, err.msg);
    struct { const char *name; int v, min; } pos[] = {
        {"--sample-size", o->loader.sample_size, 8}, {"--sample-duration", o->loader.sample_duration, 1},
        {"--sample-t-stride", o->loader.sample_t_stride, 1}, {"--batch-size", o->loader.batch_size, 1},
        {"--n-epochs", o->n_epochs, 1}, {"--checkpoint", o->checkpoint, 1},
        {"--n-val-samples", o->loader.n_clips, 1}, {"--n-threads", o->loader.n_threads, 1},
        {"--plateau-patience", o->trainer.sched.patience, 0}, {"--inference-stride", o->inference_stride, 1},
        {"--output-topk", o->output_topk, 1}, {"--inference-batch-size", o->inference_batch_size, 0}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v < pos[i].min)
            return cli_errorf("%s %d: must be at least %d", pos[i].name, pos[i].v, pos[i].min);
    if (!(o->trainer.lr > 0.0)) return cli_errorf("--learning-rate %g: must be positive", o->trainer.lr);
    if (o->loader.train_crop_min_scale <= 0.0f || o->loader.train_crop_min_scale > 1.0f)
        return cli_errorf("--train-crop-min-scale %g: must be in (0, 1]", o->loader.train_crop_min_scale);
    if (o->loader.train_crop_min_ratio <= 0.0f || o->loader.train_crop_min_ratio > 1.0f)
        return cli_errorf("--train-crop-min-ratio %g: must be in (0, 1]", o->loader.train_crop_min_ratio);
    if (o->no_train && o->no_val) return cli_errorf("--no-train and --no-val together leave nothing to do");
    if (testing && !o->resume_path && !o->model.weights)
        return cli_errorf("--resume-path (a checkpoint of st3d train) or --weights is required");
    if (!o->annotation_path) return cli_errorf("--annotation-path is required");
    if (!o->video_path) return cli_errorf("--video-path is required");
    return 0;
}

/* The frames of the first readable sample must hold a --sample-size crop. */
static int check_frames(const train_opts *o, const st3d_dataset *ds) {
    st3d_sample_info s;
    if (st3d_dataset_size(ds) == 0 || st3d_dataset_sample(ds, 0, &s) != 0) return 0;
    struct stat st;
    if (stat(s.path, &st) != 0 || S_ISDIR(st.st_mode)) return 0; /* frame folders: the loader checks */
    st3d_error err = {0};
    st3d_video_params vp = st3d_video_default_params();
    vp.short_side = o->loader.video_short_side;
    st3d_video *v = st3d_video_open(s.path, &vp, &err);
    if (!v) return 0; /* unreadable: skipped later with a warning */
    const st3d_video_info *vi = st3d_video_get_info(v);
    int small = vi->width < o->loader.sample_size || vi->height < o->loader.sample_size;
    int w = vi->width, h = vi->height;
    st3d_video_free(v);
    if (small)
        return cli_errorf("--sample-size %d: larger than the frames of %s (%dx%d)", o->loader.sample_size,
                          s.path, w, h);
    return 0;
}

static int write_opts_json(const train_opts *o) {
    json_t *j = json_object();
    const char *base = (const char *)o;
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_def *d = &OPTS[i];
        char key[64];
        snprintf(key, sizeof key, "%s", d->name);
        for (char *c = key; *c; c++)
            if (*c == '-') *c = '_'; /* opts.json keys as opts.py's attributes */
        json_t *val = NULL;
        if (!strcmp(d->name, "multistep-milestones")) {
            val = json_array();
            for (int k = 0; k < o->trainer.sched.n_milestones; k++)
                json_array_append_new(val, json_integer(o->trainer.sched.milestones[k]));
        } else if (!strcmp(d->name, "ft-begin-module")) {
            val = json_string(o->trainer.ft_begin_module);
        } else if (!strcmp(d->name, "no-hflip")) {
            val = json_boolean(!o->loader.hflip);
        } else {
            const void *src = base + d->offset;
            switch (d->kind) {
            case OPT_INT: val = json_integer(*(const int *)src); break;
            case OPT_FLOAT: val = json_real(*(const float *)src); break;
            case OPT_DOUBLE: val = json_real(*(const double *)src); break;
            case OPT_STR: val = *(const char *const *)src ? json_string(*(const char *const *)src) : json_null(); break;
            case OPT_FLAG: val = json_boolean(*(const int *)src); break;
            case OPT_CHOICE: {
                char name[32];
                choice_name(d->choices, *(const int *)src, name, sizeof name);
                val = json_string(name);
                break;
            }
            }
        }
        json_object_set_new(j, key, val);
    }
    const st3d_model_params *p = &o->model.p;
    json_object_set_new(j, "model", json_string(p->model));
    json_object_set_new(j, "model_depth", json_integer(p->model_depth));
    json_object_set_new(j, "n_classes", json_integer(p->n_classes));
    json_object_set_new(j, "n_input_channels", json_integer(p->n_input_channels));
    json_object_set_new(j, "resnet_shortcut", json_stringn(&p->resnet_shortcut, 1));
    json_object_set_new(j, "conv1_t_size", json_integer(p->conv1_t_size));
    json_object_set_new(j, "conv1_t_stride", json_integer(p->conv1_t_stride));
    json_object_set_new(j, "no_max_pool", json_boolean(p->no_max_pool));
    json_object_set_new(j, "resnet_widen_factor", json_real(p->resnet_widen_factor));
    json_object_set_new(j, "wide_resnet_k", json_integer(p->wide_resnet_k));
    json_object_set_new(j, "resnext_cardinality", json_integer(p->resnext_cardinality));
    json_object_set_new(j, "pretrain_path", o->model.pretrain ? json_string(o->model.pretrain) : json_null());
    json_object_set_new(j, "n_pretrain_classes", json_integer(o->model.n_pretrain_classes > 0 ? o->model.n_pretrain_classes : 0));
    json_object_set_new(j, "threads", json_integer(st3d_get_threads()));
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/opts.json", o->result_path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) return cli_errorf("%s: cannot write", path);
    return 0;
}

/* --annotation-path must exist and --video-path be a folder. */
static int check_paths(const train_opts *o) {
    struct stat st;
    if (stat(o->annotation_path, &st) != 0)
        return cli_errorf("--annotation-path %s: %s", o->annotation_path, strerror(errno));
    if (stat(o->video_path, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_errorf("--video-path %s: not a folder", o->video_path);
    return 0;
}

static int make_result_dir(const train_opts *o) {
    if (mkdir(o->result_path, 0777) != 0 && errno != EEXIST)
        return cli_errorf("--result-path %s: %s", o->result_path, strerror(errno));
    return 0;
}

int train_opts_open(train_opts *o, st3d_dataset **train_ds, st3d_dataset **val_ds, st3d_model **m) {
    st3d_error err = {0};
    *train_ds = *val_ds = NULL;
    *m = NULL;
    if (check_paths(o) != 0) return 1;
    if (!o->no_train && !(*train_ds = st3d_dataset_open(o->annotation_path, o->video_path, "training", &err)))
        return cli_errorf("--annotation-path %s", err.msg);
    if (!o->no_val && !(*val_ds = st3d_dataset_open(o->annotation_path, o->video_path, "validation", &err)))
        return cli_errorf("--annotation-path %s", err.msg);
    st3d_dataset *any = *train_ds ? *train_ds : *val_ds;
    for (int k = 0; k < 2; k++) {
        st3d_dataset *ds = k ? *val_ds : *train_ds;
        for (int64_t i = 0; ds && i < st3d_dataset_n_warnings(ds); i++)
            fprintf(stderr, "st3d: warning: %s\n", st3d_dataset_warning(ds, i));
        if (ds && st3d_dataset_size(ds) == 0)
            return cli_errorf("--annotation-path %s: no %s video found under --video-path %s", o->annotation_path,
                              k ? "validation" : "training", o->video_path);
    }
    /* the network: shaped as the checkpoint when resuming without --model */
    if (o->resume_path && !o->model.map) {
        st3d_tensor_map *map = NULL;
        if (st3d_weights_read(o->resume_path, &map, &err) != 0) return cli_errorf("--resume-path %s", err.msg);
        int ok = st3d_model_params_from_weights(map, &o->model.p, &err);
        st3d_tensor_map_free(map);
        if (ok != 0) return cli_errorf("--resume-path %s: %s", o->resume_path, err.msg);
    }
    int64_t n_ann = st3d_dataset_n_classes(any);
    if (n_ann != o->model.p.n_classes)
        return cli_errorf("--n-classes %d: %s has %lld classes", o->model.p.n_classes, o->annotation_path,
                          (long long)n_ann);
    if (check_frames(o, any) != 0) return 1;
    if (o->model.threads) st3d_set_threads(o->model.threads);
    if (cli_model_open(&o->model, (uint64_t)o->seed, m) != 0) return 1;
    if (make_result_dir(o) != 0) return 1;
    return st3d_dist_rank(o->dist) == 0 ? write_opts_json(o) : 0;
}

int train_opts_join(train_opts *o) {
    return cli_dist_join(o->distributed, o->dist_timeout, o->model.threads != 0, &o->dist);
}

void train_opts_free(train_opts *o) { cli_model_end(&o->model); }

int test_opts_open(train_opts *o, st3d_dataset **ds, st3d_model **m) {
    static const char *const subsets[] = {"training", "validation", "testing"};
    st3d_error err = {0};
    *ds = NULL;
    *m = NULL;
    if (check_paths(o) != 0) return 1;
    if (o->resume_path) {
        /* the network the checkpoint describes, with its weights */
        cli_model_end(&o->model);
        if (st3d_weights_read(o->resume_path, &o->model.map, &err) != 0)
            return cli_errorf("--resume-path %s", err.msg);
        if (st3d_model_params_from_weights(o->model.map, &o->model.p, &err) != 0)
            return cli_errorf("--resume-path %s: %s", o->resume_path, err.msg);
        o->model.weights = o->resume_path;
        o->model.pretrain = NULL;
    }
    const char *subset = subsets[o->inference_subset];
    if (!(*ds = st3d_dataset_open(o->annotation_path, o->video_path, subset, &err))) return cli_error(&err);
    for (int64_t i = 0; i < st3d_dataset_n_warnings(*ds); i++)
        fprintf(stderr, "st3d: warning: %s\n", st3d_dataset_warning(*ds, i));
    if (st3d_dataset_size(*ds) == 0)
        return cli_errorf("--inference-subset %s: no %s video of %s found under %s",
                          subset[0] == 't' && subset[1] == 'r' ? "train" : subset[0] == 'v' ? "val" : "test",
                          subset, o->annotation_path, o->video_path);
    int64_t n_ann = st3d_dataset_n_classes(*ds);
    if (n_ann != o->model.p.n_classes)
        return cli_errorf("%s: the network has %d classes, %s has %lld",
                          o->resume_path ? o->resume_path : o->model.weights, o->model.p.n_classes,
                          o->annotation_path, (long long)n_ann);
    if (check_frames(o, *ds) != 0) return 1;
    if (o->model.threads) st3d_set_threads(o->model.threads);
    if (cli_model_open(&o->model, (uint64_t)o->seed, m) != 0) return 1;
    return make_result_dir(o);
}

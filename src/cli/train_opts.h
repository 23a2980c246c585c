/*
 * train_opts.h - the options of `st3d train`, as the original opts.py
 * (names in kebab-case, underscores accepted, the same defaults), parsed
 * and checked before any work starts.
 */
#ifndef ST3D_CLI_TRAIN_OPTS_H
#define ST3D_CLI_TRAIN_OPTS_H

#include "cli.h"

typedef struct train_opts {
    cli_model model;                /* network options, --pretrain-path, --threads */
    st3d_loader_params loader;      /* clips: sizes, crops, flips, normalization, workers */
    st3d_trainer_params trainer;    /* SGD, schedule, --ft-begin-module */
    const char *video_path;         /* --video-path */
    const char *annotation_path;    /* --annotation-path */
    const char *result_path;        /* --result-path */
    const char *dataset;            /* --dataset */
    const char *mean_dataset;       /* --mean-dataset */
    const char *resume_path;        /* --resume-path */
    int n_epochs;                   /* --n-epochs */
    int checkpoint;                 /* --checkpoint: save every this many epochs */
    int save_format;                /* --save-format: 0 safetensors, 1 pth */
    int no_train, no_val;           /* --no-train, --no-val */
    int no_mean_norm, no_std_norm;  /* --no-mean-norm, --no-std-norm */
    int seed;                       /* --manual-seed */
    char milestones_text[256];      /* --multistep-milestones as given */
    /* st3d test (the original's --inference) */
    int testing;                    /* 1: parsing for st3d test */
    int inference_subset;           /* --inference-subset: 0 train, 1 val, 2 test */
    int inference_stride;           /* --inference-stride (16) */
    int inference_crop;             /* --inference-crop: 0 center, 1 nocrop */
    int inference_no_average;       /* --inference-no-average */
    int output_topk;                /* --output-topk (5) */
    int inference_batch_size;       /* --inference-batch-size (0: --batch-size) */
    /* across ranks (Open MPI) */
    int distributed;                /* --distributed (also automatic under mpirun / srun) */
    double dist_timeout;            /* --dist-timeout: seconds a rank waits for the others */
    st3d_dist *dist;                /* the job joined, or NULL (alone) */
} train_opts;

/* Parses argv for `st3d train` (testing 0) or `st3d test` (1); prints and
 * returns 1 on a bad option, -1 after --help, 0. */
int train_opts_parse(int argc, char **argv, int testing, train_opts *o);
/* Joins the MPI job when asked or launched by mpirun (o->dist); prints and
 * returns 1 on error.  Rank 0 alone writes opts.json, logs and checkpoints. */
int train_opts_join(train_opts *o);
/* Checks the options against the files (annotation, class count, frames),
 * opens the datasets (NULL for a subset not run) and the network (fresh,
 * fine-tuned from --pretrain-path, or shaped as --resume-path's), makes
 * --result-path and writes opts.json.  Prints and returns 1 on error. */
int train_opts_open(train_opts *o, st3d_dataset **train_ds, st3d_dataset **val_ds, st3d_model **m);
/* For st3d test: the --inference-subset dataset and the network of
 * --resume-path (or --weights). */
int test_opts_open(train_opts *o, st3d_dataset **ds, st3d_model **m);
void train_opts_free(train_opts *o);

#endif /* ST3D_CLI_TRAIN_OPTS_H */

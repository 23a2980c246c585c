/*
 * cli.h - shared pieces of the st3d command-line program: the subcommand
 * table, option parsing helpers and error printing.  Only the CLI prints
 * and exits; the library reports errors through st3d_error.
 */
#ifndef ST3D_CLI_H
#define ST3D_CLI_H

#include "st3d.h"

#include <stdio.h>

/* Each subcommand: argc/argv start at the subcommand's own name. */
typedef int (*cli_command_fn)(int argc, char **argv);

int cmd_forward(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train_steps(int argc, char **argv);
int cmd_train(int argc, char **argv); /* cmd_train.c, train_opts.c */
int cmd_test(int argc, char **argv);  /* cmd_test.c */
/* pretrained networks over many videos, streamed (cmd_classify.c) */
int cmd_classify(int argc, char **argv);
int cmd_features(int argc, char **argv);
/* video and data commands (cmd_video.c, cmd_loader.c, cmd_extract_frames.c,
 * cmd_make_annotations.c) */
int cmd_decode(int argc, char **argv);
int cmd_sample_clips(int argc, char **argv);
int cmd_loader_bench(int argc, char **argv);
int cmd_extract_frames(int argc, char **argv);
int cmd_make_annotations(int argc, char **argv);
/* built-in datasets (cmd_make_dataset.c) */
int cmd_make_dataset(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_convert(int argc, char **argv);
/* evaluation and figures (cmd_eval.c) */
int cmd_plot(int argc, char **argv);
int cmd_eval(int argc, char **argv);


/* Prints "st3d: <msg>" to stderr; returns 1 (the exit code). */
int cli_error(const st3d_error *err);
int cli_errorf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Option matching that accepts both '-' and '_' spellings, as in the
 * original opts.py ("--model_depth" and "--model-depth").  name is given
 * with dashes and without the leading "--".  Returns 1 on a match. */
int cli_opt_is(const char *arg, const char *name);
/* Parses an integer / float option value; on failure prints an error naming
 * the option and returns -1. */
int cli_parse_int(const char *opt, const char *s, int *out);
int cli_parse_float(const char *opt, const char *s, float *out);

/* Network options and weights of a command. */
typedef struct cli_model {
    st3d_model_params p;     /* the network (defaults, inferred, then options) */
    int threads;             /* --threads (0: all cores) */
    const char *weights;     /* --weights */
    const char *pretrain;    /* --pretrain-path */
    int n_pretrain_classes;  /* --n-pretrain-classes, -1 when not given */
    st3d_tensor_map *map;    /* the weights file's tensors, read by cli_model_begin */
    int winograd;            /* --conv auto (1, default) | direct (0): st3d_exec_set_winograd */
} cli_model;

/* Reads the weights file named by --weights / --pretrain-path, if any, and
 * when --model is absent takes the network it describes.  Prints and
 * returns 1 on error. */
int cli_model_begin(int argc, char **argv, cli_model *cm);
/* Consumes argv[*i] (and its value) when it is a network, weights or
 * --threads option: returns 1 (and advances *i), 0 when it is not one, -1
 * after printing an error for a bad or missing value. */
int cli_model_opt(int argc, char **argv, int *i, cli_model *cm);
/* 1 when a is a network option that takes no value (--no-max-pool ...). */
int cli_model_is_flag(const char *a);
/* Builds the network (parameters from seed) and loads the weights read by
 * cli_model_begin; prints and returns 1 on error. */
int cli_model_open(cli_model *cm, uint64_t seed, st3d_model **out);
/* For commands that only run the network: its weights stay in memory once
 * (st3d_model_keep_weights_source); cm's map must then outlive m. */
void cli_model_for_inference(cli_model *cm, st3d_model *m);
void cli_model_end(cli_model *cm);
void cli_model_usage(FILE *out);

/* Joins an MPI job (dist.c) when force (--distributed) or when an MPI
 * launcher started the process; *out stays NULL otherwise.  timeout_s < 0
 * keeps the default.  Prints and returns 1 on error. */
int cli_dist_join(int force, double timeout_s, int threads_given, st3d_dist **out);
/* Leaves the job and returns rc.  A non-zero rc stops every rank at once
 * (this rank failed and the others would wait for it), unless every_rank
 * says that all ranks return it (a result they agreed on). */
int cli_dist_end(st3d_dist *d, int rc, int every_rank);

/* Class names from a file: one per line, or the "labels" list of an
 * annotation JSON as the original code writes it (a path ending in .json).
 * A JSON array (jansson), or NULL after printing why. */
struct json_t;
struct json_t *cli_read_labels(const char *path);

#endif /* ST3D_CLI_H */

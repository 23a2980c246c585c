/*
 * main.c - entry point of the st3d program: finds the subcommand in the
 * table below and hands it the rest of the command line.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct command {
    const char *name;    /* as typed: "st3d forward ..." */
    cli_command_fn run;  /* returns the process exit code */
    const char *summary; /* one line for the usage text */
} command;

static const command COMMANDS[] = {
    {"init", cmd_init, "write freshly initialized weights (as the original code) to safetensors"},
    {"convert", cmd_convert, "any weights file (.pth, safetensors) to self-describing safetensors"},
    {"info", cmd_info, "print a network's layer table and parameter count, or a weights file's contents"},
    {"forward", cmd_forward, "eval-mode inference on a .npy batch: logits and features"},
    {"bench", cmd_bench, "time inference or training steps (clips/s, GFLOP/s)"},
    {"train", cmd_train, "train or fine-tune a network on videos as the original main.py (logs, checkpoints, resume)"},
    {"test", cmd_test, "classify every video of a subset clip by clip (main.py --inference): results JSON"},
    {"classify", cmd_classify, "label videos of any length, clip by clip and as a whole (streamed; shards, resumes)"},
    {"features", cmd_features, "pooled features per clip of videos of any length to .npy (streamed; shards, resumes)"},
    {"train-steps", cmd_train_steps, "run K SGD steps on one batch and save parameters, gradients, statistics"},
    {"decode", cmd_decode, "decode a video to raw RGB24 frames (with timestamps)"},
    {"sample-clips", cmd_sample_clips, "run the data loader and save its batches (.npy) and choices"},
    {"loader-bench", cmd_loader_bench, "measure the data loader's throughput (clips/s)"},
    {"extract-frames", cmd_extract_frames, "videos to folders of image_%05d.jpg frames, in parallel"},
    {"make-annotations", cmd_make_annotations, "build the annotation JSON of UCF-101, HMDB-51, Kinetics, ActivityNet"},
    {"make-dataset", cmd_make_dataset, "write a built-in dataset of real videos (motion: classes are motions), laid out as UCF-101"},
    {"plot", cmd_plot, "draw training and validation loss and accuracy per epoch from train.log / val.log"},
    {"eval", cmd_eval, "video-level top-1 / top-k and per-class accuracy of inference results, confusion matrix"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: st3d COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-18s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\n'st3d COMMAND --help' lists a command's options.\n");
}

/* The compute threads are libgomp's (Debian's oneDNN is built with GNU
 * OpenMP).  When a parallel region ends, its threads spin GOMP_SPINCOUNT
 * times before they sleep: 300,000 PAUSEs by default, milliseconds by
 * PAUSE's latency (an estimate; longer on Intel).  After each forward of `st3d
 * features` or a training step, that time is taken from the threads that
 * decode the next clips (waiting for clips went from 0.7 to 0.5 s per
 * 150 s of video here, bench/RESULTS.md); 10,000 still bridges the gaps
 * between the regions of one forward (st3d bench runs as fast).  libgomp
 * reads the variable once, as it loads, before main: so st3d sets it and
 * starts itself again, unless the user chose a policy. */
static void tune_openmp_spin(char **argv) {
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY")) return;
    /* the program's own path (not the link, which would rename the process
     * "exe" for ps and pkill); none when run through the dynamic loader */
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0 || n >= (ssize_t)sizeof path - 1) return;
    path[n] = 0;
    const char *base = strrchr(path, '/');
    if (!strncmp(base ? base + 1 : path, "ld-", 3)) return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0) return;
    execv(path, argv); /* returns only on failure: run with libgomp's default */
}

int main(int argc, char **argv) {
    tune_openmp_spin(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("st3d %s\n", st3d_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "st3d: unknown command '%s' (try 'st3d --help')\n", argv[1]);
    return 2;
}

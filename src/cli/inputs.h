/*
 * inputs.h - the CLI's file plumbing for commands that work through many
 * videos: folder listings, video names, folders made on demand, and the
 * input list of `st3d classify` / `st3d features` (files, folders searched
 * recursively, list files, standard input) with its shard and output names.
 */
#ifndef ST3D_CLI_INPUTS_H
#define ST3D_CLI_INPUTS_H

#include <stddef.h>
#include <stdint.h>

/* 1 when name (a file name) ends with ext, or, ext NULL, with a video
 * extension (.mp4 .avi .webm .mkv .mov ...); names starting with '.' are
 * never videos. */
int cli_is_video_name(const char *name, const char *ext);
/* Sorted entry names of dir (without those starting with '.'); NULL when
 * it cannot be read.  Free each name and the array. */
char **cli_list_dir(const char *dir, size_t *n);
/* mkdir -p (errors left to whoever then writes there). */
void cli_mkdirs(const char *path);
/* name without its last extension, into out. */
void cli_stem(const char *name, char *out, size_t cap);

/* One video of a run. */
typedef struct cli_input {
    char *path; /* the file to open */
    char *name; /* output name: relative path without extension (owned) */
} cli_input;

typedef struct cli_inputs {
    cli_input *v;   /* videos in order */
    int64_t n, cap; /* count, room */
} cli_inputs;

/* Adds what arg names: "-" (a list on standard input), a folder (its videos,
 * recursively, sorted), a video file, or any other file (a list: one path a
 * line, blank lines and lines starting with '#' skipped).  Listed paths are
 * taken relative to root when root is not NULL (the companion's
 * --video_root).  A path that does not exist is kept (it fails later, as
 * one bad video).  Prints and returns 1 when a folder or list is unreadable. */
int cli_inputs_add(cli_inputs *in, const char *arg, const char *root);
/* Adds path as it is, its outputs named name (without its extension). */
int cli_inputs_add_one(cli_inputs *in, const char *path, const char *name);
/* Keeps the videos i with i % count == index (a deterministic shard);
 * then refuses two videos with the same output name (prints, returns 1). */
int cli_inputs_shard(cli_inputs *in, int index, int count);
void cli_inputs_free(cli_inputs *in);
/* Parses "K/N" (0 <= K < N); prints and returns 1 when malformed. */
int cli_parse_shard(const char *s, int *index, int *count);

#endif /* ST3D_CLI_INPUTS_H */

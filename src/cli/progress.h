/*
 * progress.h - a progress display for long CLI jobs: a bar with the rate
 * and the time left when stderr is a terminal, plain lines otherwise.
 */
#ifndef ST3D_CLI_PROGRESS_H
#define ST3D_CLI_PROGRESS_H

#include <stdint.h>

typedef struct cli_progress {
    const char *what;   /* unit shown, e.g. "videos" */
    int64_t total;      /* units expected */
    int64_t done;       /* units finished */
    double t0;          /* start (st3d_now) */
    double last;        /* last redraw */
    int tty;            /* 1: stderr is a terminal */
} cli_progress;

void cli_progress_start(cli_progress *p, const char *what, int64_t total);
/* Records n more units; label (may be NULL) names the last one finished. */
void cli_progress_add(cli_progress *p, int64_t n, const char *label);
void cli_progress_end(cli_progress *p);

#endif /* ST3D_CLI_PROGRESS_H */

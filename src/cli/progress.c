/*
 * progress.c - see progress.h.  Redraws at most ten times a second on a
 * terminal; otherwise prints one line per finished unit (for logs).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli/progress.h"
#include "core/core.h"

#include <stdio.h>
#include <unistd.h>

void cli_progress_start(cli_progress *p, const char *what, int64_t total) {
    p->what = what;
    p->total = total;
    p->done = 0;
    p->t0 = p->last = st3d_now();
    p->tty = isatty(fileno(stderr));
}

static void fmt_time(char *buf, size_t cap, double s) {
    long t = s < 0 ? 0 : (long)(s + 0.5);
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

void cli_progress_add(cli_progress *p, int64_t n, const char *label) {
    p->done += n;
    double now = st3d_now(), el = now - p->t0;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32];
    fmt_time(eta, sizeof eta, rate > 0 ? (double)(p->total - p->done) / rate : 0);
    if (!p->tty) {
        fprintf(stderr, "%lld/%lld %s (%.1f/s, ETA %s)%s%s\n", (long long)p->done,
                (long long)p->total, p->what, rate, eta, label ? ": " : "", label ? label : "");
        return;
    }
    if (now - p->last < 0.1 && p->done < p->total) return;
    p->last = now;
    int width = 30, fill = p->total > 0 ? (int)(width * p->done / p->total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %lld/%lld %s  %.1f/s  ETA %s ", bar, (long long)p->done,
            (long long)p->total, p->what, rate, eta);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fputc('\n', stderr);
    double el = st3d_now() - p->t0;
    fprintf(stderr, "%lld %s in %.1f s\n", (long long)p->done, p->what, el);
}

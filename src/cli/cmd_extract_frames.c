/*
 * cmd_extract_frames.c - `st3d extract-frames SRC_DIR DST_DIR`: the original
 * preparation step (util_scripts/generate_video_jpgs.py) done in-process:
 * every video is decoded with st3d_video, resized keeping its aspect ratio
 * (short side = --size, as the original's scale=-1:size / size:-1; or a
 * fixed --height, as the paper's "heights of 240 pixels") and written as
 * DST/<class>/<name>/image_00001.jpg, ... (ActivityNet: DST/<name>/).
 *
 * Videos run in parallel (--n-jobs threads).  A video's frames go to a
 * hidden temporary folder renamed into place when complete, so a finished
 * video is one whose folder exists: those are skipped on a rerun, and an
 * interrupted run leaves no half-written folder behind.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cli/inputs.h"
#include "cli/progress.h"
#include "io/video.h"

#include <libavutil/log.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One video to convert. */
typedef struct job {
    char *src; /* video file */
    char *dst; /* final frame folder */
} job;

/* Shared state of the worker threads. */
typedef struct pool {
    job *jobs;             /* all videos */
    size_t n, next;        /* count, next to take */
    int size, height;      /* --size (short side) or --height */
    int quality;           /* JPEG quality */
    int n_failed;          /* videos that could not be converted */
    cli_progress prog;     /* display */
    pthread_mutex_t mu;    /* guards next, n_failed, prog and stderr */
} pool;

static void add_job(pool *p, const char *src, const char *dst) {
    job *j = realloc(p->jobs, (p->n + 1) * sizeof *j);
    if (!j) return;
    p->jobs = j;
    j[p->n].src = strdup(src);
    j[p->n].dst = strdup(dst);
    p->n++;
}

/* Scans SRC: class folders of videos, or videos directly (flat). */
static void collect(pool *p, const char *src, const char *dst, const char *ext, int flat) {
    size_t n;
    char **names = cli_list_dir(src, &n);
    char a[4096], b[8192], s[1024];
    for (size_t i = 0; i < n; i++) {
        snprintf(a, sizeof a, "%s/%s", src, names[i]);
        if (!flat && st3d_is_dir(a)) {
            size_t m;
            char **vids = cli_list_dir(a, &m);
            for (size_t k = 0; k < m; k++) {
                if (!cli_is_video_name(vids[k], ext)) continue;
                char v[8192];
                snprintf(v, sizeof v, "%s/%s", a, vids[k]);
                cli_stem(vids[k], s, sizeof s);
                snprintf(b, sizeof b, "%s/%s/%s", dst, names[i], s);
                add_job(p, v, b);
            }
            for (size_t k = 0; k < m; k++) free(vids[k]);
            free(vids);
        } else if (st3d_is_file(a) && cli_is_video_name(names[i], ext)) {
            cli_stem(names[i], s, sizeof s);
            snprintf(b, sizeof b, "%s/%s", dst, s);
            add_job(p, a, b);
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void rmtree_flat(const char *dir) {
    size_t n;
    char **v = cli_list_dir(dir, &n);
    char p[8192];
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, v[i]);
        remove(p);
        free(v[i]);
    }
    free(v);
    rmdir(dir);
}

/* Converts one video; returns 0 or -1 with err filled. */
static int convert(const pool *p, const job *j, int64_t *n_out, st3d_error *err) {
    st3d_video_params vp = st3d_video_default_params();
    vp.threads = 1;
    st3d_video *v = st3d_video_open(j->src, &vp, err);
    if (!v) return -1;
    const st3d_video_info *vi = st3d_video_get_info(v);
    int w = vi->width, h = vi->height;
    st3d_video_free(v);
    if (p->height > 0) {
        vp.height = p->height;
        vp.width = (int)(((int64_t)w * p->height * 2 + h) / (2 * h));
        if (vp.width < 1) vp.width = 1;
    } else {
        vp.short_side = p->size;
    }
    if (!(v = st3d_video_open(j->src, &vp, err))) return -1;
    vi = st3d_video_get_info(v);
    char tmp[4200], path[4300];
    const char *slash = strrchr(j->dst, '/');
    snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp%ld", (int)(slash - j->dst), j->dst, slash + 1,
             (long)getpid());
    cli_mkdirs(tmp);
    uint8_t *rgb = malloc((size_t)vi->width * vi->height * 3);
    int rc = rgb ? 0 : st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", j->src);
    int64_t k = 0;
    while (rc == 0) {
        int r = st3d_video_read_frame(v, rgb, NULL, NULL, err);
        if (r < 0) rc = -1;
        if (r <= 0) break;
        st3d_frame_path(path, sizeof path, tmp, ++k);
        rc = st3d_jpeg_write(path, rgb, vi->width, vi->height, p->quality, err);
    }
    free(rgb);
    st3d_video_free(v);
    if (rc == 0 && k == 0) rc = st3d_fail(err, ST3D_ERR_FORMAT, "%s: no frames decoded", j->src);
    if (rc == 0 && rename(tmp, j->dst) != 0)
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: cannot rename into place: %s", j->dst, strerror(errno));
    if (rc != 0) rmtree_flat(tmp);
    *n_out = k;
    return rc;
}

static void *worker(void *arg) {
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n) return NULL;
        st3d_error err;
        int64_t nf = 0;
        int rc = convert(p, &p->jobs[i], &nf, &err);
        pthread_mutex_lock(&p->mu);
        if (rc != 0) {
            p->n_failed++;
            if (p->prog.tty) fputc('\n', stderr);
            fprintf(stderr, "st3d: skipped: %s\n", err.msg);
        }
        cli_progress_add(&p->prog, 1, p->jobs[i].src);
        pthread_mutex_unlock(&p->mu);
    }
}

static void usage(void) {
    printf("usage: st3d extract-frames SRC_DIR DST_DIR [options]\n"
           "  --dataset NAME   ucf101 | hmdb51 (.avi in class folders), kinetics | mit (.mp4 in\n"
           "                   class folders), activitynet (.mp4, flat); default: any video\n"
           "  --size N         short side of the frames (240; the original's --size)\n"
           "  --height N       fixed height instead (the paper's 240-pixel heights)\n"
           "  --n-jobs N       videos converted at once (number of cores)\n"
           "  --ext .EXT       only files with this extension\n"
           "  --quality Q      JPEG quality (90)\n");
}

int cmd_extract_frames(int argc, char **argv) {
    av_log_set_level(AV_LOG_QUIET);
    pool p;
    memset(&p, 0, sizeof p);
    p.size = 240;
    p.quality = 90;
    int jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
    const char *src = NULL, *dst = NULL, *dataset = NULL, *ext = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (cli_opt_is(a, "dataset") && has) dataset = argv[++i];
        else if (cli_opt_is(a, "ext") && has) ext = argv[++i];
        else if (cli_opt_is(a, "size") && has) {
            if (cli_parse_int(a, argv[++i], &p.size)) return 2;
        } else if (cli_opt_is(a, "height") && has) {
            if (cli_parse_int(a, argv[++i], &p.height)) return 2;
        } else if (cli_opt_is(a, "n-jobs") && has) {
            if (cli_parse_int(a, argv[++i], &jobs)) return 2;
        } else if (cli_opt_is(a, "quality") && has) {
            if (cli_parse_int(a, argv[++i], &p.quality)) return 2;
        } else if (a[0] == '-' && a[1] == '-') return cli_errorf("extract-frames: unknown option '%s'", a), 2;
        else if (!src) src = a;
        else if (!dst) dst = a;
        else return cli_errorf("extract-frames: unexpected argument '%s'", a), 2;
    }
    if (!src || !dst) {
        usage();
        return 2;
    }
    if (!st3d_is_dir(src)) return cli_errorf("%s: not a folder", src);
    if (p.size < 1 || p.quality < 1 || p.quality > 100 || jobs < 1)
        return cli_errorf("extract-frames: --size, --quality (1..100) and --n-jobs must be positive");
    int flat = 0;
    if (dataset) {
        if (!strcmp(dataset, "activitynet")) flat = 1;
        else if (strcmp(dataset, "kinetics") && strcmp(dataset, "mit") &&
                 strcmp(dataset, "ucf101") && strcmp(dataset, "hmdb51"))
            return cli_errorf("--dataset: unknown dataset '%s'", dataset), 2;
        if (!ext) ext = flat || !strcmp(dataset, "kinetics") || !strcmp(dataset, "mit") ? ".mp4" : ".avi";
    }
    cli_mkdirs(dst);
    pool all = p;
    collect(&all, src, dst, ext, flat);
    /* finished videos (their folder exists) are skipped */
    size_t skipped = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (st3d_is_dir(all.jobs[i].dst)) {
            skipped++;
            free(all.jobs[i].src), free(all.jobs[i].dst);
            continue;
        }
        add_job(&p, all.jobs[i].src, all.jobs[i].dst);
        free(all.jobs[i].src), free(all.jobs[i].dst);
    }
    free(all.jobs);
    fprintf(stderr, "%zu videos to convert, %zu already done\n", p.n, skipped);
    for (size_t i = 0; i < p.n; i++) {
        const char *slash = strrchr(p.jobs[i].dst, '/');
        char parent[4096];
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - p.jobs[i].dst), p.jobs[i].dst);
        cli_mkdirs(parent);
    }
    pthread_mutex_init(&p.mu, NULL);
    cli_progress_start(&p.prog, "videos", (int64_t)p.n);
    if (jobs > (int)p.n) jobs = p.n > 0 ? (int)p.n : 1;
    pthread_t *th = calloc((size_t)jobs, sizeof *th);
    int started = 0;
    for (int i = 0; th && i < jobs; i++)
        if (pthread_create(&th[i], NULL, worker, &p) == 0) started++;
    if (started == 0) worker(&p);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    cli_progress_end(&p.prog);
    pthread_mutex_destroy(&p.mu);
    for (size_t i = 0; i < p.n; i++) free(p.jobs[i].src), free(p.jobs[i].dst);
    free(p.jobs);
    if (p.n_failed) fprintf(stderr, "%d videos could not be converted\n", p.n_failed);
    return p.n_failed ? 1 : 0;
}

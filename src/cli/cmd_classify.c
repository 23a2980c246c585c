/*
 * cmd_classify.c - `st3d classify` and `st3d features`: a pretrained
 * network over any number of videos of any length, the companion tool's
 * job (video-classification-3d-cnn-pytorch main.py, --mode score and
 * --mode feature), streamed: the library's st3d_clip_stream decodes and
 * cuts clips in decoder threads while st3d_classify_stream runs batches;
 * each video's output is written as its clips arrive and renamed into place
 * when it ends.
 *
 *   st3d classify --weights W [--labels FILE] [--output OUT.json|DIR] INPUT...
 *   st3d features --weights W --output DIR [--average] INPUT...
 *
 * Corpus scale: --shard K/N keeps every N-th video of the input list from
 * the K-th; a video whose output exists is skipped (a killed run resumes);
 * a video that cannot be opened or decoded is named on stderr with the
 * reason and skipped; the summary counts them and the exit code is 1 when
 * any failed.  On a terminal a table of results and a progress bar (clips/s,
 * ETA); otherwise one line per video.  Under mpirun (or with --distributed)
 * the ranks share the shard as --shard shares the list: video i goes to
 * rank i mod ranks; rank 0 writes OUT.json once every rank is done and
 * prints the job's totals.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cli/inputs.h"
#include "core/core.h"
#include "train/video_results.h"

#include <jansson.h>
#include <libavutil/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Options of both commands. */
typedef struct opts {
    int features;              /* 1: st3d features */
    st3d_stream_params sp;     /* clip cutting, normalization, decoder threads */
    int batch_size;            /* clips per forward */
    int top_k;                 /* labels in the table and the video's top_k */
    int raw_scores;            /* 1: "scores" are fc's outputs (the companion's) */
    int average;               /* features: one vector per video */
    int winograd;              /* --conv: st3d_exec_set_winograd */
    const char *labels_path;   /* --labels */
    const char *output;        /* --output: OUT.json or a folder */
    const char *video_root;    /* --video-root: prefix of listed paths */
    const char *mean_dataset;  /* --mean-dataset, NULL: from the weights */
    float value_scale;         /* --value-scale, 0: from the weights */
    int no_mean, no_std;       /* --no-mean-norm, --no-std-norm */
    const char *mean, *std;    /* --mean, --std: "R,G,B" in value-scale units, or NULL */
    const char *overlay;       /* --overlay: OUT.mp4 (one video) or a folder, or NULL */
    int shard_index, shard_count; /* --shard K/N */
    int distributed;           /* --distributed (automatic under mpirun) */
    int ffmpeg_threads;        /* --ffmpeg-threads: FFmpeg's threads per video, -1: the rule below */
    int decode_overlap;        /* --decode-overlap: 1 on, 0 off, -1 auto (the rule below) */
} opts;

/* Per video of the run. */
typedef struct vstate {
    st3d_score_writer *sw;   /* classify's open output */
    st3d_feature_writer *fw; /* features' open outputs */
    int64_t clips;           /* clips received */
    int64_t expected;        /* clips its frame count promises (progress) */
    double *sum;             /* n_classes running sums of its clips' softmax (table) */
    st3d_overlay_span *spans; /* --overlay: each clip's label and score */
    int64_t n_spans, cap_spans; /* entries, room */
    int active;              /* 1: between BEGIN and END/FAIL */
    int broken;              /* 1: its output failed; ignore its clips */
} vstate;

/* State of a run, shared with the callback. */
typedef struct run {
    const opts *o;
    cli_inputs *in;             /* the videos of this shard */
    int64_t *todo;              /* indices into in of those not done yet (the stream's list) */
    int64_t n_todo;             /* entries of todo */
    vstate *vs;                 /* per video of in */
    char **labels;              /* n_classes names */
    int n_classes;              /* classifier outputs */
    int feature_dim;            /* pooled features */
    const char *dir;            /* per-video output folder, or NULL */
    int64_t n_ok, n_failed;     /* videos finished */
    int64_t n_clips;            /* clips through the network */
    double lat_sum, lat_max;    /* --live: latency (frame decoded to label out), seconds */
    double network_s;           /* seconds in the network (the last result's) */
    double waiting_s;           /* seconds waiting for clips (the last result's) */
    char **failures;            /* one line per failed video */
    double t0, last_draw;       /* start, last progress redraw */
    int tty;                    /* stderr is a terminal */
    st3d_dist *dist;            /* the MPI job, or NULL: this rank's videos are
                                   those of in whose index mod ranks is its rank */
    int64_t job_failed;         /* videos failed on any rank */
    int agreed;                 /* every rank got the job's totals: its exit code is theirs */
} run;

static void usage(FILE *out, int features) {
    if (features)
        fprintf(out, "usage: st3d features --weights W --output DIR [options] INPUT...\n\n"
                     "Writes DIR/NAME.npy (float32, clips x dim: the pooled values fc reads) and\n"
                     "DIR/NAME.json (each clip's segment and start/end seconds) per video.\n"
                     "  --average           one vector per video (the clips' mean; shape dim)\n");
    else
        fprintf(out, "usage: st3d classify --weights W [--labels FILE] [--output OUT.json|DIR]\n"
                     "                     [options] INPUT...\n\n"
                     "Per clip: softmax scores and the top label; per video: the clips' mean.\n"
                     "--output OUT.json: one JSON list of videos, as the companion tool's main.py\n"
                     "(each video also kept in OUT.json.parts/ for resuming); --output DIR: one\n"
                     "DIR/NAME.json per video.  Without --output, the table only.\n"
                     "  --labels FILE       class names, one a line or an annotation JSON's \"labels\"\n"
                     "                      (default: the weights file's, else class numbers)\n"
                     "  --top-k K           labels shown and kept per video (5)\n"
                     "  --raw-scores        \"scores\" are fc's outputs, as the companion's\n"
                     "  --overlay OUT       the video again with each clip's label drawn on it:\n"
                     "                      OUT.mp4 for one video, else OUT/NAME.mp4 per video\n");
    fprintf(out,
            "INPUT: a video, a folder (searched recursively), a text file listing videos\n"
            "       (one a line), or - for such a list on standard input\n"
            "  --sample-duration T  frames per clip (16)\n"
            "  --stride N           frames between clip starts (sample duration)\n"
            "  --drop-tail          no loop-padded last clip\n"
            "  --sample-size S      Resize + CenterCrop size (112)\n"
            "  --batch-size B       clips per forward, from any videos (8; --live: 1)\n"
            "  --live               each INPUT is a live source read as it comes (\"-\": a\n"
            "                       video piped to standard input, an RTSP/HTTP URL): one\n"
            "                       line per clip with its latency\n"
            "  --mean-dataset kinetics|activitynet|0.5  --value-scale 1|255\n"
            "  --no-mean-norm  --no-std-norm   (default: what the weights file records,\n"
            "                      else kinetics and 1 as the original opts.py)\n"
            "  --mean R,G,B  --std R,G,B   explicit values, in --value-scale units (the\n"
            "                      companion tool's: --value-scale 255\n"
            "                      --mean 114.7748,107.7354,99.4750 --std 1,1,1)\n"
            "  --decode-threads N   videos decoded at once (2)\n"
            "  --ffmpeg-threads N   FFmpeg's threads per video, 0 its own choice (default:\n"
            "                       CPUs - 1, at most 16, for a single video that is not\n"
            "                       --live, frame threads beside the one that resizes; else 1)\n"
            "  --decode-overlap auto|on|off  decode while the network runs (on), or only\n"
            "                       between its batches, on every core (off, even --live);\n"
            "                       auto: off when --threads takes every CPU, but on for --live\n"
            "  --threads N          compute threads (all cores)\n"
            "  --shard K/N          only videos K, K+N, K+2N, ... of the list (0 <= K < N)\n"
            "  --distributed        share the videos among MPI ranks (automatic under mpirun)\n"
            "  --video-root DIR     where listed relative paths are (the companion's --video_root)\n"
            "Outputs already present are skipped; exit code 1 when a video failed.\n\n");
    cli_model_usage(out);
}

/* Parses the 3 comma-separated floats of metadata value s. */
static int parse3(const char *s, float v[3]) {
    return s && sscanf(s, "%f,%f,%f", &v[0], &v[1], &v[2]) == 3 ? 0 : -1;
}

/* Normalization: options, else the weights' "st3d.mean"/"st3d.std" (st3d
 * convert) or "st3d.mean_dataset" (st3d train), else kinetics at 1. */
static int normalization(const opts *o, const st3d_tensor_map *map, st3d_stream_params *sp) {
    st3d_error err = {0};
    const char *vs = map ? st3d_tensor_map_get_meta(map, "st3d.value_scale") : NULL;
    float scale = o->value_scale > 0 ? o->value_scale : vs ? (float)atof(vs) : 1.0f;
    if (!(scale > 0)) scale = 1.0f;
    sp->value_scale = scale;
    const char *ds = o->mean_dataset;
    if (!ds && map && !o->value_scale &&
        parse3(st3d_tensor_map_get_meta(map, "st3d.mean"), sp->mean) == 0 &&
        parse3(st3d_tensor_map_get_meta(map, "st3d.std"), sp->std) == 0) {
        /* recorded, already scaled */
    } else {
        if (!ds && map) ds = st3d_tensor_map_get_meta(map, "st3d.mean_dataset");
        if (st3d_mean_std(ds ? ds : "kinetics", scale, sp->mean, sp->std, &err) != 0)
            return cli_error(&err);
    }
    if ((o->mean && parse3(o->mean, sp->mean)) || (o->std && parse3(o->std, sp->std)))
        return cli_errorf("--mean and --std take three numbers, R,G,B");
    if (o->no_mean) sp->mean[0] = sp->mean[1] = sp->mean[2] = 0.0f;
    if (o->no_std) sp->std[0] = sp->std[1] = sp->std[2] = 1.0f;
    return 0;
}

/* Class names: --labels, the weights' "st3d.labels", or numbers (NULL). */
static int load_labels(run *r, const char *path, const st3d_tensor_map *map) {
    json_t *arr = NULL;
    const char *src = path;
    if (path) {
        if (!(arr = cli_read_labels(path))) return 1;
    } else if (map && st3d_tensor_map_get_meta(map, "st3d.labels")) {
        src = "the weights' st3d.labels";
        arr = json_loads(st3d_tensor_map_get_meta(map, "st3d.labels"), 0, NULL);
        if (!json_is_array(arr)) {
            json_decref(arr);
            return cli_errorf("%s: not a JSON list", src);
        }
    } else {
        return 0;
    }
    int rc = 0;
    if ((int)json_array_size(arr) != r->n_classes)
        rc = cli_errorf("%s: %zu labels for a network of %d classes", src, json_array_size(arr),
                        r->n_classes);
    else if (!(r->labels = calloc((size_t)r->n_classes, sizeof *r->labels)))
        rc = cli_errorf("out of memory");
    for (int k = 0; !rc && k < r->n_classes; k++) {
        const char *s = json_string_value(json_array_get(arr, (size_t)k));
        if (!s) rc = cli_errorf("%s: label %d is not a string", src, k);
        else if (!(r->labels[k] = strdup(s))) rc = cli_errorf("out of memory");
    }
    json_decref(arr);
    return rc;
}

/* The per-video output paths of video i (ext: ".json" or ".npy"). */
static void out_path(const run *r, int64_t i, const char *ext, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s%s", r->dir, r->in->v[i].name, ext);
}

static void fmt_time(char *buf, size_t cap, double s) {
    long t = s < 0 ? 0 : (long)(s + 0.5);
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* The progress line: videos done (active ones in part), clips/s, ETA. */
static void progress_text(const run *r, char *buf, size_t cap) {
    double el = st3d_now() - r->t0, done = (double)(r->n_ok + r->n_failed);
    for (int64_t i = 0; i < r->in->n; i++)
        if (r->vs[i].active && r->vs[i].expected > 0)
            done += (double)(r->vs[i].clips < r->vs[i].expected ? r->vs[i].clips
                                                                 : r->vs[i].expected) /
                    (double)r->vs[i].expected;
    double frac = r->n_todo ? done / (double)r->n_todo : 1.0; /* of this run's videos */
    char eta[32] = "-:--:--";
    if (frac > 0) fmt_time(eta, sizeof eta, el * (1.0 - frac) / frac);
    int width = 24, fill = (int)(width * frac);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    snprintf(buf, cap, "[%s] %lld/%lld videos  %lld clips  %.1f clips/s  ETA %s", bar,
             (long long)(r->n_ok + r->n_failed), (long long)r->n_todo, (long long)r->n_clips,
             el > 0 ? (double)r->n_clips / el : 0.0, eta);
}

static void draw(run *r, int force) {
    if (!r->tty) return;
    double now = st3d_now();
    if (!force && now - r->last_draw < 0.1) return;
    r->last_draw = now;
    char line[256];
    progress_text(r, line, sizeof line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

/* One finished video: a table row (terminal) or a plain line. */
static void report_video(run *r, int64_t i, const st3d_stream_item *end) {
    char line[256];
    if (r->tty) fputs("\r\033[K", stderr);
    const char *name = r->in->v[i].path;
    if (r->o->features) {
        printf("%-48s %6lld clips %7lld frames\n", name, (long long)end->n_clips,
               (long long)end->n_frames);
    } else {
        /* the top_k of the video's mean softmax, best first */
        double *m = r->vs[i].sum;
        printf("%-40s %5lld clips ", name, (long long)end->n_clips);
        int k = r->o->top_k < r->n_classes ? r->o->top_k : r->n_classes;
        for (int t = 0; t < k && m && end->n_clips > 0; t++) {
            int best = 0;
            for (int c = 1; c < r->n_classes; c++)
                if (m[c] > m[best]) best = c;
            char num[16];
            snprintf(num, sizeof num, "%d", best);
            printf(" %s %.3f", r->labels ? r->labels[best] : num, m[best] / (double)end->n_clips);
            m[best] = -1e300;
        }
        printf("\n");
    }
    fflush(stdout);
    if (!r->tty) {
        progress_text(r, line, sizeof line);
        fprintf(stderr, "%s\n", strchr(line, ']') + 2); /* without the bar */
    }
}

static void end_video(vstate *v) {
    st3d_score_writer_abort(v->sw);
    st3d_feature_writer_abort(v->fw);
    free(v->sum);
    free(v->spans);
    v->sw = NULL, v->fw = NULL, v->sum = NULL, v->spans = NULL;
    v->n_spans = v->cap_spans = 0;
    v->active = 0;
}

static void fail_video(run *r, int64_t i, const char *msg) {
    end_video(&r->vs[i]);
    r->vs[i].broken = 1;
    if (r->tty) fputs("\r\033[K", stderr);
    fprintf(stderr, "st3d: skipped %s\n", msg);
    char **f = realloc(r->failures, (size_t)(r->n_failed + 1) * sizeof *f);
    if (f) {
        r->failures = f;
        f[r->n_failed] = strdup(msg);
    }
    r->n_failed++;
}

/* Opens video i's outputs. */
static int open_outputs(run *r, int64_t i, st3d_error *err) {
    vstate *v = &r->vs[i];
    if (!r->dir) return 0;
    char p[8192], q[8192];
    out_path(r, i, ".json", p, sizeof p);
    char *slash = strrchr(p, '/');
    if (slash) {
        *slash = '\0';
        cli_mkdirs(p);
        *slash = '/';
    }
    if (r->o->features) {
        out_path(r, i, ".npy", q, sizeof q);
        v->fw = st3d_feature_writer_open(q, p, r->in->v[i].path, r->feature_dim, r->o->average,
                                         err);
        return v->fw ? 0 : -1;
    }
    v->sw = st3d_score_writer_open(p, r->in->v[i].path, (const char *const *)r->labels,
                                   r->n_classes, r->o->top_k, r->o->raw_scores, err);
    return v->sw ? 0 : -1;
}

/* --live: one line per clip as it is classified, with its latency. */
static void report_live(run *r, int64_t i, const st3d_stream_item *it, const float *scores) {
    double lat = st3d_now() - it->decoded_at;
    r->lat_sum += lat;
    if (lat > r->lat_max) r->lat_max = lat;
    int best = 0;
    for (int k = 1; k < r->n_classes; k++)
        if (scores[k] > scores[best]) best = k;
    char num[16];
    snprintf(num, sizeof num, "%d", best);
    if (r->tty) fputs("\r\033[K", stderr);
    printf("%s  %9.3f-%9.3f s  [%lld, %lld]  %s %.3f  latency %.0f ms\n", r->in->v[i].name,
           it->start, it->end, (long long)it->first, (long long)it->last,
           r->labels ? r->labels[best] : num, scores[best], 1e3 * lat);
    fflush(stdout);
}

/* Records a clip's label for --overlay. */
static int add_span(run *r, vstate *v, const st3d_stream_item *it, const float *scores) {
    if (v->n_spans == v->cap_spans) {
        int64_t cap = v->cap_spans ? 2 * v->cap_spans : 64;
        st3d_overlay_span *p = realloc(v->spans, (size_t)cap * sizeof *p);
        if (!p) return -1;
        v->spans = p, v->cap_spans = cap;
    }
    int best = 0;
    for (int k = 1; k < r->n_classes; k++)
        if (scores[k] > scores[best]) best = k;
    st3d_overlay_span *sp = &v->spans[v->n_spans++];
    sp->first = it->first;
    sp->last = it->last;
    char num[16];
    snprintf(num, sizeof num, "%d", best);
    snprintf(sp->text, sizeof sp->text, "%s %.2f", r->labels ? r->labels[best] : num, scores[best]);
    return 0;
}

/* --overlay: OUT itself for a run of one video named with a video
 * extension, else OUT/NAME.mp4. */
static int write_overlay(run *r, int64_t i, st3d_error *err) {
    const char *o = r->o->overlay;
    char p[8192];
    if (r->in->n == 1 && cli_is_video_name(o, NULL)) {
        snprintf(p, sizeof p, "%s", o);
    } else {
        snprintf(p, sizeof p, "%s/%s.mp4", o, r->in->v[i].name);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        cli_mkdirs(p);
        *slash = '/';
    }
    vstate *v = &r->vs[i];
    return st3d_overlay_video(r->in->v[i].path, p, v->spans, v->n_spans, err);
}

static int on_item(const st3d_clip_result *res, void *user) {
    run *r = user;
    const st3d_stream_item *it = res->item;
    int64_t i = r->todo[it->video];
    vstate *v = &r->vs[i];
    st3d_error err = {0};
    r->network_s = res->network_s;
    r->waiting_s = res->waiting_s;
    switch (it->kind) {
    case ST3D_STREAM_BEGIN: {
        v->active = 1;
        /* the stream's clip count for the frames the container indexes */
        int64_t d = r->o->sp.sample_duration, s = r->o->sp.stride > 0 ? r->o->sp.stride : d;
        int64_t n = it->info.n_frames, full = n >= d ? (n - d) / s + 1 : 0;
        v->expected = full + (full * s < n && !r->o->sp.drop_tail);
        if (!r->o->features && !(v->sum = calloc((size_t)r->n_classes, sizeof *v->sum)))
            fail_video(r, i, "out of memory");
        else if (open_outputs(r, i, &err) != 0)
            fail_video(r, i, err.msg);
        break;
    }
    case ST3D_STREAM_CLIP:
        r->n_clips++;
        if (v->broken) break;
        v->clips++;
        if (v->sum)
            for (int k = 0; k < r->n_classes; k++) v->sum[k] += res->scores[k];
        if (r->o->sp.live) report_live(r, i, it, res->scores);
        if (r->o->overlay && add_span(r, v, it, res->scores) != 0) {
            fail_video(r, i, "out of memory");
            break;
        }
        if ((v->sw && st3d_score_writer_clip(v->sw, it, res->logits, res->scores, &err) != 0) ||
            (v->fw && st3d_feature_writer_clip(v->fw, it, res->features, &err) != 0))
            fail_video(r, i, err.msg);
        break;
    case ST3D_STREAM_END: {
        if (v->broken) break;
        int rc = 0;
        if (v->sw) rc = st3d_score_writer_finish(v->sw, it, NULL, &err);
        else if (v->fw) rc = st3d_feature_writer_finish(v->fw, it, &err);
        v->sw = NULL, v->fw = NULL;
        if (rc != 0) {
            fail_video(r, i, err.msg);
            break;
        }
        if (r->o->overlay && write_overlay(r, i, &err) != 0) {
            fail_video(r, i, err.msg);
            break;
        }
        r->n_ok++;
        report_video(r, i, it);
        end_video(v);
        break;
    }
    case ST3D_STREAM_FAIL:
        if (!v->broken) fail_video(r, i, it->message);
        break;
    }
    draw(r, it->kind != ST3D_STREAM_CLIP);
    return 0;
}

/* 1 when video i's outputs are all present (written atomically: complete). */
static int done_already(const run *r, int64_t i) {
    char p[8192];
    out_path(r, i, ".json", p, sizeof p);
    return access(p, F_OK) == 0;
}

/* OUT.json: the videos' files (OUT.json.parts/NAME.json), in list order,
 * as one JSON list (the companion's output), written atomically. */
static int write_combined(const run *r, const char *path) {
    st3d_error err = {0};
    st3d_atomic_file af;
    if (st3d_atomic_open(&af, path, &err) != 0) return cli_error(&err);
    fputs("[", af.f);
    int64_t n = 0;
    for (int64_t i = 0; i < r->in->n; i++) {
        char p[8192];
        out_path(r, i, ".json", p, sizeof p);
        FILE *f = fopen(p, "rb");
        if (!f) continue; /* failed: not in the list */
        fputs(n++ ? ",\n" : "\n", af.f);
        char buf[65536];
        size_t k, last = 0;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
            /* without the file's final newline */
            if (last) fputc('\n', af.f);
            last = buf[k - 1] == '\n';
            fwrite(buf, 1, k - last, af.f);
        }
        fclose(f);
    }
    fputs("\n]\n", af.f);
    return st3d_atomic_commit(&af, &err) ? cli_error(&err) : 0;
}

/* Parses the command's own options into o (network options into cm);
 * INPUT arguments go to in.  Returns 0, or the exit code. */
static int parse(int argc, char **argv, opts *o, cli_model *cm, cli_inputs *in) {
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0;
    if (!inputs) return cli_errorf("out of memory");
    int rc = 2;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            inputs[n_inputs++] = a;
            i++;
            continue;
        }
        int r = cli_model_opt(argc, argv, &i, cm);
        if (r < 0) goto out;
        if (r > 0) continue;
        int *flag = cli_opt_is(a, "average") ? &o->average
                    : cli_opt_is(a, "live") ? &o->sp.live
                    : cli_opt_is(a, "raw-scores") ? &o->raw_scores
                    : cli_opt_is(a, "drop-tail") ? &o->sp.drop_tail
                    : cli_opt_is(a, "no-mean-norm") ? &o->no_mean
                    : cli_opt_is(a, "no-std-norm") ? &o->no_std
                    : cli_opt_is(a, "distributed") ? &o->distributed
                    : NULL;
        if (flag) {
            *flag = 1;
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            cli_errorf("unknown option or missing value: %s", a);
            goto out;
        }
        const char *v = argv[i + 1];
        int bad = 0;
        if (cli_opt_is(a, "sample-duration")) bad = cli_parse_int(a, v, &o->sp.sample_duration);
        else if (cli_opt_is(a, "stride")) bad = cli_parse_int(a, v, &o->sp.stride);
        else if (cli_opt_is(a, "sample-size")) bad = cli_parse_int(a, v, &o->sp.sample_size);
        else if (cli_opt_is(a, "batch-size")) bad = cli_parse_int(a, v, &o->batch_size);
        else if (cli_opt_is(a, "decode-threads")) bad = cli_parse_int(a, v, &o->sp.n_threads);
        else if (cli_opt_is(a, "ffmpeg-threads")) {
            bad = cli_parse_int(a, v, &o->ffmpeg_threads);
            if (!bad && (o->ffmpeg_threads < 0 || o->ffmpeg_threads > 64))
                bad = cli_errorf("--ffmpeg-threads: expected 0 to 64, got %s", v);
        }
        else if (cli_opt_is(a, "decode-overlap")) {
            if (!strcmp(v, "auto")) o->decode_overlap = -1;
            else if (!strcmp(v, "on")) o->decode_overlap = 1;
            else if (!strcmp(v, "off")) o->decode_overlap = 0;
            else bad = cli_errorf("--decode-overlap: expected auto, on or off, got %s", v);
        }
        else if (cli_opt_is(a, "top-k")) bad = cli_parse_int(a, v, &o->top_k);
        else if (cli_opt_is(a, "value-scale")) bad = cli_parse_float(a, v, &o->value_scale);
        else if (cli_opt_is(a, "mean-dataset")) o->mean_dataset = v;
        else if (cli_opt_is(a, "mean")) o->mean = v;
        else if (cli_opt_is(a, "overlay") && !o->features) o->overlay = v;
        else if (cli_opt_is(a, "std")) o->std = v;
        else if (cli_opt_is(a, "labels") && !o->features) o->labels_path = v;
        else if (cli_opt_is(a, "output")) o->output = v;
        else if (cli_opt_is(a, "video-root")) o->video_root = v;
        else if (cli_opt_is(a, "shard")) bad = cli_parse_shard(v, &o->shard_index, &o->shard_count);
        else {
            cli_errorf("unknown option: %s (see st3d %s --help)", a,
                       o->features ? "features" : "classify");
            goto out;
        }
        if (bad) goto out;
        i += 2;
    }
    if (!cm->weights) {
        cli_errorf("--weights is required");
        goto out;
    }
    if (o->features && !o->output) {
        cli_errorf("st3d features needs --output DIR");
        goto out;
    }
    if (!n_inputs) {
        cli_errorf("no INPUT given (a video, a folder, a list file, or -)");
        goto out;
    }
    if (o->sp.sample_duration < 1 || o->sp.stride < 0 || o->sp.sample_size < 1 ||
        o->batch_size < 0 || o->sp.n_threads < 1 || o->top_k < 1) {
        cli_errorf("--sample-duration, --sample-size, --batch-size, --decode-threads and "
                   "--top-k must be >= 1, --stride >= 0");
        goto out;
    }
    for (int k = 0; k < n_inputs; k++) {
        /* a live source is opened as it is: "-" is a video on standard input */
        const char *base = strrchr(inputs[k], '/');
        if (o->sp.live ? cli_inputs_add_one(in, inputs[k], !strcmp(inputs[k], "-") ? "stdin"
                                                           : base && base[1] ? base + 1 : inputs[k])
                       : cli_inputs_add(in, inputs[k], o->video_root))
            goto out;
    }
    if (o->sp.live) { /* latency first: no batching, no decoding far ahead */
        if (o->batch_size == 0) o->batch_size = 1;
        o->sp.queue_clips = o->batch_size + 1;
    }
    if (o->batch_size == 0) o->batch_size = 8;
    /* room for the next batch while one runs, and for each decoder's next clip */
    if (!o->sp.live) o->sp.queue_clips = o->batch_size + o->sp.n_threads;
    if (cli_inputs_shard(in, o->shard_index, o->shard_count)) goto out;
    rc = 0;
out:
    free(inputs);
    return rc;
}

/* The run proper, once the network is built. */
static int classify_all(run *r, st3d_model *m) {
    st3d_error err = {0};
    r->vs = calloc((size_t)(r->in->n ? r->in->n : 1), sizeof *r->vs);
    r->todo = calloc((size_t)(r->in->n ? r->in->n : 1), sizeof *r->todo);
    const char **paths = calloc((size_t)(r->in->n ? r->in->n : 1), sizeof *paths);
    if (!r->vs || !r->todo || !paths) {
        free(paths);
        return cli_errorf("out of memory");
    }
    int64_t skipped = 0;
    int rank = st3d_dist_rank(r->dist), ranks = st3d_dist_size(r->dist);
    for (int64_t i = 0; i < r->in->n; i++) {
        if (i % ranks != rank) continue; /* another rank's */
        if (r->dir && !r->o->sp.live && done_already(r, i)) {
            skipped++;
            continue;
        }
        paths[r->n_todo] = r->in->v[i].path;
        r->todo[r->n_todo++] = i;
    }
    if (skipped)
        fprintf(stderr, "st3d: %lld of %lld videos already done (outputs present), skipped\n",
                (long long)skipped, (long long)r->in->n);
    r->t0 = r->last_draw = st3d_now();
    r->tty = isatty(fileno(stderr));
    if (isatty(fileno(stdout)) && r->n_todo)
        printf(r->o->features ? "%-48s %12s %14s\n" : "%-40s %11s  %s\n", "video", "clips",
               r->o->features ? "frames" : "top labels (mean softmax)");
    st3d_stream_params sp = r->o->sp;
    if (r->o->ffmpeg_threads >= 0) sp.decoder_threads = r->o->ffmpeg_threads;
    else if (r->n_todo == 1 && !sp.live) { /* one video: FFmpeg's frame threads and the */
        int n = st3d_get_cpus() - 1;        /* clip cutter, a CPU each; FFmpeg warns above 16 */
        sp.decoder_threads = n < 1 ? 1 : n > 16 ? 16 : n;
    }
    /* a decoder beside compute threads that take every CPU preempts them
     * (clip_stream.c); a live source is read as it comes: held only if asked */
    int all_cpus = st3d_get_threads() >= st3d_get_cpus();
    sp.pause_for_compute =
        r->o->decode_overlap == 0 || (r->o->decode_overlap < 0 && !sp.live && all_cpus);
    st3d_exec *exec = st3d_exec_new(m, &err);
    if (exec) st3d_exec_set_winograd(exec, r->o->winograd);
    st3d_clip_stream *s = exec ? st3d_clip_stream_new(paths, r->n_todo, &sp, &err) : NULL;
    int rc = 1;
    if (s) {
        rc = st3d_classify_stream(exec, m, s, r->o->batch_size, on_item, r, &err) ? cli_error(&err) : 0;
    } else {
        cli_error(&err);
    }
    st3d_clip_stream_free(s);
    st3d_exec_free(exec);
    free(paths);
    for (int64_t i = 0; i < r->in->n; i++) end_video(&r->vs[i]);
    if (r->tty) fputs("\r\033[K", stderr);
    double el = st3d_now() - r->t0;
    fprintf(stderr, "%s%lld videos done, %lld failed, %lld skipped as done before; %lld clips in "
            "%.1f s (%.1f clips/s; network %.1f s, waiting for clips %.1f s)\n",
            ranks > 1 ? "this rank: " : "", (long long)r->n_ok, (long long)r->n_failed,
            (long long)skipped, (long long)r->n_clips, el, el > 0 ? (double)r->n_clips / el : 0.0,
            r->network_s, r->waiting_s);
    r->job_failed = r->n_failed;
    if (ranks > 1) {
        /* the job's totals, once every rank is done (so OUT.json can be made);
         * ranks finish their shares far apart, so no watchdog on this wait
         * (a rank that dies is still noticed by the launcher) */
        double t[5] = {(double)r->n_ok, (double)r->n_failed, (double)skipped, (double)r->n_clips, rc};
        st3d_dist_set_timeout(r->dist, 0);
        if (st3d_dist_allreduce_f64(r->dist, t, 5, &err) != 0) return cli_error(&err);
        if (rank == 0)
            fprintf(stderr, "all %d ranks: %.0f videos done, %.0f failed, %.0f skipped as done before; "
                    "%.0f clips in %.1f s (%.1f clips/s)\n", ranks, t[0], t[1], t[2], t[3], el,
                    el > 0 ? t[3] / el : 0.0);
        r->job_failed = (int64_t)t[1];
        rc = t[4] > 0;
    }
    r->agreed = 1; /* every rank reached this point with these totals */
    if (r->o->sp.live && r->n_clips)
        fprintf(stderr, "latency, last frame of a clip decoded to its label: mean %.0f ms, max "
                "%.0f ms (batch %d)\n", 1e3 * r->lat_sum / (double)r->n_clips, 1e3 * r->lat_max,
                r->o->batch_size);
    for (int64_t k = 0; k < r->n_failed; k++)
        fprintf(stderr, "  failed: %s\n", r->failures && r->failures[k] ? r->failures[k] : "?");
    return rc;
}

static int run_command(int argc, char **argv, int features) {
    for (int i = 1; i < argc; i++)
        if (cli_opt_is(argv[i], "help")) return usage(stdout, features), 0;
    opts o;
    memset(&o, 0, sizeof o);
    o.features = features;
    o.sp = st3d_stream_default_params();
    o.batch_size = 0; /* 8, or 1 with --live */
    o.top_k = 5;
    o.ffmpeg_threads = -1;
    o.decode_overlap = -1;
    o.shard_count = 1;
    cli_model cm;
    if (cli_model_begin(argc, argv, &cm) != 0) return 1;
    cli_inputs in;
    memset(&in, 0, sizeof in);
    run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.in = &in;
    st3d_model *m = NULL;
    char *dir = NULL;
    int agreed = 0; /* rc is every rank's, not this rank's failure */
    int rc = parse(argc, argv, &o, &cm, &in);
    if (rc) goto out;
    rc = 1;
    st3d_set_threads(cm.threads);
    o.winograd = cm.winograd;
    if (cli_dist_join(o.distributed, -1.0, cm.threads != 0, &r.dist) != 0) goto out;
    av_log_set_level(AV_LOG_QUIET); /* reasons come back as errors, once per video */
    if (normalization(&o, cm.map, &o.sp) || cli_model_open(&cm, 0, &m)) goto out;
    r.n_classes = cm.p.n_classes;
    r.feature_dim = st3d_model_feature_dim(m);
    if (load_labels(&r, o.labels_path, cm.map)) goto out;
    cli_model_for_inference(&cm, m); /* cm's map (a file mapping) lives until the end */
    size_t ol = o.output ? strlen(o.output) : 0;
    int combined = !features && ol > 5 && !strcmp(o.output + ol - 5, ".json");
    if (o.output) {
        if (!(dir = malloc(ol + 8))) goto out;
        snprintf(dir, ol + 8, combined ? "%s.parts" : "%s", o.output);
        cli_mkdirs(dir);
        r.dir = dir;
    }
    rc = classify_all(&r, m);
    agreed = r.agreed; /* classify_all's rc and the failures are the job's */
    if (combined && st3d_dist_rank(r.dist) == 0 && write_combined(&r, o.output)) rc = 1, agreed = 0;
    if (!rc && r.job_failed) rc = 1;
out:
    if (r.labels)
        for (int k = 0; k < r.n_classes; k++) free(r.labels[k]);
    free(r.labels);
    for (int64_t k = 0; k < r.n_failed && r.failures; k++) free(r.failures[k]);
    free(r.failures);
    free(r.vs);
    free(r.todo);
    free(dir);
    st3d_model_free(m);
    cli_model_end(&cm);
    cli_inputs_free(&in);
    return cli_dist_end(r.dist, rc, agreed);
}

int cmd_classify(int argc, char **argv) { return run_command(argc, argv, 0); }
int cmd_features(int argc, char **argv) { return run_command(argc, argv, 1); }

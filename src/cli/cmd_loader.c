/*
 * cmd_loader.c - `st3d sample-clips` and `st3d loader-bench`: drive the data
 * loader with the original opts.py's options ('-' or '_' spellings).
 *
 * sample-clips writes each batch to OUT/batch_NNNNN.npy (N x 3 x T x H x W
 * float32) and one JSON line per clip to OUT/clips.jsonl (its video, label,
 * frames and every random choice), and prints skipped videos as they are
 * met.  With --segment B:E it only prints the clips (frame numbers) the
 * temporal transform cuts from frames [B, E).  loader-bench runs epochs and
 * reports clips per second.
 */
#include "cli.h"
#include "data/data.h"

#include <libavutil/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Everything both commands parse. */
typedef struct loader_opts {
    st3d_loader_params p;       /* loader parameters */
    const char *annotation;     /* --annotation-path */
    const char *video_path;     /* --video-path (root of videos / frame folders) */
    const char *subset;         /* --subset */
    const char *out_dir;        /* --out-dir (sample-clips) */
    const char *mean_dataset;   /* --mean-dataset */
    const char **inputs;        /* positional videos / folders */
    int n_inputs;               /* count of inputs */
    int n_epochs;               /* epochs to run */
    int begin_epoch;            /* first epoch number */
    int max_batches;            /* stop after this many batches per epoch (-1: all) */
    double seconds;             /* loader-bench: stop after this long (0: epochs) */
    int64_t seg_b, seg_e;       /* --segment: temporal sampling only */
    int quiet;                  /* 1: no per-video messages */
} loader_opts;

static void usage(const char *cmd) {
    printf("usage: st3d %s [VIDEO|FOLDER ...] [options]\n"
           "  --annotation-path F --video-path D [--subset training|validation|testing]\n"
           "  --batch-size N (128)  --n-threads N (4)  --queue-batches N (2)\n"
           "  --sample-size N (112)  --sample-duration N (16)  --sample-t-stride N (1)\n"
           "  --train-t-crop random|center|begin|even|sliding  --n-val-samples N (3)\n"
           "  --inference-stride N (16)\n"
           "  --train-crop random|corner|center|nocrop  --train-crop-min-scale F (0.25)\n"
           "  --train-crop-min-ratio F (0.75)  --no-hflip  --colorjitter\n"
           "  --shuffle-frames  (each clip's frames in a random order: the 2D control)\n"
           "  --colorjitter-brightness F  --colorjitter-contrast F  --colorjitter-saturation F\n"
           "  --colorjitter-hue F   (strengths; 0 as the original's ColorJitter())\n"
           "  --value-scale 1|255  --mean-dataset kinetics|activitynet|0.5\n"
           "  --no-mean-norm  --no-std-norm  --manual-seed N  --no-shuffle  --drop-last\n"
           "  --shard-index I --shard-count K   (also --dist-rank / --world-size)\n"
           "  --video-short-side N  --decoder-threads N\n"
           "  --begin-epoch N  --n-epochs N  --max-batches N  --quiet\n"
           "  sample-clips: --out-dir D, or --segment B:E (print temporal clips only)\n"
           "  loader-bench: --seconds S\n",
           cmd);
}

static int parse_enum(const char *opt, const char *v, const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    cli_errorf("%s: unknown value '%s'", opt, v);
    return -1;
}

static int parse(int argc, char **argv, loader_opts *o) {
    memset(o, 0, sizeof *o);
    o->p = st3d_loader_default_params();
    o->subset = "training";
    o->mean_dataset = "kinetics";
    o->n_epochs = 1;
    o->max_batches = -1;
    o->seg_b = o->seg_e = -1;
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    int no_mean = 0, no_std = 0;
    static const char *const tcrops[] = {"random", "center", "begin", "even", "sliding"};
    static const char *const scrops[] = {"random", "corner", "center", "nocrop"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        float f;
        int k;
#define INT_OPT(name, field)                                                                  \
    if (cli_opt_is(a, name) && v) {                                                           \
        if (cli_parse_int(a, v, &(field))) return -1;                                         \
        i++;                                                                                  \
        continue;                                                                             \
    }
#define FLT_OPT(name, field)                                                                  \
    if (cli_opt_is(a, name) && v) {                                                           \
        if (cli_parse_float(a, v, &(field))) return -1;                                       \
        i++;                                                                                  \
        continue;                                                                             \
    }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        INT_OPT("batch-size", o->p.batch_size)
        INT_OPT("n-threads", o->p.n_threads)
        INT_OPT("queue-batches", o->p.queue_batches)
        INT_OPT("sample-size", o->p.sample_size)
        INT_OPT("sample-duration", o->p.sample_duration)
        INT_OPT("sample-t-stride", o->p.sample_t_stride)
        INT_OPT("n-val-samples", o->p.n_clips)
        INT_OPT("inference-stride", o->p.window_stride)
        INT_OPT("shard-index", o->p.shard_index)
        INT_OPT("dist-rank", o->p.shard_index)
        INT_OPT("shard-count", o->p.shard_count)
        INT_OPT("world-size", o->p.shard_count)
        INT_OPT("video-short-side", o->p.video_short_side)
        INT_OPT("decoder-threads", o->p.decoder_threads)
        INT_OPT("n-epochs", o->n_epochs)
        INT_OPT("begin-epoch", o->begin_epoch)
        INT_OPT("max-batches", o->max_batches)
        FLT_OPT("train-crop-min-scale", o->p.train_crop_min_scale)
        FLT_OPT("train-crop-min-ratio", o->p.train_crop_min_ratio)
        FLT_OPT("colorjitter-brightness", o->p.jitter_brightness)
        FLT_OPT("colorjitter-contrast", o->p.jitter_contrast)
        FLT_OPT("colorjitter-saturation", o->p.jitter_saturation)
        FLT_OPT("colorjitter-hue", o->p.jitter_hue)
        FLT_OPT("value-scale", o->p.value_scale)
        if (cli_opt_is(a, "manual-seed") && v) {
            if (cli_parse_int(a, v, &k)) return -1;
            o->p.seed = (uint64_t)(int64_t)k;
            i++;
        } else if (cli_opt_is(a, "seconds") && v) {
            if (cli_parse_float(a, v, &f)) return -1;
            o->seconds = f;
            i++;
        } else if (cli_opt_is(a, "train-t-crop") && v) {
            if (parse_enum(a, v, tcrops, 5, &k)) return -1;
            o->p.t_crop = (st3d_temporal_crop)k;
            i++;
        } else if (cli_opt_is(a, "train-crop") && v) {
            if (parse_enum(a, v, scrops, 4, &k)) return -1;
            o->p.crop = (st3d_spatial_crop)k;
            i++;
        } else if (cli_opt_is(a, "segment") && v) {
            long long b, e;
            if (sscanf(v, "%lld:%lld", &b, &e) != 2) return cli_errorf("--segment: expected B:E"), -1;
            o->seg_b = b, o->seg_e = e;
            i++;
        } else if (cli_opt_is(a, "annotation-path") && v) o->annotation = argv[++i];
        else if (cli_opt_is(a, "video-path") && v) o->video_path = argv[++i];
        else if (cli_opt_is(a, "subset") && v) o->subset = argv[++i];
        else if (cli_opt_is(a, "out-dir") && v) o->out_dir = argv[++i];
        else if (cli_opt_is(a, "mean-dataset") && v) o->mean_dataset = argv[++i];
        else if (cli_opt_is(a, "no-hflip")) o->p.hflip = 0;
        else if (cli_opt_is(a, "shuffle-frames")) o->p.shuffle_frames = 1;
        else if (cli_opt_is(a, "colorjitter")) o->p.colorjitter = 1;
        else if (cli_opt_is(a, "no-mean-norm")) no_mean = 1;
        else if (cli_opt_is(a, "no-std-norm")) no_std = 1;
        else if (cli_opt_is(a, "no-shuffle")) o->p.shuffle = 0;
        else if (cli_opt_is(a, "drop-last")) o->p.drop_last = 1;
        else if (cli_opt_is(a, "quiet")) o->quiet = 1;
        else if (a[0] == '-' && a[1] == '-') return cli_errorf("unknown option '%s'", a), -1;
        else o->inputs[o->n_inputs++] = a;
#undef INT_OPT
#undef FLT_OPT
    }
    st3d_error err;
    if (st3d_mean_std(o->mean_dataset, o->p.value_scale, o->p.mean, o->p.std, &err) != 0)
        return cli_error(&err), -1;
    o->p.mean_norm = !no_mean;
    o->p.std_norm = !no_std;
    return 0;
}

static st3d_dataset *open_dataset(const loader_opts *o) {
    st3d_error err;
    st3d_dataset *ds;
    if (o->annotation) {
        ds = st3d_dataset_open(o->annotation, o->video_path ? o->video_path : ".", o->subset, &err);
    } else if (o->n_inputs > 0) {
        ds = st3d_dataset_from_paths(o->inputs, NULL, o->n_inputs, &err);
    } else {
        cli_errorf("give --annotation-path (and --video-path), or videos / frame folders");
        return NULL;
    }
    if (!ds) {
        cli_error(&err);
        return NULL;
    }
    if (!o->quiet)
        for (int64_t i = 0; i < st3d_dataset_n_warnings(ds); i++)
            fprintf(stderr, "st3d: warning: %s\n", st3d_dataset_warning(ds, i));
    return ds;
}

/* Writes s as a JSON string body (quotes, backslashes, control bytes escaped). */
static void json_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

static void drain_messages(st3d_loader *L, int quiet) {
    char msg[1024];
    while (st3d_loader_pop_message(L, msg, sizeof msg))
        if (!quiet) fprintf(stderr, "st3d: skipped: %s\n", msg);
}

/* --segment: print the temporal transform's clips, one per line. */
static int print_segment(const loader_opts *o) {
    st3d_temporal_cfg c = {o->p.t_crop, o->p.sample_duration, o->p.sample_t_stride, o->p.n_clips,
                           o->p.window_stride};
    st3d_error err;
    st3d_rng rng = st3d_rng_for(o->p.seed, 0, 0, 0);
    int64_t n = st3d_temporal_clips(o->seg_b, o->seg_e, &c, &rng, NULL, 0, &err);
    if (n < 0) return cli_error(&err);
    int64_t *out = malloc((size_t)(n * c.size + 1) * sizeof *out);
    if (!out) return cli_errorf("out of memory");
    rng = st3d_rng_for(o->p.seed, 0, 0, 0);
    st3d_temporal_clips(o->seg_b, o->seg_e, &c, &rng, out, n, &err);
    for (int64_t k = 0; k < n; k++) {
        for (int t = 0; t < c.size; t++) printf(t ? " %lld" : "%lld", (long long)out[k * c.size + t]);
        printf("\n");
    }
    free(out);
    return 0;
}

static int run(int argc, char **argv, int bench) {
    av_log_set_level(AV_LOG_QUIET);
    const char *cmd = bench ? "loader-bench" : "sample-clips";
    loader_opts o;
    int pr = parse(argc, argv, &o);
    if (pr != 0) {
        if (pr > 0) usage(cmd);
        free(o.inputs);
        return pr > 0 ? 0 : 2;
    }
    if (!bench && o.seg_b >= 0) {
        free(o.inputs);
        return print_segment(&o);
    }
    if (!bench && !o.out_dir) {
        free(o.inputs);
        return cli_errorf("sample-clips: give --out-dir"), 2;
    }
    st3d_dataset *ds = open_dataset(&o);
    if (!ds) {
        free(o.inputs);
        return 1;
    }
    st3d_error err;
    st3d_loader *L = st3d_loader_new(ds, &o.p, &err);
    int rc = 0;
    FILE *jl = NULL;
    float *clips = NULL;
    int64_t *labels = NULL;
    st3d_clip_info *info = NULL;
    if (!L) {
        rc = cli_error(&err);
        goto done;
    }
    int64_t shape[5];
    st3d_loader_batch_shape(L, shape);
    size_t cap = (size_t)(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]);
    clips = malloc(cap * sizeof *clips);
    labels = malloc((size_t)shape[0] * sizeof *labels);
    info = malloc((size_t)shape[0] * sizeof *info);
    if (!clips || !labels || !info) {
        rc = cli_errorf("out of memory for a batch of %lld clips", (long long)shape[0]);
        goto done;
    }
    if (!bench) {
        mkdir(o.out_dir, 0777);
        char path[4096];
        snprintf(path, sizeof path, "%s/clips.jsonl", o.out_dir);
        if (!(jl = fopen(path, "w"))) {
            rc = cli_errorf("%s: cannot create", path);
            goto done;
        }
    }
    int64_t total_clips = 0, batch_no = 0;
    double t0 = st3d_now();
    for (int ep = o.begin_epoch; ep < o.begin_epoch + o.n_epochs; ep++) {
        if (st3d_loader_start_epoch(L, ep, &err) != 0) {
            rc = cli_error(&err);
            goto done;
        }
        for (int b = 0; o.max_batches < 0 || b < o.max_batches; b++) {
            int64_t bs[5] = {0}; /* this batch's shape: nocrop's H x W vary */
            int n = 0, r = st3d_loader_peek(L, bs, &err);
            size_t need = (size_t)(bs[0] * bs[1] * bs[2] * bs[3] * bs[4]);
            if (r > 0 && need > cap) {
                float *p = realloc(clips, need * sizeof *clips);
                if (!p) {
                    rc = cli_errorf("out of memory for a batch of %lld clips", (long long)bs[0]);
                    goto done;
                }
                clips = p, cap = need;
            }
            if (r > 0) r = st3d_loader_next(L, clips, labels, info, &n, &err);
            drain_messages(L, o.quiet);
            if (r < 0) {
                rc = cli_error(&err);
                goto done;
            }
            if (r == 0) break;
            total_clips += n;
            if (!bench && n > 0) {
                char path[4096];
                snprintf(path, sizeof path, "%s/batch_%05lld.npy", o.out_dir, (long long)batch_no);
                int64_t sh[5] = {n, bs[1], bs[2], bs[3], bs[4]};
                if (st3d_npy_write_f32(path, clips, 5, sh, &err) != 0) {
                    rc = cli_error(&err);
                    goto done;
                }
                for (int i = 0; i < n; i++) {
                    st3d_sample_info si;
                    st3d_dataset_sample(ds, info[i].sample, &si);
                    const st3d_clip_info *c = &info[i];
                    fprintf(jl,
                            "{\"epoch\": %d, \"batch\": %lld, \"index\": %d, \"sample\": %lld, "
                            "\"label\": %lld, \"begin\": %lld, \"end\": %lld, "
                            "\"clip\": %d, \"crop\": [%d, %d, %d, %d], \"flip\": %d, "
                            "\"jitter\": [%.9g, %.9g, %.9g, %.9g], \"order\": [%d, %d, %d, %d]",
                            ep, (long long)batch_no, i, (long long)c->sample,
                            (long long)labels[i], (long long)c->begin, (long long)c->end, c->clip,
                            c->crop_x, c->crop_y, c->crop_w, c->crop_h, c->flipped,
                            c->jitter[0], c->jitter[1], c->jitter[2], c->jitter[3],
                            c->jitter_order[0], c->jitter_order[1], c->jitter_order[2],
                            c->jitter_order[3]);
                    fputs(", \"video_id\": \"", jl);
                    json_escaped(jl, si.video_id);
                    fputs("\"}\n", jl);
                }
            }
            batch_no++;
            if (bench && o.seconds > 0 && st3d_now() - t0 >= o.seconds) break;
        }
        st3d_loader_stats st;
        st3d_loader_get_stats(L, &st);
        fprintf(stderr, "epoch %d: %lld clips, %lld videos skipped\n", ep, (long long)st.n_clips,
                (long long)st.n_skipped);
        if (bench && o.seconds > 0 && st3d_now() - t0 >= o.seconds) break;
    }
    double el = st3d_now() - t0;
    if (bench)
        printf("loader: %lld clips in %.2f s: %.1f clips/s (%d threads, %lldx3x%lldx%lldx%lld)\n",
               (long long)total_clips, el, el > 0 ? (double)total_clips / el : 0.0,
               o.p.n_threads, (long long)shape[0], (long long)shape[2], (long long)shape[3],
               (long long)shape[4]);
done:
    if (jl) fclose(jl);
    free(clips), free(labels), free(info);
    st3d_loader_free(L);
    st3d_dataset_free(ds);
    free(o.inputs);
    return rc;
}

int cmd_sample_clips(int argc, char **argv) { return run(argc, argv, 0); }
int cmd_loader_bench(int argc, char **argv) { return run(argc, argv, 1); }

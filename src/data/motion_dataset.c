/*
 * motion_dataset.c - st3d_make_motion_dataset: the built-in "motion"
 * dataset (scenes from motion_render.c) encoded as real videos and laid out
 * as UCF-101 is:
 *
 *   DIR/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi   MPEG-4 part 2 in AVI
 *   DIR/splits/classInd.txt      "1 MoveLeft" ...
 *   DIR/splits/trainlist01.txt   "MoveLeft/v_MoveLeft_g04_c01.avi 1" ...
 *   DIR/splits/testlist01.txt    "MoveLeft/v_MoveLeft_g01_c01.avi" ...
 *   DIR/motion_params.txt        the parameters, to resume a run
 *
 * so that `st3d make-annotations --dataset ucf101 --src DIR/splits
 * --video-path DIR/videos` gives the original code's annotation JSON.
 * Videos come in groups of CLIPS_PER_GROUP clips; the test videos take the
 * first groups and the training videos the next ones (as UCF-101's split 1
 * puts groups 1-7 in its test list), so no group is in both lists.
 *
 * The encoder is libavcodec's own MPEG-4 part 2 ("mpeg4", always built in),
 * one thread per video, fixed quantizer, no B-frames, bit-exact flags on the
 * encoder and the muxer: the same parameters give byte-identical files.
 * Videos are encoded in parallel, each to a hidden temporary file renamed
 * into place when complete, so a video that exists is whole.  A run into a
 * folder that holds a dataset of the same parameters resumes it (present
 * videos are kept); other parameters, or a non-empty folder holding no
 * dataset, are refused unless force is set, which removes the old
 * dataset's files first.
 */
#define _POSIX_C_SOURCE 200809L
#include "data/motion.h"
#include "io/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const CLASS_NAMES[ST3D_MOTION_MAX_CLASSES] = {
    "MoveLeft", "MoveRight",       "MoveUp",           "MoveDown",
    "MoveUpLeft", "MoveUpRight",     "MoveDownLeft",     "MoveDownRight"};

#define CLIPS_PER_GROUP 4
#define PARAMS_FILE "motion_params.txt"
#define GENERATOR 2 /* bumped whenever a scene or its encoding changes */
#define QSCALE 4    /* MPEG-4 quantizer: 2 (finest) .. 31 */
#define GOP 12      /* frames between key frames */

st3d_motion_params st3d_motion_default_params(void) {
    st3d_motion_params p;
    memset(&p, 0, sizeof p);
    p.n_classes = ST3D_MOTION_MAX_CLASSES;
    p.train_per_class = 100;
    p.test_per_class = 20;
    p.n_frames = 48;
    p.size = 128;
    p.fps = 25;
    p.seed = 1;
    return p;
}

const char *st3d_motion_class_name(int cls) {
    return cls >= 0 && cls < ST3D_MOTION_MAX_CLASSES ? CLASS_NAMES[cls] : NULL;
}

static int check_params(const st3d_motion_params *p, st3d_error *err) {
    const char *bad = NULL;
    int v = 0;
    if (p->n_classes < 1 || p->n_classes > ST3D_MOTION_MAX_CLASSES)
        bad = "classes (1..8)", v = p->n_classes;
    else if (p->train_per_class < 1 || p->train_per_class > 100000)
        bad = "train-per-class (1..100000)", v = p->train_per_class;
    else if (p->test_per_class < 1 || p->test_per_class > 100000)
        bad = "test-per-class (1..100000)", v = p->test_per_class;
    else if (p->n_frames < 2 || p->n_frames > 100000) bad = "frames (2..100000)", v = p->n_frames;
    else if (p->size < 32 || p->size > ST3D_MOTION_MAX_SIZE || p->size % 2)
        bad = "size (even, 32..2048)", v = p->size;
    else if (p->fps < 1 || p->fps > 1000) bad = "fps (1..1000)", v = p->fps;
    else if (p->threads < 0) bad = "threads (0: all cores)", v = p->threads;
    if (bad) return st3d_fail(err, ST3D_ERR_INVALID, "motion dataset: bad %s: %d", bad, v);
    return 0;
}

/* The file name of video `index` (0-based) of class cls: test videos first. */
static void video_name(const st3d_motion_params *p, int cls, int index, char *buf, size_t cap) {
    int j = index, g0 = 0;
    if (index >= p->test_per_class) {
        j = index - p->test_per_class;
        g0 = (p->test_per_class + CLIPS_PER_GROUP - 1) / CLIPS_PER_GROUP;
    }
    snprintf(buf, cap, "v_%s_g%02d_c%02d.avi", CLASS_NAMES[cls], g0 + j / CLIPS_PER_GROUP + 1,
             j % CLIPS_PER_GROUP + 1);
}

/* What motion_params.txt holds for p (threads and force change nothing). */
static void params_text(const st3d_motion_params *p, char *buf, size_t cap) {
    snprintf(buf, cap,
             "st3d motion dataset, generator %d\nclasses %d\ntrain-per-class %d\n"
             "test-per-class %d\nframes %d\nsize %d\nfps %d\nseed %llu\n"
             "codec mpeg4 qscale %d gop %d\n",
             GENERATOR, p->n_classes, p->train_per_class, p->test_per_class, p->n_frames,
             p->size, p->fps, (unsigned long long)p->seed, QSCALE, GOP);
}

/* ------------------------------------------------------------------ folders */

/* mkdir -p; 0 or -1 with errno set. */
static int mkdirs(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return errno = ENAMETOOLONG, -1;
    for (char *c = tmp + 1; *c; c++)
        if (*c == '/') {
            *c = '\0';
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
            *c = '/';
        }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
    return st3d_is_dir(tmp) ? 0 : (errno = ENOTDIR, -1);
}

static int is_empty_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

/* Reads a small text file into buf (NUL-terminated); -1 when unreadable. */
static int read_small(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

/* In the class folders of every known class: removes temporary files left
 * by processes that are gone, and with all_videos also every video of a
 * dataset (v_<Class>_*.avi) and, when then empty, the folder. */
static void clean_videos(const char *dir, int all_videos) {
    for (int c = 0; c < ST3D_MOTION_MAX_CLASSES; c++) {
        char folder[4200], path[4600], prefix[64];
        snprintf(folder, sizeof folder, "%s/videos/%s", dir, CLASS_NAMES[c]);
        snprintf(prefix, sizeof prefix, "v_%s_", CLASS_NAMES[c]);
        DIR *d = opendir(folder);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            const char *nm = e->d_name, *tmp = strstr(nm, ".avi.tmp");
            size_t n = strlen(nm);
            int kill_it = 0;
            if (nm[0] == '.' && !strncmp(nm + 1, prefix, strlen(prefix)) && tmp) {
                long pid = strtol(tmp + 8, NULL, 10);
                kill_it = pid <= 0 || (pid != (long)getpid() && kill((pid_t)pid, 0) != 0 &&
                                       errno == ESRCH);
            } else if (all_videos && !strncmp(nm, prefix, strlen(prefix)) && n > 4 &&
                       !strcmp(nm + n - 4, ".avi")) {
                kill_it = 1;
            }
            if (!kill_it) continue;
            snprintf(path, sizeof path, "%s/%s", folder, nm);
            remove(path);
        }
        closedir(d);
        if (all_videos) rmdir(folder); /* fails, harmlessly, when not empty */
    }
}

static int write_text_cb(FILE *f, void *user, st3d_error *err) {
    const char *s = user;
    if (fputs(s, f) < 0) return st3d_fail(err, ST3D_ERR_IO, "write failed");
    return 0;
}

/* Makes dir ready: created, resumed or (with force) emptied of an old
 * dataset; the class folders made and the parameters recorded.  Sets
 * *resumed when a dataset of the same parameters was found. */
static int prepare(const st3d_motion_params *p, const char *dir, int *resumed, st3d_error *err) {
    char want[1024], have[1024], path[4200];
    params_text(p, want, sizeof want);
    *resumed = 0;
    if (!st3d_is_dir(dir)) {
        if (access(dir, F_OK) == 0)
            return st3d_fail(err, ST3D_ERR_INVALID, "%s: exists and is not a folder", dir);
        if (mkdirs(dir) != 0)
            return st3d_fail(err, ST3D_ERR_INVALID, "%s: cannot create: %s", dir, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/%s", dir, PARAMS_FILE);
    int found = read_small(path, have, sizeof have) == 0;
    if (found && !strcmp(have, want) && !p->force) {
        *resumed = 1;
    } else if (!p->force && found) {
        /* name the first parameter that differs */
        char *a = have, *b = want;
        while (*a && *a == *b) a++, b++;
        while (a > have && a[-1] != '\n') a--, b--;
        a[strcspn(a, "\n")] = '\0', b[strcspn(b, "\n")] = '\0';
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "%s: holds a motion dataset made with '%s', not '%s'; not replaced "
                         "without force", dir, a, b);
    } else if (!p->force && !is_empty_dir(dir)) {
        return st3d_fail(err, ST3D_ERR_INVALID,
                         "%s: is not empty and holds no motion dataset (%s); not used "
                         "without force", dir, PARAMS_FILE);
    }
    if (!*resumed) { /* a fresh start: nothing of an older dataset stays */
        remove(path);
        static const char *const splits[] = {"classInd.txt", "trainlist01.txt", "testlist01.txt"};
        for (int i = 0; i < 3; i++) {
            char s[4300];
            snprintf(s, sizeof s, "%s/splits/%s", dir, splits[i]);
            remove(s);
        }
    }
    clean_videos(dir, !*resumed);
    snprintf(path, sizeof path, "%s/splits", dir);
    if (mkdirs(path) != 0)
        return st3d_fail(err, ST3D_ERR_INVALID, "%s: cannot create: %s", path, strerror(errno));
    for (int c = 0; c < p->n_classes; c++) {
        snprintf(path, sizeof path, "%s/videos/%s", dir, CLASS_NAMES[c]);
        if (mkdirs(path) != 0)
            return st3d_fail(err, ST3D_ERR_INVALID, "%s: cannot create: %s", path, strerror(errno));
    }
    if (*resumed) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, PARAMS_FILE);
    return st3d_write_atomic(path, write_text_cb, want, err);
}

/* The three split files, written atomically once every video is there. */
static int write_splits(const st3d_motion_params *p, const char *dir, st3d_error *err) {
    size_t per = (size_t)p->train_per_class + (size_t)p->test_per_class;
    size_t cap = (size_t)p->n_classes * per * 128 + 1024;
    char *buf = st3d_malloc(cap, err), name[256], path[4200], label[16];
    if (!buf) return -1;
    int rc = 0;
    for (int kind = 0; kind < 3 && rc == 0; kind++) {
        size_t n = 0;
        buf[0] = '\0';
        for (int c = 0; c < p->n_classes; c++) {
            if (kind == 0) {
                n += (size_t)snprintf(buf + n, cap - n, "%d %s\n", c + 1, CLASS_NAMES[c]);
                continue;
            }
            int lo = kind == 1 ? p->test_per_class : 0;
            int hi = kind == 1 ? p->test_per_class + p->train_per_class : p->test_per_class;
            for (int i = lo; i < hi; i++) {
                video_name(p, c, i, name, sizeof name);
                /* UCF-101's lines: "Class/video.avi k" (k from 1), "Class/video.avi" */
                if (kind == 1) snprintf(label, sizeof label, " %d", c + 1);
                else label[0] = '\0';
                n += (size_t)snprintf(buf + n, cap - n, "%s/%s%s\n", CLASS_NAMES[c], name, label);
            }
        }
        static const char *const files[3] = {"classInd.txt", "trainlist01.txt", "testlist01.txt"};
        snprintf(path, sizeof path, "%s/splits/%s", dir, files[kind]);
        rc = st3d_write_atomic(path, write_text_cb, buf, err);
    }
    free(buf);
    return rc;
}

/* ----------------------------------------------------------------- encoding */

/* RGB24 to YUV 4:2:0, BT.601 limited range, in integers (the same bytes
 * on every machine). */
static void rgb_to_yuv420(const uint8_t *rgb, int n, AVFrame *f) {
    for (int y = 0; y < n; y++) {
        const uint8_t *s = rgb + (size_t)y * n * 3;
        uint8_t *d = f->data[0] + (size_t)y * f->linesize[0];
        for (int x = 0; x < n; x++, s += 3)
            d[x] = (uint8_t)(((66 * s[0] + 129 * s[1] + 25 * s[2] + 128) >> 8) + 16);
    }
    for (int y = 0; y < n / 2; y++) {
        const uint8_t *s0 = rgb + (size_t)(2 * y) * n * 3, *s1 = s0 + (size_t)n * 3;
        uint8_t *u = f->data[1] + (size_t)y * f->linesize[1];
        uint8_t *v = f->data[2] + (size_t)y * f->linesize[2];
        for (int x = 0; x < n / 2; x++, s0 += 6, s1 += 6) {
            int r = s0[0] + s0[3] + s1[0] + s1[3], g = s0[1] + s0[4] + s1[1] + s1[4];
            int b = s0[2] + s0[5] + s1[2] + s1[5];
            /* the sums of four pixels: 128 << 10 keeps the numerators positive */
            u[x] = (uint8_t)((-38 * r - 74 * g + 112 * b + (128 << 10) + 512) >> 10);
            v[x] = (uint8_t)((112 * r - 94 * g - 18 * b + (128 << 10) + 512) >> 10);
        }
    }
}

static int av_fail(st3d_error *err, st3d_status code, const char *path, const char *what, int r) {
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(r, msg, sizeof msg);
    return st3d_fail(err, code, "%s: %s: %s", path, what, msg);
}

/* Moves every packet the encoder has ready into the file. */
static int drain(AVCodecContext *enc, AVFormatContext *oc, AVStream *st, AVPacket *pkt,
                 const char *path, st3d_error *err) {
    for (;;) {
        int r = avcodec_receive_packet(enc, pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return av_fail(err, ST3D_ERR_BACKEND, path, "encoding failed", r);
        av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
        pkt->stream_index = st->index;
        if ((r = av_interleaved_write_frame(oc, pkt)) < 0)
            return av_fail(err, ST3D_ERR_IO, path, "write failed", r);
    }
}

/* Scratch of one worker thread. */
typedef struct scratch {
    float *acc;   /* size x size x 3 floats for st3d_motion_render */
    uint8_t *rgb; /* size x size x 3 bytes: the rendered frame */
} scratch;

/* Renders and encodes video (cls, index) into the file tmp (path names it
 * in errors). */
static int encode(const st3d_motion_params *p, int cls, int index, const char *tmp,
                  const char *path, scratch *sc, st3d_error *err) {
    st3d_motion_scene scene;
    if (st3d_motion_scene_init(&scene, p->seed, cls, index, p->size, p->n_frames, err) != 0)
        return -1;
    AVFormatContext *oc = NULL;
    AVCodecContext *enc = NULL;
    AVFrame *fr = NULL;
    AVPacket *pkt = NULL;
    AVStream *st;
    int rc = -1, r;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) {
        st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: libavcodec has no MPEG-4 part 2 encoder", path);
        goto done;
    }
    if (avformat_alloc_output_context2(&oc, NULL, "avi", NULL) < 0 || !oc) {
        st3d_fail(err, ST3D_ERR_UNSUPPORTED, "%s: libavformat has no AVI muxer", path);
        goto done;
    }
    enc = avcodec_alloc_context3(codec);
    fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!enc || !fr || !pkt) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    enc->width = enc->height = p->size;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->time_base = (AVRational){1, p->fps};
    enc->framerate = (AVRational){p->fps, 1};
    enc->sample_aspect_ratio = (AVRational){1, 1};
    enc->gop_size = GOP;
    enc->max_b_frames = 0;
    enc->thread_count = 1;
    enc->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_BITEXACT;
    enc->global_quality = FF_QP2LAMBDA * QSCALE;
    enc->color_range = AVCOL_RANGE_MPEG;
    enc->colorspace = AVCOL_SPC_SMPTE170M;
    enc->color_primaries = AVCOL_PRI_SMPTE170M;
    enc->color_trc = AVCOL_TRC_SMPTE170M;
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    oc->flags |= AVFMT_FLAG_BITEXACT;
    if ((r = avcodec_open2(enc, codec, NULL)) < 0) {
        av_fail(err, ST3D_ERR_BACKEND, path, "cannot open the MPEG-4 encoder", r);
        goto done;
    }
    if (!(st = avformat_new_stream(oc, NULL)) ||
        avcodec_parameters_from_context(st->codecpar, enc) < 0) {
        st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    st->time_base = enc->time_base;
    st->avg_frame_rate = enc->framerate;
    if ((r = avio_open(&oc->pb, tmp, AVIO_FLAG_WRITE)) < 0) {
        av_fail(err, ST3D_ERR_IO, tmp, "cannot create", r);
        goto done;
    }
    if ((r = avformat_write_header(oc, NULL)) < 0) {
        av_fail(err, ST3D_ERR_IO, path, "cannot write the header", r);
        goto done;
    }
    fr->format = AV_PIX_FMT_YUV420P;
    fr->width = fr->height = p->size;
    if ((r = av_frame_get_buffer(fr, 0)) < 0) {
        av_fail(err, ST3D_ERR_NOMEM, path, "no frame buffer", r);
        goto done;
    }
    for (int t = 0; t < p->n_frames; t++) {
        st3d_motion_render(&scene, t, sc->acc, sc->rgb);
        if ((r = av_frame_make_writable(fr)) < 0) {
            av_fail(err, ST3D_ERR_NOMEM, path, "no frame buffer", r);
            goto done;
        }
        rgb_to_yuv420(sc->rgb, p->size, fr);
        fr->pts = t;
        if ((r = avcodec_send_frame(enc, fr)) < 0) {
            av_fail(err, ST3D_ERR_BACKEND, path, "encoding failed", r);
            goto done;
        }
        if (drain(enc, oc, st, pkt, path, err) != 0) goto done;
    }
    if ((r = avcodec_send_frame(enc, NULL)) < 0) {
        av_fail(err, ST3D_ERR_BACKEND, path, "encoding failed", r);
        goto done;
    }
    if (drain(enc, oc, st, pkt, path, err) != 0) goto done;
    if ((r = av_write_trailer(oc)) < 0) {
        av_fail(err, ST3D_ERR_IO, path, "cannot finish the file", r);
        goto done;
    }
    rc = 0;
done:
    if (oc && oc->pb && (r = avio_closep(&oc->pb)) < 0 && rc == 0)
        rc = av_fail(err, ST3D_ERR_IO, path, "close failed", r);
    avformat_free_context(oc);
    avcodec_free_context(&enc);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    st3d_motion_scene_release(&scene);
    return rc;
}

/* ------------------------------------------------------------------ workers */

/* One video to make. */
typedef struct job {
    int cls;   /* class */
    int index; /* number within the class, 0-based (test videos first) */
} job;

/* State shared by the worker threads. */
typedef struct run {
    const st3d_motion_params *p; /* as given */
    const char *dir;             /* the dataset folder */
    job *jobs;                   /* the videos still missing */
    int64_t n_jobs;              /* how many */
    int64_t next;                /* next job to take */
    int64_t done;                /* videos finished, including those already present */
    int64_t total;               /* videos of the dataset */
    int64_t bytes;               /* bytes of the videos written */
    int failed;                  /* 1: stop taking jobs; err holds the first failure */
    st3d_error err;              /* the first failure */
    pthread_mutex_t mu;          /* guards next, done, bytes, failed, err, progress calls */
} run;

static void *worker(void *arg) {
    run *R = arg;
    const st3d_motion_params *p = R->p;
    st3d_error e;
    scratch sc;
    size_t px = (size_t)p->size * (size_t)p->size * 3;
    sc.acc = st3d_malloc(px * sizeof(float), &e);
    sc.rgb = st3d_malloc(px, &e);
    if (!sc.acc || !sc.rgb) {
        pthread_mutex_lock(&R->mu);
        if (!R->failed) R->failed = 1, R->err = e;
        pthread_mutex_unlock(&R->mu);
    }
    for (;;) {
        pthread_mutex_lock(&R->mu);
        int64_t i = R->failed ? R->n_jobs : R->next++;
        pthread_mutex_unlock(&R->mu);
        if (i >= R->n_jobs) break;
        const job *j = &R->jobs[i];
        char name[256], path[4400], tmp[4500];
        video_name(p, j->cls, j->index, name, sizeof name);
        snprintf(path, sizeof path, "%s/videos/%s/%s", R->dir, CLASS_NAMES[j->cls], name);
        snprintf(tmp, sizeof tmp, "%s/videos/%s/.%s.tmp%ld", R->dir, CLASS_NAMES[j->cls], name,
                 (long)getpid());
        int rc = encode(p, j->cls, j->index, tmp, path, &sc, &e);
        if (rc == 0 && rename(tmp, path) != 0)
            rc = st3d_fail(&e, ST3D_ERR_IO, "%s: cannot rename into place: %s", path,
                           strerror(errno));
        if (rc != 0) remove(tmp);
        struct stat sb;
        int64_t size = rc == 0 && stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
        pthread_mutex_lock(&R->mu);
        if (rc != 0 && !R->failed) R->failed = 1, R->err = e;
        if (rc == 0) {
            R->done++, R->bytes += size;
            if (p->progress) p->progress(p->progress_user, R->done, R->total, path);
        }
        pthread_mutex_unlock(&R->mu);
    }
    free(sc.acc);
    free(sc.rgb);
    return NULL;
}

int st3d_make_motion_dataset(const st3d_motion_params *p, const char *dir, st3d_motion_stats *stats,
                             st3d_error *err) {
    double t0 = st3d_now();
    st3d_motion_stats s;
    memset(&s, 0, sizeof s);
    if (stats) *stats = s;
    if (!p || !dir || !*dir)
        return st3d_fail(err, ST3D_ERR_INVALID, "motion dataset: no folder given");
    if (check_params(p, err) != 0) return -1;
    if (strlen(dir) > 3800) return st3d_fail(err, ST3D_ERR_INVALID, "%.64s...: path too long", dir);
    int resumed;
    if (prepare(p, dir, &resumed, err) != 0) return -1;

    int per = p->train_per_class + p->test_per_class;
    run R;
    memset(&R, 0, sizeof R);
    R.p = p, R.dir = dir;
    R.total = (int64_t)p->n_classes * per;
    R.jobs = st3d_calloc((size_t)R.total, sizeof *R.jobs, err);
    if (!R.jobs) return -1;
    for (int c = 0; c < p->n_classes; c++)
        for (int i = 0; i < per; i++) {
            char name[256], path[4400];
            struct stat sb;
            video_name(p, c, i, name, sizeof name);
            snprintf(path, sizeof path, "%s/videos/%s/%s", dir, CLASS_NAMES[c], name);
            if (resumed && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                s.n_present++, s.bytes += (int64_t)sb.st_size; /* renamed into place: complete */
                continue;
            }
            R.jobs[R.n_jobs].cls = c, R.jobs[R.n_jobs].index = i;
            R.n_jobs++;
        }
    R.done = s.n_present;

    int n_threads = p->threads > 0 ? p->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > R.n_jobs) n_threads = R.n_jobs > 0 ? (int)R.n_jobs : 1;
    pthread_mutex_init(&R.mu, NULL);
    pthread_t *th = st3d_calloc((size_t)n_threads, sizeof *th, err);
    int started = 0;
    for (int i = 0; th && i < n_threads && R.n_jobs > 0; i++)
        if (pthread_create(&th[i], NULL, worker, &R) == 0) started++;
    if (started == 0 && R.n_jobs > 0) worker(&R); /* no thread: do it here */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&R.mu);
    free(R.jobs);
    if (R.failed) {
        if (err) *err = R.err;
        return -1;
    }
    s.n_videos = R.total;
    s.n_written = R.done - s.n_present;
    s.bytes += R.bytes;
    if (write_splits(p, dir, err) != 0) return -1;
    s.seconds = st3d_now() - t0;
    if (stats) *stats = s;
    return 0;
}

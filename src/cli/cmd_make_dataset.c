/*
 * cmd_make_dataset.c - `st3d make-dataset motion DIR`: writes the built-in
 * "motion" dataset (st3d_make_motion_dataset: real .avi videos whose class
 * is the motion of a shape, laid out as UCF-101) and prints a summary with
 * the make-annotations command that turns it into the original code's
 * annotation JSON.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cli/progress.h"

#include <libavutil/log.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    st3d_motion_params d = st3d_motion_default_params();
    printf("usage: st3d make-dataset motion DIR [options]\n"
           "  Videos (MPEG-4 part 2 in .avi) of a textured shape moving over a drifting\n"
           "  textured background; the class is the direction of the shape's motion:\n"
           "  MoveLeft, MoveRight, MoveUp, MoveDown, MoveUpLeft, MoveUpRight,\n"
           "  MoveDownLeft, MoveDownRight.\n"
           "  Laid out as UCF-101: DIR/videos/<Class>/v_<Class>_gGG_cCC.avi and\n"
           "  DIR/splits/{classInd,trainlist01,testlist01}.txt (test and training\n"
           "  videos in separate groups).  Rerun into the same DIR with the same options,\n"
           "  it keeps the videos already there and makes the missing ones (an\n"
           "  interrupted run leaves no partial video); another dataset or a non-empty\n"
           "  folder is refused without --force.\n"
           "  --classes K           classes, the first K of the list above (%d)\n"
           "  --train-per-class N   training videos per class (%d)\n"
           "  --test-per-class N    test videos per class (%d)\n"
           "  --frames T            frames per video (%d)\n"
           "  --size S              frame width and height, even, 32..2048 (%d)\n"
           "  --fps F               frame rate (%d)\n"
           "  --seed N              same seed, byte-identical videos (%llu)\n"
           "  --threads N           videos encoded at once (0: all cores; default 0)\n"
           "  --force               replace what DIR holds, making every video anew\n"
           "Then: st3d make-annotations --dataset ucf101 --src DIR/splits\n"
           "        --video-path DIR/videos --dst DIR/motion.json\n"
           "and train without horizontal flips (--no-hflip): a flip turns MoveLeft into\n"
           "MoveRight (and MoveUpLeft into MoveUpRight).\n",
           d.n_classes, d.train_per_class, d.test_per_class, d.n_frames, d.size, d.fps,
           (unsigned long long)d.seed);
}

static void on_progress(void *user, int64_t done, int64_t total, const char *path) {
    cli_progress *p = user;
    p->total = total;
    cli_progress_add(p, done - p->done, path);
}

/* An integer option in [lo, hi]; prints and returns -1 otherwise. */
static int int_opt(const char *opt, const char *s, int lo, int hi, int *out) {
    if (cli_parse_int(opt, s, out)) return -1;
    if (*out < lo || *out > hi) {
        cli_errorf("%s: must be in %d..%d, got %d", opt, lo, hi, *out);
        return -1;
    }
    return 0;
}

int cmd_make_dataset(int argc, char **argv) {
    av_log_set_level(AV_LOG_QUIET);
    st3d_motion_params p = st3d_motion_default_params();
    const char *kind = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc, bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (cli_opt_is(a, "classes") && has) bad = int_opt(a, argv[++i], 1, 8, &p.n_classes);
        else if (cli_opt_is(a, "train-per-class") && has)
            bad = int_opt(a, argv[++i], 1, 100000, &p.train_per_class);
        else if (cli_opt_is(a, "test-per-class") && has)
            bad = int_opt(a, argv[++i], 1, 100000, &p.test_per_class);
        else if (cli_opt_is(a, "frames") && has)
            bad = int_opt(a, argv[++i], 2, 100000, &p.n_frames);
        else if (cli_opt_is(a, "size") && has) {
            if (!(bad = int_opt(a, argv[++i], 32, 2048, &p.size)) && p.size % 2)
                bad = cli_errorf("%s: must be even, got %d", a, p.size);
        } else if (cli_opt_is(a, "fps") && has) bad = int_opt(a, argv[++i], 1, 1000, &p.fps);
        else if (cli_opt_is(a, "threads") && has) bad = int_opt(a, argv[++i], 0, 1024, &p.threads);
        else if (cli_opt_is(a, "seed") && has) {
            const char *s = argv[++i];
            char *end;
            errno = 0;
            unsigned long long v = strtoull(s, &end, 10);
            if (errno || end == s || *end || strchr(s, '-'))
                bad = cli_errorf("%s: expected a non-negative integer, got '%s'", a, s);
            p.seed = (uint64_t)v;
        } else if (cli_opt_is(a, "force")) p.force = 1;
        else if (a[0] == '-' && a[1] == '-')
            bad = cli_errorf("make-dataset: unknown option '%s'%s", a,
                             has ? "" : " (or missing value)");
        else if (!kind) kind = a;
        else if (!dir) dir = a;
        else bad = cli_errorf("make-dataset: unexpected argument '%s'", a);
        if (bad) return 2;
    }
    if (!kind || !dir) {
        usage();
        return 2;
    }
    if (strcmp(kind, "motion") != 0)
        return cli_errorf("make-dataset: unknown dataset kind '%s' (known: motion)", kind), 2;

    cli_progress prog;
    cli_progress_start(&prog, "videos", 0);
    if (prog.tty) p.progress = on_progress, p.progress_user = &prog;
    st3d_motion_stats s;
    st3d_error err;
    int rc = st3d_make_motion_dataset(&p, dir, &s, &err);
    if (prog.tty && prog.done > 0) fputc('\n', stderr);
    if (rc != 0) {
        cli_error(&err);
        return err.code == ST3D_ERR_INVALID ? 2 : 1;
    }
    printf("%s: motion dataset, %d classes x (%d train + %d test) = %lld videos, "
           "%d frames %dx%d at %d fps, MPEG-4 part 2 in .avi\n",
           dir, p.n_classes, p.train_per_class, p.test_per_class, (long long)s.n_videos,
           p.n_frames, p.size, p.size, p.fps);
    printf("%lld written, %lld already there, %.1f MB, %.1f s\n", (long long)s.n_written,
           (long long)s.n_present, (double)s.bytes / 1e6, s.seconds);
    printf("annotations: st3d make-annotations --dataset ucf101 --src %s/splits "
           "--video-path %s/videos --dst %s/motion.json\n",
           dir, dir, dir);
    printf("train with --no-hflip: a horizontal flip swaps MoveLeft and MoveRight (and the "
           "diagonals)\n");
    return 0;
}

/*
 * cmd_make_annotations.c - `st3d make-annotations`: the original code's
 * annotation JSON (the util_scripts *_json.py scripts) from a dataset's official split
 * files, with segments counted from the frame folders (or videos).
 */
#include "cli.h"

#include <libavutil/log.h>

#include <stdio.h>
#include <string.h>

static void usage(void) {
    printf("usage: st3d make-annotations --dataset ucf101|hmdb51|kinetics|activitynet\n"
           "                             --src PATH --dst FILE.json [options]\n"
           "  --src PATH         ucf101: folder of classInd.txt, trainlist0N.txt, testlist0N.txt\n"
           "                     hmdb51: folder of <label>_test_splitN.txt\n"
           "                     kinetics: folder of kinetics-K_{train,val,test}.csv\n"
           "                     activitynet: the v1.3 JSON (activity_net.v1-3.min.json)\n"
           "  --video-path DIR   frame folders / videos, for segments (and fps)\n"
           "  --split N          ucf101 / hmdb51 split 1..3 (1); 0: all three, DST gets\n"
           "                     _1 _2 _3 before .json\n"
           "  --n-classes K      kinetics: 400, 600, 700 (400)\n"
           "  --classes A,B,...  keep only these classes (labelled in this order) and\n"
           "                     their videos, e.g. for fine-tuning on a subset\n"
           "  --fps F            activitynet: frame rate where no video gives one\n");
}

int cmd_make_annotations(int argc, char **argv) {
    av_log_set_level(AV_LOG_QUIET);
    st3d_annotation_params p = st3d_annotation_default_params();
    const char *dst = NULL;
    p.dataset = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        float f;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (cli_opt_is(a, "dataset") && has) p.dataset = argv[++i];
        else if ((cli_opt_is(a, "src") || cli_opt_is(a, "dir-path")) && has) p.src = argv[++i];
        else if ((cli_opt_is(a, "dst") || cli_opt_is(a, "dst-path")) && has) dst = argv[++i];
        else if (cli_opt_is(a, "video-path") && has) p.video_root = argv[++i];
        else if (cli_opt_is(a, "split") && has) {
            if (cli_parse_int(a, argv[++i], &p.split)) return 2;
        } else if (cli_opt_is(a, "classes") && has) {
            p.classes = argv[++i];
        } else if (cli_opt_is(a, "n-classes") && has) {
            if (cli_parse_int(a, argv[++i], &p.n_classes)) return 2;
        } else if (cli_opt_is(a, "fps") && has) {
            if (cli_parse_float(a, argv[++i], &f)) return 2;
            p.fps = f;
        } else return cli_errorf("make-annotations: unknown option '%s'", a), 2;
    }
    if (!p.dataset || !p.src || !dst) {
        usage();
        return 2;
    }
    int first = p.split, last = p.split;
    if (p.split == 0) first = 1, last = 3;
    for (int s = first; s <= last; s++) {
        char path[4096];
        if (p.split == 0) {
            size_t n = strlen(dst);
            int ext = n > 5 && !strcmp(dst + n - 5, ".json");
            snprintf(path, sizeof path, "%.*s_%d.json", (int)(ext ? n - 5 : n), dst, s);
        } else {
            snprintf(path, sizeof path, "%s", dst);
        }
        st3d_annotation_params q = p;
        q.split = s;
        st3d_error err;
        int64_t n = 0;
        if (st3d_make_annotations(&q, path, &n, &err) != 0) return cli_error(&err);
        fprintf(stderr, "%s: %lld videos\n", path, (long long)n);
    }
    return 0;
}

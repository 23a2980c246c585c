/*
 * cmd_video.c - `st3d decode VIDEO`: decodes a video with st3d_video and
 * writes its frames as raw RGB24 (what `ffmpeg -f rawvideo -pix_fmt rgb24`
 * writes), printing the stream's properties and one line per frame with its
 * number and timestamp.  Used by the tests to compare st3d's decoding with
 * the ffmpeg program's.
 */
#include "cli.h"

#include <libavutil/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    printf("usage: st3d decode VIDEO [options]\n"
           "  --out FILE            raw RGB24 frames, one after another\n"
           "  --short-side N        scale the shorter side to N (aspect kept)\n"
           "  --width W --height H  scale to exactly W x H\n"
           "  --scaler NAME         bilinear (default), bicubic, area, point\n"
           "  --threads N           decoder threads (0: automatic)\n"
           "  --no-autorotate       ignore rotation metadata\n"
           "  --seek SECONDS        start at the first frame at or after this time\n"
           "  --frames I,J,...      decode exactly these 0-based frames (in this order)\n"
           "  --max-frames N        stop after N frames\n");
}

int cmd_decode(int argc, char **argv) {
    av_log_set_level(AV_LOG_QUIET);
    st3d_video_params vp = st3d_video_default_params();
    const char *in = NULL, *out = NULL, *frames = NULL;
    double seek = -1;
    int max_frames = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (cli_opt_is(a, "out") && has) out = argv[++i];
        else if (cli_opt_is(a, "short-side") && has) {
            if (cli_parse_int(a, argv[++i], &vp.short_side)) return 2;
        } else if (cli_opt_is(a, "width") && has) {
            if (cli_parse_int(a, argv[++i], &vp.width)) return 2;
        } else if (cli_opt_is(a, "height") && has) {
            if (cli_parse_int(a, argv[++i], &vp.height)) return 2;
        } else if (cli_opt_is(a, "threads") && has) {
            if (cli_parse_int(a, argv[++i], &vp.threads)) return 2;
        } else if (cli_opt_is(a, "max-frames") && has) {
            if (cli_parse_int(a, argv[++i], &max_frames)) return 2;
        } else if (cli_opt_is(a, "seek") && has) {
            float f;
            if (cli_parse_float(a, argv[++i], &f)) return 2;
            seek = f;
        } else if (cli_opt_is(a, "frames") && has) frames = argv[++i];
        else if (cli_opt_is(a, "no-autorotate")) vp.autorotate = 0;
        else if (cli_opt_is(a, "scaler") && has) {
            const char *s = argv[++i];
            if (!strcmp(s, "bilinear")) vp.scaler = ST3D_SCALER_BILINEAR;
            else if (!strcmp(s, "bicubic")) vp.scaler = ST3D_SCALER_BICUBIC;
            else if (!strcmp(s, "area")) vp.scaler = ST3D_SCALER_AREA;
            else if (!strcmp(s, "point")) vp.scaler = ST3D_SCALER_POINT;
            else return cli_errorf("--scaler: unknown scaler '%s'", s), 2;
        } else if (a[0] == '-' && a[1] == '-') return cli_errorf("decode: unknown option '%s'", a), 2;
        else if (!in) in = a;
        else return cli_errorf("decode: unexpected argument '%s'", a), 2;
    }
    if (!in) {
        usage();
        return 2;
    }
    st3d_error err;
    st3d_video *v = st3d_video_open(in, &vp, &err);
    if (!v) return cli_error(&err);
    const st3d_video_info *vi = st3d_video_get_info(v);
    printf("video %s codec %s width %d height %d coded %dx%d rotation %d fps %.6f duration %.6f "
           "frames %lld accurate %d\n",
           in, vi->codec, vi->width, vi->height, vi->coded_width, vi->coded_height, vi->rotation,
           vi->fps, vi->duration, (long long)vi->n_frames, vi->frame_accurate);
    size_t fsz = (size_t)vi->width * vi->height * 3;
    uint8_t *buf = malloc(fsz);
    FILE *f = out ? fopen(out, "wb") : NULL;
    int rc = 0;
    if (!buf || (out && !f)) {
        rc = cli_errorf("%s: cannot write", out ? out : "(memory)");
        goto done;
    }
    if (frames) {
        /* explicit list: frame-accurate extraction */
        int n = 1;
        for (const char *c = frames; *c; c++) n += *c == ',';
        int64_t *idx = malloc((size_t)n * sizeof *idx);
        uint8_t *all = malloc(fsz * (size_t)n);
        if (!idx || !all) {
            free(idx), free(all);
            rc = cli_errorf("out of memory");
            goto done;
        }
        const char *c = frames;
        for (int k = 0; k < n; k++) {
            idx[k] = strtoll(c, (char **)&c, 10);
            if (*c == ',') c++;
        }
        if (st3d_video_read_frames(v, idx, n, all, &err) != 0) rc = cli_error(&err);
        else {
            for (int k = 0; k < n; k++) printf("frame %lld\n", (long long)idx[k]);
            if (f) fwrite(all, fsz, (size_t)n, f);
        }
        free(idx), free(all);
        goto done;
    }
    if (seek >= 0 && st3d_video_seek(v, seek, &err) != 0) {
        rc = cli_error(&err);
        goto done;
    }
    for (int k = 0; max_frames < 0 || k < max_frames; k++) {
        int64_t idx;
        double pts;
        int r = st3d_video_read_frame(v, buf, &idx, &pts, &err);
        if (r < 0) {
            rc = cli_error(&err);
            break;
        }
        if (r == 0) break;
        printf("frame %lld %.6f\n", (long long)idx, pts);
        if (f) fwrite(buf, fsz, 1, f);
    }
done:
    if (f && fclose(f) != 0) rc = cli_errorf("%s: write failed", out);
    free(buf);
    st3d_video_free(v);
    return rc;
}

/*
 * resize_tool.c - st3d's Pillow-exact bilinear resize (src/data/resize.c)
 * over many geometries in one process, for test_resize.py.
 *
 *   resize_tool IMAGE.rgb W H < cases > pixels
 *
 * IMAGE.rgb is W x H RGB bytes.  Each line of standard input is a case:
 *   SRC_W SRC_H DST_W DST_H WX WY WW WH
 * the top-left SRC_W x SRC_H of the image (its rows still W * 3 bytes
 * apart) resized to DST_W x DST_H, of which the window WW x WH at (WX, WY)
 * is written to standard output as raw RGB bytes, case after case.  One
 * work area serves every case, as a loader thread's does.
 */
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: resize_tool IMAGE.rgb W H < cases > pixels\n");
        return 2;
    }
    int w = atoi(argv[2]), h = atoi(argv[3]);
    size_t n = (size_t)w * (size_t)h * 3;
    uint8_t *img = w > 0 && h > 0 ? malloc(n) : NULL;
    FILE *f = fopen(argv[1], "rb");
    if (!img || !f || fread(img, 1, n, f) != n) {
        fprintf(stderr, "resize_tool: %s: cannot read %dx%d RGB bytes\n", argv[1], w, h);
        return 1;
    }
    fclose(f);
    st3d_spatial_work work = {0};
    st3d_error err = {0};
    int sw, sh, dw, dh, wx, wy, ww, wh, rc = 0;
    while (scanf("%d %d %d %d %d %d %d %d", &sw, &sh, &dw, &dh, &wx, &wy, &ww, &wh) == 8) {
        uint8_t *out = sw <= w && sh <= h && ww > 0 && wh > 0 ? malloc((size_t)ww * wh * 3) : NULL;
        if (!out || st3d_resize_pil_bilinear(img, sw, sh, (size_t)w * 3, dw, dh, wx, wy, ww, wh,
                                             out, &work, &err) != 0) {
            fprintf(stderr, "resize_tool: case %d %d %d %d %d %d %d %d: %s\n", sw, sh, dw, dh, wx,
                    wy, ww, wh, out ? err.msg : "bad case");
            free(out);
            rc = 1;
            break;
        }
        fwrite(out, 1, (size_t)ww * wh * 3, stdout);
        free(out);
    }
    st3d_spatial_work_free(&work);
    free(img);
    return rc;
}

/*
 * consumer.c - a C program that uses libst3d the way a user's program would:
 * through the installed header and pkg-config alone (tests/api/check_api.sh
 * builds it against an install tree).  It builds a small ResNet-10, runs one
 * eval forward on a fixed input and checks what a caller can check without a
 * reference: the version string, shapes, finite logits, and that an invalid
 * call comes back as an error rather than a crash.
 */
#include <st3d.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    st3d_error err = {0};
    printf("libst3d %s\n", st3d_version());

    st3d_model_params p = st3d_model_default_params();
    strcpy(p.model, "resnet");
    p.model_depth = 10;
    p.n_classes = 5;
    st3d_set_threads(1);
    st3d_model *m = st3d_model_new(&p, 7, &err);
    if (!m) { fprintf(stderr, "consumer: %s\n", err.msg); return 1; }

    const int64_t shape[5] = {1, 3, 8, 32, 32};
    size_t n = 1 * 3 * 8 * 32 * 32;
    float *x = malloc(n * sizeof *x);
    float logits[5];
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    if (st3d_model_forward(m, x, shape, logits, NULL, &err)) {
        fprintf(stderr, "consumer: forward: %s\n", err.msg);
        return 1;
    }
    for (int k = 0; k < 5; k++)
        if (!isfinite(logits[k])) { fprintf(stderr, "consumer: logit %d not finite\n", k); return 1; }
    printf("logits %.4f %.4f %.4f %.4f %.4f\n", logits[0], logits[1], logits[2], logits[3], logits[4]);

    /* A wrong input shape (2 channels for a 3-channel network) is an error. */
    const int64_t bad[5] = {1, 2, 8, 32, 32};
    if (st3d_model_forward(m, x, bad, logits, NULL, &err) == 0 || err.code == ST3D_OK) {
        fprintf(stderr, "consumer: a 2-channel input was accepted\n");
        return 1;
    }
    printf("bad shape refused: %s\n", err.msg);
    free(x);
    st3d_model_free(m);
    return 0;
}

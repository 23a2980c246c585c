/*
 * exec_reuse.c - an inference batch smaller than one already planned runs on
 * that plan (exec.c, serves_smaller) when the plan's first layers go clip by
 * clip: nothing is built, and each clip's logits and features are exactly
 * those of the larger batch (in eval mode clips never mix).  A fresh exec,
 * which builds its own plan for the smaller batch, agrees within float32
 * rounding.  A plan built ahead with st3d_exec_prepare serves the first
 * forward of its shape.  Through the public header only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st3d.h"

static int failures;

static void expect(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    failures += !ok;
}

int main(void) {
    st3d_error err = {0};
    st3d_model_params p = st3d_model_default_params();
    p.model_depth = 10;
    p.n_classes = 7;
    st3d_set_threads(2);
    st3d_model *m = st3d_model_new(&p, 42, &err);
    st3d_exec *a = m ? st3d_exec_new(m, &err) : NULL;
    st3d_exec *b = a ? st3d_exec_new(m, &err) : NULL;
    if (!b) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    /* 4 clips of 3 x 16 x 64 x 64: large enough for a clip-by-clip head */
    int64_t big[5] = {4, 3, 16, 64, 64}, small[5] = {3, 3, 16, 64, 64};
    size_t clip = 3 * 16 * 64 * 64, f = (size_t)st3d_model_feature_dim(m);
    float *x = malloc(sizeof(float) * 4 * clip);
    float *l4 = malloc(sizeof(float) * 4 * 7), *l3 = malloc(sizeof(float) * 3 * 7);
    float *l3b = malloc(sizeof(float) * 3 * 7);
    float *f4 = malloc(sizeof(float) * 4 * f), *f3 = malloc(sizeof(float) * 3 * f);
    if (!x || !l4 || !l3 || !l3b || !f4 || !f3) return 1;
    uint64_t s = 7;
    for (size_t i = 0; i < 4 * clip; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xffff) / 32768.0f - 1.0f;
    }
    int rc = st3d_exec_forward(a, x, big, l4, f4, &err) ||
             st3d_exec_forward(a, x, small, l3, f3, &err) ||
             st3d_exec_forward(b, x, small, l3b, NULL, &err);
    if (rc) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return 1;
    }
    expect(st3d_exec_n_builds(a) == 1, "batch 3 after batch 4: no second plan built");
    expect(!memcmp(l3, l4, sizeof(float) * 3 * 7), "batch 3's logits = batch 4's first 3 rows, bit for bit");
    expect(!memcmp(f3, f4, sizeof(float) * 3 * f), "and its features");
    double worst = 0, scale = 0;
    for (int i = 0; i < 3 * 7; i++) {
        worst = fmax(worst, fabs((double)l3b[i] - l3[i]));
        scale = fmax(scale, fabs((double)l3b[i]));
    }
    printf("     a plan of its own for batch 3: max |diff| %.3g of max |logit| %.3g\n", worst, scale);
    expect(st3d_exec_n_builds(b) == 1 && worst <= 1e-5 * scale, "a plan of its own agrees within 1e-5");
    /* the other way round: batch 4 after batch 3 builds its own plan */
    expect(st3d_exec_forward(b, x, big, l4, NULL, &err) == 0 && st3d_exec_n_builds(b) == 2,
           "batch 4 after batch 3: a plan of its own");
    /* st3d_exec_prepare: the plan built ahead, the first forward builds
     * nothing and gives what another exec's plan of that shape gives */
    st3d_exec *c = st3d_exec_new(m, &err);
    float *l4c = malloc(sizeof(float) * 4 * 7);
    int64_t bad[5] = {4, 5, 16, 64, 64}; /* 5 channels into a 3-channel network */
    if (!c || !l4c) return 1;
    err.msg[0] = 0;
    expect(st3d_exec_prepare(c, bad, &err) != 0 && err.msg[0] && st3d_exec_n_builds(c) == 0,
           "prepare refuses a shape the network cannot take");
    printf("     (%s)\n", err.msg);
    expect(st3d_exec_prepare(c, big, &err) == 0 && st3d_exec_n_builds(c) == 1, "prepare builds the plan");
    expect(st3d_exec_forward(c, x, big, l4c, NULL, &err) == 0 && st3d_exec_n_builds(c) == 1 &&
               !memcmp(l4c, l4, sizeof(float) * 4 * 7),
           "the forward after it builds nothing, logits bit for bit those of another exec's plan");
    st3d_exec_free(c);
    free(l4c);
    st3d_exec_free(a);
    st3d_exec_free(b);
    st3d_model_free(m);
    free(x), free(l4), free(l3), free(l3b), free(f4), free(f3);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures != 0;
}

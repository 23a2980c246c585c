/*
 * sgd.c - stochastic gradient descent exactly as torch.optim.SGD (momentum,
 * dampening, Nesterov, L2 weight decay added to the gradient).  The model
 * keeps parameters, gradients and momentum buffers as flat arrays of the
 * same layout, so one pass updates everything.
 */
#include "train.h"

void sgd_update(float *p, const float *g, float *buf, int64_t n, const st3d_sgd_params *h,
                int first_step) {
    const float lr = h->lr, mom = h->momentum, damp = h->dampening, wd = h->weight_decay;
    const int nesterov = h->nesterov;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d += wd * p[i];
        if (mom != 0.0f) {
            float v = first_step ? d : mom * buf[i] + (1.0f - damp) * d;
            buf[i] = v;
            d = nesterov ? d + mom * v : v;
        }
        p[i] -= lr * d;
    }
}

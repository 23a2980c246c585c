/*
 * loss.c - softmax cross-entropy, as nn.CrossEntropyLoss (mean reduction).
 *
 *   logits N x K, labels N (0 <= label < K)
 *   loss = mean_n [ logsumexp(logits_n) - logits_n[label_n] ]
 *   grad = (softmax(logits) - onehot(labels)) / N
 */
#include "ops.h"

#include <math.h>

int softmax_xent(const float *logits, const int64_t *labels, int n, int k, float *loss,
                 float *grad, st3d_error *err) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k)
            return st3d_fail(err, ST3D_ERR_INVALID, "label %lld of sample %d is outside [0, %d)",
                             (long long)labels[i], i, k);
        const float *z = logits + (size_t)i * k;
        float mx = z[0];
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += exp((double)z[j] - mx);
        double lse = mx + log(sum);
        total += lse - z[labels[i]];
        if (grad) {
            float *g = grad + (size_t)i * k;
            for (int j = 0; j < k; j++) g[j] = (float)(exp((double)z[j] - lse) / n);
            g[labels[i]] -= 1.0f / (float)n;
        }
    }
    *loss = (float)(total / n);
    return 0;
}

/*
 * train.h - optimizers over the model's flat parameter buffers.
 */
#ifndef ST3D_TRAIN_H
#define ST3D_TRAIN_H

#include "core/core.h"

/* torch.optim.SGD for one flat parameter array p with gradient g and
 * momentum buffer buf (all n floats):
 *   d = g + weight_decay * p
 *   buf = first_step ? d : momentum * buf + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf        (when momentum != 0)
 *   p -= lr * d                                                          */
void sgd_update(float *p, const float *g, float *buf, int64_t n, const st3d_sgd_params *h,
                int first_step);

#endif /* ST3D_TRAIN_H */

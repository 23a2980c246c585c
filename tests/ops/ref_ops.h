/*
 * ref_ops.h - naive reference operators for the operator tests.
 *
 * Every function here is a plain loop nest over dense NCDHW (or N x K)
 * arrays of doubles, written from the operators' textbook definitions (the
 * PyTorch modules st3d mirrors) and sharing no code with src/ops.  They are
 * deliberately slow and obvious: each forward has an analytic backward next
 * to it, and the tests verify those backwards by central finite differences
 * in double precision before using them to judge st3d.
 *
 * Shapes are given as ref_dims (n, c, d, h, w); a 2-d tensor N x K is
 * {n, k, 1, 1, 1}.  Gradient outputs are overwritten, never accumulated into.
 */
#ifndef ST3D_TEST_REF_OPS_H
#define ST3D_TEST_REF_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ref_dims {
    int n, c, d, h, w;
} ref_dims;

/* Number of elements of a shape. */
size_t ref_numel(ref_dims s);

/* A 3D convolution (nn.Conv3d): groups split the channels, zero padding. */
typedef struct ref_conv {
    int ic, oc, groups;
    int k[3], stride[3], pad[3]; /* D, H, W */
} ref_conv;

/* Pooling (nn.MaxPool3d / nn.AvgPool3d with count_include_pad=True,
 * ceil_mode=False). */
typedef struct ref_pool {
    int max;
    int k[3], stride[3], pad[3];
} ref_pool;

ref_dims ref_conv_out(const ref_conv *g, ref_dims in);
ref_dims ref_pool_out(const ref_pool *g, ref_dims in);

/* x: N x IC x D x H x W, w: OC x IC/G x KD x KH x KW, b: OC or NULL,
 * y: N x OC x OD x OH x OW. */
void ref_conv_fwd(const ref_conv *g, ref_dims in, const double *x, const double *w,
                  const double *b, double *y);
/* dy: N x OC x OD x OH x OW -> dx (as x, may be NULL), dw (as w), db (OC, may be NULL). */
void ref_conv_bwd(const ref_conv *g, ref_dims in, const double *x, const double *w,
                  const double *dy, double *dx, double *dw, double *db);

/* Batch norm, training: batch mean and biased variance per channel.
 * x, y: N x C x D x H x W; gamma, beta, mean, var: C.  relu != 0 applies a
 * ReLU to the output. */
void ref_bn_train_fwd(ref_dims s, const double *x, const double *gamma, const double *beta,
                      double eps, int relu, double *y, double *mean, double *var);
/* Gradient of the above (dy with respect to the ReLU's output when relu). */
void ref_bn_train_bwd(ref_dims s, const double *x, const double *gamma, const double *beta,
                      double eps, int relu, const double *dy, double *dx, double *dgamma,
                      double *dbeta);
/* Batch norm with given (running) statistics. */
void ref_bn_eval_fwd(ref_dims s, const double *x, const double *gamma, const double *beta,
                     const double *mean, const double *var, double eps, int relu, double *y);

/* ReLU over n elements: y = max(x, 0); dx = dy where x > 0. */
void ref_relu_fwd(size_t n, const double *x, double *y);
void ref_relu_bwd(size_t n, const double *x, const double *dy, double *dx);

/* x: N x C x D x H x W -> y: N x C x OD x OH x OW. */
void ref_pool_fwd(const ref_pool *g, ref_dims in, const double *x, double *y);
void ref_pool_bwd(const ref_pool *g, ref_dims in, const double *x, const double *dy,
                  double *dx);

/* Global average: x N x C x D x H x W -> y N x C. */
void ref_gap_fwd(ref_dims in, const double *x, double *y);
void ref_gap_bwd(ref_dims in, const double *dy, double *dx);

/* nn.Linear: x N x IN, w OUT x IN, b OUT -> y N x OUT. */
void ref_linear_fwd(int n, int in, int out, const double *x, const double *w, const double *b,
                    double *y);
void ref_linear_bwd(int n, int in, int out, const double *x, const double *w, const double *dy,
                    double *dx, double *dw, double *db);

/* nn.CrossEntropyLoss (mean): logits N x K, labels N -> loss; grad N x K
 * (may be NULL) = d loss / d logits. */
double ref_softmax_xent(int n, int k, const double *logits, const int64_t *labels,
                        double *grad);

/* Shortcut A: x[:, :, ::s, ::s, ::s] then zero channels up to cout. */
void ref_shortcut_a(ref_dims in, int cout, int stride, const double *x, double *y);

/* torch.cat(dim=1) of n tensors N x C_i x D x H x W (same N, D, H, W). */
void ref_concat(int n, const ref_dims *ins, const double *const *xs, double *y);

#endif /* ST3D_TEST_REF_OPS_H */

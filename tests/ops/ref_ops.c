/*
 * ref_ops.c - the naive reference operators of ref_ops.h.
 *
 * Loop nests straight from the definitions, in double precision, over dense
 * NCDHW arrays.  Backwards are written as the transposes of the forward loop
 * nests (each forward multiply-add scatters its gradient), which keeps them
 * obviously consistent with the forwards; the finite-difference checks in
 * the tests confirm it numerically.
 */
#include "ref_ops.h"

#include <math.h>
#include <string.h>

size_t ref_numel(ref_dims s) { return (size_t)s.n * s.c * s.d * s.h * s.w; }

/* Index of (n, c, z, y, x) in a dense N x C x D x H x W array. */
static size_t at(ref_dims s, int n, int c, int z, int y, int x) {
    return ((((size_t)n * s.c + c) * s.d + z) * s.h + y) * s.w + x;
}

ref_dims ref_conv_out(const ref_conv *g, ref_dims in) {
    ref_dims o = {in.n, g->oc, 0, 0, 0};
    o.d = (in.d + 2 * g->pad[0] - g->k[0]) / g->stride[0] + 1;
    o.h = (in.h + 2 * g->pad[1] - g->k[1]) / g->stride[1] + 1;
    o.w = (in.w + 2 * g->pad[2] - g->k[2]) / g->stride[2] + 1;
    return o;
}

ref_dims ref_pool_out(const ref_pool *g, ref_dims in) {
    ref_dims o = {in.n, in.c, 0, 0, 0};
    o.d = (in.d + 2 * g->pad[0] - g->k[0]) / g->stride[0] + 1;
    o.h = (in.h + 2 * g->pad[1] - g->k[1]) / g->stride[1] + 1;
    o.w = (in.w + 2 * g->pad[2] - g->k[2]) / g->stride[2] + 1;
    return o;
}

/* ------------------------------------------------------------ conv3d */

/* Shapes: x N x IC x D x H x W, w OC x IC/G x KD x KH x KW, b OC,
 * y N x OC x OD x OH x OW, O* = (I* + 2 pad - K) / stride + 1.
 *   y[n,o,z,y,x] = b[o] + sum_{c in group(o), a, e, f}
 *                  w[o, c - g0, a, e, f] * x[n, c, z*s+a-p, y*s+e-p, x*s+f-p] */
void ref_conv_fwd(const ref_conv *g, ref_dims in, const double *x, const double *w,
                  const double *b, double *y) {
    ref_dims o = ref_conv_out(g, in);
    ref_dims ws = {g->oc, g->ic / g->groups, g->k[0], g->k[1], g->k[2]};
    int icg = g->ic / g->groups, ocg = g->oc / g->groups;
    for (int n = 0; n < o.n; n++)
        for (int oc = 0; oc < o.c; oc++) {
            int c0 = (oc / ocg) * icg;
            for (int oz = 0; oz < o.d; oz++)
                for (int oy = 0; oy < o.h; oy++)
                    for (int ox = 0; ox < o.w; ox++) {
                        double acc = b ? b[oc] : 0.0;
                        for (int c = 0; c < icg; c++)
                            for (int a = 0; a < g->k[0]; a++) {
                                int iz = oz * g->stride[0] - g->pad[0] + a;
                                if (iz < 0 || iz >= in.d) continue;
                                for (int e = 0; e < g->k[1]; e++) {
                                    int iy = oy * g->stride[1] - g->pad[1] + e;
                                    if (iy < 0 || iy >= in.h) continue;
                                    for (int f = 0; f < g->k[2]; f++) {
                                        int ix = ox * g->stride[2] - g->pad[2] + f;
                                        if (ix < 0 || ix >= in.w) continue;
                                        acc += w[at(ws, oc, c, a, e, f)] *
                                               x[at(in, n, c0 + c, iz, iy, ix)];
                                    }
                                }
                            }
                        y[at(o, n, oc, oz, oy, ox)] = acc;
                    }
        }
}

/* The transpose of ref_conv_fwd's loop nest: dx, dw, db from dy (same shapes). */
void ref_conv_bwd(const ref_conv *g, ref_dims in, const double *x, const double *w,
                  const double *dy, double *dx, double *dw, double *db) {
    ref_dims o = ref_conv_out(g, in);
    ref_dims ws = {g->oc, g->ic / g->groups, g->k[0], g->k[1], g->k[2]};
    int icg = g->ic / g->groups, ocg = g->oc / g->groups;
    if (dx) memset(dx, 0, sizeof(double) * ref_numel(in));
    memset(dw, 0, sizeof(double) * ref_numel(ws));
    if (db) memset(db, 0, sizeof(double) * (size_t)g->oc);
    for (int n = 0; n < o.n; n++)
        for (int oc = 0; oc < o.c; oc++) {
            int c0 = (oc / ocg) * icg;
            for (int oz = 0; oz < o.d; oz++)
                for (int oy = 0; oy < o.h; oy++)
                    for (int ox = 0; ox < o.w; ox++) {
                        double gy = dy[at(o, n, oc, oz, oy, ox)];
                        if (db) db[oc] += gy;
                        for (int c = 0; c < icg; c++)
                            for (int a = 0; a < g->k[0]; a++) {
                                int iz = oz * g->stride[0] - g->pad[0] + a;
                                if (iz < 0 || iz >= in.d) continue;
                                for (int e = 0; e < g->k[1]; e++) {
                                    int iy = oy * g->stride[1] - g->pad[1] + e;
                                    if (iy < 0 || iy >= in.h) continue;
                                    for (int f = 0; f < g->k[2]; f++) {
                                        int ix = ox * g->stride[2] - g->pad[2] + f;
                                        if (ix < 0 || ix >= in.w) continue;
                                        size_t wi = at(ws, oc, c, a, e, f);
                                        size_t xi = at(in, n, c0 + c, iz, iy, ix);
                                        dw[wi] += gy * x[xi];
                                        if (dx) dx[xi] += gy * w[wi];
                                    }
                                }
                            }
                    }
        }
}

/* ------------------------------------------------------------ batch norm */

/* Shapes: x, y N x C x D x H x W; gamma, beta, mean, var C.  M = N*D*H*W.
 *   mean[c] = sum x / M,  var[c] = sum (x - mean)^2 / M  (biased)
 *   y = (x - mean) / sqrt(var + eps) * gamma + beta, then ReLU if relu */
static void channel_stats(ref_dims s, const double *x, int c, double *mean, double *var) {
    size_t vol = (size_t)s.d * s.h * s.w, m = vol * s.n;
    double sum = 0.0, sq = 0.0;
    for (int n = 0; n < s.n; n++)
        for (size_t v = 0; v < vol; v++) sum += x[at(s, n, c, 0, 0, 0) + v];
    *mean = sum / (double)m;
    for (int n = 0; n < s.n; n++)
        for (size_t v = 0; v < vol; v++) {
            double t = x[at(s, n, c, 0, 0, 0) + v] - *mean;
            sq += t * t;
        }
    *var = sq / (double)m;
}

void ref_bn_eval_fwd(ref_dims s, const double *x, const double *gamma, const double *beta,
                     const double *mean, const double *var, double eps, int relu, double *y) {
    size_t vol = (size_t)s.d * s.h * s.w;
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++) {
            double inv = 1.0 / sqrt(var[c] + eps);
            for (size_t v = 0; v < vol; v++) {
                size_t i = at(s, n, c, 0, 0, 0) + v;
                double t = (x[i] - mean[c]) * inv * gamma[c] + beta[c];
                y[i] = relu && t < 0.0 ? 0.0 : t;
            }
        }
}

void ref_bn_train_fwd(ref_dims s, const double *x, const double *gamma, const double *beta,
                      double eps, int relu, double *y, double *mean, double *var) {
    for (int c = 0; c < s.c; c++) channel_stats(s, x, c, &mean[c], &var[c]);
    ref_bn_eval_fwd(s, x, gamma, beta, mean, var, eps, relu, y);
}

/* Shapes as ref_bn_train_fwd; with xh = (x - mean) / sqrt(var + eps) and
 * dz = dy (times the ReLU mask z > 0 when relu):
 *   dbeta = sum dz,  dgamma = sum dz * xh,
 *   dx = gamma / sqrt(var + eps) / M * (M dz - dbeta - xh dgamma) */
void ref_bn_train_bwd(ref_dims s, const double *x, const double *gamma, const double *beta,
                      double eps, int relu, const double *dy, double *dx, double *dgamma,
                      double *dbeta) {
    size_t vol = (size_t)s.d * s.h * s.w;
    double m = (double)vol * s.n;
    for (int c = 0; c < s.c; c++) {
        double mean, var;
        channel_stats(s, x, c, &mean, &var);
        double inv = 1.0 / sqrt(var + eps), sg = 0.0, sgx = 0.0;
        for (int n = 0; n < s.n; n++)
            for (size_t v = 0; v < vol; v++) {
                size_t i = at(s, n, c, 0, 0, 0) + v;
                double xh = (x[i] - mean) * inv;
                double dz = relu && xh * gamma[c] + beta[c] <= 0.0 ? 0.0 : dy[i];
                sg += dz;
                sgx += dz * xh;
            }
        dbeta[c] = sg;
        dgamma[c] = sgx;
        for (int n = 0; n < s.n; n++)
            for (size_t v = 0; v < vol; v++) {
                size_t i = at(s, n, c, 0, 0, 0) + v;
                double xh = (x[i] - mean) * inv;
                double dz = relu && xh * gamma[c] + beta[c] <= 0.0 ? 0.0 : dy[i];
                dx[i] = gamma[c] * inv / m * (m * dz - sg - xh * sgx);
            }
    }
}

/* ------------------------------------------------------------ relu */

/* Shapes: n elements each. */
void ref_relu_fwd(size_t n, const double *x, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

void ref_relu_bwd(size_t n, const double *x, const double *dy, double *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0 ? dy[i] : 0.0;
}

/* ------------------------------------------------------------ pooling */

/* Shapes: x N x C x D x H x W, y N x C x OD x OH x OW.
 * Max: the largest input inside the window (padding never wins).
 * Avg: the sum of the window's inputs divided by KD*KH*KW, padding included.
 * The backward sends dy to the max's position (max), or dy / K*K*K to every
 * in-bounds position of the window (avg). */
static void pool_window(const ref_pool *g, ref_dims in, const double *x, int n, int c, int oz,
                        int oy, int ox, double *value, size_t *argmax) {
    double best = -INFINITY, sum = 0.0;
    size_t bi = 0;
    for (int a = 0; a < g->k[0]; a++) {
        int iz = oz * g->stride[0] - g->pad[0] + a;
        if (iz < 0 || iz >= in.d) continue;
        for (int e = 0; e < g->k[1]; e++) {
            int iy = oy * g->stride[1] - g->pad[1] + e;
            if (iy < 0 || iy >= in.h) continue;
            for (int f = 0; f < g->k[2]; f++) {
                int ix = ox * g->stride[2] - g->pad[2] + f;
                if (ix < 0 || ix >= in.w) continue;
                size_t i = at(in, n, c, iz, iy, ix);
                sum += x[i];
                if (x[i] > best) {
                    best = x[i];
                    bi = i;
                }
            }
        }
    }
    *value = g->max ? best : sum / (double)(g->k[0] * g->k[1] * g->k[2]);
    *argmax = bi;
}

void ref_pool_fwd(const ref_pool *g, ref_dims in, const double *x, double *y) {
    ref_dims o = ref_pool_out(g, in);
    for (int n = 0; n < o.n; n++)
        for (int c = 0; c < o.c; c++)
            for (int oz = 0; oz < o.d; oz++)
                for (int oy = 0; oy < o.h; oy++)
                    for (int ox = 0; ox < o.w; ox++) {
                        size_t am;
                        pool_window(g, in, x, n, c, oz, oy, ox, &y[at(o, n, c, oz, oy, ox)], &am);
                    }
}

void ref_pool_bwd(const ref_pool *g, ref_dims in, const double *x, const double *dy,
                  double *dx) {
    ref_dims o = ref_pool_out(g, in);
    double kvol = (double)(g->k[0] * g->k[1] * g->k[2]);
    memset(dx, 0, sizeof(double) * ref_numel(in));
    for (int n = 0; n < o.n; n++)
        for (int c = 0; c < o.c; c++)
            for (int oz = 0; oz < o.d; oz++)
                for (int oy = 0; oy < o.h; oy++)
                    for (int ox = 0; ox < o.w; ox++) {
                        double gy = dy[at(o, n, c, oz, oy, ox)], v;
                        size_t am;
                        if (g->max) {
                            pool_window(g, in, x, n, c, oz, oy, ox, &v, &am);
                            dx[am] += gy;
                            continue;
                        }
                        for (int a = 0; a < g->k[0]; a++) {
                            int iz = oz * g->stride[0] - g->pad[0] + a;
                            if (iz < 0 || iz >= in.d) continue;
                            for (int e = 0; e < g->k[1]; e++) {
                                int iy = oy * g->stride[1] - g->pad[1] + e;
                                if (iy < 0 || iy >= in.h) continue;
                                for (int f = 0; f < g->k[2]; f++) {
                                    int ix = ox * g->stride[2] - g->pad[2] + f;
                                    if (ix >= 0 && ix < in.w) dx[at(in, n, c, iz, iy, ix)] += gy / kvol;
                                }
                            }
                        }
                    }
}

/* Shapes: x N x C x D x H x W -> y N x C;  y[n,c] = mean over the volume. */
void ref_gap_fwd(ref_dims in, const double *x, double *y) {
    size_t vol = (size_t)in.d * in.h * in.w;
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++) {
            double s = 0.0;
            for (size_t v = 0; v < vol; v++) s += x[at(in, n, c, 0, 0, 0) + v];
            y[(size_t)n * in.c + c] = s / (double)vol;
        }
}

void ref_gap_bwd(ref_dims in, const double *dy, double *dx) {
    size_t vol = (size_t)in.d * in.h * in.w;
    for (int n = 0; n < in.n; n++)
        for (int c = 0; c < in.c; c++)
            for (size_t v = 0; v < vol; v++)
                dx[at(in, n, c, 0, 0, 0) + v] = dy[(size_t)n * in.c + c] / (double)vol;
}

/* ------------------------------------------------------------ linear */

/* Shapes: x N x IN, w OUT x IN, b OUT, y N x OUT;  y = x w^T + b. */
void ref_linear_fwd(int n, int in, int out, const double *x, const double *w, const double *b,
                    double *y) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int k = 0; k < in; k++) s += x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = s;
        }
}

/* dx = dy w (N x IN), dw = dy^T x (OUT x IN), db = column sums of dy (OUT). */
void ref_linear_bwd(int n, int in, int out, const double *x, const double *w, const double *dy,
                    double *dx, double *dw, double *db) {
    memset(dx, 0, sizeof(double) * (size_t)n * in);
    memset(dw, 0, sizeof(double) * (size_t)out * in);
    memset(db, 0, sizeof(double) * (size_t)out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double g = dy[(size_t)i * out + o];
            db[o] += g;
            for (int k = 0; k < in; k++) {
                dx[(size_t)i * in + k] += g * w[(size_t)o * in + k];
                dw[(size_t)o * in + k] += g * x[(size_t)i * in + k];
            }
        }
}

/* ------------------------------------------------------------ loss */

/* Shapes: logits N x K, labels N, grad N x K.
 *   loss = mean_n (log sum_j exp z[n,j] - z[n,label]);
 *   grad = (softmax(z) - onehot(label)) / N */
double ref_softmax_xent(int n, int k, const double *logits, const int64_t *labels,
                        double *grad) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const double *z = logits + (size_t)i * k;
        double mx = z[0], s = 0.0;
        for (int j = 1; j < k; j++)
            if (z[j] > mx) mx = z[j];
        for (int j = 0; j < k; j++) s += exp(z[j] - mx);
        double lse = mx + log(s);
        total += lse - z[labels[i]];
        if (grad)
            for (int j = 0; j < k; j++)
                grad[(size_t)i * k + j] = (exp(z[j] - lse) - (j == labels[i] ? 1.0 : 0.0)) / n;
    }
    return total / n;
}

/* ------------------------------------------------------------ data movement */

/* Shapes: x N x C x D x H x W -> y N x COUT x OD x OH x OW, O* = (I* - 1) / s + 1. */
void ref_shortcut_a(ref_dims in, int cout, int stride, const double *x, double *y) {
    ref_dims o = {in.n, cout, (in.d - 1) / stride + 1, (in.h - 1) / stride + 1,
                  (in.w - 1) / stride + 1};
    for (int n = 0; n < o.n; n++)
        for (int c = 0; c < o.c; c++)
            for (int z = 0; z < o.d; z++)
                for (int yy = 0; yy < o.h; yy++)
                    for (int xx = 0; xx < o.w; xx++)
                        y[at(o, n, c, z, yy, xx)] =
                            c < in.c ? x[at(in, n, c, z * stride, yy * stride, xx * stride)] : 0.0;
}

/* Shapes: xs[i] N x C_i x D x H x W -> y N x sum C_i x D x H x W. */
void ref_concat(int n, const ref_dims *ins, const double *const *xs, double *y) {
    int ctot = 0;
    for (int i = 0; i < n; i++) ctot += ins[i].c;
    ref_dims o = ins[0];
    o.c = ctot;
    size_t vol = (size_t)o.d * o.h * o.w;
    for (int b = 0; b < o.n; b++) {
        int off = 0;
        for (int i = 0; i < n; i++) {
            memcpy(y + at(o, b, off, 0, 0, 0), xs[i] + at(ins[i], b, 0, 0, 0, 0),
                   sizeof(double) * vol * ins[i].c);
            off += ins[i].c;
        }
    }
}

/*
 * harness.c - case bookkeeping, comparisons, finite differences, test data
 * and the st3d plumbing shared by the operator tests (see harness.h).
 */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dnnl_engine_t g_eng;
dnnl_stream_t g_stream;

/* Set by main. */
const char *g_filter;
int g_verbose;
int g_passed, g_failed;

/* ------------------------------------------------------------ data */

uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) / 9007199254740992.0; }

void fill_uniform(rng *r, double *a, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) a[i] = (double)(float)(lo + (hi - lo) * rng_uniform(r));
}

void fill_away_from_zero(rng *r, double *a, size_t n, double margin) {
    for (size_t i = 0; i < n; i++) {
        double m = margin + (1.0 - margin) * rng_uniform(r);
        a[i] = (double)(float)(rng_next(r) & 1 ? m : -m);
    }
}

void fill_distinct(rng *r, double *a, size_t n) {
    size_t *perm = talloc(sizeof(size_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = (double)(float)(-1.0 + 2.0 * ((double)perm[i] + 0.5) / (double)n);
}

/* Scratch blocks of the current case, in a singly linked list. */
typedef struct block {
    struct block *next;
    max_align_t align[];
} block;
static block *g_blocks;

void *talloc(size_t bytes) {
    block *b = calloc(1, sizeof(block) + bytes);
    if (!b) {
        fprintf(stderr, "test_ops: out of memory\n");
        exit(2);
    }
    b->next = g_blocks;
    g_blocks = b;
    return b->align;
}

double *tdoubles(size_t n) { return talloc(sizeof(double) * n); }
float *tfloats(size_t n) { return talloc(sizeof(float) * n); }

double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------ cases */

static char g_op[64], g_geom[256];
static int g_case_failed, g_case_checks;

int case_begin(const char *op, const char *geom_fmt, ...) {
    if (g_filter && !strstr(op, g_filter)) return 0;
    snprintf(g_op, sizeof g_op, "%s", op);
    va_list ap;
    va_start(ap, geom_fmt);
    vsnprintf(g_geom, sizeof g_geom, geom_fmt, ap);
    va_end(ap);
    g_case_failed = 0;
    g_case_checks = 0;
    return 1;
}

void case_end(void) {
    if (g_case_failed) g_failed++;
    else g_passed++;
    printf("%-4s %s [%s] (%d checks)\n", g_case_failed ? "FAILED" : "ok", g_op, g_geom,
           g_case_checks);
    fflush(stdout);
    while (g_blocks) {
        block *n = g_blocks->next;
        free(g_blocks);
        g_blocks = n;
    }
}

void case_fail(const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("FAIL %s [%s] %s\n", g_op, g_geom, line);
    fflush(stdout);
    g_case_failed = 1;
}

void case_checked(void) { g_case_checks++; }

void case_error(const char *what, const st3d_error *err) {
    case_fail("%s: st3d error: %s", what, err && err->msg[0] ? err->msg : "(no message)");
}

static void format_index(char *buf, size_t cap, size_t i, ref_dims s, int ndims) {
    if (ndims == 2) {
        snprintf(buf, cap, "%zu,%zu", i / (size_t)s.c, i % (size_t)s.c);
        return;
    }
    size_t x = i % s.w, y = (i / s.w) % s.h, z = (i / s.w / s.h) % s.d;
    size_t c = (i / s.w / s.h / s.d) % s.c, n = i / s.w / s.h / s.d / s.c;
    snprintf(buf, cap, "%zu,%zu,%zu,%zu,%zu", n, c, z, y, x);
}

/* Shared by check_close and check_fd: worst element of got vs want. */
static int judge(const char *tensor, const char *kind, size_t count, const double *got,
                 const double *want, const size_t *index, ref_dims s, int ndims, double scale,
                 double tol) {
    g_case_checks++;
    double worst = -1.0;
    size_t wi = 0;
    for (size_t k = 0; k < count; k++) {
        double e = fabs(got[k] - want[k]);
        if (isnan(e)) e = INFINITY;
        if (e > worst) {
            worst = e;
            wi = k;
        }
    }
    double rel = worst / (scale > 1e-30 ? scale : 1e-30);
    if (g_verbose && count)
        printf("     %s %s: rel err %.2e (tol %.0e)\n", tensor, kind, rel, tol);
    if (count == 0 || rel <= tol) return 0;
    char idx[128];
    format_index(idx, sizeof idx, index ? index[wi] : wi, s, ndims);
    case_fail("%s%s: worst at (%s) got %.9g want %.9g err %.3g rel %.3g > tol %.0e", tensor, kind,
              idx, got[wi], want[wi], fabs(got[wi] - want[wi]), rel, tol);
    return 1;
}

int check_close(const char *tensor, const float *got, const double *want, ref_dims s, int ndims,
                double tol) {
    size_t n = ndims == 2 ? (size_t)s.n * s.c : ref_numel(s);
    if (!got) {
        case_fail("%s: no output", tensor);
        return 1;
    }
    double *g = tdoubles(n ? n : 1), scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        g[i] = got[i];
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return judge(tensor, "", n, g, want, NULL, s, ndims, scale, tol);
}

int check_scalar(const char *tensor, double got, double want, double tol) {
    ref_dims s = {1, 1, 1, 1, 1};
    return judge(tensor, "", 1, &got, &want, NULL, s, 2, fabs(want), tol);
}

int check_fd(const char *tensor, double *param, ref_dims s, int ndims, const double *analytic,
             loss_fn loss, void *ctx) {
    static rng r = {0x0fdc0ffee};
    size_t n = ndims == 2 ? (size_t)s.n * s.c : ref_numel(s);
    if (n == 0) return 0;
    double scale = 0.0;
    size_t big = 0, idx[FD_SAMPLES + 1];
    double fd[FD_SAMPLES + 1], an[FD_SAMPLES + 1];
    for (size_t i = 0; i < n; i++)
        if (fabs(analytic[i]) > scale) {
            scale = fabs(analytic[i]);
            big = i;
        }
    for (int k = 0; k <= FD_SAMPLES; k++) {
        size_t i = k == FD_SAMPLES ? big : (size_t)(rng_next(&r) % n);
        double keep = param[i];
        param[i] = keep + FD_EPS;
        double lp = loss(ctx);
        param[i] = keep - FD_EPS;
        double lm = loss(ctx);
        param[i] = keep;
        idx[k] = i;
        fd[k] = (lp - lm) / (2.0 * FD_EPS);
        an[k] = analytic[i];
    }
    char name[96];
    snprintf(name, sizeof name, "reference %s", tensor);
    /* "got" is the reference's analytic value, "want" the difference quotient */
    return judge(name, " vs finite differences", FD_SAMPLES + 1, an, fd, idx, s, ndims,
                 scale, TOL_FD);
}

/* ------------------------------------------------------------ st3d plumbing */

void bench_init(bench *k) {
    memset(k, 0, sizeof *k);
    k->b.eng = g_eng;
    k->b.res = &k->res;
    k->b.err = &k->err;
}

void bench_free(bench *k) {
    prog_free(&k->prep);
    prog_free(&k->fwd);
    prog_free(&k->bwd);
    resources_free(&k->res);
}

static void md_plain_of(dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *md) {
    md_plain(plain, md->ndims, md->dims);
}

int bench_feed(bench *k, program *p, const dnnl_memory_desc_t *want, const double *data,
               tensor *out) {
    dnnl_memory_desc_t plain;
    md_plain_of(&plain, want);
    tensor src;
    if (bld_tensor(&k->b, &plain, &src) != 0 || bld_tensor(&k->b, want, out) != 0 ||
        op_reorder(&k->b, p, &src, out) != 0) {
        case_error("feeding an input", &k->err);
        return -1;
    }
    int64_t n = md_elems(&plain);
    for (int64_t i = 0; i < n; i++) src.data[i] = (float)data[i];
    return 0;
}

float *bench_fetch(bench *k, program *p, const tensor *t) {
    dnnl_memory_desc_t plain;
    md_plain_of(&plain, &t->md);
    tensor dst;
    if (bld_tensor(&k->b, &plain, &dst) != 0 || op_reorder(&k->b, p, t, &dst) != 0) {
        case_error("fetching an output", &k->err);
        return NULL;
    }
    return dst.data;
}

int bench_rerun(bench *k, const program *p) {
    if (prog_run(p, g_stream, &k->err) != 0) {
        case_error("running", &k->err);
        return -1;
    }
    return 0;
}

int bench_run(bench *k) {
    if (resources_finish(&k->b) != 0) {
        case_error("finishing the build", &k->err);
        return -1;
    }
    if (bench_rerun(k, &k->prep) != 0 || bench_rerun(k, &k->fwd) != 0) return -1;
    return bench_rerun(k, &k->bwd);
}

static layout resolve(layout l) {
    if (l != LAY_NATIVE) return l;
    /* the AVX-512 ISAs have bit 0x8 (MIC) or 0x20 (core) set */
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & 0x8) || (isa & 0x20) ? LAY_16C : LAY_8C;
}

const char *layout_name(layout l) {
    static const char *names[] = {"ncdhw", "ndhwc", "nCdhw8c", "nCdhw16c"};
    return names[resolve(l)];
}

void md_layout(dnnl_memory_desc_t *md, ref_dims s, layout l) {
    static const dnnl_format_tag_t tags[] = {dnnl_ncdhw, dnnl_ndhwc, dnnl_nCdhw8c,
                                             dnnl_nCdhw16c};
    dnnl_dims_t dims = {s.n, s.c, s.d, s.h, s.w};
    dnnl_memory_desc_init_by_tag(md, 5, dims, dnnl_f32, tags[resolve(l)]);
}

void md_2d(dnnl_memory_desc_t *md, int rows, int cols) {
    dnnl_dims_t dims = {rows, cols};
    md_plain(md, 2, dims);
}

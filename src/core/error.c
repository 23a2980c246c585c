/*
 * error.c - error records, checked allocation, atomic file writing and the
 * clock: the small plumbing every other file leans on.
 */
#define _DEFAULT_SOURCE /* madvise */
#include "core.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *st3d_status_name(st3d_status code) {
    switch (code) {
    case ST3D_OK: return "ok";
    case ST3D_ERR_INVALID: return "invalid argument";
    case ST3D_ERR_IO: return "i/o error";
    case ST3D_ERR_FORMAT: return "format error";
    case ST3D_ERR_MISMATCH: return "mismatch";
    case ST3D_ERR_NOMEM: return "out of memory";
    case ST3D_ERR_BACKEND: return "backend error";
    case ST3D_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

int st3d_fail(st3d_error *err, st3d_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* keep it one line */
        for (char *c = err->msg; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
    }
    return -1;
}

int st3d_fail_prefix(st3d_error *err, const char *prefix) {
    if (!err) return -1;
    char m[sizeof err->msg];
    memcpy(m, err->msg, sizeof m);
    return st3d_fail(err, err->code, "%s: %s", prefix, m);
}

void st3d_error_clear(st3d_error *err) {
    if (err) {
        err->code = ST3D_OK;
        err->msg[0] = '\0';
    }
}

void *st3d_malloc(size_t n, st3d_error *err) {
    if (n > ST3D_MAX_ALLOC) {
        st3d_fail(err, ST3D_ERR_NOMEM, "refusing to allocate %zu bytes", n);
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (!p) st3d_fail(err, ST3D_ERR_NOMEM, "cannot allocate %zu bytes", n);
    return p;
}

void *st3d_calloc(size_t count, size_t size, st3d_error *err) {
    if (size && count > ST3D_MAX_ALLOC / size) {
        st3d_fail(err, ST3D_ERR_NOMEM, "refusing to allocate %zu x %zu bytes", count, size);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) st3d_fail(err, ST3D_ERR_NOMEM, "cannot allocate %zu x %zu bytes", count, size);
    return p;
}

void *st3d_aligned_alloc(size_t n, st3d_error *err) {
    if (n > ST3D_MAX_ALLOC) {
        st3d_fail(err, ST3D_ERR_NOMEM, "refusing to allocate %zu bytes", n);
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        st3d_fail(err, ST3D_ERR_NOMEM, "cannot allocate %zu bytes", n);
        return NULL;
    }
    return p;
}

void st3d_aligned_free(void *p) { free(p); }

/* Madvises away the whole pages inside [p, p + n) and returns 0, or -1 when
 * there is none or madvise refused; [*b, *e) is that span. */
static int drop_inner_pages(const void *p, size_t n, uintptr_t *b, uintptr_t *e) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *b = ((uintptr_t)p + page - 1) / page * page;
    *e = ((uintptr_t)p + n) / page * page;
    return *e > *b && madvise((void *)*b, *e - *b, MADV_DONTNEED) == 0 ? 0 : -1;
}

void st3d_drop_pages(const void *p, size_t n) {
    uintptr_t b, e;
    (void)drop_inner_pages(p, n, &b, &e);
}

void st3d_zero_lazily(void *p, size_t n) {
    uintptr_t b, e, z = (uintptr_t)p + n;
    if (drop_inner_pages(p, n, &b, &e) != 0) {
        memset(p, 0, n); /* no whole page inside, or madvise refused */
        return;
    }
    memset(p, 0, b - (uintptr_t)p);
    memset((void *)e, 0, z - e);
}

int64_t st3d_mul_checked(int64_t a, int64_t b) {
    if (a < 0 || b < 0) return -1;
    if (a != 0 && b > INT64_MAX / a) return -1;
    return a * b;
}

int st3d_atomic_open(st3d_atomic_file *af, const char *path, st3d_error *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->tmp = st3d_malloc(n, err);
    af->path = strdup(path);
    if (!af->tmp || !af->path) {
        free(af->tmp), free(af->path);
        af->tmp = af->path = NULL;
        return st3d_fail(err, ST3D_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        st3d_fail(err, ST3D_ERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->tmp), free(af->path);
        af->tmp = af->path = NULL;
        return -1;
    }
    return 0;
}

/* Releases what af holds (the file already closed or never opened). */
static void atomic_release(st3d_atomic_file *af) {
    free(af->tmp), free(af->path);
    af->tmp = af->path = NULL;
    af->f = NULL;
}

int st3d_atomic_commit(st3d_atomic_file *af, st3d_error *err) {
    if (!af->f) return st3d_fail(err, ST3D_ERR_INVALID, "atomic file not open");
    int rc = 0;
    if (ferror(af->f) || fflush(af->f) != 0)
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    if (rc == 0 && fsync(fileno(af->f)) != 0)
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: fsync failed: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && rc == 0)
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    if (rc == 0 && rename(af->tmp, af->path) != 0)
        rc = st3d_fail(err, ST3D_ERR_IO, "%s: cannot rename into place: %s", af->path,
                       strerror(errno));
    if (rc != 0) remove(af->tmp);
    atomic_release(af);
    return rc;
}

void st3d_atomic_abort(st3d_atomic_file *af) {
    if (!af->f) return;
    fclose(af->f);
    remove(af->tmp);
    atomic_release(af);
}

int st3d_write_atomic(const char *path, st3d_write_fn fn, void *user, st3d_error *err) {
    st3d_atomic_file af;
    if (st3d_atomic_open(&af, path, err) != 0) return -1;
    if (fn(af.f, user, err) != 0) {
        st3d_atomic_abort(&af);
        return -1;
    }
    return st3d_atomic_commit(&af, err);
}

double st3d_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

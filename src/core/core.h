/*
 * core.h - internal helpers shared by every layer of libst3d: error
 * reporting, checked allocation, and small utilities.  Not installed.
 */
#ifndef ST3D_CORE_H
#define ST3D_CORE_H

#include "st3d.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(__GNUC__)
#define ST3D_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ST3D_PRINTF(a, b)
#endif

/* Fills err (which may be NULL) and returns -1, so that error paths read
 *     if (!f) return st3d_fail(err, ST3D_ERR_IO, "%s: cannot open", path);  */
int st3d_fail(st3d_error *err, st3d_status code, const char *fmt, ...) ST3D_PRINTF(3, 4);
/* Puts "prefix: " in front of err's message (a file's name in front of a
 * lower layer's reason); returns -1. */
int st3d_fail_prefix(st3d_error *err, const char *prefix);

/* Resets err to ST3D_OK. */
void st3d_error_clear(st3d_error *err);

/* Allocation that records ST3D_ERR_NOMEM in err on failure.  Sizes above
 * ST3D_MAX_ALLOC are refused up front, so that a hostile size field in a file
 * can never reach malloc. */
#define ST3D_MAX_ALLOC ((size_t)16 << 30)
void *st3d_malloc(size_t n, st3d_error *err);
void *st3d_calloc(size_t count, size_t size, st3d_error *err);
/* 64-byte aligned (for kernels); free with st3d_aligned_free. */
void *st3d_aligned_alloc(size_t n, st3d_error *err);
void st3d_aligned_free(void *p);
/* Hands the whole pages inside [p, p + n) back to the kernel: resident
 * memory drops, and the contents are lost (anonymous memory reads back as
 * zeros, a file mapping reads the file again).  For buffers that are
 * written in full before they are next read. */
void st3d_drop_pages(const void *p, size_t n);
/* Zeroes n bytes of heap memory without making them resident: the whole
 * pages inside are handed back (anonymous memory reads back as zeros and
 * takes RAM only once written), the partial pages at both ends are cleared.
 * A plan's large buffers (activation slots, kernel weights, the input) cost
 * memory from their first write, not from the build. */
void st3d_zero_lazily(void *p, size_t n);

/* Tensor maps over a file mapping (tensor_map.c).  add_borrowed appends an
 * entry whose data is not copied: it must live as long as the map, which it
 * does when it lies in a mapping the map adopted (unmapped by
 * st3d_tensor_map_free).  release drops a borrowed tensor's resident pages
 * (it is read again from the file if touched); a no-op for copied entries.
 * strip_prefix renames every key starting with prefix, in place. */
int st3d_tensor_map_add_borrowed(st3d_tensor_map *map, const char *name, st3d_dtype dtype,
                                 int ndim, const int64_t *shape, const void *data,
                                 st3d_error *err);
void st3d_tensor_map_adopt_mapping(st3d_tensor_map *map, void *base, size_t len);
void st3d_tensor_map_release(const st3d_tensor_map *map, const st3d_tensor_info *t);
int st3d_tensor_map_strip_prefix(st3d_tensor_map *map, const char *prefix, st3d_error *err);

/* a * b, or -1 when the product would overflow int64 or either is negative. */
int64_t st3d_mul_checked(int64_t a, int64_t b);

/* Writes to "<path>.tmp.<pid>" through the callback, then renames over path;
 * on any failure the temporary is removed and path is left untouched. */
typedef int (*st3d_write_fn)(FILE *f, void *user, st3d_error *err);
int st3d_write_atomic(const char *path, st3d_write_fn fn, void *user, st3d_error *err);

/* The same in steps, for output written piece by piece (a stream of clip
 * results): st3d_atomic_open creates "<path>.tmp.<pid>", the caller writes
 * to af->f (and may seek back), st3d_atomic_commit flushes, fsyncs and
 * renames it over path, st3d_atomic_abort removes it.  Either of the last
 * two releases af. */
typedef struct st3d_atomic_file {
    FILE *f;    /* the temporary file, open for writing; NULL when released */
    char *path; /* destination (owned) */
    char *tmp;  /* temporary name (owned) */
} st3d_atomic_file;
int st3d_atomic_open(st3d_atomic_file *af, const char *path, st3d_error *err);
int st3d_atomic_commit(st3d_atomic_file *af, st3d_error *err);
void st3d_atomic_abort(st3d_atomic_file *af);

/* Grows a dynamic array `arr` holding `n` of `cap` items (doubling, from
 * 64) before an append; on failure returns -1 from the enclosing function
 * with ST3D_ERR_NOMEM in err. */
#define ST3D_GROW(arr, n, cap, err)                                                \
    do {                                                                         \
        if ((n) == (cap)) {                                                      \
            int c_ = (cap) ? 2 * (cap) : 64;                                     \
            void *p_ = realloc((arr), (size_t)c_ * sizeof *(arr));               \
            if (!p_) return st3d_fail((err), ST3D_ERR_NOMEM, "out of memory");   \
            (arr) = p_;                                                          \
            (cap) = c_;                                                          \
        }                                                                        \
    } while (0)

/* Monotonic wall-clock seconds. */
double st3d_now(void);

#endif /* ST3D_CORE_H */

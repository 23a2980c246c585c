/*
 * io.h - internal pieces shared by the weight-file readers of src/io/:
 * a byte source that is either a file on disk or a buffer in memory (so that
 * fuzz targets can drive the same parsing code as the public path-based
 * functions), little-endian decoding helpers, and the memory-based entry
 * points of each reader.  Not installed.
 */
#ifndef ST3D_IO_H
#define ST3D_IO_H

#include "core/core.h"

#include <stdint.h>
#include <stdio.h>

/* A random-access byte source.  Reads past the end fail with a "truncated"
 * error naming the source, so callers need no size checks of their own
 * before reading (they still check declared sizes before allocating). */
typedef struct st3d_src {
    const char *name;         /* shown in errors: the path, or a label */
    FILE *f;                  /* open file, or NULL for a memory source */
    const unsigned char *mem; /* the bytes of a memory source, else NULL */
    uint64_t size;            /* total number of bytes available */
    void *mapping;            /* st3d_src_map's file mapping (mem points at it), else NULL;
                                 a reader may take it over (then it sets this to NULL) */
} st3d_src;

/* Opens a regular file for reading; fails naming the path. */
int st3d_src_open(st3d_src *s, const char *path, st3d_error *err);
/* Opens a regular file and maps it read-only (mem points at its bytes), so
 * that readers can point into it instead of copying; falls back to plain
 * reads where the file cannot be mapped.  A file replaced while mapped is
 * harmless (st3d writes weights by rename); one truncated in place by
 * another program would fault. */
int st3d_src_map(st3d_src *s, const char *path, st3d_error *err);
/* Wraps a caller-owned buffer, which must outlive the source. */
void st3d_src_mem(st3d_src *s, const void *buf, size_t n, const char *name);
/* Closes the file, if any.  Safe on a zeroed or already closed source. */
void st3d_src_close(st3d_src *s);
/* Copies n bytes at offset off into dst; fails when they are not all there. */
int st3d_src_read(st3d_src *s, uint64_t off, void *dst, size_t n, st3d_error *err);

/* Little-endian loads from unaligned bytes. */
static inline uint16_t st3d_le16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t st3d_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t st3d_le64(const unsigned char *p) {
    return (uint64_t)st3d_le32(p) | ((uint64_t)st3d_le32(p + 4) << 32);
}

/* Formats a shape as "400, 512" into buf (always NUL-terminated). */
void st3d_format_shape(char *buf, size_t cap, int ndim, const int64_t *shape);

/* Memory-based entry points (name labels the buffer in error messages). */
int st3d_safetensors_read_mem(const void *buf, size_t n, const char *name,
                              st3d_tensor_map **out, st3d_error *err);
int st3d_safetensors_read_src(st3d_src *s, st3d_tensor_map **out, st3d_error *err);
/* The .npy preamble (magic, version 1.0, length, the dict of a C-order
 * float32 array of this shape, spaces, newline) into head: at least
 * min_len bytes, a multiple of 64, so that a file written with a guessed
 * shape can have its preamble rewritten in place with the true one.
 * Returns its length, or 0 when it does not fit in cap. */
size_t st3d_npy_header(char *head, size_t cap, int ndim, const int64_t *shape, size_t min_len);
int st3d_npy_read_f32_mem(const void *buf, size_t n, const char *name, float **data,
                          int *ndim, int64_t *shape, st3d_error *err);

#endif /* ST3D_IO_H */

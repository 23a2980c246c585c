/*
 * source.c - the byte source behind the weight-file readers: a regular file
 * read with positioned reads, or a buffer in memory.  Every read is bounds
 * checked against the known size, so a reader asking for bytes past the end
 * gets a one-line "truncated" error instead of short data.
 */
#define _POSIX_C_SOURCE 200809L
#include "io/io.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

int st3d_src_open(st3d_src *s, const char *path, st3d_error *err) {
    memset(s, 0, sizeof *s);
    s->name = path;
    FILE *f = fopen(path, "rb");
    if (!f) return st3d_fail(err, ST3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return st3d_fail(err, ST3D_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return st3d_fail(err, ST3D_ERR_IO, "%s: not a regular file", path);
    }
    s->f = f;
    s->size = (uint64_t)st.st_size;
    return 0;
}

int st3d_src_map(st3d_src *s, const char *path, st3d_error *err) {
    if (st3d_src_open(s, path, err) != 0) return -1;
    if (s->size == 0 || s->size > (uint64_t)SIZE_MAX) return 0;
    void *p = mmap(NULL, (size_t)s->size, PROT_READ, MAP_PRIVATE, fileno(s->f), 0);
    if (p == MAP_FAILED) return 0; /* plain reads then */
    fclose(s->f);
    s->f = NULL;
    s->mapping = p;
    s->mem = p;
    return 0;
}

void st3d_src_mem(st3d_src *s, const void *buf, size_t n, const char *name) {
    memset(s, 0, sizeof *s);
    s->name = name;
    s->mem = buf;
    s->size = n;
}

void st3d_src_close(st3d_src *s) {
    if (s->f) fclose(s->f);
    if (s->mapping) munmap(s->mapping, (size_t)s->size);
    s->f = NULL;
    s->mapping = NULL;
    s->mem = NULL;
}

int st3d_src_read(st3d_src *s, uint64_t off, void *dst, size_t n, st3d_error *err) {
    if (off > s->size || n > s->size - off)
        return st3d_fail(err, ST3D_ERR_FORMAT,
                         "%s: truncated: needs %zu bytes at offset %" PRIu64
                         " but the file has %" PRIu64,
                         s->name, n, off, s->size);
    if (n == 0) return 0;
    if (!s->f) {
        memcpy(dst, s->mem + off, n);
        return 0;
    }
    if (off > (uint64_t)INT64_MAX || fseeko(s->f, (off_t)off, SEEK_SET) != 0)
        return st3d_fail(err, ST3D_ERR_IO, "%s: cannot seek: %s", s->name, strerror(errno));
    if (fread(dst, 1, n, s->f) != n)
        return st3d_fail(err, ST3D_ERR_IO, "%s: read failed at offset %" PRIu64 "%s%s", s->name,
                         off, ferror(s->f) ? ": " : " (file shrank?)",
                         ferror(s->f) ? strerror(errno) : "");
    return 0;
}

void st3d_format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = 0;
    if (cap == 0) return;
    buf[0] = '\0';
    for (int d = 0; d < ndim && used < cap; d++) {
        int k = snprintf(buf + used, cap - used, "%s%" PRId64, d ? ", " : "", shape[d]);
        if (k < 0) break;
        used += (size_t)k;
    }
}

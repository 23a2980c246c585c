/*
 * pth_zip_map.h - a libzip source over a mapped file that tells where a
 * stored record's bytes lie in the mapping (pth_zip_map.c).  Not installed.
 */
#ifndef ST3D_PTH_ZIP_MAP_H
#define ST3D_PTH_ZIP_MAP_H

#include "core/core.h"

#include <stdint.h>
#include <zip.h>

typedef struct zip_map_src {
    const unsigned char *base; /* the mapped file */
    uint64_t size;             /* its length */
    uint64_t pos;              /* libzip's read position */
    int watch;                 /* 1: note the offset of the next read */
    uint64_t first_read;       /* that offset */
    zip_error_t error;         /* the source's last error, for libzip */
} zip_map_src;

/* A libzip source reading the size bytes at base; ms must outlive it.  NULL
 * with ze set on failure. */
zip_source_t *zip_map_src_create(zip_map_src *ms, const void *base, uint64_t size, zip_error_t *ze);
void zip_map_src_fini(zip_map_src *ms);

/* Where record idx of za (opened on ms) lies in the mapping, when it can be
 * read in place: size bytes, stored, unencrypted, located and its CRC-32
 * right.  NULL otherwise (the caller copies it out through libzip instead). */
const unsigned char *zip_map_src_locate(zip_map_src *ms, zip_t *za, zip_uint64_t idx,
                                        uint64_t size);

#endif /* ST3D_PTH_ZIP_MAP_H */

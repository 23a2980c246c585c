/*
 * pth_zip_map.c - storages of a .pth read in place from the mapped file.
 *
 * torch.save writes every storage as a stored (uncompressed) zip record, so
 * its bytes lie in the file as they are.  When the checkpoint is mapped, a
 * tensor can point into the mapping instead of being copied out of the
 * archive, as safetensors tensors do: the weights are then in memory once
 * (the network's copy), and their file pages can be handed back as soon as
 * they are converted (st3d_tensor_map_release).  PyTorch's own
 * torch.load(mmap=True) works the same way.
 *
 * libzip does not say where a record's data starts, so the archive is
 * opened on a libzip source of our own over the mapping (zip_map_src), which
 * notes where libzip reads: the first read after a record is opened is at
 * its data.  A record is borrowed only if it is stored, unencrypted, inside
 * the file, its first bytes as read through libzip equal the mapping's at
 * that place, and the CRC-32 of the whole record (zlib's crc32, which libzip
 * would have checked while copying) matches the archive's.  Anything else
 * falls back to the copying reader, which reports what is wrong.
 */
#include "io/pth_zip_map.h"

#include <string.h>
#include <zlib.h>

/* The libzip source callback: a seekable, read-only view of the mapping. */
static zip_int64_t map_src_cb(void *user, void *data, zip_uint64_t len, zip_source_cmd_t cmd) {
    zip_map_src *ms = user;
    switch (cmd) {
    case ZIP_SOURCE_OPEN:
        ms->pos = 0;
        return 0;
    case ZIP_SOURCE_READ: {
        zip_uint64_t n = ms->pos < ms->size ? ms->size - ms->pos : 0;
        if (n > len) n = len;
        if (ms->watch) { /* the first read since zip_map_src_watch */
            ms->first_read = ms->pos;
            ms->watch = 0;
        }
        memcpy(data, ms->base + ms->pos, (size_t)n);
        ms->pos += n;
        return (zip_int64_t)n;
    }
    case ZIP_SOURCE_CLOSE:
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &ms->error);
        if (!st) return -1;
        zip_stat_init(st);
        st->size = ms->size;
        st->valid |= ZIP_STAT_SIZE;
        return sizeof *st;
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&ms->error, data, len);
    case ZIP_SOURCE_FREE:
        return 0;
    case ZIP_SOURCE_SEEK: {
        zip_int64_t at = zip_source_seek_compute_offset(ms->pos, ms->size, data, len, &ms->error);
        if (at < 0) return -1;
        ms->pos = (zip_uint64_t)at;
        return 0;
    }
    case ZIP_SOURCE_TELL:
        return (zip_int64_t)ms->pos;
    case ZIP_SOURCE_SUPPORTS:
        return ZIP_SOURCE_SUPPORTS_SEEKABLE;
    default:
        zip_error_set(&ms->error, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

zip_source_t *zip_map_src_create(zip_map_src *ms, const void *base, uint64_t size, zip_error_t *ze) {
    memset(ms, 0, sizeof *ms);
    ms->base = base;
    ms->size = size;
    zip_error_init(&ms->error);
    return zip_source_function_create(map_src_cb, ms, ze);
}

void zip_map_src_fini(zip_map_src *ms) { zip_error_fini(&ms->error); }

/* CRC-32 of n mapped bytes, a piece at a time, each piece's pages handed
 * back once summed (the file's pages must not stay resident). */
static uLong crc_of(const unsigned char *p, uint64_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const uint64_t piece = (uint64_t)8 << 20;
    for (uint64_t done = 0; done < n; done += piece) {
        uint64_t k = n - done < piece ? n - done : piece;
        crc = crc32(crc, p + done, (uInt)k);
        st3d_drop_pages(p + done, (size_t)k);
    }
    return crc;
}

const unsigned char *zip_map_src_locate(zip_map_src *ms, zip_t *za, zip_uint64_t idx,
                                        uint64_t size) {
    zip_stat_t st;
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD |
                              ZIP_STAT_ENCRYPTION_METHOD | ZIP_STAT_CRC;
    if (zip_stat_index(za, idx, 0, &st) != 0 || (st.valid & need) != need) return NULL;
    if (st.comp_method != ZIP_CM_STORE || st.encryption_method != ZIP_EM_NONE ||
        st.size != size || st.comp_size != st.size || st.size == 0 || st.size > ms->size)
        return NULL;
    zip_file_t *f = zip_fopen_index(za, idx, 0);
    if (!f) return NULL;
    unsigned char probe[4096];
    zip_uint64_t want = st.size < sizeof probe ? st.size : sizeof probe;
    ms->watch = 1;
    ms->first_read = UINT64_MAX;
    zip_int64_t got = zip_fread(f, probe, want);
    ms->watch = 0;
    zip_fclose(f);
    uint64_t at = ms->first_read;
    if (got != (zip_int64_t)want || at == UINT64_MAX || at > ms->size - st.size ||
        memcmp(ms->base + at, probe, (size_t)want) != 0)
        return NULL;
    if (crc_of(ms->base + at, st.size) != (uLong)st.crc) return NULL;
    return ms->base + at;
}

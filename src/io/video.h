/*
 * video.h - internal pieces of st3d's picture input (src/io/video_decode.c,
 * src/io/video_index.c and src/io/jpeg_frames.c): RGB images, JPEG files
 * through libjpeg-turbo, frame folders in the layout of the original
 * 3D-ResNets-PyTorch (`image_00001.jpg`, `image_00002.jpg`, ... numbered
 * from 1), and the video index cache the loader reopens videos through.
 * The video decoder itself is public (st3d_video in st3d.h).  Not installed.
 */
#ifndef ST3D_IO_VIDEO_H
#define ST3D_IO_VIDEO_H

#include "core/core.h"

#include <stdint.h>

/* Largest picture any reader accepts (width x height).  A header declaring
 * more is refused before anything is allocated: 2^27 pixels is 16384 x 8192,
 * far above any dataset the paper uses. */
#define ST3D_MAX_PIXELS ((int64_t)1 << 27)

/* An 8-bit RGB picture, rows top to bottom, pixels interleaved R, G, B
 * (PIL's "RGB" mode; shape height x width x 3). */
typedef struct st3d_image {
    int width;     /* pixels per row */
    int height;    /* rows */
    uint8_t *data; /* height * width * 3 bytes, owned (malloc) */
    size_t cap;    /* bytes allocated at data (reused across decodes) */
} st3d_image;

/* Makes room for a w x h picture in img (reusing its buffer when it is large
 * enough) and sets its size. */
int st3d_image_reserve(st3d_image *img, int w, int h, st3d_error *err);
void st3d_image_release(st3d_image *img);

/* Decodes a JPEG file into img as RGB, with libjpeg's defaults (accurate
 * integer IDCT, fancy upsampling), which are also PIL's, so pixels equal
 * PIL's Image.open(path).convert('RGB').  Grayscale and CMYK files are
 * converted.  A truncated file is an error, as in PIL. */
int st3d_jpeg_read(const char *path, st3d_image *img, st3d_error *err);

/* A rectangle of a picture, in the picture's pixel coordinates, and the
 * picture's size. */
typedef struct st3d_rect {
    int x, y;           /* top-left corner */
    int w, h;           /* width and height (w == 0: the whole picture) */
    int full_w, full_h; /* the picture's width and height (set by readers) */
} st3d_rect;

/* st3d_jpeg_read of the part of a picture a crop needs: decodes at least the
 * rectangle `want` (want.w == 0: all of it), skipping the columns and rows
 * libjpeg-turbo can skip (jpeg_crop_scanline, jpeg_skip_scanlines; rows below
 * are not read).  img receives the rectangle *got of the picture (a superset
 * of want, clipped to the picture; got->full_w/full_h: its size), with the
 * pixels a full decode gives.  Truncation past the last decoded row goes
 * unnoticed: no pixel of it is used. */
int st3d_jpeg_read_rect(const char *path, st3d_rect want, st3d_image *img, st3d_rect *got,
                        st3d_error *err);

/* The same in two steps, for a caller that needs the picture's size to
 * choose the rectangle: st3d_jpeg_open reads the header (path must outlive
 * the reader), st3d_jpeg_decode decodes once as st3d_jpeg_read_rect, and
 * st3d_jpeg_close releases the reader, whatever happened. */
typedef struct st3d_jpeg st3d_jpeg;
st3d_jpeg *st3d_jpeg_open(const char *path, int *width, int *height, st3d_error *err);
int st3d_jpeg_decode(st3d_jpeg *j, st3d_rect want, st3d_image *img, st3d_rect *got,
                     st3d_error *err);
void st3d_jpeg_close(st3d_jpeg *j);

/* Encodes an RGB picture (h x w x 3) as a baseline JPEG at quality 1..100
 * (not atomic by itself: st3d extract-frames writes a whole folder under a
 * temporary name and renames it when complete). */
int st3d_jpeg_write(const char *path, const uint8_t *rgb, int w, int h, int quality,
                    st3d_error *err);

/* The original code's frame name: dir/image_%05d.jpg, index from 1 (mirrors
 * image_name_formatter in the original dataset.py).  Returns 0, or -1 when
 * the name does not fit in cap. */
int st3d_frame_path(char *buf, size_t cap, const char *dir, int64_t index);

/* Number of frames in a frame folder, counted as the original's
 * util_scripts/utils.py get_n_frames: the entries whose name contains
 * "image" and does not start with '.'. */
int64_t st3d_frame_folder_count(const char *dir, st3d_error *err);

/* ------------------------------------------------ video index and caches */

/* The video decoder's internal entry points (src/io/video_decode.c) and the
 * cache of what opening a video learns from the file alone
 * (src/io/video_index.c), which lets the loader reopen a video without a
 * second demux pass or stream probe.  Nothing here changes a decoded pixel:
 * a cached open configures the decoder with the very parameters the first
 * open probed and numbers frames with the very index it built. */

struct AVCodecParameters;

/* Identity of a file's contents as far as stat tells: a cache entry is used
 * only while the file still has the same one. */
typedef struct st3d_file_id {
    uint64_t dev;     /* st_dev */
    uint64_t ino;     /* st_ino */
    int64_t size;     /* st_size, bytes */
    int64_t mtime_ns; /* st_mtim, nanoseconds since the epoch */
} st3d_file_id;

/* ------------------------------------------- decoding apart from converting
 * (video_convert.c).  A picture holds a reference to one decoded frame and
 * what converting it needs; a converter (one per thread) turns pictures
 * into RGB24, so that a decoder thread can hand its frames to another
 * thread for conversion. */
typedef struct st3d_video_picture st3d_video_picture;
typedef struct st3d_rgb_converter st3d_rgb_converter;
st3d_video_picture *st3d_video_picture_new(st3d_error *err);
void st3d_video_picture_free(st3d_video_picture *pic);
/* Lets go of the frame pic holds (its buffers go back to the decoder). */
void st3d_video_picture_release(st3d_video_picture *pic);
/* As st3d_video_read_frame, the frame kept unconverted in pic (what pic
 * held before is released); convert it while v is still open. */
int st3d_video_read_picture(st3d_video *v, st3d_video_picture *pic, int64_t *index, double *pts,
                            st3d_error *err);
st3d_rgb_converter *st3d_rgb_converter_new(st3d_error *err);
void st3d_rgb_converter_free(st3d_rgb_converter *c);
/* pic as st3d_video_read_frame would have written it: RGB24 at its video's
 * size (st3d_video_info width x height, rotation applied) into rgb. */
int st3d_rgb_convert(st3d_rgb_converter *c, const st3d_video_picture *pic, uint8_t *rgb,
                     st3d_error *err);
/* Within io: frame f into pic (a new reference), and f converted to RGB24
 * of out_w x out_h before the clockwise `rotation` (0, 90, 180, 270). */
struct AVFrame;
int st3d_video_picture_hold(st3d_video_picture *pic, const struct AVFrame *f, int out_w, int out_h,
                            int scaler, int rotation, const char *path, st3d_error *err);
int st3d_rgb_convert_frame(st3d_rgb_converter *c, const struct AVFrame *f, int out_w, int out_h,
                           int scaler, int rotation, const char *path, uint8_t *rgb,
                           st3d_error *err);

/* What opening a video learns that depends on the file alone (not on the
 * output size, rotation switch or threads). */
typedef struct st3d_video_facts {
    int64_t n_frames;              /* frames in presentation order */
    int64_t *pts;                  /* sorted timestamps, n_frames (NULL: counting mode), malloc */
    int stream;                    /* index of the video stream in the container */
    double fps;                    /* as st3d_video_info.fps */
    double duration;               /* as st3d_video_info.duration */
    struct AVCodecParameters *par; /* the stream's parameters after probing, or NULL when
                                      a reopen must probe again (container not known to
                                      give the same packets without a probe) */
} st3d_video_facts;

/* Frees what f owns and zeroes it. */
void st3d_video_facts_clear(st3d_video_facts *f);

/* The demux-only pass over path: the sorted presentation timestamps of the
 * packets of stream `stream` (packets marked for discard excluded) into
 * f->n_frames and f->pts (NULL when some packet lacks a timestamp or two
 * share one: frames are then counted from the start). */
int st3d_video_build_index(const char *path, int stream, st3d_video_facts *f, st3d_error *err);

/* A bounded LRU of st3d_video_facts keyed by path and st3d_file_id, safe to
 * share between threads (one mutex, held for a lookup or an insertion, each
 * a copy of at most one entry). */
typedef struct st3d_video_cache st3d_video_cache;

/* At most max_entries entries and about max_bytes bytes of them. */
st3d_video_cache *st3d_video_cache_new(int64_t max_entries, size_t max_bytes, st3d_error *err);
void st3d_video_cache_free(st3d_video_cache *c);
/* Copies the entry for (path, id) into out and returns 1, or returns 0 when
 * there is none (or no memory for the copy; out is then empty). */
int st3d_video_cache_get(st3d_video_cache *c, const char *path, const st3d_file_id *id,
                         st3d_video_facts *out);
/* Stores a copy of f for (path, id), evicting the least recently used
 * entries beyond the bounds; silently does nothing without memory. */
void st3d_video_cache_put(st3d_video_cache *c, const char *path, const st3d_file_id *id,
                          const st3d_video_facts *f);
/* Lookups that found an entry and that did not, since creation. */
void st3d_video_cache_counts(st3d_video_cache *c, int64_t *hits, int64_t *misses);

/* Fills id from stat(path); returns 0, or -1 when path cannot be stat'ed. */
int st3d_file_identity(const char *path, st3d_file_id *id);

/* st3d_video_open through cache (NULL: none): on a hit the index pass and,
 * where the container allows it, the stream probe are skipped. */
st3d_video *st3d_video_open_cached(const char *path, const st3d_video_params *params,
                                   st3d_video_cache *cache, st3d_error *err);
/* The file identity the video was opened with. */
const st3d_file_id *st3d_video_file_id(const st3d_video *v);
/* Bytes the open video holds, roughly (decoder references, frames). */
size_t st3d_video_memory(const st3d_video *v);
/* st3d_video_read_frames writing frame i to dst[i] (height x width x 3
 * bytes each) instead of one contiguous buffer.  last = 1 says no frame
 * will be read next from where these end: the decoder is then drained once
 * the last frame wanted is in it, instead of decoding the frames that would
 * push it out (a later read still works, from a seek). */
int st3d_video_read_frames_to(st3d_video *v, const int64_t *indices, int n, uint8_t *const *dst,
                              int last, st3d_error *err);

/* ------------------------------------------------------------ encoding */

/* RGB24 frames (w x h x 3, rows top to bottom) to a video file
 * (src/io/video_encode.c): H.264 when libavcodec has libx264, else MPEG-4
 * part 2, in the container the path's extension names, at fps frames a
 * second.  Written under a temporary name; close renames it into place,
 * abort removes it; either frees the writer. */
typedef struct st3d_video_writer st3d_video_writer;
st3d_video_writer *st3d_video_writer_open(const char *path, int w, int h, double fps,
                                          st3d_error *err);
int st3d_video_writer_put(st3d_video_writer *vw, const uint8_t *rgb, st3d_error *err);
int st3d_video_writer_close(st3d_video_writer *vw, st3d_error *err);
void st3d_video_writer_abort(st3d_video_writer *vw);

/* 1 when path is a directory, 0 otherwise. */
int st3d_is_dir(const char *path);
/* 1 when path is a regular file, 0 otherwise. */
int st3d_is_file(const char *path);

#endif /* ST3D_IO_VIDEO_H */

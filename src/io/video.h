/*
 * video.h - internal pieces of st3d's picture input (src/io/video_decode.c
 * and src/io/jpeg_frames.c): RGB images, JPEG files through libjpeg-turbo,
 * and frame folders in the layout of the original 3D-ResNets-PyTorch
 * (`image_00001.jpg`, `image_00002.jpg`, ... numbered from 1).  The video
 * decoder itself is public (st3d_video in st3d.h).  Not installed.
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

/* 1 when path is a directory, 0 otherwise. */
int st3d_is_dir(const char *path);
/* 1 when path is a regular file, 0 otherwise. */
int st3d_is_file(const char *path);

#endif /* ST3D_IO_VIDEO_H */

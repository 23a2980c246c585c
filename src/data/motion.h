/*
 * motion.h - internal pieces of the built-in "motion" dataset: drawing one
 * video's random scene from its seed and rendering its frames
 * (motion_render.c), for the dataset writer (motion_dataset.c).  Not
 * installed.
 *
 * A scene is a textured shape moving over a textured background that
 * drifts on its own.  The class says only which way the shape moves (one of
 * eight directions 45 degrees apart); every other choice (shape, textures,
 * colours, position, size, orientation, speed, the background's drift) is
 * drawn from the same distributions
 * whatever the class, so that no single frame tells the class.  Positions
 * live on a torus: a shape leaving one side comes back on the other, and is
 * therefore always whole on screen.
 */
#ifndef ST3D_DATA_MOTION_H
#define ST3D_DATA_MOTION_H

#include "core/core.h"

#include <stdint.h>

/* Classes, in the order the dataset numbers them. */
#define ST3D_MOTION_MAX_CLASSES 8

/* Largest frame side. */
#define ST3D_MOTION_MAX_SIZE 2048

/* Side of the square, periodic texture tiles (a power of two). */
#define ST3D_MOTION_TEX 128

/* One video's scene: everything its frames are rendered from. */
typedef struct st3d_motion_scene {
    int size;          /* frame width and height, pixels */
    int n_frames;      /* frames of the video */
    int cls;           /* class, 0 .. ST3D_MOTION_MAX_CLASSES-1 */
    float *bg;         /* background tile, TEX x TEX x 3 floats (0..255), owned */
    float *fg;         /* the shape's texture tile, same layout, owned */
    float bg_zoom;     /* background texels per screen pixel */
    float bg_u0, bg_v0;/* background texel under pixel (0, 0) at frame 0 */
    float bg_du, bg_dv;/* change of that texel per frame (the drift, in texels) */
    int shape;         /* which outline (see shape_dist in motion_render.c) */
    float cx0, cy0;    /* shape centre at frame 0, pixels (on the torus) */
    float vx, vy;      /* centre velocity, pixels per frame */
    float log_r0;      /* log of the shape's radius at frame 0, pixels */
    float dlog_r;      /* change of the log radius per frame (growth) */
    float theta0;      /* orientation at frame 0, radians (clockwise on screen) */
    float dtheta;      /* change of orientation per frame (rotation) */
    float fg_k;        /* texels of the shape's texture per unit of radius */
    float fg_u0, fg_v0;/* texel at the shape's centre */
    float outline[3];  /* colour of the shape's rim */
    float outline_w;   /* width of the rim, pixels */
} st3d_motion_scene;

/* Draws the scene of video (seed, cls, index) for frames of size x size and
 * n_frames frames.  Release with st3d_motion_scene_release. */
int st3d_motion_scene_init(st3d_motion_scene *s, uint64_t seed, int cls, int64_t index, int size,
                           int n_frames, st3d_error *err);
void st3d_motion_scene_release(st3d_motion_scene *s);

/* Renders frame t (0-based) as RGB24 (size x size x 3 bytes, rows top to
 * bottom) into rgb; acc is scratch of size x size x 3 floats. */
void st3d_motion_render(const st3d_motion_scene *s, int t, float *acc, uint8_t *rgb);

#endif /* ST3D_DATA_MOTION_H */

/*
 * video_results.h - per-video output files of a clip stream's results,
 * each written as the clips arrive (memory flat in the video's length) to a
 * temporary file renamed into place when the video ends (src/train/
 * video_results.c).  Used by `st3d classify` and `st3d features`.  Not
 * installed.
 *
 * Scores: the companion tool's JSON object for one video (its main.py
 * writes a list of them),
 *   {"video": name, "clips": [{"segment": [first, last], "start": s, "end": e,
 *     "label": top-1 name, "scores": [per class]}, ...],
 *    "n_frames": N, "fps": f, "label": top-1 of the mean, "scores": [the
 *    clips' mean], "top_k": [{"label": name, "score": s}, ...]}
 * where "scores" are softmax probabilities (the companion's are fc's raw
 * outputs; raw_scores selects those instead); "start"/"end" (seconds) and
 * the video-level entries are st3d's additions.
 *
 * Features: a float32 .npy of clips x dim (or dim alone when averaged),
 * and an index JSON {"video", "features": npy file name, "dim", "average",
 * "n_frames", "fps", "clips": [{"segment", "start", "end"}, ...]} written
 * after the .npy, so that its presence says both are complete.
 */
#ifndef ST3D_TRAIN_VIDEO_RESULTS_H
#define ST3D_TRAIN_VIDEO_RESULTS_H

#include "core/core.h"

typedef struct st3d_score_writer st3d_score_writer;

/* labels: n_classes names (NULL: class numbers).  top_k: entries of the
 * video's "top_k" (and of the table a caller prints). */
st3d_score_writer *st3d_score_writer_open(const char *path, const char *video,
                                          const char *const *labels, int n_classes, int top_k,
                                          int raw_scores, st3d_error *err);
/* One clip's item and its outputs (logits and softmax). */
int st3d_score_writer_clip(st3d_score_writer *w, const st3d_stream_item *clip,
                           const float *logits, const float *scores, st3d_error *err);
/* Closes with the END item: writes the video-level entries, renames into
 * place and frees w (also on failure).  mean (may be NULL) receives the
 * n_classes mean scores. */
int st3d_score_writer_finish(st3d_score_writer *w, const st3d_stream_item *end, float *mean,
                             st3d_error *err);
/* Removes the temporary file and frees w (NULL is ignored). */
void st3d_score_writer_abort(st3d_score_writer *w);

typedef struct st3d_feature_writer st3d_feature_writer;

/* npy_path and index_path: the two outputs; average: one mean vector. */
st3d_feature_writer *st3d_feature_writer_open(const char *npy_path, const char *index_path,
                                              const char *video, int dim, int average,
                                              st3d_error *err);
int st3d_feature_writer_clip(st3d_feature_writer *w, const st3d_stream_item *clip,
                             const float *features, st3d_error *err);
int st3d_feature_writer_finish(st3d_feature_writer *w, const st3d_stream_item *end,
                               st3d_error *err);
void st3d_feature_writer_abort(st3d_feature_writer *w);

/* JSON helpers (also for callers assembling such files): a string with
 * JSON escapes, and a float with the digits to read it back exactly
 * (null when not finite, which JSON cannot hold). */
void st3d_json_put_string(FILE *f, const char *s);
void st3d_json_put_float(FILE *f, double v);

#endif /* ST3D_TRAIN_VIDEO_RESULTS_H */

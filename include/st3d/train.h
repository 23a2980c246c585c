/*
 * st3d/train.h - distributed work, training, inference over loaders,
 * evaluation and the built-in datasets.
 *
 * Part of the public API: include st3d.h, which includes this file inside
 * its extern "C" block and visibility pragma, after the core types it uses.
 */
#ifndef ST3D_PUBLIC_TRAIN_H
#define ST3D_PUBLIC_TRAIN_H
#ifndef ST3D_H
#error "include st3d.h, not st3d/train.h"
#endif

/* ============================================================= distributed */
/* Data-parallel work across processes and machines over Open MPI (started
 * with mpirun, or srun under Slurm), as PyTorch's DistributedDataParallel:
 * every rank runs the same network on its share of each batch's samples
 * and gradients are averaged across ranks.  A build without MPI has these
 * functions too: st3d_dist_init then fails with a clear message. */

typedef struct st3d_dist st3d_dist;

typedef struct st3d_dist_params {
    double timeout_s;        /* a collective that waits longer than this for the
                                other ranks stops the whole job (600; 0: never) */
    void (*on_timeout)(const char *msg, void *user); /* told why, before the job
                                is stopped (from a watchdog thread); may be NULL */
    void *user;              /* handed to on_timeout */
} st3d_dist_params;

st3d_dist_params st3d_dist_default_params(void);
/* 1 when st3d was built with MPI. */
int st3d_dist_available(void);
/* 1 when this process was started by an MPI launcher (Open MPI's mpirun,
 * or srun with PMI / PMIx), as its environment tells. */
int st3d_dist_launched(void);
/* Joins the job (MPI_Init_thread; once per process).  Errors are returned,
 * not fatal; rank and size are MPI_COMM_WORLD's. */
st3d_dist *st3d_dist_init(const st3d_dist_params *params, st3d_error *err);
/* Leaves the job (MPI_Finalize). */
void st3d_dist_free(st3d_dist *d);
/* This process's rank and the number of ranks; 0 and 1 for d == NULL, so
 * that code written for several ranks runs alone unchanged. */
int st3d_dist_rank(const st3d_dist *d);
int st3d_dist_size(const st3d_dist *d);
/* Blocking collectives over every rank (all must call them in the same
 * order): sums in place (every rank gets the sum), root's bytes to all. */
int st3d_dist_allreduce_f32(st3d_dist *d, float *buf, int64_t n, st3d_error *err);
int st3d_dist_allreduce_f64(st3d_dist *d, double *buf, int64_t n, st3d_error *err);
int st3d_dist_broadcast(st3d_dist *d, void *buf, int64_t bytes, int root, st3d_error *err);
int st3d_dist_barrier(st3d_dist *d, st3d_error *err);
/* Gathers each rank's bytes (any length) at root: there *out gets them all,
 * rank after rank (free()), and lens[rank] each length (size entries). */
int st3d_dist_gather(st3d_dist *d, const void *buf, int64_t bytes, int root, void **out,
                     int64_t *lens, st3d_error *err);
/* Sums that overlap computation: start queues an in-place sum of buf and
 * returns at once (a communication thread runs the queued sums in order);
 * wait_all waits for every queued one.  buf must stay untouched until then. */
int st3d_dist_allreduce_start(st3d_dist *d, float *buf, int64_t n, st3d_error *err);
int st3d_dist_wait_all(st3d_dist *d, st3d_error *err);

/* What this rank's collectives cost so far. */
typedef struct st3d_dist_stats {
    int64_t n_reduced_floats; /* floats summed through allreduce_start */
    int64_t n_started;        /* non-blocking sums started */
    double wait_seconds;      /* time blocked in wait_all (communication not hidden) */
    double blocking_seconds;  /* time in the blocking collectives */
} st3d_dist_stats;
void st3d_dist_get_stats(const st3d_dist *d, st3d_dist_stats *stats);
/* Stops every rank of the job after an error on this one (MPI_Abort, or
 * leaving at once, which the launcher turns into stopping the job, when
 * MPI was not granted MPI_THREAD_MULTIPLE).  Does not return. */
void st3d_dist_abort(st3d_dist *d, int code);
/* Changes the watchdog's limit (0: none), e.g. before the collective that
 * ends a run whose ranks legitimately finish far apart (each classifying
 * its own share of a corpus). */
void st3d_dist_set_timeout(st3d_dist *d, double timeout_s);

/* ================================================================ training */
/* The original main.py's experiment loop as library calls: SGD with
 * momentum, a learning-rate schedule, epochs of training and validation over
 * loaders, the original's logs, and checkpoints that resume exactly. */

/* ------------------------------------------------------------ schedulers */

typedef enum st3d_lr_kind {
    ST3D_LR_MULTISTEP = 0, /* MultiStepLR (--lr_scheduler multistep) */
    ST3D_LR_PLATEAU = 1,   /* ReduceLROnPlateau on the validation loss (plateau) */
} st3d_lr_kind;

#define ST3D_MAX_MILESTONES 32

typedef struct st3d_scheduler_params {
    st3d_lr_kind kind;                     /* which schedule */
    int milestones[ST3D_MAX_MILESTONES];   /* multistep epochs ([50, 100, 150]) */
    int n_milestones;                      /* used entries of milestones */
    double gamma;                          /* multistep gamma / plateau factor (0.1) */
    int patience;                          /* plateau: epochs without improvement (10) */
    double threshold;                      /* plateau: relative improvement (1e-4) */
    int cooldown;                          /* plateau: epochs to wait after a cut (0) */
    double min_lr;                         /* plateau: floor (0) */
    double eps;                            /* plateau: smallest change applied (1e-8) */
} st3d_scheduler_params;

st3d_scheduler_params st3d_scheduler_default_params(void);

/* A schedule's whole state (saved in checkpoints as it is). */
typedef struct st3d_scheduler {
    st3d_scheduler_params p; /* settings */
    double lr;               /* the current learning rate */
    int64_t last_epoch;      /* steps taken (PyTorch's last_epoch, from 0) */
    double best;             /* plateau: best metric so far (inf at first) */
    int num_bad_epochs;      /* plateau: epochs since the best */
    int cooldown_counter;    /* plateau: cooldown left */
} st3d_scheduler;

int st3d_scheduler_init(st3d_scheduler *s, const st3d_scheduler_params *p, double base_lr,
                        st3d_error *err);
/* One scheduler.step() at the end of an epoch (metric: the validation loss,
 * used by plateau only).  Returns the learning rate from now on. */
double st3d_scheduler_step(st3d_scheduler *s, double metric);
/* "[50,100,150]", "50 100 150" or "50,100" into p's milestones. */
int st3d_parse_milestones(const char *text, st3d_scheduler_params *p, st3d_error *err);

/* --------------------------------------------------------------- trainer */

/* What one step (or one validation batch) did, for a progress display. */
typedef struct st3d_step_report {
    int validation;         /* 0: a training step, 1: a validation batch */
    int64_t epoch;          /* 1-based, as the original's logs */
    int64_t batch;          /* 1-based batch number within the epoch */
    int64_t n_batches;      /* batches in the epoch (before skips) */
    int64_t iteration;      /* training steps since the start of training */
    int clips;              /* clips in this batch */
    double loss, acc;       /* this batch: mean loss, top-1 accuracy */
    double mean_loss;       /* the epoch so far, weighted by clips (AverageMeter) */
    double mean_acc;
    double lr;              /* learning rate of this step */
    double data_seconds;    /* the epoch so far: time spent waiting for the loader */
    double seconds;         /* the epoch so far: wall time */
    int64_t epoch_clips;    /* clips so far this epoch */
    int64_t skipped;        /* unreadable videos skipped so far this epoch */
} st3d_step_report;

/* Called after every step; a non-zero return stops the epoch (an error). */
typedef int (*st3d_step_fn)(const st3d_step_report *report, void *user);

typedef struct st3d_epoch_result {
    int64_t epoch;          /* 1-based */
    double loss, acc;       /* means over the epoch's clips */
    double lr;              /* learning rate used */
    int64_t clips;          /* clips seen */
    int64_t batches;        /* batches run */
    int64_t skipped;        /* unreadable videos skipped */
    double seconds;         /* wall time */
    double data_seconds;    /* of which waiting for the loader */
} st3d_epoch_result;

typedef struct st3d_trainer_params {
    double lr;                     /* initial learning rate (0.1), in double as the
                                      original's Python float: schedules multiply it */
    st3d_sgd_params sgd;           /* the optimizer's other settings (its lr is set from lr) */
    st3d_scheduler_params sched;   /* learning-rate schedule */
    char ft_begin_module[64];      /* fine-tuning: first trained module, "" for all */
    st3d_step_fn on_step;          /* progress callback, or NULL */
    void *user;                    /* handed to on_step */
    st3d_dist *dist;               /* data-parallel over these ranks (NULL: alone); the
                                      loaders must take shard rank of size */
    int sync_bn;                   /* 1: batch statistics over all ranks' clips
                                      (PyTorch's SyncBatchNorm, --sync-bn) */
    double bucket_cap_mb;          /* gradients go out in buckets of this size (25,
                                      DDP's bucket_cap_mb), as each fills in the backward */
    int no_overlap;                /* 1: the all-reduces after the backward instead */
    int check_replicas;            /* 1: after every step, check that every rank's
                                      weights equal rank 0's bit for bit (slow) */
} st3d_trainer_params;

st3d_trainer_params st3d_trainer_default_params(void);

typedef struct st3d_trainer st3d_trainer;

/* A trainer borrows model (which must outlive it) and owns its execution
 * state (st3d_exec), optimizer and scheduler. */
st3d_trainer *st3d_trainer_new(st3d_model *model, const st3d_trainer_params *params,
                               st3d_error *err);
void st3d_trainer_free(st3d_trainer *t);
/* One epoch of training over loader (its epoch `epoch - 1` order): a train
 * step and an SGD step per batch. */
int st3d_trainer_train_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch,
                             st3d_epoch_result *out, st3d_error *err);
/* One epoch of validation: eval-mode forward, mean loss and accuracy over
 * clips (the original's val_epoch). */
int st3d_trainer_val_epoch(st3d_trainer *t, st3d_loader *loader, int64_t epoch,
                           st3d_epoch_result *out, st3d_error *err);
/* The scheduler's step that closes an epoch (val_loss for plateau, else
 * ignored); returns the next learning rate, which the optimizer now uses. */
double st3d_trainer_end_epoch(st3d_trainer *t, double val_loss);
double st3d_trainer_lr(const st3d_trainer *t);
int64_t st3d_trainer_iteration(const st3d_trainer *t);
st3d_exec *st3d_trainer_exec(st3d_trainer *t);

/* Checkpoints (safetensors): the state_dict, the SGD momentum buffers
 * ("optimizer.momentum_buffer.<key>"), and as metadata the epoch, the
 * architecture, the step count and the scheduler's state; `extra` metadata
 * (key, value pairs, NULL-terminated; may be NULL) is added.  A path ending
 * in ".pth" gets instead what the original main.py's save_checkpoint writes
 * with torch.save ({'epoch', 'arch', 'state_dict', 'optimizer',
 * 'scheduler'}, PyTorch's state dicts; `extra` is not used), which
 * torch.load reads.  Written atomically (temporary file, fsync, rename). */
int st3d_trainer_save(const st3d_trainer *t, const char *path, int64_t epoch,
                      const char *const *extra, st3d_error *err);
/* Restores what st3d_trainer_save wrote, or a .pth checkpoint of the
 * original main.py as its resume does (whose optimizer and scheduler
 * settings then replace the trainer's); *epoch gets the epoch it closed. */
int st3d_trainer_resume(st3d_trainer *t, const char *path, int64_t *epoch, st3d_error *err);

/* ------------------------------------------------------------- inference */

/* One video's clip scores (softmax per clip) and their mean. */
typedef struct st3d_video_scores {
    int64_t sample;            /* dataset index */
    int n_clips;               /* clips cut from it */
    int n_classes;             /* scores per clip */
    const float *clip_scores;  /* n_clips x n_classes */
    const int64_t *segments;   /* n_clips x 2: [first, one past last] frame numbers */
    const float *mean_scores;  /* n_classes: the clips' mean (the video's score) */
} st3d_video_scores;

/* Called once per video, in dataset order; non-zero stops the run. */
typedef int (*st3d_video_fn)(const st3d_video_scores *video, void *user);

/* The original's inference (inference.py): every clip of every video the
 * loader gives (no shuffling; SlidingWindow for --inference) through an
 * eval-mode forward of model on exec, softmax, and fn per complete video. */
int st3d_predict(st3d_exec *exec, st3d_model *model, st3d_loader *loader, st3d_video_fn fn,
                 void *user, st3d_error *err);

/* The results JSON inference.py writes: {"results": {video_id: [{"label",
 * "score"}, ...top_k]}}, or with average 0 (--inference_no_average) a list
 * of {"segment": [b, e], "result": [...]} per clip. */
typedef struct st3d_results st3d_results;
st3d_results *st3d_results_new(int top_k, int average, st3d_error *err);
void st3d_results_free(st3d_results *r);
int st3d_results_add(st3d_results *r, const st3d_dataset *ds, const st3d_video_scores *video,
                     st3d_error *err);
/* Written atomically. */
int st3d_results_write(const st3d_results *r, const char *path, st3d_error *err);
/* Across ranks (each ran st3d_predict on its share): rank 0's r gets every
 * rank's videos, in dataset order, as one process would have them; the
 * other ranks' r is unchanged.  Every rank must call it. */
int st3d_results_gather(st3d_results *r, st3d_dist *dist, st3d_error *err);

/* Clips of a st3d_clip_stream through an eval-mode forward, batch_size
 * clips at a time (from several videos when they interleave), and every
 * item of the stream handed to fn in the stream's order, clips with their
 * outputs; the companion's classify_video for any number of videos, its
 * --mode score (scores) and --mode feature (features) at once.  A BEGIN,
 * END or FAIL item waits for the clips queued before it. */
typedef struct st3d_clip_result {
    const st3d_stream_item *item; /* the stream's item */
    const float *logits;          /* CLIP: fc's n_classes outputs (the companion's
                                     "scores"), else NULL */
    const float *scores;          /* CLIP: their softmax, else NULL */
    const float *features;        /* CLIP: the feature_dim pooled values fc reads,
                                     else NULL */
    double network_s;             /* seconds in the network so far, this run */
    double waiting_s;             /* seconds waiting for clips and taking them (their
                                     normalization) so far, this run: with network_s,
                                     what bounds the run (decoding or compute) */
} st3d_clip_result;

/* Called per item; a non-zero return stops the run (an error). */
typedef int (*st3d_clip_fn)(const st3d_clip_result *result, void *user);

int st3d_classify_stream(st3d_exec *exec, st3d_model *model, st3d_clip_stream *stream,
                         int batch_size, st3d_clip_fn fn, void *user, st3d_error *err);

/* A label drawn over a run of frames. */
typedef struct st3d_overlay_span {
    int64_t first, last; /* 1-based frame numbers it covers (a clip's segment) */
    char text[128];      /* what is drawn, e.g. "MoveLeft 0.93" */
} st3d_overlay_span;

/* Writes video_path again to out_path (H.264 when libavcodec has libx264,
 * else MPEG-4 part 2; container from out_path's extension; written under a
 * temporary name and renamed when complete) with, on each frame, the text
 * of the newest span covering it in a box at the top left (cairo), as the
 * companion's generate_result_video.py.  spans sorted by first.  Decodes
 * the video once more, a frame at a time. */
int st3d_overlay_video(const char *video_path, const char *out_path,
                       const st3d_overlay_span *spans, int64_t n_spans, st3d_error *err);

/* ----------------------------------------------------------------- logs */

/* The original's Logger (utils.py): a tab-separated file with a header row,
 * one row per log() call, flushed at once; rows end in \r\n as Python's csv
 * writer ends them; numbers as Python's repr prints them.  keep_until > 0
 * (resuming) keeps the rows whose first column (epoch) is below it and
 * appends after them; 0 starts the file anew. */
typedef struct st3d_logger st3d_logger;
st3d_logger *st3d_logger_open(const char *path, const char *const *columns, int n_columns,
                              int64_t keep_until, st3d_error *err);
/* One row: n_columns numbers (integral ones print without a decimal point
 * when is_int[i] is set; is_int may be NULL). */
int st3d_logger_log(st3d_logger *log, const double *values, const int *is_int, st3d_error *err);
void st3d_logger_close(st3d_logger *log);


/* ================================================ evaluation and figures */
/* What the original's util_scripts do after a run: learning curves from its
 * logs, and video-level accuracy of its inference results
 * (util_scripts/eval_accuracy.py), with pictures drawn by cairo. */

/* Draws the loss and accuracy per epoch of a training run, from
 * result_path/train.log and, when present, result_path/val.log (the
 * original's Logger files), to png_path (NULL: result_path/curves.png):
 * 1200 x 520 pixels, loss and accuracy panels, training and validation
 * lines.  Written atomically.  A malformed log fails naming file and line. */
int st3d_plot_curves(const char *result_path, const char *png_path, st3d_error *err);

typedef struct st3d_eval_params {
    const char *subset; /* annotation subset scored ("validation") */
    int top_k;          /* k of the second accuracy (5) */
    int ignore_missing; /* 0: videos absent from the results count as wrong
                           (eval_accuracy.py's default); 1: they are left
                           out of every denominator (its --ignore) */
} st3d_eval_params;

st3d_eval_params st3d_eval_default_params(void);

/* One class of the annotation's "labels". */
typedef struct st3d_eval_class {
    const char *label;  /* class name (owned by the st3d_eval) */
    int64_t n_videos;   /* videos of the subset with this label */
    int64_t n_missing;  /* of those, absent from the results */
    int64_t n_top1;     /* of those, with this label ranked first */
    int64_t n_topk;     /* of those, with this label among the first top_k */
    double top1, topk;  /* n_top1, n_topk over the videos counted; NaN when none is */
} st3d_eval_class;

typedef struct st3d_eval {
    const char *subset;     /* the subset scored (owned) */
    int top_k;              /* k of topk */
    int ignore_missing;     /* as the parameter */
    int64_t n_videos;       /* labelled videos of the subset (the ground truth) */
    int64_t n_missing;      /* of those, absent from the results */
    int64_t n_counted;      /* the denominator: n_videos, less n_missing when ignored */
    int64_t n_results;      /* videos in the results file (any subset) */
    int64_t n_top1, n_topk; /* videos whose label is ranked first / in the first top_k */
    double top1, topk;      /* n_top1 / n_counted, n_topk / n_counted */
    double mean_class_top1; /* mean of the classes' top1, over classes with videos counted */
    int64_t n_classes;      /* entries of classes (the annotation's "labels") */
    st3d_eval_class *classes; /* per class, in "labels" order */
    int64_t *confusion;     /* n_classes x n_classes video counts, row: true class,
                               column: top-1 prediction; missing videos in no cell */
} st3d_eval;

/* Scores results_path, the original's inference JSON ({"results": {video_id:
 * [{"label": name, "score": s}, ...]}}, from main.py --inference without
 * --no_average), against the labels of params->subset in annotation_path
 * (the original's annotation JSON; no video is opened).  Each video's
 * entries are ranked by score, ties kept in file order, as eval_accuracy.py.
 * A results label absent from "labels", a results video absent from the
 * annotation's "database" (which eval_accuracy.py would ignore), a subset
 * video without a label, or an empty result list fail naming the file and
 * the video. */
int st3d_eval_results(const char *results_path, const char *annotation_path,
                      const st3d_eval_params *params, st3d_eval **out, st3d_error *err);
void st3d_eval_free(st3d_eval *ev);
/* The summary as JSON: top1, top<k>, k, mean_class_top1, n_videos,
 * n_missing, n_counted, n_results, subset, ignore_missing, per_class (label,
 * n_videos, n_missing, top1, top<k>; null when no video is counted) and
 * confusion (the matrix as rows of counts).  Written atomically. */
int st3d_eval_write_json(const st3d_eval *ev, const char *json_path, st3d_error *err);
/* Draws the confusion matrix, each row normalised by its videos, with a
 * colour scale; class names on both axes up to 150 classes (smaller type for
 * many), none beyond.  Written atomically. */
int st3d_eval_plot_confusion(const st3d_eval *ev, const char *png_path, st3d_error *err);

/* ========================================= end of evaluation and figures == */

/* ======================================================= built-in datasets */
/* Datasets st3d makes itself, for demos and tests (`st3d make-dataset`).
 *
 * "motion": real encoded videos (MPEG-4 part 2 in .avi, libavcodec's own
 * encoder) of a textured shape moving over a textured background that
 * drifts in a random direction; the class is the shape's motion alone:
 * MoveLeft, MoveRight, MoveUp, MoveDown, Approach (growing), Recede
 * (shrinking), RotateClockwise, RotateAnticlockwise (fewer classes take the
 * first ones).  Shape, textures, colours, place, size, speeds and the
 * background's drift are drawn independently of the class, so no single
 * frame tells it.  Laid out as UCF-101:
 *   DIR/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi, clips in groups of 4, the
 *     test videos in the first groups, the training videos in the next;
 *   DIR/splits/classInd.txt, trainlist01.txt, testlist01.txt as UCF-101's;
 *   DIR/motion_params.txt, the parameters (to resume a run);
 * so that st3d_make_annotations (dataset "ucf101", src DIR/splits,
 * video_root DIR/videos) gives the original code's annotation JSON.  The
 * same parameters give byte-identical files; video (class c, number i)
 * depends on (seed, c, i), frames and size only.  Train on it without
 * horizontal flips (the original's --no_hflip): a flip turns MoveLeft into
 * MoveRight and RotateClockwise into RotateAnticlockwise. */

/* Called after each finished video from a worker thread (one call at a
 * time): done of total videos are there, path is the last one written. */
typedef void (*st3d_motion_progress_fn)(void *user, int64_t done, int64_t total, const char *path);

typedef struct st3d_motion_params {
    int n_classes;                    /* 1..8, the first of the list above (8) */
    int train_per_class;              /* training videos per class (40) */
    int test_per_class;               /* test videos per class (10) */
    int n_frames;                     /* frames per video, >= 2 (48) */
    int size;                         /* frame width and height, even, 32..2048 (128) */
    int fps;                          /* frame rate (25) */
    uint64_t seed;                    /* every video derives from (seed, class, index) (1) */
    int threads;                      /* videos encoded at once (one encoder thread each);
                                         0: all cores */
    int force;                        /* 0: resume a dataset of the same parameters found in
                                         DIR (its videos are kept), refuse another dataset or
                                         a non-empty folder; 1: remove an old dataset's files
                                         and make everything anew */
    st3d_motion_progress_fn progress; /* NULL: none */
    void *progress_user;              /* passed to progress */
} st3d_motion_params;

st3d_motion_params st3d_motion_default_params(void);

/* Name of class cls (0-based), e.g. "MoveLeft"; NULL out of range. */
const char *st3d_motion_class_name(int cls);

/* What a st3d_make_motion_dataset call did. */
typedef struct st3d_motion_stats {
    int64_t n_videos;  /* videos of the dataset */
    int64_t n_written; /* encoded by this call */
    int64_t n_present; /* found complete (a resumed run) and kept */
    int64_t bytes;     /* size of all the dataset's videos */
    double seconds;    /* wall time of the call */
} st3d_motion_stats;

/* Writes the "motion" dataset into dir (created if needed).  Each video is
 * encoded to a hidden temporary file and renamed into place when complete;
 * the split files are written last.  Bad parameters and an unusable dir
 * (not creatable or writable, another dataset, a non-empty folder without
 * force) fail with ST3D_ERR_INVALID.  stats may be NULL. */
int st3d_make_motion_dataset(const st3d_motion_params *params, const char *dir,
                             st3d_motion_stats *stats, st3d_error *err);

/* ================================================ end of built-in datasets */

#endif /* ST3D_PUBLIC_TRAIN_H */

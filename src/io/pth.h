/*
 * pth.h - internal interface of the PyTorch checkpoint reader: format
 * sniffing, the memory-based entry point used by the fuzz targets, and the
 * glue between the two container formats (pth_zip.c, pth_legacy.c) and the
 * format-independent part that finds the state dict and turns tensor views
 * into contiguous tensors (pth_dict.c).  Not installed.
 */
#ifndef ST3D_PTH_H
#define ST3D_PTH_H

#include "io/io.h"
#include "io/pickle.h"

/* What the first bytes of a file say it is. */
typedef enum st3d_weights_kind {
    ST3D_WEIGHTS_UNKNOWN = 0,
    ST3D_WEIGHTS_SAFETENSORS, /* 8-byte header length, then '{' */
    ST3D_WEIGHTS_PTH_ZIP,     /* a zip archive (torch.save since 1.6) */
    ST3D_WEIGHTS_PTH_LEGACY,  /* pickled magic number 0x1950a86a20f9469cfc6c */
} st3d_weights_kind;

/* Classifies a file from its first n (up to 16) bytes. */
st3d_weights_kind st3d_weights_sniff(const unsigned char *head, size_t n);
/* The same from a file's first bytes (UNKNOWN when it cannot be read). */
st3d_weights_kind st3d_weights_sniff_path(const char *path);

/* Reads a checkpoint's state dict (zip or legacy, by content) from a byte
 * source. */
int st3d_pth_read_src(st3d_src *s, st3d_tensor_map **out, st3d_error *err);
int st3d_pth_read_mem(const void *buf, size_t n, const char *name, st3d_tensor_map **out,
                      st3d_error *err);

/* A container format's way of fetching a storage's bytes. */
typedef struct pth_loader {
    /* Fetches the storage behind st (a PK_STORAGE object): *data receives a
     * malloc'ed buffer of exactly st->storage.numel elements.  Sizes are
     * checked against what the file really holds before allocating. */
    int (*load)(void *user, const pk_obj *st, unsigned char **data, st3d_error *err);
    void *user; /* the format reader's state */
    /* Optional: the storage's bytes inside the file mapping (which the map
     * then adopts), when they can be used in place; NULL to load instead. */
    const unsigned char *(*borrow)(void *user, const pk_obj *st);
} pth_loader;

/* What to make of an unpickled checkpoint: called once by a container
 * reader with the root object, while the file is still open so that
 * storages can be fetched through ld.  format is "pth-zip" or
 * "pth-legacy". */
typedef int (*pth_consume_fn)(const char *path, const pk_obj *root, const char *format,
                              const pth_loader *ld, void *user, st3d_error *err);

/* Reads a checkpoint (zip or legacy, by content) and hands it to fn. */
int pth_read_with(st3d_src *s, pth_consume_fn fn, void *user, st3d_error *err);

/* Copies one tensor (a PK_TENSOR) of root into map as name, contiguous,
 * after checking its view against its storage. */
int pth_add_tensor(const char *path, const char *name, const pk_obj *tensor,
                   const pth_loader *ld, st3d_tensor_map *map, st3d_error *err);

/* Largest pickle accepted (data.pkl of a zip, or the legacy file's pickles). */
#define PTH_MAX_PICKLE ((uint64_t)256 << 20)

/* Finds the state dict in root (the unpickled checkpoint), materializes its
 * tensors through ld and returns them in a new map, with "format" set to
 * format and "arch" / "epoch" copied from the checkpoint when present. */
int pth_build_map(const char *path, const pk_obj *root, const char *format,
                  const pth_loader *ld, st3d_tensor_map **out, st3d_error *err);

/* ---- writing (pth_write.c) ---- */

/* The containers the pickle emitter writes. */
typedef enum pkw_kind {
    PKW_DICT,         /* {} */
    PKW_ORDERED_DICT, /* collections.OrderedDict */
    PKW_COUNTER,      /* collections.Counter (its keys and counts, as a dict) */
    PKW_LIST,         /* [] */
    PKW_TUPLE,        /* () */
} pkw_kind;

/* A pickle being written, and the storages its tensors refer to. */
typedef struct pkw pkw;

pkw *pkw_new(st3d_error *err);
void pkw_free(pkw *w);
/* Values, in the order the object holds them: a dict's key, then its
 * value.  Failures are kept in w and reported by pth_write_file. */
void pkw_none(pkw *w);
void pkw_bool(pkw *w, int v);
void pkw_int(pkw *w, int64_t v);
void pkw_float(pkw *w, double v);
void pkw_str(pkw *w, const char *s);
/* Opens a container; the values that follow, up to pkw_end, are its items. */
void pkw_begin(pkw *w, pkw_kind kind);
void pkw_end(pkw *w);
/* A contiguous tensor (a CPU tensor without gradient, as state dicts hold
 * them); data is borrowed until pth_write_file returns. */
void pkw_tensor(pkw *w, st3d_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* Finishes the pickle and writes it with its storages as torch.save's zip
 * format, atomically (temporary file, fsync, rename). */
int pth_write_file(const char *path, pkw *w, st3d_error *err);

/* The two container formats. */
int pth_read_zip(st3d_src *s, pth_consume_fn fn, void *user, st3d_error *err);
int pth_read_legacy(st3d_src *s, pth_consume_fn fn, void *user, st3d_error *err);

#endif /* ST3D_PTH_H */

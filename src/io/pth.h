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

/* Reads a checkpoint (zip or legacy, by content) from a byte source. */
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
} pth_loader;

/* Largest pickle accepted (data.pkl of a zip, or the legacy file's pickles). */
#define PTH_MAX_PICKLE ((uint64_t)256 << 20)

/* Finds the state dict in root (the unpickled checkpoint), materializes its
 * tensors through ld and returns them in a new map, with "format" set to
 * format and "arch" / "epoch" copied from the checkpoint when present. */
int pth_build_map(const char *path, const pk_obj *root, const char *format,
                  const pth_loader *ld, st3d_tensor_map **out, st3d_error *err);

/* The two container formats. */
int pth_read_zip(st3d_src *s, st3d_tensor_map **out, st3d_error *err);
int pth_read_legacy(st3d_src *s, st3d_tensor_map **out, st3d_error *err);

#endif /* ST3D_PTH_H */

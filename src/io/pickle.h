/*
 * pickle.h - a restricted unpickler for the pickles inside PyTorch
 * checkpoints.  It decodes the binary opcodes torch.save emits (protocols 2
 * to 5) into a small tree of plain values, containers, storages and tensor
 * descriptions.  Only a fixed list of globals is recognized (OrderedDict,
 * torch's tensor rebuild functions and storage types); anything else is an
 * error naming the global, and nothing is ever executed.  Every object lives
 * in one arena owned by the context, freed all at once, so shared and even
 * cyclic references cost nothing to tear down.  Not installed.
 */
#ifndef ST3D_PICKLE_H
#define ST3D_PICKLE_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

/* Limits that keep a hostile pickle from exhausting time or memory. */
#define PK_MAX_DEPTH 1000           /* container nesting */
#define PK_MAX_OBJECTS (4u << 20)   /* objects created per context */
#define PK_MAX_ARENA ((size_t)256 << 20) /* bytes of arena per context */
#define PK_MAX_MEMO (1u << 22)      /* memo entries */
#define PK_MAX_STACK (1u << 22)     /* entries on the value stack */
#define PK_MAX_MARKS 10000          /* open MARKs */

typedef enum pk_type {
    PK_NONE,    /* None */
    PK_BOOL,    /* True / False: u.i is 0 or 1 */
    PK_INT,     /* an int that fits int64: u.i */
    PK_BIGINT,  /* a wider int (LONG1/LONG4): u.str holds its raw bytes */
    PK_FLOAT,   /* u.f */
    PK_STR,     /* text: u.str, NUL-terminated, may hold NULs inside */
    PK_BYTES,   /* bytes: u.str */
    PK_TUPLE,   /* u.seq */
    PK_LIST,    /* u.seq */
    PK_DICT,    /* dict, OrderedDict or Counter: u.dict, insertion order */
    PK_GLOBAL,  /* one of the allowed globals: u.global */
    PK_STORAGE, /* a persistent storage reference: u.storage */
    PK_TENSOR,  /* a tensor rebuilt from a storage: u.tensor */
} pk_type;

/* The globals a checkpoint may name. */
typedef enum pk_global {
    PKG_ORDERED_DICT,      /* collections.OrderedDict */
    PKG_COUNTER,           /* collections.Counter (LR scheduler milestones) */
    PKG_REBUILD_TENSOR_V2, /* torch._utils._rebuild_tensor_v2 */
    PKG_REBUILD_TENSOR,    /* torch._utils._rebuild_tensor (before 0.4) */
    PKG_REBUILD_PARAMETER, /* torch._utils._rebuild_parameter */
    PKG_REBUILD_PARAMETER_STATE, /* torch._utils._rebuild_parameter_with_state */
    PKG_STORAGE_TYPE,      /* torch.<Type>Storage; u.global.dtype says which */
} pk_global;

typedef struct pk_obj pk_obj;

/* A tensor rebuilt from a storage (kept out of line: it is large). */
typedef struct pk_tensor {
    const pk_obj *storage;          /* a PK_STORAGE */
    int64_t offset;                 /* storage_offset, in elements */
    int ndim;                       /* rank */
    int64_t shape[ST3D_MAX_DIMS];   /* sizes */
    int64_t stride[ST3D_MAX_DIMS];  /* strides, in elements */
} pk_tensor;

struct pk_obj {
    pk_type type; /* what this is; selects the member of u */
    int depth;    /* container nesting below this object (0 for scalars) */
    union {
        int64_t i; /* PK_BOOL, PK_INT */
        double f;  /* PK_FLOAT */
        struct {
            char *s;    /* arena copy, NUL-terminated */
            size_t len; /* bytes, excluding the terminator */
        } str;          /* PK_STR, PK_BYTES, PK_BIGINT */
        struct {
            pk_obj **items; /* elements */
            size_t n, cap;  /* used and allocated */
        } seq;              /* PK_TUPLE, PK_LIST */
        struct {
            pk_obj **keys, **vals; /* pairs in insertion order */
            size_t n, cap;         /* used and allocated */
        } dict;                    /* PK_DICT */
        struct {
            pk_global which; /* the function or type */
            st3d_dtype dtype; /* element type, for PKG_STORAGE_TYPE */
            const char *name; /* "module.name", for messages */
        } global;             /* PK_GLOBAL */
        struct {
            st3d_dtype dtype;    /* element type of the storage type */
            const char *key;     /* storage key (zip: record name under data/) */
            int64_t numel;       /* declared element count */
            int64_t view_offset; /* legacy storage views: first element, else 0 */
            int64_t view_numel;  /* legacy views: element count, else -1 */
        } storage;               /* PK_STORAGE */
        pk_tensor *tensor;       /* PK_TENSOR */
    } u;
};

typedef struct pk_ctx pk_ctx;

/* A context owns every object it decodes.  name labels errors ("m.pth"). */
pk_ctx *pk_new(const char *name, st3d_error *err);
void pk_free(pk_ctx *c);

/* Decodes one pickle from buf (up to and including its STOP opcode) into
 * *out, and sets *used to the bytes it took.  Several pickles may be decoded
 * in one context (the legacy format stores them back to back).  Returns 0,
 * or -1 on error, or -2 when the input ended before STOP (more bytes may
 * help; err is filled as for -1). */
int pk_load(pk_ctx *c, const unsigned char *buf, size_t len, size_t *used, pk_obj **out,
            st3d_error *err);

/* Byte offsets in later error messages are reported as base + the offset
 * within the pickle (for pickles embedded in a larger file). */
void pk_set_base(pk_ctx *c, uint64_t base);

/* Every storage reference decoded so far in this context, in order. */
size_t pk_storage_count(const pk_ctx *c);
const pk_obj *pk_storage_at(const pk_ctx *c, size_t i);

/* Dict lookup by string key; NULL when absent or d is not a dict. */
const pk_obj *pk_dict_get(const pk_obj *d, const char *key);
/* Python-ish type name for messages: "dict", "tensor", ... */
const char *pk_type_name(const pk_obj *o);
/* torch's storage type of an element type ("FloatStorage"), NULL if none. */
const char *pk_storage_type(st3d_dtype dtype);

#endif /* ST3D_PICKLE_H */

/*
 * pickle.c - the restricted unpickler (see pickle.h).
 *
 * A pickle is a program for a small stack machine.  This file runs that
 * program with a whitelist of opcodes (the binary ones of protocols 2 to 5
 * that torch.save emits, plus a few harmless relatives) and of globals
 * (pk_resolve_global).  "Calling" an allowed global never runs anything: a
 * REDUCE on OrderedDict makes an empty dict, one on _rebuild_tensor_v2 makes
 * a tensor description, and so on.  Persistent ids (BINPERSID) become
 * storage references that the checkpoint reader resolves later.
 *
 * Hostile input is expected.  Every read is bounds checked; memo indices are
 * bounded by the number of opcodes seen (a real pickler numbers its memo
 * entries consecutively), so the memo never grows faster than the input;
 * the value stack, the MARK stack, the container nesting depth, the object
 * count and the arena's size are all capped.  The machine is iterative, so
 * no input can exhaust the C stack.
 */
#include "io/pickle.h"
#include "io/io.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A block of arena memory. */
typedef struct pk_chunk {
    struct pk_chunk *next; /* older chunk */
    size_t used, cap;      /* bytes used / available in data */
    unsigned char data[];  /* the memory handed out */
} pk_chunk;

struct pk_ctx {
    const char *name;   /* labels errors */
    uint64_t base;      /* added to byte offsets in messages */
    pk_obj **storages;  /* every PK_STORAGE made (malloc'ed array) */
    size_t n_storages, cap_storages;
    pk_chunk *chunks;   /* newest first */
    size_t arena_bytes; /* total allocated from malloc */
    size_t n_objects;   /* objects created so far */
};

/* State of one pk_load call. */
typedef struct pk_run {
    pk_ctx *c;                /* owning context */
    const unsigned char *buf; /* the pickle */
    size_t len, pos;          /* its length and the read position */
    size_t op_pos;            /* offset of the opcode being run */
    pk_obj **stack;           /* value stack */
    size_t sp, stack_cap;     /* used and allocated entries */
    size_t *marks;            /* stack heights at each open MARK */
    size_t n_marks, marks_cap;
    pk_obj **memo;            /* memo, dense by index */
    size_t memo_cap;          /* allocated entries */
    size_t memo_len;          /* entries set (for MEMOIZE) */
    size_t n_ops;             /* opcodes run */
    int truncated;            /* the input ended before STOP */
    st3d_error *err;          /* where failures go */
} pk_run;

/* ------------------------------------------------------------------ arena */

pk_ctx *pk_new(const char *name, st3d_error *err) {
    pk_ctx *c = st3d_calloc(1, sizeof *c, err);
    if (c) c->name = name;
    return c;
}

void pk_free(pk_ctx *c) {
    if (!c) return;
    for (pk_chunk *k = c->chunks, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(c->storages);
    free(c);
}

static void *arena_alloc(pk_run *r, size_t n) {
    pk_ctx *c = r->c;
    n = (n + 15) & ~(size_t)15;
    if (!c->chunks || c->chunks->cap - c->chunks->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (c->arena_bytes + cap > PK_MAX_ARENA) {
            st3d_fail(r->err, ST3D_ERR_NOMEM,
                      "%s: pickle needs more than %zu MiB of objects", c->name,
                      PK_MAX_ARENA >> 20);
            return NULL;
        }
        pk_chunk *k = st3d_malloc(sizeof *k + cap, r->err);
        if (!k) return NULL;
        k->next = c->chunks;
        k->used = 0;
        k->cap = cap;
        c->chunks = k;
        c->arena_bytes += cap;
    }
    void *p = c->chunks->data + c->chunks->used;
    c->chunks->used += n;
    return p;
}

static pk_obj *new_obj(pk_run *r, pk_type type) {
    if (++r->c->n_objects > PK_MAX_OBJECTS) {
        st3d_fail(r->err, ST3D_ERR_FORMAT, "%s: pickle creates more than %u objects",
                  r->c->name, PK_MAX_OBJECTS);
        return NULL;
    }
    pk_obj *o = arena_alloc(r, sizeof *o);
    if (o) {
        memset(o, 0, sizeof *o);
        o->type = type;
    }
    return o;
}

/* ---------------------------------------------------------------- helpers */

static int fail_at(pk_run *r, const char *what) {
    return st3d_fail(r->err, ST3D_ERR_FORMAT, "%s: pickle: %s (opcode at byte %" PRIu64 ")",
                     r->c->name, what, r->c->base + r->op_pos);
}

/* Returns a pointer to the next n bytes, or NULL (err set) when absent. */
static const unsigned char *take(pk_run *r, size_t n) {
    if (n > r->len - r->pos) {
        r->truncated = 1;
        st3d_fail(r->err, ST3D_ERR_FORMAT, "%s: pickle truncated at byte %" PRIu64, r->c->name,
                  r->c->base + r->len);
        return NULL;
    }
    const unsigned char *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

static int push(pk_run *r, pk_obj *o) {
    if (!o) return -1;
    if (r->sp == r->stack_cap) {
        if (r->stack_cap >= PK_MAX_STACK) return fail_at(r, "value stack too deep");
        size_t cap = r->stack_cap ? 2 * r->stack_cap : 64;
        pk_obj **s = realloc(r->stack, cap * sizeof *s);
        if (!s) return st3d_fail(r->err, ST3D_ERR_NOMEM, "%s: out of memory", r->c->name);
        r->stack = s;
        r->stack_cap = cap;
    }
    r->stack[r->sp++] = o;
    return 0;
}

/* The stack floor: values below the innermost MARK are not poppable. */
static size_t floor_of(const pk_run *r) { return r->n_marks ? r->marks[r->n_marks - 1] : 0; }

static pk_obj *pop(pk_run *r) {
    if (r->sp <= floor_of(r)) {
        fail_at(r, "stack underflow");
        return NULL;
    }
    return r->stack[--r->sp];
}

static pk_obj *top(pk_run *r) {
    if (r->sp <= floor_of(r)) {
        fail_at(r, "stack underflow");
        return NULL;
    }
    return r->stack[r->sp - 1];
}

/* Pops the innermost MARK; *base receives the first stack index above it. */
static int pop_mark(pk_run *r, size_t *base) {
    if (!r->n_marks) return fail_at(r, "no MARK to pop to");
    *base = r->marks[--r->n_marks];
    return 0;
}

static int note_depth(pk_run *r, pk_obj *parent, const pk_obj *child) {
    if (child->depth + 1 > parent->depth) parent->depth = child->depth + 1;
    if (parent->depth > PK_MAX_DEPTH) {
        char m[64];
        snprintf(m, sizeof m, "containers nested deeper than %d", PK_MAX_DEPTH);
        return fail_at(r, m);
    }
    return 0;
}

/* Grows an arena array of pointers (contents copied, old block abandoned). */
static int grow(pk_run *r, pk_obj ***arr, size_t n, size_t *cap) {
    if (n < *cap) return 0;
    size_t nc = *cap ? 2 * *cap : 4;
    pk_obj **a = arena_alloc(r, nc * sizeof *a);
    if (!a) return -1;
    if (n) memcpy(a, *arr, n * sizeof *a);
    *arr = a;
    *cap = nc;
    return 0;
}

static int seq_append(pk_run *r, pk_obj *seq, pk_obj *item) {
    if (grow(r, &seq->u.seq.items, seq->u.seq.n, &seq->u.seq.cap) != 0) return -1;
    seq->u.seq.items[seq->u.seq.n++] = item;
    return note_depth(r, seq, item);
}

/* Appends a pair; duplicate keys are kept (lookups take the last one), so
 * that insertion stays O(1) whatever the input. */
static int dict_set(pk_run *r, pk_obj *d, pk_obj *k, pk_obj *v) {
    size_t n = d->u.dict.n, cap = d->u.dict.cap;
    if (n == cap) {
        if (grow(r, &d->u.dict.keys, n, &cap) != 0) return -1;
        cap = d->u.dict.cap;
        if (grow(r, &d->u.dict.vals, n, &cap) != 0) return -1;
        d->u.dict.cap = cap;
    }
    d->u.dict.keys[n] = k;
    d->u.dict.vals[n] = v;
    d->u.dict.n = n + 1;
    if (note_depth(r, d, k) != 0) return -1;
    return note_depth(r, d, v);
}

static pk_obj *new_str(pk_run *r, pk_type type, const unsigned char *p, size_t n) {
    pk_obj *o = new_obj(r, type);
    if (!o) return NULL;
    char *s = arena_alloc(r, n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    o->u.str.s = s;
    o->u.str.len = n;
    return o;
}

static pk_obj *new_int(pk_run *r, int64_t v) {
    pk_obj *o = new_obj(r, PK_INT);
    if (o) o->u.i = v;
    return o;
}

/* Builds a tuple from stack entries [base, sp). */
static pk_obj *tuple_from(pk_run *r, size_t base) {
    pk_obj *t = new_obj(r, PK_TUPLE);
    if (!t) return NULL;
    for (size_t i = base; i < r->sp; i++)
        if (seq_append(r, t, r->stack[i]) != 0) return NULL;
    r->sp = base;
    return t;
}

static int is_text(const pk_obj *o) { return o && (o->type == PK_STR || o->type == PK_BYTES); }

/* -------------------------------------------------------------- globals */

/* The globals a checkpoint may name, and what each means here. */
static const struct {
    const char *module, *name; /* as pickled */
    pk_global which;           /* what it means here */
    int dtype;                 /* element type of storage types, else -1 */
} ALLOWED[] = {
    {"collections", "OrderedDict", PKG_ORDERED_DICT, -1},
    {"collections", "Counter", PKG_COUNTER, -1},
    {"torch._utils", "_rebuild_tensor_v2", PKG_REBUILD_TENSOR_V2, -1},
    {"torch._utils", "_rebuild_tensor", PKG_REBUILD_TENSOR, -1},
    {"torch._utils", "_rebuild_parameter", PKG_REBUILD_PARAMETER, -1},
    {"torch._utils", "_rebuild_parameter_with_state", PKG_REBUILD_PARAMETER_STATE, -1},
    {"torch", "FloatStorage", PKG_STORAGE_TYPE, ST3D_F32},
    {"torch", "HalfStorage", PKG_STORAGE_TYPE, ST3D_F16},
    {"torch", "BFloat16Storage", PKG_STORAGE_TYPE, ST3D_BF16},
    {"torch", "DoubleStorage", PKG_STORAGE_TYPE, ST3D_F64},
    {"torch", "LongStorage", PKG_STORAGE_TYPE, ST3D_I64},
    {"torch", "IntStorage", PKG_STORAGE_TYPE, ST3D_I32},
    {"torch", "ByteStorage", PKG_STORAGE_TYPE, ST3D_U8},
    {"torch", "CharStorage", PKG_STORAGE_TYPE, ST3D_I8},
    {"torch", "BoolStorage", PKG_STORAGE_TYPE, ST3D_BOOL},
};

const char *pk_storage_type(st3d_dtype dtype) {
    for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++)
        if (ALLOWED[i].which == PKG_STORAGE_TYPE && ALLOWED[i].dtype == (int)dtype)
            return ALLOWED[i].name;
    return NULL;
}

static pk_obj *resolve_global(pk_run *r, const char *module, size_t mlen, const char *name,
                              size_t nlen) {
    char full[160];
    snprintf(full, sizeof full, "%.*s.%.*s", mlen > 70 ? 70 : (int)mlen, module,
             nlen > 70 ? 70 : (int)nlen, name);
    for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++) {
        if (strlen(ALLOWED[i].module) != mlen || memcmp(ALLOWED[i].module, module, mlen) != 0 ||
            strlen(ALLOWED[i].name) != nlen || memcmp(ALLOWED[i].name, name, nlen) != 0)
            continue;
        pk_obj *g = new_obj(r, PK_GLOBAL);
        if (!g) return NULL;
        g->u.global.which = ALLOWED[i].which;
        g->u.global.dtype = ALLOWED[i].dtype >= 0 ? (st3d_dtype)ALLOWED[i].dtype : ST3D_F32;
        g->u.global.name = ALLOWED[i].name;
        return g;
    }
    for (size_t i = 0; i < strlen(full); i++) /* keep the message printable */
        if ((unsigned char)full[i] < 0x20 || (unsigned char)full[i] == 0x7f) full[i] = '?';
    /* a whole pickled model rather than its state dict deserves a hint */
    int model = strncmp(full, "torch.nn.", 9) == 0 || strncmp(full, "torchvision.", 12) == 0 ||
                strncmp(full, "__main__.", 9) == 0 || strncmp(full, "models.", 7) == 0;
    st3d_fail(r->err, ST3D_ERR_FORMAT, "%s: pickle refers to global '%s', which is not allowed%s",
              r->c->name, full,
              model ? " (a whole pickled model? save model.state_dict() instead)" : "");
    return NULL;
}

/* GLOBAL: "module\nname\n" inline. */
static int op_global(pk_run *r) {
    const char *parts[2];
    size_t lens[2];
    for (int k = 0; k < 2; k++) {
        const unsigned char *start = r->buf + r->pos;
        const unsigned char *nl = memchr(start, '\n', r->len - r->pos);
        if (!nl) {
            r->truncated = 1;
            return fail_at(r, "unterminated GLOBAL");
        }
        parts[k] = (const char *)start;
        lens[k] = (size_t)(nl - start);
        r->pos += lens[k] + 1;
    }
    return push(r, resolve_global(r, parts[0], lens[0], parts[1], lens[1]));
}

static int op_stack_global(pk_run *r) {
    pk_obj *name = pop(r);
    pk_obj *module = name ? pop(r) : NULL;
    if (!module) return -1;
    if (name->type != PK_STR || module->type != PK_STR)
        return fail_at(r, "STACK_GLOBAL needs two strings");
    return push(r, resolve_global(r, module->u.str.s, module->u.str.len, name->u.str.s,
                                  name->u.str.len));
}

/* A tuple of non-negative ints into out (at most ST3D_MAX_DIMS). */
static int int_tuple(pk_run *r, const pk_obj *t, int64_t *out, int *n, const char *what) {
    char m[96];
    if (!t || t->type != PK_TUPLE) {
        snprintf(m, sizeof m, "tensor %s is not a tuple", what);
        return fail_at(r, m);
    }
    if (t->u.seq.n > ST3D_MAX_DIMS) {
        snprintf(m, sizeof m, "tensor rank %zu exceeds %d", t->u.seq.n, ST3D_MAX_DIMS);
        return fail_at(r, m);
    }
    for (size_t i = 0; i < t->u.seq.n; i++) {
        const pk_obj *x = t->u.seq.items[i];
        if (x->type != PK_INT || x->u.i < 0) {
            snprintf(m, sizeof m, "tensor %s holds a value that is not a non-negative int", what);
            return fail_at(r, m);
        }
        out[i] = x->u.i;
    }
    *n = (int)t->u.seq.n;
    return 0;
}

static pk_obj *rebuild_tensor(pk_run *r, const pk_obj *args, size_t min_args, size_t max_args) {
    size_t n = args->u.seq.n;
    if (n < min_args || n > max_args) {
        fail_at(r, "tensor rebuild called with the wrong number of arguments");
        return NULL;
    }
    pk_obj **a = args->u.seq.items;
    if (a[0]->type != PK_STORAGE) {
        fail_at(r, "tensor rebuild without a storage");
        return NULL;
    }
    if (a[1]->type != PK_INT || a[1]->u.i < 0) {
        fail_at(r, "tensor storage offset is not a non-negative int");
        return NULL;
    }
    pk_obj *t = new_obj(r, PK_TENSOR);
    pk_tensor *d = t ? arena_alloc(r, sizeof *d) : NULL;
    if (!d) return NULL;
    memset(d, 0, sizeof *d);
    t->u.tensor = d;
    int nd = 0, ns = 0;
    if (int_tuple(r, a[2], d->shape, &nd, "size") != 0 ||
        int_tuple(r, a[3], d->stride, &ns, "stride") != 0)
        return NULL;
    if (nd != ns) {
        fail_at(r, "tensor size and stride differ in length");
        return NULL;
    }
    d->storage = a[0];
    d->offset = a[1]->u.i;
    d->ndim = nd;
    return t;
}

/* REDUCE / NEWOBJ: "calls" an allowed global with a tuple of arguments. */
static int op_call(pk_run *r, int newobj) {
    pk_obj *args = pop(r);
    pk_obj *fn = args ? pop(r) : NULL;
    if (!fn) return -1;
    if (fn->type != PK_GLOBAL) return fail_at(r, "call of something that is not a global");
    if (args->type != PK_TUPLE) return fail_at(r, "call arguments are not a tuple");
    size_t n = args->u.seq.n;
    switch (fn->u.global.which) {
    case PKG_ORDERED_DICT:
    case PKG_COUNTER: {
        pk_obj *d = new_obj(r, PK_DICT);
        if (!d) return -1;
        if (n == 1 && !newobj && args->u.seq.items[0]->type == PK_DICT) { /* Counter(dict) */
            const pk_obj *src = args->u.seq.items[0];
            for (size_t i = 0; i < src->u.dict.n; i++)
                if (dict_set(r, d, src->u.dict.keys[i], src->u.dict.vals[i]) != 0) return -1;
        } else if (n != 0 && !newobj) {
            return fail_at(r, "OrderedDict/Counter called with unexpected arguments");
        }
        return push(r, d);
    }
    case PKG_REBUILD_TENSOR_V2:
        if (newobj) break;
        return push(r, rebuild_tensor(r, args, 6, 7));
    case PKG_REBUILD_TENSOR:
        if (newobj) break;
        return push(r, rebuild_tensor(r, args, 4, 4));
    case PKG_REBUILD_PARAMETER:
    case PKG_REBUILD_PARAMETER_STATE:
        if (newobj) break;
        if (n < 3 || n > 4 || args->u.seq.items[0]->type != PK_TENSOR)
            return fail_at(r, "_rebuild_parameter needs a tensor and 2 or 3 more arguments");
        return push(r, args->u.seq.items[0]);
    case PKG_STORAGE_TYPE: break;
    }
    char m[128];
    snprintf(m, sizeof m, "calling '%s' is not allowed", fn->u.global.name);
    return fail_at(r, m);
}

/* BINPERSID: ('storage', type, key, location, numel[, view_metadata]). */
static int op_persid(pk_run *r) {
    pk_obj *pid = pop(r);
    if (!pid) return -1;
    if (pid->type != PK_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6)
        return fail_at(r, "persistent id is not a storage reference tuple");
    pk_obj **a = pid->u.seq.items;
    if (!is_text(a[0]) || strcmp(a[0]->u.str.s, "storage") != 0)
        return fail_at(r, "persistent id of a kind other than 'storage'");
    if (a[1]->type != PK_GLOBAL || a[1]->u.global.which != PKG_STORAGE_TYPE)
        return fail_at(r, "storage reference without a storage type");
    if (!is_text(a[2]) || !is_text(a[3]))
        return fail_at(r, "storage key or location is not a string");
    if (a[4]->type != PK_INT || a[4]->u.i < 0)
        return fail_at(r, "storage size is not a non-negative int");
    pk_obj *s = new_obj(r, PK_STORAGE);
    if (!s) return -1;
    s->u.storage.dtype = a[1]->u.global.dtype;
    s->u.storage.key = a[2]->u.str.s;
    s->u.storage.numel = a[4]->u.i;
    s->u.storage.view_numel = -1;
    if (pid->u.seq.n == 6 && a[5]->type != PK_NONE) {
        const pk_obj *v = a[5];
        if (v->type != PK_TUPLE || v->u.seq.n != 3 || !is_text(v->u.seq.items[0]) ||
            v->u.seq.items[1]->type != PK_INT || v->u.seq.items[2]->type != PK_INT ||
            v->u.seq.items[1]->u.i < 0 || v->u.seq.items[2]->u.i < 0)
            return fail_at(r, "malformed storage view metadata");
        s->u.storage.view_offset = v->u.seq.items[1]->u.i;
        s->u.storage.view_numel = v->u.seq.items[2]->u.i;
    }
    pk_ctx *c = r->c;
    if (c->n_storages == c->cap_storages) {
        size_t cap = c->cap_storages ? 2 * c->cap_storages : 64;
        pk_obj **a2 = realloc(c->storages, cap * sizeof *a2);
        if (!a2) return st3d_fail(r->err, ST3D_ERR_NOMEM, "%s: out of memory", c->name);
        c->storages = a2;
        c->cap_storages = cap;
    }
    c->storages[c->n_storages++] = s;
    return push(r, s);
}

/* ------------------------------------------------------------------ memo */

static int memo_put(pk_run *r, uint64_t idx) {
    pk_obj *o = top(r);
    if (!o) return -1;
    if (idx > r->n_ops || idx >= PK_MAX_MEMO)
        return fail_at(r, "memo index out of the range a pickler could produce");
    if (idx >= r->memo_cap) {
        size_t cap = r->memo_cap ? r->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        pk_obj **m = realloc(r->memo, cap * sizeof *m);
        if (!m) return st3d_fail(r->err, ST3D_ERR_NOMEM, "%s: out of memory", r->c->name);
        memset(m + r->memo_cap, 0, (cap - r->memo_cap) * sizeof *m);
        r->memo = m;
        r->memo_cap = cap;
    }
    if (!r->memo[idx]) r->memo_len++;
    r->memo[idx] = o;
    return 0;
}

static int memo_get(pk_run *r, uint64_t idx) {
    if (idx >= r->memo_cap || !r->memo[idx]) return fail_at(r, "reference to an unset memo entry");
    return push(r, r->memo[idx]);
}

/* ------------------------------------------------------------- the machine */

/* Runs one opcode; returns 1 after STOP, 0 to go on, -1 on error. */
static int step(pk_run *r, pk_obj **out) {
    const unsigned char *p;
    pk_obj *o, *k, *v;
    size_t base = 0;
    r->op_pos = r->pos;
    if (!(p = take(r, 1))) return -1;
    unsigned char op = *p;
    r->n_ops++;
    switch (op) {
    case 0x80: /* PROTO */
        if (!(p = take(r, 1))) return -1;
        if (*p > 5) return fail_at(r, "unsupported pickle protocol");
        return 0;
    case 0x95: /* FRAME: a length hint */
        return take(r, 8) ? 0 : -1;
    case '.': /* STOP */
        if (r->n_marks || r->sp != 1) return fail_at(r, "STOP with a malformed stack");
        *out = r->stack[0];
        return 1;
    case 'N': return push(r, new_obj(r, PK_NONE));
    case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
        if ((o = new_obj(r, PK_BOOL))) o->u.i = op == 0x88;
        return push(r, o);
    case 'J': /* BININT */
        if (!(p = take(r, 4))) return -1;
        return push(r, new_int(r, (int32_t)st3d_le32(p)));
    case 'K': /* BININT1 */
        if (!(p = take(r, 1))) return -1;
        return push(r, new_int(r, *p));
    case 'M': /* BININT2 */
        if (!(p = take(r, 2))) return -1;
        return push(r, new_int(r, st3d_le16(p)));
    case 0x8a: case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
        size_t n;
        if (op == 0x8a) {
            if (!(p = take(r, 1))) return -1;
            n = *p;
        } else {
            if (!(p = take(r, 4))) return -1;
            if ((int32_t)st3d_le32(p) < 0) return fail_at(r, "negative LONG4 length");
            n = st3d_le32(p);
        }
        if (!(p = take(r, n))) return -1;
        if (n > 8) return push(r, new_str(r, PK_BIGINT, p, n));
        uint64_t u = 0;
        for (size_t i = 0; i < n; i++) u |= (uint64_t)p[i] << (8 * i);
        if (n && n < 8 && (p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        int64_t val;
        memcpy(&val, &u, 8);
        return push(r, new_int(r, val));
    }
    case 'G': { /* BINFLOAT, big endian */
        if (!(p = take(r, 8))) return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | p[i];
        if ((o = new_obj(r, PK_FLOAT))) memcpy(&o->u.f, &u, 8);
        return push(r, o);
    }
    case 'X': case 0x8c: case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
    case 'T': case 'U':             /* BINSTRING, SHORT_BINSTRING (Python 2 str) */
    case 'B': case 'C': case 0x8e: { /* BINBYTES, SHORT_BINBYTES, BINBYTES8 */
        size_t w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        if (!(p = take(r, w))) return -1;
        uint64_t n = w == 1 ? *p : w == 4 ? st3d_le32(p) : st3d_le64(p);
        if (op == 'T' && (int32_t)n < 0) return fail_at(r, "negative BINSTRING length");
        if (n > r->len - r->pos) {
            r->truncated = 1;
            return st3d_fail(r->err, ST3D_ERR_FORMAT, "%s: pickle truncated at byte %" PRIu64,
                             r->c->name, r->c->base + r->len);
        }
        p = take(r, (size_t)n);
        int bytes = op == 'B' || op == 'C' || op == 0x8e;
        return push(r, new_str(r, bytes ? PK_BYTES : PK_STR, p, (size_t)n));
    }
    case '}': return push(r, new_obj(r, PK_DICT));
    case ']': return push(r, new_obj(r, PK_LIST));
    case ')': return push(r, new_obj(r, PK_TUPLE));
    case '(': /* MARK */
        if (r->n_marks == PK_MAX_MARKS) return fail_at(r, "too many nested MARKs");
        if (r->n_marks == r->marks_cap) {
            size_t cap = r->marks_cap ? 2 * r->marks_cap : 16;
            size_t *m = realloc(r->marks, cap * sizeof *m);
            if (!m) return st3d_fail(r->err, ST3D_ERR_NOMEM, "%s: out of memory", r->c->name);
            r->marks = m;
            r->marks_cap = cap;
        }
        r->marks[r->n_marks++] = r->sp;
        return 0;
    case 't': /* TUPLE */
        if (pop_mark(r, &base) != 0) return -1;
        return push(r, tuple_from(r, base));
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = (size_t)(op - 0x84);
        if (r->sp < floor_of(r) + n) return fail_at(r, "stack underflow");
        return push(r, tuple_from(r, r->sp - n));
    }
    case 'l': /* LIST */
        if (pop_mark(r, &base) != 0) return -1;
        if (!(o = new_obj(r, PK_LIST))) return -1;
        for (size_t i = base; i < r->sp; i++)
            if (seq_append(r, o, r->stack[i]) != 0) return -1;
        r->sp = base;
        return push(r, o);
    case 'a': /* APPEND */
        if (!(v = pop(r)) || !(o = top(r))) return -1;
        if (o->type != PK_LIST) return fail_at(r, "APPEND to something that is not a list");
        return seq_append(r, o, v);
    case 'e': /* APPENDS */
        if (pop_mark(r, &base) != 0) return -1;
        if (base <= floor_of(r) || r->stack[base - 1]->type != PK_LIST)
            return fail_at(r, "APPENDS to something that is not a list");
        for (size_t i = base; i < r->sp; i++)
            if (seq_append(r, r->stack[base - 1], r->stack[i]) != 0) return -1;
        r->sp = base;
        return 0;
    case 'd': /* DICT */
    case 'u': /* SETITEMS */
        if (pop_mark(r, &base) != 0) return -1;
        if ((r->sp - base) % 2) return fail_at(r, "odd number of dict items");
        if (op == 'd') {
            if (!(o = new_obj(r, PK_DICT))) return -1;
        } else {
            if (base <= floor_of(r) || r->stack[base - 1]->type != PK_DICT)
                return fail_at(r, "SETITEMS on something that is not a dict");
            o = r->stack[base - 1];
        }
        for (size_t i = base; i < r->sp; i += 2)
            if (dict_set(r, o, r->stack[i], r->stack[i + 1]) != 0) return -1;
        r->sp = base;
        return op == 'd' ? push(r, o) : 0;
    case 's': /* SETITEM */
        if (!(v = pop(r)) || !(k = pop(r)) || !(o = top(r))) return -1;
        if (o->type != PK_DICT) return fail_at(r, "SETITEM on something that is not a dict");
        return dict_set(r, o, k, v);
    case 'q': /* BINPUT */
        if (!(p = take(r, 1))) return -1;
        return memo_put(r, *p);
    case 'r': /* LONG_BINPUT */
        if (!(p = take(r, 4))) return -1;
        return memo_put(r, st3d_le32(p));
    case 0x94: /* MEMOIZE */
        return memo_put(r, r->memo_len);
    case 'h': /* BINGET */
        if (!(p = take(r, 1))) return -1;
        return memo_get(r, *p);
    case 'j': /* LONG_BINGET */
        if (!(p = take(r, 4))) return -1;
        return memo_get(r, st3d_le32(p));
    case 'c': return op_global(r);
    case 0x93: return op_stack_global(r);
    case 'R': return op_call(r, 0);
    case 0x81: return op_call(r, 1); /* NEWOBJ */
    case 'b': /* BUILD: set state; allowed on dicts (OrderedDict attributes) and tensors */
        if (!(v = pop(r)) || !(o = top(r))) return -1;
        if (o->type != PK_DICT && o->type != PK_TENSOR)
            return fail_at(r, "BUILD on an object that is not a dict or tensor");
        return 0;
    case 'Q': return op_persid(r);
    case 'P': return fail_at(r, "text persistent ids (PERSID) are not supported");
    case '0': /* POP */
        return pop(r) ? 0 : -1;
    case '1': /* POP_MARK */
        if (pop_mark(r, &base) != 0) return -1;
        r->sp = base;
        return 0;
    case '2': /* DUP */
        if (!(o = top(r))) return -1;
        return push(r, o);
    default: {
        char m[64];
        snprintf(m, sizeof m, "opcode 0x%02x ('%c') is not allowed", op,
                 op >= 0x20 && op < 0x7f ? op : '?');
        return fail_at(r, m);
    }
    }
}

int pk_load(pk_ctx *c, const unsigned char *buf, size_t len, size_t *used, pk_obj **out,
            st3d_error *err) {
    pk_run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.buf = buf;
    r.len = len;
    r.err = err;
    *out = NULL;
    int rc;
    while ((rc = step(&r, out)) == 0) {
    }
    free(r.stack);
    free(r.marks);
    free(r.memo);
    if (rc < 0) {
        *out = NULL;
        return r.truncated ? -2 : -1;
    }
    *used = r.pos;
    return 0;
}

/* ------------------------------------------------------------------ access */

void pk_set_base(pk_ctx *c, uint64_t base) { c->base = base; }

size_t pk_storage_count(const pk_ctx *c) { return c->n_storages; }

const pk_obj *pk_storage_at(const pk_ctx *c, size_t i) {
    return i < c->n_storages ? c->storages[i] : NULL;
}

const pk_obj *pk_dict_get(const pk_obj *d, const char *key) {
    if (!d || d->type != PK_DICT) return NULL;
    for (size_t i = d->u.dict.n; i-- > 0;) {
        const pk_obj *k = d->u.dict.keys[i];
        if (k->type == PK_STR && strcmp(k->u.str.s, key) == 0 && strlen(key) == k->u.str.len)
            return d->u.dict.vals[i];
    }
    return NULL;
}

const char *pk_type_name(const pk_obj *o) {
    switch (o->type) {
    case PK_NONE: return "None";
    case PK_BOOL: return "bool";
    case PK_INT: case PK_BIGINT: return "int";
    case PK_FLOAT: return "float";
    case PK_STR: return "str";
    case PK_BYTES: return "bytes";
    case PK_TUPLE: return "tuple";
    case PK_LIST: return "list";
    case PK_DICT: return "dict";
    case PK_GLOBAL: return "global";
    case PK_STORAGE: return "storage";
    case PK_TENSOR: return "tensor";
    }
    return "object";
}

/*
 * engine.c - the machinery under every operator: programs of steps, the
 * resources a built plan owns, memory descriptors, and the generic steps
 * (reorder, zero fill, add) that several operators share.
 */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ resources */


void resources_free(resources *r) {
    if (!r) return;
    for (int i = 0; i < r->n_prims; i++) dnnl_primitive_destroy(r->prims[i]);
    for (int i = 0; i < r->n_mems; i++) dnnl_memory_destroy(r->mems[i]);
    for (int i = 0; i < r->n_buffers; i++) st3d_aligned_free(r->buffers[i]);
    for (int i = 0; i < r->n_blobs; i++) free(r->blobs[i]);
    st3d_aligned_free(r->scratch);
    st3d_aligned_free(r->transient);
    free(r->transient_users);
    free(r->prims);
    free(r->mems);
    free(r->buffers);
    free(r->blobs);
    free(r->scratch_users);
    memset(r, 0, sizeof *r);
}

static int track_buffer(resources *r, void *p, st3d_error *err) {
    ST3D_GROW(r->buffers, r->n_buffers, r->cap_buffers, err);
    r->buffers[r->n_buffers++] = p;
    return 0;
}

void *bld_alloc(builder *b, size_t bytes) {
    void *p = st3d_aligned_alloc(bytes, b->err);
    if (!p) return NULL;
    st3d_zero_lazily(p, bytes);
    if (track_buffer(b->res, p, b->err) != 0) {
        st3d_aligned_free(p);
        return NULL;
    }
    return p;
}

void *bld_alloc_scratch(builder *b, size_t bytes) {
    void *p = st3d_aligned_alloc(bytes, b->err);
    if (p && track_buffer(b->res, p, b->err) != 0) {
        st3d_aligned_free(p);
        return NULL;
    }
    return p;
}

static int track_blob(resources *r, void *p, st3d_error *err) {
    ST3D_GROW(r->blobs, r->n_blobs, r->cap_blobs, err);
    r->blobs[r->n_blobs++] = p;
    return 0;
}

void *bld_blob(builder *b, size_t bytes) {
    void *p = st3d_calloc(1, bytes, b->err);
    if (p && track_blob(b->res, p, b->err) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

int bld_check(builder *b, dnnl_status_t st, const char *what) {
    if (st == dnnl_success) return 0;
    return st3d_fail(b->err, ST3D_ERR_BACKEND, "oneDNN refused %s (status %d)", what, (int)st);
}

static int track_mem(resources *r, dnnl_memory_t m, st3d_error *err) {
    ST3D_GROW(r->mems, r->n_mems, r->cap_mems, err);
    r->mems[r->n_mems++] = m;
    return 0;
}

dnnl_memory_t bld_mem(builder *b, const dnnl_memory_desc_t *md, void *data) {
    dnnl_memory_t m = NULL;
    if (bld_check(b, dnnl_memory_create(&m, md, b->eng, data), "memory creation") != 0)
        return NULL;
    if (track_mem(b->res, m, b->err) != 0) {
        dnnl_memory_destroy(m);
        return NULL;
    }
    return m;
}

int bld_view(builder *b, const dnnl_memory_desc_t *md, float *data, tensor *out) {
    out->md = *md;
    out->data = data;
    out->mem = bld_mem(b, md, data);
    return out->mem ? 0 : -1;
}

int bld_tensor(builder *b, const dnnl_memory_desc_t *md, tensor *out) {
    float *data = bld_alloc(b, md_bytes(md));
    if (!data) return -1;
    return bld_view(b, md, data, out);
}

dnnl_primitive_attr_t bld_attr(builder *b) {
    dnnl_primitive_attr_t attr = NULL;
    if (bld_check(b, dnnl_primitive_attr_create(&attr), "attribute creation") != 0) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    return attr;
}

int bld_primitive(builder *b, dnnl_primitive_desc_t pd, step *s) {
    resources *r = b->res;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    dnnl_primitive_t prim = NULL;
    dnnl_status_t st = dnnl_primitive_create(&prim, pd);
    if (st == dnnl_success && sbytes > 0) {
        dnnl_memory_t m = NULL;
        /* bound to the shared scratchpad by resources_finish */
        st = dnnl_memory_create(&m, smd, b->eng, DNNL_MEMORY_NONE);
        if (st == dnnl_success) {
            if (track_mem(r, m, b->err) != 0) {
                dnnl_memory_destroy(m);
                dnnl_primitive_destroy(prim);
                dnnl_primitive_desc_destroy(pd);
                return -1;
            }
            ST3D_GROW(r->scratch_users, r->n_scratch_users, r->cap_scratch_users, b->err);
            r->scratch_users[r->n_scratch_users++] = m;
            if (sbytes > r->scratch_bytes) r->scratch_bytes = sbytes;
            s->args[s->nargs].arg = DNNL_ARG_SCRATCHPAD;
            s->args[s->nargs].memory = m;
            s->nargs++;
        }
    }
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        if (prim) dnnl_primitive_destroy(prim);
        return bld_check(b, st, s->what ? s->what : "primitive creation");
    }
    ST3D_GROW(r->prims, r->n_prims, r->cap_prims, b->err);
    r->prims[r->n_prims++] = prim;
    s->prim = prim;
    return 0;
}

int bld_transient(builder *b, const dnnl_memory_desc_t *md, size_t offset, tensor *out) {
    resources *r = b->res;
    out->md = *md;
    out->data = NULL;
    out->mem = bld_mem(b, md, DNNL_MEMORY_NONE); /* bound by resources_finish */
    if (!out->mem) return -1;
    ST3D_GROW(r->transient_users, r->n_transient_users, r->cap_transient_users, b->err);
    r->transient_users[r->n_transient_users++] = (struct transient_use){out->mem, offset};
    size_t end = offset + md_bytes(md);
    if (end > r->transient_bytes) r->transient_bytes = end;
    return 0;
}

int pd_is_reference(dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return impl && strstr(impl, "ref") != NULL;
}

static int bind_transient(builder *b) {
    resources *r = b->res;
    if (r->transient_bytes == 0) return 0;
    st3d_aligned_free(r->transient);
    r->transient = st3d_aligned_alloc(r->transient_bytes, b->err);
    if (!r->transient) return -1;
    for (int i = 0; i < r->n_transient_users; i++) {
        char *at = (char *)r->transient + r->transient_users[i].offset;
        if (bld_check(b, dnnl_memory_set_data_handle(r->transient_users[i].mem, at),
                      "transient binding") != 0)
            return -1;
    }
    return 0;
}

int resources_finish(builder *b) {
    resources *r = b->res;
    if (bind_transient(b) != 0) return -1;
    if (r->scratch_bytes == 0) return 0;
    st3d_aligned_free(r->scratch);
    r->scratch = st3d_aligned_alloc(r->scratch_bytes, b->err);
    if (!r->scratch) return -1;
    for (int i = 0; i < r->n_scratch_users; i++)
        if (bld_check(b, dnnl_memory_set_data_handle(r->scratch_users[i], r->scratch),
                      "scratchpad binding") != 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------ descriptors */

/* oneDNN's prototype takes a full dnnl_dims_t (DNNL_MAX_NDIMS entries);
 * callers hand ndims of them, so they are copied into one first. */
static void dims_full(int ndims, const int64_t *dims, dnnl_dims_t full) {
    memset(full, 0, sizeof(dnnl_dims_t));
    memcpy(full, dims, (size_t)ndims * sizeof *dims);
}

void md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims) {
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc,
                                             dnnl_abcd, dnnl_abcde, dnnl_abcdef};
    dnnl_dims_t full;
    dims_full(ndims, dims, full);
    dnnl_memory_desc_init_by_tag(md, ndims, full, dnnl_f32, tags[ndims]);
}

void md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims) {
    dnnl_dims_t full;
    dims_full(ndims, dims, full);
    dnnl_memory_desc_init_by_tag(md, ndims, full, dnnl_f32, dnnl_format_tag_any);
}

int md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
    return dnnl_memory_desc_equal(a, b);
}

size_t md_bytes(const dnnl_memory_desc_t *md) { return dnnl_memory_desc_get_size(md); }

int64_t md_elems(const dnnl_memory_desc_t *md) {
    int64_t n = 1;
    for (int i = 0; i < md->ndims; i++) n *= md->dims[i];
    return n;
}

/* ------------------------------------------------------------ programs */

int prog_push(program *p, const step *s, st3d_error *err) {
    ST3D_GROW(p->steps, p->n, p->cap, err);
    p->steps[p->n++] = *s;
    return 0;
}

void prog_free(program *p) {
    free(p->steps);
    memset(p, 0, sizeof *p);
}

int prog_run(const program *p, dnnl_stream_t stream, st3d_error *err) {
    for (int i = 0; i < p->n; i++) {
        const step *s = &p->steps[i];
        if (s->prim) {
            dnnl_status_t st = dnnl_primitive_execute(s->prim, stream, s->nargs, s->args);
            if (st != dnnl_success)
                return st3d_fail(err, ST3D_ERR_BACKEND, "oneDNN failed to run %s (status %d)",
                                 s->what ? s->what : "a step", (int)st);
        } else if (s->fn) {
            s->fn(s);
        }
    }
    if (dnnl_stream_wait(stream) != dnnl_success)
        return st3d_fail(err, ST3D_ERR_BACKEND, "oneDNN stream failed");
    return 0;
}

/* ------------------------------------------------------------ generic steps */

int op_reorder(builder *b, program *p, const tensor *src, const tensor *dst) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st =
        dnnl_reorder_primitive_desc_create(&pd, &src->md, b->eng, &dst->md, b->eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "a reorder") != 0) return -1;
    step s = {.what = "reorder"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_FROM, src->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_TO, dst->mem};
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(p, &s, b->err);
}

int op_to_layout(builder *b, program *p, const tensor *src, const dnnl_memory_desc_t *want,
                 tensor *out) {
    if (md_equal(&src->md, want)) {
        *out = *src;
        return 0;
    }
    if (bld_tensor(b, want, out) != 0) return -1;
    return op_reorder(b, p, src, out);
}

typedef struct drop_pages_ctx {
    const void *p; /* the buffer ... */
    size_t bytes;  /* ... and its size */
} drop_pages_ctx;

static void drop_pages_fn(const step *s) {
    const drop_pages_ctx *c = s->ctx;
    st3d_drop_pages(c->p, c->bytes);
}

int op_drop_pages(builder *b, program *prog, const void *p, size_t bytes, const char *what) {
    drop_pages_ctx *c = bld_blob(b, sizeof *c);
    if (!c) return -1;
    *c = (drop_pages_ctx){.p = p, .bytes = bytes};
    step s = {.fn = drop_pages_fn, .ctx = c, .what = what};
    return prog_push(prog, &s, b->err);
}

static void zero_fn(const step *s) {
    const tensor *t = s->ctx;
    memset(tensor_ptr(t), 0, md_bytes(&t->md));
}

int op_zero(builder *b, program *p, const tensor *t) {
    tensor *copy = bld_blob(b, sizeof *copy);
    if (!copy) return -1;
    *copy = *t;
    step s = {.fn = zero_fn, .ctx = copy, .what = "zero"};
    return prog_push(p, &s, b->err);
}

int op_add(builder *b, program *p, const tensor *a, const tensor *bb, const tensor *dst) {
    float scales[2] = {1.0f, 1.0f};
    dnnl_memory_desc_t srcs[2] = {a->md, bb->md};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    dnnl_status_t st = dnnl_sum_primitive_desc_create(&pd, &dst->md, 2, scales, srcs, attr, b->eng);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "an addition") != 0) return -1;
    step s = {.what = "add"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MULTIPLE_SRC + 0, a->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MULTIPLE_SRC + 1, bb->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst->mem};
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(p, &s, b->err);
}

int bld_act(builder *b, const dnnl_memory_desc_t *md, tensor *out) {
    return b->new_act ? b->new_act(b, md, out) : bld_tensor(b, md, out);
}

float *tensor_ptr(const tensor *t) {
    void *p = NULL;
    dnnl_memory_get_data_handle(t->mem, &p);
    return p;
}

/* oneDNN 2.6's binary kernel (jit:uni) applies a ReLU post-op wrongly to
 * channel-blocked tensors whose channels do not fill the last block on
 * AVX-512 machines (5 channels in nCdhw8c: values of the second clip come
 * out 0; tests/ops add_relu); there the ReLU is a step of its own. */
int op_add_relu(builder *b, program *p, const tensor *a, const tensor *bb, const tensor *dst) {
    int fuse = a->md.padded_dims[1] == a->md.dims[1];
    dnnl_binary_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    if (fuse) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_status_t st = dnnl_binary_desc_init(&desc, dnnl_binary_add, &a->md, &bb->md, &dst->md);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, b->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "an addition with ReLU") != 0) return -1;
    step s = {.what = fuse ? "add + relu" : "add"};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC_0, a->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC_1, bb->mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst->mem};
    if (bld_primitive(b, pd, &s) != 0 || prog_push(p, &s, b->err) != 0) return -1;
    relu_op unused;
    return fuse ? 0 : relu_build_forward(b, p, dst, 1, &unused);
}

/* ------------------------------------------------------------ flatten */

int op_flatten(builder *b, program *p, const tensor *src, tensor *flat) {
    int64_t n = src->md.dims[0], per = md_elems(&src->md) / n;
    int64_t dims2[2] = {n, per};
    dnnl_memory_desc_t plain, plain2;
    md_plain(&plain, src->md.ndims, src->md.dims);
    md_plain(&plain2, 2, dims2);
    tensor t;
    if (bld_tensor(b, &plain, &t) != 0 || op_reorder(b, p, src, &t) != 0) return -1;
    return bld_view(b, &plain2, t.data, flat);
}

int op_unflatten(builder *b, program *p, const tensor *diff_flat, const tensor *diff_src) {
    dnnl_memory_desc_t plain;
    md_plain(&plain, diff_src->md.ndims, diff_src->md.dims);
    tensor v;
    if (bld_view(b, &plain, diff_flat->data, &v) != 0) return -1;
    return op_reorder(b, p, &v, diff_src);
}

/*
 * concat.c - channel concatenation, torch.cat(tensors, dim=1), on oneDNN.
 *
 *   srcs[i]  N x C_i x D x H x W   (any layouts)
 *   dst      N x sum(C_i) x D x H x W
 *
 * The backward hands each input the slice of the output gradient at its
 * channel offset: a reorder from a sub-memory view of diff_dst.
 */
#include "ops.h"

#include <string.h>

#define CONCAT_MAX 8

int concat_build_forward(builder *b, program *fwd, const tensor *srcs, int n, tensor *dst) {
    if (n < 1 || n > CONCAT_MAX)
        return st3d_fail(b->err, ST3D_ERR_INVALID, "concat of %d tensors", n);
    dnnl_memory_desc_t mds[CONCAT_MAX];
    for (int i = 0; i < n; i++) mds[i] = srcs[i].md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = bld_attr(b);
    if (!attr) return -1;
    /* dst NULL: oneDNN picks the layout (that of the inputs when they agree) */
    dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, NULL, n, 1, mds, attr, b->eng);
    dnnl_primitive_attr_destroy(attr);
    if (bld_check(b, st, "concat descriptor") != 0) return -1;
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if (bld_act(b, dmd, dst) != 0) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    step s = {.what = "concat"};
    for (int i = 0; i < n; i++)
        s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_MULTIPLE_SRC + i, srcs[i].mem};
    s.args[s.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst->mem};
    if (bld_primitive(b, pd, &s) != 0) return -1;
    return prog_push(fwd, &s, b->err);
}

int concat_build_backward(builder *b, program *bwd, const tensor *srcs, int n,
                          const tensor *diff_dst, const tensor *diff_srcs) {
    int64_t offset = 0;
    for (int i = 0; i < n; i++) {
        int64_t c = srcs[i].md.dims[1];
        if (diff_srcs[i].mem) {
            dnnl_dims_t dims = {0}, offs = {0};
            for (int d = 0; d < diff_dst->md.ndims; d++) dims[d] = diff_dst->md.dims[d];
            dims[1] = c;
            offs[1] = offset;
            dnnl_memory_desc_t sub;
            if (bld_check(b, dnnl_memory_desc_init_submemory(&sub, &diff_dst->md, dims, offs),
                          "concat gradient slice") != 0)
                return -1;
            tensor view;
            if (bld_view(b, &sub, diff_dst->data, &view) != 0) return -1;
            if (op_reorder(b, bwd, &view, &diff_srcs[i]) != 0) return -1;
        }
        offset += c;
    }
    return 0;
}

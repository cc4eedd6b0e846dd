/*
 * index.c — embedding lookup, where and masked_fill.
 *
 * where and masked_fill share one select kernel that reads every operand
 * through broadcast strides, so no operand is expanded in memory; their
 * backwards are the same select with a zero in place of the other branch.
 */
#include "backend.h"

#include <string.h>

static const int64_t zero_strides[GROVE_MAX_DIMS] = {0};

/* A one-element f32 tensor holding v on the op's device, held by the op:
 * the constant operand of the select kernel, read with zero strides. */
static grove_tensor *scalar_operand(gv_op *o, float v)
{
    grove_tensor *s = gv_op_temp(o, 0, NULL, GROVE_F32);
    GV_OP_CALL(o, fill, 0, NULL, s->data, NULL, GROVE_F32, (double)v);
    return s;
}

/* ---- embedding ------------------------------------------------------------ */

static grove_status embedding_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *idx = n->saved[0];
    int64_t v = n->in_shape[0][0], d = n->in_shape[0][1];
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    if (!gc) return -1;
    grove_tensor *dw = gv_empty(2, n->in_shape[0], GROVE_F32, g->device);
    if (dw && GV_KCALL(n->name, k, embedding_backward, grove_tensor_numel(idx), d, v, gc->data, idx->data,
                       idx->dtype == GROVE_I64, dw->data)) {
        grove_tensor_release(dw);
        dw = NULL;
    }
    grove_tensor_release(gc);
    gi[0] = dw;
    return dw ? 0 : -1;
}

grove_tensor *grove_embedding(grove_tensor *weight, grove_tensor *indices)
{
    if (!gv_check_f32("embedding", weight) || !gv_check_live("embedding", indices)) return NULL;
    if (!gv_check_same_device("embedding", weight, indices)) return NULL;
    if (weight->ndim != 2)
        return gv_fail_null("embedding: weight %s must be 2-d (num_embeddings, dim)", gv_shape_str(weight));
    if (indices->dtype != GROVE_I64 && indices->dtype != GROVE_I32)
        return gv_fail_null("embedding: indices must be i64 or i32, got %s %s", grove_dtype_name(indices->dtype),
                            gv_shape_str(indices));
    if (indices->ndim >= GROVE_MAX_DIMS)
        return gv_fail_null("embedding: indices %s have %d dimensions; the output would exceed %d",
                            gv_shape_str(indices), indices->ndim, GROVE_MAX_DIMS);
    int64_t v = weight->shape[0], d = weight->shape[1];
    gv_op o;
    if (!gv_op_begin(&o, "embedding", embedding_backward, 1, &weight)) return NULL;
    grove_tensor *ic = gv_op_input(&o, indices);
    bool is_i64 = indices->dtype == GROVE_I64;
    int64_t n = grove_tensor_numel(indices);
    /* The range check reads the indices on the host (a copy when on CUDA). */
    grove_tensor *ih = o.ok ? gv_op_hold(&o, gv_host_data("embedding", ic)) : NULL;
    for (int64_t i = 0; o.ok && i < n; i++) {
        int64_t r = is_i64 ? ((const int64_t *)ih->data)[i] : ((const int32_t *)ih->data)[i];
        if (r < 0 || r >= v)
            GV_OP_FAIL(&o, "embedding: index %lld out of range for %lld embeddings (weight %s, indices %s)",
                       (long long)r, (long long)v, gv_shape_str(weight), gv_shape_str(indices));
    }
    int64_t shape[GROVE_MAX_DIMS];
    memcpy(shape, indices->shape, (size_t)indices->ndim * sizeof *shape);
    shape[indices->ndim] = d;
    grove_tensor *wc = gv_op_input(&o, weight);
    grove_tensor *out = gv_op_output(&o, indices->ndim + 1, shape, GROVE_F32);
    GV_OP_CALL(&o, embedding, n, d, wc->data, ic->data, is_i64, out->data);
    gv_op_save(&o, 0, ic);
    return gv_op_end(&o);
}

/* ---- where / masked_fill -------------------------------------------------- */

/* cond ? a : b over g's shape with one branch zero: the gradient reaching
 * the taken (take_a) or the other branch. */
static grove_tensor *select_grad(const char *op, grove_tensor *cond, grove_tensor *g, bool take_a)
{
    int64_t cs[GROVE_MAX_DIMS];
    gv_broadcast_strides(cond, g->ndim, g->shape, cs);
    gv_op o;
    if (!gv_op_begin(&o, op, NULL, 1, &g)) return NULL;
    grove_tensor *zero = scalar_operand(&o, 0.0f);
    grove_tensor *out = gv_op_output(&o, g->ndim, g->shape, GROVE_F32);
    if (take_a)
        GV_OP_CALL(&o, where, g->ndim, g->shape, cond->data, cs, g->data, g->stride, zero->data, zero_strides,
                   out->data);
    else
        GV_OP_CALL(&o, where, g->ndim, g->shape, cond->data, cs, zero->data, zero_strides, g->data, g->stride,
                   out->data);
    return gv_op_end(&o);
}

static grove_status where_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    for (int32_t i = 0; i < 2; i++) {
        if (!n->needs_grad[i]) continue;
        grove_tensor *full = select_grad(n->name, n->saved[0], g, i == 0);
        if (!full) return -1;
        gi[i] = gv_sum_to(full, n->in_ndim[i], n->in_shape[i]);
        grove_tensor_release(full);
        if (!gi[i]) return -1;
    }
    return 0;
}

static bool check_mask(const char *op, const char *what, const grove_tensor *m)
{
    if (!gv_check_live(op, m)) return false;
    if (m->dtype != GROVE_U8) {
        gv_fail("%s: %s must be u8 (nonzero = true), got %s %s", op, what, grove_dtype_name(m->dtype),
                gv_shape_str(m));
        return false;
    }
    return true;
}

grove_tensor *grove_where(grove_tensor *cond, grove_tensor *a, grove_tensor *b)
{
    if (!check_mask("where", "cond", cond) || !gv_check_f32("where", a) || !gv_check_f32("where", b)) return NULL;
    if (!gv_check_same_device("where", cond, a) || !gv_check_same_device("where", cond, b)) return NULL;
    /* The shape all three broadcast to, pairwise. */
    grove_tensor ca = {0};
    if (!gv_broadcast_shape("where", "vs", cond, a, &ca.ndim, ca.shape)) return NULL;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    if (!gv_broadcast_shape("where", "vs", &ca, b, &ndim, shape)) return NULL;
    int64_t cs[GROVE_MAX_DIMS], as[GROVE_MAX_DIMS], bs[GROVE_MAX_DIMS];
    gv_broadcast_strides(cond, ndim, shape, cs);
    gv_broadcast_strides(a, ndim, shape, as);
    gv_broadcast_strides(b, ndim, shape, bs);
    grove_tensor *inputs[2] = {a, b};
    gv_op o;
    if (!gv_op_begin(&o, "where", where_backward, 2, inputs)) return NULL;
    grove_tensor *out = gv_op_output(&o, ndim, shape, GROVE_F32);
    GV_OP_CALL(&o, where, ndim, shape, cond->data, cs, a->data, as, b->data, bs, out->data);
    gv_op_save(&o, 0, cond);
    return gv_op_end(&o);
}

static grove_status masked_fill_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    gi[0] = select_grad(n->name, n->saved[0], g, false);
    return gi[0] ? 0 : -1;
}

grove_tensor *grove_masked_fill(grove_tensor *x, grove_tensor *mask, double value)
{
    if (!gv_check_f32("masked_fill", x) || !check_mask("masked_fill", "mask", mask)) return NULL;
    if (!gv_check_same_device("masked_fill", x, mask)) return NULL;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    if (!gv_broadcast_shape("masked_fill", "vs", mask, x, &ndim, shape)) return NULL;
    if (ndim != x->ndim || memcmp(shape, x->shape, (size_t)ndim * sizeof *shape))
        return gv_fail_null("masked_fill: mask %s does not broadcast to the input's shape %s", gv_shape_str(mask),
                            gv_shape_str(x));
    int64_t ms[GROVE_MAX_DIMS];
    gv_broadcast_strides(mask, x->ndim, x->shape, ms);
    gv_op o;
    if (!gv_op_begin(&o, "masked_fill", masked_fill_backward, 1, &x)) return NULL;
    grove_tensor *v = scalar_operand(&o, (float)value);
    grove_tensor *out = gv_op_output(&o, x->ndim, x->shape, GROVE_F32);
    GV_OP_CALL(&o, where, x->ndim, x->shape, mask->data, ms, v->data, zero_strides, x->data, x->stride, out->data);
    gv_op_save(&o, 0, mask);
    return gv_op_end(&o);
}

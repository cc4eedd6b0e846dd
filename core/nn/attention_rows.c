/*
 * attention_rows.c — the (B, N, D) operand layout the attention ops hand
 * their kernels: rows read in place where the strides allow, so the q, k, v
 * thirds of a fused projection need no copy; and the operand checks they
 * share.
 */
#include "backend.h"

#include <limits.h>

grove_tensor *gv_attn_rows_of(grove_tensor *t, gv_attn_rows *r)
{
    bool in_place = (t->shape[2] <= 1 || t->stride[2] == 1) &&
                    (t->shape[1] <= 1 || (t->stride[1] >= t->shape[2] && t->stride[1] <= INT_MAX)) &&
                    (t->shape[0] <= 1 || t->stride[0] >= 0);
    grove_tensor *c = t;
    if (in_place) grove_tensor_retain(t);
    else c = gv_contiguous_data(t);
    if (!c) return NULL;
    r->data = c->data;
    r->sn = c->shape[1] <= 1 ? c->shape[2] : c->stride[1];
    r->sb = c->shape[0] <= 1 ? 0 : c->stride[0];
    return c;
}

bool gv_attn_check_qkv(const char *op, grove_tensor *q, grove_tensor *k, grove_tensor *v, const char *dims)
{
    if (!gv_check_f32(op, q) || !gv_check_f32(op, k) || !gv_check_f32(op, v)) return false;
    if (!gv_check_same_device(op, q, k) || !gv_check_same_device(op, q, v)) return false;
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3) {
        gv_fail("%s: q %s, k %s and v %s must be 3-d (%s)", op, gv_shape_str(q), gv_shape_str(k), gv_shape_str(v), dims);
        return false;
    }
    for (int32_t i = 0; i < 3; i++) {
        if (k->shape[i] != v->shape[i]) {
            gv_fail("%s: k %s and v %s must have the same shape", op, gv_shape_str(k), gv_shape_str(v));
            return false;
        }
    }
    return true;
}

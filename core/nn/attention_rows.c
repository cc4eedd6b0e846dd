/*
 * attention_rows.c — the (B, N, D) operand layout both attention ops hand
 * their kernels: rows read in place where the strides allow, so the q, k, v
 * thirds of a fused projection need no copy.
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

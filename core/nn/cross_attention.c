/*
 * cross_attention.c — softmax multi-head attention from image tokens q
 * (B, N, D) to text tokens k, v (B, M, D), scale 1/√(D/heads), padding as an
 * additive (1 − mask)·(−10000) on the scores, with a hand-written backward.
 * The probabilities P (B, heads, N, M) are kept for the backward: the text
 * is short (M ≤ 300 in SANA), so they cost less than recomputing them.
 * The mask gets no gradient.
 */
#include "backend.h"

#include <limits.h>

static const char *const OP = "cross_attention";

/* Saved: q, k, v and P; ints[0] = heads. */
static grove_status cross_attention_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int64_t B = n->in_shape[0][0], N = n->in_shape[0][1], D = n->in_shape[0][2], M = n->in_shape[1][1];
    int64_t H = n->ints[0];
    grove_tensor *held[5] = {NULL}, *grads[3] = {NULL}, *scratch = NULL;
    gv_attn_rows rows[4];
    grove_tensor *src[4] = {n->saved[0], n->saved[1], n->saved[2], g};
    const gv_kernels *kt = gv_kernels_for(OP, g);
    if (!kt || !gv_kernel_ready(OP, kt, cross_attention_scratch)) return -1;
    for (int i = 0; i < 4; i++)
        if (!(held[i] = gv_attn_rows_of(src[i], &rows[i]))) goto fail;
    if (!(held[4] = gv_contiguous_data(n->saved[3]))) goto fail;
    for (int i = 0; i < 3; i++)
        if (n->needs_grad[i] && !(grads[i] = gv_empty(3, n->in_shape[i], GROVE_F32, g->device))) goto fail;
    /* The scratch is kernel data: on the gradient's device. */
    int64_t ssize = kt->cross_attention_scratch(B, H, N, M);
    if ((grads[0] || grads[1]) && !(scratch = gv_empty(1, &ssize, GROVE_F32, g->device))) goto fail;
    if (GV_KCALL(OP, kt, cross_attention_backward, B, N, M, H, D / H, rows[0], rows[1], rows[2], held[4]->data,
                 rows[3], scratch ? scratch->data : NULL, grads[0] ? grads[0]->data : NULL,
                 grads[1] ? grads[1]->data : NULL, grads[2] ? grads[2]->data : NULL))
        goto fail;
    grove_tensor_release(scratch);
    for (int i = 0; i < 5; i++) grove_tensor_release(held[i]);
    for (int i = 0; i < 3; i++) gi[i] = grads[i];
    return 0;
fail:
    grove_tensor_release(scratch);
    for (int i = 0; i < 5; i++) grove_tensor_release(held[i]);
    for (int i = 0; i < 3; i++) grove_tensor_release(grads[i]);
    return -1;
}

static bool check_args(grove_tensor *q, grove_tensor *k, grove_tensor *v, grove_tensor *mask, int32_t heads)
{
    if (!gv_attn_check_qkv(OP, q, k, v, "batch, tokens, channels")) return false;
    if (q->shape[0] != k->shape[0]) {
        gv_fail("%s: batch sizes of q %s and k %s differ (%lld vs %lld)", OP, gv_shape_str(q), gv_shape_str(k),
                (long long)q->shape[0], (long long)k->shape[0]);
        return false;
    }
    if (q->shape[2] != k->shape[2]) {
        gv_fail("%s: widths of q %s and k %s differ (%lld vs %lld)", OP, gv_shape_str(q), gv_shape_str(k),
                (long long)q->shape[2], (long long)k->shape[2]);
        return false;
    }
    if (heads < 1) {
        gv_fail("%s: heads must be >= 1 (got %d)", OP, (int)heads);
        return false;
    }
    if (q->shape[2] % heads != 0) {
        gv_fail("%s: width %lld of q %s is not divisible by heads %d", OP, (long long)q->shape[2], gv_shape_str(q),
                (int)heads);
        return false;
    }
    if (k->shape[1] == 0) {
        gv_fail("%s: k %s has no tokens to attend to", OP, gv_shape_str(k));
        return false;
    }
    if (q->shape[1] > INT_MAX || k->shape[1] > INT_MAX || q->shape[2] > INT_MAX) {
        gv_fail("%s: q %s, k %s too large for BLAS", OP, gv_shape_str(q), gv_shape_str(k));
        return false;
    }
    if (!mask) return true;
    if (!gv_check_live(OP, mask) || !gv_check_same_device(OP, q, mask)) return false;
    if (mask->dtype != GROVE_U8 && mask->dtype != GROVE_F32) {
        gv_fail("%s: mask must be u8 or f32, got %s %s", OP, grove_dtype_name(mask->dtype), gv_shape_str(mask));
        return false;
    }
    if (mask->ndim != 2 || mask->shape[0] != k->shape[0] || mask->shape[1] != k->shape[1]) {
        gv_fail("%s: mask %s does not match k %s (expected [%lld,%lld])", OP, gv_shape_str(mask), gv_shape_str(k),
                (long long)k->shape[0], (long long)k->shape[1]);
        return false;
    }
    return true;
}

grove_tensor *grove_cross_attention(grove_tensor *q, grove_tensor *k, grove_tensor *v, grove_tensor *mask,
                                    int32_t heads)
{
    if (!check_args(q, k, v, mask, heads)) return NULL;
    int64_t B = q->shape[0], N = q->shape[1], D = q->shape[2], M = k->shape[1], H = heads;
    int64_t pshape[4] = {B, H, N, M};
    if (!gv_shape_ok(OP, 4, pshape)) return NULL;
    grove_tensor *in[3] = {q, k, v};
    gv_op o;
    if (!gv_op_begin(&o, OP, cross_attention_backward, 3, in)) return NULL;
    gv_attn_rows rows[3];
    for (int i = 0; i < 3; i++)
        if (o.ok) gv_op_hold(&o, gv_attn_rows_of(in[i], &rows[i]));
    grove_tensor *mc = gv_op_input(&o, mask);
    grove_tensor *out = gv_op_output(&o, 3, q->shape, GROVE_F32);
    grove_tensor *P = gv_op_temp(&o, 4, pshape, GROVE_F32);
    GV_OP_CALL(&o, cross_attention, B, N, M, H, D / H, rows[0], rows[1], rows[2], mc ? mc->data : NULL,
               mask && mask->dtype == GROVE_U8, P->data, out->data);
    if (o.node) o.node->ints[0] = heads;
    for (int i = 0; i < 3; i++) gv_op_save(&o, i, in[i]);
    gv_op_save(&o, 3, P);
    return gv_op_end(&o);
}

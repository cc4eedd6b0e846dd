/*
 * causal_attention.c — causal softmax self-attention of a decoder text
 * encoder (Gemma-2): grouped-query heads, key padding mask, optional sliding
 * window and logit soft-cap, in one fused kernel that keeps no L×L matrix.
 *
 * Forward only: the encoders that use it are frozen. When an input requires
 * grad the op still computes, and records a node whose backward is an error
 * naming the op, so asking for the gradient fails clearly instead of
 * silently giving none.
 */
#include "backend.h"

#include <limits.h>
#include <math.h>

static const char *const OP = "causal_attention";

/* The kernels keep a head's accumulators in fixed per-row storage on CUDA
 * (kernels/cuda/causal_attention.cu); every device takes the same limit. */
enum { MAX_HEAD_DIM = 1024 };

static grove_status no_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    (void)n;
    (void)g;
    (void)gi;
    return gv_fail("%s: forward only, it has no gradient (it serves frozen text encoders); compute it under "
                   "grove.no_grad, or detach its inputs",
                   OP);
}

static bool check_args(grove_tensor *q, grove_tensor *k, grove_tensor *v, grove_tensor *mask, int32_t heads,
                       int32_t kv_heads, double scale, int64_t window, double softcap)
{
    if (!gv_attn_check_qkv(OP, q, k, v, "batch, tokens, heads·head_dim")) return false;
    if (q->shape[0] != k->shape[0] || q->shape[1] != k->shape[1]) {
        gv_fail("%s: q %s and k %s must have the same batch and tokens (self-attention)", OP, gv_shape_str(q),
                gv_shape_str(k));
        return false;
    }
    if (heads < 1 || kv_heads < 1 || heads % kv_heads != 0) {
        gv_fail("%s: heads %d must be a positive multiple of kv_heads %d", OP, (int)heads, (int)kv_heads);
        return false;
    }
    if (q->shape[2] % heads != 0) {
        gv_fail("%s: width %lld of q %s is not divisible by heads %d", OP, (long long)q->shape[2], gv_shape_str(q),
                (int)heads);
        return false;
    }
    int64_t d = q->shape[2] / heads;
    if (k->shape[2] != kv_heads * d) {
        gv_fail("%s: k %s must be kv_heads %d × head_dim %lld = %lld wide (q %s, heads %d)", OP, gv_shape_str(k),
                (int)kv_heads, (long long)d, (long long)(kv_heads * d), gv_shape_str(q), (int)heads);
        return false;
    }
    if (d > MAX_HEAD_DIM) {
        gv_fail("%s: head_dim %lld of q %s is above the limit of %d", OP, (long long)d, gv_shape_str(q),
                (int)MAX_HEAD_DIM);
        return false;
    }
    if (!(scale > 0.0) || !isfinite(scale)) {
        gv_fail("%s: scale must be positive and finite, got %g", OP, scale);
        return false;
    }
    if (window < 0) {
        gv_fail("%s: window must be >= 0 (0: none), got %lld", OP, (long long)window);
        return false;
    }
    if (softcap < 0.0 || !isfinite(softcap)) {
        gv_fail("%s: softcap must be >= 0 (0: none) and finite, got %g", OP, softcap);
        return false;
    }
    if (q->shape[1] > INT_MAX) {
        gv_fail("%s: q %s has too many tokens", OP, gv_shape_str(q));
        return false;
    }
    if (!mask) return true;
    if (!gv_check_live(OP, mask) || !gv_check_same_device(OP, q, mask)) return false;
    if (mask->dtype != GROVE_U8 && mask->dtype != GROVE_F32) {
        gv_fail("%s: mask must be u8 or f32 (nonzero = a real token), got %s %s", OP, grove_dtype_name(mask->dtype),
                gv_shape_str(mask));
        return false;
    }
    if (mask->ndim != 2 || mask->shape[0] != q->shape[0] || mask->shape[1] != q->shape[1]) {
        gv_fail("%s: mask %s does not match q %s (expected [%lld,%lld])", OP, gv_shape_str(mask), gv_shape_str(q),
                (long long)q->shape[0], (long long)q->shape[1]);
        return false;
    }
    return true;
}

grove_tensor *grove_causal_attention(grove_tensor *q, grove_tensor *k, grove_tensor *v, grove_tensor *mask,
                                     int32_t heads, int32_t kv_heads, double scale, int64_t window, double softcap)
{
    if (!check_args(q, k, v, mask, heads, kv_heads, scale, window, softcap)) return NULL;
    const gv_kernels *kt = gv_kernels_for(OP, q);
    if (!kt) return NULL;
    int64_t B = q->shape[0], L = q->shape[1], d = q->shape[2] / heads;
    grove_tensor *in[3] = {q, k, v}, *held[4] = {NULL}, *out = NULL;
    gv_attn_rows rows[3];
    for (int i = 0; i < 3; i++)
        if (!(held[i] = gv_attn_rows_of(in[i], &rows[i]))) goto fail;
    if (mask && !(held[3] = gv_contiguous_data(mask))) goto fail;
    if (!(out = gv_empty(3, q->shape, GROVE_F32, q->device))) goto fail;
    if (B * L * d > 0 && GV_KCALL(OP, kt, causal_attention, B, L, heads, kv_heads, d, rows[0], rows[1], rows[2],
                                  held[3] ? held[3]->data : NULL, mask && mask->dtype == GROVE_U8, (float)scale,
                                  window, (float)softcap, out->data))
        goto fail;
    for (int i = 0; i < 4; i++) grove_tensor_release(held[i]);
    grove_node *node;
    if (gv_node_begin(OP, no_backward, 3, in, &node)) {
        grove_tensor_release(out);
        return NULL;
    }
    if (node) gv_node_finish(node, out);
    return out;
fail:
    grove_tensor_release(out);
    for (int i = 0; i < 4; i++) grove_tensor_release(held[i]);
    return NULL;
}

/*
 * linear_attention.c — SANA's ReLU linear attention as one op with a
 * hand-written backward: q, k, v (B, N, D), heads of head_dim channels,
 * o_i = Σ_j v_j φ(k_j)·φ(q_i) / (Σ_j φ(k_j)·φ(q_i) + eps), φ = ReLU, in
 * O(N·d²) per head. The forward keeps each head's KV (d×d) and s (d) for the
 * backward, so the backward never revisits the keys to rebuild them.
 */
#include "backend.h"

#include <math.h>

static const char *const OP = "linear_attention";

/* Each head's d×d state grows with head_dim squared; SANA uses 32. */
enum { MAX_HEAD_DIM = 4096 };

/* Kernel scratch for B·H heads of head_dim d (bytes, as a u8 tensor). */
static grove_tensor *scratch_for(const gv_kernels *kt, int64_t pairs, int64_t d)
{
    if (!gv_kernel_ready(OP, kt, linear_attention_scratch)) return NULL;
    int64_t shape[2] = {pairs, kt->linear_attention_scratch(d)};
    if (!gv_shape_ok(OP, 2, shape)) return NULL;
    return gv_empty(2, shape, GROVE_U8, kt->device);
}

/* Saved: q, k, v and the state (B, H, d + 1, d); ints[0] = head_dim,
 * scalars[0] = eps. */
static grove_status linear_attention_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int64_t B = n->in_shape[0][0], N = n->in_shape[0][1], D = n->in_shape[0][2], d = n->ints[0];
    grove_tensor *held[6] = {NULL}, *grads[3] = {NULL}, *scratch = NULL;
    gv_attn_rows rows[4];
    grove_tensor *src[4] = {n->saved[0], n->saved[1], n->saved[2], g};
    const gv_kernels *kt = gv_kernels_for(OP, g);
    if (!kt) return -1;
    for (int i = 0; i < 4; i++)
        if (!(held[i] = gv_attn_rows_of(src[i], &rows[i]))) goto fail;
    if (!(held[4] = gv_contiguous_data(n->saved[3]))) goto fail;
    for (int i = 0; i < 3; i++)
        if (n->needs_grad[i] && !(grads[i] = gv_empty(3, n->in_shape[i], GROVE_F32, g->device))) goto fail;
    if (!(scratch = scratch_for(kt, B * (D / d), d))) goto fail;
    if (GV_KCALL(OP, kt, linear_attention_backward, B, N, D / d, d, rows[0], rows[1], rows[2], rows[3],
                 (float)n->scalars[0], held[4]->data, scratch->data, grads[0] ? grads[0]->data : NULL,
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

static bool check_args(grove_tensor *q, grove_tensor *k, grove_tensor *v, int32_t head_dim, double eps)
{
    if (!gv_check_f32(OP, q) || !gv_check_f32(OP, k) || !gv_check_f32(OP, v)) return false;
    if (!gv_check_same_device(OP, q, k) || !gv_check_same_device(OP, q, v)) return false;
    if (q->ndim != 3) {
        gv_fail("%s: q %s must be 3-d (batch, tokens, channels)", OP, gv_shape_str(q));
        return false;
    }
    for (int32_t i = 0; i < 3; i++) {
        if (k->ndim != 3 || v->ndim != 3 || k->shape[i] != q->shape[i] || v->shape[i] != q->shape[i]) {
            gv_fail("%s: q %s, k %s and v %s must have the same shape", OP, gv_shape_str(q), gv_shape_str(k),
                    gv_shape_str(v));
            return false;
        }
    }
    if (head_dim < 1 || head_dim > MAX_HEAD_DIM) {
        gv_fail("%s: head_dim must be in [1, %d] (got %d)", OP, MAX_HEAD_DIM, (int)head_dim);
        return false;
    }
    if (q->shape[2] % head_dim != 0) {
        gv_fail("%s: width %lld of q %s is not divisible by head_dim %d", OP, (long long)q->shape[2],
                gv_shape_str(q), (int)head_dim);
        return false;
    }
    if (!(eps >= 0) || isinf(eps)) {
        gv_fail("%s: eps must be a finite number >= 0 (got %g)", OP, eps);
        return false;
    }
    return true;
}

grove_tensor *grove_linear_attention(grove_tensor *q, grove_tensor *k, grove_tensor *v, int32_t head_dim, double eps)
{
    if (!check_args(q, k, v, head_dim, eps)) return NULL;
    int64_t B = q->shape[0], N = q->shape[1], D = q->shape[2], d = head_dim, H = D / d;
    int64_t sshape[4] = {B, H, d + 1, d};
    grove_tensor *in[3] = {q, k, v};
    gv_op o;
    if (!gv_op_begin(&o, OP, linear_attention_backward, 3, in)) return NULL;
    gv_attn_rows rows[3];
    for (int i = 0; i < 3; i++)
        if (o.ok) gv_op_hold(&o, gv_attn_rows_of(in[i], &rows[i]));
    grove_tensor *out = gv_op_output(&o, 3, q->shape, GROVE_F32);
    grove_tensor *state = gv_op_temp(&o, 4, sshape, GROVE_F32);
    grove_tensor *scratch = o.ok ? gv_op_hold(&o, scratch_for(o.k, B * H, d)) : NULL;
    GV_OP_CALL(&o, linear_attention, B, N, H, d, rows[0], rows[1], rows[2], (float)eps, scratch->data, state->data,
               out->data);
    if (o.node) {
        o.node->ints[0] = d;
        o.node->scalars[0] = eps;
    }
    for (int i = 0; i < 3; i++) gv_op_save(&o, i, in[i]);
    gv_op_save(&o, 3, state);
    return gv_op_end(&o);
}

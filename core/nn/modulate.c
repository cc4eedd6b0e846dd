/* modulate.c — the adaLN pieces of the SANA block: LayerNorm fused with the
 * per-sample shift and scale, and the gated residual x + gate·y. The (B, D)
 * shift, scale and gate are usually rows of a (B, 6, D) table; any strides
 * are accepted (they are copied to contiguous rows, which is cheap beside
 * the (B, N, D) tokens). */
#include "backend.h"

#include <math.h>

static bool check_tokens(const char *op, const char *what, const grove_tensor *x)
{
    if (!gv_check_f32(op, x)) return false;
    if (x->ndim != 3) {
        gv_fail("%s: %s %s must be 3-d (B, N, D)", op, what, gv_shape_str(x));
        return false;
    }
    return true;
}

/* A per-sample vector v must be (B, D) for tokens x (B, N, D). */
static bool check_vec(const char *op, const char *what, const grove_tensor *v, const grove_tensor *x)
{
    if (!gv_check_f32(op, v) || !gv_check_same_device(op, x, v)) return false;
    if (v->ndim != 2 || v->shape[0] != x->shape[0] || v->shape[1] != x->shape[2]) {
        gv_fail("%s: %s %s does not match x %s (expected [%lld,%lld] = (B, D))", op, what, gv_shape_str(v),
                gv_shape_str(x), (long long)x->shape[0], (long long)x->shape[2]);
        return false;
    }
    return true;
}

static float *data_or_null(grove_tensor *t) { return t ? t->data : NULL; }

/* ---- norm_modulate ----------------------------------------------------------- */

/* Inputs x, shift, scale. Saved: 0 = contiguous x, 1 = contiguous scale,
 * 2 = stats (2, B·N): the means, then the 1/std. */
static grove_status norm_modulate_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    const int64_t *s = n->in_shape[0];
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    if (!gc) return -1;
    grove_status st = 0;
    for (int32_t i = 0; i < 3 && st == 0; i++) {
        if (!n->needs_grad[i]) continue;
        gi[i] = gv_empty(n->in_ndim[i], n->in_shape[i], GROVE_F32, g->device);
        if (!gi[i]) st = -1;
    }
    if (st == 0) {
        const float *mean = n->saved[2]->data, *rstd = mean + s[0] * s[1];
        st = GV_KCALL(n->name, k, norm_modulate_backward, s[0], s[1], s[2], n->saved[0]->data, n->saved[1]->data,
                      mean, rstd, gc->data, data_or_null(gi[0]), data_or_null(gi[1]), data_or_null(gi[2]));
    }
    grove_tensor_release(gc);
    return st;
}

grove_tensor *grove_norm_modulate(grove_tensor *x, grove_tensor *shift, grove_tensor *scale, double eps)
{
    const char *op = "norm_modulate";
    if (!check_tokens(op, "x", x) || !check_vec(op, "shift", shift, x) || !check_vec(op, "scale", scale, x))
        return NULL;
    if (!(eps >= 0) || isinf(eps))
        return gv_fail_null("%s: eps must be finite and >= 0, got %g (x %s)", op, eps, gv_shape_str(x));
    int64_t b = x->shape[0], nt = x->shape[1], d = x->shape[2];
    int64_t sshape[2] = {2, b * nt};
    grove_tensor *in[3] = {x, shift, scale};
    gv_op o;
    if (!gv_op_begin(&o, op, norm_modulate_backward, 3, in)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x), *shc = gv_op_input(&o, shift), *scc = gv_op_input(&o, scale);
    grove_tensor *y = gv_op_output(&o, 3, x->shape, GROVE_F32);
    grove_tensor *stats = o.node ? gv_op_temp(&o, 2, sshape, GROVE_F32) : NULL;
    float *mean = stats ? (float *)stats->data : NULL, *rstd = stats ? (float *)stats->data + b * nt : NULL;
    GV_OP_CALL(&o, norm_modulate, b, nt, d, xc->data, shc->data, scc->data, eps, y->data, mean, rstd);
    gv_op_save(&o, 0, xc);
    gv_op_save(&o, 1, scc);
    gv_op_save(&o, 2, stats);
    return gv_op_end(&o);
}

/* ---- gated_residual ------------------------------------------------------------ */

/* Inputs x, gate, y. Saved: 0 = contiguous gate (when y needs grad),
 * 1 = contiguous y (when gate needs grad). dx is g itself. */
static grove_status gated_residual_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    const int64_t *s = n->in_shape[0];
    if (n->needs_grad[0]) {
        grove_tensor_retain(g);
        gi[0] = g;
    }
    if (!n->needs_grad[1] && !n->needs_grad[2]) return 0;
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    if (!gc) return -1;
    grove_status st = 0;
    for (int32_t i = 1; i < 3 && st == 0; i++) {
        if (!n->needs_grad[i]) continue;
        gi[i] = gv_empty(n->in_ndim[i], n->in_shape[i], GROVE_F32, g->device);
        if (!gi[i]) st = -1;
    }
    if (st == 0)
        st = GV_KCALL(n->name, k, gated_residual_backward, s[0], s[1], s[2], data_or_null(n->saved[0]),
                      data_or_null(n->saved[1]), gc->data, data_or_null(gi[2]), data_or_null(gi[1]));
    grove_tensor_release(gc);
    return st;
}

grove_tensor *grove_gated_residual(grove_tensor *x, grove_tensor *gate, grove_tensor *y)
{
    const char *op = "gated_residual";
    if (!check_tokens(op, "x", x) || !check_tokens(op, "y", y) || !gv_check_same_device(op, x, y)) return NULL;
    for (int32_t i = 0; i < 3; i++)
        if (x->shape[i] != y->shape[i])
            return gv_fail_null("%s: x %s and y %s must have the same shape", op, gv_shape_str(x), gv_shape_str(y));
    if (!check_vec(op, "gate", gate, x)) return NULL;
    grove_tensor *in[3] = {x, gate, y};
    gv_op o;
    if (!gv_op_begin(&o, op, gated_residual_backward, 3, in)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x), *gc = gv_op_input(&o, gate), *yc = gv_op_input(&o, y);
    grove_tensor *out = gv_op_output(&o, 3, x->shape, GROVE_F32);
    GV_OP_CALL(&o, gated_residual, x->shape[0], x->shape[1], x->shape[2], xc->data, gc->data, yc->data, out->data);
    if (o.node && o.node->needs_grad[2]) gv_op_save(&o, 0, gc);
    if (o.node && o.node->needs_grad[1]) gv_op_save(&o, 1, yc);
    return gv_op_end(&o);
}

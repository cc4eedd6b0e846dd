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
    const gv_kernels *k = gv_kernels_for(op, x);
    if (!k) return NULL;
    int64_t b = x->shape[0], nt = x->shape[1], d = x->shape[2];
    grove_tensor *in[3] = {x, shift, scale};
    grove_node *node;
    if (gv_node_begin(op, norm_modulate_backward, 3, in, &node)) return NULL;
    grove_tensor *xc = gv_contiguous_data(x);
    grove_tensor *shc = xc ? gv_contiguous_data(shift) : NULL;
    grove_tensor *scc = shc ? gv_contiguous_data(scale) : NULL;
    grove_tensor *y = scc ? gv_empty(3, x->shape, GROVE_F32, x->device) : NULL, *stats = NULL;
    int64_t sshape[2] = {2, b * nt};
    if (y && node) stats = gv_empty(2, sshape, GROVE_F32, x->device);
    bool ok = y && (!node || stats);
    if (ok) {
        float *mean = stats ? (float *)stats->data : NULL, *rstd = stats ? (float *)stats->data + b * nt : NULL;
        ok = !GV_KCALL(op, k, norm_modulate, b, nt, d, xc->data, shc->data, scc->data, eps, y->data, mean, rstd);
    }
    if (ok && node)
        ok = !gv_node_save(node, 0, xc) && !gv_node_save(node, 1, scc) && !gv_node_save(node, 2, stats);
    grove_tensor_release(xc);
    grove_tensor_release(shc);
    grove_tensor_release(scc);
    grove_tensor_release(stats);
    return gv_node_end(node, y, ok);
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
    const gv_kernels *k = gv_kernels_for(op, x);
    if (!k) return NULL;
    grove_tensor *in[3] = {x, gate, y};
    grove_node *node;
    if (gv_node_begin(op, gated_residual_backward, 3, in, &node)) return NULL;
    grove_tensor *xc = gv_contiguous_data(x);
    grove_tensor *gc = xc ? gv_contiguous_data(gate) : NULL;
    grove_tensor *yc = gc ? gv_contiguous_data(y) : NULL;
    grove_tensor *out = yc ? gv_empty(3, x->shape, GROVE_F32, x->device) : NULL;
    bool ok = out != NULL;
    if (ok)
        ok = !GV_KCALL(op, k, gated_residual, x->shape[0], x->shape[1], x->shape[2], xc->data, gc->data, yc->data,
                       out->data);
    if (ok && node)
        ok = !(node->needs_grad[2] && gv_node_save(node, 0, gc)) && !(node->needs_grad[1] && gv_node_save(node, 1, yc));
    grove_tensor_release(xc);
    grove_tensor_release(gc);
    grove_tensor_release(yc);
    return gv_node_end(node, out, ok);
}

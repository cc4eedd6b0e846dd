/*
 * lincomb.c — out = Σ cᵢ·tᵢ, the one piece of arithmetic every flow sampler
 * step is made of: Euler (x + Δσ·v), DPM-Solver++ (a·x + b·D0 + c·D1) and
 * classifier-free guidance (u + s·(c − u)). One pass, no temporaries;
 * grove_lincomb_into writes into an existing tensor (an EMA update, one
 * kernel and no allocation).
 */
#include "backend.h"

#include <string.h>

static grove_status lincomb_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    for (int32_t i = 0; i < n->n_inputs; i++) {
        if (!n->needs_grad[i]) continue;
        gi[i] = grove_binary_scalar(g, n->scalars[i], GROVE_MUL, false);
        if (!gi[i]) return -1;
    }
    return 0;
}

/* The checks both forms share: 1 to 4 f32 tensors of one shape on one device. */
static bool check_terms(const char *op, int32_t n, grove_tensor *const *ts, const double *coeffs)
{
    if (n < 1 || n > 4) return gv_fail("%s: %d tensors given (1 to 4)", op, n), false;
    if (!ts || !coeffs) return gv_fail("%s: missing tensors or coefficients", op), false;
    for (int32_t i = 0; i < n; i++) {
        if (!gv_check_f32(op, ts[i])) return false;
        if (!gv_check_same_device(op, ts[0], ts[i])) return false;
        if (ts[i]->ndim != ts[0]->ndim || memcmp(ts[i]->shape, ts[0]->shape, (size_t)ts[0]->ndim * sizeof(int64_t)))
            return gv_fail("%s: tensor %d is %s, tensor 1 is %s: shapes must match", op, i + 1, gv_shape_str(ts[i]),
                           gv_shape_str(ts[0])),
                   false;
    }
    return true;
}

/* Writes Σ cᵢ·tᵢ into out (contiguous, numel of ts[0]) with one kernel call. */
static bool combine(const char *op, int32_t n, grove_tensor *const *ts, const double *coeffs, grove_tensor *out)
{
    const gv_kernels *k = gv_kernels_for(op, ts[0]);
    if (!k) return false;
    grove_tensor *c[4] = {NULL};
    const float *src[4];
    float cf[4];
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        c[i] = gv_contiguous_data(ts[i]);
        ok = c[i] != NULL;
        if (ok) src[i] = c[i]->data;
        cf[i] = (float)coeffs[i];
    }
    /* src (device pointers) and cf are host arrays: the kernel's metadata. */
    if (ok) ok = !GV_KCALL(op, k, lincomb, n, src, cf, out->data, grove_tensor_numel(out));
    for (int32_t i = 0; i < n; i++) grove_tensor_release(c[i]);
    return ok;
}

grove_tensor *grove_lincomb(int32_t n, grove_tensor *const *ts, const double *coeffs)
{
    if (!check_terms("lincomb", n, ts, coeffs)) return NULL;
    grove_tensor *out = gv_empty_like(ts[0]);
    if (!out || !combine("lincomb", n, ts, coeffs, out)) {
        grove_tensor_release(out);
        return NULL;
    }
    grove_node *node;
    if (gv_node_begin("lincomb", lincomb_backward, n, ts, &node)) {
        grove_tensor_release(out);
        return NULL;
    }
    if (node) {
        for (int32_t i = 0; i < n; i++) node->scalars[i] = coeffs[i];
        gv_node_finish(node, out);
    }
    return out;
}

grove_status grove_lincomb_into(grove_tensor *dst, int32_t n, grove_tensor *const *ts, const double *coeffs)
{
    const char *op = "lincomb_into";
    if (!check_terms(op, n, ts, coeffs) || !gv_check_f32(op, dst) || !gv_check_same_device(op, ts[0], dst)) return -1;
    if (dst->ndim != ts[0]->ndim || memcmp(dst->shape, ts[0]->shape, (size_t)dst->ndim * sizeof(int64_t)))
        return gv_fail("%s: the destination is %s, the terms %s", op, gv_shape_str(dst), gv_shape_str(ts[0]));
    if (!grove_tensor_is_contiguous(dst)) return gv_fail("%s: the destination %s is not contiguous", op, gv_shape_str(dst));
    if (dst->requires_grad) return gv_fail("%s: the destination requires grad (an in-place write is not recorded)", op);
    /* Element i is read and written by the same thread, so a term may be the
     * destination itself; one that overlaps it any other way may not. */
    for (int32_t i = 0; i < n; i++) {
        grove_tensor *t = ts[i];
        bool same = t->storage == dst->storage && t->data == dst->data && grove_tensor_is_contiguous(t);
        if (t->storage == dst->storage && !same)
            return gv_fail("%s: term %d shares memory with the destination without being it", op, i + 1);
    }
    return combine(op, n, ts, coeffs, dst) ? 0 : -1;
}

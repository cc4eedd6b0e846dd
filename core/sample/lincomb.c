/*
 * lincomb.c — out = Σ cᵢ·tᵢ, the one piece of arithmetic every flow sampler
 * step is made of: Euler (x + Δσ·v), DPM-Solver++ (a·x + b·D0 + c·D1) and
 * classifier-free guidance (u + s·(c − u)). One pass, no temporaries.
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

grove_tensor *grove_lincomb(int32_t n, grove_tensor *const *ts, const double *coeffs)
{
    if (n < 1 || n > 4) return gv_fail_null("lincomb: %d tensors given (1 to 4)", n);
    if (!ts || !coeffs) return gv_fail_null("lincomb: missing tensors or coefficients");
    for (int32_t i = 0; i < n; i++) {
        if (!gv_check_f32("lincomb", ts[i])) return NULL;
        if (!gv_check_same_device("lincomb", ts[0], ts[i])) return NULL;
        if (ts[i]->ndim != ts[0]->ndim || memcmp(ts[i]->shape, ts[0]->shape, (size_t)ts[0]->ndim * sizeof(int64_t)))
            return gv_fail_null("lincomb: tensor %d is %s, tensor 1 is %s: shapes must match", i + 1, gv_shape_str(ts[i]),
                                gv_shape_str(ts[0]));
    }
    const gv_kernels *k = gv_kernels_for("lincomb", ts[0]);
    if (!k) return NULL;
    grove_tensor *c[4] = {NULL};
    const float *src[4];
    float cf[4];
    grove_tensor *out = gv_empty_like(ts[0]);
    bool ok = out != NULL;
    for (int32_t i = 0; i < n && ok; i++) {
        c[i] = gv_contiguous_data(ts[i]);
        ok = c[i] != NULL;
        if (ok) src[i] = c[i]->data;
        cf[i] = (float)coeffs[i];
    }
    /* src (device pointers) and cf are host arrays: the kernel's metadata. */
    if (ok) ok = !GV_KCALL("lincomb", k, lincomb, n, src, cf, out->data, grove_tensor_numel(out));
    for (int32_t i = 0; i < n; i++) grove_tensor_release(c[i]);
    if (!ok) {
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

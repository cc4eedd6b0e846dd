/* clip.c — global gradient-norm clipping over a parameter list. */
#include "common.h"

#include <math.h>

grove_status grove_clip_grad_norm(int64_t n, grove_tensor *const *params, double max_norm, double *norm)
{
    const char *op = "clip_grad_norm";
    if (n < 0 || (n > 0 && !params)) return gv_fail("%s: bad parameter list (%lld entries)", op, (long long)n);
    if (!(max_norm >= 0) || isnan(max_norm)) return gv_fail("%s: max_norm must be >= 0, got %g", op, max_norm);
    /* Validate everything before touching anything. */
    for (int64_t i = 0; i < n; i++) {
        grove_tensor *p = params[i];
        if (!gv_check_live(op, p)) return -1;
        grove_tensor *g = p->grad;
        if (!g) continue;
        if (!gv_check_f32(op, g)) return -1;
        const gv_kernels *k = gv_kernels_for(op, g);
        if (!k || !gv_kernel_ready(op, k, sum_squares) || !gv_kernel_ready(op, k, scale_)) return -1;
    }
    /* Σ over tensors in list order of per-tensor sums: a fixed order. */
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        grove_tensor *g = params[i]->grad;
        if (!g) continue;
        const gv_kernels *k = gv_kernels_for(op, g);
        grove_tensor *gc = gv_contiguous_data(g);
        if (!gc) return -1;
        total += k->sum_squares(gc->data, grove_tensor_numel(gc));
        grove_tensor_release(gc);
        if (gv_kernels_check(k)) return -1;
    }
    total = sqrt(total);
    if (norm) *norm = total;
    if (max_norm > 0 && total > max_norm) {
        float s = (float)(max_norm / (total + 1e-6));
        for (int64_t i = 0; i < n; i++) {
            grove_tensor *g = params[i]->grad;
            if (!g) continue;
            if (grove_tensor_is_contiguous(g)) {
                if (GV_KCALL(op, gv_kernels_for(op, g), scale_, g->data, grove_tensor_numel(g), s)) return -1;
                continue;
            }
            /* a strided gradient is replaced by a scaled contiguous copy */
            grove_tensor *sc = grove_binary_scalar(g, s, GROVE_MUL, false);
            if (!sc) return -1;
            grove_status st = grove_tensor_set_grad(params[i], sc);
            grove_tensor_release(sc);
            if (st) return -1;
        }
    }
    return 0;
}

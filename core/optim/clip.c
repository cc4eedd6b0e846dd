/* clip.c — global gradient-norm clipping over a parameter list. */
#include "common.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Σ of the per-tensor Σg² of the gradients, in list order; each run of
 * gradients on one device is summed by one kernel call (on CUDA: one wait
 * for the run, not one per tensor). */
static grove_status sum_of_squares(const char *op, int64_t n, grove_tensor *const *params, double *total)
{
    grove_tensor **gcs = calloc((size_t)(n > 0 ? n : 1), sizeof *gcs);
    const float **xs = calloc((size_t)(n > 0 ? n : 1), sizeof *xs);
    int64_t *ns = calloc((size_t)(n > 0 ? n : 1), sizeof *ns);
    double *sums = calloc((size_t)(n > 0 ? n : 1), sizeof *sums);
    grove_status st = 0;
    int64_t m = 0; /* gradients collected */
    if (!gcs || !xs || !ns || !sums) st = gv_fail("%s: out of memory for %lld gradients", op, (long long)n);
    for (int64_t i = 0; st == 0 && i < n; i++) {
        grove_tensor *g = params[i]->grad;
        if (!g) continue;
        if (!(gcs[m] = gv_contiguous_data(g))) st = -1;
        else {
            xs[m] = gcs[m]->data;
            ns[m] = grove_tensor_numel(gcs[m]);
            m++;
        }
    }
    *total = 0;
    for (int64_t a = 0; st == 0 && a < m;) {
        int64_t b = a + 1;
        while (b < m && b - a < INT32_MAX && gcs[b]->device == gcs[a]->device) b++;
        const gv_kernels *k = gv_kernels_for(op, gcs[a]);
        if (!k) st = -1;
        else st = GV_KCALL(op, k, sum_squares_group, (int32_t)(b - a), xs + a, ns + a, sums + a);
        a = b;
    }
    for (int64_t i = 0; st == 0 && i < m; i++) *total += sums[i];
    for (int64_t i = 0; i < m; i++) grove_tensor_release(gcs[i]);
    free(gcs), free(xs), free(ns), free(sums);
    return st;
}

/* Every gradient ·= s: the contiguous ones of a device in one kernel call
 * per run of that device, a strided one replaced by a scaled contiguous copy. */
static grove_status scale_all(const char *op, int64_t n, grove_tensor *const *params, float s)
{
    float **xs = calloc((size_t)(n > 0 ? n : 1), sizeof *xs);
    int64_t *ns = calloc((size_t)(n > 0 ? n : 1), sizeof *ns);
    const grove_tensor **of = calloc((size_t)(n > 0 ? n : 1), sizeof *of);
    grove_status st = 0;
    int64_t m = 0;
    if (!xs || !ns || !of) st = gv_fail("%s: out of memory for %lld gradients", op, (long long)n);
    for (int64_t i = 0; st == 0 && i < n; i++) {
        grove_tensor *g = params[i]->grad;
        if (!g) continue;
        if (grove_tensor_is_contiguous(g)) {
            xs[m] = g->data;
            ns[m] = grove_tensor_numel(g);
            of[m++] = g;
            continue;
        }
        grove_tensor *sc = grove_binary_scalar(g, s, GROVE_MUL, false);
        if (!sc) st = -1;
        else {
            st = grove_tensor_set_grad(params[i], sc);
            grove_tensor_release(sc);
        }
    }
    for (int64_t a = 0; st == 0 && a < m;) {
        int64_t b = a + 1;
        while (b < m && b - a < INT32_MAX && of[b]->device == of[a]->device) b++;
        const gv_kernels *k = gv_kernels_for(op, of[a]);
        st = k ? GV_KCALL(op, k, scale_group, (int32_t)(b - a), xs + a, ns + a, s) : -1;
        a = b;
    }
    free(xs), free(ns), free(of);
    return st;
}

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
        if (!k || !gv_kernel_ready(op, k, sum_squares_group) || !gv_kernel_ready(op, k, scale_group)) return -1;
    }
    /* Σ over tensors in list order of per-tensor sums: a fixed order. */
    double total;
    if (sum_of_squares(op, n, params, &total)) return -1;
    total = sqrt(total);
    if (norm) *norm = total;
    if (max_norm > 0 && total > max_norm) return scale_all(op, n, params, (float)(max_norm / (total + 1e-6)));
    return 0;
}

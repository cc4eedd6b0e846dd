/* norm.c — layer norm and RMS norm over the last dimension. The forward
 * saves the per-row statistics (mean and 1/std) in a small tensor so the
 * backward does not recompute them. */
#include "backend.h"

#include <math.h>

static bool check_param(const char *op, const char *what, const grove_tensor *x, const grove_tensor *p)
{
    if (!p) return true;
    if (!gv_check_f32(op, p) || !gv_check_same_device(op, x, p)) return false;
    int64_t c = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != c) {
        gv_fail("%s: %s %s does not match the last dimension of input %s (expected [%lld])", op, what,
                gv_shape_str(p), gv_shape_str(x), (long long)c);
        return false;
    }
    return true;
}

static bool check_norm_args(const char *op, const grove_tensor *x, const grove_tensor *w, const grove_tensor *b,
                            double eps)
{
    if (!gv_check_f32(op, x)) return false;
    if (x->ndim == 0) {
        gv_fail("%s: input %s needs at least 1 dimension", op, gv_shape_str(x));
        return false;
    }
    if (!check_param(op, "weight", x, w) || !check_param(op, "bias", x, b)) return false;
    if (!(eps >= 0) || isinf(eps)) {
        gv_fail("%s: eps must be finite and >= 0, got %g (input %s)", op, eps, gv_shape_str(x));
        return false;
    }
    return true;
}

/* Contiguous data of an optional parameter: *out NULL when p is NULL. */
static bool param_data(grove_tensor *p, grove_tensor **out)
{
    *out = p ? gv_contiguous_data(p) : NULL;
    return !p || *out;
}

static float *data_or_null(grove_tensor *t) { return t ? t->data : NULL; }

/* Saved: 0 = contiguous input, 1 = weight (or none), 2 = stats (2, rows):
 * the means (zeros for RMS norm), then the 1/std. ints[0] = 1 for layer norm. */
static grove_status norm_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    bool layer = n->ints[0] != 0;
    int64_t cols = n->in_shape[0][n->in_ndim[0] - 1];
    int64_t rows = gv_numel_of(n->in_ndim[0] - 1, n->in_shape[0]);
    grove_tensor *x = n->saved[0], *w = n->saved[1], *stats = n->saved[2];
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    if (!gc) return -1;
    grove_tensor *wc = NULL;
    grove_status st = param_data(w, &wc) ? 0 : -1;
    for (int32_t i = 0; i < 3 && st == 0; i++) {
        if (!n->needs_grad[i]) continue;
        gi[i] = gv_empty(n->in_ndim[i], n->in_shape[i], GROVE_F32, g->device);
        if (!gi[i]) st = -1;
    }
    if (st == 0) {
        const float *mean = (const float *)stats->data, *rstd = mean + rows;
        if (layer)
            st = GV_KCALL(n->name, k, layer_norm_backward, rows, cols, x->data, data_or_null(wc), mean, rstd,
                          gc->data, data_or_null(gi[0]), data_or_null(gi[1]), data_or_null(gi[2]));
        else
            st = GV_KCALL(n->name, k, rms_norm_backward, rows, cols, x->data, data_or_null(wc), rstd, gc->data,
                          data_or_null(gi[0]), data_or_null(gi[1]));
    }
    grove_tensor_release(gc);
    grove_tensor_release(wc);
    return st;
}

static grove_tensor *norm_op(const char *op, grove_tensor *x, grove_tensor *w, grove_tensor *b, double eps, bool layer)
{
    if (!check_norm_args(op, x, w, b, eps)) return NULL;
    int64_t cols = x->shape[x->ndim - 1];
    int64_t rows = gv_numel_of(x->ndim - 1, x->shape);
    int64_t sshape[2] = {2, rows};
    grove_tensor *in[3] = {x, w, b};
    gv_op o;
    if (!gv_op_begin(&o, op, norm_backward, layer ? 3 : 2, in)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x), *wc = gv_op_input(&o, w), *bc = gv_op_input(&o, b);
    grove_tensor *y = gv_op_output(&o, x->ndim, x->shape, GROVE_F32);
    grove_tensor *stats = o.node ? gv_op_temp(&o, 2, sshape, GROVE_F32) : NULL;
    float *mean = stats ? (float *)stats->data : NULL, *rstd = stats ? (float *)stats->data + rows : NULL;
    if (layer) {
        GV_OP_CALL(&o, layer_norm, rows, cols, xc->data, data_or_null(wc), data_or_null(bc), eps, y->data, mean,
                   rstd);
    } else {
        GV_OP_CALL(&o, rms_norm, rows, cols, xc->data, data_or_null(wc), eps, y->data, rstd);
        /* The means row is unused by the RMS backward; zeroed so the saved
         * statistics are defined (on the stats tensor's device). */
        int64_t one = 1;
        if (mean) GV_OP_CALL(&o, fill, 1, &rows, mean, &one, GROVE_F32, 0.0);
    }
    if (o.node) o.node->ints[0] = layer;
    gv_op_save(&o, 0, xc);
    if (wc) gv_op_save(&o, 1, wc);
    gv_op_save(&o, 2, stats);
    return gv_op_end(&o);
}

grove_tensor *grove_layer_norm(grove_tensor *x, grove_tensor *w, grove_tensor *b, double eps)
{
    return norm_op("layer_norm", x, w, b, eps, true);
}

grove_tensor *grove_rms_norm(grove_tensor *x, grove_tensor *w, double eps)
{
    return norm_op("rms_norm", x, w, NULL, eps, false);
}

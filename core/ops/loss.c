/* loss.c — mean squared error and cross entropy, each a fused kernel with its
 * own backward. Both reduce to a 0-d mean, as torch's default reduction. */
#include "internal.h"
#include "backend.h"

#include <string.h>

static bool same_shape(const grove_tensor *a, const grove_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]);
}

/* The op's 0-d f32 output, holding v. */
static void scalar_out(gv_op *o, double v)
{
    grove_tensor *out = gv_op_output(o, 0, NULL, GROVE_F32);
    GV_OP_CALL(o, fill, 0, NULL, out->data, NULL, GROVE_F32, v);
}

/* ---- mse_loss ------------------------------------------------------------- */

static grove_status mse_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    double gv;
    const gv_kernels *k = gv_kernels_for(n->name, g);
    if (!k || grove_tensor_item(g, &gv)) return -1;
    grove_tensor *a = gv_contiguous_data(n->saved[0]);
    grove_tensor *b = gv_contiguous_data(n->saved[1]);
    grove_tensor *ga = NULL, *gb = NULL;
    grove_status st = -1;
    if (!a || !b) goto done;
    int64_t cnt = grove_tensor_numel(a);
    if (n->needs_grad[0] && !(ga = gv_empty_like(a))) goto done;
    if (n->needs_grad[1] && !(gb = gv_empty_like(b))) goto done;
    /* d/da mean((a − b)²) = 2(a − b)/numel */
    float scale = cnt > 0 ? (float)(2.0 * gv / (double)cnt) : 0.0f;
    if (GV_KCALL(n->name, k, mse_backward, a->data, b->data, cnt, scale, ga ? ga->data : NULL,
                 gb ? gb->data : NULL))
        goto done;
    gi[0] = ga;
    gi[1] = gb;
    ga = gb = NULL;
    st = 0;
done:
    grove_tensor_release(ga);
    grove_tensor_release(gb);
    grove_tensor_release(a);
    grove_tensor_release(b);
    return st;
}

grove_tensor *grove_mse_loss(grove_tensor *input, grove_tensor *target)
{
    if (!gv_check_f32("mse_loss", input) || !gv_check_f32("mse_loss", target)) return NULL;
    if (!gv_check_same_device("mse_loss", input, target)) return NULL;
    if (!same_shape(input, target))
        return gv_fail_null("mse_loss: input %s and target %s: shapes differ (mse_loss does not broadcast)",
                            gv_shape_str(input), gv_shape_str(target));
    grove_tensor *ins[2] = {input, target};
    gv_op o;
    if (!gv_op_begin(&o, "mse_loss", mse_backward, 2, ins)) return NULL;
    grove_tensor *a = gv_op_input(&o, input), *b = gv_op_input(&o, target);
    int64_t cnt = grove_tensor_numel(input);
    /* An empty input gives NaN (0/0), as torch's mean. */
    double sum = GV_OP_VALUE(&o, sq_diff_sum, a->data, b->data, cnt);
    if (o.ok) scalar_out(&o, sum / (double)cnt);
    gv_op_save(&o, 0, input);
    gv_op_save(&o, 1, target);
    return gv_op_end(&o);
}

/* ---- cross_entropy ------------------------------------------------------- */

static grove_status cross_entropy_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    double gv;
    const gv_kernels *k = gv_kernels_for(n->name, g);
    if (!k || grove_tensor_item(g, &gv)) return -1;
    grove_tensor *x = gv_contiguous_data(n->saved[0]);
    grove_tensor *t = gv_contiguous_data(n->saved[1]);
    grove_tensor *gx = NULL;
    grove_status st = -1;
    if (x && t && (gx = gv_empty_like(x))) {
        int64_t rows = x->shape[0], cls = x->shape[1];
        float scale = rows > 0 ? (float)(gv / (double)rows) : 0.0f;
        if (GV_KCALL(n->name, k, cross_entropy_backward, x->data, t->data, rows, cls, scale, gx->data)) {
            grove_tensor_release(gx);
        } else {
            gi[0] = gx;
            st = 0;
        }
    }
    grove_tensor_release(x);
    grove_tensor_release(t);
    return st;
}

grove_tensor *grove_cross_entropy(grove_tensor *logits, grove_tensor *target)
{
    if (!gv_check_f32("cross_entropy", logits) || !gv_check_live("cross_entropy", target)) return NULL;
    if (!gv_check_same_device("cross_entropy", logits, target)) return NULL;
    if (logits->ndim != 2)
        return gv_fail_null("cross_entropy: logits must be (N, C), got %s", gv_shape_str(logits));
    if (target->dtype != GROVE_I64)
        return gv_fail_null("cross_entropy: target must hold i64 class indices, got %s %s",
                            grove_dtype_name(target->dtype), gv_shape_str(target));
    int64_t rows = logits->shape[0], cls = logits->shape[1];
    if (target->ndim != 1 || target->shape[0] != rows)
        return gv_fail_null("cross_entropy: target %s does not match logits %s (expected [%lld])",
                            gv_shape_str(target), gv_shape_str(logits), (long long)rows);
    gv_op o;
    if (!gv_op_begin(&o, "cross_entropy", cross_entropy_backward, 1, &logits)) return NULL;
    GV_OP_READY(&o, cross_entropy_sum);
    grove_tensor *x = gv_op_input(&o, logits), *t = gv_op_input(&o, target);
    /* The range check reads the targets on the host (a copy when on CUDA). */
    grove_tensor *th = o.ok ? gv_op_hold(&o, gv_host_data("cross_entropy", t)) : NULL;
    const int64_t *tv = th ? th->data : NULL;
    for (int64_t i = 0; o.ok && i < rows; i++)
        if (tv[i] < 0 || tv[i] >= cls)
            GV_OP_FAIL(&o, "cross_entropy: target value %lld (row %lld) is out of range for %lld classes [0, %lld) "
                           "of logits %s",
                       (long long)tv[i], (long long)i, (long long)cls, (long long)cls, gv_shape_str(logits));
    /* N = 0 gives NaN (0/0), as torch's mean. */
    double sum = GV_OP_VALUE(&o, cross_entropy_sum, x->data, t->data, rows, cls);
    if (o.ok) scalar_out(&o, sum / (double)rows);
    gv_op_save(&o, 0, logits);
    gv_op_save(&o, 1, target);
    return gv_op_end(&o);
}

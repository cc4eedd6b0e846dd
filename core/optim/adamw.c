/* adamw.c — torch.optim.AdamW over one parameter: decoupled weight decay,
 * bias-corrected moments. */
#include "common.h"

#include <math.h>

grove_status grove_adamw_step(grove_tensor *param, grove_tensor *grad, grove_tensor *exp_avg,
                              grove_tensor *exp_avg_sq, const grove_adamw_options *o, int64_t step)
{
    const char *op = "adamw";
    if (!o) return gv_fail("%s: options are missing", op);
    if (!gv_optim_nonneg(op, "lr", o->lr) || !gv_optim_beta(op, "beta1", o->beta1) ||
        !gv_optim_beta(op, "beta2", o->beta2) || !gv_optim_nonneg(op, "eps", o->eps) ||
        !gv_optim_nonneg(op, "weight_decay", o->weight_decay))
        return -1;
    if (step < 1) return gv_fail("%s: step must be >= 1, got %lld", op, (long long)step);
    grove_tensor *g;
    const gv_kernels *k;
    if (!gv_optim_param(op, param, grad, &g, &k)) return -1;
    int64_t n = grove_tensor_numel(param);
    if (!gv_optim_state(op, "exp_avg", exp_avg, param, GROVE_F32, n) ||
        !gv_optim_state(op, "exp_avg_sq", exp_avg_sq, param, GROVE_F32, n)) {
        grove_tensor_release(g);
        return -1;
    }
    if (exp_avg->storage == exp_avg_sq->storage) {
        grove_tensor_release(g);
        return gv_fail("%s: exp_avg and exp_avg_sq share memory", op);
    }
    /* the scalars as torch derives them, in double */
    double bc1 = 1.0 - pow(o->beta1, (double)step);
    double bc2 = 1.0 - pow(o->beta2, (double)step);
    grove_status st = GV_KCALL(op, k, adamw, param->data, g->data, exp_avg->data, exp_avg_sq->data, n,
                               (float)(1.0 - o->lr * o->weight_decay), (float)o->beta1, (float)(1.0 - o->beta1),
                               (float)o->beta2, (float)(1.0 - o->beta2), (float)o->eps, (float)(o->lr / bc1),
                               (float)sqrt(bc2));
    grove_tensor_release(g);
    return st;
}

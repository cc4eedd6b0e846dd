/* adamw.c — torch.optim.AdamW: decoupled weight decay, bias-corrected
 * moments; over one parameter, or over a group in one kernel call (one
 * launch per 32 tensors on CUDA). */
#include "common.h"

#include "gpu.h"

#include <math.h>
#include <stdlib.h>

static bool check_options(const char *op, const grove_adamw_options *o)
{
    if (!o) return gv_fail("%s: options are missing", op), false;
    return gv_optim_nonneg(op, "lr", o->lr) && gv_optim_beta(op, "beta1", o->beta1) &&
           gv_optim_beta(op, "beta2", o->beta2) && gv_optim_nonneg(op, "eps", o->eps) &&
           gv_optim_nonneg(op, "weight_decay", o->weight_decay);
}

/* Checks one parameter and fills its task; *gc receives the contiguous
 * gradient to release after the kernel ran. */
static bool task_of(const char *op, grove_tensor *param, grove_tensor *grad, grove_tensor *exp_avg,
                    grove_tensor *exp_avg_sq, const grove_adamw_options *o, int64_t step, gv_adamw_task *task,
                    grove_tensor **gc, const gv_kernels **k)
{
    if (step < 1) return gv_fail("%s: step must be >= 1, got %lld", op, (long long)step), false;
    grove_tensor *g;
    if (!gv_optim_param(op, param, grad, &g, k)) return false;
    int64_t n = grove_tensor_numel(param);
    if (!gv_optim_state(op, "exp_avg", exp_avg, param, GROVE_F32, n) ||
        !gv_optim_state(op, "exp_avg_sq", exp_avg_sq, param, GROVE_F32, n)) {
        grove_tensor_release(g);
        return false;
    }
    if (exp_avg->storage == exp_avg_sq->storage) {
        grove_tensor_release(g);
        return gv_fail("%s: exp_avg and exp_avg_sq share memory", op), false;
    }
    /* the scalars as torch derives them, in double */
    double bc1 = 1.0 - pow(o->beta1, (double)step);
    double bc2 = 1.0 - pow(o->beta2, (double)step);
    *task = (gv_adamw_task){.p = param->data, .g = g->data, .m = exp_avg->data, .v = exp_avg_sq->data, .n = n,
                            .step_size = (float)(o->lr / bc1), .bc2_sqrt = (float)sqrt(bc2)};
    *gc = g;
    return true;
}

grove_status grove_adamw_step(grove_tensor *param, grove_tensor *grad, grove_tensor *exp_avg,
                              grove_tensor *exp_avg_sq, const grove_adamw_options *o, int64_t step)
{
    const char *op = "adamw";
    gv_adamw_task t;
    grove_tensor *g;
    const gv_kernels *k;
    if (!check_options(op, o) || !task_of(op, param, grad, exp_avg, exp_avg_sq, o, step, &t, &g, &k)) return -1;
    grove_status st = GV_KCALL(op, k, adamw, t.p, t.g, t.m, t.v, t.n, (float)(1.0 - o->lr * o->weight_decay),
                               (float)o->beta1, (float)(1.0 - o->beta1), (float)o->beta2, (float)(1.0 - o->beta2),
                               (float)o->eps, t.step_size, t.bc2_sqrt);
    grove_tensor_release(g);
    return st;
}

grove_status grove_adamw_step_group(int32_t count, grove_tensor *const *params, grove_tensor *const *grads,
                                    grove_tensor *const *exp_avgs, grove_tensor *const *exp_avg_sqs,
                                    const grove_adamw_options *o, const int64_t *steps, int32_t *failed)
{
    const char *op = "adamw";
    if (failed) *failed = -1;
    if (count < 0 || (count > 0 && (!params || !grads || !exp_avgs || !exp_avg_sqs || !steps)))
        return gv_fail("%s: a group of %d parameters needs their tensors and step counts", op, count);
    if (!check_options(op, o)) return -1;
    if (count == 0) return 0;
    gv_adamw_task *tasks = calloc((size_t)count, sizeof *tasks);
    grove_tensor **gs = calloc((size_t)count, sizeof *gs);
    if (!tasks || !gs) {
        free(tasks), free(gs);
        return gv_fail("%s: out of memory for a group of %d parameters", op, count);
    }
    /* every tensor is checked before any is updated */
    const gv_kernels *k = NULL;
    int32_t ready = 0;
    grove_status st = 0;
    for (; ready < count; ready++) {
        const gv_kernels *ki;
        if (!task_of(op, params[ready], grads[ready], exp_avgs[ready], exp_avg_sqs[ready], o, steps[ready],
                     &tasks[ready], &gs[ready], &ki)) {
            st = -1;
            break;
        }
        if (k && ki != k) {
            grove_tensor_release(gs[ready]);
            st = gv_fail("%s: a group's parameters must share a device (%s and %s)", op,
                         gv_device_name(params[0]->device), gv_device_name(params[ready]->device));
            break;
        }
        k = ki;
    }
    if (st == 0)
        st = GV_KCALL(op, k, adamw_group, count, tasks, (float)(1.0 - o->lr * o->weight_decay), (float)o->beta1,
                      (float)(1.0 - o->beta1), (float)o->beta2, (float)(1.0 - o->beta2), (float)o->eps);
    else if (failed) *failed = ready;
    for (int32_t i = 0; i < ready; i++) grove_tensor_release(gs[i]);
    free(tasks);
    free(gs);
    return st;
}

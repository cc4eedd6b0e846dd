/* sgd.c — torch.optim.SGD over one parameter: L2 weight decay, momentum
 * with dampening, Nesterov. */
#include "common.h"

#include <math.h>

grove_status grove_sgd_step(grove_tensor *param, grove_tensor *grad, grove_tensor *momentum_buffer,
                            const grove_sgd_options *o, int64_t step)
{
    const char *op = "sgd";
    if (!o) return gv_fail("%s: options are missing", op);
    if (!gv_optim_nonneg(op, "lr", o->lr) || !gv_optim_nonneg(op, "momentum", o->momentum) ||
        !gv_optim_nonneg(op, "dampening", o->dampening) || !gv_optim_nonneg(op, "weight_decay", o->weight_decay))
        return -1;
    if (o->dampening > 1) return gv_fail("%s: dampening must lie in [0, 1], got %g", op, o->dampening);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return gv_fail("%s: nesterov needs momentum > 0 and dampening 0 (momentum %g, dampening %g)", op, o->momentum,
                       o->dampening);
    if (step < 1) return gv_fail("%s: step must be >= 1, got %lld", op, (long long)step);
    grove_tensor *g;
    const gv_kernels *k;
    if (!gv_optim_param(op, param, grad, &g, &k)) return -1;
    int64_t n = grove_tensor_numel(param);
    if (o->momentum > 0 && !gv_optim_state(op, "momentum_buffer", momentum_buffer, param, GROVE_F32, n)) {
        grove_tensor_release(g);
        return -1;
    }
    grove_status st = GV_KCALL(op, k, sgd, param->data, g->data, o->momentum > 0 ? momentum_buffer->data : NULL, n,
                               (float)o->lr, (float)o->momentum, (float)(1.0 - o->dampening),
                               (float)o->weight_decay, o->nesterov != 0, step == 1);
    grove_tensor_release(g);
    return st;
}

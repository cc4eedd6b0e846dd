/* common.c — argument checks shared by the optimizer front-ends. */
#include "common.h"

#include <math.h>
#include <string.h>

bool gv_optim_param(const char *op, grove_tensor *param, grove_tensor *grad, grove_tensor **gc,
                    const gv_kernels **k)
{
    *gc = NULL;
    if (!gv_check_f32(op, param)) return false;
    if (!grad) {
        gv_fail("%s: parameter %s has no gradient", op, gv_shape_str(param));
        return false;
    }
    if (!gv_check_f32(op, grad) || !gv_check_same_device(op, param, grad)) return false;
    if (!(*k = gv_kernels_for(op, param))) return false;
    if (!grove_tensor_is_contiguous(param)) {
        gv_fail("%s: parameter %s is not contiguous; optimizers update parameters in place", op,
                gv_shape_str(param));
        return false;
    }
    if (grad->ndim != param->ndim || memcmp(grad->shape, param->shape, (size_t)param->ndim * sizeof param->shape[0])) {
        gv_fail("%s: gradient %s does not match parameter %s", op, gv_shape_str(grad), gv_shape_str(param));
        return false;
    }
    *gc = gv_contiguous_data(grad);
    return *gc != NULL;
}

bool gv_optim_state(const char *op, const char *what, const grove_tensor *t, const grove_tensor *param,
                    int32_t dtype, int64_t numel)
{
    if (!t) {
        gv_fail("%s: state %s is missing", op, what);
        return false;
    }
    if (!gv_check_live(op, t)) return false;
    if (t->dtype != dtype) {
        gv_fail("%s: state %s is %s %s, expected %s", op, what, grove_dtype_name(t->dtype), gv_shape_str(t),
                grove_dtype_name(dtype));
        return false;
    }
    if (t->device != param->device) {
        gv_fail("%s: state %s %s is on another device than the parameter %s", op, what, gv_shape_str(t),
                gv_shape_str(param));
        return false;
    }
    if (grove_tensor_numel(t) != numel) {
        gv_fail("%s: state %s %s has %lld elements, expected %lld for parameter %s", op, what, gv_shape_str(t),
                (long long)grove_tensor_numel(t), (long long)numel, gv_shape_str(param));
        return false;
    }
    if (!grove_tensor_is_contiguous(t)) {
        gv_fail("%s: state %s %s is not contiguous", op, what, gv_shape_str(t));
        return false;
    }
    if (t->storage == param->storage) {
        gv_fail("%s: state %s %s shares memory with the parameter %s", op, what, gv_shape_str(t), gv_shape_str(param));
        return false;
    }
    return true;
}

bool gv_optim_beta(const char *op, const char *name, double v)
{
    if (!(v >= 0.0 && v < 1.0)) {
        gv_fail("%s: %s must lie in [0, 1), got %g", op, name, v);
        return false;
    }
    return true;
}

bool gv_optim_nonneg(const char *op, const char *name, double v)
{
    if (!(v >= 0.0 && isfinite(v))) {
        gv_fail("%s: %s must be a finite number >= 0, got %g", op, name, v);
        return false;
    }
    return true;
}

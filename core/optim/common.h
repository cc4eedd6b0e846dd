/* common.h — argument checks shared by the optimizer front-ends of
 * core/optim/. Each sets an error naming the op and returns false. */
#ifndef GROVE_OPTIM_COMMON_H
#define GROVE_OPTIM_COMMON_H

#include "backend.h"

/* The parameter: a live, contiguous f32 tensor (it is updated in place).
 * The gradient: f32 of the parameter's shape on its device; *gc receives a
 * contiguous reference to its data (release it), *k the kernel table of
 * the parameter's device. */
bool gv_optim_param(const char *op, grove_tensor *param, grove_tensor *grad, grove_tensor **gc,
                    const gv_kernels **k);
/* A state tensor: live, contiguous, on the parameter's device, of the given
 * dtype and element count, sharing no storage with the parameter. */
bool gv_optim_state(const char *op, const char *what, const grove_tensor *t, const grove_tensor *param,
                    int32_t dtype, int64_t numel);
/* A finite value in [0, 1). */
bool gv_optim_beta(const char *op, const char *name, double v);
/* A finite value >= 0. */
bool gv_optim_nonneg(const char *op, const char *name, double v);

#endif

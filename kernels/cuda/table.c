/*
 * table.c — the CUDA kernel table (core/backend.h): a gv_cuda_ kernel for
 * every entry of the kernel list (kernels/kernels.def). They are declared
 * weak here, so one that no .cu file defines yet is a NULL entry (the
 * front-end's error "<op>: no CUDA kernel for <entry>") rather than a link
 * error. Compiled only in a build with GROVE_CUDA on.
 */
#define GV_CUDA_DECL __attribute__((weak))
#include "cuda.h"
#include "../../core/backend.h"

/* From context.h, declared here so this C file needs no CUDA headers. */
int gv_cuda_take_error(void);

const gv_kernels gv_cuda_kernels = {
    .device = GROVE_CUDA,
    .take_error = gv_cuda_take_error,
#define GV_KERNEL(ret, name, params) .name = gv_cuda_##name,
#include "../kernels.def"
};

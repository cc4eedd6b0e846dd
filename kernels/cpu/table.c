/*
 * table.c — the CPU kernel table (core/backend.h): a gv_cpu_ kernel for
 * every entry of the kernel list (kernels/kernels.def), the ones that take
 * an sgemm function wrapped so the front-ends need not know about
 * OpenBLAS. The wrappers load it at first use (core/blas.c); if that fails
 * they compute nothing and leave the failure for gv_kernels_check.
 */
#include "../../core/backend.h"

/* Set by a wrapper that found no OpenBLAS; the grove error already names why. */
static __thread int blas_missing;

static int cpu_take_error(void)
{
    int failed = blas_missing;
    blas_missing = 0;
    return failed ? -1 : 0;
}

static gv_cpu_sgemm_fn sgemm_or_flag(void)
{
    const gv_blas *b = gv_blas_get();
    if (b) return b->sgemm;
    blas_missing = 1;
    return NULL;
}

/* A wrapper per kernel that takes sgemm: cpu_<name> passes OpenBLAS's. */
#define GV_KERNEL(ret, name, params)
#define GV_KERNEL_SGEMM(ret, name, params, args) \
    static ret cpu_##name params                 \
    {                                            \
        gv_cpu_sgemm_fn sgemm = sgemm_or_flag(); \
        if (sgemm) gv_cpu_##name GV_SGEMM_ARGS args;   \
    }
#include "../kernels.def"

const gv_kernels gv_cpu_kernels = {
    .device = GROVE_CPU,
    .take_error = cpu_take_error,
#define GV_KERNEL(ret, name, params) .name = gv_cpu_##name,
#define GV_KERNEL_SGEMM(ret, name, params, args) .name = cpu_##name,
#include "../kernels.def"
};

/*
 * cuda.h — the CUDA kernels: a gv_cuda_<name> declaration for every entry
 * of the kernel list (kernels/kernels.def, where the contracts are), the
 * twin of the CPU kernel gv_cpu_<name> minus the CPU's sgemm argument
 * (cuBLAS is used). The kernel table (kernels/cuda/table.c) declares these
 * weak, so a missing kernel reads as "no CUDA kernel".
 */
#ifndef GROVE_KERNELS_CUDA_H
#define GROVE_KERNELS_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../cpu/cpu.h" /* the shared kernel types and host helpers */

#ifndef GV_CUDA_DECL
#define GV_CUDA_DECL
#endif

#define GV_KERNEL(ret, name, params) GV_CUDA_DECL ret gv_cuda_##name params;
#include "../kernels.def"

#ifdef __cplusplus
}
#endif

#endif

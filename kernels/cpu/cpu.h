/*
 * cpu.h — the CPU kernels. Kernels trust their arguments (the op front-ends
 * in core/ validate them) and only do arithmetic. Each family has its own
 * header; this one gathers them.
 */
#ifndef GROVE_KERNELS_CPU_H
#define GROVE_KERNELS_CPU_H

#include <stdint.h>

/* Strided copy with dtype conversion (dtype codes as grove_dtype). */
void gv_cpu_copy(int32_t ndim, const int64_t *shape, void *dst, const int64_t *dst_stride, int32_t dst_dtype,
                 const void *src, const int64_t *src_stride, int32_t src_dtype);
void gv_cpu_fill(int32_t ndim, const int64_t *shape, void *data, const int64_t *stride, int32_t dtype, double value);

/* Philox4x32-10: one block, and fills where element i uses counter
 * (offset + i/4), lane i%4 (normals: Box-Muller on lane pairs (0,1), (2,3)). */
void gv_cpu_philox_block(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
void gv_cpu_philox_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi);
void gv_cpu_philox_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);

/* out[i] = Σ_k coeffs[k]·src[k][i] for n ≤ 4 sources. */
void gv_cpu_lincomb(int32_t n, const float *const *src, const float *coeffs, float *out, int64_t count);

#include "elementwise.h"
#include "reduce.h"
#include "linalg.h"
#include "nn.h"
#include "shape.h"
#include "loss.h"
#include "attention.h"
#include "sana.h"
#include "optim.h"

#endif

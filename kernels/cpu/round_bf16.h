/* round_bf16.h — rounding f32 values to the nearest bf16 (kernels/cpu/round_bf16.c). */
#ifndef GROVE_KERNELS_CPU_ROUND_BF16_H
#define GROVE_KERNELS_CPU_ROUND_BF16_H

#include <stdint.h>

/* y[i] = x[i] rounded to bf16 (nearest, ties to even; NaN stays NaN) and
 * widened back to f32; y may be x. */
void gv_cpu_round_bf16(const float *x, float *y, int64_t n);

#endif

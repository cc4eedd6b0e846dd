/* round_bf16.c — f32 → bf16 → f32 rounding, the input side of the CPU
 * reference of a bf16 GEMM, with the storage conversion's own bit rule. */
#include "round_bf16.h"
#include "convert.h"

void gv_cpu_round_bf16(const float *x, float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = gv_conv_bf16_to_f32(gv_conv_f32_to_bf16(x[i]));
}

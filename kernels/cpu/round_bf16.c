/* round_bf16.c — f32 → bf16 → f32 rounding, the input side of the CPU
 * reference of a bf16 GEMM. The same bit rule as dtype.c's conversion. */
#include "round_bf16.h"

#include <string.h>

void gv_cpu_round_bf16(const float *x, float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* NaN: keep it a (quiet) NaN */
        else u += 0x7fffu + ((u >> 16) & 1u);                  /* nearest, ties to even */
        u &= 0xffff0000u;
        memcpy(&y[i], &u, 4);
    }
}

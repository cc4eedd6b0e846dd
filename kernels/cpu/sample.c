/* sample.c — the samplers' arithmetic. */
#include "cpu.h"
#include "parallel.h"

void gv_cpu_lincomb(int32_t n, const float *const *src, const float *coeffs, float *out, int64_t count)
{
    GV_PARALLEL_FOR(count > 65536,
        for (int64_t i = 0; i < count; i++) {
            float acc = coeffs[0] * src[0][i];
            for (int32_t k = 1; k < n; k++) acc += coeffs[k] * src[k][i];
            out[i] = acc;
        });
}

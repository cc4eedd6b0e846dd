/* linalg_bf16.c — the CPU reference of the bf16 mixed-precision GEMM: both
 * operands rounded f32 → bf16 → f32 (the storage conversion's own bit rule)
 * into scratch, then the f32 GEMM. Where the CPU multiplies bf16 and the
 * build has oneDNN, gemm_bf16_dnnl.c computes the same products faster. */
#include "cpu.h"
#include "convert.h"

static void round_bf16(const float *x, float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = gv_conv_bf16_to_f32(gv_conv_f32_to_bf16(x[i]));
}

int64_t gv_cpu_gemm_bf16_scratch(int m, int n, int k)
{
    return ((int64_t)m * k + (int64_t)k * n) * (int64_t)sizeof(float);
}

void gv_cpu_gemm_bf16(gv_cpu_sgemm_fn sgemm, int m, int n, int k, const float *a, const float *b, float *c,
                      void *scratch)
{
    if (gv_cpu_gemm_bf16_dnnl(m, n, k, a, b, c, scratch)) return;
    float *ar = scratch, *br = ar + (int64_t)m * k;
    round_bf16(a, ar, (int64_t)m * k);
    round_bf16(b, br, (int64_t)k * n);
    gv_cpu_gemm(sgemm, false, false, m, n, k, ar, k, br, n, NULL, c);
}

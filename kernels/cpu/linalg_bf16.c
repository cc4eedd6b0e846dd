/* linalg_bf16.c — the CPU reference of the bf16 mixed-precision GEMM: each
 * operand, as stored (f32 rounded f32 → bf16 → f32 with the storage
 * conversion's own bit rule; bf16 widened, which is exact), into a compact
 * f32 copy in scratch, then the f32 GEMM reading the copies with the
 * operands' own transposition. A bf16-stored operand gives the same copy
 * as the f32 one it was rounded from, so the same bits. Where the CPU
 * multiplies bf16 and the build has oneDNN, gemm_bf16_dnnl.c computes the
 * same products faster. */
#include "cpu.h"
#include "convert.h"

/* x (rows, cols) with leading dimension ld, f32 or bf16, into y (rows,
 * cols) compact f32 holding bf16 values. */
static void operand_rounded(const void *x, int32_t dtype, int64_t rows, int64_t cols, int64_t ld, float *y)
{
    if (dtype == GROVE_BF16) {
        const uint16_t *h = x;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++) y[r * cols + j] = gv_conv_bf16_to_f32(h[r * ld + j]);
    } else {
        const float *f = x;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++)
                y[r * cols + j] = gv_conv_bf16_to_f32(gv_conv_f32_to_bf16(f[r * ld + j]));
    }
}

int64_t gv_cpu_gemm_bf16_scratch(int m, int n, int k)
{
    return ((int64_t)m * k + (int64_t)k * n) * (int64_t)sizeof(float);
}

void gv_cpu_gemm_bf16(gv_cpu_sgemm_fn sgemm, bool trans_a, bool trans_b, int m, int n, int k, const void *a,
                      int32_t a_dtype, int lda, const void *b, int32_t b_dtype, int ldb, float *c, void *scratch)
{
    if (gv_cpu_gemm_bf16_dnnl(trans_a, trans_b, m, n, k, a, a_dtype, lda, b, b_dtype, ldb, c, scratch)) return;
    float *ar = scratch, *br = ar + (int64_t)m * k;
    /* stored shapes: a (m, k) or (k, m) transposed, b (k, n) or (n, k) */
    int a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    int b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    operand_rounded(a, a_dtype, a_rows, a_cols, lda, ar);
    operand_rounded(b, b_dtype, b_rows, b_cols, ldb, br);
    gv_cpu_gemm(sgemm, trans_a, trans_b, m, n, k, ar, a_cols > 0 ? a_cols : 1, br, b_cols > 0 ? b_cols : 1, NULL,
                c);
}

/* linalg.c — matrix products through OpenBLAS sgemm, and the row sum a
 * linear layer's bias gradient needs. */
#include "cpu.h"
#include "../../core/internal.h"

#include <limits.h>
#include <string.h>

void gv_cpu_gemm(gv_cpu_sgemm_fn sgemm, bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda,
                 const float *b, int ldb, const float *bias, float *c)
{
    if (m == 0 || n == 0) return;
    if (bias) {
        /* The bias seeds c and sgemm accumulates onto it (beta = 1). */
        for (int i = 0; i < m; i++) memcpy(c + (int64_t)i * n, bias, (size_t)n * sizeof *c);
    } else if (k == 0) {
        memset(c, 0, (size_t)m * (size_t)n * sizeof *c);
    }
    if (k == 0) return;
    sgemm(GV_CBLAS_ROW_MAJOR, trans_a ? GV_CBLAS_TRANS : GV_CBLAS_NO_TRANS,
          trans_b ? GV_CBLAS_TRANS : GV_CBLAS_NO_TRANS, m, n, k, 1.0f, a, lda, b, ldb, bias ? 1.0f : 0.0f, c, n);
}

/* The number of a's rows when all batches are one tall matrix: b is shared by
 * every batch and a's batches are stacked row after row (as (B, M, K) @ (K, N)
 * is (B·M, K) @ (K, N)); 0 when they are not. */
static int64_t stacked_rows(int32_t nbatch, const int64_t *batch_shape, const int64_t *a_bstride, bool trans_a,
                            int lda, const int64_t *b_bstride, int m)
{
    if (trans_a) return 0;
    int64_t rows = m, expect = (int64_t)m * lda;
    for (int32_t d = nbatch - 1; d >= 0; d--) {
        if (batch_shape[d] == 1) continue;
        if (b_bstride[d] != 0 || a_bstride[d] != expect) return 0;
        expect *= batch_shape[d];
        rows *= batch_shape[d];
    }
    return rows <= INT_MAX ? rows : 0;
}

void gv_cpu_matmul_batched(gv_cpu_sgemm_fn sgemm, int32_t nbatch, const int64_t *batch_shape, const float *a,
                           const int64_t *a_bstride, bool trans_a, int lda, const float *b, const int64_t *b_bstride,
                           bool trans_b, int ldb, float *c, int m, int n, int k)
{
    int64_t count = gv_numel_of(nbatch, batch_shape);
    if (count == 0 || m == 0 || n == 0) return;
    int64_t rows = stacked_rows(nbatch, batch_shape, a_bstride, trans_a, lda, b_bstride, m);
    if (rows > 0) {
        gv_cpu_gemm(sgemm, false, trans_b, (int)rows, n, k, a, lda, b, ldb, NULL, c);
        return;
    }
    /* OpenBLAS threads each product itself; the batches run one after another. */
    int64_t idx[GROVE_MAX_DIMS] = {0};
    for (int64_t i = 0; i < count; i++) {
        int64_t ao = 0, bo = 0;
        for (int32_t d = 0; d < nbatch; d++) {
            ao += idx[d] * a_bstride[d];
            bo += idx[d] * b_bstride[d];
        }
        gv_cpu_gemm(sgemm, trans_a, trans_b, m, n, k, a + ao, lda, b + bo, ldb, NULL, c + i * (int64_t)m * n);
        for (int32_t d = nbatch - 1; d >= 0; d--) {
            if (++idx[d] < batch_shape[d]) break;
            idx[d] = 0;
        }
    }
}

enum { COL_CHUNK = 64 };

void gv_cpu_sum_rows(int64_t rows, int64_t cols, const float *x, float *out)
{
    /* Each chunk of columns belongs to one thread, which walks all rows. */
    int64_t chunks = (cols + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for schedule(static) if (rows * cols > 32768 && chunks > 1)
    for (int64_t ch = 0; ch < chunks; ch++) {
        int64_t j0 = ch * COL_CHUNK, len = cols - j0 < COL_CHUNK ? cols - j0 : COL_CHUNK;
        double acc[COL_CHUNK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * cols + j0;
            for (int64_t j = 0; j < len; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < len; j++) out[j0 + j] = (float)acc[j];
    }
}

/* linalg.h — CPU kernels of this family (see cpu.h). */
#ifndef GROVE_KERNELS_CPU_LINALG_H
#define GROVE_KERNELS_CPU_LINALG_H

#include <stdbool.h>
#include <stdint.h>

/* cblas_sgemm's signature; the front-end passes OpenBLAS's (core/blas.c). */
typedef void (*gv_cpu_sgemm_fn)(int order, int transa, int transb, int m, int n, int k, float alpha,
                                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* c (m, n, contiguous) = op(a) (m, k) @ op(b) (k, n) [+ bias (n) on every row].
 * op(x) reads x as stored row-major with leading dimension ld, transposed
 * when trans_x is set. k == 0 gives the bias (or zeros). */
void gv_cpu_gemm(gv_cpu_sgemm_fn sgemm, bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda,
                 const float *b, int ldb, const float *bias, float *c);

/* One gemm per batch index of batch_shape (nbatch dimensions); the operands'
 * matrices start at batch strides a_bstride / b_bstride (0 for a broadcast
 * dimension); c is contiguous (batch..., m, n). */
void gv_cpu_matmul_batched(gv_cpu_sgemm_fn sgemm, int32_t nbatch, const int64_t *batch_shape, const float *a,
                           const int64_t *a_bstride, bool trans_a, int lda, const float *b, const int64_t *b_bstride,
                           bool trans_b, int ldb, float *c, int m, int n, int k);

/* out[j] = sum over rows of x[r, j], x contiguous (rows, cols). */
void gv_cpu_sum_rows(int64_t rows, int64_t cols, const float *x, float *out);

#endif

/* gemm_bf16.h — the bf16 GEMM of mixed precision on CUDA (kernels/cuda/linalg_bf16.cu). */
#ifndef GROVE_KERNELS_CUDA_GEMM_BF16_H
#define GROVE_KERNELS_CUDA_GEMM_BF16_H

#ifdef __cplusplus
extern "C" {
#endif

/* c (m, n) = a (m, k) · b (k, n), all f32 row-major contiguous device
 * memory: a and b are rounded to bf16 into scratch (m·k + k·n bf16 values,
 * device memory), then multiplied by cublasGemmEx with CUDA_R_16BF inputs,
 * a CUDA_R_32F output and CUBLAS_COMPUTE_32F accumulation. Errors are
 * recorded for gv_cuda_take_error. */
void gv_cuda_gemm_bf16(int m, int n, int k, const float *a, const float *b, float *c, void *scratch);

#ifdef __cplusplus
}
#endif

#endif

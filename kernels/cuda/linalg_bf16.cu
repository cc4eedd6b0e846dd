/*
 * linalg_bf16.cu — the GEMM of bf16 mixed precision: f32 operands rounded
 * to bf16 (nearest, ties to even, as the CPU reference in
 * kernels/cpu/linalg_bf16.c), multiplied by cuBLAS on tensor cores with f32
 * accumulation and an f32 result.
 */
#include "cuda.h"
#include "context.h"

#include <cuda_bf16.h>
#include <stdint.h>

/* One thread per element, grid-stride. __float2bfloat16 rounds to nearest
 * even, matching the CPU rule bit for bit (NaN stays NaN). */
__global__ void to_bf16(const float *x, __nv_bfloat16 *y, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(x[i]);
}

/* The rounded operands: m·k + k·n bf16 values. */
extern "C" int64_t gv_cuda_gemm_bf16_scratch(int m, int n, int k)
{
    return ((int64_t)m * k + (int64_t)k * n) * (int64_t)sizeof(__nv_bfloat16);
}

extern "C" void gv_cuda_gemm_bf16(int m, int n, int k, const float *a, const float *b, float *c, void *scratch)
{
    cudaStream_t s = gv_cuda_stream();
    long long na = (long long)m * k, nb = (long long)k * n;
    __nv_bfloat16 *ah = (__nv_bfloat16 *)scratch, *bh = ah + na;
    if (na > 0) {
        to_bf16<<<gv_cuda_blocks(na), GV_CUDA_THREADS, 0, s>>>(a, ah, na);
        GV_CUDA_LAUNCHED("gemm_bf16 round a");
    }
    if (nb > 0) {
        to_bf16<<<gv_cuda_blocks(nb), GV_CUDA_THREADS, 0, s>>>(b, bh, nb);
        GV_CUDA_LAUNCHED("gemm_bf16 round b");
    }
    if (m == 0 || n == 0) return;
    if (k == 0) {
        gv_cuda_record(cudaMemsetAsync(c, 0, (size_t)m * n * sizeof(float), s), "gemm_bf16 zero");
        return;
    }
    /* Row-major c = a·b is column-major cᵀ = bᵀ·aᵀ: cuBLAS sees b (n×k,
     * ld n) times a (k×m, ld k) into c (n×m, ld n). */
    const float one = 1.0f, zero = 0.0f;
    gv_cuda_record_blas(cublasGemmEx(gv_cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, bh, CUDA_R_16BF, n, ah,
                                     CUDA_R_16BF, k, &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        "gemm_bf16");
}

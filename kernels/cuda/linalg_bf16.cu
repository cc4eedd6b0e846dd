/*
 * linalg_bf16.cu — the GEMM of bf16 mixed precision: f32 operands rounded
 * to bf16 (nearest, ties to even, as the CPU reference in
 * kernels/cpu/linalg_bf16.c), bf16 ones read as stored, transposed ones in
 * place (cuBLAS's op flags), multiplied by cuBLAS on tensor cores with f32
 * accumulation and an f32 result.
 */
#include "cuda.h"
#include "context.h"

#include <cuda_bf16.h>
#include <grove.h>
#include <stdint.h>

/* x (rows, cols) f32 with leading dimension ld into y (rows, cols) compact
 * bf16: one thread per element, grid-stride. __float2bfloat16 rounds to
 * nearest even, matching the CPU rule bit for bit (NaN stays NaN). */
__global__ void to_bf16(const float *x, long long rows, long long cols, long long ld, __nv_bfloat16 *y)
{
    long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(x[(i / cols) * ld + i % cols]);
}

/* Room for both operands rounded: m·k + k·n bf16 values. */
extern "C" int64_t gv_cuda_gemm_bf16_scratch(int m, int n, int k)
{
    return ((int64_t)m * k + (int64_t)k * n) * (int64_t)sizeof(__nv_bfloat16);
}

/* The bf16 data cuBLAS reads for one operand stored (rows, cols) with
 * leading dimension *ld: the tensor itself when bf16, else its rounded
 * compact copy in spare (then *ld becomes cols). */
static const __nv_bfloat16 *operand_bf16(const void *x, int32_t dtype, long long rows, long long cols, int *ld,
                                         __nv_bfloat16 *spare, cudaStream_t s, const char *what)
{
    if (dtype == GROVE_BF16) return (const __nv_bfloat16 *)x;
    if (rows * cols > 0) {
        to_bf16<<<gv_cuda_blocks(rows * cols), GV_CUDA_THREADS, 0, s>>>((const float *)x, rows, cols, *ld, spare);
        GV_CUDA_LAUNCHED(what);
    }
    *ld = cols > 1 ? (int)cols : 1;
    return spare;
}

extern "C" void gv_cuda_gemm_bf16(bool trans_a, bool trans_b, int m, int n, int k, const void *a, int32_t a_dtype,
                                  int lda, const void *b, int32_t b_dtype, int ldb, float *c, void *scratch)
{
    cudaStream_t s = gv_cuda_stream();
    __nv_bfloat16 *spare = (__nv_bfloat16 *)scratch;
    /* stored shapes: a (m, k) or (k, m) transposed, b (k, n) or (n, k) */
    long long a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    long long b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    const __nv_bfloat16 *ah = operand_bf16(a, a_dtype, a_rows, a_cols, &lda, spare, s, "gemm_bf16 round a");
    const __nv_bfloat16 *bh =
        operand_bf16(b, b_dtype, b_rows, b_cols, &ldb, spare + (long long)m * k, s, "gemm_bf16 round b");
    if (m == 0 || n == 0) return;
    if (k == 0) {
        gv_cuda_record(cudaMemsetAsync(c, 0, (size_t)m * n * sizeof(float), s), "gemm_bf16 zero");
        return;
    }
    /* Row-major c = op(a)·op(b) is column-major cᵀ = op(b)ᵀ·op(a)ᵀ: cuBLAS
     * sees b's storage (ld ldb) times a's (ld lda) with the same op flags
     * into c (n×m, ld n). */
    const float one = 1.0f, zero = 0.0f;
    gv_cuda_record_blas(cublasGemmEx(gv_cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &one, bh, CUDA_R_16BF, ldb, ah,
                                     CUDA_R_16BF, lda, &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT),
                        "gemm_bf16");
}

/*
 * linalg.cu — CUDA twins of kernels/cpu/linalg.c: matrix products through
 * cuBLAS and the column sum a linear layer's bias gradient needs.
 *
 * grove's matrices are row-major; cuBLAS's are column-major. A row-major
 * matrix with leading dimension ld is, read column-major, its transpose with
 * the same ld. So row-major C = op(A)·op(B) is computed as column-major
 * Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first, then A, with n and m swapped and
 * each operand's transpose flag as the caller gave it.
 *
 * The math mode is left as the handle has it (context: plain FP32 unless TF32
 * was opted into).
 */
#include "cuda.h"
#include "context.h"
#include "grove.h"

#include <limits.h>

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

static cublasOperation_t op_of(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* c (m, n) gets bias (n) on every row: the seed sgemm accumulates onto. */
static __global__ void fill_rows_kernel(long long m, long long n, const float *bias, float *c)
{
    GRID_LOOP(i, m * n) c[i] = bias[i % n];
}

static void zero(float *c, long long count, const char *what)
{
    if (count > 0) gv_cuda_record(cudaMemsetAsync(c, 0, (size_t)count * sizeof *c, gv_cuda_stream()), what);
}

extern "C" void gv_cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda, const float *b,
                             int ldb, const float *bias, float *c)
{
    if (m == 0 || n == 0) return;
    if (bias) {
        /* As the CPU: the bias seeds c and the product adds onto it (beta 1). */
        long long count = (long long)m * n;
        fill_rows_kernel<<<gv_cuda_blocks(count), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(m, n, bias, c);
        GV_CUDA_LAUNCHED("gemm bias");
    } else if (k == 0) {
        zero(c, (long long)m * n, "gemm zero");
    }
    if (k == 0) return;
    const float one = 1.0f, beta = bias ? 1.0f : 0.0f;
    gv_cuda_record_blas(cublasSgemm(gv_cuda_blas(), op_of(trans_b), op_of(trans_a), n, m, k, &one, b, ldb, a, lda,
                                    &beta, c, n),
                        "gemm");
}

/*
 * Batched products. The batch index i (row-major over batch_shape) puts
 * operand a at Σ_d idx_d·a_bstride[d]. cuBLAS's strided batched gemm wants
 * a single stride per operand, which holds over a run of trailing batch
 * dimensions d ≥ s where every stride is that single stride times the count
 * of the dimensions after d (size-1 dimensions do not matter; a broadcast
 * operand has all strides 0, which is one stride 0). The leading dimensions
 * d < s are walked here, one strided batched call each.
 */

/* The first dimension of the longest trailing run over which both operands
 * have a single batch stride; *sa, *sb receive the strides and *inner the
 * batches of the run. */
static int32_t uniform_suffix(int32_t nbatch, const int64_t *shape, const int64_t *as, const int64_t *bs,
                              long long *sa, long long *sb, long long *inner)
{
    long long count = 1, ua = 0, ub = 0;
    bool have = false;
    int32_t s = nbatch;
    for (int32_t d = nbatch - 1; d >= 0; d--) {
        if (shape[d] != 1) {
            if (!have) {
                /* The innermost real dimension sets the strides. */
                ua = as[d];
                ub = bs[d];
                have = true;
            } else if (as[d] != ua * count || bs[d] != ub * count) {
                break;
            }
            count *= shape[d];
        }
        s = d;
    }
    *sa = ua;
    *sb = ub;
    *inner = count;
    return s;
}

extern "C" void gv_cuda_matmul_batched(int32_t nbatch, const int64_t *batch_shape, const float *a,
                                       const int64_t *a_bstride, bool trans_a, int lda, const float *b,
                                       const int64_t *b_bstride, bool trans_b, int ldb, float *c, int m, int n, int k)
{
    long long count = 1;
    for (int32_t d = 0; d < nbatch; d++) count *= batch_shape[d];
    if (count == 0 || m == 0 || n == 0) return;
    long long mn = (long long)m * n;
    if (k == 0) {
        zero(c, count * mn, "matmul zero");
        return;
    }
    long long sa, sb, inner;
    int32_t s = uniform_suffix(nbatch, batch_shape, a_bstride, b_bstride, &sa, &sb, &inner);
    const float one = 1.0f, zero_f = 0.0f;
    cublasHandle_t h = gv_cuda_blas();
    int64_t idx[GROVE_MAX_DIMS] = {0};
    for (long long done = 0; done < count; done += inner) {
        long long ao = 0, bo = 0;
        for (int32_t d = 0; d < s; d++) {
            ao += idx[d] * a_bstride[d];
            bo += idx[d] * b_bstride[d];
        }
        /* batchCount is an int: very long runs go in pieces. */
        for (long long j = 0; j < inner; j += INT_MAX) {
            long long part = inner - j < INT_MAX ? inner - j : INT_MAX;
            const float *pa = a + ao + j * sa, *pb = b + bo + j * sb;
            float *pc = c + (done + j) * mn;
            cublasStatus_t st;
            if (part == 1)
                st = cublasSgemm(h, op_of(trans_b), op_of(trans_a), n, m, k, &one, pb, ldb, pa, lda, &zero_f, pc, n);
            else
                st = cublasSgemmStridedBatched(h, op_of(trans_b), op_of(trans_a), n, m, k, &one, pb, ldb, sb, pa, lda,
                                               sa, &zero_f, pc, n, mn, (int)part);
            gv_cuda_record_blas(st, "matmul_batched");
        }
        /* Next index of the leading dimensions (row-major odometer). */
        for (int32_t d = s - 1; d >= 0; d--) {
            if (++idx[d] < batch_shape[d]) break;
            idx[d] = 0;
        }
    }
}

/*
 * out[j] = Σ_r x[r, j] in double, as the CPU. A block owns 32 columns: its
 * 32×ROW_LANES threads each sum every ROW_LANES-th row of one column, then
 * the lanes of a column are added in a fixed order. The block shape is
 * fixed, so the sum's order (and bits) never depend on the grid.
 */
enum { ROW_LANES = 8 };

static __global__ void sum_rows_kernel(long long rows, long long cols, const float *x, float *out)
{
    __shared__ double part[ROW_LANES][32];
    long long tiles = (cols + 31) / 32;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        long long j = t * 32 + threadIdx.x;
        double acc = 0;
        if (j < cols)
            for (long long r = threadIdx.y; r < rows; r += ROW_LANES) acc += x[r * cols + j];
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && j < cols) {
            double s = 0;
            for (int l = 0; l < ROW_LANES; l++) s += part[l][threadIdx.x];
            out[j] = (float)s;
        }
        __syncthreads();
    }
}

extern "C" void gv_cuda_sum_rows(int64_t rows, int64_t cols, const float *x, float *out)
{
    if (cols == 0) return;
    if (rows == 0) {
        zero(out, cols, "sum_rows zero");
        return;
    }
    long long tiles = (cols + 31) / 32;
    unsigned int grid = tiles < 65535 ? (unsigned int)tiles : 65535u;
    sum_rows_kernel<<<grid, dim3(32, ROW_LANES), 0, gv_cuda_stream()>>>(rows, cols, x, out);
    GV_CUDA_LAUNCHED("sum_rows");
}

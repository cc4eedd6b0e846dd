/*
 * loss.cu — CUDA twins of the mse and cross-entropy kernels of
 * kernels/cpu/loss.c.
 *
 * The two full sums (Σ (a − b)² and Σ per-row cross entropy) are reduced in
 * double in two fixed stages: a grid whose size depends only on n writes one
 * partial per block into a static device buffer, then one block adds the
 * partials in a fixed tree. No atomics, so the result is the same on every
 * run. The static buffer is safe because all grove work runs in order on
 * the one stream gv_cuda_stream() of the device (each device has its own
 * copy of module variables). The total is copied to the host and the
 * stream synchronised, as the double return value requires.
 */
#include "cuda.h"
#include "context.h"
#include "block_reduce.cuh"
#include "grove.h"

#include <math.h>

#define GRID_LOOP(i, n)                                                                  \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

static const int MAX_PARTIALS = 1024;

static __device__ double d_partial[MAX_PARTIALS];
static __device__ double d_total;


/* Second stage: d_total = Σ d_partial[0..nparts), one block. */
static __global__ void sum_partials_kernel(int nparts)
{
    double acc = 0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += d_partial[i];
    double t = gv_block_sum<GV_CUDA_THREADS>(acc);
    if (threadIdx.x == 0) d_total = t;
}

/* Runs the second stage and brings d_total to the host; NaN (with the error
 * recorded) when the stream failed. */
static double finish_sum(int nparts, const char *what)
{
    cudaStream_t s = gv_cuda_stream();
    sum_partials_kernel<<<1, GV_CUDA_THREADS, 0, s>>>(nparts);
    GV_CUDA_LAUNCHED(what);
    double total = NAN;
    cudaError_t err = cudaMemcpyFromSymbolAsync(&total, d_total, sizeof total, 0, cudaMemcpyDeviceToHost, s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(s);
    if (err != cudaSuccess) {
        gv_cuda_record(err, what);
        return NAN;
    }
    return total;
}

/* Partial blocks for n units of work: about 1024 units per block, at most
 * MAX_PARTIALS; a function of n alone so the summation order is fixed. */
static int partial_blocks(long long n)
{
    long long b = (n + 1023) / 1024;
    return (int)(b < 1 ? 1 : (b > MAX_PARTIALS ? MAX_PARTIALS : b));
}

/* ---- mean squared error ---------------------------------------------------------- */

/* d_partial[block] = Σ (a − b)² over the block's grid-stride share, the
 * difference taken in double as on the CPU. */
static __global__ void sq_diff_partial_kernel(const float *__restrict__ a, const float *__restrict__ b, long long n)
{
    double acc = 0;
    GRID_LOOP(i, n)
    {
        double d = (double)a[i] - (double)b[i];
        acc += d * d;
    }
    double t = gv_block_sum<GV_CUDA_THREADS>(acc);
    if (threadIdx.x == 0) d_partial[blockIdx.x] = t;
}

extern "C" double gv_cuda_sq_diff_sum(const float *a, const float *b, int64_t n)
{
    if (n <= 0) return 0.0;
    int nb = partial_blocks(n);
    sq_diff_partial_kernel<<<nb, GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(a, b, n);
    GV_CUDA_LAUNCHED("sq_diff_sum");
    return finish_sum(nb, "sq_diff_sum");
}

/* ga = scale·(a − b), gb = −ga; either may be NULL. */
static __global__ void mse_backward_kernel(const float *__restrict__ a, const float *__restrict__ b, long long n, float scale,
                                    float *__restrict__ ga, float *__restrict__ gb)
{
    GRID_LOOP(i, n)
    {
        float d = scale * (a[i] - b[i]);
        if (ga) ga[i] = d;
        if (gb) gb[i] = -d;
    }
}

extern "C" void gv_cuda_mse_backward(const float *a, const float *b, int64_t n, float scale, float *ga, float *gb)
{
    if (n <= 0 || (!ga && !gb)) return;
    mse_backward_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(a, b, n, scale, ga, gb);
    GV_CUDA_LAUNCHED("mse_backward");
}

/* ---- cross entropy ------------------------------------------------------------------ */


/* log Σ e^row over one row of c logits, by the warp, as the CPU:
 * m = max (float), then m + log Σ e^(row − m) in double. An infinite m
 * (all −inf, or a +inf present) is returned as is. Same value in every lane. */
static __device__ double warp_logsumexp(const float *row, long long c, int lane)
{
    float m = -INFINITY;
    for (long long j = lane; j < c; j += 32) m = row[j] > m ? row[j] : m;
    m = gv_warp_max(m);
    if (isinf(m)) return m;
    double s = 0;
    for (long long j = lane; j < c; j += 32) s += exp((double)row[j] - m);
    return m + log(gv_warp_sum(s));
}

static const int WARPS = GV_CUDA_THREADS / 32;

/* Warp w of the grid takes rows w, w + all warps, ...; each adds its rows'
 * logsumexp(x_i) − x_i[t_i] in double, and the block adds its warps'
 * totals in warp order into d_partial[block]. */
static __global__ void cross_entropy_partial_kernel(const float *__restrict__ x, const int64_t *__restrict__ t, long long n,
                                             long long c)
{
    __shared__ double s_warp[WARPS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    double acc = 0;
    for (long long i = (long long)blockIdx.x * WARPS + warp; i < n; i += (long long)gridDim.x * WARPS) {
        const float *row = x + i * c;
        acc += warp_logsumexp(row, c, lane) - (double)row[t[i]];
    }
    if (lane == 0) s_warp[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (int w = 0; w < WARPS; w++) total += s_warp[w];
        d_partial[blockIdx.x] = total;
    }
}

extern "C" double gv_cuda_cross_entropy_sum(const float *x, const int64_t *t, int64_t n, int64_t c)
{
    if (n <= 0) return 0.0;
    /* One row per warp, WARPS rows per block at a time; the block count is
     * a function of n alone, which fixes the summation order. */
    long long b = (n + WARPS - 1) / WARPS;
    int nb = (int)(b > MAX_PARTIALS ? MAX_PARTIALS : b);
    cross_entropy_partial_kernel<<<nb, GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, t, n, c);
    GV_CUDA_LAUNCHED("cross_entropy_sum");
    return finish_sum(nb, "cross_entropy_sum");
}

/* gx = scale·(softmax(x) − onehot(t)), one row per warp: every element is
 * scale·e^(x − lse) (exp in double, as the CPU), and the target element
 * then loses scale, rounded in the CPU's order. */
static __global__ void cross_entropy_backward_kernel(const float *__restrict__ x, const int64_t *__restrict__ t, long long n,
                                              long long c, float scale, float *__restrict__ gx)
{
    const int lane = threadIdx.x % 32;
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32; i < n;
         i += (long long)gridDim.x * blockDim.x / 32) {
        const float *row = x + i * c;
        float *grow = gx + i * c;
        double lse = warp_logsumexp(row, c, lane);
        long long target = t[i];
        for (long long j = lane; j < c; j += 32) {
            float v = scale * (float)exp((double)row[j] - lse);
            if (j == target) v -= scale;
            grow[j] = v;
        }
    }
}

extern "C" void gv_cuda_cross_entropy_backward(const float *x, const int64_t *t, int64_t n, int64_t c, float scale,
                                               float *gx)
{
    if (n <= 0 || c <= 0) return;
    cross_entropy_backward_kernel<<<gv_cuda_blocks(n * 32), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, t, n, c, scale,
                                                                                                   gx);
    GV_CUDA_LAUNCHED("cross_entropy_backward");
}

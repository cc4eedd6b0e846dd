/*
 * block_reduce.cuh — the sums the CUDA kernels share: over a warp with
 * shuffles, and over a block in a fixed tree. The order of the additions
 * never depends on timing, so a sum comes out the same bits on every run.
 */
#ifndef GROVE_KERNELS_CUDA_BLOCK_REDUCE_CUH
#define GROVE_KERNELS_CUDA_BLOCK_REDUCE_CUH

/* Σ over the 32 lanes of a warp (all active); every lane gets it. */
static __device__ __forceinline__ double gv_warp_sum(double v)
{
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

/* The maximum over a warp. A NaN never compares greater, so lane maxima
 * hold none and every lane ends with the same value. */
static __device__ __forceinline__ float gv_warp_max(float v)
{
    for (int m = 16; m > 0; m >>= 1) {
        float o = __shfl_xor_sync(0xffffffffu, v, m);
        v = o > v ? o : v;
    }
    return v;
}

/* Σ of one double per thread over a block of N threads (blockDim.x == N,
 * a power of two), in a fixed tree; every thread gets the total, and the
 * block may call it again at once (the last barrier frees the buffer). */
template <int N> static __device__ double gv_block_sum(double v)
{
    __shared__ double sh[N];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = N / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    double total = sh[0];
    __syncthreads();
    return total;
}

#endif

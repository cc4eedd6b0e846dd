/*
 * resample.cu — CUDA twins of kernels/cpu/resample.c: nearest upsampling
 * and pixel (un)shuffle of NHWC images. One thread per output element, so
 * every output has one writer; the upsampling backward sums its s×s block
 * in the CPU's order (block row by block row, left to right).
 */
#include "cuda.h"
#include "context.h"

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

static __global__ void upsample_nearest_kernel(long long h, long long w, long long c, long long s,
                                               const float *__restrict__ x, float *__restrict__ y, long long n)
{
    long long wo = w * s, ho = h * s;
    GRID_LOOP(e, n)
    {
        long long k = e % c, rest = e / c, j = rest % wo, row = rest / wo, i = row % ho, b = row / ho;
        y[e] = x[((b * h + i / s) * w + j / s) * c + k];
    }
}

extern "C" void gv_cuda_upsample_nearest(int64_t b, int64_t h, int64_t w, int64_t c, int64_t s, const float *x,
                                         float *y)
{
    long long n = (long long)b * h * s * w * s * c;
    if (n <= 0) return;
    upsample_nearest_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(h, w, c, s, x, y, n);
    GV_CUDA_LAUNCHED("upsample_nearest");
}

static __global__ void upsample_nearest_backward_kernel(long long w, long long c, long long s,
                                                        const float *__restrict__ g, float *__restrict__ gx,
                                                        long long n)
{
    long long wo = w * s;
    GRID_LOOP(e, n)
    {
        long long k = e % c, rest = e / c, j = rest % w, row = rest / w; /* row = b·h + i */
        const float *blk = g + (row * s * wo + j * s) * c + k;
        float acc = 0.f;
        for (long long di = 0; di < s; di++)
            for (long long dj = 0; dj < s; dj++) acc += blk[(di * wo + dj) * c];
        gx[e] = acc;
    }
}

extern "C" void gv_cuda_upsample_nearest_backward(int64_t b, int64_t h, int64_t w, int64_t c, int64_t s,
                                                  const float *g, float *gx)
{
    long long n = (long long)b * h * w * c;
    if (n <= 0) return;
    upsample_nearest_backward_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(w, c, s, g, gx,
                                                                                                  n);
    GV_CUDA_LAUNCHED("upsample_nearest_backward");
}

/* e indexes the spread layout (b, h·r, w·r, c/r²). */
static __device__ __forceinline__ long long packed_index(long long e, long long h, long long w, long long c,
                                                         long long r)
{
    long long cs = c / (r * r), wo = w * r, ho = h * r;
    long long k = e % cs, rest = e / cs, x = rest % wo, row = rest / wo, y = row % ho, b = row / ho;
    return ((b * h + y / r) * w + x / r) * c + k * r * r + (y % r) * r + x % r;
}

/* One thread per spread element, reading (shuffle) or writing (unshuffle)
 * its packed twin: both directions write each output once. */
static __global__ void pixel_shuffle_kernel(bool unshuffle, long long h, long long w, long long c, long long r,
                                            const float *__restrict__ src, float *__restrict__ dst, long long n)
{
    GRID_LOOP(e, n)
    {
        long long p = packed_index(e, h, w, c, r);
        if (unshuffle) dst[p] = src[e];
        else dst[e] = src[p];
    }
}

extern "C" void gv_cuda_pixel_shuffle(bool unshuffle, int64_t b, int64_t h, int64_t w, int64_t c, int64_t r,
                                      const float *src, float *dst)
{
    long long n = (long long)b * h * w * c;
    if (n <= 0) return;
    pixel_shuffle_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(unshuffle, h, w, c, r, src,
                                                                                     dst, n);
    GV_CUDA_LAUNCHED(unshuffle ? "pixel_unshuffle" : "pixel_shuffle");
}

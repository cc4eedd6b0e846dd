/*
 * random.cu — CUDA twins of gv_cpu_philox_uniform and gv_cpu_philox_normal
 * (kernels/cpu/philox.c): the same numbers as the CPU for the same seed and
 * offset.
 *
 * Element i uses Philox4x32-10 block (offset + i/4), lane i%4, with the
 * counter {low word, high word, 0, 0} and the key {low, high} of the seed,
 * as philox.c maps them; cuRAND's curand_Philox4x32_10 is the same round
 * function (its round takes the two products of c.x and c.z as philox.c
 * does), so the 32-bit draws are identical. One thread makes one block of
 * four values, so the launch shape changes nothing.
 *
 * The float steps follow the CPU as it is built (-march=native, where GCC
 * fuses a·b + c into an FMA): the uniform's lo + (hi − lo)·u and the
 * angle's scaling are written as explicit FMAs. The u32 → (0, 1] map is
 * exact either way (2^-32 and 2^-33 are powers of two), so a uniform on
 * [0, 1) is bit-identical regardless. For normals, log, sin and cos are
 * evaluated in double and rounded to float: that is the correctly rounded
 * float, which glibc's logf/sinf/cosf (computed in double internally)
 * return nearly always; CUDA's float logf/sinf/cosf are allowed 1–2 ulp.
 */
#include "cuda.h"
#include "context.h"

#include <curand_philox4x32_x.h>

constexpr int THREADS = GV_CUDA_THREADS;

/* The four draws of block c under the seed's key (philox.c's block_at). */
static __device__ __forceinline__ uint4 block_at(unsigned long long seed, unsigned long long c)
{
    uint4 ctr = make_uint4((unsigned int)c, (unsigned int)(c >> 32), 0u, 0u);
    uint2 key = make_uint2((unsigned int)seed, (unsigned int)(seed >> 32));
    return curand_Philox4x32_10(ctr, key);
}

/* As cuRAND and the CPU: a 32-bit draw to a float in (0, 1]. */
static __device__ __forceinline__ float to_unit(unsigned int x)
{
    return (float)x * 2.3283064e-10f + 1.1641532e-10f;
}

/* Writes the first `count` (1..4) of v to out[0..count). */
static __device__ __forceinline__ void store(float *out, int count, const float v[4])
{
    for (int k = 0; k < count; k++) out[k] = v[k];
}

static __global__ void philox_uniform_kernel(float *out, long long n, unsigned long long seed, unsigned long long offset,
                                      float lo, float hi)
{
    const long long blocks = (n + 3) / 4;
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < blocks;
         b += (long long)gridDim.x * blockDim.x) {
        uint4 r = block_at(seed, offset + (unsigned long long)b);
        const float span = hi - lo;
        float v[4] = {__fmaf_rn(span, to_unit(r.x), lo), __fmaf_rn(span, to_unit(r.y), lo),
                      __fmaf_rn(span, to_unit(r.z), lo), __fmaf_rn(span, to_unit(r.w), lo)};
        long long left = n - b * 4;
        store(out + b * 4, left < 4 ? (int)left : 4, v);
    }
}

extern "C" void gv_cuda_philox_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi)
{
    if (n <= 0) return;
    long long blocks = (n + 3) / 4;
    philox_uniform_kernel<<<gv_cuda_blocks(blocks), THREADS, 0, gv_cuda_stream()>>>(out, n, seed, offset, lo, hi);
    GV_CUDA_LAUNCHED("philox_uniform");
}

/* Box-Muller as cuRAND and the CPU: radius from the first draw of a pair,
 * angle from the second; z0 = sin(v)·s, z1 = cos(v)·s. */
static __device__ __forceinline__ void box_muller(unsigned int a, unsigned int b, float *z0, float *z1)
{
    float u = to_unit(a);
    float v = __fmaf_rn((float)b, 1.4629181e-09f, 7.3145904e-10f); /* 2π·2^-32, centred */
    float s = sqrtf(-2.0f * (float)log((double)u));
    *z0 = (float)sin((double)v) * s;
    *z1 = (float)cos((double)v) * s;
}

static __global__ void philox_normal_kernel(float *out, long long n, unsigned long long seed, unsigned long long offset,
                                     float mean, float std)
{
    const long long blocks = (n + 3) / 4;
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < blocks;
         b += (long long)gridDim.x * blockDim.x) {
        uint4 r = block_at(seed, offset + (unsigned long long)b);
        float z[4];
        box_muller(r.x, r.y, &z[0], &z[1]);
        box_muller(r.z, r.w, &z[2], &z[3]);
        float v[4] = {__fmaf_rn(std, z[0], mean), __fmaf_rn(std, z[1], mean), __fmaf_rn(std, z[2], mean),
                      __fmaf_rn(std, z[3], mean)};
        long long left = n - b * 4;
        store(out + b * 4, left < 4 ? (int)left : 4, v);
    }
}

extern "C" void gv_cuda_philox_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std)
{
    if (n <= 0) return;
    long long blocks = (n + 3) / 4;
    philox_normal_kernel<<<gv_cuda_blocks(blocks), THREADS, 0, gv_cuda_stream()>>>(out, n, seed, offset, mean, std);
    GV_CUDA_LAUNCHED("philox_normal");
}

/*
 * conv_bf16.cu — CUDA twin of kernels/cpu/conv_bf16.c: the general
 * convolution in bf16 mixed precision. The input and the weights are
 * rounded f32 → bf16 → f32 (__float2bfloat16: nearest, ties to even, the
 * CPU's rule bit for bit) into the scratch, then conv_gemm.cu's forward
 * runs on them: the products of bf16 values are exact in f32, so this is
 * the CPU reference's arithmetic, summed in cuBLAS's order.
 */
#include "cuda.h"
#include "context.h"

#include <cuda_bf16.h>

static __global__ void round_bf16_kernel(const float *x, float *y, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = __bfloat162float(__float2bfloat16(x[i]));
}

static void round_bf16(const float *x, float *y, long long n, const char *what)
{
    if (n <= 0) return;
    round_bf16_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, y, n);
    GV_CUDA_LAUNCHED(what);
}

static long long input_numel(const gv_conv_shape *s) { return s->b * s->h * s->w * s->cin; }

static long long weight_numel(const gv_conv_shape *s) { return s->cout * s->kh * s->kw * (s->cin / s->groups); }

extern "C" int64_t gv_cuda_conv_bf16_scratch(const gv_conv_shape *s)
{
    return (input_numel(s) + weight_numel(s) + gv_cuda_conv_scratch(s)) * (int64_t)sizeof(float);
}

extern "C" void gv_cuda_conv_forward_bf16(const gv_conv_shape *s, const float *x, const float *wk, const float *bias,
                                          float *y, void *scratch)
{
    long long nx = input_numel(s), nw = weight_numel(s);
    float *xr = (float *)scratch, *wr = xr + nx;
    round_bf16(x, xr, nx, "conv_bf16 round x");
    round_bf16(wk, wr, nw, "conv_bf16 round w");
    gv_cuda_conv_forward(s, xr, wr, bias, y, wr + nw);
}

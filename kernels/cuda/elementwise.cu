/*
 * elementwise.cu — CUDA twins of kernels/cpu/elementwise.c and of
 * gv_cpu_lincomb: unary maps with their derivatives, broadcasting binary
 * ops over strided inputs, scalar forms, pow and clamp.
 *
 * Every output element is computed by one thread from its own inputs, so
 * the results do not depend on the launch configuration. The formulas are
 * the CPU's, written the same way; where the CPU uses its vectorisable
 * exp (vecmath.h) the GPU uses expf, which agrees to about 1 ulp.
 */
#include "cuda.h"
#include "context.h"
#include "grove.h"

#include <string.h>

/* One thread per index, striding over the grid: n may exceed 2^31. */
#define GRID_LOOP(i, n)                                                                  \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

/* sqrt(2/pi) and the cubic coefficient of the tanh form of GELU (as the CPU). */
#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

/* σ(z) through e^−|z|, which never overflows: 1/(1+e) for z >= 0 and
 * e/(1+e) below. A NaN z gives NaN through e. */
static __device__ __forceinline__ float sigmoid_f(float z)
{
    float e = expf(-fabsf(z));
    float inv = 1.0f / (1.0f + e);
    return signbit(z) ? e * inv : inv;
}

/* tanh(z) = sign(z)·(1 − e)/(1 + e) with e = e^−2|z|, as the CPU's gv_tanh. */
static __device__ __forceinline__ float tanh_f(float z)
{
    float e = expf(-2.0f * fabsf(z));
    return copysignf((1.0f - e) / (1.0f + e), z);
}

static __device__ __forceinline__ float unary_map(int op, float v)
{
    switch (op) {
    case GROVE_NEG: return -v;
    case GROVE_EXP: return expf(v);
    case GROVE_LOG: return logf(v);
    case GROVE_SQRT: return sqrtf(v);
    /* 1/sqrt rather than rsqrtf: rsqrtf is an approximation (2 ulp). */
    case GROVE_RSQRT: return 1.0f / sqrtf(v);
    case GROVE_ABS: return fabsf(v);
    /* v > 0 ? v : 0 would turn NaN into 0; keep NaN visible instead. */
    case GROVE_RELU: return v < 0 ? 0.0f : v;
    case GROVE_SILU: return v * sigmoid_f(v);
    case GROVE_GELU_TANH: return 0.5f * v * (1.0f + tanh_f(GELU_K * (v + GELU_C * v * v * v)));
    case GROVE_SIGMOID: return sigmoid_f(v);
    case GROVE_TANH: return tanh_f(v);
    default: return v;
    }
}

static __device__ __forceinline__ float gelu_grad(float x)
{
    float t = tanh_f(GELU_K * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
}

/* op'(x), reading the forward output y where the derivative is a function
 * of it (exp, sqrt, rsqrt, sigmoid, tanh). */
static __device__ __forceinline__ float unary_deriv(int op, float x, float y)
{
    switch (op) {
    case GROVE_NEG: return -1.0f;
    case GROVE_EXP: return y;
    case GROVE_LOG: return 1.0f / x;
    case GROVE_SQRT: return 0.5f / y;
    case GROVE_RSQRT: return -0.5f * y * y * y;
    case GROVE_ABS: return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f);
    case GROVE_RELU: return x > 0 ? 1.0f : 0.0f;
    case GROVE_SILU: return sigmoid_f(x) * (1.0f + x * (1.0f - sigmoid_f(x)));
    case GROVE_GELU_TANH: return gelu_grad(x);
    case GROVE_SIGMOID: return y * (1.0f - y);
    case GROVE_TANH: return 1.0f - y * y;
    default: return 0.0f;
    }
}

/* The op is the same for every thread, so the switch does not diverge. */
static __global__ void unary_kernel(int op, const float *__restrict__ x, float *__restrict__ y, long long n)
{
    GRID_LOOP(i, n) y[i] = unary_map(op, x[i]);
}

/* gx = g · op'(x). y is only read by ops whose derivative needs it. */
static __global__ void unary_backward_kernel(int op, const float *__restrict__ x, const float *__restrict__ y,
                                      const float *__restrict__ g, float *__restrict__ gx, long long n)
{
    GRID_LOOP(i, n)
    {
        bool need_y = op == GROVE_EXP || op == GROVE_SQRT || op == GROVE_RSQRT || op == GROVE_SIGMOID ||
                      op == GROVE_TANH;
        float xv = need_y ? 0.0f : x[i], yv = need_y ? y[i] : 0.0f;
        gx[i] = g[i] * unary_deriv(op, xv, yv);
    }
}

extern "C" void gv_cuda_unary(int32_t op, const float *x, float *y, int64_t n)
{
    if (n <= 0) return;
    unary_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, x, y, n);
    GV_CUDA_LAUNCHED("unary");
}

extern "C" void gv_cuda_unary_backward(int32_t op, const float *x, const float *y, const float *g, float *gx,
                                       int64_t n)
{
    if (n <= 0) return;
    unary_backward_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, x, y, g, gx, n);
    GV_CUDA_LAUNCHED("unary_backward");
}

/* ---- binary ---------------------------------------------------------------- */

static __device__ __forceinline__ float binary_op(int op, float x, float z)
{
    switch (op) {
    case GROVE_ADD: return x + z;
    case GROVE_SUB: return x - z;
    case GROVE_MUL: return x * z;
    case GROVE_DIV: return x / z;
    default: return 0.0f;
    }
}

/* The shape and both inputs' strides, passed by value (they live on the
 * host). After coalescing, ndim is usually 1 or 2. */
struct binary_geom {
    int ndim;
    int64_t shape[GROVE_MAX_DIMS], sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
};

/* out[i] (contiguous) = a[offset_a(i)] op b[offset_b(i)], the offsets found
 * by peeling i into coordinates from the last dimension. */
static __global__ void binary_kernel(int op, binary_geom geo, const float *__restrict__ a, const float *__restrict__ b,
                              float *__restrict__ out, long long n)
{
    GRID_LOOP(i, n)
    {
        long long oa = 0, ob = 0, rem = i;
        for (int d = geo.ndim - 1; d >= 0; d--) {
            long long c = d == 0 ? rem : rem % geo.shape[d];
            if (d > 0) rem /= geo.shape[d];
            oa += c * geo.sa[d];
            ob += c * geo.sb[d];
        }
        out[i] = binary_op(op, a[oa], b[ob]);
    }
}

/* Both inputs contiguous over the output: no index arithmetic. */
static __global__ void binary_flat_kernel(int op, const float *__restrict__ a, const float *__restrict__ b,
                                   float *__restrict__ out, long long n)
{
    GRID_LOOP(i, n) out[i] = binary_op(op, a[i], b[i]);
}

extern "C" void gv_cuda_binary(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride,
                               const float *b, const int64_t *b_stride, float *out)
{
    binary_geom geo;
    memset(&geo, 0, sizeof geo);
    long long n = 1;
    for (int32_t i = 0; i < ndim; i++) {
        geo.shape[i] = shape[i];
        geo.sa[i] = a_stride[i];
        geo.sb[i] = b_stride[i];
        n *= shape[i];
    }
    if (n <= 0) return;
    /* the CPU's plan: size-1 dimensions dropped, runs merged */
    geo.ndim = gv_cpu_coalesce2(ndim, geo.shape, geo.sa, geo.sb);
    cudaStream_t s = gv_cuda_stream();
    if (geo.ndim == 1 && geo.sa[0] == 1 && geo.sb[0] == 1)
        binary_flat_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, s>>>(op, a, b, out, n);
    else
        binary_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, s>>>(op, geo, a, b, out, n);
    GV_CUDA_LAUNCHED("binary");
}

/* out = a op s, or s op a when reverse (the operand order matters for sub
 * and div, and keeps the CPU's rounding for the others). */
static __global__ void binary_scalar_kernel(int op, const float *__restrict__ a, float s, bool reverse,
                                     float *__restrict__ out, long long n)
{
    GRID_LOOP(i, n) out[i] = reverse ? binary_op(op, s, a[i]) : binary_op(op, a[i], s);
}

extern "C" void gv_cuda_binary_scalar(int32_t op, const float *a, float s, bool reverse, float *out, int64_t n)
{
    if (n <= 0) return;
    binary_scalar_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, a, s, reverse, out, n);
    GV_CUDA_LAUNCHED("binary_scalar");
}

/* ---- pow and clamp ------------------------------------------------------------ */

/* x² is a product (exact rounding, and the common case); powf otherwise,
 * which follows C99's special cases as the CPU's libm does. */
static __global__ void pow_scalar_kernel(const float *__restrict__ x, float p, float *__restrict__ y, long long n)
{
    GRID_LOOP(i, n) y[i] = p == 2.0f ? x[i] * x[i] : powf(x[i], p);
}

/* gx = g·p·x^(p−1), multiplied in the CPU's order. */
static __global__ void pow_scalar_backward_kernel(const float *__restrict__ x, float p, const float *__restrict__ g,
                                           float *__restrict__ gx, long long n)
{
    GRID_LOOP(i, n) gx[i] = g[i] * p * powf(x[i], p - 1.0f);
}

extern "C" void gv_cuda_pow_scalar(const float *x, float p, float *y, int64_t n)
{
    if (n <= 0) return;
    pow_scalar_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, p, y, n);
    GV_CUDA_LAUNCHED("pow_scalar");
}

extern "C" void gv_cuda_pow_scalar_backward(const float *x, float p, const float *g, float *gx, int64_t n)
{
    if (n <= 0) return;
    /* d/dx x^0 is 0 everywhere (powf(0, -1) would give inf * 0 = NaN). */
    if (p == 0.0f) {
        gv_cuda_record(cudaMemsetAsync(gx, 0, (size_t)n * sizeof *gx, gv_cuda_stream()), "pow_scalar_backward");
        return;
    }
    pow_scalar_backward_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, p, g, gx, n);
    GV_CUDA_LAUNCHED("pow_scalar_backward");
}

/* Written so that a NaN input fails both tests and passes through. */
static __global__ void clamp_kernel(const float *__restrict__ x, float lo, float hi, float *__restrict__ y, long long n)
{
    GRID_LOOP(i, n)
    {
        float v = x[i];
        y[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

/* The gradient passes where lo <= x <= hi, bounds included (as the CPU). */
static __global__ void clamp_backward_kernel(const float *__restrict__ x, float lo, float hi, const float *__restrict__ g,
                                      float *__restrict__ gx, long long n)
{
    GRID_LOOP(i, n) gx[i] = (x[i] >= lo && x[i] <= hi) ? g[i] : 0.0f;
}

extern "C" void gv_cuda_clamp(const float *x, float lo, float hi, float *y, int64_t n)
{
    if (n <= 0) return;
    clamp_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, lo, hi, y, n);
    GV_CUDA_LAUNCHED("clamp");
}

extern "C" void gv_cuda_clamp_backward(const float *x, float lo, float hi, const float *g, float *gx, int64_t n)
{
    if (n <= 0) return;
    clamp_backward_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(x, lo, hi, g, gx, n);
    GV_CUDA_LAUNCHED("clamp_backward");
}

/* ---- lincomb ---------------------------------------------------------------------- */

/* Up to four source pointers (device) and their coefficients, by value:
 * the caller's arrays are on the host. */
struct lincomb_args {
    int n;
    const float *src[4];
    float coeffs[4];
};

/* out[i] = Σ_k c_k·src_k[i], summed from k = 0 as the CPU does. */
static __global__ void lincomb_kernel(lincomb_args args, float *__restrict__ out, long long count)
{
    GRID_LOOP(i, count)
    {
        float acc = args.coeffs[0] * args.src[0][i];
        for (int k = 1; k < args.n; k++) acc += args.coeffs[k] * args.src[k][i];
        out[i] = acc;
    }
}

extern "C" void gv_cuda_lincomb(int32_t n, const float *const *src, const float *coeffs, float *out, int64_t count)
{
    if (count <= 0 || n < 1) return;
    lincomb_args args;
    memset(&args, 0, sizeof args);
    args.n = n < 4 ? n : 4;
    for (int k = 0; k < args.n; k++) {
        args.src[k] = src[k];
        args.coeffs[k] = coeffs[k];
    }
    lincomb_kernel<<<gv_cuda_blocks(count), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(args, out, count);
    GV_CUDA_LAUNCHED("lincomb");
}

/*
 * copy.cu — strided copies with dtype conversion, and fills: the twins of
 * gv_cpu_copy / gv_cpu_fill (kernels/cpu/copy.c). One thread per element in
 * a grid-stride loop; the shape and strides (host arrays) travel by value in
 * a small struct. Conversions go through double exactly as the CPU's
 * gv_load_as_double / gv_store_double do, so both devices give the same bits;
 * a copy within one dtype moves the element's bytes (an i64 above 2^53
 * survives it).
 */
#include "context.h"
#include "cuda.h"

#include <grove.h>

#include <stdint.h>
#include <string.h>

extern "C" void gv_store_double(void *data, int32_t dtype, int64_t i, double v); /* core/dtype.c */

namespace {

struct geometry {
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    int64_t a_stride[GROVE_MAX_DIMS];
    int64_t b_stride[GROVE_MAX_DIMS];
};

__device__ float bits_f32(uint32_t u) { return __uint_as_float(u); }

__device__ float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

__device__ uint16_t f32_to_f16(float f)
{
    uint32_t u = __float_as_uint(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) {
        float v = bits_f32(a) * 16777216.0f;
        return sign | (uint16_t)rintf(v); /* nearest even, as nearbyintf on the host */
    }
    uint32_t mant = a & 0x7fffffu;
    uint32_t exp = (a >> 23) - 112u;
    uint32_t half = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return sign | (uint16_t)half;
}

__device__ uint16_t f32_to_bf16(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ double load_as_double(const void *data, int32_t dtype, int64_t i)
{
    switch (dtype) {
    case GROVE_F32: return ((const float *)data)[i];
    case GROVE_F16: return f16_to_f32(((const uint16_t *)data)[i]);
    case GROVE_BF16: return __uint_as_float((uint32_t)((const uint16_t *)data)[i] << 16);
    case GROVE_U8: return ((const uint8_t *)data)[i];
    case GROVE_I8: return ((const int8_t *)data)[i];
    case GROVE_I32: return ((const int32_t *)data)[i];
    case GROVE_I64: return (double)((const int64_t *)data)[i];
    default: return 0;
    }
}

__device__ double clampd(double v, double lo, double hi) { return v != v ? 0 : v < lo ? lo : v > hi ? hi : v; }

__device__ void store_double(void *data, int32_t dtype, int64_t i, double v)
{
    switch (dtype) {
    case GROVE_F32: ((float *)data)[i] = (float)v; break;
    case GROVE_F16: ((uint16_t *)data)[i] = f32_to_f16((float)v); break;
    case GROVE_BF16: ((uint16_t *)data)[i] = f32_to_bf16((float)v); break;
    case GROVE_U8: ((uint8_t *)data)[i] = (uint8_t)clampd(v, 0, 255); break;
    case GROVE_I8: ((int8_t *)data)[i] = (int8_t)clampd(v, -128, 127); break;
    case GROVE_I32: ((int32_t *)data)[i] = (int32_t)clampd(v, -2147483648.0, 2147483647.0); break;
    case GROVE_I64: ((int64_t *)data)[i] = (int64_t)clampd(v, -9223372036854775808.0, 9223372036854774784.0); break;
    default: break;
    }
}

/* Element offsets of logical index i (row-major) under both stride sets. */
__device__ void offsets(const geometry &g, int64_t i, int64_t *a, int64_t *b)
{
    int64_t oa = 0, ob = 0;
    for (int32_t d = g.ndim - 1; d >= 0; d--) {
        int64_t k = i % g.shape[d];
        i /= g.shape[d];
        oa += k * g.a_stride[d];
        ob += k * g.b_stride[d];
    }
    *a = oa;
    *b = ob;
}

/* Raw element moves within one dtype, by element size. */
template <typename T>
__global__ void copy_same(geometry g, int64_t n, T *dst, const T *src)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t od, os;
        offsets(g, i, &od, &os);
        dst[od] = src[os];
    }
}

__global__ void copy_convert(geometry g, int64_t n, void *dst, int32_t dst_dtype, const void *src, int32_t src_dtype)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t od, os;
        offsets(g, i, &od, &os);
        store_double(dst, dst_dtype, od, load_as_double(src, src_dtype, os));
    }
}

template <typename T>
__global__ void fill_kernel(geometry g, int64_t n, T *data, T value)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t o, unused;
        offsets(g, i, &o, &unused);
        data[o] = value;
    }
}

geometry make_geometry(int32_t ndim, const int64_t *shape, const int64_t *a_stride, const int64_t *b_stride)
{
    geometry g;
    memset(&g, 0, sizeof g);
    g.ndim = ndim;
    for (int32_t d = 0; d < ndim; d++) {
        g.shape[d] = shape[d];
        g.a_stride[d] = a_stride[d];
        g.b_stride[d] = b_stride ? b_stride[d] : 0;
    }
    return g;
}

int64_t count(int32_t ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

template <typename T>
void launch_copy(const geometry &g, int64_t n, void *dst, const void *src)
{
    copy_same<T><<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(g, n, (T *)dst, (const T *)src);
}

template <typename T>
void launch_fill(const geometry &g, int64_t n, void *data, const unsigned char *elem)
{
    T v;
    memcpy(&v, elem, sizeof v);
    fill_kernel<T><<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(g, n, (T *)data, v);
}

} // namespace

extern "C" void gv_cuda_copy(int32_t ndim, const int64_t *shape, void *dst, const int64_t *dst_stride,
                             int32_t dst_dtype, const void *src, const int64_t *src_stride, int32_t src_dtype)
{
    int64_t n = count(ndim, shape);
    if (n == 0) return;
    geometry g = make_geometry(ndim, shape, dst_stride, src_stride);
    if (dst_dtype == src_dtype) {
        switch (grove_dtype_size(dst_dtype)) {
        case 1: launch_copy<uint8_t>(g, n, dst, src); break;
        case 2: launch_copy<uint16_t>(g, n, dst, src); break;
        case 4: launch_copy<uint32_t>(g, n, dst, src); break;
        default: launch_copy<uint64_t>(g, n, dst, src); break;
        }
    } else {
        copy_convert<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(g, n, dst, dst_dtype, src,
                                                                                   src_dtype);
    }
    GV_CUDA_LAUNCHED("copy");
}

extern "C" void gv_cuda_fill(int32_t ndim, const int64_t *shape, void *data, const int64_t *stride, int32_t dtype,
                             double value)
{
    int64_t n = count(ndim, shape);
    if (n == 0) return;
    /* The value converted once on the host, exactly as the CPU fill does. */
    unsigned char elem[8] = {0};
    gv_store_double(elem, dtype, 0, value);
    geometry g = make_geometry(ndim, shape, stride, NULL);
    switch (grove_dtype_size(dtype)) {
    case 1: launch_fill<uint8_t>(g, n, data, elem); break;
    case 2: launch_fill<uint16_t>(g, n, data, elem); break;
    case 4: launch_fill<uint32_t>(g, n, data, elem); break;
    default: launch_fill<uint64_t>(g, n, data, elem); break;
    }
    GV_CUDA_LAUNCHED("fill");
}

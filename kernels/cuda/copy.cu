/*
 * copy.cu — strided copies with dtype conversion, and fills: the twins of
 * gv_cpu_copy / gv_cpu_fill (kernels/cpu/copy.c). One thread per element in
 * a grid-stride loop; the shape and strides (host arrays) travel by value in
 * a small struct. Conversions are the CPU's own (kernels/cpu/convert.h,
 * compiled for the device too), so both devices give the same bits;
 * a copy within one dtype moves the element's bytes (an i64 above 2^53
 * survives it).
 */
#include "context.h"
#include "cuda.h"
#include "../cpu/convert.h"

#include <grove.h>

#include <stdint.h>
#include <string.h>


namespace {

struct geometry {
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    int64_t a_stride[GROVE_MAX_DIMS];
    int64_t b_stride[GROVE_MAX_DIMS];
};

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
        gv_conv_store(dst, dst_dtype, od, gv_conv_load(src, src_dtype, os));
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
    gv_conv_store(elem, dtype, 0, value);
    geometry g = make_geometry(ndim, shape, stride, NULL);
    switch (grove_dtype_size(dtype)) {
    case 1: launch_fill<uint8_t>(g, n, data, elem); break;
    case 2: launch_fill<uint16_t>(g, n, data, elem); break;
    case 4: launch_fill<uint32_t>(g, n, data, elem); break;
    default: launch_fill<uint64_t>(g, n, data, elem); break;
    }
    GV_CUDA_LAUNCHED("fill");
}

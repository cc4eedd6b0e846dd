/*
 * shape.cu — CUDA twins of kernels/cpu/shape.c: concatenation and constant
 * padding. Both move bytes, so they serve every dtype: each thread copies
 * one unit (an element, or for cat the widest power-of-two word that every
 * size, offset and pointer is aligned to). Every output byte has exactly
 * one writer.
 */
#include "cuda.h"
#include "context.h"
#include "grove.h"

#include <stdint.h>
#include <string.h>

#define GRID_LOOP(i, n)                                                                  \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

/* ---- cat ------------------------------------------------------------------------ */

/* Row r of src (per units of T) lands at unit r·dst_row + dst_off of dst,
 * all counted in units of T. */
template <typename T>
static __global__ void cat_part_kernel(long long outer, long long per, long long dst_row, long long dst_off,
                                const T *__restrict__ src, T *__restrict__ dst)
{
    GRID_LOOP(i, outer * per)
    {
        long long r = i / per, c = i % per;
        dst[r * dst_row + dst_off + c] = src[i];
    }
}

template <typename T>
static void launch_cat(long long outer, long long src_row, long long dst_row, long long dst_off, const void *src,
                       void *dst)
{
    long long u = (long long)sizeof(T), per = src_row / u;
    cat_part_kernel<T><<<gv_cuda_blocks(outer * per), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(
        outer, per, dst_row / u, dst_off / u, (const T *)src, (T *)dst);
    GV_CUDA_LAUNCHED("cat");
}

extern "C" void gv_cuda_cat_part(int64_t outer, int64_t src_row, int64_t dst_row, int64_t dst_off, const void *src,
                                 void *dst)
{
    if (outer <= 0 || src_row <= 0) return;
    /* The widest word that divides every byte count and both addresses. */
    uint64_t bits = (uint64_t)src_row | (uint64_t)dst_row | (uint64_t)dst_off | (uint64_t)(uintptr_t)src |
                    (uint64_t)(uintptr_t)dst;
    if (bits % 16 == 0) launch_cat<uint4>(outer, src_row, dst_row, dst_off, src, dst);
    else if (bits % 8 == 0) launch_cat<uint2>(outer, src_row, dst_row, dst_off, src, dst);
    else if (bits % 4 == 0) launch_cat<uint32_t>(outer, src_row, dst_row, dst_off, src, dst);
    else if (bits % 2 == 0) launch_cat<uint16_t>(outer, src_row, dst_row, dst_off, src, dst);
    else launch_cat<uint8_t>(outer, src_row, dst_row, dst_off, src, dst);
}

/* ---- pad ------------------------------------------------------------------------- */

struct pad_geom {
    int ndim;
    long long in_shape[GROVE_MAX_DIMS], out_shape[GROVE_MAX_DIMS], before[GROVE_MAX_DIMS];
};

/* The contiguous src index of output element i, or −1 when i lies in the
 * padding: coordinates are peeled from the last dimension and shifted by
 * `before`. */
static __device__ __forceinline__ long long pad_source(const pad_geom &geo, long long i)
{
    long long rem = i, src = 0, scale = 1;
    for (int d = geo.ndim - 1; d >= 0; d--) {
        long long c = rem % geo.out_shape[d] - geo.before[d];
        rem /= geo.out_shape[d];
        if (c < 0 || c >= geo.in_shape[d]) return -1;
        src += c * scale;
        scale *= geo.in_shape[d];
    }
    return src;
}

/* One thread per output element of T-sized elements; fill comes by value. */
template <typename T>
static __global__ void pad_kernel(pad_geom geo, T fill, const T *__restrict__ src, T *__restrict__ dst, long long n)
{
    GRID_LOOP(i, n)
    {
        long long s = pad_source(geo, i);
        dst[i] = s < 0 ? fill : src[s];
    }
}

/* Any other element size, byte by byte (no dtype has one today). */
struct pad_fill_bytes {
    unsigned char b[16];
};

static __global__ void pad_bytes_kernel(pad_geom geo, long long esz, pad_fill_bytes fill, const unsigned char *__restrict__ src,
                                 unsigned char *__restrict__ dst, long long n)
{
    GRID_LOOP(i, n)
    {
        long long s = pad_source(geo, i);
        for (long long k = 0; k < esz; k++) dst[i * esz + k] = s < 0 ? fill.b[k] : src[s * esz + k];
    }
}

template <typename T>
static void launch_pad(const pad_geom &geo, const void *fill, const void *src, void *dst, long long n)
{
    T f;
    memcpy(&f, fill, sizeof f);
    pad_kernel<T><<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(geo, f, (const T *)src, (T *)dst, n);
    GV_CUDA_LAUNCHED("pad");
}

extern "C" void gv_cuda_pad(int32_t ndim, const int64_t *in_shape, const int64_t *out_shape, const int64_t *before,
                            int64_t esz, const void *fill, const void *src, void *dst)
{
    if (ndim == 0) {
        gv_cuda_record(cudaMemcpyAsync(dst, src, (size_t)esz, cudaMemcpyDeviceToDevice, gv_cuda_stream()), "pad");
        return;
    }
    pad_geom geo;
    memset(&geo, 0, sizeof geo);
    geo.ndim = ndim;
    long long n = 1;
    for (int32_t d = 0; d < ndim; d++) {
        geo.in_shape[d] = in_shape[d];
        geo.out_shape[d] = out_shape[d];
        geo.before[d] = before[d];
        n *= out_shape[d];
    }
    if (n <= 0) return;
    switch (esz) {
    case 1: launch_pad<uint8_t>(geo, fill, src, dst, n); break;
    case 2: launch_pad<uint16_t>(geo, fill, src, dst, n); break;
    case 4: launch_pad<uint32_t>(geo, fill, src, dst, n); break;
    case 8: launch_pad<uint64_t>(geo, fill, src, dst, n); break;
    default: {
        if (esz <= 0 || esz > 16) return;
        pad_fill_bytes f;
        memset(&f, 0, sizeof f);
        memcpy(f.b, fill, (size_t)esz);
        pad_bytes_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(
            geo, esz, f, (const unsigned char *)src, (unsigned char *)dst, n);
        GV_CUDA_LAUNCHED("pad");
    }
    }
}

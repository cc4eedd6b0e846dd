/*
 * compare.cu — comparisons and logic into u8 masks, and the any / all
 * reductions of masks: the CUDA twins of kernels/cpu/compare.c (contracts
 * in kernels/kernels.def). One thread per output; the results are exact
 * (0 or 1), so they match the CPU's bit for bit.
 */
#include "cuda.h"
#include "context.h"
#include "grove.h"

#include <string.h>

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

/* The shape and both inputs' strides, passed by value (host metadata). */
struct mask_geom {
    int ndim;
    int64_t shape[GROVE_MAX_DIMS], sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
};

static __device__ uint8_t compare_op(int op, float x, float z)
{
    switch (op) {
    case GROVE_EQ: return x == z;
    case GROVE_NE: return x != z;
    case GROVE_LT: return x < z;
    case GROVE_LE: return x <= z;
    case GROVE_GT: return x > z;
    case GROVE_GE: return x >= z;
    default: return 0;
    }
}

static __device__ uint8_t logical_op(int op, uint8_t x, uint8_t z)
{
    switch (op) {
    case GROVE_AND: return x != 0 && z != 0;
    case GROVE_OR: return x != 0 || z != 0;
    case GROVE_NOT: return x == 0;
    default: return 0;
    }
}

/* The input offsets of output i, peeled into coordinates from the last dimension. */
static __device__ void offsets(const mask_geom &geo, long long i, long long *oa, long long *ob)
{
    long long rem = i;
    *oa = 0;
    *ob = 0;
    for (int d = geo.ndim - 1; d >= 0; d--) {
        long long c = d == 0 ? rem : rem % geo.shape[d];
        if (d > 0) rem /= geo.shape[d];
        *oa += c * geo.sa[d];
        *ob += c * geo.sb[d];
    }
}

static __global__ void compare_kernel(int op, mask_geom geo, const float *__restrict__ a, const float *__restrict__ b,
                                      uint8_t *__restrict__ out, long long n)
{
    GRID_LOOP(i, n)
    {
        long long oa, ob;
        offsets(geo, i, &oa, &ob);
        out[i] = compare_op(op, a[oa], b[ob]);
    }
}

static __global__ void logical_kernel(int op, mask_geom geo, const uint8_t *__restrict__ a,
                                      const uint8_t *__restrict__ b, uint8_t *__restrict__ out, long long n)
{
    GRID_LOOP(i, n)
    {
        long long oa, ob;
        offsets(geo, i, &oa, &ob);
        out[i] = logical_op(op, a[oa], b[ob]);
    }
}

/* The geometry with the CPU's plan (size-1 dimensions dropped, runs
 * merged); returns the number of outputs. */
static long long plan(int32_t ndim, const int64_t *shape, const int64_t *a_stride, const int64_t *b_stride,
                      mask_geom *geo)
{
    memset(geo, 0, sizeof *geo);
    long long n = 1;
    for (int32_t i = 0; i < ndim; i++) {
        geo->shape[i] = shape[i];
        geo->sa[i] = a_stride[i];
        geo->sb[i] = b_stride[i];
        n *= shape[i];
    }
    if (n > 0) geo->ndim = gv_cpu_coalesce2(ndim, geo->shape, geo->sa, geo->sb);
    return n;
}

extern "C" void gv_cuda_compare(int32_t op, int32_t ndim, const int64_t *shape, const float *a,
                                const int64_t *a_stride, const float *b, const int64_t *b_stride, uint8_t *out)
{
    mask_geom geo;
    long long n = plan(ndim, shape, a_stride, b_stride, &geo);
    if (n <= 0) return;
    compare_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, geo, a, b, out, n);
    GV_CUDA_LAUNCHED("compare");
}

extern "C" void gv_cuda_logical(int32_t op, int32_t ndim, const int64_t *shape, const uint8_t *a,
                                const int64_t *a_stride, const uint8_t *b, const int64_t *b_stride, uint8_t *out)
{
    mask_geom geo;
    long long n = plan(ndim, shape, a_stride, b_stride, &geo);
    if (n <= 0) return;
    logical_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, geo, a, b, out, n);
    GV_CUDA_LAUNCHED("logical");
}

/* One thread per output walks its reduced positions; masks are small
 * beside the activations they select, so no tree is needed. */
static __global__ void reduce_mask_kernel(bool all, gv_reduce_plan p, const uint8_t *__restrict__ x,
                                          uint8_t *__restrict__ out, long long nout, long long nred)
{
    GRID_LOOP(o, nout)
    {
        long long base = 0, rem = o;
        for (int d = p.nkeep - 1; d >= 0; d--) {
            base += rem % p.keep_shape[d] * p.keep_stride[d];
            rem /= p.keep_shape[d];
        }
        bool found = false;
        for (long long j = 0; j < nred && !found; j++) {
            long long off = base;
            rem = j;
            for (int d = p.nred - 1; d >= 0; d--) {
                off += rem % p.red_shape[d] * p.red_stride[d];
                rem /= p.red_shape[d];
            }
            found = all ? x[off] == 0 : x[off] != 0;
        }
        out[o] = (uint8_t)(all ? !found : found);
    }
}

extern "C" void gv_cuda_reduce_mask(bool all, const gv_reduce_plan *p, const uint8_t *x, uint8_t *out)
{
    long long nout = 1, nred = 1;
    for (int32_t i = 0; i < p->nkeep; i++) nout *= p->keep_shape[i];
    for (int32_t i = 0; i < p->nred; i++) nred *= p->red_shape[i];
    if (nout <= 0) return;
    reduce_mask_kernel<<<gv_cuda_blocks(nout), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(all, *p, x, out, nout, nred);
    GV_CUDA_LAUNCHED("reduce_mask");
}

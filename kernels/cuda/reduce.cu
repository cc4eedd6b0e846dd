/*
 * reduce.cu — CUDA twins of kernels/cpu/reduce.c: sum, mean, max and min
 * over any set of dimensions, the positions of the extremes, and the
 * scatter that is their gradient.
 *
 * Each output element belongs to one group of G threads (G = 1, 32 or 256,
 * chosen from the sizes): lane l of the group walks reduced positions
 * l, l + G, ... and the group then combines its lanes in a fixed tree (a
 * long reduction into few outputs is first cut into consecutive parts, one
 * group each, whose partials a second kernel adds in order). The order
 * depends only on G and the sizes, so results are deterministic. Sums
 * are accumulated in double as on the CPU (the order differs, which moves
 * the float result by at most an ulp of the double sum's rounding).
 */
#include "cuda.h"
#include "context.h"
#include "grove.h"

#include <math.h>

/* Row-major position pos over the first n dimensions → memory offset. */
static __host__ __device__ __forceinline__ long long offset_of(int n, const int64_t *shape, const int64_t *stride,
                                                       long long pos)
{
    if (n == 1) return pos * stride[0]; /* merged contiguous dimensions: no division (pos < shape[0]) */
    long long off = 0;
    for (int d = n - 1; d >= 0; d--) {
        off += (pos % shape[d]) * stride[d];
        pos /= shape[d];
    }
    return off;
}

/* A candidate extreme: its value and row-major position over the reduced
 * dimensions; i < 0 marks a lane that saw no element. */
struct arg_val {
    float v;
    long long i;
};

/* The better of two candidates, such that combining in any order gives the
 * CPU's answer: the first NaN if there is any, else the first extreme value
 * (ties go to the smaller position). */
static __device__ __forceinline__ arg_val arg_pick(int op, arg_val a, arg_val b)
{
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    bool an = a.v != a.v, bn = b.v != b.v, take_b;
    if (an || bn) take_b = an && bn ? b.i < a.i : bn;
    else if (a.v == b.v) take_b = b.i < a.i;
    else take_b = op == GROVE_MAX ? b.v > a.v : b.v < a.v;
    return take_b ? b : a;
}

/* A long reduction into few outputs is cut into `parts` consecutive pieces
 * per output, each reduced by its own group into these partials, which a
 * second kernel combines in part order (so the order still depends on the
 * sizes alone). One stream orders every launch, so one buffer serves all. */
constexpr long long MAX_PARTS = 4096;
static __device__ double p_sum[MAX_PARTS];
static __device__ float p_val[MAX_PARTS];
static __device__ long long p_idx[MAX_PARTS];

/* Groups of G threads per unit, GV_CUDA_THREADS / G units per block; a
 * unit is part u % parts of output u / parts. With one part the group
 * writes the output, else the unit's partial. The loop over unit bases
 * runs the same number of times in every thread of a block, so the
 * __syncthreads inside it are reached by all. */
template <int G>
static __global__ void reduce_kernel(int op, gv_reduce_plan q, long long nout, long long total, long long parts,
                                     const float *__restrict__ x, float *__restrict__ out, int64_t *__restrict__ idx)
{
    constexpr int PER_BLOCK = GV_CUDA_THREADS / G;
    __shared__ double s_sum[G > 1 ? GV_CUDA_THREADS : 1];
    __shared__ float s_val[G > 1 ? GV_CUDA_THREADS : 1];
    __shared__ long long s_idx[G > 1 ? GV_CUDA_THREADS : 1];
    const int lane = threadIdx.x % G, group = threadIdx.x / G;
    const bool is_sum = op == GROVE_SUM || op == GROVE_MEAN;
    const long long units = nout * parts, chunk = (total + parts - 1) / parts;

    for (long long base = (long long)blockIdx.x * PER_BLOCK; base < units; base += (long long)gridDim.x * PER_BLOCK) {
        long long u = base + group, o = u / parts;
        bool live = u < units;
        const float *xo = x + (live ? offset_of(q.nkeep, q.keep_shape, q.keep_stride, o) : 0);
        long long begin = live ? u % parts * chunk : 0;
        long long end = live ? (begin + chunk < total ? begin + chunk : total) : 0;
        if (is_sum) {
            double acc = 0;
            for (long long r = begin + lane; r < end; r += G) acc += xo[offset_of(q.nred, q.red_shape, q.red_stride, r)];
            if (G > 1) {
                /* Tree within the group's slice of shared memory. */
                s_sum[threadIdx.x] = acc;
                __syncthreads();
                for (int s = G / 2; s > 0; s >>= 1) {
                    if (lane < s) s_sum[threadIdx.x] += s_sum[threadIdx.x + s];
                    __syncthreads();
                }
                acc = s_sum[threadIdx.x];
                __syncthreads(); /* the next round overwrites s_sum */
            }
            if (live && lane == 0) {
                if (parts > 1) p_sum[u] = acc;
                else out[o] = (float)(op == GROVE_MEAN ? acc / (double)total : acc);
            }
        } else {
            arg_val best = {0.0f, -1};
            for (long long r = begin + lane; r < end; r += G) {
                arg_val c = {xo[offset_of(q.nred, q.red_shape, q.red_stride, r)], r};
                best = arg_pick(op, best, c);
            }
            if (G > 1) {
                s_val[threadIdx.x] = best.v;
                s_idx[threadIdx.x] = best.i;
                __syncthreads();
                for (int s = G / 2; s > 0; s >>= 1) {
                    if (lane < s) {
                        arg_val a = {s_val[threadIdx.x], s_idx[threadIdx.x]};
                        arg_val b = {s_val[threadIdx.x + s], s_idx[threadIdx.x + s]};
                        a = arg_pick(op, a, b);
                        s_val[threadIdx.x] = a.v;
                        s_idx[threadIdx.x] = a.i;
                    }
                    __syncthreads();
                }
                best.v = s_val[threadIdx.x];
                best.i = s_idx[threadIdx.x];
                __syncthreads();
            }
            if (live && lane == 0) {
                if (parts > 1) {
                    p_val[u] = best.v;
                    p_idx[u] = best.i;
                } else {
                    out[o] = best.v;
                    if (idx) idx[o] = best.i;
                }
            }
        }
    }
}

/* Output o from its parts' partials, in part order. */
static __global__ void reduce_combine_kernel(int op, long long nout, long long total, long long parts,
                                             float *__restrict__ out, int64_t *__restrict__ idx)
{
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (long long)gridDim.x * blockDim.x) {
        if (op == GROVE_SUM || op == GROVE_MEAN) {
            double acc = 0;
            for (long long k = 0; k < parts; k++) acc += p_sum[o * parts + k];
            out[o] = (float)(op == GROVE_MEAN ? acc / (double)total : acc);
        } else {
            arg_val best = {0.0f, -1};
            for (long long k = 0; k < parts; k++) best = arg_pick(op, best, arg_val{p_val[o * parts + k], p_idx[o * parts + k]});
            out[o] = best.v;
            if (idx) idx[o] = best.i;
        }
    }
}

/* An empty reduced set: 0 for sum, NaN for mean (max/min never get here:
 * the front-end refuses them). */
static __global__ void reduce_empty_kernel(int op, float *__restrict__ out, long long nout)
{
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (long long)gridDim.x * blockDim.x)
        out[o] = op == GROVE_MEAN ? __int_as_float(0x7fc00000) : 0.0f;
}

/* Dimensions are merged by the CPU's gv_cpu_merge_dims: row-major positions
 * over the kept and over the reduced dimensions are unchanged by it, so
 * output order and arg positions are too. */
static long long prod(int32_t n, const int64_t *shape)
{
    long long r = 1;
    for (int32_t i = 0; i < n; i++) r *= shape[i];
    return r;
}

template <int G>
static void launch_reduce(int32_t op, const gv_reduce_plan &q, long long nout, long long total, long long parts,
                          const float *x, float *out, int64_t *idx)
{
    reduce_kernel<G><<<gv_cuda_blocks(nout * parts * G), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, q, nout, total,
                                                                                                  parts, x, out, idx);
    GV_CUDA_LAUNCHED("reduce");
    if (parts > 1) {
        reduce_combine_kernel<<<gv_cuda_blocks(nout), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, nout, total, parts,
                                                                                             out, idx);
        GV_CUDA_LAUNCHED("reduce");
    }
}

static void reduce_any(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx)
{
    long long nout = prod(p->nkeep, p->keep_shape), total = prod(p->nred, p->red_shape);
    if (nout == 0) return;
    if (total == 0) {
        reduce_empty_kernel<<<gv_cuda_blocks(nout), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(op, out, nout);
        GV_CUDA_LAUNCHED("reduce");
        return;
    }
    gv_reduce_plan q = *p;
    q.nkeep = gv_cpu_merge_dims(q.nkeep, q.keep_shape, q.keep_stride);
    q.nred = gv_cpu_merge_dims(q.nred, q.red_shape, q.red_stride);
    /* Columns: the kept innermost dimension steps faster through memory than
     * any reduced one, so neighbouring threads owning neighbouring outputs
     * read neighbouring floats. */
    long long min_red = q.nred > 0 ? q.red_stride[0] : 0;
    for (int32_t i = 1; i < q.nred; i++) min_red = q.red_stride[i] < min_red ? q.red_stride[i] : min_red;
    bool columns = q.nkeep > 0 && q.nred > 0 && q.keep_stride[q.nkeep - 1] < min_red;
    /* One thread per output when rows are short or there are enough
     * coalesced columns to fill the GPU; a block per output for the few long
     * reductions, each cut into pieces of about SPLIT elements when there
     * are fewer outputs than it takes to fill the GPU (a full sum); a warp
     * otherwise. */
    const long long SPLIT = 32768;
    if (total < 32 || (columns && nout >= 1024)) launch_reduce<1>(op, q, nout, total, 1, x, out, idx);
    else if (total >= 8192 && nout < 2048) {
        long long parts = nout < 256 ? total / SPLIT : 1;
        if (parts > MAX_PARTS / nout) parts = MAX_PARTS / nout;
        launch_reduce<256>(op, q, nout, total, parts > 1 ? parts : 1, x, out, idx);
    } else launch_reduce<32>(op, q, nout, total, 1, x, out, idx);
}

extern "C" void gv_cuda_reduce(int32_t op, const gv_reduce_plan *p, const float *x, float *out)
{
    reduce_any(op, p, x, out, NULL);
}

extern "C" void gv_cuda_reduce_arg(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx)
{
    reduce_any(op, p, x, out, idx);
}

/* gx[position idx[o] of output o] = g[o]; gx was zeroed by the caller. Each
 * output writes one distinct element, so there are no races. */
static __global__ void arg_scatter_kernel(gv_reduce_plan p, long long nout, const int64_t *__restrict__ idx,
                                   const float *__restrict__ g, float *__restrict__ gx)
{
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (long long)gridDim.x * blockDim.x) {
        long long off = offset_of(p.nkeep, p.keep_shape, p.keep_stride, o) +
                        offset_of(p.nred, p.red_shape, p.red_stride, idx[o]);
        gx[off] = g[o];
    }
}

extern "C" void gv_cuda_reduce_arg_scatter(const gv_reduce_plan *p, const int64_t *idx, const float *g, float *gx)
{
    long long nout = prod(p->nkeep, p->keep_shape);
    if (nout <= 0 || prod(p->nred, p->red_shape) == 0) return;
    /* The caller's plan as it is: positions are row-major over its reduced
     * dimensions, which merging would keep, but no merge is needed here. */
    arg_scatter_kernel<<<gv_cuda_blocks(nout), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(*p, nout, idx, g, gx);
    GV_CUDA_LAUNCHED("reduce_arg_scatter");
}

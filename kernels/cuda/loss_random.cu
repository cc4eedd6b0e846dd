/*
 * loss_random.cu — CUDA twins of the dropout and cosine-similarity kernels
 * of kernels/cpu/loss.c.
 *
 * Dropout: the front-end fills `out` with the generator's uniforms
 * (gv_cuda_philox_uniform, the CPU's numbers), so the mask is the CPU's
 * mask: element i is kept when its uniform exceeds p, and keep[i] records
 * it as 0/1 bytes for the backward.
 *
 * Cosine similarity: one block per output row (the row of a and b along
 * dim, strided, broadcast by zero strides), its three sums Σab, Σa², Σb²
 * in double as on the CPU, each thread summing a fixed share and the block
 * adding the shares in a fixed tree; the result depends only on the
 * shapes, and differs from the CPU's sequential sum in the last bits of a
 * double only.
 */
#include "cuda.h"
#include "context.h"
#include "block_reduce.cuh"
#include "grove.h"

/* One thread per index, striding over the grid: n may exceed 2^31. */
#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

constexpr int THREADS = GV_CUDA_THREADS;
/* Most blocks of a launch with one block per row (each block loops). */
constexpr long long MAX_GRID = 65535;

/* ---- dropout ------------------------------------------------------------------ */

static __global__ void dropout_apply_kernel(const float *x, float *out, uint8_t *keep, long long n, float p, float scale)
{
    GRID_LOOP(i, n) {
        int k = out[i] > p;
        out[i] = k ? x[i] * scale : 0.0f;
        if (keep) keep[i] = (uint8_t)k;
    }
}

extern "C" void gv_cuda_dropout_apply(const float *x, float *out, uint8_t *keep, int64_t n, float p, float scale)
{
    if (n <= 0) return;
    dropout_apply_kernel<<<gv_cuda_blocks(n), THREADS, 0, gv_cuda_stream()>>>(x, out, keep, n, p, scale);
    GV_CUDA_LAUNCHED("dropout");
}

static __global__ void dropout_backward_kernel(const float *g, const uint8_t *keep, long long n, float scale, float *gx)
{
    GRID_LOOP(i, n) gx[i] = keep[i] ? g[i] * scale : 0.0f;
}

extern "C" void gv_cuda_dropout_backward(const float *g, const uint8_t *keep, int64_t n, float scale, float *gx)
{
    if (n <= 0) return;
    dropout_backward_kernel<<<gv_cuda_blocks(n), THREADS, 0, gv_cuda_stream()>>>(g, keep, n, scale, gx);
    GV_CUDA_LAUNCHED("dropout backward");
}

/* ---- cosine similarity --------------------------------------------------------- */

/* The broadcast geometry, passed by value: the host arrays of the call are
 * not readable from the device. */
struct CosGeom {
    long long shape[GROVE_MAX_DIMS], sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
    int ndim, dim;
    long long len;     /* shape[dim] */
    long long rows;    /* product of the other dimensions */
    long long cstride; /* stride of dim in the contiguous full shape */
};

static CosGeom make_geom(int32_t ndim, const int64_t *shape, int32_t dim, const int64_t *sa, const int64_t *sb)
{
    CosGeom G = {};
    G.ndim = ndim;
    G.dim = dim;
    G.rows = 1;
    G.cstride = 1;
    for (int32_t d = 0; d < ndim; d++) {
        G.shape[d] = shape[d];
        G.sa[d] = sa[d];
        G.sb[d] = sb[d];
        if (d != dim) G.rows *= shape[d];
        if (d > dim) G.cstride *= shape[d];
    }
    G.len = shape[dim];
    return G;
}

/* Offsets of the o-th output row (all dimensions but dim, row-major) in a,
 * b and the contiguous full shape (the CPU's row_offsets). */
static __device__ void row_offsets(const CosGeom &G, long long o, long long *oa, long long *ob, long long *oc)
{
    long long a = 0, b = 0, c = 0, cs = 1;
    for (int d = G.ndim - 1; d >= 0; d--) {
        if (d != G.dim) {
            long long i = o % G.shape[d];
            o /= G.shape[d];
            a += i * G.sa[d];
            b += i * G.sb[d];
            c += i * cs;
        }
        cs *= G.shape[d];
    }
    *oa = a;
    *ob = b;
    *oc = c;
}


/* Σab, Σa², Σb² along one row: by the whole block (BLOCK_ROW), or by one
 * thread in the CPU's order. */
template <bool BLOCK_ROW>
static __device__ void row_sums(const float *a, long long as, const float *b, long long bs, long long len, double *ab,
                         double *aa, double *bb)
{
    const long long k0 = BLOCK_ROW ? threadIdx.x : 0, dk = BLOCK_ROW ? blockDim.x : 1;
    double sab = 0, saa = 0, sbb = 0;
    for (long long k = k0; k < len; k += dk) {
        double x = a[k * as], y = b[k * bs];
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if (BLOCK_ROW) {
        sab = gv_block_sum<THREADS>(sab);
        saa = gv_block_sum<THREADS>(saa);
        sbb = gv_block_sum<THREADS>(sbb);
    }
    *ab = sab;
    *aa = saa;
    *bb = sbb;
}

/* Rows up to this long go one per thread: a block per row would leave most
 * of its threads idle. */
constexpr long long SHORT_ROW = 64;

/* The first row of this block (BLOCK_ROW) or thread, and the step to its next one. */
template <bool BLOCK_ROW>
static __device__ __forceinline__ long long first_row()
{
    return BLOCK_ROW ? (long long)blockIdx.x : (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
template <bool BLOCK_ROW>
static __device__ __forceinline__ long long row_step()
{
    return BLOCK_ROW ? (long long)gridDim.x : (long long)gridDim.x * blockDim.x;
}

template <bool BLOCK_ROW>
static __global__ void cosine_forward_kernel(CosGeom G, const float *a, const float *b, double eps, float *out)
{
    for (long long o = first_row<BLOCK_ROW>(); o < G.rows; o += row_step<BLOCK_ROW>()) {
        long long oa, ob, oc;
        row_offsets(G, o, &oa, &ob, &oc);
        double ab, aa, bb;
        row_sums<BLOCK_ROW>(a + oa, G.sa[G.dim], b + ob, G.sb[G.dim], G.len, &ab, &aa, &bb);
        double w = aa * bb;
        if (!BLOCK_ROW || threadIdx.x == 0) out[o] = (float)(ab / sqrt(w > eps * eps ? w : eps * eps));
    }
}

static unsigned int row_grid(long long rows)
{
    return (unsigned int)(rows < MAX_GRID ? rows : MAX_GRID);
}

extern "C" void gv_cuda_cosine_forward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a,
                                       const int64_t *sa, const float *b, const int64_t *sb, double eps, float *out)
{
    CosGeom G = make_geom(ndim, shape, dim, sa, sb);
    /* an empty row still has an output (0/eps = 0): only no rows launches nothing */
    if (G.rows <= 0) return;
    if (G.len <= SHORT_ROW)
        cosine_forward_kernel<false><<<gv_cuda_blocks(G.rows), THREADS, 0, gv_cuda_stream()>>>(G, a, b, eps, out);
    else
        cosine_forward_kernel<true><<<row_grid(G.rows), THREADS, 0, gv_cuda_stream()>>>(G, a, b, eps, out);
    GV_CUDA_LAUNCHED("cosine_similarity");
}

/* Below eps the denominator is the constant eps (the clamp passes no
 * gradient); above it d cos/da = b/n − cos·a/Σa², and symmetrically. */
template <bool BLOCK_ROW>
static __global__ void cosine_backward_kernel(CosGeom G, const float *a, const float *b, double eps, const float *g,
                                       float *ga, float *gb)
{
    const long long as = G.sa[G.dim], bs = G.sb[G.dim];
    const long long k0 = BLOCK_ROW ? threadIdx.x : 0, dk = BLOCK_ROW ? blockDim.x : 1;
    for (long long o = first_row<BLOCK_ROW>(); o < G.rows; o += row_step<BLOCK_ROW>()) {
        long long oa, ob, oc;
        row_offsets(G, o, &oa, &ob, &oc);
        const float *ar = a + oa, *br = b + ob;
        double ab, aa, bb;
        row_sums<BLOCK_ROW>(ar, as, br, bs, G.len, &ab, &aa, &bb);
        double w = aa * bb, go = g[o];
        bool clamped = w < eps * eps;
        double n = clamped ? eps : sqrt(w);
        double cosv = ab / n;
        double ka = clamped ? 0 : cosv / aa, kb = clamped ? 0 : cosv / bb;
        for (long long k = k0; k < G.len; k += dk) {
            double x = ar[k * as], y = br[k * bs];
            if (ga) ga[oc + k * G.cstride] = (float)(go * (y / n - ka * x));
            if (gb) gb[oc + k * G.cstride] = (float)(go * (x / n - kb * y));
        }
    }
}

extern "C" void gv_cuda_cosine_backward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a,
                                        const int64_t *sa, const float *b, const int64_t *sb, double eps,
                                        const float *g, float *ga, float *gb)
{
    CosGeom G = make_geom(ndim, shape, dim, sa, sb);
    if (G.rows <= 0 || G.len <= 0 || (!ga && !gb)) return;
    if (G.len <= SHORT_ROW)
        cosine_backward_kernel<false><<<gv_cuda_blocks(G.rows), THREADS, 0, gv_cuda_stream()>>>(G, a, b, eps, g, ga,
                                                                                                 gb);
    else
        cosine_backward_kernel<true><<<row_grid(G.rows), THREADS, 0, gv_cuda_stream()>>>(G, a, b, eps, g, ga, gb);
    GV_CUDA_LAUNCHED("cosine_similarity backward");
}

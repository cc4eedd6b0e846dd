/*
 * nn.cu — CUDA twins of the softmax, layer norm, RMS norm (kernels/cpu/norm.c),
 * embedding and where (kernels/cpu/index.c) kernels. (The depthwise
 * convolution kernels live elsewhere.)
 *
 * Row statistics (softmax sums, norm means and variances) are accumulated in
 * double as on the CPU, one warp per row: lane l takes columns l, l + 32, ...
 * and the lanes are combined by a butterfly of shuffles. Addition is
 * commutative in IEEE arithmetic, so every lane ends with the same bits and
 * the result depends only on the row length. Weight gradients are sums over
 * rows done by threads that own columns, never by atomics.
 */
#include "cuda.h"
#include "context.h"
#include "block_reduce.cuh"
#include "grove.h"

#include <math.h>
#include <string.h>

#define GRID_LOOP(i, n)                                                                  \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

/* Rows handled by warps: global warp w takes rows w, w + warps, ... The row
 * is the same for all 32 lanes, so the whole warp stays in the loop
 * together and full-mask shuffles are safe. */
#define WARP_ROW_LOOP(row, rows)                                                                          \
    for (long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32; row < (long long)(rows); \
         row += (long long)gridDim.x * blockDim.x / 32)


static unsigned int warp_blocks(long long rows) { return gv_cuda_blocks(rows * 32); }

/* ---- softmax ------------------------------------------------------------------ */

/* One contiguous row per warp (inner == 1):
 *   m = max x,  s = Σ e^(x − m) (double),
 *   softmax y = e^(x − m) / s,  log-softmax y = x − (m + log s). */
static __global__ void softmax_rows_kernel(long long rows, long long n, const float *__restrict__ x, float *__restrict__ y,
                                    bool log_out)
{
    const int lane = threadIdx.x % 32;
    WARP_ROW_LOOP(row, rows)
    {
        const float *xr = x + row * n;
        float *yr = y + row * n;
        float m = -INFINITY;
        for (long long j = lane; j < n; j += 32) m = xr[j] > m ? xr[j] : m;
        m = gv_warp_max(m);
        double acc = 0;
        for (long long j = lane; j < n; j += 32) {
            float e = expf(xr[j] - m);
            acc += e;
            if (!log_out) yr[j] = e;
        }
        double sum = gv_warp_sum(acc);
        if (log_out) {
            float shift = m + (float)log(sum);
            for (long long j = lane; j < n; j += 32) yr[j] = xr[j] - shift;
        } else {
            /* Each lane rescales the elements it wrote itself. */
            float inv = (float)(1.0 / sum);
            for (long long j = lane; j < n; j += 32) yr[j] *= inv;
        }
    }
}

/* Softmax along a strided dimension (inner > 1): one thread per (outer,
 * inner) column walks its n elements with stride inner; neighbouring
 * threads read neighbouring floats. */
static __global__ void softmax_cols_kernel(long long outer, long long n, long long inner, const float *__restrict__ x,
                                    float *__restrict__ y, bool log_out)
{
    GRID_LOOP(t, outer * inner)
    {
        long long o = t / inner, c = t % inner;
        const float *xs = x + o * n * inner + c;
        float *ys = y + o * n * inner + c;
        float m = -INFINITY;
        for (long long i = 0; i < n; i++) m = xs[i * inner] > m ? xs[i * inner] : m;
        double sum = 0;
        for (long long i = 0; i < n; i++) {
            float e = expf(xs[i * inner] - m);
            sum += e;
            if (!log_out) ys[i * inner] = e;
        }
        if (log_out) {
            float shift = m + (float)log(sum);
            for (long long i = 0; i < n; i++) ys[i * inner] = xs[i * inner] - shift;
        } else {
            float inv = (float)(1.0 / sum);
            for (long long i = 0; i < n; i++) ys[i * inner] *= inv;
        }
    }
}

extern "C" void gv_cuda_softmax(int64_t outer, int64_t n, int64_t inner, const float *x, float *y, bool log_out)
{
    if (outer <= 0 || n <= 0 || inner <= 0) return;
    cudaStream_t s = gv_cuda_stream();
    if (inner == 1)
        softmax_rows_kernel<<<warp_blocks(outer), GV_CUDA_THREADS, 0, s>>>(outer, n, x, y, log_out);
    else
        softmax_cols_kernel<<<gv_cuda_blocks(outer * inner), GV_CUDA_THREADS, 0, s>>>(outer, n, inner, x, y, log_out);
    GV_CUDA_LAUNCHED("softmax");
}

/* softmax:     dx = y (g − Σ g y)
 * log-softmax: dx = g − e^y Σ g
 * with the sum in double, rounded to float before use (as the CPU). */
static __global__ void softmax_backward_rows_kernel(long long rows, long long n, const float *__restrict__ y,
                                             const float *__restrict__ g, float *__restrict__ dx, bool log_out)
{
    const int lane = threadIdx.x % 32;
    WARP_ROW_LOOP(row, rows)
    {
        const float *yr = y + row * n, *gr = g + row * n;
        float *dr = dx + row * n;
        double acc = 0;
        for (long long j = lane; j < n; j += 32) acc += log_out ? (double)gr[j] : (double)gr[j] * yr[j];
        float s = (float)gv_warp_sum(acc);
        for (long long j = lane; j < n; j += 32) dr[j] = log_out ? gr[j] - expf(yr[j]) * s : yr[j] * (gr[j] - s);
    }
}

static __global__ void softmax_backward_cols_kernel(long long outer, long long n, long long inner, const float *__restrict__ y,
                                             const float *__restrict__ g, float *__restrict__ dx, bool log_out)
{
    GRID_LOOP(t, outer * inner)
    {
        long long base = (t / inner) * n * inner + t % inner;
        const float *ys = y + base, *gs = g + base;
        float *ds = dx + base;
        double acc = 0;
        for (long long i = 0; i < n; i++)
            acc += log_out ? (double)gs[i * inner] : (double)gs[i * inner] * ys[i * inner];
        float s = (float)acc;
        for (long long i = 0; i < n; i++) {
            long long k = i * inner;
            ds[k] = log_out ? gs[k] - expf(ys[k]) * s : ys[k] * (gs[k] - s);
        }
    }
}

extern "C" void gv_cuda_softmax_backward(int64_t outer, int64_t n, int64_t inner, const float *y, const float *g,
                                         float *dx, bool log_out)
{
    if (outer <= 0 || n <= 0 || inner <= 0) return;
    cudaStream_t s = gv_cuda_stream();
    if (inner == 1)
        softmax_backward_rows_kernel<<<warp_blocks(outer), GV_CUDA_THREADS, 0, s>>>(outer, n, y, g, dx, log_out);
    else
        softmax_backward_cols_kernel<<<gv_cuda_blocks(outer * inner), GV_CUDA_THREADS, 0, s>>>(outer, n, inner, y, g,
                                                                                                dx, log_out);
    GV_CUDA_LAUNCHED("softmax_backward");
}

/* ---- layer norm and RMS norm ---------------------------------------------------- */

/* One row per warp. Two passes in double (the mean, then the squared
 * deviations from it) as the CPU:
 *   mean = Σx / cols (layer norm; 0 for RMS norm),
 *   rstd = 1 / sqrt(Σ(x − mean)² / cols + eps),
 *   y = (x − mean)·rstd·w + b, in float with mean and rstd rounded. */
static __global__ void norm_forward_kernel(long long rows, long long cols, const float *__restrict__ x,
                                    const float *__restrict__ w, const float *__restrict__ b, double eps, bool centered,
                                    float *__restrict__ y, float *__restrict__ mean_out, float *__restrict__ rstd_out)
{
    const int lane = threadIdx.x % 32;
    WARP_ROW_LOOP(row, rows)
    {
        const float *xr = x + row * cols;
        float *yr = y + row * cols;
        double mean = 0;
        if (centered && cols > 0) {
            double acc = 0;
            for (long long j = lane; j < cols; j += 32) acc += xr[j];
            mean = gv_warp_sum(acc) / (double)cols;
        }
        double acc = 0;
        for (long long j = lane; j < cols; j += 32) {
            double d = xr[j] - mean;
            acc += d * d;
        }
        double ss = gv_warp_sum(acc);
        double var = cols > 0 ? ss / (double)cols : 0;
        double rstd = 1.0 / sqrt(var + eps);
        float m = (float)mean, rs = (float)rstd;
        for (long long j = lane; j < cols; j += 32) {
            float v = (xr[j] - m) * rs;
            if (w) v *= w[j];
            if (b) v += b[j];
            yr[j] = v;
        }
        if (lane == 0) {
            if (mean_out) mean_out[row] = m;
            if (rstd_out) rstd_out[row] = rs;
        }
    }
}

/* With xhat = (x − mean)·rstd and d = g·w, one row per warp:
 *   layer norm: dx = rstd (d − mean(d) − xhat·mean(d·xhat))
 *   RMS norm:   dx = rstd (d − xhat·mean(d·xhat))
 * (mean is NULL for RMS norm, w NULL without affine weights). */
static __global__ void norm_backward_input_kernel(long long rows, long long cols, const float *__restrict__ x,
                                           const float *__restrict__ w, const float *__restrict__ mean,
                                           const float *__restrict__ rstd, const float *__restrict__ g, bool centered,
                                           float *__restrict__ dx)
{
    const int lane = threadIdx.x % 32;
    WARP_ROW_LOOP(row, rows)
    {
        const float *xr = x + row * cols, *gr = g + row * cols;
        float *dr = dx + row * cols;
        float m = mean ? mean[row] : 0.0f, rs = rstd[row];
        double sd = 0, sdx = 0;
        for (long long j = lane; j < cols; j += 32) {
            float d = w ? gr[j] * w[j] : gr[j];
            float xh = (xr[j] - m) * rs;
            sd += d;
            sdx += (double)d * xh;
        }
        sd = gv_warp_sum(sd);
        sdx = gv_warp_sum(sdx);
        float md = centered && cols > 0 ? (float)(sd / (double)cols) : 0.0f;
        float mdx = cols > 0 ? (float)(sdx / (double)cols) : 0.0f;
        for (long long j = lane; j < cols; j += 32) {
            float d = w ? gr[j] * w[j] : gr[j];
            float xh = (xr[j] - m) * rs;
            dr[j] = rs * (d - md - xh * mdx);
        }
    }
}

/* dw = Σ_rows g·xhat, db = Σ_rows g. A block owns 32 neighbouring columns
 * (threadIdx.x) and splits the rows among AFFINE_ROWS row lanes
 * (threadIdx.y); the row lanes' partial sums are then added in lane order
 * by the first row lane. No atomics: the order is fixed by the sizes. */
enum { AFFINE_ROWS = 16 };

static __global__ void norm_backward_affine_kernel(long long rows, long long cols, const float *__restrict__ x,
                                            const float *__restrict__ mean, const float *__restrict__ rstd,
                                            const float *__restrict__ g, float *__restrict__ dw, float *__restrict__ db)
{
    __shared__ double s_w[AFFINE_ROWS][32], s_b[AFFINE_ROWS][32];
    const int tx = threadIdx.x, ty = threadIdx.y;
    long long nblocks = (cols + 31) / 32;
    /* Uniform across the block, so every thread reaches the barriers. */
    for (long long cb = blockIdx.x; cb < nblocks; cb += gridDim.x) {
        long long j = cb * 32 + tx;
        double aw = 0, ab = 0;
        if (j < cols)
            for (long long r = ty; r < rows; r += AFFINE_ROWS) {
                float m = mean ? mean[r] : 0.0f, rs = rstd[r];
                float gv = g[r * cols + j];
                aw += (double)gv * ((x[r * cols + j] - m) * rs);
                ab += gv;
            }
        s_w[ty][tx] = aw;
        s_b[ty][tx] = ab;
        __syncthreads();
        if (ty == 0 && j < cols) {
            double tw = 0, tb = 0;
            for (int k = 0; k < AFFINE_ROWS; k++) {
                tw += s_w[k][tx];
                tb += s_b[k][tx];
            }
            if (dw) dw[j] = (float)tw;
            if (db) db[j] = (float)tb;
        }
        __syncthreads();
    }
}

static void norm_backward_affine(long long rows, long long cols, const float *x, const float *mean,
                                 const float *rstd, const float *g, float *dw, float *db)
{
    if (cols <= 0) return;
    long long nblocks = (cols + 31) / 32;
    unsigned int grid = (unsigned int)(nblocks < 65535 ? nblocks : 65535);
    dim3 block(32, AFFINE_ROWS);
    norm_backward_affine_kernel<<<grid, block, 0, gv_cuda_stream()>>>(rows, cols, x, mean, rstd, g, dw, db);
    GV_CUDA_LAUNCHED("norm_backward_affine");
}

extern "C" void gv_cuda_layer_norm(int64_t rows, int64_t cols, const float *x, const float *w, const float *b,
                                   double eps, float *y, float *mean, float *rstd)
{
    if (rows <= 0) return;
    norm_forward_kernel<<<warp_blocks(rows), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(rows, cols, x, w, b, eps, true,
                                                                                      y, mean, rstd);
    GV_CUDA_LAUNCHED("layer_norm");
}

extern "C" void gv_cuda_layer_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w,
                                            const float *mean, const float *rstd, const float *g, float *dx,
                                            float *dw, float *db)
{
    if (rows <= 0) {
        /* No rows: the weight gradients are empty sums. */
        if (dw && cols > 0) gv_cuda_record(cudaMemsetAsync(dw, 0, (size_t)cols * sizeof *dw, gv_cuda_stream()), "layer_norm_backward");
        if (db && cols > 0) gv_cuda_record(cudaMemsetAsync(db, 0, (size_t)cols * sizeof *db, gv_cuda_stream()), "layer_norm_backward");
        return;
    }
    if (dx) {
        norm_backward_input_kernel<<<warp_blocks(rows), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(rows, cols, x, w, mean,
                                                                                                 rstd, g, true, dx);
        GV_CUDA_LAUNCHED("layer_norm_backward");
    }
    if (dw || db) norm_backward_affine(rows, cols, x, mean, rstd, g, dw, db);
}

extern "C" void gv_cuda_rms_norm(int64_t rows, int64_t cols, const float *x, const float *w, double eps, float *y,
                                 float *rstd)
{
    if (rows <= 0) return;
    norm_forward_kernel<<<warp_blocks(rows), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(rows, cols, x, w, NULL, eps,
                                                                                      false, y, NULL, rstd);
    GV_CUDA_LAUNCHED("rms_norm");
}

extern "C" void gv_cuda_rms_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w,
                                          const float *rstd, const float *g, float *dx, float *dw)
{
    if (rows <= 0) {
        if (dw && cols > 0) gv_cuda_record(cudaMemsetAsync(dw, 0, (size_t)cols * sizeof *dw, gv_cuda_stream()), "rms_norm_backward");
        return;
    }
    if (dx) {
        norm_backward_input_kernel<<<warp_blocks(rows), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(rows, cols, x, w, NULL,
                                                                                                 rstd, g, false, dx);
        GV_CUDA_LAUNCHED("rms_norm_backward");
    }
    if (dw) norm_backward_affine(rows, cols, x, NULL, rstd, g, dw, NULL);
}

/* ---- embedding ------------------------------------------------------------------- */

static __device__ __forceinline__ long long load_index(const void *idx, int is_i64, long long i)
{
    return is_i64 ? ((const int64_t *)idx)[i] : ((const int32_t *)idx)[i];
}

/* out[i][k] = weight[idx[i]][k], one thread per output element. */
static __global__ void embedding_kernel(long long n, long long d, const float *__restrict__ weight, const void *idx,
                                 int is_i64, float *__restrict__ out)
{
    GRID_LOOP(t, n * d) out[t] = weight[load_index(idx, is_i64, t / d) * d + t % d];
}

extern "C" void gv_cuda_embedding(int64_t n, int64_t d, const float *weight, const void *idx, int32_t is_i64,
                                  float *out)
{
    if (n <= 0 || d <= 0) return;
    embedding_kernel<<<gv_cuda_blocks(n * d), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(n, d, weight, idx, is_i64, out);
    GV_CUDA_LAUNCHED("embedding");
}

/* dweight[r][k] = Σ_{i : idx[i] = r} g[i][k], deterministically: thread
 * (k, part) owns column k of the dweight rows in [v·part/parts,
 * v·(part+1)/parts). It zeroes them, then scans every index in order and
 * adds the rows that fall in its range, so each element receives its
 * contributions in index order (the CPU's order, hence the CPU's bits) and
 * no two threads write the same element. Splitting the rows into parts
 * gives enough threads when d is small, at the cost of every thread reading
 * all n indices (the same address across a warp: one broadcast load). */
static __global__ void embedding_backward_kernel(long long n, long long d, long long v, long long parts,
                                          const float *__restrict__ g, const void *idx, int is_i64,
                                          float *__restrict__ dweight)
{
    GRID_LOOP(t, d * parts)
    {
        long long k = t % d, part = t / d;
        long long lo = v * part / parts, hi = v * (part + 1) / parts;
        for (long long r = lo; r < hi; r++) dweight[r * d + k] = 0.0f;
        for (long long i = 0; i < n; i++) {
            long long r = load_index(idx, is_i64, i);
            if (r >= lo && r < hi) dweight[r * d + k] += g[i * d + k];
        }
    }
}

extern "C" void gv_cuda_embedding_backward(int64_t n, int64_t d, int64_t v, const float *g, const void *idx,
                                           int32_t is_i64, float *dweight)
{
    if (d <= 0 || v <= 0) return;
    /* About 64k threads in all, and never more parts than rows. */
    long long parts = (65536 + d - 1) / d;
    if (parts > v) parts = v;
    embedding_backward_kernel<<<gv_cuda_blocks(d * parts), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(
        n, d, v, parts, g, idx, is_i64, dweight);
    GV_CUDA_LAUNCHED("embedding_backward");
}

/* ---- where ------------------------------------------------------------------------- */

/* The output shape and the three operands' broadcast strides (host
 * arrays), passed by value. */
struct where_geom {
    int ndim;
    long long shape[GROVE_MAX_DIMS], cs[GROVE_MAX_DIMS], as[GROVE_MAX_DIMS], bs[GROVE_MAX_DIMS];
};

/* out[i] (contiguous) = cond ? a : b, each read through its own strides
 * (0 along broadcast dimensions; a scalar operand is a one-element device
 * tensor read with all strides 0). */
static __global__ void where_kernel(where_geom geo, const uint8_t *__restrict__ cond, const float *__restrict__ a,
                                    const float *__restrict__ b, float *__restrict__ out, long long n)
{
    GRID_LOOP(i, n)
    {
        long long oc = 0, oa = 0, ob = 0, rem = i;
        for (int d = geo.ndim - 1; d >= 0; d--) {
            long long c = rem % geo.shape[d];
            rem /= geo.shape[d];
            oc += c * geo.cs[d];
            oa += c * geo.as[d];
            ob += c * geo.bs[d];
        }
        out[i] = cond[oc] ? a[oa] : b[ob];
    }
}

extern "C" void gv_cuda_where(int32_t ndim, const int64_t *shape, const uint8_t *cond, const int64_t *c_stride,
                              const float *a, const int64_t *a_stride, const float *b, const int64_t *b_stride,
                              float *out)
{
    where_geom geo;
    memset(&geo, 0, sizeof geo);
    geo.ndim = ndim;
    long long n = 1;
    for (int32_t d = 0; d < ndim; d++) {
        geo.shape[d] = shape[d];
        geo.cs[d] = c_stride[d];
        geo.as[d] = a_stride[d];
        geo.bs[d] = b_stride[d];
        n *= shape[d];
    }
    if (n <= 0) return;
    where_kernel<<<gv_cuda_blocks(n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(geo, cond, a, b, out, n);
    GV_CUDA_LAUNCHED("where");
}

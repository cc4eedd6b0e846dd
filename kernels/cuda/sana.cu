/*
 * sana.cu — CUDA twins of kernels/cpu/sana.c, the small fused ops of the
 * SANA block: LayerNorm + modulation, gated residual, GLU with SiLU,
 * sinusoidal timestep embedding.
 *
 * Row statistics are sums in double, one block per row, reduced in a fixed
 * tree order. The per-sample gradients (dshift, dscale, dgate) sum over the
 * tokens: a block owns 32 columns of one sample, its TOKEN_LANES rows of
 * threads each walk every TOKEN_LANES-th token in double, and the lanes are
 * added in a fixed order, so no result depends on the grid (no atomics).
 */
#include "cuda.h"
#include "context.h"
#include "block_reduce.cuh"

#include <math.h>

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

enum { ROW_THREADS = 256, TOKEN_LANES = 8 };

static unsigned int blocks_for(long long items) { return items < 65535 ? (unsigned int)items : 65535u; }

/* σ(z) through e^−|z|, which never overflows (as the CPU's gv_sigmoid); a
 * NaN z gives NaN. */
static __device__ __forceinline__ float sigmoid_f(float z)
{
    float e = expf(-fabsf(z));
    float inv = 1.0f / (1.0f + e);
    return signbit(z) ? e * inv : inv;
}


/* ---- LayerNorm + modulation ---------------------------------------------- */

/* y = LN(x)·(1 + scale) + shift, one block per row of d; two passes (mean,
 * then squared deviations) in double, as the CPU. */
static __global__ void norm_modulate_kernel(long long rows, long long n, long long d, const float *x, const float *shift,
                                     const float *scale, double eps, float *y, float *mean, float *rstd)
{
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * d, *shr = shift + (r / n) * d, *scr = scale + (r / n) * d;
        float *yr = y + r * d;
        double s = 0;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) s += xr[j];
        s = gv_block_sum<ROW_THREADS>(s);
        double mu = d > 0 ? s / (double)d : 0;
        double ss = 0;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            double dv = xr[j] - mu;
            ss += dv * dv;
        }
        ss = gv_block_sum<ROW_THREADS>(ss);
        double var = d > 0 ? ss / (double)d : 0;
        float m = (float)mu, rs = (float)(1.0 / sqrt(var + eps));
        for (long long j = threadIdx.x; j < d; j += blockDim.x) yr[j] = (xr[j] - m) * rs * (1.0f + scr[j]) + shr[j];
        if (threadIdx.x == 0) {
            if (mean) mean[r] = m;
            if (rstd) rstd[r] = rs;
        }
    }
}

extern "C" void gv_cuda_norm_modulate(int64_t b, int64_t n, int64_t d, const float *x, const float *shift,
                                      const float *scale, double eps, float *y, float *mean, float *rstd)
{
    long long rows = (long long)b * n;
    if (rows == 0) return;
    norm_modulate_kernel<<<blocks_for(rows), ROW_THREADS, 0, gv_cuda_stream()>>>(rows, n, d, x, shift, scale, eps, y,
                                                                                mean, rstd);
    GV_CUDA_LAUNCHED("norm_modulate");
}

/* dx of LN(x) for the upstream gradient u = g·(1 + scale): with
 * xh = (x − mean)·rstd, dx = rstd·(u − mean(u) − xh·mean(u·xh)). One block
 * per row. */
static __global__ void norm_modulate_dx_kernel(long long rows, long long n, long long d, const float *x, const float *scale,
                                        const float *mean, const float *rstd, const float *g, float *dx)
{
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * d, *gr = g + r * d, *scr = scale + (r / n) * d;
        float *dr = dx + r * d;
        float m = mean[r], rs = rstd[r];
        double su = 0, sux = 0;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            float u = gr[j] * (1.0f + scr[j]);
            float xh = (xr[j] - m) * rs;
            su += u;
            sux += (double)u * xh;
        }
        su = gv_block_sum<ROW_THREADS>(su);
        sux = gv_block_sum<ROW_THREADS>(sux);
        float mu = d > 0 ? (float)(su / (double)d) : 0.0f;
        float mux = d > 0 ? (float)(sux / (double)d) : 0.0f;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            float u = gr[j] * (1.0f + scr[j]);
            float xh = (xr[j] - m) * rs;
            dr[j] = rs * (u - mu - xh * mux);
        }
    }
}

/* dshift = Σ_tokens g, dscale = Σ_tokens g·xh for each (sample, column):
 * block (32, TOKEN_LANES) per (sample, tile of 32 columns). */
static __global__ void norm_modulate_dparams_kernel(long long b, long long n, long long d, const float *x, const float *mean,
                                             const float *rstd, const float *g, float *dshift, float *dscale)
{
    __shared__ double psh[TOKEN_LANES][32], psc[TOKEN_LANES][32];
    long long col_tiles = (d + 31) / 32;
    for (long long task = blockIdx.x; task < b * col_tiles; task += gridDim.x) {
        long long bi = task / col_tiles, j = (task % col_tiles) * 32 + threadIdx.x;
        double ash = 0, asc = 0;
        if (j < d)
            for (long long i = threadIdx.y; i < n; i += TOKEN_LANES) {
                long long r = bi * n + i;
                float gv = g[r * d + j];
                ash += gv;
                asc += (double)gv * ((x[r * d + j] - mean[r]) * rstd[r]);
            }
        psh[threadIdx.y][threadIdx.x] = ash;
        psc[threadIdx.y][threadIdx.x] = asc;
        __syncthreads();
        if (threadIdx.y == 0 && j < d) {
            double s0 = 0, s1 = 0;
            for (int l = 0; l < TOKEN_LANES; l++) {
                s0 += psh[l][threadIdx.x];
                s1 += psc[l][threadIdx.x];
            }
            if (dshift) dshift[bi * d + j] = (float)s0;
            if (dscale) dscale[bi * d + j] = (float)s1;
        }
        __syncthreads();
    }
}

extern "C" void gv_cuda_norm_modulate_backward(int64_t b, int64_t n, int64_t d, const float *x, const float *scale,
                                               const float *mean, const float *rstd, const float *g, float *dx,
                                               float *dshift, float *dscale)
{
    long long rows = (long long)b * n;
    if (dx && rows * d > 0) {
        norm_modulate_dx_kernel<<<blocks_for(rows), ROW_THREADS, 0, gv_cuda_stream()>>>(rows, n, d, x, scale, mean,
                                                                                       rstd, g, dx);
        GV_CUDA_LAUNCHED("norm_modulate backward dx");
    }
    long long tasks = (long long)b * ((d + 31) / 32);
    if ((dshift || dscale) && tasks > 0) {
        /* n = 0 still writes zeros: each column's sum is over no tokens. */
        norm_modulate_dparams_kernel<<<blocks_for(tasks), dim3(32, TOKEN_LANES), 0, gv_cuda_stream()>>>(
            b, n, d, x, mean, rstd, g, dshift, dscale);
        GV_CUDA_LAUNCHED("norm_modulate backward params");
    }
}

/* ---- gated residual --------------------------------------------------------- */

static __global__ void gated_residual_kernel(long long n, long long d, long long total, const float *x, const float *gate,
                                      const float *y, float *out)
{
    GRID_LOOP(t, total) out[t] = x[t] + gate[t / (n * d) * d + t % d] * y[t];
}

extern "C" void gv_cuda_gated_residual(int64_t b, int64_t n, int64_t d, const float *x, const float *gate,
                                       const float *y, float *out)
{
    long long total = (long long)b * n * d;
    if (total == 0) return;
    gated_residual_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(n, d, total, x, gate, y,
                                                                                          out);
    GV_CUDA_LAUNCHED("gated_residual");
}

static __global__ void gated_residual_dy_kernel(long long n, long long d, long long total, const float *gate, const float *g,
                                         float *dy)
{
    GRID_LOOP(t, total) dy[t] = g[t] * gate[t / (n * d) * d + t % d];
}

/* dgate = Σ_tokens g·y, laid out as norm_modulate_dparams_kernel. */
static __global__ void gated_residual_dgate_kernel(long long b, long long n, long long d, const float *y, const float *g,
                                            float *dgate)
{
    __shared__ double part[TOKEN_LANES][32];
    long long col_tiles = (d + 31) / 32;
    for (long long task = blockIdx.x; task < b * col_tiles; task += gridDim.x) {
        long long bi = task / col_tiles, j = (task % col_tiles) * 32 + threadIdx.x;
        double acc = 0;
        if (j < d)
            for (long long i = threadIdx.y; i < n; i += TOKEN_LANES) {
                long long at = (bi * n + i) * d + j;
                acc += (double)g[at] * y[at];
            }
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && j < d) {
            double s = 0;
            for (int l = 0; l < TOKEN_LANES; l++) s += part[l][threadIdx.x];
            dgate[bi * d + j] = (float)s;
        }
        __syncthreads();
    }
}

extern "C" void gv_cuda_gated_residual_backward(int64_t b, int64_t n, int64_t d, const float *gate, const float *y,
                                                const float *g, float *dy, float *dgate)
{
    long long total = (long long)b * n * d;
    if (dy && total > 0) {
        gated_residual_dy_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(n, d, total, gate,
                                                                                                  g, dy);
        GV_CUDA_LAUNCHED("gated_residual backward dy");
    }
    long long tasks = (long long)b * ((d + 31) / 32);
    if (dgate && tasks > 0) {
        gated_residual_dgate_kernel<<<blocks_for(tasks), dim3(32, TOKEN_LANES), 0, gv_cuda_stream()>>>(b, n, d, y, g,
                                                                                                      dgate);
        GV_CUDA_LAUNCHED("gated_residual backward dgate");
    }
}

/* ---- GLU with SiLU ------------------------------------------------------------ */

/* out (rows, c) = h[:, :c]·SiLU(h[:, c:]) */
static __global__ void glu_silu_kernel(long long rows, long long c, const float *h, float *out)
{
    GRID_LOOP(t, rows * c) {
        long long r = t / c, j = t % c;
        float a = h[r * 2 * c + j], z = h[r * 2 * c + c + j];
        out[t] = a * (z * sigmoid_f(z));
    }
}

extern "C" void gv_cuda_glu_silu(int64_t rows, int64_t c, const float *h, float *out)
{
    long long total = (long long)rows * c;
    if (total == 0) return;
    glu_silu_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(rows, c, h, out);
    GV_CUDA_LAUNCHED("glu_silu");
}

/* da = g·SiLU(z), dz = g·a·SiLU'(z) with SiLU'(z) = σ(z)·(1 + z·(1 − σ(z))). */
static __global__ void glu_silu_backward_kernel(long long rows, long long c, const float *h, const float *g, float *dh)
{
    GRID_LOOP(t, rows * c) {
        long long r = t / c, j = t % c;
        float a = h[r * 2 * c + j], z = h[r * 2 * c + c + j], gv = g[t];
        float s = sigmoid_f(z);
        dh[r * 2 * c + j] = gv * (z * s);
        dh[r * 2 * c + c + j] = gv * a * (s * (1.0f + z * (1.0f - s)));
    }
}

extern "C" void gv_cuda_glu_silu_backward(int64_t rows, int64_t c, const float *h, const float *g, float *dh)
{
    long long total = (long long)rows * c;
    if (total == 0) return;
    glu_silu_backward_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(rows, c, h, g, dh);
    GV_CUDA_LAUNCHED("glu_silu backward");
}

/* ---- sinusoidal timestep embedding ------------------------------------------- */

/* out (b, dim) = [cos(t·f), sin(t·f)], f_j = exp(−ln(max_period)·j/half), in
 * double (at t ≈ 1000 a float argument would be off by ~1e-4 rad); the last
 * column is zero when dim is odd. One thread per output element. */
static __global__ void timestep_embedding_kernel(long long b, const float *t, long long t_stride, long long dim,
                                          double lp, float *out)
{
    long long half = dim / 2;
    GRID_LOOP(idx, b * dim) {
        long long i = idx / dim, col = idx % dim;
        if (col >= 2 * half) {
            out[idx] = 0.0f;
            continue;
        }
        long long j = col < half ? col : col - half;
        double arg = (double)t[i * t_stride] * exp(-lp * (double)j / (double)half);
        out[idx] = (float)(col < half ? cos(arg) : sin(arg));
    }
}

extern "C" void gv_cuda_timestep_embedding(int64_t b, const float *t, int64_t t_stride, int64_t dim,
                                           double max_period, float *out)
{
    long long total = (long long)b * dim;
    if (total == 0) return;
    timestep_embedding_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(
        b, t, t_stride, dim, log(max_period), out);
    GV_CUDA_LAUNCHED("timestep_embedding");
}

/*
 * conv.cu — CUDA twins of the depthwise k×k convolution of kernels/cpu/conv.c
 * (stride 1, zero padding, NHWC data, weight in tap-major order (k, k, C)),
 * the positional mixer of SANA's Mix-FFN.
 *
 * Forward and input gradient: one thread per output element, adjacent
 * threads on adjacent channels (contiguous in NHWC, so every load is
 * coalesced), the taps summed in float in the CPU's order (row i, then
 * column j). Weight gradient: a sum over b·h·w pixels per (tap, channel),
 * made by one block per (tap, 32 channels) in double with a fixed order.
 */
#include "cuda.h"
#include "context.h"

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

/* y[b, oh, ow, ch] = bias[ch] + Σ_ij x[b, oh − pad + i, ow − pad + j, ch]·wt[i, j, ch],
 * taps outside the h×w input skipped (zero padding). */
static __global__ void dwconv_forward_kernel(long long b, long long h, long long w, long long c, long long k, long long pad,
                                      const float *x, const float *wt, const float *bias, float *y)
{
    long long ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    GRID_LOOP(t, b * ho * wo * c) {
        long long ch = t % c, ow = (t / c) % wo, oh = (t / (c * wo)) % ho, bi = t / (c * wo * ho);
        const float *img = x + bi * h * w * c + ch;
        float acc = bias ? bias[ch] : 0.0f;
        for (long long i = 0; i < k; i++) {
            long long r = oh - pad + i;
            if (r < 0 || r >= h) continue;
            for (long long j = 0; j < k; j++) {
                long long q = ow - pad + j;
                if (q < 0 || q >= w) continue;
                acc += img[(r * w + q) * c] * wt[(i * k + j) * c + ch];
            }
        }
        y[t] = acc;
    }
}

extern "C" void gv_cuda_dwconv_forward(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                       const float *x, const float *wt, const float *bias, float *y)
{
    long long ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    long long total = (long long)b * ho * wo * c;
    if (ho <= 0 || wo <= 0 || total == 0) return;
    dwconv_forward_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(b, h, w, c, k, pad, x, wt,
                                                                                          bias, y);
    GV_CUDA_LAUNCHED("dwconv forward");
}

/* dx[b, ih, iw, ch] = Σ_ij dy[b, ih + pad − i, iw + pad − j, ch]·wt[i, j, ch]:
 * the correlation run backwards, each dx element gathered by its own thread
 * (no scatter, so no atomics). */
static __global__ void dwconv_backward_input_kernel(long long b, long long h, long long w, long long c, long long k,
                                             long long pad, const float *dy, const float *wt, float *dx)
{
    long long ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    GRID_LOOP(t, b * h * w * c) {
        long long ch = t % c, iw = (t / c) % w, ih = (t / (c * w)) % h, bi = t / (c * w * h);
        const float *g = dy + bi * ho * wo * c + ch;
        float acc = 0.0f;
        for (long long i = 0; i < k; i++) {
            long long r = ih + pad - i;
            if (r < 0 || r >= ho) continue;
            for (long long j = 0; j < k; j++) {
                long long q = iw + pad - j;
                if (q < 0 || q >= wo) continue;
                acc += g[(r * wo + q) * c] * wt[(i * k + j) * c + ch];
            }
        }
        dx[t] = acc;
    }
}

extern "C" void gv_cuda_dwconv_backward_input(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                              const float *dy, const float *wt, float *dx)
{
    long long total = (long long)b * h * w * c;
    if (total == 0) return;
    dwconv_backward_input_kernel<<<gv_cuda_blocks(total), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(b, h, w, c, k, pad,
                                                                                                 dy, wt, dx);
    GV_CUDA_LAUNCHED("dwconv backward input");
}

/*
 * dw[ch, 0, i, j] = Σ_{b, oh, ow} dy[b, oh, ow, ch]·x[b, oh + i − pad, ow + j − pad, ch]
 * (PyTorch order (c, 1, k, k)). A block owns one tap (i, j) and 32
 * channels: its PIXEL_LANES rows of threads each walk every PIXEL_LANES-th
 * output row (b, oh), the products added in double, and the lanes are
 * summed in a fixed order. The block shape is fixed, so the order (and the
 * bits) do not depend on the grid.
 */
enum { PIXEL_LANES = 8 };

static __global__ void dwconv_backward_weight_kernel(long long b, long long h, long long w, long long c, long long k,
                                              long long pad, const float *x, const float *dy, float *dw)
{
    __shared__ double part[PIXEL_LANES][32];
    long long ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    long long ctiles = (c + 31) / 32, tasks = k * k * ctiles;
    for (long long task = blockIdx.x; task < tasks; task += gridDim.x) {
        long long tap = task / ctiles, i = tap / k, j = tap % k, ch = (task % ctiles) * 32 + threadIdx.x;
        /* output columns whose input column ow + j − pad lies inside the image */
        long long lo = pad - j > 0 ? pad - j : 0, hi = w + pad - j < wo ? w + pad - j : wo;
        double acc = 0;
        if (ch < c)
            for (long long row = threadIdx.y; row < b * ho; row += PIXEL_LANES) {
                long long bi = row / ho, oh = row % ho, ih = oh + i - pad;
                if (ih < 0 || ih >= h) continue;
                const float *g = dy + row * wo * c + ch;
                const float *in = x + (bi * h + ih) * w * c + ch;
                for (long long ow = lo; ow < hi; ow++)
                    acc += (double)g[ow * c] * (double)in[(ow + j - pad) * c];
            }
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && ch < c) {
            double s = 0;
            for (int l = 0; l < PIXEL_LANES; l++) s += part[l][threadIdx.x];
            dw[ch * k * k + i * k + j] = (float)s;
        }
        __syncthreads();
    }
}

extern "C" void gv_cuda_dwconv_backward_weight(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                               const float *x, const float *dy, float *dw)
{
    long long tasks = (long long)k * k * ((c + 31) / 32);
    if (tasks == 0) return;
    /* b·h·w = 0 still writes zeros: each tap's sum is over no pixels. */
    unsigned int grid = tasks < 65535 ? (unsigned int)tasks : 65535u;
    dwconv_backward_weight_kernel<<<grid, dim3(32, PIXEL_LANES), 0, gv_cuda_stream()>>>(b, h, w, c, k, pad, x, dy,
                                                                                       dw);
    GV_CUDA_LAUNCHED("dwconv backward weight");
}

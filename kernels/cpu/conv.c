/*
 * conv.c — depthwise kxk convolution with stride 1 on NHWC data, the
 * positional mixer of SANA's Mix-FFN. Direct loops whose innermost index is
 * the channel, contiguous in NHWC, so they vectorise; the weight comes in
 * tap-major order (k, k, C) for the same reason. (The 1x1 convolution is a
 * plain GEMM: the front-end calls gv_cpu_gemm.)
 */
#include "cpu.h"

#include <string.h>

/* One output row of a depthwise correlation, for both directions:
 * out[o, ch] = bias[ch] + Σ_ij in[r0 + sgn·i][o + s0 + sgn·j, ch] · wt[i, j, ch],
 * skipping taps that fall outside the in_h x in_w input. The forward has
 * r0 = oh - pad, s0 = -pad, sgn = +1; the input gradient r0 = ih + pad,
 * s0 = pad, sgn = -1. One output pixel's channels go in blocks of width N (a
 * constant, so the accumulators live in registers across all k² taps):
 * 32, then 8, then 1. */
#define DW_PIXEL_BLOCK(N)                                                                                 \
    {                                                                                                     \
        float acc[N];                                                                                     \
        for (int64_t ch = 0; ch < N; ch++) acc[ch] = bias ? bias[c0 + ch] : 0.0f;                        \
        for (int64_t i = 0; i < k; i++) {                                                                 \
            int64_t r = r0 + sgn * i;                                                                     \
            if (r < 0 || r >= in_h) continue;                                                             \
            const float *row = img + r * in_w * c + c0;                                                   \
            for (int64_t j = 0; j < k; j++) {                                                             \
                int64_t q = o + s0 + sgn * j;                                                             \
                if (q < 0 || q >= in_w) continue;                                                         \
                const float *restrict pi = row + q * c, *restrict pw = wt + (i * k + j) * c + c0;         \
                _Pragma("omp simd")                                                                       \
                for (int64_t ch = 0; ch < N; ch++) acc[ch] += pi[ch] * pw[ch];                            \
            }                                                                                             \
        }                                                                                                 \
        memcpy(out + o * c + c0, acc, sizeof acc);                                                         \
    }

/* DW_TILE neighbouring output pixels whose taps all lie inside the row, 16
 * channels from c0: each weight vector is loaded once for the DW_TILE
 * pixels instead of once per pixel. Each output adds its taps in the same
 * order as DW_PIXEL_BLOCK, so the two give the same bits. */
enum { DW_TILE = 4, DW_TILE_CH = 16 };

static void dw_tile(float *out, const float *img, int64_t in_h, int64_t in_w, int64_t c, int64_t k, int64_t r0,
                    int64_t s0, int64_t sgn, const float *wt, const float *bias, int64_t o, int64_t c0)
{
    float acc[DW_TILE][DW_TILE_CH];
    for (int t = 0; t < DW_TILE; t++)
        for (int ch = 0; ch < DW_TILE_CH; ch++) acc[t][ch] = bias ? bias[c0 + ch] : 0.0f;
    for (int64_t i = 0; i < k; i++) {
        int64_t r = r0 + sgn * i;
        if (r < 0 || r >= in_h) continue;
        const float *row = img + r * in_w * c + c0;
        for (int64_t j = 0; j < k; j++) {
            const float *restrict pw = wt + (i * k + j) * c + c0;
            const float *restrict pi = row + (o + s0 + sgn * j) * c;
            for (int t = 0; t < DW_TILE; t++) {
                _Pragma("omp simd")
                for (int ch = 0; ch < DW_TILE_CH; ch++) acc[t][ch] += pi[t * c + ch] * pw[ch];
            }
        }
    }
    for (int t = 0; t < DW_TILE; t++) memcpy(out + (o + t) * c + c0, acc[t], sizeof acc[t]);
}

static void dw_row(float *out, int64_t out_w, const float *img, int64_t in_h, int64_t in_w, int64_t c, int64_t k,
                   int64_t r0, int64_t s0, int64_t sgn, const float *wt, const float *bias)
{
    /* Output pixels outer, channels inner: each pixel's k×k neighbourhood is
     * read as contiguous channel runs, and the weights (k²·C floats) stay in
     * L1 across the row. Inside the row, where a tile's taps cannot leave
     * the image, DW_TILE pixels go together. */
    const int64_t reach_lo = sgn > 0 ? 0 : -(k - 1), reach_hi = sgn > 0 ? k - 1 : 0;
    const int64_t tiled_c = c - c % DW_TILE_CH;
    for (int64_t o = 0; o < out_w;) {
        int64_t c_from = 0, pixels = 1;
        if (tiled_c > 0 && o + DW_TILE <= out_w && o + s0 + reach_lo >= 0 &&
            o + DW_TILE - 1 + s0 + reach_hi < in_w) {
            for (int64_t c0 = 0; c0 < tiled_c; c0 += DW_TILE_CH)
                dw_tile(out, img, in_h, in_w, c, k, r0, s0, sgn, wt, bias, o, c0);
            c_from = tiled_c;
            pixels = DW_TILE;
        }
        for (int64_t end = o + pixels; o < end; o++) {
            int64_t c0 = c_from;
            for (; c0 + 32 <= c; c0 += 32) DW_PIXEL_BLOCK(32)
            for (; c0 + 8 <= c; c0 += 8) DW_PIXEL_BLOCK(8)
            for (; c0 < c; c0++) DW_PIXEL_BLOCK(1)
        }
    }
}

void gv_cpu_dwconv_forward(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, const float *x,
                           const float *wt, const float *bias, float *y)
{
    int64_t ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    int64_t rows = b * ho;
#pragma omp parallel for schedule(static) if (rows * wo * c * k * k > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        int64_t bi = r / ho, oh = r % ho;
        dw_row(y + r * wo * c, wo, x + bi * h * w * c, h, w, c, k, oh - pad, -pad, 1, wt, bias);
    }
}

/* dx[h, w] = Σ_ij dy[h + pad - i, w + pad - j] · wt[i, j]: the correlation
 * run backwards, one dx row per task, so every element has one writer. */
void gv_cpu_dwconv_backward_input(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                  const float *dy, const float *wt, float *dx)
{
    int64_t ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    int64_t rows = b * h;
#pragma omp parallel for schedule(static) if (rows * w * c * k * k > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        int64_t bi = r / h, ih = r % h;
        dw_row(dx + r * w * c, w, dy + bi * ho * wo * c, ho, wo, c, k, ih + pad, pad, -1, wt, NULL);
    }
}

/* dw[c, 0, i, j] = Σ_{b, oh, ow} dy[b, oh, ow, c] · x[b, oh + i - pad, ow + j - pad, c].
 * One task per (kernel row i, channel block of width N) computes all k taps
 * of that row in one pass over dy and x (reading them k times in all rather
 * than k² times): each image row is summed in float registers, the rows in
 * double, always in the same order, so any thread count gives the same bits. */
#define DW_WEIGHT_BLOCK(N)                                                                                \
    {                                                                                                     \
        double acc[GV_DW_MAX_K][N];                                                                          \
        memset(acc, 0, sizeof acc);                                                                       \
        for (int64_t bi = 0; bi < b; bi++) {                                                              \
            for (int64_t oh = 0; oh < ho; oh++) {                                                         \
                int64_t ih = oh + i - pad;                                                                \
                if (ih < 0 || ih >= h) continue;                                                          \
                const float *g = dy + (bi * ho + oh) * wo * c + c0;                                       \
                const float *in = x + (bi * h + ih) * w * c + c0;                                         \
                for (int64_t j = 0; j < k; j++) {                                                         \
                    int64_t shift = j - pad;                                                              \
                    int64_t lo = shift < 0 ? -shift : 0, hi = w - shift < wo ? w - shift : wo;            \
                    float racc[N] = {0};                                                                  \
                    for (int64_t o = lo; o < hi; o++) {                                                   \
                        const float *restrict pg = g + o * c, *restrict pi = in + (o + shift) * c;       \
                        _Pragma("omp simd")                                                               \
                        for (int64_t ch = 0; ch < N; ch++) racc[ch] += pg[ch] * pi[ch];                   \
                    }                                                                                     \
                    for (int64_t ch = 0; ch < N; ch++) acc[j][ch] += racc[ch];                            \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        for (int64_t j = 0; j < k; j++)                                                                   \
            for (int64_t ch = 0; ch < N; ch++) dw[(c0 + ch) * k * k + i * k + j] = (float)acc[j][ch];     \
    }

void gv_cpu_dwconv_backward_weight(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                   const float *x, const float *dy, float *dw)
{
    int64_t ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
    /* Channel blocks: c / 32 of 32, then of 8, then single channels. */
    int64_t n32 = c / 32, n8 = (c % 32) / 8, n1 = c % 8, blocks = n32 + n8 + n1, tasks = k * blocks;
#pragma omp parallel for schedule(static) if (b * ho * wo * c * k * k > 32768 && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i = t / blocks, blk = t % blocks;
        if (blk < n32) {
            int64_t c0 = blk * 32;
            DW_WEIGHT_BLOCK(32)
        } else if (blk < n32 + n8) {
            int64_t c0 = n32 * 32 + (blk - n32) * 8;
            DW_WEIGHT_BLOCK(8)
        } else {
            int64_t c0 = n32 * 32 + n8 * 8 + (blk - n32 - n8);
            DW_WEIGHT_BLOCK(1)
        }
    }
}

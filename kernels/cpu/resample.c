/* resample.c — nearest upsampling and pixel (un)shuffle of NHWC images.
 * Both move whole channel vectors: an output row (one image row) is built
 * by one thread, so the result does not depend on the thread count. */
#include "cpu.h"
#include "parallel.h"

#include <string.h>

void gv_cpu_upsample_nearest(int64_t b, int64_t h, int64_t w, int64_t c, int64_t s, const float *x, float *y)
{
    int64_t ho = h * s, wo = w * s, rows = b * ho;
    GV_PARALLEL_FOR(rows * wo * c > 65536 && rows > 1, for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / ho, i = (r % ho) / s;
        const float *src = x + (n * h + i) * w * c;
        float *dst = y + r * wo * c;
        for (int64_t j = 0; j < wo; j++) memcpy(dst + j * c, src + (j / s) * c, (size_t)c * sizeof(float));
    });
}

void gv_cpu_upsample_nearest_backward(int64_t b, int64_t h, int64_t w, int64_t c, int64_t s, const float *g,
                                      float *gx)
{
    int64_t wo = w * s, rows = b * h;
    /* One input row per iteration: its s×s blocks summed block row by block
     * row, left to right, the same order on every thread count. */
    GV_PARALLEL_FOR(rows * s * s * w * c > 65536 && rows > 1, for (int64_t r = 0; r < rows; r++) {
        float *dst = gx + r * w * c;
        memset(dst, 0, (size_t)(w * c) * sizeof(float));
        const float *gr = g + r * s * wo * c; /* g's rows r·s … r·s + s − 1 */
        for (int64_t di = 0; di < s; di++)
            for (int64_t j = 0; j < w; j++)
                for (int64_t dj = 0; dj < s; dj++) {
                    const float *src = gr + (di * wo + j * s + dj) * c;
                    float *d = dst + j * c;
                    for (int64_t k = 0; k < c; k++) d[k] += src[k];
                }
    });
}

void gv_cpu_pixel_shuffle(bool unshuffle, int64_t b, int64_t h, int64_t w, int64_t c, int64_t r,
                          const float *src, float *dst)
{
    int64_t rr = r * r, cs = c / rr, rows = b * h;
    /* One packed row (b, y) and the r spread rows it covers per iteration. */
    GV_PARALLEL_FOR(rows * w * c > 65536 && rows > 1, for (int64_t row = 0; row < rows; row++) {
        int64_t packed_row = row * w * c;
        for (int64_t i = 0; i < r; i++) {
            int64_t spread_row = (row * r + i) * (w * r) * cs;
            for (int64_t x = 0; x < w; x++)
                for (int64_t j = 0; j < r; j++) {
                    int64_t sp = spread_row + (x * r + j) * cs, pk = packed_row + x * c + i * r + j;
                    if (unshuffle)
                        for (int64_t k = 0; k < cs; k++) dst[pk + k * rr] = src[sp + k];
                    else
                        for (int64_t k = 0; k < cs; k++) dst[sp + k] = src[pk + k * rr];
                }
        }
    });
}

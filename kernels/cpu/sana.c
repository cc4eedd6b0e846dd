/*
 * sana.c — the small fused ops of the SANA block: LayerNorm + modulation,
 * gated residual, GLU with SiLU, sinusoidal timestep embedding.
 *
 * Row statistics are accumulated in double. The per-sample gradients
 * (dshift, dscale, dgate) sum over the tokens; each (sample, block of
 * columns) is one task, so every output element is summed by one thread in a
 * fixed order and results do not depend on the thread count.
 */
#include "cpu.h"
#include "rowsum.h"
#include "vecmath.h"

#include <math.h>
#include <string.h>

enum { CHUNK = 64 }; /* columns one task sums over the tokens */


#define sigmoidf gv_sigmoid

/* ---- LayerNorm + modulation ---------------------------------------------- */

void gv_cpu_norm_modulate(int64_t b, int64_t n, int64_t d, const float *x, const float *shift, const float *scale,
                          double eps, float *y, float *mean, float *rstd)
{
    int64_t rows = b * n;
#pragma omp parallel for schedule(static) if (rows * d > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d, *sh = shift + (r / n) * d, *sc = scale + (r / n) * d;
        float *yr = y + r * d;
        /* Two passes (mean, then squared deviations): exact enough in double
         * without Welford's divisions. */
        double mu = d > 0 ? gv_row_sum(xr, d) / (double)d : 0;
        double var = d > 0 ? gv_row_sum_sq(xr, d, mu) / (double)d : 0;
        float m = (float)mu, rs = (float)(1.0 / sqrt(var + eps));
        for (int64_t j = 0; j < d; j++) yr[j] = (xr[j] - m) * rs * (1.0f + sc[j]) + sh[j];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

/* dx of LN(x) for the upstream gradient g·(1 + scale):
 * with xh = (x - mean)·rstd and u = g·(1 + scale),
 * dx = rstd·(u - mean(u) - xh·mean(u·xh)). */
static void norm_modulate_dx(int64_t n, int64_t d, int64_t rows, const float *x, const float *scale,
                             const float *mean, const float *rstd, const float *g, float *dx)
{
#pragma omp parallel for schedule(static) if (rows * d > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d, *gr = g + r * d, *sc = scale + (r / n) * d;
        float *dr = dx + r * d;
        float m = mean[r], rs = rstd[r];
        double su[GV_LANES] = {0}, sux[GV_LANES] = {0};
        int64_t j = 0;
        for (; j + GV_LANES <= d; j += GV_LANES)
            for (int l = 0; l < GV_LANES; l++) {
                float u = gr[j + l] * (1.0f + sc[j + l]);
                float xh = (xr[j + l] - m) * rs;
                su[l] += u;
                sux[l] += (double)u * xh;
            }
        for (; j < d; j++) {
            float u = gr[j] * (1.0f + sc[j]);
            float xh = (xr[j] - m) * rs;
            su[0] += u;
            sux[0] += (double)u * xh;
        }
        float mu = d > 0 ? (float)(gv_lanes_total(su) / (double)d) : 0.0f;
        float mux = d > 0 ? (float)(gv_lanes_total(sux) / (double)d) : 0.0f;
        for (j = 0; j < d; j++) {
            float u = gr[j] * (1.0f + sc[j]);
            float xh = (xr[j] - m) * rs;
            dr[j] = rs * (u - mu - xh * mux);
        }
    }
}

/* dshift = Σ_tokens g, dscale = Σ_tokens g·xh; one task per (sample, column block). */
static void norm_modulate_dparams(int64_t b, int64_t n, int64_t d, const float *x, const float *mean,
                                  const float *rstd, const float *g, float *dshift, float *dscale)
{
    int64_t blocks = (d + CHUNK - 1) / CHUNK, tasks = b * blocks;
#pragma omp parallel for schedule(static) if (b * n * d > 32768 && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bi = t / blocks, j0 = (t % blocks) * CHUNK;
        int64_t len = d - j0 < CHUNK ? d - j0 : CHUNK;
        double ash[CHUNK] = {0}, asc[CHUNK] = {0};
        for (int64_t i = 0; i < n; i++) {
            int64_t r = bi * n + i;
            const float *xr = x + r * d + j0, *gr = g + r * d + j0;
            float m = mean[r], rs = rstd[r];
            for (int64_t j = 0; j < len; j++) {
                ash[j] += gr[j];
                asc[j] += (double)gr[j] * ((xr[j] - m) * rs);
            }
        }
        for (int64_t j = 0; j < len; j++) {
            if (dshift) dshift[bi * d + j0 + j] = (float)ash[j];
            if (dscale) dscale[bi * d + j0 + j] = (float)asc[j];
        }
    }
}

void gv_cpu_norm_modulate_backward(int64_t b, int64_t n, int64_t d, const float *x, const float *scale,
                                   const float *mean, const float *rstd, const float *g, float *dx, float *dshift,
                                   float *dscale)
{
    if (dx) norm_modulate_dx(n, d, b * n, x, scale, mean, rstd, g, dx);
    if (dshift || dscale) norm_modulate_dparams(b, n, d, x, mean, rstd, g, dshift, dscale);
}

/* ---- gated residual --------------------------------------------------------- */

void gv_cpu_gated_residual(int64_t b, int64_t n, int64_t d, const float *x, const float *gate, const float *y,
                           float *out)
{
    int64_t rows = b * n;
#pragma omp parallel for schedule(static) if (rows * d > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d, *yr = y + r * d, *gt = gate + (r / n) * d;
        float *o = out + r * d;
        for (int64_t j = 0; j < d; j++) o[j] = xr[j] + gt[j] * yr[j];
    }
}

void gv_cpu_gated_residual_backward(int64_t b, int64_t n, int64_t d, const float *gate, const float *y,
                                    const float *g, float *dy, float *dgate)
{
    int64_t rows = b * n;
    if (dy) {
#pragma omp parallel for schedule(static) if (rows * d > 32768 && rows > 1)
        for (int64_t r = 0; r < rows; r++) {
            const float *gr = g + r * d, *gt = gate + (r / n) * d;
            float *o = dy + r * d;
            for (int64_t j = 0; j < d; j++) o[j] = gr[j] * gt[j];
        }
    }
    if (!dgate) return;
    int64_t blocks = (d + CHUNK - 1) / CHUNK, tasks = b * blocks;
#pragma omp parallel for schedule(static) if (rows * d > 32768 && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bi = t / blocks, j0 = (t % blocks) * CHUNK;
        int64_t len = d - j0 < CHUNK ? d - j0 : CHUNK;
        double acc[CHUNK] = {0};
        for (int64_t i = 0; i < n; i++) {
            const float *gr = g + (bi * n + i) * d + j0, *yr = y + (bi * n + i) * d + j0;
            for (int64_t j = 0; j < len; j++) acc[j] += (double)gr[j] * yr[j];
        }
        for (int64_t j = 0; j < len; j++) dgate[bi * d + j0 + j] = (float)acc[j];
    }
}

/* ---- GLU with SiLU ------------------------------------------------------------ */

void gv_cpu_glu_silu(int64_t rows, int64_t c, const float *h, float *out)
{
#pragma omp parallel for schedule(static) if (rows * c > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = h + r * 2 * c, *z = a + c;
        float *o = out + r * c;
        for (int64_t j = 0; j < c; j++) o[j] = a[j] * (z[j] * sigmoidf(z[j]));
    }
}

void gv_cpu_glu_silu_backward(int64_t rows, int64_t c, const float *h, const float *g, float *dh)
{
    /* SiLU'(z) = σ(z)·(1 + z·(1 − σ(z))). */
#pragma omp parallel for schedule(static) if (rows * c > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *a = h + r * 2 * c, *z = a + c, *gr = g + r * c;
        float *da = dh + r * 2 * c, *dz = da + c;
        for (int64_t j = 0; j < c; j++) {
            float s = sigmoidf(z[j]);
            da[j] = gr[j] * (z[j] * s);
            dz[j] = gr[j] * a[j] * (s * (1.0f + z[j] * (1.0f - s)));
        }
    }
}

/* ---- sinusoidal timestep embedding ------------------------------------------- */

void gv_cpu_timestep_embedding(int64_t b, const float *t, int64_t t_stride, int64_t dim, double max_period,
                               float *out)
{
    int64_t half = dim / 2;
    double lp = log(max_period);
    /* In double: at t ≈ 1000 a float argument would be off by ~1e-4 rad. */
#pragma omp parallel for schedule(static) if (b * dim > 32768 && b > 1)
    for (int64_t i = 0; i < b; i++) {
        double ti = t[i * t_stride];
        float *o = out + i * dim;
        for (int64_t j = 0; j < half; j++) {
            double arg = ti * exp(-lp * (double)j / (double)half);
            o[j] = (float)cos(arg);
            o[half + j] = (float)sin(arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

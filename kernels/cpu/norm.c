/*
 * norm.c — softmax, log-softmax, layer norm and RMS norm, with their
 * backward passes. Statistics are accumulated in double; every output element
 * (and every column of a weight gradient) is computed by exactly one thread,
 * so results do not depend on the thread count.
 */
#include "cpu.h"
#include "rowsum.h"
#include "vecmath.h"

#include <math.h>
#include <stddef.h>

enum { CHUNK = 64 }; /* columns one task handles in a strided pass */


/* Σ a b. */
static double row_dot(const float *a, const float *b, int64_t n)
{
    double acc[GV_LANES] = {0};
    int64_t j = 0;
    for (; j + GV_LANES <= n; j += GV_LANES)
        for (int l = 0; l < GV_LANES; l++) acc[l] += (double)a[j + l] * b[j + l];
    for (; j < n; j++) acc[0] += (double)a[j] * b[j];
    return gv_lanes_total(acc);
}

static float row_max(const float *x, int64_t n)
{
    float acc[GV_LANES];
    for (int l = 0; l < GV_LANES; l++) acc[l] = -INFINITY;
    int64_t j = 0;
    for (; j + GV_LANES <= n; j += GV_LANES)
        for (int l = 0; l < GV_LANES; l++) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
    for (; j < n; j++) acc[0] = x[j] > acc[0] ? x[j] : acc[0];
    float m = acc[0];
    for (int l = 1; l < GV_LANES; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}

/* Softmax of one contiguous row (the inner == 1 case). */
static void softmax_row(const float *x, float *y, int64_t n, bool log_out)
{
    float m = row_max(x, n);
    for (int64_t j = 0; j < n; j++) y[j] = gv_exp_nonpos(x[j] - m);
    double sum = gv_row_sum(y, n);
    if (log_out) {
        float shift = m + (float)log(sum);
        for (int64_t j = 0; j < n; j++) y[j] = x[j] - shift;
    } else {
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}

static void softmax_row_backward(const float *y, const float *g, float *dx, int64_t n, bool log_out)
{
    if (log_out) {
        float s = (float)gv_row_sum(g, n);
        for (int64_t j = 0; j < n; j++) dx[j] = g[j] - gv_exp_nonpos(y[j]) * s;
    } else {
        float s = (float)row_dot(g, y, n);
        for (int64_t j = 0; j < n; j++) dx[j] = y[j] * (g[j] - s);
    }
}

/* ---- softmax over (outer, n, inner) ---------------------------------------- */

/* Tasks are (outer index, block of up to CHUNK inner columns); the softmax
 * dimension runs with stride inner inside each task. */
static int64_t softmax_tasks(int64_t outer, int64_t inner) { return outer * ((inner + CHUNK - 1) / CHUNK); }

void gv_cpu_softmax(int64_t outer, int64_t n, int64_t inner, const float *x, float *y, bool log_out)
{
    int64_t blocks = (inner + CHUNK - 1) / CHUNK, tasks = softmax_tasks(outer, inner);
    if (n == 0) return;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > 32768 && outer > 1)
        for (int64_t o = 0; o < outer; o++) softmax_row(x + o * n, y + o * n, n, log_out);
        return;
    }
#pragma omp parallel for schedule(static) if (outer * n * inner > 32768 && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / blocks, j0 = (t % blocks) * CHUNK;
        int64_t len = inner - j0 < CHUNK ? inner - j0 : CHUNK;
        const float *xs = x + o * n * inner + j0;
        float *ys = y + o * n * inner + j0;
        float mx[CHUNK];
        double sum[CHUNK];
        for (int64_t j = 0; j < len; j++) {
            mx[j] = -INFINITY;
            sum[j] = 0;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < len; j++) mx[j] = xs[i * inner + j] > mx[j] ? xs[i * inner + j] : mx[j];
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < len; j++) {
                float e = gv_exp_nonpos(xs[i * inner + j] - mx[j]);
                sum[j] += e;
                if (!log_out) ys[i * inner + j] = e;
            }
        if (log_out) {
            float shift[CHUNK];
            for (int64_t j = 0; j < len; j++) shift[j] = mx[j] + (float)log(sum[j]);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < len; j++) ys[i * inner + j] = xs[i * inner + j] - shift[j];
        } else {
            float inv[CHUNK];
            for (int64_t j = 0; j < len; j++) inv[j] = (float)(1.0 / sum[j]);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < len; j++) ys[i * inner + j] *= inv[j];
        }
    }
}

void gv_cpu_softmax_backward(int64_t outer, int64_t n, int64_t inner, const float *y, const float *g, float *dx,
                             bool log_out)
{
    int64_t blocks = (inner + CHUNK - 1) / CHUNK, tasks = softmax_tasks(outer, inner);
    if (n == 0) return;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > 32768 && outer > 1)
        for (int64_t o = 0; o < outer; o++) softmax_row_backward(y + o * n, g + o * n, dx + o * n, n, log_out);
        return;
    }
#pragma omp parallel for schedule(static) if (outer * n * inner > 32768 && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / blocks, j0 = (t % blocks) * CHUNK;
        int64_t len = inner - j0 < CHUNK ? inner - j0 : CHUNK;
        int64_t base = o * n * inner + j0;
        const float *ys = y + base, *gs = g + base;
        float *ds = dx + base;
        /* softmax: dx = y (g - Σ g y); log-softmax: dx = g - exp(y) Σ g. */
        double acc[CHUNK] = {0};
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < len; j++)
                acc[j] += log_out ? (double)gs[i * inner + j] : (double)gs[i * inner + j] * ys[i * inner + j];
        float s[CHUNK];
        for (int64_t j = 0; j < len; j++) s[j] = (float)acc[j];
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < len; j++) {
                int64_t k = i * inner + j;
                ds[k] = log_out ? gs[k] - gv_exp_nonpos(ys[k]) * s[j] : ys[k] * (gs[k] - s[j]);
            }
    }
}

/* ---- layer norm and RMS norm over the last dimension ----------------------- */

/* Shared by both norms: centered selects layer norm (subtract the mean);
 * mean may be NULL for RMS norm, and w, b, mean_out, rstd_out may be NULL. */
static void norm_forward(int64_t rows, int64_t cols, const float *x, const float *w, const float *b, double eps,
                         bool centered, float *y, float *mean_out, float *rstd_out)
{
#pragma omp parallel for schedule(static) if (rows * cols > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        /* Two passes (mean, then squared deviations) keep the variance exact
         * enough in double without Welford's divisions. */
        double mean = centered && cols > 0 ? gv_row_sum(xr, cols) / (double)cols : 0;
        double ss = gv_row_sum_sq(xr, cols, mean);
        double var = cols > 0 ? ss / (double)cols : 0;
        double rstd = 1.0 / sqrt(var + eps);
        float m = (float)mean, rs = (float)rstd;
        for (int64_t j = 0; j < cols; j++) {
            float v = (xr[j] - m) * rs;
            if (w) v *= w[j];
            if (b) v += b[j];
            yr[j] = v;
        }
        if (mean_out) mean_out[r] = m;
        if (rstd_out) rstd_out[r] = rs;
    }
}

static void norm_backward_input(int64_t rows, int64_t cols, const float *x, const float *w, const float *mean,
                                const float *rstd, const float *g, bool centered, float *dx)
{
    /* With xhat = (x - mean) rstd and d = g w:
     *   layer norm: dx = rstd (d - mean(d) - xhat mean(d xhat))
     *   RMS norm:   dx = rstd (d - xhat mean(d xhat)) */
#pragma omp parallel for schedule(static) if (rows * cols > 32768 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols, *gr = g + r * cols;
        float *dr = dx + r * cols;
        float m = mean ? mean[r] : 0.0f, rs = rstd[r];
        double sd[GV_LANES] = {0}, sdx[GV_LANES] = {0};
        int64_t j = 0;
        for (; j + GV_LANES <= cols; j += GV_LANES)
            for (int l = 0; l < GV_LANES; l++) {
                float d = w ? gr[j + l] * w[j + l] : gr[j + l];
                float xh = (xr[j + l] - m) * rs;
                sd[l] += d;
                sdx[l] += (double)d * xh;
            }
        for (; j < cols; j++) {
            float d = w ? gr[j] * w[j] : gr[j];
            float xh = (xr[j] - m) * rs;
            sd[0] += d;
            sdx[0] += (double)d * xh;
        }
        float md = centered && cols > 0 ? (float)(gv_lanes_total(sd) / (double)cols) : 0.0f;
        float mdx = cols > 0 ? (float)(gv_lanes_total(sdx) / (double)cols) : 0.0f;
        for (int64_t j = 0; j < cols; j++) {
            float d = w ? gr[j] * w[j] : gr[j];
            float xh = (xr[j] - m) * rs;
            dr[j] = rs * (d - md - xh * mdx);
        }
    }
}

/* dw = Σ_rows g xhat, db = Σ_rows g; each block of columns to one thread. */
static void norm_backward_affine(int64_t rows, int64_t cols, const float *x, const float *mean, const float *rstd,
                                 const float *g, float *dw, float *db)
{
    int64_t blocks = (cols + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (rows * cols > 32768 && blocks > 1)
    for (int64_t bl = 0; bl < blocks; bl++) {
        int64_t j0 = bl * CHUNK, len = cols - j0 < CHUNK ? cols - j0 : CHUNK;
        double aw[CHUNK] = {0}, ab[CHUNK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols + j0, *gr = g + r * cols + j0;
            float m = mean ? mean[r] : 0.0f, rs = rstd[r];
            for (int64_t j = 0; j < len; j++) {
                aw[j] += (double)gr[j] * ((xr[j] - m) * rs);
                ab[j] += gr[j];
            }
        }
        for (int64_t j = 0; j < len; j++) {
            if (dw) dw[j0 + j] = (float)aw[j];
            if (db) db[j0 + j] = (float)ab[j];
        }
    }
}

void gv_cpu_layer_norm(int64_t rows, int64_t cols, const float *x, const float *w, const float *b, double eps,
                       float *y, float *mean, float *rstd)
{
    norm_forward(rows, cols, x, w, b, eps, true, y, mean, rstd);
}

void gv_cpu_layer_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w, const float *mean,
                                const float *rstd, const float *g, float *dx, float *dw, float *db)
{
    if (dx) norm_backward_input(rows, cols, x, w, mean, rstd, g, true, dx);
    if (dw || db) norm_backward_affine(rows, cols, x, mean, rstd, g, dw, db);
}

void gv_cpu_rms_norm(int64_t rows, int64_t cols, const float *x, const float *w, double eps, float *y, float *rstd)
{
    norm_forward(rows, cols, x, w, NULL, eps, false, y, NULL, rstd);
}

void gv_cpu_rms_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd,
                              const float *g, float *dx, float *dw)
{
    if (dx) norm_backward_input(rows, cols, x, w, NULL, rstd, g, false, dx);
    if (dw) norm_backward_affine(rows, cols, x, NULL, rstd, g, dw, NULL);
}

/*
 * conv_gemm.c — the general 2-D convolution on NHWC data: any kh×kw kernel,
 * stride, symmetric zero padding and groups, as im2col + sgemm per group.
 *
 * The column matrix of a whole image is kh·kw times the input (4.8 GB for a
 * 3×3 convolution of 128 channels at 1024²), so the output is computed in
 * chunks of output rows (the rows of all batch items taken as one run of
 * b·ho rows) whose columns fit GV_CONV_CPU_COLUMNS floats: tens of MB,
 * still thousands of GEMM rows at the shapes that matter. The chunk size
 * depends on the shape alone, and split sgemm (core/blas.c) cuts each GEMM
 * at fixed places, so the result does not depend on the thread count.
 *
 * Columns: row p of a chunk is output pixel p; its groups·kh·kw·cpg entries
 * are ordered (group, i, j, ci), so group g's block of K = kh·kw·cpg starts
 * at g·K and matches the tap-major weight (cout, kh, kw, cpg) row for row.
 * A 1×1 convolution with stride 1 and no padding needs no columns: the
 * input itself is the column matrix (cpg channels at g·cpg, leading
 * dimension cin).
 */
#include "cpu.h"
#include "parallel.h"
#include "../../core/internal.h"

#include <string.h>

enum { GV_CONV_CPU_COLUMNS = 4 << 20 };

/* The matrix multiply-adds under which a GEMM stays on one thread (and the
 * groups are spread over the threads instead). */
#define GROUP_GEMM_SMALL (128.0 * 128.0 * 128.0)

static bool conv_is_pointwise(const gv_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

/* Output rows (of the b·ho run) per chunk: at least one. */
static int64_t chunk_rows(const gv_conv_shape *s)
{
    int64_t per_row = s->wo * s->kh * s->kw * s->cin;
    int64_t rows = per_row > 0 ? GV_CONV_CPU_COLUMNS / per_row : 1;
    if (rows < 1) rows = 1;
    int64_t total = s->b * s->ho;
    return rows < total ? rows : (total > 0 ? total : 1);
}

int64_t gv_cpu_conv_scratch(const gv_conv_shape *s)
{
    if (conv_is_pointwise(s)) return 0;
    return chunk_rows(s) * s->wo * s->kh * s->kw * s->cin;
}

/* The columns of output rows [r0, r1) of the b·ho run. */
static void im2col(const gv_conv_shape *s, const float *x, int64_t r0, int64_t r1, float *col)
{
    const int64_t cpg = s->cin / s->groups, kk = s->kh * s->kw, kg = kk * cpg, width = s->groups * kg;
    const int64_t pixels = (r1 - r0) * s->wo;
    GV_PARALLEL_FOR(pixels * width > 32768,
    for (int64_t p = 0; p < pixels; p++) {
        int64_t r = r0 + p / s->wo, ow = p % s->wo, bi = r / s->ho, oh = r % s->ho;
        float *out = col + p * width;
        for (int64_t i = 0; i < s->kh; i++) {
            int64_t ih = oh * s->stride - s->pad + i;
            for (int64_t j = 0; j < s->kw; j++) {
                int64_t iw = ow * s->stride - s->pad + j;
                float *dst = out + (i * s->kw + j) * cpg;
                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) {
                    for (int64_t g = 0; g < s->groups; g++) memset(dst + g * kg, 0, (size_t)cpg * sizeof *dst);
                    continue;
                }
                const float *src = x + ((bi * s->h + ih) * s->w + iw) * s->cin;
                if (s->groups == 1) {
                    memcpy(dst, src, (size_t)cpg * sizeof *dst);
                } else {
                    for (int64_t g = 0; g < s->groups; g++)
                        memcpy(dst + g * kg, src + g * cpg, (size_t)cpg * sizeof *dst);
                }
            }
        }
    });
}

/* dx rows touched by output rows [r0, r1) receive the column gradients:
 * dx[bi, ih, iw, c] += Σ over the taps (i, j) whose output pixel
 * (oh, ow) = ((ih + pad − i)/stride, (iw + pad − j)/stride) is whole and
 * lies in the chunk. One task per input row, so each element has one
 * writer; taps are added in a fixed order. */
static void col2im(const gv_conv_shape *s, const float *col, int64_t r0, int64_t r1, float *dx)
{
    const int64_t cpg = s->cin / s->groups, kg = s->kh * s->kw * cpg, width = s->groups * kg;
    const int64_t b0 = r0 / s->ho, b1 = (r1 - 1) / s->ho;
    /* the input rows the chunk's output rows reach: of the first and last
     * batch items in part, of the ones between whole */
    int64_t lo = (r0 % s->ho) * s->stride - s->pad, hi = ((r1 - 1) % s->ho) * s->stride - s->pad + s->kh - 1;
    if (lo < 0) lo = 0;
    if (hi > s->h - 1) hi = s->h - 1;
    /* one batch item: its rows lo..hi; several: every row of each, skipping
     * what the first and last do not reach (such chunks are of small images) */
    int64_t first = b0 == b1 ? lo : 0, span = b0 == b1 ? hi - lo + 1 : s->h;
    int64_t tasks = (b1 - b0 + 1) * span;
    GV_PARALLEL_FOR(tasks > 1 && tasks * s->w * s->cin * s->kh > 32768,
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bi = b0 + t / span, ih = first + t % span;
        if ((bi == b0 && ih < lo) || (bi == b1 && ih > hi)) continue;
        float *drow = dx + (bi * s->h + ih) * s->w * s->cin;
        for (int64_t i = 0; i < s->kh; i++) {
            int64_t num = ih + s->pad - i;
            if (num < 0 || num % s->stride) continue;
            int64_t r = bi * s->ho + num / s->stride;
            if (num / s->stride >= s->ho || r < r0 || r >= r1) continue;
            const float *crow = col + (r - r0) * s->wo * width;
            for (int64_t iw = 0; iw < s->w; iw++) {
                float *d = drow + iw * s->cin;
                for (int64_t j = 0; j < s->kw; j++) {
                    int64_t nw = iw + s->pad - j;
                    if (nw < 0 || nw % s->stride || nw / s->stride >= s->wo) continue;
                    const float *c = crow + (nw / s->stride) * width + (i * s->kw + j) * cpg;
                    for (int64_t g = 0; g < s->groups; g++) {
                        float *restrict dd = d + g * cpg;
                        const float *restrict cc = c + g * kg;
                        for (int64_t ci = 0; ci < cpg; ci++) dd[ci] += cc[ci];
                    }
                }
            }
        }
    });
}

/* One GEMM per group, row-major: C_g (m, n) = beta·C_g + op(A_g)·op(B_g),
 * operand g at a + g·sa, b + g·sb, c + g·sc. Small GEMMs of many groups
 * go to the threads a group each (a GEMM's bits do not depend on which
 * thread runs it); large ones are split by the sgemm itself. */
static void group_gemm(gv_cpu_sgemm_fn sgemm, int64_t groups, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                       const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb, int64_t sb, float beta,
                       float *c, int64_t ldc, int64_t sc)
{
    if (m == 0 || n == 0) return;
    int opa = ta ? GV_CBLAS_TRANS : GV_CBLAS_NO_TRANS, opb = tb ? GV_CBLAS_TRANS : GV_CBLAS_NO_TRANS;
    if (k == 0) {
        if (beta == 0.0f)
            for (int64_t g = 0; g < groups; g++)
                for (int64_t r = 0; r < m; r++) memset(c + g * sc + r * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
    GV_PARALLEL_FOR(groups > 1 && (double)m * n * k < GROUP_GEMM_SMALL && (double)m * n * k * groups >= GROUP_GEMM_SMALL,
    for (int64_t g = 0; g < groups; g++)
        sgemm(GV_CBLAS_ROW_MAJOR, opa, opb, (int)m, (int)n, (int)k, 1.0f, a + g * sa, (int)lda, b + g * sb,
              (int)ldb, beta, c + g * sc, (int)ldc););
}

void gv_cpu_conv_forward(gv_cpu_sgemm_fn sgemm, const gv_conv_shape *s, const float *x, const float *wk,
                         const float *bias, float *y, float *scratch)
{
    const int64_t cpg = s->cin / s->groups, opg = s->cout / s->groups, kg = s->kh * s->kw * cpg;
    const int64_t total = s->b * s->ho, step = chunk_rows(s);
    const bool direct = conv_is_pointwise(s);
    if (gv_cpu_conv_forward_dnnl(s, x, wk, bias, y)) return;
    for (int64_t r0 = 0; r0 < total; r0 += step) {
        int64_t r1 = r0 + step < total ? r0 + step : total, pixels = (r1 - r0) * s->wo;
        float *yc = y + r0 * s->wo * s->cout;
        if (bias)
            for (int64_t p = 0; p < pixels; p++) memcpy(yc + p * s->cout, bias, (size_t)s->cout * sizeof *yc);
        const float *col = scratch;
        int64_t ldcol = s->groups * kg, gstride = kg;
        if (direct) {
            col = x + r0 * s->wo * s->cin;
            ldcol = s->cin;
            gstride = cpg;
        } else {
            im2col(s, x, r0, r1, scratch);
        }
        /* y_g (pixels, opg) = col_g (pixels, K) · wk_g (opg, K)ᵀ */
        group_gemm(sgemm, s->groups, false, true, pixels, opg, kg, col, ldcol, gstride, wk, kg, opg * kg,
                   bias ? 1.0f : 0.0f, yc, s->cout, opg);
    }
}

void gv_cpu_conv_backward_input(gv_cpu_sgemm_fn sgemm, const gv_conv_shape *s, const float *dy, const float *wk,
                                float *dx, float *scratch)
{
    const int64_t cpg = s->cin / s->groups, opg = s->cout / s->groups, kg = s->kh * s->kw * cpg;
    const int64_t total = s->b * s->ho, step = chunk_rows(s);
    if (conv_is_pointwise(s)) {
        /* dx_g (pixels, cpg) = dy_g (pixels, opg) · wk_g (opg, cpg), written in place */
        group_gemm(sgemm, s->groups, false, false, total * s->wo, cpg, opg, dy, s->cout, opg, wk, kg, opg * kg, 0.0f,
                   dx, s->cin, cpg);
        return;
    }
    memset(dx, 0, (size_t)(s->b * s->h * s->w * s->cin) * sizeof *dx);
    for (int64_t r0 = 0; r0 < total; r0 += step) {
        int64_t r1 = r0 + step < total ? r0 + step : total, pixels = (r1 - r0) * s->wo;
        /* col_g (pixels, K) = dy_g (pixels, opg) · wk_g (opg, K) */
        group_gemm(sgemm, s->groups, false, false, pixels, kg, opg, dy + r0 * s->wo * s->cout, s->cout, opg, wk, kg,
                   opg * kg, 0.0f, scratch, s->groups * kg, kg);
        col2im(s, scratch, r0, r1, dx);
    }
}

void gv_cpu_conv_backward_weight(gv_cpu_sgemm_fn sgemm, const gv_conv_shape *s, const float *x, const float *dy,
                                 float *dwk, float *scratch)
{
    const int64_t cpg = s->cin / s->groups, opg = s->cout / s->groups, kg = s->kh * s->kw * cpg;
    const int64_t total = s->b * s->ho, step = chunk_rows(s);
    const bool direct = conv_is_pointwise(s);
    if (total * s->wo == 0) {
        memset(dwk, 0, (size_t)(s->cout * kg) * sizeof *dwk);
        return;
    }
    for (int64_t r0 = 0; r0 < total; r0 += step) {
        int64_t r1 = r0 + step < total ? r0 + step : total, pixels = (r1 - r0) * s->wo;
        const float *col = scratch;
        int64_t ldcol = s->groups * kg, gstride = kg;
        if (direct) {
            col = x + r0 * s->wo * s->cin;
            ldcol = s->cin;
            gstride = cpg;
        } else {
            im2col(s, x, r0, r1, scratch);
        }
        /* dw_g (opg, K) (+)= dy_g (pixels, opg)ᵀ · col_g (pixels, K), the chunks added in order */
        group_gemm(sgemm, s->groups, true, false, opg, kg, pixels, dy + r0 * s->wo * s->cout, s->cout, opg, col,
                   ldcol, gstride, r0 == 0 ? 0.0f : 1.0f, dwk, kg, opg * kg);
    }
}

/* loss.c — CPU kernels for mse, cross entropy, dropout and cosine similarity. */
#include "cpu.h"

#include <math.h>
#include <stdbool.h>

/* Full reductions split the range into at most MAX_CHUNKS chunks whose
 * bounds depend only on n, each summed by one thread, and the chunk sums are
 * added in order: the result is the same for every thread count. */
enum { MAX_CHUNKS = 256, MIN_CHUNK = 4096 };

typedef double (*range_sum_fn)(const void *ctx, int64_t lo, int64_t hi);

static double chunked_sum(int64_t n, int64_t work, range_sum_fn fn, const void *ctx)
{
    int64_t chunk = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (chunk < MIN_CHUNK) chunk = MIN_CHUNK;
    int64_t nchunks = (n + chunk - 1) / chunk;
    double part[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (work > 32768 && nchunks > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t hi = (c + 1) * chunk;
        part[c] = fn(ctx, c * chunk, hi < n ? hi : n);
    }
    double s = 0;
    for (int64_t c = 0; c < nchunks; c++) s += part[c];
    return s;
}

/* ---- mean squared error --------------------------------------------------- */

typedef struct { const float *a, *b; } sq_ctx;

static double sq_range(const void *ctx, int64_t lo, int64_t hi)
{
    const sq_ctx *c = ctx;
    double s = 0;
    for (int64_t i = lo; i < hi; i++) {
        double d = (double)c->a[i] - (double)c->b[i];
        s += d * d;
    }
    return s;
}

double gv_cpu_sq_diff_sum(const float *a, const float *b, int64_t n)
{
    sq_ctx c = {a, b};
    return chunked_sum(n, n, sq_range, &c);
}

void gv_cpu_mse_backward(const float *a, const float *b, int64_t n, float scale, float *ga, float *gb)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float d = scale * (a[i] - b[i]);
        if (ga) ga[i] = d;
        if (gb) gb[i] = -d;
    }
}

/* ---- cross entropy ---------------------------------------------------------- */

/* log Σ exp(row), shifted by the row maximum so that no exp overflows. */
static double row_logsumexp(const float *row, int64_t c)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < c; j++) m = row[j] > m ? row[j] : m;
    if (isinf(m)) return m; /* all -inf (log 0), or +inf present */
    double s = 0;
    for (int64_t j = 0; j < c; j++) s += exp((double)row[j] - m);
    return m + log(s);
}

typedef struct { const float *x; const int64_t *t; int64_t c; } ce_ctx;

static double ce_range(const void *ctx, int64_t lo, int64_t hi)
{
    const ce_ctx *k = ctx;
    double s = 0;
    for (int64_t i = lo; i < hi; i++) {
        const float *row = k->x + i * k->c;
        s += row_logsumexp(row, k->c) - (double)row[k->t[i]];
    }
    return s;
}

double gv_cpu_cross_entropy_sum(const float *x, const int64_t *t, int64_t n, int64_t c)
{
    ce_ctx k = {x, t, c};
    return chunked_sum(n, n * c, ce_range, &k);
}

void gv_cpu_cross_entropy_backward(const float *x, const int64_t *t, int64_t n, int64_t c, float scale, float *gx)
{
#pragma omp parallel for schedule(static) if (n * c > 32768)
    for (int64_t i = 0; i < n; i++) {
        const float *row = x + i * c;
        float *grow = gx + i * c;
        double lse = row_logsumexp(row, c);
        for (int64_t j = 0; j < c; j++) grow[j] = scale * (float)exp((double)row[j] - lse);
        grow[t[i]] -= scale;
    }
}

/* ---- dropout ------------------------------------------------------------------ */

void gv_cpu_dropout_apply(const float *x, float *out, uint8_t *keep, int64_t n, float p, float scale)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        int k = out[i] > p;
        out[i] = k ? x[i] * scale : 0.0f;
        if (keep) keep[i] = (uint8_t)k;
    }
}

void gv_cpu_dropout_backward(const float *g, const uint8_t *keep, int64_t n, float scale, float *gx)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) gx[i] = keep[i] ? g[i] * scale : 0.0f;
}

/* ---- cosine similarity ----------------------------------------------------------- */

/* Offsets of the o-th output row (all dimensions but dim, row-major) in a, b
 * and in the contiguous full shape. */
static void row_offsets(int32_t ndim, const int64_t *shape, int32_t dim, int64_t o, const int64_t *sa,
                        const int64_t *sb, int64_t *oa, int64_t *ob, int64_t *oc)
{
    int64_t a = 0, b = 0, c = 0, cs = 1;
    for (int32_t d = ndim - 1; d >= 0; d--) {
        if (d != dim) {
            int64_t i = o % shape[d];
            o /= shape[d];
            a += i * sa[d];
            b += i * sb[d];
            c += i * cs;
        }
        cs *= shape[d];
    }
    *oa = a;
    *ob = b;
    *oc = c;
}

static int64_t inner_stride(int32_t ndim, const int64_t *shape, int32_t dim)
{
    int64_t s = 1;
    for (int32_t d = dim + 1; d < ndim; d++) s *= shape[d];
    return s;
}

static void row_sums(const float *a, int64_t as, const float *b, int64_t bs, int64_t len, double *ab, double *aa,
                     double *bb)
{
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t k = 0; k < len; k++) {
        double x = a[k * as], y = b[k * bs];
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    *ab = sab;
    *aa = saa;
    *bb = sbb;
}

void gv_cpu_cosine_forward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa,
                           const float *b, const int64_t *sb, double eps, float *out)
{
    int64_t len = shape[dim], rows = 1;
    for (int32_t d = 0; d < ndim; d++)
        if (d != dim) rows *= shape[d];
#pragma omp parallel for schedule(static) if (rows * len > 32768 && rows > 1)
    for (int64_t o = 0; o < rows; o++) {
        int64_t oa, ob, oc;
        row_offsets(ndim, shape, dim, o, sa, sb, &oa, &ob, &oc);
        double ab, aa, bb;
        row_sums(a + oa, sa[dim], b + ob, sb[dim], len, &ab, &aa, &bb);
        double w = aa * bb;
        out[o] = (float)(ab / sqrt(w > eps * eps ? w : eps * eps));
    }
}

void gv_cpu_cosine_backward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa,
                            const float *b, const int64_t *sb, double eps, const float *g, float *ga, float *gb)
{
    int64_t len = shape[dim], rows = 1, cstride = inner_stride(ndim, shape, dim);
    for (int32_t d = 0; d < ndim; d++)
        if (d != dim) rows *= shape[d];
#pragma omp parallel for schedule(static) if (rows * len > 32768 && rows > 1)
    for (int64_t o = 0; o < rows; o++) {
        int64_t oa, ob, oc;
        row_offsets(ndim, shape, dim, o, sa, sb, &oa, &ob, &oc);
        const float *ar = a + oa, *br = b + ob;
        int64_t as = sa[dim], bs = sb[dim];
        double ab, aa, bb;
        row_sums(ar, as, br, bs, len, &ab, &aa, &bb);
        double w = aa * bb, go = g[o];
        /* Below eps the denominator is the constant eps (the clamp passes no
         * gradient); above it d cos/da = b/n − cos·a/Σa², and symmetrically. */
        bool clamped = w < eps * eps;
        double n = clamped ? eps : sqrt(w);
        double cosv = ab / n;
        double ka = clamped ? 0 : cosv / aa, kb = clamped ? 0 : cosv / bb;
        for (int64_t k = 0; k < len; k++) {
            double x = ar[k * as], y = br[k * bs];
            if (ga) ga[oc + k * cstride] = (float)(go * (y / n - ka * x));
            if (gb) gb[oc + k * cstride] = (float)(go * (x / n - kb * y));
        }
    }
}

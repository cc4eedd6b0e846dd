/* reduce.c — sum, mean, max and min over any set of dimensions, with the
 * positions of the extremes for max/min, and the scatter that is their
 * gradient. Deterministic: every output element (or, for a full reduction,
 * every fixed-size block) is reduced by one thread in a fixed order. */
#include "cpu.h"
#include "parallel.h"
#include "../../core/include/grove.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#define PAR_MIN 32768
/* Output columns reduced together on the column path, and the block length
 * of a full reduction: fixed, so sums never depend on the thread count. */
#define COL_CHUNK 256
#define FULL_BLOCK 16384

/* Drops size-1 dimensions and merges neighbours that step through memory as
 * one run. Row-major positions over the kept and over the reduced dimensions
 * stay the same, so output order and reduce_arg positions are unaffected. */
int32_t gv_cpu_merge_dims(int32_t n, int64_t *shape, int64_t *stride)
{
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (shape[i] == 1) continue;
        if (k > 0 && stride[k - 1] == stride[i] * shape[i]) {
            shape[k - 1] *= shape[i];
            stride[k - 1] = stride[i];
            continue;
        }
        shape[k] = shape[i];
        stride[k] = stride[i];
        k++;
    }
    return k;
}

static gv_reduce_plan simplify(const gv_reduce_plan *p)
{
    gv_reduce_plan q = *p;
    q.nkeep = gv_cpu_merge_dims(q.nkeep, q.keep_shape, q.keep_stride);
    q.nred = gv_cpu_merge_dims(q.nred, q.red_shape, q.red_stride);
    return q;
}

static int64_t prod(int32_t n, const int64_t *shape)
{
    int64_t r = 1;
    for (int32_t i = 0; i < n; i++) r *= shape[i];
    return r;
}

/* Memory offset of row-major position pos over the first n dimensions. */
static inline int64_t offset_of(int32_t n, const int64_t *shape, const int64_t *stride, int64_t pos)
{
    int64_t off = 0;
    for (int32_t d = n - 1; d >= 0; d--) {
        off += (pos % shape[d]) * stride[d];
        pos /= shape[d];
    }
    return off;
}

static inline bool better(int32_t op, float v, float best)
{
    /* The first NaN wins and then stays: nothing compares above it. */
    if (v != v) return best == best;
    return op == GROVE_MAX ? v > best : v < best;
}

/* One output element: walks the reduced dimensions row-major from x. */
static void reduce_one(int32_t op, const gv_reduce_plan *q, int64_t total, const float *x, float *out,
                       int64_t *idx)
{
    int32_t last = q->nred - 1;
    int64_t len = q->red_shape[last], s = q->red_stride[last], runs = total / len;
    if (op == GROVE_SUM || op == GROVE_MEAN) {
        double acc = 0;
        for (int64_t r = 0; r < runs; r++) {
            const float *p = x + offset_of(last, q->red_shape, q->red_stride, r);
            if (s == 1)
                for (int64_t j = 0; j < len; j++) acc += p[j];
            else
                for (int64_t j = 0; j < len; j++) acc += p[j * s];
        }
        *out = (float)(op == GROVE_MEAN ? acc / (double)total : acc);
        return;
    }
    float best = x[0];
    int64_t bi = 0;
    for (int64_t r = 0; r < runs; r++) {
        const float *p = x + offset_of(last, q->red_shape, q->red_stride, r);
        for (int64_t j = 0; j < len; j++) {
            float v = p[j * s];
            if (better(op, v, best)) {
                best = v;
                bi = r * len + j;
            }
        }
    }
    *out = best;
    if (idx) *idx = bi;
}

/* Kept innermost dimension: a block of up to COL_CHUNK neighbouring outputs
 * is reduced together so that each reduced step reads a contiguous strip. */
static void reduce_columns(int32_t op, const gv_reduce_plan *q, int64_t total, const float *x, float *out,
                           int64_t *idx)
{
    int32_t kl = q->nkeep - 1;
    int64_t cols = q->keep_shape[kl], ks = q->keep_stride[kl];
    int64_t outer = prod(kl, q->keep_shape), nch = (cols + COL_CHUNK - 1) / COL_CHUNK;
    int64_t tasks = outer * nch;
    GV_PARALLEL_FOR(tasks > 1 && outer * cols * total > PAR_MIN,
        for (int64_t t = 0; t < tasks; t++) {
            int64_t o = t / nch, c0 = (t % nch) * COL_CHUNK;
            int64_t m = cols - c0 < COL_CHUNK ? cols - c0 : COL_CHUNK;
            const float *base = x + offset_of(kl, q->keep_shape, q->keep_stride, o) + c0 * ks;
            float *po = out + o * cols + c0;
            if (op == GROVE_SUM || op == GROVE_MEAN) {
                double acc[COL_CHUNK];
                for (int64_t i = 0; i < m; i++) acc[i] = 0;
                for (int64_t r = 0; r < total; r++) {
                    const float *p = base + offset_of(q->nred, q->red_shape, q->red_stride, r);
                    if (ks == 1)
                        for (int64_t i = 0; i < m; i++) acc[i] += p[i];
                    else
                        for (int64_t i = 0; i < m; i++) acc[i] += p[i * ks];
                }
                for (int64_t i = 0; i < m; i++) po[i] = (float)(op == GROVE_MEAN ? acc[i] / (double)total : acc[i]);
                continue;
            }
            float best[COL_CHUNK];
            int64_t bi[COL_CHUNK];
            for (int64_t i = 0; i < m; i++) {
                best[i] = base[i * ks];
                bi[i] = 0;
            }
            for (int64_t r = 1; r < total; r++) {
                const float *p = base + offset_of(q->nred, q->red_shape, q->red_stride, r);
                for (int64_t i = 0; i < m; i++) {
                    float v = p[i * ks];
                    if (better(op, v, best[i])) {
                        best[i] = v;
                        bi[i] = r;
                    }
                }
            }
            for (int64_t i = 0; i < m; i++) po[i] = best[i];
            if (idx)
                for (int64_t i = 0; i < m; i++) idx[o * cols + c0 + i] = bi[i];
        });
}

/* Everything into one value from one strided run: fixed-size blocks in
 * parallel, then the block results combined in order. */
static bool reduce_full(int32_t op, const gv_reduce_plan *q, int64_t total, const float *x, float *out,
                        int64_t *idx)
{
    int64_t s = q->red_stride[0], nb = (total + FULL_BLOCK - 1) / FULL_BLOCK;
    double *part = malloc((size_t)nb * sizeof *part);
    int64_t *pidx = malloc((size_t)nb * sizeof *pidx);
    if (!part || !pidx) {
        free(part);
        free(pidx);
        return false;
    }
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * FULL_BLOCK, hi = lo + FULL_BLOCK < total ? lo + FULL_BLOCK : total;
        if (op == GROVE_SUM || op == GROVE_MEAN) {
            double acc = 0;
            if (s == 1)
                for (int64_t i = lo; i < hi; i++) acc += x[i];
            else
                for (int64_t i = lo; i < hi; i++) acc += x[i * s];
            part[b] = acc;
        } else {
            float best = x[lo * s];
            int64_t bi = lo;
            for (int64_t i = lo + 1; i < hi; i++)
                if (better(op, x[i * s], best)) {
                    best = x[i * s];
                    bi = i;
                }
            part[b] = best;
            pidx[b] = bi;
        }
    }
    if (op == GROVE_SUM || op == GROVE_MEAN) {
        double acc = 0;
        for (int64_t b = 0; b < nb; b++) acc += part[b];
        *out = (float)(op == GROVE_MEAN ? acc / (double)total : acc);
    } else {
        float best = (float)part[0];
        int64_t bi = pidx[0];
        for (int64_t b = 1; b < nb; b++)
            if (better(op, (float)part[b], best)) {
                best = (float)part[b];
                bi = pidx[b];
            }
        *out = best;
        if (idx) *idx = bi;
    }
    free(part);
    free(pidx);
    return true;
}

static void reduce_any(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx)
{
    int64_t nout = prod(p->nkeep, p->keep_shape), total = prod(p->nred, p->red_shape);
    if (nout == 0) return;
    if (total == 0) {
        /* Only sum and mean get here: the front-end refuses empty max/min. */
        for (int64_t o = 0; o < nout; o++) out[o] = op == GROVE_MEAN ? NAN : 0.0f;
        return;
    }
    gv_reduce_plan q = simplify(p);
    if (q.nred == 0) {
        /* Nothing left to reduce (all reduced sizes are 1): a strided copy. */
        for (int64_t o = 0; o < nout; o++) {
            out[o] = x[offset_of(q.nkeep, q.keep_shape, q.keep_stride, o)];
            if (idx) idx[o] = 0;
        }
        return;
    }
    if (q.nkeep == 0 && q.nred == 1 && total >= 2 * FULL_BLOCK && reduce_full(op, &q, total, x, out, idx)) return;
    int64_t min_red = q.red_stride[0];
    for (int32_t i = 1; i < q.nred; i++) min_red = q.red_stride[i] < min_red ? q.red_stride[i] : min_red;
    if (q.nkeep > 0 && q.keep_stride[q.nkeep - 1] < min_red) {
        reduce_columns(op, &q, total, x, out, idx);
        return;
    }
    GV_PARALLEL_FOR(nout > 1 && nout * total > PAR_MIN,
        for (int64_t o = 0; o < nout; o++)
            reduce_one(op, &q, total, x + offset_of(q.nkeep, q.keep_shape, q.keep_stride, o), out + o,
                       idx ? idx + o : NULL););
}

void gv_cpu_reduce(int32_t op, const gv_reduce_plan *p, const float *x, float *out)
{
    reduce_any(op, p, x, out, NULL);
}

void gv_cpu_reduce_arg(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx)
{
    reduce_any(op, p, x, out, idx);
}

void gv_cpu_reduce_arg_scatter(const gv_reduce_plan *p, const int64_t *idx, const float *g, float *gx)
{
    int64_t nout = prod(p->nkeep, p->keep_shape);
    GV_PARALLEL_FOR(nout > PAR_MIN,
        for (int64_t o = 0; o < nout; o++) {
            int64_t off = offset_of(p->nkeep, p->keep_shape, p->keep_stride, o) +
                          offset_of(p->nred, p->red_shape, p->red_stride, idx[o]);
            gx[off] = g[o];
        });
}

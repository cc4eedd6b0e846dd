/* index.c — gathers and selections: embedding lookup and its scatter-add,
 * and the three-way select behind where and masked_fill. */
#include "cpu.h"

#include <omp.h>
#include <string.h>

static inline int64_t load_index(const void *idx, int32_t is_i64, int64_t i)
{
    return is_i64 ? ((const int64_t *)idx)[i] : ((const int32_t *)idx)[i];
}

void gv_cpu_embedding(int64_t n, int64_t d, const float *weight, const void *idx, int32_t is_i64, float *out)
{
#pragma omp parallel for schedule(static) if (n * d > 65536 && n > 1)
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * d, weight + load_index(idx, is_i64, i) * d, (size_t)d * sizeof *out);
}

void gv_cpu_embedding_backward(int64_t n, int64_t d, int64_t v, const float *g, const void *idx, int32_t is_i64,
                               float *dweight)
{
    memset(dweight, 0, (size_t)(v * d) * sizeof *dweight);
    /* Each thread owns a range of dweight rows and scans every index, so a
     * row receives its contributions in index order whatever the thread
     * count: the sums are identical to a serial run. */
#pragma omp parallel if (n * d > 65536 && v > 1)
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t lo = v * t / nt, hi = v * (t + 1) / nt;
        for (int64_t i = 0; i < n; i++) {
            int64_t r = load_index(idx, is_i64, i);
            if (r < lo || r >= hi) continue;
            float *restrict dst = dweight + r * d;
            const float *restrict src = g + i * d;
            for (int64_t k = 0; k < d; k++) dst[k] += src[k];
        }
    }
}

void gv_cpu_where(int32_t ndim, const int64_t *shape, const uint8_t *cond, const int64_t *c_stride, const float *a,
                  const int64_t *a_stride, const float *b, const int64_t *b_stride, float *out)
{
    if (ndim == 0) {
        out[0] = cond[0] ? a[0] : b[0];
        return;
    }
    int64_t rows = 1, len = shape[ndim - 1];
    for (int32_t d = 0; d < ndim - 1; d++) rows *= shape[d];
    int64_t cs = c_stride[ndim - 1], as = a_stride[ndim - 1], bs = b_stride[ndim - 1];
    if (rows * len == 0) return;
#pragma omp parallel for schedule(static) if (rows * len > 65536 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        int64_t co = 0, ao = 0, bo = 0, rem = r;
        for (int32_t d = ndim - 2; d >= 0; d--) {
            int64_t i = rem % shape[d];
            rem /= shape[d];
            co += i * c_stride[d];
            ao += i * a_stride[d];
            bo += i * b_stride[d];
        }
        const uint8_t *pc = cond + co;
        const float *pa = a + ao, *pb = b + bo;
        float *po = out + r * len;
        for (int64_t i = 0; i < len; i++) po[i] = pc[i * cs] ? pa[i * as] : pb[i * bs];
    }
}

/*
 * rowsum.h — sums along a contiguous row in LANES partial sums: the
 * compiler vectorises them (one running sum would serialise on the add
 * latency), accumulation is in double, and the summation order depends only
 * on the length, never on the thread count.
 */
#ifndef GROVE_KERNELS_CPU_ROWSUM_H
#define GROVE_KERNELS_CPU_ROWSUM_H

#include <stdint.h>

enum { GV_LANES = 8 };

static inline double gv_lanes_total(const double *acc)
{
    double s = 0;
    for (int l = 0; l < GV_LANES; l++) s += acc[l];
    return s;
}

/* Σ x. */
static inline double gv_row_sum(const float *x, int64_t n)
{
    double acc[GV_LANES] = {0};
    int64_t j = 0;
    for (; j + GV_LANES <= n; j += GV_LANES)
        for (int l = 0; l < GV_LANES; l++) acc[l] += x[j + l];
    for (; j < n; j++) acc[0] += x[j];
    return gv_lanes_total(acc);
}

/* Σ (x − c)². */
static inline double gv_row_sum_sq(const float *x, int64_t n, double c)
{
    double acc[GV_LANES] = {0};
    int64_t j = 0;
    for (; j + GV_LANES <= n; j += GV_LANES)
        for (int l = 0; l < GV_LANES; l++) {
            double d = x[j + l] - c;
            acc[l] += d * d;
        }
    for (; j < n; j++) acc[0] += (x[j] - c) * (x[j] - c);
    return gv_lanes_total(acc);
}

#endif

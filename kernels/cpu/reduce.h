/* reduce.h — CPU kernels of this family (see cpu.h).
 *
 * A reduction is described by splitting the input's dimensions into kept
 * ones (which index the output, row-major, in their original order) and
 * reduced ones (walked row-major for each output element). Each output
 * element is computed by one thread in a fixed order, so the result does not
 * depend on the thread count. */
#ifndef GROVE_KERNELS_CPU_REDUCE_H
#define GROVE_KERNELS_CPU_REDUCE_H

#include <stdint.h>

typedef struct gv_reduce_plan {
    int32_t nkeep, nred;
    int64_t keep_shape[8], keep_stride[8];  /* strides into the input */
    int64_t red_shape[8], red_stride[8];
} gv_reduce_plan;

/* op: GROVE_SUM, GROVE_MEAN (sums in double), GROVE_MAX, GROVE_MIN (NaN wins).
 * out is contiguous over the kept dimensions. An empty reduced set gives
 * 0 (sum), NaN (mean); max/min must not be called with it. */
/* Drops size-1 dimensions and merges neighbours that step through memory
 * as one run; returns the new rank. Host code, shared with the CUDA
 * reductions' planning. */
int32_t gv_cpu_merge_dims(int32_t n, int64_t *shape, int64_t *stride);
void gv_cpu_reduce(int32_t op, const gv_reduce_plan *p, const float *x, float *out);
/* Max or min, also writing for each output the row-major position of its
 * first extreme value (the first NaN, if any) within the reduced dimensions. */
void gv_cpu_reduce_arg(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx);
/* gx[position idx[o] of output o] = g[o]: the gradient of reduce_arg. gx is
 * zeroed by the caller; the plan's strides address gx. */
void gv_cpu_reduce_arg_scatter(const gv_reduce_plan *p, const int64_t *idx, const float *g, float *gx);

#endif

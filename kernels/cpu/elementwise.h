/* elementwise.h — CPU kernels of this family (see cpu.h).
 * Ops are grove_unary_op / grove_binary_op codes. Outputs are contiguous
 * buffers of n elements; inputs are contiguous unless strides are given. */
#ifndef GROVE_KERNELS_CPU_ELEMENTWISE_H
#define GROVE_KERNELS_CPU_ELEMENTWISE_H

#include <stdbool.h>
#include <stdint.h>

void gv_cpu_unary(int32_t op, const float *x, float *y, int64_t n);
/* gx = g * op'(x); y is the forward output (exp, sqrt, rsqrt, sigmoid and
 * tanh read their derivative from it). */
void gv_cpu_unary_backward(int32_t op, const float *x, const float *y, const float *g, float *gx, int64_t n);

/* out (contiguous, shape) = a op b, where a and b are read through their own
 * strides over the output shape (0 along broadcast dimensions). */
/* Drops size-1 dimensions of a shape walked with two stride lists and
 * merges neighbours both step through as one run; returns the new rank.
 * Host code: the CUDA binary kernel plans its launch with it too. */
int32_t gv_cpu_coalesce2(int32_t ndim, int64_t *shape, int64_t *sa, int64_t *sb);
void gv_cpu_binary(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride,
                   const float *b, const int64_t *b_stride, float *out);
/* out = a op s, or s op a when reverse. */
void gv_cpu_binary_scalar(int32_t op, const float *a, float s, bool reverse, float *out, int64_t n);

void gv_cpu_pow_scalar(const float *x, float p, float *y, int64_t n);
void gv_cpu_pow_scalar_backward(const float *x, float p, const float *g, float *gx, int64_t n);
void gv_cpu_clamp(const float *x, float lo, float hi, float *y, int64_t n);
/* gx = g where lo <= x <= hi, else 0. */
void gv_cpu_clamp_backward(const float *x, float lo, float hi, const float *g, float *gx, int64_t n);

#endif

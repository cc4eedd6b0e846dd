/* sana.h — CPU kernels of this family (see cpu.h). */
#ifndef GROVE_KERNELS_CPU_SANA_H
#define GROVE_KERNELS_CPU_SANA_H

#include <stdint.h>

/* ---- the small fused ops of the SANA block (sana.c) -----------------------
 * All tensors are contiguous. Token tensors are (b, n, d); per-sample
 * vectors (shift, scale, gate) are (b, d) and broadcast over the n tokens.
 *
 * norm_modulate: y = LN(x)·(1 + scale) + shift, LN without affine (biased
 * variance); mean and rstd (b·n) receive the row statistics and may be NULL.
 * Its backward takes g (b, n, d); dx, dshift, dscale may each be NULL (not
 * computed). dshift = Σ_tokens g, dscale = Σ_tokens g·LN(x).
 *
 * gated_residual: out = x + gate·y. Backward: dy = g·gate, dgate = Σ_tokens g·y
 * (either may be NULL); dx is g itself.
 *
 * glu_silu: h (rows, 2c) → out (rows, c) = h[:, :c]·SiLU(h[:, c:]); the
 * backward writes dh (rows, 2c).
 *
 * timestep_embedding: t (b) read with stride t_stride → out (b, dim) =
 * [cos(t·f), sin(t·f)], f_i = exp(−ln(max_period)·i/half), half = dim/2, the
 * last column zero when dim is odd; arguments in double. */
void gv_cpu_norm_modulate(int64_t b, int64_t n, int64_t d, const float *x, const float *shift, const float *scale,
                          double eps, float *y, float *mean, float *rstd);
void gv_cpu_norm_modulate_backward(int64_t b, int64_t n, int64_t d, const float *x, const float *scale,
                                   const float *mean, const float *rstd, const float *g, float *dx, float *dshift,
                                   float *dscale);
void gv_cpu_gated_residual(int64_t b, int64_t n, int64_t d, const float *x, const float *gate, const float *y,
                           float *out);
void gv_cpu_gated_residual_backward(int64_t b, int64_t n, int64_t d, const float *gate, const float *y,
                                    const float *g, float *dy, float *dgate);
void gv_cpu_glu_silu(int64_t rows, int64_t c, const float *h, float *out);
void gv_cpu_glu_silu_backward(int64_t rows, int64_t c, const float *h, const float *g, float *dh);
void gv_cpu_timestep_embedding(int64_t b, const float *t, int64_t t_stride, int64_t dim, double max_period,
                               float *out);

#endif

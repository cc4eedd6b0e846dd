/*
 * cuda.h — the CUDA kernels: each gv_cuda_<name> is the twin of the CPU
 * kernel gv_cpu_<name> (kernels/cpu/), with the same parameters, except
 * that the CPU's sgemm function argument is dropped (cuBLAS is used). Data
 * pointers are device pointers; shape, stride, plan, coefficient and
 * pointer-list arguments stay host memory (small metadata the kernel
 * passes by value). Functions returning a double synchronise the stream
 * and return the value on the host. The kernel table (core/backend.h)
 * declares these weak, so a missing kernel reads as "no CUDA kernel".
 */
#ifndef GROVE_KERNELS_CUDA_H
#define GROVE_KERNELS_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../cpu/cpu.h" /* the shared kernel types: gv_reduce_plan, gv_attn_rows, gv_came_hyper */

#ifndef GV_CUDA_DECL
#define GV_CUDA_DECL
#endif

/* ---- cpu: twins of kernels/cpu/cpu.h ---- */
GV_CUDA_DECL void gv_cuda_copy(int32_t ndim, const int64_t *shape, void *dst, const int64_t *dst_stride, int32_t dst_dtype, const void *src, const int64_t *src_stride, int32_t src_dtype);
GV_CUDA_DECL void gv_cuda_fill(int32_t ndim, const int64_t *shape, void *data, const int64_t *stride, int32_t dtype, double value);
GV_CUDA_DECL void gv_cuda_philox_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi);
GV_CUDA_DECL void gv_cuda_philox_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);
GV_CUDA_DECL void gv_cuda_lincomb(int32_t n, const float *const *src, const float *coeffs, float *out, int64_t count);

/* ---- elementwise: twins of kernels/cpu/elementwise.h ---- */
GV_CUDA_DECL void gv_cuda_unary(int32_t op, const float *x, float *y, int64_t n);
GV_CUDA_DECL void gv_cuda_unary_backward(int32_t op, const float *x, const float *y, const float *g, float *gx, int64_t n);
GV_CUDA_DECL void gv_cuda_binary(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride, const float *b, const int64_t *b_stride, float *out);
GV_CUDA_DECL void gv_cuda_binary_scalar(int32_t op, const float *a, float s, bool reverse, float *out, int64_t n);
GV_CUDA_DECL void gv_cuda_pow_scalar(const float *x, float p, float *y, int64_t n);
GV_CUDA_DECL void gv_cuda_pow_scalar_backward(const float *x, float p, const float *g, float *gx, int64_t n);
GV_CUDA_DECL void gv_cuda_clamp(const float *x, float lo, float hi, float *y, int64_t n);
GV_CUDA_DECL void gv_cuda_clamp_backward(const float *x, float lo, float hi, const float *g, float *gx, int64_t n);

/* ---- reduce: twins of kernels/cpu/reduce.h ---- */
GV_CUDA_DECL void gv_cuda_reduce(int32_t op, const gv_reduce_plan *p, const float *x, float *out);
GV_CUDA_DECL void gv_cuda_reduce_arg(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx);
GV_CUDA_DECL void gv_cuda_reduce_arg_scatter(const gv_reduce_plan *p, const int64_t *idx, const float *g, float *gx);

/* ---- linalg: twins of kernels/cpu/linalg.h ---- */
GV_CUDA_DECL void gv_cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb, const float *bias, float *c);
GV_CUDA_DECL void gv_cuda_matmul_batched(int32_t nbatch, const int64_t *batch_shape, const float *a, const int64_t *a_bstride, bool trans_a, int lda, const float *b, const int64_t *b_bstride, bool trans_b, int ldb, float *c, int m, int n, int k);
GV_CUDA_DECL void gv_cuda_sum_rows(int64_t rows, int64_t cols, const float *x, float *out);

/* ---- nn: twins of kernels/cpu/nn.h ---- */
GV_CUDA_DECL void gv_cuda_softmax(int64_t outer, int64_t n, int64_t inner, const float *x, float *y, bool log_out);
GV_CUDA_DECL void gv_cuda_softmax_backward(int64_t outer, int64_t n, int64_t inner, const float *y, const float *g, float *dx, bool log_out);
GV_CUDA_DECL void gv_cuda_layer_norm(int64_t rows, int64_t cols, const float *x, const float *w, const float *b, double eps, float *y, float *mean, float *rstd);
GV_CUDA_DECL void gv_cuda_layer_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w, const float *mean, const float *rstd, const float *g, float *dx, float *dw, float *db);
GV_CUDA_DECL void gv_cuda_rms_norm(int64_t rows, int64_t cols, const float *x, const float *w, double eps, float *y, float *rstd);
GV_CUDA_DECL void gv_cuda_rms_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd, const float *g, float *dx, float *dw);
GV_CUDA_DECL void gv_cuda_dwconv_forward(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, const float *x, const float *wt, const float *bias, float *y);
GV_CUDA_DECL void gv_cuda_dwconv_backward_input(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, const float *dy, const float *wt, float *dx);
GV_CUDA_DECL void gv_cuda_dwconv_backward_weight(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, const float *x, const float *dy, float *dw);
GV_CUDA_DECL void gv_cuda_embedding(int64_t n, int64_t d, const float *weight, const void *idx, int32_t is_i64, float *out);
GV_CUDA_DECL void gv_cuda_embedding_backward(int64_t n, int64_t d, int64_t v, const float *g, const void *idx, int32_t is_i64, float *dweight);
GV_CUDA_DECL void gv_cuda_where(int32_t ndim, const int64_t *shape, const uint8_t *cond, const int64_t *c_stride, const float *a, const int64_t *a_stride, const float *b, const int64_t *b_stride, float *out);

/* ---- shape: twins of kernels/cpu/shape.h ---- */
GV_CUDA_DECL void gv_cuda_cat_part(int64_t outer, int64_t src_row, int64_t dst_row, int64_t dst_off, const void *src, void *dst);
GV_CUDA_DECL void gv_cuda_pad(int32_t ndim, const int64_t *in_shape, const int64_t *out_shape, const int64_t *before, int64_t esz, const void *fill, const void *src, void *dst);

/* ---- loss: twins of kernels/cpu/loss.h ---- */
GV_CUDA_DECL double gv_cuda_sq_diff_sum(const float *a, const float *b, int64_t n);
GV_CUDA_DECL void gv_cuda_mse_backward(const float *a, const float *b, int64_t n, float scale, float *ga, float *gb);
GV_CUDA_DECL double gv_cuda_cross_entropy_sum(const float *x, const int64_t *t, int64_t n, int64_t c);
GV_CUDA_DECL void gv_cuda_cross_entropy_backward(const float *x, const int64_t *t, int64_t n, int64_t c, float scale, float *gx);
GV_CUDA_DECL void gv_cuda_dropout_apply(const float *x, float *out, uint8_t *keep, int64_t n, float p, float scale);
GV_CUDA_DECL void gv_cuda_dropout_backward(const float *g, const uint8_t *keep, int64_t n, float scale, float *gx);
GV_CUDA_DECL void gv_cuda_cosine_forward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa, const float *b, const int64_t *sb, double eps, float *out);
GV_CUDA_DECL void gv_cuda_cosine_backward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa, const float *b, const int64_t *sb, double eps, const float *g, float *ga, float *gb);

/* ---- attention: twins of kernels/cpu/attention.h ---- */
GV_CUDA_DECL int64_t gv_cuda_linear_attention_scratch(int64_t d);
GV_CUDA_DECL void gv_cuda_linear_attention(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, float eps, void *scratch, float *state, float *out);
GV_CUDA_DECL void gv_cuda_linear_attention_backward(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, gv_attn_rows g, float eps, const float *state, void *scratch, float *dq, float *dk, float *dv);
GV_CUDA_DECL int64_t gv_cuda_cross_attention_scratch(int64_t B, int64_t H, int64_t N, int64_t M);
GV_CUDA_DECL void gv_cuda_cross_attention(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8, float *P, float *out);
GV_CUDA_DECL void gv_cuda_cross_attention_backward(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const float *P, gv_attn_rows g, float *scratch, float *dq, float *dk, float *dv);

/* ---- sana: twins of kernels/cpu/sana.h ---- */
GV_CUDA_DECL void gv_cuda_norm_modulate(int64_t b, int64_t n, int64_t d, const float *x, const float *shift, const float *scale, double eps, float *y, float *mean, float *rstd);
GV_CUDA_DECL void gv_cuda_norm_modulate_backward(int64_t b, int64_t n, int64_t d, const float *x, const float *scale, const float *mean, const float *rstd, const float *g, float *dx, float *dshift, float *dscale);
GV_CUDA_DECL void gv_cuda_gated_residual(int64_t b, int64_t n, int64_t d, const float *x, const float *gate, const float *y, float *out);
GV_CUDA_DECL void gv_cuda_gated_residual_backward(int64_t b, int64_t n, int64_t d, const float *gate, const float *y, const float *g, float *dy, float *dgate);
GV_CUDA_DECL void gv_cuda_glu_silu(int64_t rows, int64_t c, const float *h, float *out);
GV_CUDA_DECL void gv_cuda_glu_silu_backward(int64_t rows, int64_t c, const float *h, const float *g, float *dh);
GV_CUDA_DECL void gv_cuda_timestep_embedding(int64_t b, const float *t, int64_t t_stride, int64_t dim, double max_period, float *out);

/* ---- optim: twins of kernels/cpu/optim.h ---- */
GV_CUDA_DECL void gv_cuda_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float one_minus_dampening, float weight_decay, int nesterov, int first);
GV_CUDA_DECL void gv_cuda_adamw(float *p, const float *g, float *m, float *v, int64_t n, float keep, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float eps, float step_size, float bc2_sqrt);
GV_CUDA_DECL void gv_cuda_adamw_group(int32_t count, const gv_adamw_task *tasks, float keep, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float eps);
GV_CUDA_DECL void gv_cuda_came_full(float *p, const float *g, float *m, float *v, int64_t n, const gv_came_hyper *h);
GV_CUDA_DECL int64_t gv_cuda_came_scratch_doubles(int64_t rows, int64_t cols);
GV_CUDA_DECL void gv_cuda_came_factored(float *p, const float *g, float *m, float *sq_row, float *sq_col, float *res_row, float *res_col, int64_t rows, int64_t cols, const gv_came_hyper *h, double *scratch, float *factors);
GV_CUDA_DECL void gv_cuda_quantize_dynamic(const float *x, int64_t n, int64_t block, uint8_t *codes, float *absmax);
GV_CUDA_DECL void gv_cuda_dequantize_dynamic(const uint8_t *codes, const float *absmax, int64_t n, int64_t block, float *out);
GV_CUDA_DECL void gv_cuda_quantize_affine(const float *x, int64_t n, int64_t block, uint8_t *codes, float *min_step);
GV_CUDA_DECL void gv_cuda_dequantize_affine(const uint8_t *codes, const float *min_step, int64_t n, int64_t block, float *out);
GV_CUDA_DECL double gv_cuda_sum_squares(const float *x, int64_t n);
GV_CUDA_DECL void gv_cuda_scale_group(int32_t count, float *const *xs, const int64_t *ns, float s);
GV_CUDA_DECL void gv_cuda_sum_squares_group(int32_t count, const float *const *xs, const int64_t *ns, double *sums);
GV_CUDA_DECL void gv_cuda_scale_(float *x, int64_t n, float s);
#ifdef __cplusplus
}
#endif

#endif

/* nn.h — CPU kernels of this family (see cpu.h). */
#ifndef GROVE_KERNELS_CPU_NN_H
#define GROVE_KERNELS_CPU_NN_H

#include <stdbool.h>
#include <stdint.h>

/* ---- softmax and norms (norm.c) ----------------------------------------
 * Softmax over the middle dimension of a contiguous (outer, n, inner) block;
 * log_out selects log-softmax, whose backward reads its own output y.
 * Layer / RMS norm over the last dimension of contiguous (rows, cols) data;
 * w, b (cols) may be NULL (no affine); mean and rstd (rows) receive the
 * statistics the backward reads and may be NULL in the forward. In the
 * backward, dx, dw, db may be NULL and are then not computed. */
void gv_cpu_softmax(int64_t outer, int64_t n, int64_t inner, const float *x, float *y, bool log_out);
void gv_cpu_softmax_backward(int64_t outer, int64_t n, int64_t inner, const float *y, const float *g, float *dx,
                             bool log_out);
void gv_cpu_layer_norm(int64_t rows, int64_t cols, const float *x, const float *w, const float *b, double eps,
                       float *y, float *mean, float *rstd);
void gv_cpu_layer_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w, const float *mean,
                                const float *rstd, const float *g, float *dx, float *dw, float *db);
void gv_cpu_rms_norm(int64_t rows, int64_t cols, const float *x, const float *w, double eps, float *y, float *rstd);
void gv_cpu_rms_norm_backward(int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd,
                              const float *g, float *dx, float *dw);

/* ---- depthwise convolution on NHWC data (conv.c) -----------------------
 * kxk, stride 1, zero padding pad: input (b, h, w, c), output
 * (b, h + 2pad - k + 1, w + 2pad - k + 1, c), weight wt in tap-major order
 * (k, k, c), bias (c) or NULL; dw is written in PyTorch order (c, 1, k, k).
 * (1x1 convolutions use gv_cpu_gemm, bias gradients gv_cpu_sum_rows.) */
void gv_cpu_dwconv_forward(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, const float *x,
                           const float *wt, const float *bias, float *y);
void gv_cpu_dwconv_backward_input(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                  const float *dy, const float *wt, float *dx);
void gv_cpu_dwconv_backward_weight(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                   const float *x, const float *dy, float *dw);

/* ---- gathers and selections (index.c) ----------------------------------
 * Embedding: n indices (i64 when is_i64, else i32, all in [0, v)) pick rows
 * of weight (v, d); the backward zeroes dweight and scatter-adds g (n, d).
 * where: out (contiguous, shape) = cond ? a : b, each read through its own
 * strides (0 along broadcast dimensions). */
void gv_cpu_embedding(int64_t n, int64_t d, const float *weight, const void *idx, int32_t is_i64, float *out);
void gv_cpu_embedding_backward(int64_t n, int64_t d, int64_t v, const float *g, const void *idx, int32_t is_i64,
                               float *dweight);
void gv_cpu_where(int32_t ndim, const int64_t *shape, const uint8_t *cond, const int64_t *c_stride, const float *a,
                  const int64_t *a_stride, const float *b, const int64_t *b_stride, float *out);

/* The largest depthwise kernel side the weight-gradient kernel keeps
 * per-tap accumulators for. */
enum { GV_DW_MAX_K = 31 };

#endif

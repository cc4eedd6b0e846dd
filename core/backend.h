/*
 * backend.h — the per-device kernel table every op front-end calls through.
 *
 * A front-end validates its arguments, then asks gv_kernels_for(op, t) for
 * the table of t's device and calls k->entry(...) with raw data pointers of
 * that device. Each entry has the parameter list of the CUDA kernel of the
 * same name (kernels/cuda/cuda.h), which is the CPU kernel's minus the
 * sgemm-function argument: the CPU table wraps those kernels and passes
 * OpenBLAS's sgemm itself (kernels/cpu/table.c).
 *
 * An entry may be NULL (a CUDA kernel not written yet): GV_KCALL and
 * gv_kernel_ready turn that into the error "<op>: no CUDA kernel for
 * <entry>". After kernels ran, gv_kernels_check(k) reports what they could
 * not return themselves (a CUDA launch error, OpenBLAS failing to load).
 *
 * Kernels that only ever run on the host (gv_cpu_philox_block,
 * gv_cpu_dynamic_map: fixed tables and test vectors) have no entry.
 */
#ifndef GROVE_BACKEND_H
#define GROVE_BACKEND_H

#include "internal.h"
#include "../kernels/cpu/cpu.h"

typedef struct gv_kernels {
    int32_t device;     /* grove_device */
    /* 0 when the kernels since the last call ran, else -1 with the grove
     * error set; takes the pending error. */
    int (*take_error)(void);

    /* ---- copies, fills, random numbers, samplers (cpu.h) ---- */
    void (*copy)(int32_t ndim, const int64_t *shape, void *dst, const int64_t *dst_stride, int32_t dst_dtype,
                 const void *src, const int64_t *src_stride, int32_t src_dtype);
    void (*fill)(int32_t ndim, const int64_t *shape, void *data, const int64_t *stride, int32_t dtype,
                 double value);
    void (*philox_uniform)(float *out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi);
    void (*philox_normal)(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);
    void (*lincomb)(int32_t n, const float *const *src, const float *coeffs, float *out, int64_t count);

    /* ---- elementwise (elementwise.h) ---- */
    void (*unary)(int32_t op, const float *x, float *y, int64_t n);
    void (*unary_backward)(int32_t op, const float *x, const float *y, const float *g, float *gx, int64_t n);
    void (*binary)(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride,
                   const float *b, const int64_t *b_stride, float *out);
    void (*binary_scalar)(int32_t op, const float *a, float s, bool reverse, float *out, int64_t n);
    void (*pow_scalar)(const float *x, float p, float *y, int64_t n);
    void (*pow_scalar_backward)(const float *x, float p, const float *g, float *gx, int64_t n);
    void (*clamp)(const float *x, float lo, float hi, float *y, int64_t n);
    void (*clamp_backward)(const float *x, float lo, float hi, const float *g, float *gx, int64_t n);

    /* ---- reductions (reduce.h) ---- */
    void (*reduce)(int32_t op, const gv_reduce_plan *p, const float *x, float *out);
    void (*reduce_arg)(int32_t op, const gv_reduce_plan *p, const float *x, float *out, int64_t *idx);
    void (*reduce_arg_scatter)(const gv_reduce_plan *p, const int64_t *idx, const float *g, float *gx);

    /* ---- linear algebra (linalg.h) ---- */
    void (*gemm)(bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                 const float *bias, float *c);
    void (*matmul_batched)(int32_t nbatch, const int64_t *batch_shape, const float *a, const int64_t *a_bstride,
                           bool trans_a, int lda, const float *b, const int64_t *b_bstride, bool trans_b, int ldb,
                           float *c, int m, int n, int k);
    void (*sum_rows)(int64_t rows, int64_t cols, const float *x, float *out);

    /* ---- softmax, norms, depthwise conv, gathers (nn.h) ---- */
    void (*softmax)(int64_t outer, int64_t n, int64_t inner, const float *x, float *y, bool log_out);
    void (*softmax_backward)(int64_t outer, int64_t n, int64_t inner, const float *y, const float *g, float *dx,
                             bool log_out);
    void (*layer_norm)(int64_t rows, int64_t cols, const float *x, const float *w, const float *b, double eps,
                       float *y, float *mean, float *rstd);
    void (*layer_norm_backward)(int64_t rows, int64_t cols, const float *x, const float *w, const float *mean,
                                const float *rstd, const float *g, float *dx, float *dw, float *db);
    void (*rms_norm)(int64_t rows, int64_t cols, const float *x, const float *w, double eps, float *y,
                     float *rstd);
    void (*rms_norm_backward)(int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd,
                              const float *g, float *dx, float *dw);
    void (*dwconv_forward)(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad, const float *x,
                           const float *wt, const float *bias, float *y);
    void (*dwconv_backward_input)(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                  const float *dy, const float *wt, float *dx);
    void (*dwconv_backward_weight)(int64_t b, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad,
                                   const float *x, const float *dy, float *dw);
    void (*embedding)(int64_t n, int64_t d, const float *weight, const void *idx, int32_t is_i64, float *out);
    void (*embedding_backward)(int64_t n, int64_t d, int64_t v, const float *g, const void *idx, int32_t is_i64,
                               float *dweight);
    void (*where)(int32_t ndim, const int64_t *shape, const uint8_t *cond, const int64_t *c_stride, const float *a,
                  const int64_t *a_stride, const float *b, const int64_t *b_stride, float *out);

    /* ---- joining and padding (shape.h); pad's fill is esz host bytes ---- */
    void (*cat_part)(int64_t outer, int64_t src_row, int64_t dst_row, int64_t dst_off, const void *src, void *dst);
    void (*pad)(int32_t ndim, const int64_t *in_shape, const int64_t *out_shape, const int64_t *before, int64_t esz,
                const void *fill, const void *src, void *dst);

    /* ---- losses, dropout, cosine similarity (loss.h) ---- */
    double (*sq_diff_sum)(const float *a, const float *b, int64_t n);
    void (*mse_backward)(const float *a, const float *b, int64_t n, float scale, float *ga, float *gb);
    double (*cross_entropy_sum)(const float *x, const int64_t *t, int64_t n, int64_t c);
    void (*cross_entropy_backward)(const float *x, const int64_t *t, int64_t n, int64_t c, float scale, float *gx);
    void (*dropout_apply)(const float *x, float *out, uint8_t *keep, int64_t n, float p, float scale);
    void (*dropout_backward)(const float *g, const uint8_t *keep, int64_t n, float scale, float *gx);
    void (*cosine_forward)(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa,
                           const float *b, const int64_t *sb, double eps, float *out);
    void (*cosine_backward)(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa,
                            const float *b, const int64_t *sb, double eps, const float *g, float *ga, float *gb);

    /* ---- attention (attention.h) ---- */
    int64_t (*linear_attention_scratch)(int64_t d);
    void (*linear_attention)(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                             gv_attn_rows v, float eps, void *scratch, float *state, float *out);
    void (*linear_attention_backward)(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                                      gv_attn_rows v, gv_attn_rows g, float eps, const float *state, void *scratch,
                                      float *dq, float *dk, float *dv);
    int64_t (*cross_attention_scratch)(int64_t B, int64_t H, int64_t N, int64_t M);
    void (*cross_attention)(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q, gv_attn_rows k,
                            gv_attn_rows v, const void *mask, int mask_u8, float *P, float *out);
    void (*cross_attention_backward)(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q,
                                     gv_attn_rows k, gv_attn_rows v, const float *P, gv_attn_rows g, float *scratch,
                                     float *dq, float *dk, float *dv);

    /* ---- the fused SANA ops (sana.h) ---- */
    void (*norm_modulate)(int64_t b, int64_t n, int64_t d, const float *x, const float *shift, const float *scale,
                          double eps, float *y, float *mean, float *rstd);
    void (*norm_modulate_backward)(int64_t b, int64_t n, int64_t d, const float *x, const float *scale,
                                   const float *mean, const float *rstd, const float *g, float *dx, float *dshift,
                                   float *dscale);
    void (*gated_residual)(int64_t b, int64_t n, int64_t d, const float *x, const float *gate, const float *y,
                           float *out);
    void (*gated_residual_backward)(int64_t b, int64_t n, int64_t d, const float *gate, const float *y,
                                    const float *g, float *dy, float *dgate);
    void (*glu_silu)(int64_t rows, int64_t c, const float *h, float *out);
    void (*glu_silu_backward)(int64_t rows, int64_t c, const float *h, const float *g, float *dh);
    void (*timestep_embedding)(int64_t b, const float *t, int64_t t_stride, int64_t dim, double max_period,
                               float *out);

    /* ---- optimizers and 8-bit state (optim.h) ---- */
    void (*sgd)(float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float one_minus_dampening,
                float weight_decay, int nesterov, int first);
    void (*adamw)(float *p, const float *g, float *m, float *v, int64_t n, float keep, float beta1,
                  float one_minus_beta1, float beta2, float one_minus_beta2, float eps, float step_size,
                  float bc2_sqrt);
    void (*adamw_group)(int32_t count, const gv_adamw_task *tasks, float keep, float beta1, float one_minus_beta1,
                        float beta2, float one_minus_beta2, float eps);
    void (*came_full)(float *p, const float *g, float *m, float *v, int64_t n, const gv_came_hyper *h);
    int64_t (*came_scratch_doubles)(int64_t rows, int64_t cols);
    void (*came_factored)(float *p, const float *g, float *m, float *sq_row, float *sq_col, float *res_row,
                          float *res_col, int64_t rows, int64_t cols, const gv_came_hyper *h, double *scratch,
                          float *factors);
    void (*quantize_dynamic)(const float *x, int64_t n, int64_t block, uint8_t *codes, float *absmax);
    void (*dequantize_dynamic)(const uint8_t *codes, const float *absmax, int64_t n, int64_t block, float *out);
    void (*quantize_affine)(const float *x, int64_t n, int64_t block, uint8_t *codes, float *min_step);
    void (*dequantize_affine)(const uint8_t *codes, const float *min_step, int64_t n, int64_t block, float *out);
    double (*sum_squares)(const float *x, int64_t n);
    void (*sum_squares_group)(int32_t count, const float *const *xs, const int64_t *ns, double *sums);
    void (*scale_group)(int32_t count, float *const *xs, const int64_t *ns, float s);
    void (*scale_)(float *x, int64_t n, float s);
} gv_kernels;

/* The tables (kernels/cpu/table.c, kernels/cuda/table.c). */
extern const gv_kernels gv_cpu_kernels;
#ifdef GROVE_HAVE_CUDA
extern const gv_kernels gv_cuda_kernels;
#endif

/* The table of t's device; NULL with an error naming op when this build or
 * this machine has no backend for it (backend.c). */
const gv_kernels *gv_kernels_for(const char *op, const grove_tensor *t);

/* t's values readable by the host: t itself (retained) when it is on the
 * CPU and contiguous, otherwise a contiguous CPU copy; NULL with the error
 * set. For front-ends that inspect data (index range checks). */
grove_tensor *gv_host_data(const char *op, grove_tensor *t);

/* t (B, N, D) as attention rows: read in place when its channels are
 * adjacent (a slice of a wider projection, say) and its rows fit BLAS's int
 * leading dimension, else as a contiguous copy; r receives the layout.
 * Returns the tensor read (a new reference), NULL with the error set
 * (attention_rows.c). */
grove_tensor *gv_attn_rows_of(grove_tensor *t, gv_attn_rows *r);

/* Sets "<op>: no CUDA kernel for <entry>" (or the device's name) and returns false. */
bool gv_no_kernel(const char *op, const gv_kernels *k, const char *entry);

/* True when k has the entry, else false with the error set. */
#define gv_kernel_ready(op, k, entry) ((k)->entry != NULL || gv_no_kernel((op), (k), #entry))

/* Reports what the kernels since the last check could not return
 * themselves: 0, or -1 with the grove error set. */
static inline grove_status gv_kernels_check(const gv_kernels *k)
{
    return k->take_error ? k->take_error() : 0;
}

/* Calls a void entry and checks it: 0, or -1 with the error set when the
 * entry is missing or the kernel failed. */
#define GV_KCALL(op, k, entry, ...) \
    (gv_kernel_ready((op), (k), entry) ? ((k)->entry(__VA_ARGS__), gv_kernels_check(k)) : -1)

#endif

/* optim.h — CPU kernels of this family (see cpu.h): optimizer updates over
 * one parameter and its state, blockwise 8-bit quantization, and the sums
 * behind gradient clipping.
 *
 * Every array is contiguous; p (the parameter) and the state arrays are
 * updated in place; g (the gradient) is read only. Hyperparameters arrive as
 * floats already derived in double by the front-end (1 − β is computed in
 * double: 1 − 0.9999f would lose four digits). Sums run in double over
 * pieces whose bounds depend only on the sizes, added in a fixed order, so
 * results never depend on the thread count. */
#ifndef GROVE_KERNELS_CPU_OPTIM_H
#define GROVE_KERNELS_CPU_OPTIM_H

#include <stdint.h>

/* torch.optim.SGD over n elements. buf is the momentum buffer (NULL when
 * momentum is 0); first: buf is set to the (decayed) gradient instead of
 * being blended, as torch does on a parameter's first step. */
void gv_cpu_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                float one_minus_dampening, float weight_decay, int nesterov, int first);

/* torch.optim.AdamW: p ·= keep (1 − lr·wd); m, v blended; p −= step_size·m / (√v / bc2_sqrt + eps). */
void gv_cpu_adamw(float *p, const float *g, float *m, float *v, int64_t n, float keep, float beta1,
                  float one_minus_beta1, float beta2, float one_minus_beta2, float eps, float step_size,
                  float bc2_sqrt);

/* One tensor of a grouped AdamW step: its buffers, length and the scalars
 * that depend on its step count. */
typedef struct gv_adamw_task {
    float *p;
    const float *g;
    float *m, *v;
    int64_t n;
    float step_size, bc2_sqrt;
} gv_adamw_task;

/* gv_cpu_adamw over each of count tensors (the same hyperparameters): the
 * bits of calling it per tensor. On CUDA, one launch covers many tensors. */
void gv_cpu_adamw_group(int32_t count, const gv_adamw_task *tasks, float keep, float beta1, float one_minus_beta1,
                        float beta2, float one_minus_beta2, float eps);

/* CAME hyperparameters; decay = lr·weight_decay. */
typedef struct gv_came_hyper {
    float lr, decay, clip;
    float beta1, one_minus_beta1, beta2, one_minus_beta2, beta3, one_minus_beta3;
    float eps1, eps2;
} gv_came_hyper;

/* CAME with a full second moment v (step = m). */
void gv_cpu_came_full(float *p, const float *g, float *m, float *v, int64_t n, const gv_came_hyper *h);

/* CAME with factored statistics of a rows × cols matrix: sq_row (rows),
 * sq_col (cols) for g² + eps1; res_row, res_col for the instability
 * (û − m)² + eps2. scratch holds gv_cpu_came_scratch_doubles(rows, cols)
 * doubles, factors rows + cols floats. */
int64_t gv_cpu_came_scratch_doubles(int64_t rows, int64_t cols);
void gv_cpu_came_factored(float *p, const float *g, float *m, float *sq_row, float *sq_col, float *res_row,
                          float *res_col, int64_t rows, int64_t cols, const gv_came_hyper *h, double *scratch,
                          float *factors);

/* ---- blockwise 8-bit quantization ---------------------------------------
 * n values in blocks of `block` (the last block may be shorter), one u8 code
 * per value.
 * dynamic: the signed dynamic code map (256 ascending values in [−1, 1],
 * gv_cpu_dynamic_map), one absmax scale per block, x/absmax rounded to the
 * nearest map value. An all-zero block stores absmax 0 and decodes to 0.
 * affine: two floats per block, min and step = (max − min)/255; code =
 * round((x − min)/step); a constant block stores step 0. */
void gv_cpu_dynamic_map(float map[256]);
void gv_cpu_quantize_dynamic(const float *x, int64_t n, int64_t block, uint8_t *codes, float *absmax);
void gv_cpu_dequantize_dynamic(const uint8_t *codes, const float *absmax, int64_t n, int64_t block, float *out);
void gv_cpu_quantize_affine(const float *x, int64_t n, int64_t block, uint8_t *codes, float *min_step);
void gv_cpu_dequantize_affine(const uint8_t *codes, const float *min_step, int64_t n, int64_t block, float *out);

/* Σ x² over n values, in double. */
double gv_cpu_sum_squares(const float *x, int64_t n);
/* sums[i] = Σ xs[i]² over ns[i] values for each of count tensors: one
 * result on the host for all of them (on CUDA one wait instead of one per
 * tensor). */
void gv_cpu_sum_squares_group(int32_t count, const float *const *xs, const int64_t *ns, double *sums);
/* x ·= s. */
void gv_cpu_scale_(float *x, int64_t n, float s);
/* xs[i] ·= s over ns[i] values for each of count tensors (one CUDA launch
 * per 32 tensors). */
void gv_cpu_scale_group(int32_t count, float *const *xs, const int64_t *ns, float s);

#endif

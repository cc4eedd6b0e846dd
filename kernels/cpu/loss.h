/* loss.h — CPU kernels of this family (see cpu.h): losses, dropout, cosine similarity. */
#ifndef GROVE_KERNELS_CPU_LOSS_H
#define GROVE_KERNELS_CPU_LOSS_H

#include <stdint.h>

/* Σ (a − b)² over n contiguous elements, accumulated in double. */
double gv_cpu_sq_diff_sum(const float *a, const float *b, int64_t n);
/* ga = scale·(a − b), gb = −scale·(a − b); either output may be NULL. */
void gv_cpu_mse_backward(const float *a, const float *b, int64_t n, float scale, float *ga, float *gb);

/* Σ over rows of (logsumexp(x_i) − x_i[t_i]) for contiguous logits (n, c);
 * targets are trusted to lie in [0, c). */
double gv_cpu_cross_entropy_sum(const float *x, const int64_t *t, int64_t n, int64_t c);
/* gx = scale·(softmax(x) − onehot(t)). */
void gv_cpu_cross_entropy_backward(const float *x, const int64_t *t, int64_t n, int64_t c, float scale, float *gx);

/* out holds n uniforms in (0, 1] on entry; on exit out[i] = x[i]·scale where
 * the uniform exceeds p, else 0. keep (may be NULL) receives 1 or 0. */
void gv_cpu_dropout_apply(const float *x, float *out, uint8_t *keep, int64_t n, float p, float scale);
/* gx = g·scale where kept, else 0. */
void gv_cpu_dropout_backward(const float *g, const uint8_t *keep, int64_t n, float scale, float *gx);

/* Cosine similarity along dimension dim of a broadcast shape: a and b are
 * read through strides (0 along broadcast dimensions); out is contiguous in
 * the shape without dim. cos = Σab / max(√(Σa²·Σb²), eps). */
void gv_cpu_cosine_forward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa,
                           const float *b, const int64_t *sb, double eps, float *out);
/* Gradients in the full broadcast shape (contiguous), from g shaped as out;
 * ga or gb may be NULL. */
void gv_cpu_cosine_backward(int32_t ndim, const int64_t *shape, int32_t dim, const float *a, const int64_t *sa,
                            const float *b, const int64_t *sb, double eps, const float *g, float *ga, float *gb);

#endif

/*
 * cpu.h — the CPU kernels: the types the kernel list uses, the host-only
 * helpers, and a gv_cpu_<name> declaration for every entry of the kernel
 * list (kernels/kernels.def, where each kernel's contract is written).
 * The CUDA kernels (kernels/cuda/cuda.h) share these types.
 */
#ifndef GROVE_KERNELS_CPU_H
#define GROVE_KERNELS_CPU_H

#include <stdbool.h>
#include <stdint.h>

/* ---- types of the kernel list ------------------------------------------ */

/* cblas_sgemm's signature; the CPU table passes OpenBLAS's (core/blas.c). */
typedef void (*gv_cpu_sgemm_fn)(int order, int transa, int transb, int m, int n, int k, float alpha,
                                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* A reduction: the input's dimensions split into kept ones (which index
 * the output, row-major, in their original order) and reduced ones (walked
 * row-major for each output element). */
typedef struct gv_reduce_plan {
    int32_t nkeep, nred;
    int64_t keep_shape[8], keep_stride[8]; /* strides into the input */
    int64_t red_shape[8], red_stride[8];
} gv_reduce_plan;

/* A (B, N, D) attention operand whose channels are adjacent: element
 * (b, i, c) is data[b·sb + i·sn + c]. Views of a wider projection (a
 * (B, N, 3D) qkv output narrowed to one third) are read in place this way. */
typedef struct gv_attn_rows {
    const float *data;
    int64_t sb, sn;
} gv_attn_rows;

/* One tensor of a grouped AdamW step: its buffers, length and the scalars
 * that depend on its step count. */
typedef struct gv_adamw_task {
    float *p;
    const float *g;
    float *m, *v;
    int64_t n;
    float step_size, bc2_sqrt;
} gv_adamw_task;

/* CAME hyperparameters; decay = lr·weight_decay. */
typedef struct gv_came_hyper {
    float lr, decay, clip;
    float beta1, one_minus_beta1, beta2, one_minus_beta2, beta3, one_minus_beta3;
    float eps1, eps2;
} gv_came_hyper;

/* A general convolution on NHWC data: input (b, h, w, cin), weight in
 * tap-major order (cout, kh, kw, cin/groups), symmetric zero padding pad,
 * output (b, ho, wo, cout) with ho = (h + 2·pad − kh)/stride + 1 (wo alike). */
typedef struct gv_conv_shape {
    int64_t b, h, w, cin, cout, kh, kw, stride, pad, groups, ho, wo;
} gv_conv_shape;

/* The largest depthwise kernel side the weight-gradient kernel keeps
 * per-tap accumulators for. */
enum { GV_DW_MAX_K = 31 };

/* ---- host-only helpers (no table entry: fixed tables, test vectors, the
 * launch planning the CUDA kernels share) ------------------------------- */

/* One Philox4x32-10 block (philox.c). */
void gv_cpu_philox_block(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
/* bitsandbytes' signed dynamic code map: 256 ascending values in [−1, 1] (optim.c). */
void gv_cpu_dynamic_map(float map[256]);
/* Drops size-1 dimensions of a shape walked with two stride lists and
 * merges neighbours both step through as one run; returns the new rank
 * (elementwise.c). */
int32_t gv_cpu_coalesce2(int32_t ndim, int64_t *shape, int64_t *sa, int64_t *sb);
/* One run of len outputs (out contiguous) from inputs stepping by as and bs
 * elements. */
typedef void (*gv_cpu_run2)(int32_t op, const void *a, int64_t as, const void *b, int64_t bs, void *out, int64_t len);
/* Walks a broadcast binary op (elementwise.c): size-1 dimensions dropped,
 * runs merged (gv_cpu_coalesce2), then one run per row of the output, rows
 * across threads, or one long run split into blocks. in_size and out_size
 * are the inputs' and the output's element bytes. */
void gv_cpu_walk2(gv_cpu_run2 run, int32_t op, int32_t ndim, const int64_t *shape, const void *a, const int64_t *a_stride,
                  const void *b, const int64_t *b_stride, int64_t in_size, int64_t out_size, void *out);
/* Drops size-1 dimensions and merges neighbours that step through memory
 * as one run; returns the new rank (reduce.c). */
int32_t gv_cpu_merge_dims(int32_t n, int64_t *shape, int64_t *stride);

/* The general convolution's forward through oneDNN (conv_dnnl.c): false,
 * computing nothing, where the build has no oneDNN or oneDNN refuses the
 * shape (the caller then runs im2col + sgemm). */
bool gv_cpu_conv_forward_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias, float *y);
/* Whether the build has oneDNN; turning it off (on by default) leaves the
 * forward to im2col + sgemm. */
bool gv_cpu_conv_dnnl_available(void);
void gv_cpu_conv_dnnl_enable(bool on);
/* Whether that forward takes oneDNN's Winograd convolution for dense 3x3
 * stride-1 convolutions with large outputs (on by default). */
void gv_cpu_conv_winograd_enable(bool on);
/* The same forward with x and wk rounded to bf16 (into scratch: their
 * element counts in uint16_t) and f32 bias and output, where the CPU has
 * bf16 arithmetic and grove_conv_bf16_set_dnnl left it on (conv_bf16.c's
 * fast path); false otherwise, y untouched. */
bool gv_cpu_conv_forward_bf16_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias,
                                   float *y, uint16_t *scratch);
bool gv_cpu_conv_bf16_dnnl_available(void);
void gv_cpu_conv_bf16_dnnl_enable(bool on);

/* The bf16 GEMM through oneDNN's bf16 matmul (gemm_bf16_dnnl.c), where the
 * CPU has bf16 arithmetic (AVX512-BF16 or AMX) and the build has oneDNN:
 * false, computing nothing, otherwise (the caller then runs the reference
 * path). Arguments as the gemm_bf16 kernel's. */
bool gv_cpu_gemm_bf16_dnnl(bool trans_a, bool trans_b, int m, int n, int k, const void *a, int32_t a_dtype, int lda,
                           const void *b, int32_t b_dtype, int ldb, float *c, void *scratch);
bool gv_cpu_gemm_bf16_dnnl_available(void);
void gv_cpu_gemm_bf16_dnnl_enable(bool on);
bool gv_cpu_has_bf16_arithmetic(void);

/* ---- the kernels ---------------------------------------------------------- */

/* (sgemm, params...) and (sgemm, args...) for the kernels that take it. */
#define GV_SGEMM_PARAMS(...) (gv_cpu_sgemm_fn sgemm, __VA_ARGS__)
#define GV_SGEMM_ARGS(...) (sgemm, __VA_ARGS__)

#define GV_KERNEL(ret, name, params) ret gv_cpu_##name params;
#define GV_KERNEL_SGEMM(ret, name, params, args) ret gv_cpu_##name GV_SGEMM_PARAMS params;
#include "../kernels.def"

#endif

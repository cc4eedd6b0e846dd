/*
 * table.c — the CPU kernel table (core/backend.h): the gv_cpu_ kernels,
 * with the ones that take an sgemm function wrapped so the front-ends need
 * not know about OpenBLAS. The wrappers load it at first use (core/blas.c);
 * if that fails they compute nothing and leave the failure for
 * gv_kernels_check.
 */
#include "../../core/backend.h"

/* Set by a wrapper that found no OpenBLAS; the grove error already names why. */
static __thread int blas_missing;

static int cpu_take_error(void)
{
    int failed = blas_missing;
    blas_missing = 0;
    return failed ? -1 : 0;
}

static gv_cpu_sgemm_fn sgemm_or_flag(void)
{
    const gv_blas *b = gv_blas_get();
    if (b) return b->sgemm;
    blas_missing = 1;
    return NULL;
}

static void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, const float *a, int lda, const float *b,
                     int ldb, const float *bias, float *c)
{
    gv_cpu_sgemm_fn sgemm = sgemm_or_flag();
    if (sgemm) gv_cpu_gemm(sgemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, bias, c);
}

static void cpu_matmul_batched(int32_t nbatch, const int64_t *batch_shape, const float *a, const int64_t *a_bstride,
                               bool trans_a, int lda, const float *b, const int64_t *b_bstride, bool trans_b, int ldb,
                               float *c, int m, int n, int k)
{
    gv_cpu_sgemm_fn sgemm = sgemm_or_flag();
    if (sgemm)
        gv_cpu_matmul_batched(sgemm, nbatch, batch_shape, a, a_bstride, trans_a, lda, b, b_bstride, trans_b, ldb, c,
                              m, n, k);
}

static void cpu_cross_attention(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q,
                                gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8, float *P, float *out)
{
    gv_cpu_sgemm_fn sgemm = sgemm_or_flag();
    if (sgemm) gv_cpu_cross_attention(sgemm, B, N, M, H, dh, q, k, v, mask, mask_u8, P, out);
}

static void cpu_cross_attention_backward(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q,
                                         gv_attn_rows k, gv_attn_rows v, const float *P, gv_attn_rows g,
                                         float *scratch, float *dq, float *dk, float *dv)
{
    gv_cpu_sgemm_fn sgemm = sgemm_or_flag();
    if (sgemm) gv_cpu_cross_attention_backward(sgemm, B, N, M, H, dh, q, k, v, P, g, scratch, dq, dk, dv);
}

const gv_kernels gv_cpu_kernels = {
    .device = GROVE_CPU,
    .take_error = cpu_take_error,

    .copy = gv_cpu_copy,
    .fill = gv_cpu_fill,
    .philox_uniform = gv_cpu_philox_uniform,
    .philox_normal = gv_cpu_philox_normal,
    .lincomb = gv_cpu_lincomb,

    .unary = gv_cpu_unary,
    .unary_backward = gv_cpu_unary_backward,
    .binary = gv_cpu_binary,
    .binary_scalar = gv_cpu_binary_scalar,
    .pow_scalar = gv_cpu_pow_scalar,
    .pow_scalar_backward = gv_cpu_pow_scalar_backward,
    .clamp = gv_cpu_clamp,
    .clamp_backward = gv_cpu_clamp_backward,

    .reduce = gv_cpu_reduce,
    .reduce_arg = gv_cpu_reduce_arg,
    .reduce_arg_scatter = gv_cpu_reduce_arg_scatter,

    .gemm = cpu_gemm,
    .matmul_batched = cpu_matmul_batched,
    .sum_rows = gv_cpu_sum_rows,

    .softmax = gv_cpu_softmax,
    .softmax_backward = gv_cpu_softmax_backward,
    .layer_norm = gv_cpu_layer_norm,
    .layer_norm_backward = gv_cpu_layer_norm_backward,
    .rms_norm = gv_cpu_rms_norm,
    .rms_norm_backward = gv_cpu_rms_norm_backward,
    .dwconv_forward = gv_cpu_dwconv_forward,
    .dwconv_backward_input = gv_cpu_dwconv_backward_input,
    .dwconv_backward_weight = gv_cpu_dwconv_backward_weight,
    .embedding = gv_cpu_embedding,
    .embedding_backward = gv_cpu_embedding_backward,
    .where = gv_cpu_where,

    .cat_part = gv_cpu_cat_part,
    .pad = gv_cpu_pad,

    .sq_diff_sum = gv_cpu_sq_diff_sum,
    .mse_backward = gv_cpu_mse_backward,
    .cross_entropy_sum = gv_cpu_cross_entropy_sum,
    .cross_entropy_backward = gv_cpu_cross_entropy_backward,
    .dropout_apply = gv_cpu_dropout_apply,
    .dropout_backward = gv_cpu_dropout_backward,
    .cosine_forward = gv_cpu_cosine_forward,
    .cosine_backward = gv_cpu_cosine_backward,

    .linear_attention_scratch = gv_cpu_linear_attention_scratch,
    .linear_attention = gv_cpu_linear_attention,
    .linear_attention_backward = gv_cpu_linear_attention_backward,
    .cross_attention_scratch = gv_cpu_cross_attention_scratch,
    .cross_attention = cpu_cross_attention,
    .cross_attention_backward = cpu_cross_attention_backward,

    .norm_modulate = gv_cpu_norm_modulate,
    .norm_modulate_backward = gv_cpu_norm_modulate_backward,
    .gated_residual = gv_cpu_gated_residual,
    .gated_residual_backward = gv_cpu_gated_residual_backward,
    .glu_silu = gv_cpu_glu_silu,
    .glu_silu_backward = gv_cpu_glu_silu_backward,
    .timestep_embedding = gv_cpu_timestep_embedding,

    .sgd = gv_cpu_sgd,
    .adamw = gv_cpu_adamw,
    .adamw_group = gv_cpu_adamw_group,
    .came_full = gv_cpu_came_full,
    .came_scratch_doubles = gv_cpu_came_scratch_doubles,
    .came_factored = gv_cpu_came_factored,
    .quantize_dynamic = gv_cpu_quantize_dynamic,
    .dequantize_dynamic = gv_cpu_dequantize_dynamic,
    .quantize_affine = gv_cpu_quantize_affine,
    .dequantize_affine = gv_cpu_dequantize_affine,
    .sum_squares = gv_cpu_sum_squares,
    .sum_squares_group = gv_cpu_sum_squares_group,
    .scale_group = gv_cpu_scale_group,
    .scale_ = gv_cpu_scale_,
};

/*
 * table.c — the CUDA kernel table (core/backend.h). The gv_cuda_ kernels
 * are declared weak here, so one that no .cu file defines yet is a NULL
 * entry (the front-end's error "no CUDA kernel for <entry>") rather than a
 * link error. Compiled only in a build with GROVE_CUDA on.
 */
#define GV_CUDA_DECL __attribute__((weak))
#include "cuda.h"
#include "../../core/backend.h"

/* From context.h, declared here so this C file needs no CUDA headers. */
int gv_cuda_take_error(void);

const gv_kernels gv_cuda_kernels = {
    .device = GROVE_CUDA,
    .take_error = gv_cuda_take_error,

    .copy = gv_cuda_copy,
    .fill = gv_cuda_fill,
    .philox_uniform = gv_cuda_philox_uniform,
    .philox_normal = gv_cuda_philox_normal,
    .lincomb = gv_cuda_lincomb,

    .unary = gv_cuda_unary,
    .unary_backward = gv_cuda_unary_backward,
    .binary = gv_cuda_binary,
    .binary_scalar = gv_cuda_binary_scalar,
    .pow_scalar = gv_cuda_pow_scalar,
    .pow_scalar_backward = gv_cuda_pow_scalar_backward,
    .clamp = gv_cuda_clamp,
    .clamp_backward = gv_cuda_clamp_backward,

    .reduce = gv_cuda_reduce,
    .reduce_arg = gv_cuda_reduce_arg,
    .reduce_arg_scatter = gv_cuda_reduce_arg_scatter,

    .gemm = gv_cuda_gemm,
    .matmul_batched = gv_cuda_matmul_batched,
    .sum_rows = gv_cuda_sum_rows,

    .softmax = gv_cuda_softmax,
    .softmax_backward = gv_cuda_softmax_backward,
    .layer_norm = gv_cuda_layer_norm,
    .layer_norm_backward = gv_cuda_layer_norm_backward,
    .rms_norm = gv_cuda_rms_norm,
    .rms_norm_backward = gv_cuda_rms_norm_backward,
    .dwconv_forward = gv_cuda_dwconv_forward,
    .dwconv_backward_input = gv_cuda_dwconv_backward_input,
    .dwconv_backward_weight = gv_cuda_dwconv_backward_weight,
    .embedding = gv_cuda_embedding,
    .embedding_backward = gv_cuda_embedding_backward,
    .where = gv_cuda_where,

    .cat_part = gv_cuda_cat_part,
    .pad = gv_cuda_pad,

    .sq_diff_sum = gv_cuda_sq_diff_sum,
    .mse_backward = gv_cuda_mse_backward,
    .cross_entropy_sum = gv_cuda_cross_entropy_sum,
    .cross_entropy_backward = gv_cuda_cross_entropy_backward,
    .dropout_apply = gv_cuda_dropout_apply,
    .dropout_backward = gv_cuda_dropout_backward,
    .cosine_forward = gv_cuda_cosine_forward,
    .cosine_backward = gv_cuda_cosine_backward,

    .linear_attention_scratch = gv_cuda_linear_attention_scratch,
    .linear_attention = gv_cuda_linear_attention,
    .linear_attention_backward = gv_cuda_linear_attention_backward,
    .cross_attention_scratch = gv_cuda_cross_attention_scratch,
    .cross_attention = gv_cuda_cross_attention,
    .cross_attention_backward = gv_cuda_cross_attention_backward,

    .norm_modulate = gv_cuda_norm_modulate,
    .norm_modulate_backward = gv_cuda_norm_modulate_backward,
    .gated_residual = gv_cuda_gated_residual,
    .gated_residual_backward = gv_cuda_gated_residual_backward,
    .glu_silu = gv_cuda_glu_silu,
    .glu_silu_backward = gv_cuda_glu_silu_backward,
    .timestep_embedding = gv_cuda_timestep_embedding,

    .sgd = gv_cuda_sgd,
    .adamw = gv_cuda_adamw,
    .adamw_group = gv_cuda_adamw_group,
    .came_full = gv_cuda_came_full,
    .came_scratch_doubles = gv_cuda_came_scratch_doubles,
    .came_factored = gv_cuda_came_factored,
    .quantize_dynamic = gv_cuda_quantize_dynamic,
    .dequantize_dynamic = gv_cuda_dequantize_dynamic,
    .quantize_affine = gv_cuda_quantize_affine,
    .dequantize_affine = gv_cuda_dequantize_affine,
    .sum_squares = gv_cuda_sum_squares,
    .sum_squares_group = gv_cuda_sum_squares_group,
    .scale_group = gv_cuda_scale_group,
    .scale_ = gv_cuda_scale_,
};

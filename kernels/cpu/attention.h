/* attention.h — CPU kernels of this family (see cpu.h): SANA's ReLU linear
 * attention and the softmax cross attention, with their backward passes. */
#ifndef GROVE_KERNELS_CPU_ATTENTION_H
#define GROVE_KERNELS_CPU_ATTENTION_H

#include <stdint.h>

#include "linalg.h"

/* A (B, N, D) operand whose channels are adjacent: element (b, i, c) is
 * data[b·sb + i·sn + c]. Views of a wider projection (a (B, N, 3D) qkv
 * output narrowed to one third) are read in place this way. */
typedef struct gv_attn_rows {
    const float *data;
    int64_t sb, sn;
} gv_attn_rows;

/* ---- linear attention (attention.c) -------------------------------------
 * q, k, v (B, N, H·d) as rows; per batch and head, with a = ReLU(q) and
 * b = ReLU(k): KV = bᵀv (d×d), s = Σ_j b_j, o_i = a_i·KV / (a_i·s + eps).
 * state (B, H, d + 1, d) receives KV (rows 0..d-1) and s (row d) for the
 * backward; scratch holds gv_cpu_linear_attention_scratch(d) bytes per
 * (batch, head), 64-byte aligned. Outputs (out, dq, dk, dv) are contiguous
 * (B, N, H·d); in the backward any of dq, dk, dv may be NULL (not wanted). */
int64_t gv_cpu_linear_attention_scratch(int64_t d);
void gv_cpu_linear_attention(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                             gv_attn_rows v, float eps, void *scratch, float *state, float *out);
void gv_cpu_linear_attention_backward(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                                      gv_attn_rows v, gv_attn_rows g, float eps, const float *state, void *scratch,
                                      float *dq, float *dk, float *dv);

/* ---- cross attention (attention.c) --------------------------------------
 * q (B, N, H·dh), k, v (B, M, H·dh) as rows, with leading dimensions
 * (sn) that fit an int; mask (B, M) contiguous, u8 when mask_u8 else f32,
 * nonzero = a real token, or NULL. P (B, H, N, M) receives the attention
 * probabilities, out (contiguous (B, N, H·dh)) the attended values. The
 * backward reads P, needs a scratch of gv_cpu_cross_attention_scratch()
 * floats when dq or dk is wanted, and fills any of dq, dk, dv (contiguous,
 * NULL = not wanted). */
int64_t gv_cpu_cross_attention_scratch(int64_t B, int64_t H, int64_t N, int64_t M);
void gv_cpu_cross_attention(gv_cpu_sgemm_fn sgemm, int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh,
                            gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8,
                            float *P, float *out);
void gv_cpu_cross_attention_backward(gv_cpu_sgemm_fn sgemm, int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh,
                                     gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const float *P, gv_attn_rows g,
                                     float *scratch, float *dq, float *dk, float *dv);

#endif

/*
 * conv_bf16.c — the general convolution in bf16 mixed precision: the input
 * and the weights rounded to bf16 (nearest, ties to even: the storage
 * conversion's own rule), the products summed in f32, bias and output f32.
 *
 * Where the CPU multiplies bf16 and the build has oneDNN, the rounded
 * operands go to oneDNN's bf16 convolution (conv_dnnl.c). Elsewhere, and
 * for any shape oneDNN refuses, the reference path rounds the operands
 * f32 → bf16 → f32 and runs the f32 convolution on them: the same products,
 * summed in another order. The bf16 copies take half the room of the f32
 * ones, so one scratch sized for the reference path serves both.
 */
#include "convert.h"
#include "cpu.h"


static void round_to_f32(const float *x, float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = gv_conv_bf16_to_f32(gv_conv_f32_to_bf16(x[i]));
}

static int64_t input_numel(const gv_conv_shape *s) { return s->b * s->h * s->w * s->cin; }

static int64_t weight_numel(const gv_conv_shape *s) { return s->cout * s->kh * s->kw * (s->cin / s->groups); }

/* Bytes: the rounded input and weights as f32, then the f32 forward's own scratch. */
int64_t gv_cpu_conv_bf16_scratch(const gv_conv_shape *s)
{
    return (input_numel(s) + weight_numel(s) + gv_cpu_conv_scratch(s)) * (int64_t)sizeof(float);
}

void gv_cpu_conv_forward_bf16(gv_cpu_sgemm_fn sgemm, const gv_conv_shape *s, const float *x, const float *wk,
                              const float *bias, float *y, void *scratch)
{
    const int64_t nx = input_numel(s), nw = weight_numel(s);
    if (gv_cpu_conv_forward_bf16_dnnl(s, x, wk, bias, y, scratch)) return;
    float *xr = scratch, *wr = xr + nx;
    round_to_f32(x, xr, nx);
    round_to_f32(wk, wr, nw);
    gv_cpu_conv_forward(sgemm, s, xr, wr, bias, y, wr + nw);
}

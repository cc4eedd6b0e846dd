/*
 * conv_dnnl.c — the general convolution's forward through oneDNN, in
 * builds that found it (GROVE_HAVE_DNNL; Debian's libdnnl-dev). oneDNN's
 * direct convolution kernels are what PyTorch runs for CPU convolutions
 * and beat im2col + sgemm on DC-AE's shapes (docs/performance.md, "conv2d:
 * grove vs PyTorch and oneDNN"). The activations stay NHWC and the weight
 * tap-major, which oneDNN knows as ohwi (gohwi with groups); the primitive
 * picks its own weight format, reordered into a buffer of its own per call
 * (the weight is small next to the activations). oneDNN caches the
 * primitives it builds, so a repeated shape costs no new kernel.
 *
 * Anything oneDNN refuses makes gv_cpu_conv_forward_dnnl return false and
 * the caller falls back to im2col (conv_gemm.c).
 *
 * The bf16 convolution (conv_bf16.c) runs the same primitive on bf16
 * source and weights (rounded by grove, nearest even) with an f32 bias and
 * f32 output: oneDNN's bf16 kernels multiply with vdpbf16ps (or AMX) and
 * sum in f32. It is tried only where cpuid reports bf16 arithmetic, since
 * oneDNN would otherwise emulate it more slowly than the reference path.
 */
#include "convert.h"
#include "cpu.h"

/* Whether the forward tries oneDNN (grove_conv_set_dnnl) and whether the
 * bf16 forward does (grove_conv_bf16_set_dnnl); read per call. */
static _Atomic bool use_dnnl = true;
static _Atomic bool use_bf16_dnnl = true;

void gv_cpu_conv_dnnl_enable(bool on) { use_dnnl = on; }
void gv_cpu_conv_bf16_dnnl_enable(bool on) { use_bf16_dnnl = on; }

#ifdef GROVE_HAVE_DNNL
bool gv_cpu_conv_dnnl_available(void) { return true; }

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static bool engine_ok;

static void engine_start(void) { engine_ok = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success; }

bool gv_cpu_conv_bf16_dnnl_available(void) { return gv_cpu_has_bf16_arithmetic(); }

/* y (f32) = conv(x, wk) + bias (f32, may be NULL), the source and weights
 * of data type dt (f32, or bf16 as uint16_t bits). */
static bool conv_run(const gv_conv_shape *s, dnnl_data_type_t dt, const void *x, const void *wk, const float *bias,
                     float *y)
{
    pthread_once(&once, engine_start);
    if (!engine_ok) return false;
    const int64_t g = s->groups;
    dnnl_dims_t src_dims = {s->b, s->cin, s->h, s->w}, dst_dims = {s->b, s->cout, s->ho, s->wo};
    dnnl_dims_t bias_dims = {s->cout}, strides = {s->stride, s->stride}, pad = {s->pad, s->pad};
    dnnl_dims_t w_dims = {g, s->cout / g, s->cin / g, s->kh, s->kw};
    dnnl_memory_desc_t src_md, dst_md, bias_md, wuser_md, wany_md;
    memset(&bias_md, 0, sizeof bias_md); /* a zero descriptor: no bias */
    int wnd = g > 1 ? 5 : 4;
    const int64_t *wd = g > 1 ? w_dims : w_dims + 1;
    if (dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dt, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        (bias && dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x) != dnnl_success) ||
        dnnl_memory_desc_init_by_tag(&wuser_md, wnd, wd, dt, g > 1 ? dnnl_gohwi : dnnl_ohwi) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wany_md, wnd, wd, dt, dnnl_format_tag_any) != dnnl_success)
        return false;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &wany_md,
                                           &bias_md, &dst_md, strides, pad, pad) != dnnl_success)
        return false;
    bool ok = false;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t conv = NULL, reorder = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t src = NULL, dst = NULL, bm = NULL, wuser = NULL, wmem = NULL;
    if (dnnl_primitive_desc_create(&pd, &cd, NULL, engine, NULL) != dnnl_success) goto out;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    bool same = dnnl_memory_desc_equal(wmd, &wuser_md);
    if (dnnl_primitive_create(&conv, pd) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        dnnl_memory_create(&src, &src_md, engine, (void *)x) != dnnl_success ||
        dnnl_memory_create(&dst, &dst_md, engine, y) != dnnl_success ||
        (bias && dnnl_memory_create(&bm, &bias_md, engine, (void *)bias) != dnnl_success) ||
        dnnl_memory_create(&wuser, &wuser_md, engine, (void *)wk) != dnnl_success)
        goto out;
    if (!same) {
        if (dnnl_memory_create(&wmem, wmd, engine, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
            dnnl_reorder_primitive_desc_create(&rpd, &wuser_md, engine, wmd, engine, NULL) != dnnl_success ||
            dnnl_primitive_create(&reorder, rpd) != dnnl_success)
            goto out;
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, wmem}};
        if (dnnl_primitive_execute(reorder, stream, 2, ra) != dnnl_success) goto out;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, same ? wuser : wmem}, {DNNL_ARG_DST, dst},
                               {DNNL_ARG_BIAS, bm}};
    if (dnnl_primitive_execute(conv, stream, bias ? 4 : 3, args) != dnnl_success) goto out;
    ok = dnnl_stream_wait(stream) == dnnl_success;
out:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (conv) dnnl_primitive_destroy(conv);
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(wmem);
    dnnl_memory_destroy(wuser);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(src);
    if (stream) dnnl_stream_destroy(stream);
    return ok;
}

bool gv_cpu_conv_forward_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias, float *y)
{
    return use_dnnl && conv_run(s, dnnl_f32, x, wk, bias, y);
}

static void round_to_bf16(const float *x, uint16_t *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = gv_conv_f32_to_bf16(x[i]);
}

bool gv_cpu_conv_forward_bf16_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias,
                                   float *y, uint16_t *scratch)
{
    if (!use_bf16_dnnl || !gv_cpu_has_bf16_arithmetic()) return false;
    const int64_t nx = s->b * s->h * s->w * s->cin, nw = s->cout * s->kh * s->kw * (s->cin / s->groups);
    round_to_bf16(x, scratch, nx);
    round_to_bf16(wk, scratch + nx, nw);
    return conv_run(s, dnnl_bf16, scratch, scratch + nx, bias, y);
}

#else

bool gv_cpu_conv_dnnl_available(void) { return false; }
bool gv_cpu_conv_bf16_dnnl_available(void) { return false; }

bool gv_cpu_conv_forward_bf16_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias,
                                   float *y, uint16_t *scratch)
{
    (void)s, (void)x, (void)wk, (void)bias, (void)y, (void)scratch;
    return false;
}

bool gv_cpu_conv_forward_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias, float *y)
{
    (void)s, (void)x, (void)wk, (void)bias, (void)y;
    return false;
}

#endif

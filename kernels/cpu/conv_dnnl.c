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
#include "../../core/internal.h"

/* Whether the forward tries oneDNN (grove_conv_set_dnnl) and whether the
 * bf16 forward does (grove_conv_bf16_set_dnnl); read per call. */
static _Atomic bool use_dnnl = true;
static _Atomic bool use_bf16_dnnl = true;
/* Whether the f32 forward takes oneDNN's Winograd convolution where it
 * fits (grove_conv_set_winograd); read per call. */
static _Atomic bool use_winograd = true;

void gv_cpu_conv_dnnl_enable(bool on) { use_dnnl = on; }
void gv_cpu_conv_winograd_enable(bool on) { use_winograd = on; }
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

/* Runs a reorder from one memory to another on the stream. */
static bool reorder_run(dnnl_stream_t stream, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *fmd, *tmd;
    if (dnnl_memory_get_memory_desc(from, &fmd) != dnnl_success ||
        dnnl_memory_get_memory_desc(to, &tmd) != dnnl_success)
        return false;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    bool ok = dnnl_reorder_primitive_desc_create(&rpd, fmd, engine, tmd, engine, NULL) == dnnl_success &&
              dnnl_primitive_create(&r, rpd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(r, stream, 2, a) == dnnl_success;
    }
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return ok;
}

/* Winograd F(4×4, 3×3) through oneDNN (its jit_wino_4x3 kernel for
 * AVX-512): a 3×3 convolution as products of 6×6 transformed tiles, 2.25×
 * fewer multiplications than the direct convolution, results within f32
 * rounding of it. oneDNN transforms the weight on every call (about 0.1-0.4 s
 * for 512 × 512 channels here), which outputs under about 256×256 pixels do
 * not earn back; above that the convolution takes about half the direct
 * kernel's time with 128 or more channels in and out, and loses to it with
 * fewer (docs/performance.md, "The DC-AE decode: Winograd 3×3
 * convolutions"). */
enum { WINOGRAD_MIN_PIXELS = 256 * 256, WINOGRAD_MIN_CHANNELS = 128 };

/* Output pixels per band: the Winograd kernel's scratchpad holds the
 * band's transformed source and output (36/16 of each), so a whole
 * 512×512 image would take about a GB that page-faults afresh per call;
 * bands of this size keep it to tens of MB, reused from grove's cache. */
enum { WINOGRAD_BAND_PIXELS = 128 * 128 };

/* Whether the f32 forward of s goes through oneDNN's Winograd convolution:
 * a dense 3×3, stride 1, wide enough, on a large enough output. */
static bool winograd_fits(const gv_conv_shape *s, dnnl_data_type_t dt)
{
    return use_winograd && dt == dnnl_f32 && s->groups == 1 && s->kh == 3 && s->kw == 3 && s->stride == 1 &&
           s->cin >= WINOGRAD_MIN_CHANNELS && s->cout >= WINOGRAD_MIN_CHANNELS &&
           s->b * s->ho * s->wo >= WINOGRAD_MIN_PIXELS;
}

/* A oneDNN memory of descriptor md over a block of grove's CPU storage
 * (*held, released by the caller): large blocks come from grove's cache of
 * freed blocks, where oneDNN's own allocation would page-fault afresh on
 * every call. */
static bool memory_from_storage(const dnnl_memory_desc_t *md, dnnl_memory_t *mem, grove_storage **held)
{
    size_t n = dnnl_memory_desc_get_size(md);
    *held = gv_storage_new((int64_t)(n > 0 ? n : 1), GROVE_CPU);
    if (!*held) return false;
    return dnnl_memory_create(mem, md, engine, (*held)->data) == dnnl_success;
}

/* One band of a Winograd convolution: output rows [o0, o1) of batch item
 * bi, from the input rows they read (padding only where the band meets the
 * image's edge). The weight is transformed into *wmem for the first band
 * and reused by the next ones while their primitive reads the same format. */
typedef struct {
    dnnl_stream_t stream;
    dnnl_memory_t wuser, wplain, wmem;
    dnnl_memory_desc_t wmd;
    grove_storage *wheld;
} wino_state;

static bool wino_band(const gv_conv_shape *s, wino_state *ws, const float *x, const float *bias, float *y, int64_t bi,
                      int64_t o0, int64_t o1)
{
    const int64_t in0 = o0 - s->pad, in1 = o1 - 1 - s->pad + s->kh;
    const int64_t r0 = in0 > 0 ? in0 : 0, r1 = in1 < s->h ? in1 : s->h;
    dnnl_dims_t src_dims = {1, s->cin, r1 - r0, s->w}, dst_dims = {1, s->cout, o1 - o0, s->wo};
    dnnl_dims_t bias_dims = {s->cout}, strides = {1, 1};
    dnnl_dims_t pad_l = {r0 - in0, s->pad}, pad_r = {in1 - r1, s->pad};
    dnnl_dims_t w_dims = {s->cout, s->cin, s->kh, s->kw};
    dnnl_memory_desc_t src_md, dst_md, src_any, dst_any, bias_md, wany_md;
    memset(&bias_md, 0, sizeof bias_md);
    if (dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        (bias && dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x) != dnnl_success) ||
        dnnl_memory_desc_init_by_tag(&wany_md, 4, w_dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return false;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_winograd, &src_any, &wany_md,
                                           &bias_md, &dst_any, strides, pad_l, pad_r) != dnnl_success)
        return false;
    bool ok = false;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t conv = NULL;
    dnnl_memory_t src = NULL, dst = NULL, bm = NULL, csrc = NULL, cdst = NULL, pad_mem = NULL;
    grove_storage *held[3] = {NULL, NULL, NULL};
    if (dnnl_primitive_attr_create(&attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL) != dnnl_success)
        goto out;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const float *xb = x + (bi * s->h + r0) * s->w * s->cin;
    float *yb = y + (bi * s->ho + o0) * s->wo * s->cout;
    if (dnnl_primitive_create(&conv, pd) != dnnl_success ||
        dnnl_memory_create(&src, &src_md, engine, (void *)xb) != dnnl_success ||
        dnnl_memory_create(&dst, &dst_md, engine, yb) != dnnl_success ||
        (bias && dnnl_memory_create(&bm, &bias_md, engine, (void *)bias) != dnnl_success) ||
        !memory_from_storage(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), &pad_mem, &held[0]) ||
        !memory_from_storage(smd, &csrc, &held[1]) || !memory_from_storage(dmd, &cdst, &held[2]))
        goto out;
    if (!ws->wmem || !dnnl_memory_desc_equal(wmd, &ws->wmd)) {
        dnnl_memory_destroy(ws->wmem);
        ws->wmem = NULL;
        gv_storage_release(ws->wheld);
        ws->wmd = *wmd;
        if (!memory_from_storage(wmd, &ws->wmem, &ws->wheld) || !reorder_run(ws->stream, ws->wplain, ws->wmem))
            goto out;
    }
    if (!reorder_run(ws->stream, src, csrc)) goto out;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, csrc}, {DNNL_ARG_WEIGHTS, ws->wmem}, {DNNL_ARG_DST, cdst},
                               {DNNL_ARG_SCRATCHPAD, pad_mem}, {DNNL_ARG_BIAS, bm}};
    if (dnnl_primitive_execute(conv, ws->stream, bias ? 5 : 4, args) != dnnl_success) goto out;
    if (!reorder_run(ws->stream, cdst, dst)) goto out;
    ok = dnnl_stream_wait(ws->stream) == dnnl_success;
out:
    if (conv) dnnl_primitive_destroy(conv);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_memory_destroy(pad_mem);
    dnnl_memory_destroy(cdst);
    dnnl_memory_destroy(csrc);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(src);
    for (int i = 0; i < 3; i++) gv_storage_release(held[i]);
    return ok;
}

/* y = conv(x, wk) + bias through oneDNN's Winograd convolution, in bands
 * of output rows (a multiple of the 4-row output tile). The tap-major
 * weight goes through oihw, the layout oneDNN's Winograd weight transform
 * reads. False where oneDNN has no Winograd kernel for the shape or CPU. */
static bool conv_winograd(const gv_conv_shape *s, const float *x, const float *wk, const float *bias, float *y)
{
    pthread_once(&once, engine_start);
    if (!engine_ok) return false;
    dnnl_dims_t w_dims = {s->cout, s->cin, s->kh, s->kw};
    dnnl_memory_desc_t wuser_md, wplain_md;
    if (dnnl_memory_desc_init_by_tag(&wuser_md, 4, w_dims, dnnl_f32, dnnl_ohwi) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wplain_md, 4, w_dims, dnnl_f32, dnnl_oihw) != dnnl_success)
        return false;
    wino_state ws = {0};
    grove_storage *plain = NULL;
    bool ok = dnnl_stream_create(&ws.stream, engine, dnnl_stream_default_flags) == dnnl_success &&
              dnnl_memory_create(&ws.wuser, &wuser_md, engine, (void *)wk) == dnnl_success &&
              memory_from_storage(&wplain_md, &ws.wplain, &plain) && reorder_run(ws.stream, ws.wuser, ws.wplain);
    int64_t rows = WINOGRAD_BAND_PIXELS / (s->wo > 0 ? s->wo : 1);
    rows = rows < 4 ? 4 : rows / 4 * 4;
    for (int64_t bi = 0; ok && bi < s->b; bi++)
        for (int64_t o0 = 0; ok && o0 < s->ho; o0 += rows)
            ok = wino_band(s, &ws, x, bias, y, bi, o0, o0 + rows < s->ho ? o0 + rows : s->ho);
    dnnl_memory_destroy(ws.wmem);
    dnnl_memory_destroy(ws.wplain);
    dnnl_memory_destroy(ws.wuser);
    gv_storage_release(ws.wheld);
    gv_storage_release(plain);
    if (ws.stream) dnnl_stream_destroy(ws.stream);
    return ok;
}

/* y (f32) = conv(x, wk) + bias (f32, may be NULL), the source and weights
 * of data type dt (f32, or bf16 as uint16_t bits), through oneDNN's direct
 * convolution on grove's NHWC data in place; the primitive's scratchpad
 * lives in grove's storage. */
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
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t conv = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t src = NULL, dst = NULL, bm = NULL, wuser = NULL, wmem = NULL, pad_mem = NULL;
    grove_storage *held[2] = {NULL, NULL};
    if (dnnl_primitive_attr_create(&attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL) != dnnl_success)
        goto out;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    bool same = dnnl_memory_desc_equal(wmd, &wuser_md);
    if (dnnl_primitive_create(&conv, pd) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        dnnl_memory_create(&src, &src_md, engine, (void *)x) != dnnl_success ||
        dnnl_memory_create(&dst, &dst_md, engine, y) != dnnl_success ||
        (bias && dnnl_memory_create(&bm, &bias_md, engine, (void *)bias) != dnnl_success) ||
        dnnl_memory_create(&wuser, &wuser_md, engine, (void *)wk) != dnnl_success ||
        !memory_from_storage(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), &pad_mem, &held[0]) ||
        (!same && !memory_from_storage(wmd, &wmem, &held[1])))
        goto out;
    if (!same && !reorder_run(stream, wuser, wmem)) goto out;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, same ? wuser : wmem}, {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, pad_mem}, {DNNL_ARG_BIAS, bm}};
    if (dnnl_primitive_execute(conv, stream, bias ? 5 : 4, args) != dnnl_success) goto out;
    ok = dnnl_stream_wait(stream) == dnnl_success;
out:
    if (conv) dnnl_primitive_destroy(conv);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_memory_destroy(pad_mem);
    dnnl_memory_destroy(wmem);
    dnnl_memory_destroy(wuser);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(src);
    for (int i = 0; i < 2; i++) gv_storage_release(held[i]);
    if (stream) dnnl_stream_destroy(stream);
    return ok;
}

bool gv_cpu_conv_forward_dnnl(const gv_conv_shape *s, const float *x, const float *wk, const float *bias, float *y)
{
    if (!use_dnnl) return false;
    /* oneDNN refuses Winograd where its kernel does not fit the shape or
     * the CPU (it has one for AVX-512): the direct convolution then runs */
    if (winograd_fits(s, dnnl_f32) && conv_winograd(s, x, wk, bias, y)) return true;
    return conv_run(s, dnnl_f32, x, wk, bias, y);
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

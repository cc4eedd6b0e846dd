/*
 * gemm_bf16_dnnl.c — the bf16 mixed-precision GEMM on CPUs with bf16
 * arithmetic (AVX512-BF16's vdpbf16ps, or AMX), through oneDNN's matmul in
 * builds that found it (GROVE_HAVE_DNNL; Debian's libdnnl-dev). The
 * operands are rounded to bf16 with grove's own rule (nearest, ties to
 * even) into the kernel's scratch and multiplied with f32 accumulation: the
 * same products as the reference path (linalg_bf16.c: rounded copies, then
 * the f32 sgemm), summed in another order, at up to twice the f32 speed.
 *
 * Used only where cpuid reports bf16 arithmetic: elsewhere oneDNN would
 * emulate it more slowly than the reference path's sgemm. Anything oneDNN
 * refuses makes gv_cpu_gemm_bf16_dnnl return false and the caller runs the
 * reference path. oneDNN caches the primitives it builds, so a repeated
 * shape costs no new kernel.
 */
#include "convert.h"
#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* Whether bf16 GEMMs try oneDNN (grove_gemm_bf16_set_dnnl); read per call. */
static _Atomic bool use_dnnl = true;

void gv_cpu_gemm_bf16_dnnl_enable(bool on) { use_dnnl = on; }

/* AVX512-BF16: CPUID leaf 7, sub-leaf 1, EAX bit 5. AMX-BF16: leaf 7,
 * sub-leaf 0, EDX bit 22. (oneDNN also checks that the OS saves the
 * registers; it refuses the primitive otherwise, and the caller falls back.) */
bool gv_cpu_has_bf16_arithmetic(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool amx = (d >> 22) & 1u;
    unsigned max_sub = a;
    bool avx512 = false;
    if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512 = (a >> 5) & 1u;
    return avx512 || amx;
#else
    return false;
#endif
}

static void round_to_bf16(const float *x, uint16_t *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = gv_conv_f32_to_bf16(x[i]);
}

#ifdef GROVE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

bool gv_cpu_gemm_bf16_dnnl_available(void) { return gv_cpu_has_bf16_arithmetic(); }

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static bool engine_ok;

static void engine_start(void)
{
    engine_ok = gv_cpu_has_bf16_arithmetic() && dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
}

bool gv_cpu_gemm_bf16_dnnl(int m, int n, int k, const float *a, const float *b, float *c, void *scratch)
{
    if (!use_dnnl || m < 1 || n < 1 || k < 1) return false;
    pthread_once(&once, engine_start);
    if (!engine_ok) return false;
    dnnl_dims_t a_dims = {m, k}, b_dims = {k, n}, c_dims = {m, n};
    dnnl_memory_desc_t a_md, b_md, c_md;
    if (dnnl_memory_desc_init_by_tag(&a_md, 2, a_dims, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&b_md, 2, b_dims, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&c_md, 2, c_dims, dnnl_f32, dnnl_ab) != dnnl_success)
        return false;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md) != dnnl_success) return false;
    bool ok = false;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t mm = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL;
    uint16_t *ab = scratch, *bb = ab + (int64_t)m * k;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, engine, NULL) != dnnl_success ||
        dnnl_primitive_create(&mm, pd) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        dnnl_memory_create(&am, &a_md, engine, ab) != dnnl_success ||
        dnnl_memory_create(&bm, &b_md, engine, bb) != dnnl_success ||
        dnnl_memory_create(&cm, &c_md, engine, c) != dnnl_success)
        goto out;
    /* rounded only once oneDNN has taken the shape: a refusal leaves the
     * scratch to the reference path untouched */
    round_to_bf16(a, ab, (int64_t)m * k);
    round_to_bf16(b, bb, (int64_t)k * n);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
    if (dnnl_primitive_execute(mm, stream, 3, args) != dnnl_success) goto out;
    ok = dnnl_stream_wait(stream) == dnnl_success;
out:
    if (mm) dnnl_primitive_destroy(mm);
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(cm);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(am);
    if (stream) dnnl_stream_destroy(stream);
    return ok;
}

#else

bool gv_cpu_gemm_bf16_dnnl_available(void) { return false; }

bool gv_cpu_gemm_bf16_dnnl(int m, int n, int k, const float *a, const float *b, float *c, void *scratch)
{
    (void)m, (void)n, (void)k, (void)a, (void)b, (void)c, (void)scratch, (void)round_to_bf16;
    return false;
}

#endif

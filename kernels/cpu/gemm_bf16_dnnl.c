/*
 * gemm_bf16_dnnl.c — the bf16 mixed-precision GEMM on CPUs with bf16
 * arithmetic (AVX512-BF16's vdpbf16ps, or AMX), through oneDNN's matmul in
 * builds that found it (GROVE_HAVE_DNNL; Debian's libdnnl-dev). f32
 * operands are rounded to bf16 with grove's own rule (nearest, ties to
 * even) into the kernel's scratch; bf16-stored ones are read in place.
 * oneDNN's memory descriptors take strides, so a transposed or strided
 * operand (a Linear weight read as wᵀ) needs no copy. The products are
 * summed with f32 accumulation: the same products as the reference path
 * (linalg_bf16.c: rounded copies, then the f32 sgemm), summed in another
 * order, at up to twice the f32 speed.
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

/* x (rows, cols) f32 with leading dimension ld rounded into y (rows, cols)
 * compact bf16. */
static void round_to_bf16(const float *x, int64_t rows, int64_t cols, int64_t ld, uint16_t *y)
{
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) y[r * cols + j] = gv_conv_f32_to_bf16(x[r * ld + j]);
}

#ifdef GROVE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <string.h>

bool gv_cpu_gemm_bf16_dnnl_available(void) { return gv_cpu_has_bf16_arithmetic(); }

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static bool engine_ok;

static void engine_start(void)
{
    engine_ok = gv_cpu_has_bf16_arithmetic() && dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
}

/* One operand of the matmul: its bf16 data (the stored tensor itself when it
 * is bf16, else its rounded copy at *spare, which then advances) and the
 * descriptor of op(x) (rows, cols) over it: strides (ld, 1), or (1, ld) for
 * a transposed operand, which oneDNN reads in place. */
typedef struct operand {
    dnnl_memory_desc_t md;
    void *data;
    const float *round_from;
    int64_t stored_rows, stored_cols, ld;
} operand;

static bool operand_init(operand *o, bool trans, int rows, int cols, const void *x, int32_t dtype, int ld,
                         uint16_t **spare)
{
    int64_t sr = trans ? cols : rows, sc = trans ? rows : cols;
    o->round_from = NULL;
    if (dtype == GROVE_BF16) {
        o->data = (void *)x; /* only read */
        o->ld = ld;
    } else {
        o->data = *spare;
        o->round_from = x;
        o->ld = sc;
        *spare += sr * sc;
    }
    o->stored_rows = sr, o->stored_cols = sc;
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {o->ld, 1};
    if (trans) strides[0] = 1, strides[1] = o->ld;
    return dnnl_memory_desc_init_by_strides(&o->md, 2, dims, dnnl_bf16, strides) == dnnl_success;
}

static void operand_round(const operand *o, int64_t ld)
{
    if (o->round_from) round_to_bf16(o->round_from, o->stored_rows, o->stored_cols, ld, o->data);
}

bool gv_cpu_gemm_bf16_dnnl(bool trans_a, bool trans_b, int m, int n, int k, const void *a, int32_t a_dtype, int lda,
                           const void *b, int32_t b_dtype, int ldb, float *c, void *scratch)
{
    if (!use_dnnl || m < 1 || n < 1 || k < 1) return false;
    pthread_once(&once, engine_start);
    if (!engine_ok) return false;
    uint16_t *spare = scratch;
    operand oa, ob;
    dnnl_dims_t c_dims = {m, n};
    dnnl_memory_desc_t c_md;
    if (!operand_init(&oa, trans_a, m, k, a, a_dtype, lda, &spare) ||
        !operand_init(&ob, trans_b, k, n, b, b_dtype, ldb, &spare) ||
        dnnl_memory_desc_init_by_tag(&c_md, 2, c_dims, dnnl_f32, dnnl_ab) != dnnl_success)
        return false;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &oa.md, &ob.md, NULL, &c_md) != dnnl_success) return false;
    bool ok = false;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t mm = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL;
    const char *impl = NULL;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, engine, NULL) != dnnl_success ||
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        goto out;
    /* oneDNN's reference kernels (a layout its jit kernels do not take) are
     * slower than the reference path's sgemm */
    if (!impl || strncmp(impl, "ref", 3) == 0) goto out;
    if (dnnl_primitive_create(&mm, pd) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        dnnl_memory_create(&am, &oa.md, engine, oa.data) != dnnl_success ||
        dnnl_memory_create(&bm, &ob.md, engine, ob.data) != dnnl_success ||
        dnnl_memory_create(&cm, &c_md, engine, c) != dnnl_success)
        goto out;
    /* rounded only once oneDNN has taken the shape: a refusal leaves the
     * scratch to the reference path untouched */
    operand_round(&oa, lda);
    operand_round(&ob, ldb);
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

bool gv_cpu_gemm_bf16_dnnl(bool trans_a, bool trans_b, int m, int n, int k, const void *a, int32_t a_dtype, int lda,
                           const void *b, int32_t b_dtype, int ldb, float *c, void *scratch)
{
    (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)a, (void)a_dtype, (void)lda, (void)b,
        (void)b_dtype, (void)ldb, (void)c, (void)scratch, (void)round_to_bf16;
    return false;
}

#endif

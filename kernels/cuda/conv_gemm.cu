/*
 * conv_gemm.cu — CUDA twin of kernels/cpu/conv_gemm.c: the general 2-D
 * convolution on NHWC data as im2col + one strided batched cuBLAS GEMM over
 * the groups, in chunks of output rows.
 *
 * The column layout is the CPU's: row p of a chunk is output pixel p, its
 * groups·kh·kw·cpg entries ordered (group, i, j, ci) to match the tap-major
 * weight (cout, kh, kw, cpg). The chunks are larger than on the CPU
 * (GV_CONV_CUDA_COLUMNS floats, 256 MB): a GPU wants fewer, larger GEMMs
 * and has the memory. A 1×1 convolution with stride 1 and no padding reads
 * the input as its column matrix.
 *
 * grove's matrices are row-major and cuBLAS's column-major: row-major
 * C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ (as in linalg.cu).
 */
#include "cuda.h"
#include "context.h"
#include "grove.h"

enum { GV_CONV_CUDA_COLUMNS = 64 << 20 };

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

static bool conv_is_pointwise(const gv_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

static long long chunk_rows(const gv_conv_shape *s)
{
    long long per_row = (long long)(s->wo * s->kh * s->kw * s->cin);
    long long rows = per_row > 0 ? GV_CONV_CUDA_COLUMNS / per_row : 1;
    if (rows < 1) rows = 1;
    long long total = (long long)(s->b * s->ho);
    return rows < total ? rows : (total > 0 ? total : 1);
}

extern "C" int64_t gv_cuda_conv_scratch(const gv_conv_shape *s)
{
    if (conv_is_pointwise(s)) return 0;
    return (int64_t)(chunk_rows(s) * s->wo * s->kh * s->kw * s->cin);
}

/* The columns of output rows r0 … r0 + pixels/wo − 1: one thread per entry. */
static __global__ void im2col_kernel(gv_conv_shape s, const float *x, long long r0, long long pixels, float *col)
{
    long long cpg = s.cin / s.groups, kg = s.kh * s.kw * cpg, width = s.groups * kg;
    GRID_LOOP(idx, pixels * width)
    {
        long long p = idx / width, e = idx % width, g = e / kg, rem = e % kg, tap = rem / cpg, ci = rem % cpg;
        long long i = tap / s.kw, j = tap % s.kw, r = r0 + p / s.wo, ow = p % s.wo, bi = r / s.ho, oh = r % s.ho;
        long long ih = oh * s.stride - s.pad + i, iw = ow * s.stride - s.pad + j;
        col[idx] = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w ? x[((bi * s.h + ih) * s.w + iw) * s.cin + g * cpg + ci]
                                                              : 0.0f;
    }
}

/* dx elements of the rows the chunk [r0, r1) reaches gather their column
 * gradients, taps in the CPU's order (i, then j), one thread per element. */
static __global__ void col2im_kernel(gv_conv_shape s, const float *col, long long r0, long long r1, long long b0,
                                     long long b1, long long first, long long span, long long lo, long long hi,
                                     float *dx)
{
    long long cpg = s.cin / s.groups, kg = s.kh * s.kw * cpg, width = s.groups * kg;
    GRID_LOOP(idx, (b1 - b0 + 1) * span * s.w * s.cin)
    {
        long long c = idx % s.cin, rest = idx / s.cin, iw = rest % s.w;
        rest /= s.w;
        long long ih = first + rest % span, bi = b0 + rest / span;
        if ((bi == b0 && ih < lo) || (bi == b1 && ih > hi)) continue;
        long long g = c / cpg, ci = c % cpg;
        float *d = dx + ((bi * s.h + ih) * s.w + iw) * s.cin + c;
        float acc = *d;
        for (long long i = 0; i < s.kh; i++) {
            long long num = ih + s.pad - i;
            if (num < 0 || num % s.stride) continue;
            long long r = bi * s.ho + num / s.stride;
            if (num / s.stride >= s.ho || r < r0 || r >= r1) continue;
            const float *crow = col + (r - r0) * s.wo * width;
            for (long long j = 0; j < s.kw; j++) {
                long long nw = iw + s.pad - j;
                if (nw < 0 || nw % s.stride || nw / s.stride >= s.wo) continue;
                acc += crow[(nw / s.stride) * width + g * kg + (i * s.kw + j) * cpg + ci];
            }
        }
        *d = acc;
    }
}

static __global__ void fill_rows_kernel(long long m, long long n, const float *bias, float *c)
{
    GRID_LOOP(i, m * n) c[i] = bias[i % n];
}

/* Row-major C_g (m, n) = beta·C_g + op(A_g)·op(B_g) for every group g. */
static void group_gemm(const char *what, long long groups, bool ta, bool tb, long long m, long long n, long long k,
                       const float *a, long long lda, long long sa, const float *b, long long ldb, long long sb,
                       float beta, float *c, long long ldc, long long sc)
{
    if (m == 0 || n == 0 || groups == 0) return;
    const float one = 1.0f;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    /* k 0 (no input channels) leaves beta·C: zeros for beta 0, as on the CPU */
    gv_cuda_record_blas(cublasSgemmStridedBatched(gv_cuda_blas(), opb, opa, (int)n, (int)m, (int)k, &one, b, (int)ldb,
                                                  sb, a, (int)lda, sa, &beta, c, (int)ldc, sc, (int)groups),
                        what);
}

static void im2col(const gv_conv_shape *s, const float *x, long long r0, long long r1, float *col)
{
    long long pixels = (r1 - r0) * s->wo, count = pixels * s->kh * s->kw * s->cin;
    if (count == 0) return;
    im2col_kernel<<<gv_cuda_blocks(count), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(*s, x, r0, pixels, col);
    GV_CUDA_LAUNCHED("conv im2col");
}

extern "C" void gv_cuda_conv_forward(const gv_conv_shape *s, const float *x, const float *wk, const float *bias,
                                     float *y, float *scratch)
{
    long long cpg = s->cin / s->groups, opg = s->cout / s->groups, kg = s->kh * s->kw * cpg;
    long long total = s->b * s->ho, step = chunk_rows(s);
    bool direct = conv_is_pointwise(s);
    for (long long r0 = 0; r0 < total; r0 += step) {
        long long r1 = r0 + step < total ? r0 + step : total, pixels = (r1 - r0) * s->wo;
        float *yc = y + r0 * s->wo * s->cout;
        long long seeded = pixels * s->cout;
        if (bias && seeded > 0) {
            /* (the launch's arguments are plain names: the emulator's rewrite reads up to the first '>') */
            fill_rows_kernel<<<gv_cuda_blocks(seeded), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(pixels, s->cout, bias, yc);
            GV_CUDA_LAUNCHED("conv bias");
        }
        const float *col = scratch;
        long long ldcol = s->groups * kg, gstride = kg;
        if (direct) {
            col = x + r0 * s->wo * s->cin;
            ldcol = s->cin;
            gstride = cpg;
        } else {
            im2col(s, x, r0, r1, scratch);
        }
        group_gemm("conv forward", s->groups, false, true, pixels, opg, kg, col, ldcol, gstride, wk, kg, opg * kg,
                   bias ? 1.0f : 0.0f, yc, s->cout, opg);
    }
}

extern "C" void gv_cuda_conv_backward_input(const gv_conv_shape *s, const float *dy, const float *wk, float *dx,
                                            float *scratch)
{
    long long cpg = s->cin / s->groups, opg = s->cout / s->groups, kg = s->kh * s->kw * cpg;
    long long total = s->b * s->ho, step = chunk_rows(s);
    if (conv_is_pointwise(s)) {
        group_gemm("conv backward input", s->groups, false, false, total * s->wo, cpg, opg, dy, s->cout, opg, wk, kg,
                   opg * kg, 0.0f, dx, s->cin, cpg);
        return;
    }
    long long n = s->b * s->h * s->w * s->cin;
    if (n > 0) gv_cuda_record(cudaMemsetAsync(dx, 0, (size_t)n * sizeof *dx, gv_cuda_stream()), "conv dx zero");
    for (long long r0 = 0; r0 < total; r0 += step) {
        long long r1 = r0 + step < total ? r0 + step : total, pixels = (r1 - r0) * s->wo;
        group_gemm("conv backward input", s->groups, false, false, pixels, kg, opg, dy + r0 * s->wo * s->cout,
                   s->cout, opg, wk, kg, opg * kg, 0.0f, scratch, s->groups * kg, kg);
        long long b0 = r0 / s->ho, b1 = (r1 - 1) / s->ho;
        long long lo = (r0 % s->ho) * s->stride - s->pad, hi = ((r1 - 1) % s->ho) * s->stride - s->pad + s->kh - 1;
        if (lo < 0) lo = 0;
        if (hi > s->h - 1) hi = s->h - 1;
        long long first = b0 == b1 ? lo : 0, span = b0 == b1 ? hi - lo + 1 : s->h;
        long long count = (b1 - b0 + 1) * span * s->w * s->cin;
        if (span <= 0 || count <= 0) continue;
        col2im_kernel<<<gv_cuda_blocks(count), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(*s, scratch, r0, r1, b0, b1,
                                                                                         first, span, lo, hi, dx);
        GV_CUDA_LAUNCHED("conv col2im");
    }
}

extern "C" void gv_cuda_conv_backward_weight(const gv_conv_shape *s, const float *x, const float *dy, float *dwk,
                                             float *scratch)
{
    long long cpg = s->cin / s->groups, opg = s->cout / s->groups, kg = s->kh * s->kw * cpg;
    long long total = s->b * s->ho, step = chunk_rows(s);
    bool direct = conv_is_pointwise(s);
    if (total * s->wo == 0) {
        long long n = s->cout * kg;
        if (n > 0) gv_cuda_record(cudaMemsetAsync(dwk, 0, (size_t)n * sizeof *dwk, gv_cuda_stream()), "conv dw zero");
        return;
    }
    for (long long r0 = 0; r0 < total; r0 += step) {
        long long r1 = r0 + step < total ? r0 + step : total, pixels = (r1 - r0) * s->wo;
        const float *col = scratch;
        long long ldcol = s->groups * kg, gstride = kg;
        if (direct) {
            col = x + r0 * s->wo * s->cin;
            ldcol = s->cin;
            gstride = cpg;
        } else {
            im2col(s, x, r0, r1, scratch);
        }
        group_gemm("conv backward weight", s->groups, true, false, opg, kg, pixels, dy + r0 * s->wo * s->cout,
                   s->cout, opg, col, ldcol, gstride, r0 == 0 ? 0.0f : 1.0f, dwk, kg, opg * kg);
    }
}

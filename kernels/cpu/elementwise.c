/* elementwise.c — pointwise float kernels: unary maps with their
 * derivatives, broadcasting binary ops over strided inputs, scalar forms,
 * pow and clamp. Each element is independent, so any split across threads
 * gives the same bits. */
#include "cpu.h"
#include "parallel.h"
#include "vecmath.h"
#include "../../core/include/grove.h"

#include <math.h>
#include <string.h>

#define PAR_MIN 32768

/* sqrt(2/pi) and the cubic coefficient of the tanh form of GELU. Float
 * math keeps it vectorisable; the result is within a few ulp of float64. */
#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

#define sigmoidf gv_sigmoid

void gv_cpu_unary(int32_t op, const float *x, float *y, int64_t n)
{
#define MAP(expr)                                                              \
    GV_PARALLEL_FOR(n > PAR_MIN, for (int64_t i = 0; i < n; i++) {             \
        float v = x[i];                                                        \
        y[i] = (expr);                                                         \
    });                                                                        \
    break;
    switch (op) {
    case GROVE_NEG: MAP(-v)
    case GROVE_EXP: MAP(expf(v))
    case GROVE_LOG: MAP(logf(v))
    case GROVE_SQRT: MAP(sqrtf(v))
    case GROVE_RSQRT: MAP(1.0f / sqrtf(v))
    case GROVE_ABS: MAP(fabsf(v))
    /* v > 0 ? v : 0 would turn NaN into 0; keep NaN visible instead. */
    case GROVE_RELU: MAP(v < 0 ? 0.0f : v)
    case GROVE_SILU: MAP(v * sigmoidf(v))
    case GROVE_GELU_TANH: MAP(0.5f * v * (1.0f + gv_tanh(GELU_K * (v + GELU_C * v * v * v))))
    case GROVE_SIGMOID: MAP(sigmoidf(v))
    case GROVE_TANH: MAP(gv_tanh(v))
    default: break;
    }
#undef MAP
}

static inline float gelu_grad(float x)
{
    float t = gv_tanh(GELU_K * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
}

void gv_cpu_unary_backward(int32_t op, const float *x, const float *y, const float *g, float *gx, int64_t n)
{
#define MAP(expr)                                                              \
    GV_PARALLEL_FOR(n > PAR_MIN, for (int64_t i = 0; i < n; i++) {             \
        gx[i] = g[i] * (expr);                                                 \
    });                                                                        \
    break;
    switch (op) {
    case GROVE_NEG: MAP(-1.0f)
    case GROVE_EXP: MAP(y[i])
    case GROVE_LOG: MAP(1.0f / x[i])
    case GROVE_SQRT: MAP(0.5f / y[i])
    case GROVE_RSQRT: MAP(-0.5f * y[i] * y[i] * y[i])
    case GROVE_ABS: MAP(x[i] > 0 ? 1.0f : (x[i] < 0 ? -1.0f : 0.0f))
    case GROVE_RELU: MAP(x[i] > 0 ? 1.0f : 0.0f)
    case GROVE_SILU: MAP(sigmoidf(x[i]) * (1.0f + x[i] * (1.0f - sigmoidf(x[i]))))
    case GROVE_GELU_TANH: MAP(gelu_grad(x[i]))
    case GROVE_SIGMOID: MAP(y[i] * (1.0f - y[i]))
    case GROVE_TANH: MAP(1.0f - y[i] * y[i])
    default: break;
    }
#undef MAP
}

/* Drops size-1 dimensions and merges neighbours that both inputs step
 * through as one run (the output is contiguous, so it always can). A
 * broadcast of a row over a matrix then becomes one long row or a short
 * 2-d loop instead of an 8-deep index walk. Returns the new rank. */
int32_t gv_cpu_coalesce2(int32_t ndim, int64_t *shape, int64_t *sa, int64_t *sb)
{
    int32_t k = 0;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        if (k > 0 && sa[k - 1] == sa[i] * shape[i] && sb[k - 1] == sb[i] * shape[i]) {
            shape[k - 1] *= shape[i];
            sa[k - 1] = sa[i];
            sb[k - 1] = sb[i];
            continue;
        }
        shape[k] = shape[i];
        sa[k] = sa[i];
        sb[k] = sb[i];
        k++;
    }
    return k;
}

#define BINARY_LOOP(OPX)                                                                   \
    if (as == 1 && bs == 1)                                                                \
        for (int64_t i = 0; i < len; i++) { float x = pa[i], z = pb[i]; po[i] = OPX; }      \
    else if (as == 1 && bs == 0) {                                                         \
        float z = pb[0];                                                                   \
        for (int64_t i = 0; i < len; i++) { float x = pa[i]; po[i] = OPX; }                \
    } else if (as == 0 && bs == 1) {                                                       \
        float x = pa[0];                                                                   \
        for (int64_t i = 0; i < len; i++) { float z = pb[i]; po[i] = OPX; }                \
    } else                                                                                 \
        for (int64_t i = 0; i < len; i++) { float x = pa[i * as], z = pb[i * bs]; po[i] = OPX; }

/* One run of len outputs with the inputs' innermost strides as and bs. */
static void binary_run(int32_t op, const void *va, int64_t as, const void *vb, int64_t bs, void *vo, int64_t len)
{
    const float *pa = va, *pb = vb;
    float *po = vo;
    switch (op) {
    case GROVE_ADD: BINARY_LOOP(x + z) break;
    case GROVE_SUB: BINARY_LOOP(x - z) break;
    case GROVE_MUL: BINARY_LOOP(x * z) break;
    case GROVE_DIV: BINARY_LOOP(x / z) break;
    default: break;
    }
}

void gv_cpu_walk2(gv_cpu_run2 run, int32_t op, int32_t ndim, const int64_t *shape_in, const void *a, const int64_t *a_stride,
                  const void *b, const int64_t *b_stride, int64_t in_size, int64_t out_size, void *out)
{
    int64_t shape[GROVE_MAX_DIMS], sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++) {
        shape[i] = shape_in[i];
        sa[i] = a_stride[i];
        sb[i] = b_stride[i];
        n *= shape[i];
    }
    if (n == 0) return;
    const char *ca = a, *cb = b;
    char *co = out;
    int32_t k = gv_cpu_coalesce2(ndim, shape, sa, sb);
    if (k == 0) {
        run(op, a, 0, b, 0, out, 1);
        return;
    }
    int64_t len = shape[k - 1], rows = n / len;
    if (rows == 1) {
        /* One long run: split it into blocks across threads. */
        const int64_t blk = 8192;
        int64_t nblk = (len + blk - 1) / blk;
        GV_PARALLEL_FOR(len > PAR_MIN,
            for (int64_t j = 0; j < nblk; j++) {
                int64_t s = j * blk, m = len - s < blk ? len - s : blk;
                run(op, ca + s * sa[0] * in_size, sa[0], cb + s * sb[0] * in_size, sb[0], co + s * out_size, m);
            });
        return;
    }
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t r = 0; r < rows; r++) {
            int64_t oa = 0, ob = 0, rem = r;
            for (int32_t d = k - 2; d >= 0; d--) {
                int64_t i = rem % shape[d];
                rem /= shape[d];
                oa += i * sa[d];
                ob += i * sb[d];
            }
            run(op, ca + oa * in_size, sa[k - 1], cb + ob * in_size, sb[k - 1], co + r * len * out_size, len);
        });
}

void gv_cpu_binary(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride,
                   const float *b, const int64_t *b_stride, float *out)
{
    gv_cpu_walk2(binary_run, op, ndim, shape, a, a_stride, b, b_stride, sizeof(float), sizeof(float), out);
}

void gv_cpu_binary_scalar(int32_t op, const float *a, float s, bool reverse, float *out, int64_t n)
{
    /* A scalar is a 0-stride operand on one side. */
    const int64_t blk = 8192;
    int64_t nblk = (n + blk - 1) / blk;
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t j = 0; j < nblk; j++) {
            int64_t st = j * blk, m = n - st < blk ? n - st : blk;
            if (reverse) binary_run(op, &s, 0, a + st, 1, out + st, m);
            else binary_run(op, a + st, 1, &s, 0, out + st, m);
        });
}

void gv_cpu_pow_scalar(const float *x, float p, float *y, int64_t n)
{
    if (p == 2.0f) {
        GV_PARALLEL_FOR(n > PAR_MIN,
            for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];);
        return;
    }
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t i = 0; i < n; i++) y[i] = powf(x[i], p););
}

void gv_cpu_pow_scalar_backward(const float *x, float p, const float *g, float *gx, int64_t n)
{
    /* d/dx x^0 is 0 everywhere (powf(0, -1) would give inf * 0 = NaN). */
    if (p == 0.0f) {
        memset(gx, 0, (size_t)n * sizeof *gx);
        return;
    }
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t i = 0; i < n; i++) gx[i] = g[i] * p * powf(x[i], p - 1.0f););
}

void gv_cpu_clamp(const float *x, float lo, float hi, float *y, int64_t n)
{
    /* Written so that a NaN input fails both tests and passes through. */
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = v < lo ? lo : (v > hi ? hi : v);
        });
}

void gv_cpu_clamp_backward(const float *x, float lo, float hi, const float *g, float *gx, int64_t n)
{
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t i = 0; i < n; i++) gx[i] = (x[i] >= lo && x[i] <= hi) ? g[i] : 0.0f;);
}

/* compare.c — comparisons and logic into u8 masks (1 or 0), and the any /
 * all reductions of masks (contracts in kernels/kernels.def). */
#include "cpu.h"
#include "parallel.h"
#include "../../core/include/grove.h"

enum { PAR_MIN = 1 << 15 };

/* out[i] = EXPR of x = a[i·as], z = b[i·bs] over a run of len outputs. */
#define RUN(T, EXPR)                                   \
    do {                                               \
        const T *pa = va, *pb = vb;                    \
        for (int64_t i = 0; i < len; i++) {            \
            T x = pa[i * as], z = pb[i * bs];          \
            (void)z;                                   \
            out[i] = (uint8_t)(EXPR);                  \
        }                                              \
    } while (0)

typedef void (*run_fn)(int32_t op, const void *va, int64_t as, const void *vb, int64_t bs, uint8_t *out,
                       int64_t len);

/* IEEE comparisons: a NaN is unequal to everything, ordered against nothing. */
static void compare_run(int32_t op, const void *va, int64_t as, const void *vb, int64_t bs, uint8_t *out, int64_t len)
{
    switch (op) {
    case GROVE_EQ: RUN(float, x == z); break;
    case GROVE_NE: RUN(float, x != z); break;
    case GROVE_LT: RUN(float, x < z); break;
    case GROVE_LE: RUN(float, x <= z); break;
    case GROVE_GT: RUN(float, x > z); break;
    case GROVE_GE: RUN(float, x >= z); break;
    default: break;
    }
}

static void logical_run(int32_t op, const void *va, int64_t as, const void *vb, int64_t bs, uint8_t *out, int64_t len)
{
    switch (op) {
    case GROVE_AND: RUN(uint8_t, x != 0 && z != 0); break;
    case GROVE_OR: RUN(uint8_t, x != 0 || z != 0); break;
    case GROVE_NOT: RUN(uint8_t, x == 0); break;
    default: break;
    }
}

/* The strided walk of gv_cpu_binary: size-1 dimensions dropped, runs
 * merged, then one run per row of the output (esz: the inputs' bytes). */
static void walk(run_fn run, int32_t op, int32_t ndim, const int64_t *shape_in, const void *a, const int64_t *a_stride,
                 const void *b, const int64_t *b_stride, int64_t esz, uint8_t *out)
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
    int32_t k = gv_cpu_coalesce2(ndim, shape, sa, sb);
    if (k == 0) {
        run(op, a, 0, b, 0, out, 1);
        return;
    }
    int64_t len = shape[k - 1], rows = n / len;
    const char *ca = a, *cb = b;
    GV_PARALLEL_FOR(n > PAR_MIN,
        for (int64_t r = 0; r < rows; r++) {
            int64_t oa = 0, ob = 0, rem = r;
            for (int32_t d = k - 2; d >= 0; d--) {
                int64_t i = rem % shape[d];
                rem /= shape[d];
                oa += i * sa[d];
                ob += i * sb[d];
            }
            run(op, ca + oa * esz, sa[k - 1], cb + ob * esz, sb[k - 1], out + r * len, len);
        });
}

void gv_cpu_compare(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride,
                    const float *b, const int64_t *b_stride, uint8_t *out)
{
    walk(compare_run, op, ndim, shape, a, a_stride, b, b_stride, sizeof(float), out);
}

void gv_cpu_logical(int32_t op, int32_t ndim, const int64_t *shape, const uint8_t *a, const int64_t *a_stride,
                    const uint8_t *b, const int64_t *b_stride, uint8_t *out)
{
    walk(logical_run, op, ndim, shape, a, a_stride, b, b_stride, 1, out);
}

void gv_cpu_reduce_mask(bool all, const gv_reduce_plan *p, const uint8_t *x, uint8_t *out)
{
    int64_t nout = 1, nred = 1;
    for (int32_t i = 0; i < p->nkeep; i++) nout *= p->keep_shape[i];
    for (int32_t i = 0; i < p->nred; i++) nred *= p->red_shape[i];
    GV_PARALLEL_FOR(nout * nred > PAR_MIN,
        for (int64_t o = 0; o < nout; o++) {
            int64_t base = 0, rem = o;
            for (int32_t d = p->nkeep - 1; d >= 0; d--) {
                base += rem % p->keep_shape[d] * p->keep_stride[d];
                rem /= p->keep_shape[d];
            }
            /* any stops at the first nonzero, all at the first zero */
            uint8_t found = 0;
            for (int64_t j = 0; j < nred && !found; j++) {
                int64_t off = base;
                rem = j;
                for (int32_t d = p->nred - 1; d >= 0; d--) {
                    off += rem % p->red_shape[d] * p->red_stride[d];
                    rem /= p->red_shape[d];
                }
                found = all ? x[off] == 0 : x[off] != 0;
            }
            out[o] = (uint8_t)(all ? !found : found);
        });
}

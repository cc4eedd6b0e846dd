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
        uint8_t *po = vo;                              \
        for (int64_t i = 0; i < len; i++) {            \
            T x = pa[i * as], z = pb[i * bs];          \
            (void)z;                                   \
            po[i] = (uint8_t)(EXPR);                   \
        }                                              \
    } while (0)

/* IEEE comparisons: a NaN is unequal to everything, ordered against nothing. */
static void compare_run(int32_t op, const void *va, int64_t as, const void *vb, int64_t bs, void *vo, int64_t len)
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

static void logical_run(int32_t op, const void *va, int64_t as, const void *vb, int64_t bs, void *vo, int64_t len)
{
    switch (op) {
    case GROVE_AND: RUN(uint8_t, x != 0 && z != 0); break;
    case GROVE_OR: RUN(uint8_t, x != 0 || z != 0); break;
    case GROVE_NOT: RUN(uint8_t, x == 0); break;
    default: break;
    }
}

void gv_cpu_compare(int32_t op, int32_t ndim, const int64_t *shape, const float *a, const int64_t *a_stride,
                    const float *b, const int64_t *b_stride, uint8_t *out)
{
    gv_cpu_walk2(compare_run, op, ndim, shape, a, a_stride, b, b_stride, sizeof(float), 1, out);
}

void gv_cpu_logical(int32_t op, int32_t ndim, const int64_t *shape, const uint8_t *a, const int64_t *a_stride,
                    const uint8_t *b, const int64_t *b_stride, uint8_t *out)
{
    gv_cpu_walk2(logical_run, op, ndim, shape, a, a_stride, b, b_stride, 1, 1, out);
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

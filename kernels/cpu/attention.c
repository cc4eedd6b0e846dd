/*
 * attention.c — SANA's two attention kernels.
 *
 * Linear attention, per (batch, head) with a = ReLU(q), b = ReLU(k) (N×d):
 * KV = bᵀv (d×d), s = Σ_j b_j, o_i = a_i·KV / (a_i·s + eps). That is
 * O(N·d²) and never forms the N×N matrix. The sums over tokens (KV, s and,
 * in the backward, dKV, ds) are made by the one thread that owns the head,
 * in double (for 32-wide heads: in float within chunks of TOK_CHUNK tokens,
 * in double across them); the per-token passes give each token to one
 * thread. So results do not depend on the thread count. SANA's 32-wide
 * heads take a path written with GCC vector extensions and register tiles;
 * other widths take plain loops. Both are compiled for AVX-512 and AVX2
 * besides the library's base ISA, picked when the library loads
 * (target_clones): the base x86-64-v2 has no FMA.
 *
 * Cross attention: per (batch, head) softmax attention through sgemm, the
 * probabilities P kept for the backward (the text is short, M ≤ 300), the
 * softmax with a vectorised exp.
 */
#include "cpu.h"
#include "vecmath.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* cblas constants (kernels do not include core/internal.h). */
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

enum { TB = 4 };          /* tokens per register block */
enum { TOK_CHUNK = 64 };  /* tokens per task in the per-token passes */
enum { LANES = 8 };       /* partial sums of a dot product, so it vectorises */

#if defined(__AVX2__) && defined(__FMA__)
#define CLONES /* the build already targets FMA-capable CPUs */
#else
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#define BODY static inline __attribute__((always_inline))

/* ReLU that keeps a NaN, as torch's does: a NaN input must not vanish. */
static inline float relu(float x) { return x < 0.0f ? 0.0f : x; }

/* Σ x_c y_c in float with LANES partial sums (the order depends on d only). */
BODY float dot(int64_t d, const float *x, const float *y)
{
    float acc[LANES] = {0};
    int64_t c = 0;
    for (; c + LANES <= d; c += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[c + l] * y[c + l];
    for (; c < d; c++) acc[0] += x[c] * y[c];
    float s = 0;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* Σ ReLU(x_c) y_c, as dot. */
BODY float relu_dot(int64_t d, const float *x, const float *y)
{
    float acc[LANES] = {0};
    int64_t c = 0;
    for (; c + LANES <= d; c += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += relu(x[c + l]) * y[c + l];
    for (; c < d; c++) acc[0] += relu(x[c]) * y[c];
    float s = 0;
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* ---- linear attention ----------------------------------------------------- */

/* The per-(batch, head) scratch: double accumulators for a d×d matrix and a
 * d-vector, one block of token rows in double, and float matrices. */
typedef struct la_scratch {
    double *acc;    /* d·d + d: the matrix sum, then the vector sum */
    double *blk;    /* TB·d */
    float *kvt;     /* d·d: KVᵀ (backward) */
    float *u;       /* d: KV·g of one token (backward) */
    float *dkv;     /* d·d: dKV (backward, read by the per-token pass) */
    float *dkvt;    /* d·d: dKVᵀ (idem) */
    float *ds;      /* d: ds (idem) */
    float *chunk;   /* TOK_CHUNK·d: dnum of a chunk of tokens (backward) */
    float *dden;    /* TOK_CHUNK: dden of the same tokens */
} la_scratch;

static int64_t align64(int64_t n) { return (n + 63) & ~(int64_t)63; }

int64_t gv_cpu_linear_attention_scratch(int64_t d)
{
    return align64((int64_t)sizeof(double) * (d * d + d + TB * d) +
                   (int64_t)sizeof(float) * (3 * d * d + 2 * d + TOK_CHUNK * d + TOK_CHUNK));
}

static la_scratch scratch_of(void *base, int64_t d, int64_t p)
{
    char *at = (char *)base + p * gv_cpu_linear_attention_scratch(d);
    la_scratch s;
    s.acc = (double *)at;
    s.blk = s.acc + d * d + d;
    s.kvt = (float *)(s.blk + TB * d);
    s.u = s.kvt + d * d;
    s.dkv = s.u + d;
    s.dkvt = s.dkv + d * d;
    s.ds = s.dkvt + d * d;
    s.chunk = s.ds + d;
    s.dden = s.chunk + TOK_CHUNK * d;
    return s;
}

typedef struct la_args {
    int64_t B, N, H, d;
    gv_attn_rows q, k, v, g;
    float eps;
    void *scratch;
    float *state;           /* written by the forward, read by the backward */
    float *out, *dq, *dk, *dv;
} la_args;

/* First element of head h of batch b's token 0 in an operand. */
static const float *head_of(gv_attn_rows r, int64_t b, int64_t h, int64_t d) { return r.data + b * r.sb + h * d; }

/*
 * The 32-wide head (SANA's) in 8-float vectors, with register tiles the
 * compiler keeps in registers: a row of the head is VR vectors. GCC notes
 * that 32-byte vectors change the baseline ABI; the helpers are always
 * inlined, so no such vector crosses a call; GCC reports the note only at the
 * end of the file, so it is silenced for the rest of the file.
 */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
enum { W32 = 32, VW = 8, VR = W32 / VW };
enum { RT = 4 };  /* rows of a d×d sum held in registers at once */

static const float zero_row[W32];

BODY vf vload(const float *p)
{
    vf x;
    memcpy(&x, p, sizeof x);
    return x;
}
BODY void vstore(float *p, vf x) { memcpy(p, &x, sizeof x); }
BODY vf vsplat(float x) { return x * (vf){1, 1, 1, 1, 1, 1, 1, 1}; } /* x·1 folds to a broadcast */
/* x where keep > 0, else 0: ReLU's derivative mask. */
BODY vf vwhere_pos(vf keep, vf x) { return (vf)((vi)x & (keep > (vf){0})); }
BODY vf vrelu(vf x) { return (vf)((vi)x & ~(x < (vf){0})); }
BODY float vsum(vf x) { return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])); }

/* acc (32×32, double) += Σ_j ReLU(x_j)ᵀ y_j over nt ≤ TOK_CHUNK tokens
 * (x_j = x + j·xs, y_j = y + j·ys): RT rows at a time summed in float
 * registers over the chunk, then added in double. */
BODY void outer32(int64_t nt, const float *x, int64_t xs, const float *y, int64_t ys, double *restrict acc)
{
    for (int c0 = 0; c0 < W32; c0 += RT) {
        vf t[RT][VR];
        for (int i = 0; i < RT; i++)
            for (int r = 0; r < VR; r++) t[i][r] = (vf){0};
        for (int64_t j = 0; j < nt; j++) {
            const float *xj = x + j * xs, *yj = y + j * ys;
            vf yv[VR];
            for (int r = 0; r < VR; r++) yv[r] = vload(yj + r * VW);
            for (int i = 0; i < RT; i++) {
                vf a = vsplat(relu(xj[c0 + i]));
                for (int r = 0; r < VR; r++) t[i][r] += a * yv[r];
            }
        }
        for (int i = 0; i < RT; i++)
            for (int r = 0; r < VR; r++)
                for (int e = 0; e < VW; e++) acc[(c0 + i) * W32 + r * VW + e] += t[i][r][e];
    }
}

/* out_t = init + Σ_c f(x_t[c])·m_c for TB tokens, m 32×32 row-major, f
 * ReLU when relu_x, else the identity; init may be NULL (zero). The block's
 * f(x) is staged in a small buffer so each factor is one broadcast load. */
BODY void rows32(const float *const x[TB], bool relu_x, const float *m, const float *init, vf out[TB][VR])
{
    float xs[TB][W32] __attribute__((aligned(32)));
    for (int t = 0; t < TB; t++)
        for (int r = 0; r < VR; r++) {
            vf xv = vload(x[t] + r * VW);
            vstore(xs[t] + r * VW, relu_x ? vrelu(xv) : xv);
        }
    for (int t = 0; t < TB; t++)
        for (int r = 0; r < VR; r++) out[t][r] = init ? vload(init + r * VW) : (vf){0};
    for (int c = 0; c < W32; c++) {
        vf row[VR];
        for (int r = 0; r < VR; r++) row[r] = vload(m + c * W32 + r * VW);
        for (int t = 0; t < TB; t++) {
            vf a = vsplat(xs[t][c]);
            for (int r = 0; r < VR; r++) out[t][r] += a * row[r];
        }
    }
}

/* Pointers to the rows of tokens i..i+TB-1 (a zero row past n). */
BODY int block_rows(int64_t i, int64_t n, const float *base, int64_t sn, const float *rows[TB])
{
    int nt = n - i < TB ? (int)(n - i) : TB;
    for (int t = 0; t < TB; t++) rows[t] = t < nt ? base + (i + t) * sn : zero_row;
    return nt;
}

/* Σ_c ReLU(x_c)·y_c over one row. */
BODY float relu_dot32(const float *x, const vf y[VR])
{
    vf acc = (vf){0};
    for (int r = 0; r < VR; r++) {
        vf xv = vload(x + r * VW);
        acc += vrelu(xv) * y[r];
    }
    return vsum(acc);
}

BODY void fwd_state32(int64_t n, const float *k, int64_t ksn, const float *v, int64_t vsn, la_scratch w,
                      float *restrict state)
{
    double *s = w.acc + W32 * W32;
    memset(w.acc, 0, (W32 * W32 + W32) * sizeof *w.acc);
    for (int64_t j0 = 0; j0 < n; j0 += TOK_CHUNK) {
        int64_t nt = n - j0 < TOK_CHUNK ? n - j0 : TOK_CHUNK;
        outer32(nt, k + j0 * ksn, ksn, v + j0 * vsn, vsn, w.acc);
        vf sv[VR];
        for (int r = 0; r < VR; r++) sv[r] = (vf){0};
        for (int64_t j = j0; j < j0 + nt; j++)
            for (int r = 0; r < VR; r++) {
                vf kv = vload(k + j * ksn + r * VW);
                sv[r] += vrelu(kv);
            }
        for (int r = 0; r < VR; r++)
            for (int e = 0; e < VW; e++) s[r * VW + e] += sv[r][e];
    }
    for (int i = 0; i < W32 * W32 + W32; i++) state[i] = (float)w.acc[i];
}

BODY void fwd_rows32(int64_t i0, int64_t i1, const float *q, int64_t qsn, const float *state, float eps,
                     float *restrict o, int64_t osn)
{
    vf sv[VR];
    for (int r = 0; r < VR; r++) sv[r] = vload(state + W32 * W32 + r * VW);
    for (int64_t i = i0; i < i1; i += TB) {
        const float *x[TB];
        int nt = block_rows(i, i1, q, qsn, x);
        vf num[TB][VR];
        rows32(x, true, state, NULL, num);
        for (int t = 0; t < nt; t++) {
            vf den = vsplat(relu_dot32(x[t], sv) + eps);
            for (int r = 0; r < VR; r++) vstore(o + (i + t) * osn + r * VW, num[t][r] / den);
        }
    }
}

BODY void bwd_state32(int64_t n, const float *q, int64_t qsn, const float *g, int64_t gsn, const float *state,
                      float eps, la_scratch w, float *restrict dq, int64_t dqsn, bool want_kv)
{
    const float *kv = state;
    vf sv[VR];
    for (int r = 0; r < VR; r++) sv[r] = vload(state + W32 * W32 + r * VW);
    for (int c = 0; c < W32; c++)
        for (int e = 0; e < W32; e++) w.kvt[e * W32 + c] = kv[c * W32 + e];
    double *dsacc = w.acc + W32 * W32;
    memset(w.acc, 0, (W32 * W32 + W32) * sizeof *w.acc);
    for (int64_t i0 = 0; i0 < n; i0 += TOK_CHUNK) {
        int64_t nt = n - i0 < TOK_CHUNK ? n - i0 : TOK_CHUNK;
        for (int64_t ib = 0; ib < nt; ib += TB) {
            const float *x[TB];
            int nb = block_rows(i0 + ib, i0 + nt, g, gsn, x);
            vf u[TB][VR];
            rows32(x, false, w.kvt, NULL, u);
            for (int t = 0; t < nb; t++) {
                const float *qi = q + (i0 + ib + t) * qsn;
                float rden = 1.0f / (relu_dot32(qi, sv) + eps);
                float dd = -relu_dot32(qi, u[t]) * rden * rden;
                vf vr = vsplat(rden), vd = vsplat(dd);
                if (dq)
                    for (int r = 0; r < VR; r++)
                        vstore(dq + (i0 + ib + t) * dqsn + r * VW,
                               vwhere_pos(vload(qi + r * VW), u[t][r] * vr + vd * sv[r]));
                for (int r = 0; r < VR; r++) vstore(w.chunk + (ib + t) * W32 + r * VW, vload(x[t] + r * VW) * vr);
                w.dden[ib + t] = dd;
            }
        }
        if (!want_kv) continue;
        outer32(nt, q + i0 * qsn, qsn, w.chunk, W32, w.acc);
        vf dsv[VR];
        for (int r = 0; r < VR; r++) dsv[r] = (vf){0};
        for (int64_t t = 0; t < nt; t++) {
            vf dd = vsplat(w.dden[t]);
            for (int r = 0; r < VR; r++) {
                vf qv = vload(q + (i0 + t) * qsn + r * VW);
                dsv[r] += dd * vrelu(qv);
            }
        }
        for (int r = 0; r < VR; r++)
            for (int e = 0; e < VW; e++) dsacc[r * VW + e] += dsv[r][e];
    }
    if (!want_kv) return;
    for (int c = 0; c < W32; c++) {
        for (int e = 0; e < W32; e++) {
            float x = (float)w.acc[c * W32 + e];
            w.dkv[c * W32 + e] = x;
            w.dkvt[e * W32 + c] = x;
        }
        w.ds[c] = (float)dsacc[c];
    }
}

BODY void bwd_rows32(int64_t j0, int64_t j1, const float *k, int64_t ksn, const float *v, int64_t vsn, la_scratch w,
                     float *restrict dk, float *restrict dv, int64_t osn)
{
    for (int64_t j = j0; j < j1; j += TB) {
        const float *x[TB];
        vf acc[TB][VR];
        if (dk) {
            int nt = block_rows(j, j1, v, vsn, x);
            rows32(x, false, w.dkvt, w.ds, acc);
            for (int t = 0; t < nt; t++)
                for (int r = 0; r < VR; r++)
                    vstore(dk + (j + t) * osn + r * VW, vwhere_pos(vload(k + (j + t) * ksn + r * VW), acc[t][r]));
        }
        if (dv) {
            int nt = block_rows(j, j1, k, ksn, x);
            rows32(x, true, w.dkv, NULL, acc);
            for (int t = 0; t < nt; t++)
                for (int r = 0; r < VR; r++) vstore(dv + (j + t) * osn + r * VW, acc[t][r]);
        }
    }
}

/* One row c of a d×d sum over a block of TB tokens: row[e] += Σ_t x_t[c]·blk_t[e],
 * with xc[t] = x_t[c]. Summing the block first quarters the row's loads and
 * stores. */
BODY void block_outer(int64_t d, const double *xc, const double *blk, double *restrict row)
{
    for (int64_t e = 0; e < d; e++) {
        double t = xc[0] * blk[e];
        for (int b = 1; b < TB; b++) t += xc[b] * blk[b * d + e];
        row[e] += t;
    }
}

/* KV and s of one head, summed in double over the tokens, stored as float. */
BODY void fwd_state_body(int64_t n, int64_t d, const float *k, int64_t ksn, const float *v, int64_t vsn,
                         la_scratch w, float *restrict state)
{
    double *s = w.acc + d * d;
    memset(w.acc, 0, (size_t)(d * d + d) * sizeof *w.acc);
    for (int64_t j0 = 0; j0 < n; j0 += TB) {
        int nb = n - j0 < TB ? (int)(n - j0) : TB;
        for (int t = 0; t < TB; t++)
            for (int64_t e = 0; e < d; e++) w.blk[t * d + e] = t < nb ? v[(j0 + t) * vsn + e] : 0.0;
        for (int64_t c = 0; c < d; c++) {
            double bc[TB];
            for (int t = 0; t < TB; t++) bc[t] = t < nb ? relu(k[(j0 + t) * ksn + c]) : 0.0;
            block_outer(d, bc, w.blk, w.acc + c * d);
            s[c] += (bc[0] + bc[1]) + (bc[2] + bc[3]);
        }
    }
    for (int64_t i = 0; i < d * d + d; i++) state[i] = (float)w.acc[i];
}

CLONES static void fwd_state(const la_args *a, int64_t p)
{
    int64_t b = p / a->H, h = p % a->H, d = a->d;
    const float *k = head_of(a->k, b, h, d), *v = head_of(a->v, b, h, d);
    la_scratch w = scratch_of(a->scratch, d, p);
    float *state = a->state + p * (d * d + d);
    if (d == W32) fwd_state32(a->N, k, a->k.sn, v, a->v.sn, w, state);
    else fwd_state_body(a->N, d, k, a->k.sn, v, a->v.sn, w, state);
}

/* o_i = a_i·KV / (a_i·s + eps) for tokens i0..i1-1 of one head. */
BODY void fwd_rows_body(int64_t i0, int64_t i1, int64_t d, const float *q, int64_t qsn, const float *state, float eps,
                        float *restrict o, int64_t osn)
{
    const float *kv = state, *s = state + d * d;
    for (int64_t i = i0; i < i1; i++) {
        const float *qi = q + i * qsn;
        float *oi = o + i * osn;
        for (int64_t e = 0; e < d; e++) oi[e] = 0.0f;
        for (int64_t c = 0; c < d; c++) {
            float ac = relu(qi[c]);
            const float *row = kv + c * d;
            for (int64_t e = 0; e < d; e++) oi[e] += ac * row[e];
        }
        float den = relu_dot(d, qi, s) + eps;
        for (int64_t e = 0; e < d; e++) oi[e] /= den;
    }
}

CLONES static void fwd_rows(const la_args *a, int64_t p, int64_t i0, int64_t i1)
{
    int64_t b = p / a->H, h = p % a->H, d = a->d, D = a->H * d;
    const float *q = head_of(a->q, b, h, d), *state = a->state + p * (d * d + d);
    float *o = a->out + b * a->N * D + h * d;
    if (d == W32) fwd_rows32(i0, i1, q, a->q.sn, state, a->eps, o, D);
    else fwd_rows_body(i0, i1, d, q, a->q.sn, state, a->eps, o, D);
}

/* Work items of the per-token passes: (head, chunk of TOK_CHUNK tokens). */
static int64_t chunks_of(int64_t n) { return (n + TOK_CHUNK - 1) / TOK_CHUNK; }

void gv_cpu_linear_attention(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                             gv_attn_rows v, float eps, void *scratch, float *state, float *out)
{
    la_args a = {.B = B, .N = N, .H = H, .d = d, .q = q, .k = k, .v = v, .eps = eps, .scratch = scratch,
                 .state = state, .out = out};
    int64_t pairs = B * H, work = N * d * d;
#pragma omp parallel for schedule(static) if (pairs > 1 && pairs * work > 32768)
    for (int64_t p = 0; p < pairs; p++) fwd_state(&a, p);
    int64_t nc = chunks_of(N), items = pairs * nc;
#pragma omp parallel for schedule(static) if (items > 1 && pairs * work > 32768)
    for (int64_t it = 0; it < items; it++) {
        int64_t p = it / nc, i0 = it % nc * TOK_CHUNK;
        fwd_rows(&a, p, i0, i0 + TOK_CHUNK < N ? i0 + TOK_CHUNK : N);
    }
}

/*
 * Backward of one head over its tokens, with den_i = a_i·s + eps,
 * u_i = KV·g_i, dnum_i = g_i / den_i and dden_i = −(g_i·o_i)/den_i
 * = −(a_i·u_i)/den_i²:
 *   dq_i = (u_i/den_i + dden_i·s) ⊙ [q_i > 0]
 *   dKV = Σ_i a_iᵀ dnum_i,  ds = Σ_i dden_i a_i   (when k or v needs a grad)
 */
BODY void bwd_state_body(int64_t n, int64_t d, const float *q, int64_t qsn, const float *g, int64_t gsn,
                         const float *state, float eps, la_scratch w, float *restrict dq, int64_t dqsn, bool want_kv)
{
    const float *kv = state, *s = state + d * d;
    for (int64_t c = 0; c < d; c++)
        for (int64_t e = 0; e < d; e++) w.kvt[e * d + c] = kv[c * d + e];
    double *dsacc = w.acc + d * d;
    memset(w.acc, 0, (size_t)(d * d + d) * sizeof *w.acc);
    for (int64_t i0 = 0; i0 < n; i0 += TB) {
        int nb = n - i0 < TB ? (int)(n - i0) : TB;
        double dden[TB] = {0};
        for (int t = 0; t < TB; t++) {
            if (t >= nb) {
                for (int64_t e = 0; e < d; e++) w.blk[t * d + e] = 0.0;
                continue;
            }
            const float *qi = q + (i0 + t) * qsn, *gi = g + (i0 + t) * gsn;
            for (int64_t c = 0; c < d; c++) w.u[c] = 0.0f;
            for (int64_t e = 0; e < d; e++) {
                float ge = gi[e];
                const float *row = w.kvt + e * d;
                for (int64_t c = 0; c < d; c++) w.u[c] += ge * row[c];
            }
            float den = relu_dot(d, qi, s) + eps, rden = 1.0f / den;
            float dd = -relu_dot(d, qi, w.u) * rden * rden;
            if (dq) {
                float *dqi = dq + (i0 + t) * dqsn;
                for (int64_t c = 0; c < d; c++) dqi[c] = qi[c] > 0.0f ? w.u[c] * rden + dd * s[c] : 0.0f;
            }
            dden[t] = dd;
            for (int64_t e = 0; e < d; e++) w.blk[t * d + e] = gi[e] * rden;
        }
        if (!want_kv) continue;
        for (int64_t c = 0; c < d; c++) {
            double ac[TB];
            for (int t = 0; t < TB; t++) ac[t] = t < nb ? relu(q[(i0 + t) * qsn + c]) : 0.0;
            block_outer(d, ac, w.blk, w.acc + c * d);
            dsacc[c] += (dden[0] * ac[0] + dden[1] * ac[1]) + (dden[2] * ac[2] + dden[3] * ac[3]);
        }
    }
    if (!want_kv) return;
    for (int64_t c = 0; c < d; c++) {
        for (int64_t e = 0; e < d; e++) {
            float x = (float)w.acc[c * d + e];
            w.dkv[c * d + e] = x;
            w.dkvt[e * d + c] = x;
        }
        w.ds[c] = (float)dsacc[c];
    }
}

CLONES static void bwd_state(const la_args *a, int64_t p)
{
    int64_t b = p / a->H, h = p % a->H, d = a->d, D = a->H * d;
    const float *q = head_of(a->q, b, h, d), *g = head_of(a->g, b, h, d), *state = a->state + p * (d * d + d);
    la_scratch w = scratch_of(a->scratch, d, p);
    float *dq = a->dq ? a->dq + b * a->N * D + h * d : NULL;
    bool want_kv = a->dk || a->dv;
    if (d == W32) bwd_state32(a->N, q, a->q.sn, g, a->g.sn, state, a->eps, w, dq, D, want_kv);
    else bwd_state_body(a->N, d, q, a->q.sn, g, a->g.sn, state, a->eps, w, dq, D, want_kv);
}

/* Per token j of one head: db_j = dKV·v_j + ds, dk_j = db_j ⊙ [k_j > 0],
 * dv_j = dKVᵀ·b_j. */
BODY void bwd_rows_body(int64_t j0, int64_t j1, int64_t d, const float *k, int64_t ksn, const float *v, int64_t vsn,
                        la_scratch w, float *restrict dk, float *restrict dv, int64_t osn)
{
    for (int64_t j = j0; j < j1; j++) {
        const float *kj = k + j * ksn, *vj = v + j * vsn;
        if (dk) {
            float *o = dk + j * osn;
            for (int64_t c = 0; c < d; c++) o[c] = w.ds[c];
            for (int64_t e = 0; e < d; e++) {
                float ve = vj[e];
                const float *row = w.dkvt + e * d;
                for (int64_t c = 0; c < d; c++) o[c] += ve * row[c];
            }
            for (int64_t c = 0; c < d; c++) o[c] = kj[c] > 0.0f ? o[c] : 0.0f;
        }
        if (dv) {
            float *o = dv + j * osn;
            for (int64_t e = 0; e < d; e++) o[e] = 0.0f;
            for (int64_t c = 0; c < d; c++) {
                float bc = relu(kj[c]);
                const float *row = w.dkv + c * d;
                for (int64_t e = 0; e < d; e++) o[e] += bc * row[e];
            }
        }
    }
}

CLONES static void bwd_rows(const la_args *a, int64_t p, int64_t j0, int64_t j1)
{
    int64_t b = p / a->H, h = p % a->H, d = a->d, D = a->H * d;
    const float *k = head_of(a->k, b, h, d), *v = head_of(a->v, b, h, d);
    la_scratch w = scratch_of(a->scratch, d, p);
    float *dk = a->dk ? a->dk + b * a->N * D + h * d : NULL;
    float *dv = a->dv ? a->dv + b * a->N * D + h * d : NULL;
    if (d == W32) bwd_rows32(j0, j1, k, a->k.sn, v, a->v.sn, w, dk, dv, D);
    else bwd_rows_body(j0, j1, d, k, a->k.sn, v, a->v.sn, w, dk, dv, D);
}

void gv_cpu_linear_attention_backward(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                                      gv_attn_rows v, gv_attn_rows g, float eps, const float *state, void *scratch,
                                      float *dq, float *dk, float *dv)
{
    la_args a = {.B = B, .N = N, .H = H, .d = d, .q = q, .k = k, .v = v, .g = g, .eps = eps, .scratch = scratch,
                 .state = (float *)state, .dq = dq, .dk = dk, .dv = dv};
    int64_t pairs = B * H, work = N * d * d;
#pragma omp parallel for schedule(static) if (pairs > 1 && pairs * work > 32768)
    for (int64_t p = 0; p < pairs; p++) bwd_state(&a, p);
    if (!dk && !dv) return;
    int64_t nc = chunks_of(N), items = pairs * nc;
#pragma omp parallel for schedule(static) if (items > 1 && pairs * work > 32768)
    for (int64_t it = 0; it < items; it++) {
        int64_t p = it / nc, j0 = it % nc * TOK_CHUNK;
        bwd_rows(&a, p, j0, j0 + TOK_CHUNK < N ? j0 + TOK_CHUNK : N);
    }
}

/* ---- cross attention ---------------------------------------------------- */

/* c (m×n, leading dimension ldc) = alpha · op(a) · op(b); k = 0 gives zeros. */
static void gemm(gv_cpu_sgemm_fn sgemm, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc)
{
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
    sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
          (int)ldb, 0.0f, c, (int)ldc);
}

/* e^x for x ≤ 0, NaN passing through (vecmath.h: glibc's expf does not
 * vectorise, and the softmax would spend most of its time in it). */
BODY float exp_nonpos(float x) { return gv_keep_nan(x, gv_exp_nonpos(x)); }

/*
 * Softmax of one row of scores (in place) with the padding bias
 * (1 − mask)·(−10000). Softmax ignores a constant shift, so the row's largest
 * bias is taken off first: a caption with real tokens gives −10000 to its
 * padding, an all-padding caption gives no bias at all — exactly what adding
 * −10000 everywhere means — without rounding the scores at the scale of
 * 10000 in f32.
 */
CLONES static void masked_softmax_row(int64_t m, float *p, const void *mask, int mask_u8)
{
    const uint8_t *mu = mask_u8 ? mask : NULL;
    const float *mf = mask_u8 ? NULL : mask;
    bool pad = false;
    if (mask) {
        bool any_real = false;
        for (int64_t j = 0; j < m && !any_real; j++) any_real = mu ? mu[j] != 0 : mf[j] != 0.0f;
        pad = any_real;
    }
    if (pad && mu)
        for (int64_t j = 0; j < m; j++) p[j] = mu[j] ? p[j] : p[j] - 10000.0f;
    else if (pad)
        for (int64_t j = 0; j < m; j++) p[j] = mf[j] != 0.0f ? p[j] : p[j] - 10000.0f;
    float mxl[LANES];
    for (int l = 0; l < LANES; l++) mxl[l] = -INFINITY;
    int64_t j = 0;
    for (; j + LANES <= m; j += LANES)
        for (int l = 0; l < LANES; l++) mxl[l] = p[j + l] > mxl[l] ? p[j + l] : mxl[l];
    for (; j < m; j++) mxl[0] = p[j] > mxl[0] ? p[j] : mxl[0];
    float mx = mxl[0];
    for (int l = 1; l < LANES; l++) mx = mxl[l] > mx ? mxl[l] : mx;
    for (j = 0; j < m; j++) p[j] = exp_nonpos(p[j] - mx);
    float acc[LANES] = {0};
    for (j = 0; j + LANES <= m; j += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += p[j + l];
    for (; j < m; j++) acc[0] += p[j];
    double sum = 0;
    for (int l = 0; l < LANES; l++) sum += acc[l];
    float inv = (float)(1.0 / sum);
    for (j = 0; j < m; j++) p[j] *= inv;
}

/* dS = P ⊙ (dP − Σ_j dP_j P_j) over one row of m, in place over dP. */
CLONES static void softmax_grad_row(int64_t m, const float *p, float *g)
{
    float r = dot(m, g, p);
    for (int64_t j = 0; j < m; j++) g[j] = p[j] * (g[j] - r);
}

void gv_cpu_cross_attention(gv_cpu_sgemm_fn sgemm, int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh,
                            gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8,
                            float *P, float *out)
{
    int64_t D = H * dh;
    float scale = (float)(1.0 / sqrt((double)(dh > 0 ? dh : 1)));
    /* All products, then one parallel softmax, then all products again: the
     * fewer the switches between OpenBLAS's threads and OpenMP's, the less
     * they wait on each other. OpenBLAS threads each product itself. */
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            gemm(sgemm, false, true, N, M, dh, scale, head_of(q, b, h, dh), q.sn, head_of(k, b, h, dh), k.sn,
                 P + (b * H + h) * N * M, M);
    int64_t rows = B * H * N;
#pragma omp parallel for schedule(static) if (rows * M > 32768)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / (H * N);
        masked_softmax_row(M, P + r * M, mask ? (const char *)mask + b * M * (mask_u8 ? 1 : 4) : NULL, mask_u8);
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            gemm(sgemm, false, false, N, dh, M, 1.0f, P + (b * H + h) * N * M, M, head_of(v, b, h, dh), v.sn,
                 out + b * N * D + h * dh, D);
}

/* (batch, head) pairs the backward takes per round: their dS (N×M each)
 * share a scratch of about 64 MiB, or one pair when that is larger. */
static int64_t pairs_per_round(int64_t B, int64_t H, int64_t N, int64_t M)
{
    int64_t per = N * M > 0 ? N * M : 1, g = ((int64_t)1 << 24) / per;
    if (g < 1) g = 1;
    return g < B * H ? g : (B * H > 0 ? B * H : 1);
}

int64_t gv_cpu_cross_attention_scratch(int64_t B, int64_t H, int64_t N, int64_t M)
{
    return pairs_per_round(B, H, N, M) * N * M;
}

void gv_cpu_cross_attention_backward(gv_cpu_sgemm_fn sgemm, int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh,
                                     gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const float *P, gv_attn_rows g,
                                     float *scratch, float *dq, float *dk, float *dv)
{
    int64_t D = H * dh, pairs = B * H, group = pairs_per_round(B, H, N, M);
    float scale = (float)(1.0 / sqrt((double)(dh > 0 ? dh : 1)));
    for (int64_t p0 = 0; p0 < pairs; p0 += group) {
        int64_t p1 = p0 + group < pairs ? p0 + group : pairs;
        for (int64_t p = p0; p < p1; p++) {
            int64_t b = p / H, h = p % H;
            /* dV = Pᵀ g; dP = g vᵀ */
            if (dv) gemm(sgemm, true, false, M, dh, N, 1.0f, P + p * N * M, M, head_of(g, b, h, dh), g.sn,
                         dv + b * M * D + h * dh, D);
            if (dq || dk) gemm(sgemm, false, true, N, M, dh, 1.0f, head_of(g, b, h, dh), g.sn, head_of(v, b, h, dh),
                               v.sn, scratch + (p - p0) * N * M, M);
        }
        if (!dq && !dk) continue;
        int64_t rows = (p1 - p0) * N;
        const float *Pr = P + p0 * N * M;
#pragma omp parallel for schedule(static) if (rows * M > 32768)
        for (int64_t r = 0; r < rows; r++) softmax_grad_row(M, Pr + r * M, scratch + r * M);
        for (int64_t p = p0; p < p1; p++) {
            int64_t b = p / H, h = p % H;
            const float *dS = scratch + (p - p0) * N * M;
            /* dq = dS k / √dh; dk = dSᵀ q / √dh */
            if (dq) gemm(sgemm, false, false, N, dh, M, scale, dS, M, head_of(k, b, h, dh), k.sn,
                         dq + b * N * D + h * dh, D);
            if (dk) gemm(sgemm, true, false, M, dh, N, scale, dS, M, head_of(q, b, h, dh), q.sn,
                         dk + b * M * D + h * dh, D);
        }
    }
}

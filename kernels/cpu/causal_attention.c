/*
 * causal_attention.c — causal softmax self-attention for decoder text
 * encoders (Gemma-2), forward only: grouped-query heads, a key padding mask,
 * an optional sliding window and an optional logit soft-cap, all in one pass
 * that never forms the L×L matrix.
 *
 * Query i of head h reads key/value head h / (H / KV) and sees key j when
 * j ≤ i, mask[b][j] ≠ 0 and (window = 0 or j > i − window). Its score is
 * s = scale·(q_i·k_j), then cap·tanh(s / cap) when softcap > 0. The softmax
 * is online: a task owns QB query rows of one (batch, head), walks the keys
 * they can see in tiles of KT, keeps each row's running maximum and sum, and
 * accumulates the weighted values straight into the row's output (rescaled
 * when the maximum grows). A row that sees no key gets zeros. Each row is
 * computed by one thread in key order, so the result does not depend on the
 * thread count.
 */
#include "cpu.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

enum { QB = 32 };   /* query rows per task */
enum { KT = 64 };   /* keys per tile */
enum { R = 4 };     /* query rows computed together (each key and value row is read once for R) */
enum { VW = 8 };    /* floats per vector */

#if defined(__AVX2__) && defined(__FMA__)
#define CLONES /* the build already targets FMA-capable CPUs */
#else
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#define BODY static inline __attribute__((always_inline))

/* 32-byte vectors through GCC's extensions; the helpers are always inlined,
 * so no such vector crosses a call (hence -Wpsabi's ABI note is moot). */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vf __attribute__((vector_size(32)));

BODY vf vload(const float *p)
{
    vf x;
    memcpy(&x, p, sizeof x);
    return x;
}
BODY void vstore(float *p, vf x) { memcpy(p, &x, sizeof x); }
BODY vf vsplat(float x) { return x * (vf){1, 1, 1, 1, 1, 1, 1, 1}; }
BODY float vsum(vf x) { return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])); }

static inline bool key_real(const void *mask, int mask_u8, int64_t at)
{
    if (!mask) return true;
    return mask_u8 ? ((const uint8_t *)mask)[at] != 0 : ((const float *)mask)[at] != 0.0f;
}

/* dots[r] = q_r · k over d channels for the R rows, sharing k's loads. */
BODY void dots_r(int64_t d, const float *const *q, const float *k, float *dots)
{
    vf acc[R];
    for (int r = 0; r < R; r++) acc[r] = (vf){0};
    int64_t c = 0;
    for (; c + VW <= d; c += VW) {
        vf kv = vload(k + c);
        for (int r = 0; r < R; r++) acc[r] += vload(q[r] + c) * kv;
    }
    for (int r = 0; r < R; r++) {
        float t = vsum(acc[r]);
        for (int64_t e = c; e < d; e++) t += q[r][e] * k[e];
        dots[r] = t;
    }
}

/* o_r += Σ_j p[r][j]·v_j over the n keys of a tile, for the R rows: VW
 * channels of every row held in registers while the keys stream by. */
BODY void accumulate_r(int64_t d, int64_t n, float p[R][KT], const float *v, int64_t vs, float *const *o)
{
    int64_t c = 0;
    for (; c + VW <= d; c += VW) {
        vf acc[R];
        for (int r = 0; r < R; r++) acc[r] = vload(o[r] + c);
        for (int64_t j = 0; j < n; j++) {
            vf vv = vload(v + j * vs + c);
            for (int r = 0; r < R; r++) acc[r] += vsplat(p[r][j]) * vv;
        }
        for (int r = 0; r < R; r++) vstore(o[r] + c, acc[r]);
    }
    for (; c < d; c++)
        for (int r = 0; r < R; r++) {
            float t = o[r][c];
            for (int64_t j = 0; j < n; j++) t += p[r][j] * v[j * vs + c];
            o[r][c] = t;
        }
}

/* Rows i0 .. i0+nr-1 (nr ≤ R) of head h of batch b. Missing rows (nr < R)
 * repeat the last real one and write into spare. */
BODY void rows_group(int64_t b, int64_t h, int64_t i0, int nr, int64_t L, int64_t H, int64_t KV, int64_t d,
                     gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8, float scale,
                     int64_t window, float softcap, float *out, float *spare)
{
    int64_t g = h / (H / KV);
    const float *kb = k.data + b * k.sb + g * d, *vb = v.data + b * v.sb + g * d;
    const float *qr[R];
    float *orow[R], run_max[R], run_sum[R], p[R][KT];
    int64_t lo[R]; /* the first key row r sees */
    for (int r = 0; r < R; r++) {
        int64_t i = i0 + (r < nr ? r : nr - 1);
        qr[r] = q.data + b * q.sb + i * q.sn + h * d;
        orow[r] = r < nr ? out + (b * L + i) * (H * d) + h * d : spare + (r - nr) * d;
        lo[r] = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
        run_max[r] = -INFINITY;
        run_sum[r] = 0.0f;
        memset(orow[r], 0, (size_t)d * sizeof(float));
    }
    int64_t last = i0 + nr - 1; /* the last key any row sees */
    for (int64_t j0 = lo[0]; j0 <= last; j0 += KT) {
        int64_t n = last + 1 - j0 < KT ? last + 1 - j0 : KT;
        /* scores, -inf where a row does not see the key */
        for (int64_t jj = 0; jj < n; jj++) {
            int64_t j = j0 + jj;
            if (!key_real(mask, mask_u8, b * L + j)) {
                for (int r = 0; r < R; r++) p[r][jj] = -INFINITY;
                continue;
            }
            float dots[R];
            dots_r(d, qr, kb + j * k.sn, dots);
            for (int r = 0; r < R; r++) {
                int64_t i = i0 + (r < nr ? r : nr - 1);
                float x = scale * dots[r];
                if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
                p[r][jj] = (j < lo[r] || j > i) ? -INFINITY : x;
            }
        }
        /* the online softmax: new maxima, rescaled outputs, weights */
        bool any = false;
        for (int r = 0; r < R; r++) {
            float tile_max = -INFINITY;
            for (int64_t jj = 0; jj < n; jj++) tile_max = p[r][jj] > tile_max ? p[r][jj] : tile_max;
            if (tile_max == -INFINITY) { /* nothing in sight here: weights 0, state kept */
                for (int64_t jj = 0; jj < n; jj++) p[r][jj] = 0.0f;
                continue;
            }
            any = true;
            float m = run_max[r] > tile_max ? run_max[r] : tile_max;
            float alpha = expf(run_max[r] - m), sum = 0.0f; /* alpha 0 on the first visible tile */
            for (int64_t jj = 0; jj < n; jj++) {
                float e = p[r][jj] == -INFINITY ? 0.0f : expf(p[r][jj] - m);
                p[r][jj] = e;
                sum += e;
            }
            if (alpha != 1.0f)
                for (int64_t c = 0; c < d; c++) orow[r][c] *= alpha;
            run_sum[r] = run_sum[r] * alpha + sum;
            run_max[r] = m;
        }
        if (any) accumulate_r(d, n, p, vb + j0 * v.sn, v.sn, orow);
    }
    for (int r = 0; r < nr; r++) {
        float inv = run_sum[r] > 0.0f ? 1.0f / run_sum[r] : 0.0f;
        for (int64_t c = 0; c < d; c++) orow[r][c] *= inv;
    }
}

/* Rows i0 .. i1-1 of head h of batch b, R at a time. */
CLONES static void rows_task(int64_t b, int64_t h, int64_t i0, int64_t i1, int64_t L, int64_t H, int64_t KV,
                             int64_t d, gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8,
                             float scale, int64_t window, float softcap, float *out)
{
    float spare[(R - 1) * d > 0 ? (R - 1) * d : 1];
    for (int64_t i = i0; i < i1; i += R) {
        int nr = i1 - i < R ? (int)(i1 - i) : R;
        rows_group(b, h, i, nr, L, H, KV, d, q, k, v, mask, mask_u8, scale, window, softcap, out, spare);
    }
}

void gv_cpu_causal_attention(int64_t B, int64_t L, int64_t H, int64_t KV, int64_t d, gv_attn_rows q, gv_attn_rows k,
                             gv_attn_rows v, const void *mask, int mask_u8, float scale, int64_t window,
                             float softcap, float *out)
{
    int64_t blocks = (L + QB - 1) / QB, tasks = B * H * blocks;
    /* Later rows see more keys: hand out tasks one at a time. */
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && L * L * d * B * H > 65536)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t bh = t / blocks, i0 = (t % blocks) * QB;
        int64_t i1 = i0 + QB < L ? i0 + QB : L;
        rows_task(bh / H, bh % H, i0, i1, L, H, KV, d, q, k, v, mask, mask_u8, scale, window, softcap, out);
    }
}

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

enum { QB = 32 };    /* query rows per task */
enum { KT = 64 };    /* keys per tile */
enum { LANES = 8 };  /* partial sums of a dot product, so it vectorises */

#if defined(__AVX2__) && defined(__FMA__)
#define CLONES /* the build already targets FMA-capable CPUs */
#else
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#define BODY static inline __attribute__((always_inline))

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

/* o = o·alpha + p·v over d channels. */
BODY void scale_add(int64_t d, float *o, float alpha, float p, const float *v)
{
    for (int64_t c = 0; c < d; c++) o[c] = o[c] * alpha + p * v[c];
}

static inline bool key_real(const void *mask, int mask_u8, int64_t at)
{
    if (!mask) return true;
    return mask_u8 ? ((const uint8_t *)mask)[at] != 0 : ((const float *)mask)[at] != 0.0f;
}

/* Rows i0 .. i1-1 of head h of batch b. */
CLONES static void rows_task(int64_t b, int64_t h, int64_t i0, int64_t i1, int64_t L, int64_t H, int64_t KV,
                             int64_t d, gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8,
                             float scale, int64_t window, float softcap, float *out)
{
    int64_t g = h / (H / KV), n = i1 - i0;
    float run_max[QB], run_sum[QB], s[KT];
    const float *qb = q.data + b * q.sb + h * d;
    const float *kb = k.data + b * k.sb + g * d, *vb = v.data + b * v.sb + g * d;
    float *ob = out + (b * L) * (H * d) + h * d;
    for (int64_t r = 0; r < n; r++) {
        run_max[r] = -INFINITY;
        run_sum[r] = 0.0f;
        memset(ob + (i0 + r) * H * d, 0, (size_t)d * sizeof(float));
    }
    int64_t jlo = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0;
    for (int64_t j0 = jlo; j0 < i1; j0 += KT) {
        int64_t j1 = j0 + KT < i1 ? j0 + KT : i1;
        for (int64_t r = 0; r < n; r++) {
            int64_t i = i0 + r;
            int64_t a = window > 0 && i - window + 1 > j0 ? i - window + 1 : j0;
            int64_t e = i + 1 < j1 ? i + 1 : j1; /* keys a .. e-1 of this tile are in sight */
            if (a >= e) continue;
            const float *qi = qb + i * q.sn;
            float tile_max = -INFINITY;
            for (int64_t j = a; j < e; j++) {
                float x = -INFINITY;
                if (key_real(mask, mask_u8, b * L + j)) {
                    x = scale * dot(d, qi, kb + j * k.sn);
                    if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
                    if (x > tile_max) tile_max = x;
                }
                s[j - a] = x;
            }
            if (tile_max == -INFINITY) continue; /* every key of the tile is padding */
            float m = run_max[r] > tile_max ? run_max[r] : tile_max;
            float alpha = expf(run_max[r] - m); /* 0 on the first visible tile */
            float *oi = ob + i * H * d, sum = run_sum[r] * alpha;
            for (int64_t j = a; j < e; j++) {
                if (s[j - a] == -INFINITY) continue;
                float p = expf(s[j - a] - m);
                sum += p;
                scale_add(d, oi, alpha, p, vb + j * v.sn);
                alpha = 1.0f;
            }
            run_max[r] = m;
            run_sum[r] = sum;
        }
    }
    for (int64_t r = 0; r < n; r++) {
        float *oi = ob + (i0 + r) * H * d;
        float inv = run_sum[r] > 0.0f ? 1.0f / run_sum[r] : 0.0f;
        for (int64_t c = 0; c < d; c++) oi[c] *= inv;
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

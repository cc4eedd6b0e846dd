/*
 * causal_attention.cu — CUDA twin of kernels/cpu/causal_attention.c: causal
 * softmax self-attention with grouped-query heads, key padding, an optional
 * sliding window and logit soft-cap, forward only, no L×L matrix.
 *
 * One warp per query row (ROWS warps per block). Lane l owns channels
 * l, l + 32, … of the row: it keeps them of q and of the running output in
 * its own slots of shared memory (no other lane reads them, so no barrier is
 * needed). The warp walks the keys the row sees in order; each score is a
 * warp sum of the lanes' partial dot products, and the online softmax
 * (running maximum and sum, identical in every lane) rescales the output
 * when the maximum grows. A row that sees no key gets zeros.
 */
#include "cuda.h"
#include "context.h"

#include <math.h>

enum { WARP = 32, ROWS = 4 };

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

static __global__ void causal_attention_kernel(long long L, long long H, long long KV, long long d, long long blocks_per_head,
                                               gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const void *mask,
                                               int mask_u8, float scale, long long window, float softcap, float *out)
{
    extern __shared__ float shared[];
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    long long bh = blockIdx.x / blocks_per_head;
    long long i = (blockIdx.x % blocks_per_head) * ROWS + warp;
    if (i >= L) return; /* the whole warp leaves together */
    long long b = bh / H, h = bh % H, g = h / (H / KV);
    float *qs = shared + (size_t)warp * 2 * d, *acc = qs + d;
    const float *qi = q.data + b * q.sb + i * q.sn + h * d;
    const float *kb = k.data + b * k.sb + g * d, *vb = v.data + b * v.sb + g * d;
    for (long long c = lane; c < d; c += WARP) {
        qs[c] = qi[c];
        acc[c] = 0.0f;
    }
    float run_max = -INFINITY, run_sum = 0.0f;
    long long j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
    for (long long j = j0; j <= i; j++) {
        if (mask) {
            bool real = mask_u8 ? ((const unsigned char *)mask)[b * L + j] != 0 : ((const float *)mask)[b * L + j] != 0.0f;
            if (!real) continue;
        }
        const float *kj = kb + j * k.sn;
        float part = 0.0f;
        for (long long c = lane; c < d; c += WARP) part += qs[c] * kj[c];
        float s = scale * warp_sum(part);
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        if (s == -INFINITY) continue; /* as the CPU: a key at -inf weighs nothing */
        float m = run_max > s ? run_max : s;
        float alpha = expf(run_max - m), p = expf(s - m);
        run_sum = run_sum * alpha + p;
        run_max = m;
        const float *vj = vb + j * v.sn;
        for (long long c = lane; c < d; c += WARP) acc[c] = acc[c] * alpha + p * vj[c];
    }
    float inv = run_sum > 0.0f ? 1.0f / run_sum : 0.0f;
    float *oi = out + (b * L + i) * (H * d) + h * d;
    for (long long c = lane; c < d; c += WARP) oi[c] = acc[c] * inv;
}

extern "C" void gv_cuda_causal_attention(int64_t B, int64_t L, int64_t H, int64_t KV, int64_t d, gv_attn_rows q,
                                         gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8, float scale,
                                         int64_t window, float softcap, float *out)
{
    long long per_head = (L + ROWS - 1) / ROWS, blocks = B * H * per_head;
    if (blocks == 0 || d == 0) return;
    /* The front-end keeps d ≤ 1024: 2·d floats per warp, 32 KiB at most. */
    size_t shared = (size_t)ROWS * 2 * (size_t)d * sizeof(float);
    if (blocks > 2147483647LL) {
        gv_cuda_record(cudaErrorInvalidConfiguration, "causal_attention: too many rows for one launch");
        return;
    }
    causal_attention_kernel<<<(unsigned int)blocks, ROWS * WARP, shared, gv_cuda_stream()>>>(
        L, H, KV, d, per_head, q, k, v, mask, mask_u8, scale, window, softcap, out);
    GV_CUDA_LAUNCHED("causal_attention");
}

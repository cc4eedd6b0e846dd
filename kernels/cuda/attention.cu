/*
 * attention.cu — CUDA twins of kernels/cpu/attention.c: SANA's ReLU linear
 * attention and the softmax cross attention, forward and backward.
 *
 * Linear attention, per (batch, head) with a = ReLU(q), b = ReLU(k):
 * KV = bᵀv (d×d), s = Σ_j b_j, o_i = a_i·KV / (a_i·s + eps). The sums over
 * tokens (KV, s; dKV, ds in the backward) are made in double, each output
 * element by one thread walking the tokens in order, so results do not
 * depend on the launch configuration. The per-token passes give every
 * output element its own thread and sum over the d channels in float, as
 * the CPU does.
 *
 * Cross attention: per batch, one strided batched cuBLAS product over the
 * heads (head h of q is the column block h·dh of its rows, so the heads are
 * dh floats apart), the masked softmax one block per row of P, and the
 * products again. P (B, H, N, M) is kept for the backward.
 */
#include "cuda.h"
#include "context.h"
#include "block_reduce.cuh"

#include <math.h>

#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

/* ReLU that keeps a NaN (as the CPU and torch: a NaN input must not vanish). */
static __device__ __forceinline__ float relu(float x) { return x < 0.0f ? 0.0f : x; }

/* A grid of one block per work item (capped; kernels loop over items). */
static unsigned int blocks_for(long long items) { return items < 65535 ? (unsigned int)items : 65535u; }

/* ---- linear attention ------------------------------------------------------ */

/* Per-head scratch of the backward: dKV and ds summed in double (d·d + d),
 * then the same rounded to float for the per-token pass. */
static int64_t align64(int64_t n) { return (n + 63) & ~(int64_t)63; }

extern "C" int64_t gv_cuda_linear_attention_scratch(int64_t d)
{
    return align64((int64_t)(sizeof(double) + sizeof(float)) * (d * d + d));
}

/* state (B, H, d + 1, d): element t = ((b·H + h)·(d + 1) + c)·d + e is
 * KV[c][e] = Σ_j ReLU(k_jc)·v_je for c < d and s[e] = Σ_j ReLU(k_je) for
 * c = d. One thread per element walks the tokens in double. Threads of a
 * warp share c and read consecutive e: v's row is read coalesced, k's
 * element is one broadcast. */
static __global__ void la_state_kernel(long long B, long long N, long long H, long long d, gv_attn_rows k, gv_attn_rows v,
                                float *state)
{
    long long per = (d + 1) * d;
    GRID_LOOP(t, B * H * per) {
        long long p = t / per, idx = t % per, c = idx / d, e = idx % d;
        long long b = p / H, h = p % H;
        const float *kb = k.data + b * k.sb + h * d, *vb = v.data + b * v.sb + h * d;
        double acc = 0;
        if (c < d)
            for (long long j = 0; j < N; j++) acc += (double)relu(kb[j * k.sn + c]) * (double)vb[j * v.sn + e];
        else
            for (long long j = 0; j < N; j++) acc += (double)relu(kb[j * k.sn + e]);
        state[t] = (float)acc;
    }
}

/* out (B, N, H·d), element (b, i, h, e) = Σ_c a_ic KV[c][e] / (Σ_c a_ic s_c + eps):
 * each thread recomputes its token's denominator (d multiply-adds, as many
 * as its numerator), which saves a pass and a buffer. */
static __global__ void la_out_kernel(long long B, long long N, long long H, long long d, gv_attn_rows q, float eps,
                              const float *state, float *out)
{
    GRID_LOOP(t, B * N * H * d) {
        long long e = t % d, h = (t / d) % H, i = (t / (d * H)) % N, b = t / (d * H * N);
        const float *qi = q.data + b * q.sb + i * q.sn + h * d;
        const float *kv = state + (b * H + h) * (d * d + d), *s = kv + d * d;
        float num = 0.0f, den = 0.0f;
        for (long long c = 0; c < d; c++) {
            float a = relu(qi[c]);
            num += a * kv[c * d + e];
            den += a * s[c];
        }
        out[t] = num / (den + eps);
    }
}

extern "C" void gv_cuda_linear_attention(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q, gv_attn_rows k,
                                         gv_attn_rows v, float eps, void *scratch, float *state, float *out)
{
    (void)scratch; /* the forward needs none: each state element has its own thread */
    long long states = (long long)B * H * (d + 1) * d;
    if (states == 0) return;
    /* With no tokens the state is zero, as the CPU leaves it. */
    la_state_kernel<<<gv_cuda_blocks(states), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(B, N, H, d, k, v, state);
    GV_CUDA_LAUNCHED("linear_attention state");
    long long outs = (long long)B * N * H * d;
    if (outs == 0) return;
    la_out_kernel<<<gv_cuda_blocks(outs), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(B, N, H, d, q, eps, state, out);
    GV_CUDA_LAUNCHED("linear_attention");
}

/*
 * Backward, with den_i = a_i·s + eps, u_i = KV·g_i, dnum_i = g_i/den_i and
 * dden_i = −(a_i·u_i)/den_i²:
 *   dq_i = (u_i/den_i + dden_i·s) ⊙ [q_i > 0]
 *   dKV = Σ_i a_iᵀ dnum_i,  ds = Σ_i dden_i a_i
 *   dk_j = (dKV·v_j + ds) ⊙ [k_j > 0],  dv_j = dKVᵀ·b_j
 *
 * dKV and ds need every token's 1/den and dden, which need u_i, a d×d
 * product per token. One block owns a head and walks its tokens in tiles
 * of T: the tile's g and u rows go to shared memory, one thread per token
 * finds 1/den and dden, the tile's dq is written, and each thread adds the
 * tile's terms to the dKV/ds entries it owns (always the same entries, in
 * double in the scratch, the tiles in token order: a fixed summation order).
 * A second kernel then makes dk and dv, one thread per output element.
 */
enum { LA_THREADS = 256, LA_MAX_TILE = 32, LA_SMEM_FLOATS = 12288 /* 48 KiB, the default limit */ };

/* Tokens per tile: g and u (d floats each) and two floats per token fit the
 * shared memory; d ≤ 4096 (the front-end's limit) leaves at least one. */
static long long la_tile(long long d)
{
    long long t = LA_SMEM_FLOATS / (2 * d + 2);
    return t > (long long)LA_MAX_TILE ? (long long)LA_MAX_TILE : (t < 1 ? 1 : t);
}

static __global__ void la_backward_heads_kernel(long long B, long long N, long long H, long long d, long long T,
                                         gv_attn_rows q, gv_attn_rows g, float eps, const float *state, char *scratch,
                                         long long scratch_stride, float *dq, bool want_kv)
{
    extern __shared__ float smem[];
    float *gs = smem, *us = gs + T * d, *rden_s = us + T * d, *dd_s = rden_s + T;
    long long D = H * d, nent = d * d + d;
    for (long long p = blockIdx.x; p < B * H; p += gridDim.x) {
        long long b = p / H, h = p % H;
        const float *qb = q.data + b * q.sb + h * d, *gb = g.data + b * g.sb + h * d;
        const float *kv = state + p * nent, *s = kv + d * d;
        double *acc = (double *)(scratch + p * scratch_stride);
        if (want_kv)
            for (long long idx = threadIdx.x; idx < nent; idx += blockDim.x) acc[idx] = 0.0;
        for (long long i0 = 0; i0 < N; i0 += T) {
            long long nt = N - i0 < T ? N - i0 : T;
            for (long long idx = threadIdx.x; idx < nt * d; idx += blockDim.x)
                gs[idx] = gb[(i0 + idx / d) * g.sn + idx % d];
            __syncthreads();
            /* u_t[c] = Σ_e KV[c][e]·g_t[e] */
            for (long long idx = threadIdx.x; idx < nt * d; idx += blockDim.x) {
                long long t = idx / d, c = idx % d;
                const float *row = kv + c * d, *gt = gs + t * d;
                float u = 0.0f;
                for (long long e = 0; e < d; e++) u += row[e] * gt[e];
                us[idx] = u;
            }
            __syncthreads();
            for (long long t = threadIdx.x; t < nt; t += blockDim.x) {
                const float *qi = qb + (i0 + t) * q.sn, *ut = us + t * d;
                float den = 0.0f, au = 0.0f;
                for (long long c = 0; c < d; c++) {
                    float a = relu(qi[c]);
                    den += a * s[c];
                    au += a * ut[c];
                }
                float rden = 1.0f / (den + eps);
                rden_s[t] = rden;
                dd_s[t] = -au * rden * rden;
            }
            __syncthreads();
            if (dq)
                for (long long idx = threadIdx.x; idx < nt * d; idx += blockDim.x) {
                    long long t = idx / d, c = idx % d;
                    float qv = qb[(i0 + t) * q.sn + c];
                    dq[(b * N + i0 + t) * D + h * d + c] = qv > 0.0f ? us[idx] * rden_s[t] + dd_s[t] * s[c] : 0.0f;
                }
            if (want_kv)
                for (long long idx = threadIdx.x; idx < nent; idx += blockDim.x) {
                    double sum = 0.0;
                    if (idx < d * d) {
                        /* dKV[c][e] += Σ_t a_tc·(g_te/den_t), the quotient in float as the CPU */
                        long long c = idx / d, e = idx % d;
                        for (long long t = 0; t < nt; t++)
                            sum += (double)relu(qb[(i0 + t) * q.sn + c]) * (double)(gs[t * d + e] * rden_s[t]);
                    } else {
                        /* ds[c] += Σ_t dden_t·a_tc */
                        long long c = idx - d * d;
                        for (long long t = 0; t < nt; t++)
                            sum += (double)dd_s[t] * (double)relu(qb[(i0 + t) * q.sn + c]);
                    }
                    acc[idx] += sum;
                }
            __syncthreads(); /* the next tile overwrites the shared rows */
        }
        if (want_kv) {
            float *f = (float *)(acc + nent);
            for (long long idx = threadIdx.x; idx < nent; idx += blockDim.x) f[idx] = (float)acc[idx];
        }
    }
}

/* dk, dv (B, N, H·d), element (b, j, h, c), from the float dKV and ds. */
static __global__ void la_backward_rows_kernel(long long B, long long N, long long H, long long d, gv_attn_rows k,
                                        gv_attn_rows v, const char *scratch, long long scratch_stride, float *dk,
                                        float *dv)
{
    long long nent = d * d + d;
    GRID_LOOP(t, B * N * H * d) {
        long long c = t % d, h = (t / d) % H, j = (t / (d * H)) % N, b = t / (d * H * N);
        const float *dkv = (const float *)((const double *)(scratch + (b * H + h) * scratch_stride) + nent);
        const float *ds = dkv + d * d;
        const float *kj = k.data + b * k.sb + j * k.sn + h * d, *vj = v.data + b * v.sb + j * v.sn + h * d;
        if (dk) {
            float o = ds[c];
            for (long long e = 0; e < d; e++) o += vj[e] * dkv[c * d + e];
            dk[t] = kj[c] > 0.0f ? o : 0.0f;
        }
        if (dv) {
            /* here c plays the output channel e of dv_j = dKVᵀ·b_j */
            float o = 0.0f;
            for (long long r = 0; r < d; r++) o += relu(kj[r]) * dkv[r * d + c];
            dv[t] = o;
        }
    }
}

extern "C" void gv_cuda_linear_attention_backward(int64_t B, int64_t N, int64_t H, int64_t d, gv_attn_rows q,
                                                  gv_attn_rows k, gv_attn_rows v, gv_attn_rows g, float eps,
                                                  const float *state, void *scratch, float *dq, float *dk, float *dv)
{
    bool want_kv = dk || dv;
    long long pairs = (long long)B * H, outs = pairs * N * d;
    if (outs == 0 || (!dq && !want_kv)) return;
    long long T = la_tile(d), stride = gv_cuda_linear_attention_scratch(d);
    size_t smem = (size_t)(2 * T * d + 2 * T) * sizeof(float);
    la_backward_heads_kernel<<<blocks_for(pairs), LA_THREADS, smem, gv_cuda_stream()>>>(
        B, N, H, d, T, q, g, eps, state, (char *)scratch, stride, dq, want_kv);
    GV_CUDA_LAUNCHED("linear_attention backward");
    if (!want_kv) return;
    la_backward_rows_kernel<<<gv_cuda_blocks(outs), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(
        B, N, H, d, k, v, (const char *)scratch, stride, dk, dv);
    GV_CUDA_LAUNCHED("linear_attention backward rows");
}

/* ---- cross attention --------------------------------------------------------- */

/* C_i (m×n, leading dimension ldc) = 0 for batch matrices C + i·sc. */
static __global__ void zero_mats_kernel(long long batch, long long m, long long n, float *c, long long ldc, long long sc)
{
    GRID_LOOP(t, batch * m * n) {
        long long i = t / (m * n), r = (t / n) % m, col = t % n;
        c[i * sc + r * ldc + col] = 0.0f;
    }
}

/*
 * Row-major C_i = alpha·op(A_i)·op(B_i) for i < batch, with A_i = A + i·sa
 * and so on, through cuBLAS's strided batched gemm as column-major
 * C_iᵀ = op(B_i)ᵀ·op(A_i)ᵀ (see linalg.cu). k = 0 gives zeros, as the CPU.
 * All sizes fit an int (the front-end checks N, M and D).
 */
static void gemm_heads(bool ta, bool tb, long long m, long long n, long long k, float alpha, const float *a,
                       long long lda, long long sa, const float *b, long long ldb, long long sb, float *c,
                       long long ldc, long long sc, long long batch, const char *what)
{
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0) {
        zero_mats_kernel<<<gv_cuda_blocks(batch * m * n), GV_CUDA_THREADS, 0, gv_cuda_stream()>>>(batch, m, n, c,
                                                                                                   ldc, sc);
        GV_CUDA_LAUNCHED(what);
        return;
    }
    const float beta = 0.0f;
    gv_cuda_record_blas(cublasSgemmStridedBatched(gv_cuda_blas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                  ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha, b,
                                                  (int)ldb, sb, a, (int)lda, sa, &beta, c, (int)ldc, sc, (int)batch),
                        what);
}

enum { ROW_THREADS = 128 }; /* one block per row of P; M ≤ 300 in SANA */

/* The block's maximum / sum of v, in a fixed tree order (so the same bits
 * for any grid); sh holds ROW_THREADS values. Every thread gets the result. */
static __device__ float block_max(float v, float *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = ROW_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) {
            float o = sh[threadIdx.x + w];
            /* a NaN loses, as in the CPU's x > m ? x : m */
            sh[threadIdx.x] = o > sh[threadIdx.x] ? o : sh[threadIdx.x];
        }
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}


/*
 * Softmax of each row of scores (in place) with the padding bias
 * (1 − mask)·(−10000). As on the CPU, the row's largest bias is taken off
 * first: a caption with real tokens gives −10000 to its padding, an
 * all-padding caption no bias at all (softmax ignores a constant shift), so
 * the scores are never rounded at the scale of 10000.
 */
static __global__ void masked_softmax_kernel(long long rows, long long rows_per_batch, long long m, float *P,
                                      const void *mask, int mask_u8)
{
    __shared__ float shf[ROW_THREADS];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        float *p = P + r * m;
        const uint8_t *mu = NULL;
        const float *mf = NULL;
        if (mask) {
            long long b = r / rows_per_batch;
            if (mask_u8) mu = (const uint8_t *)mask + b * m;
            else mf = (const float *)mask + b * m;
        }
        int any_real = 0;
        if (mask)
            for (long long j = threadIdx.x; j < m; j += blockDim.x) any_real |= mu ? mu[j] != 0 : mf[j] != 0.0f;
        bool pad = __syncthreads_or(any_real) != 0;
        float mx = -INFINITY;
        for (long long j = threadIdx.x; j < m; j += blockDim.x) {
            float x = p[j];
            if (pad && !(mu ? mu[j] != 0 : mf[j] != 0.0f)) x -= 10000.0f;
            p[j] = x;
            mx = x > mx ? x : mx;
        }
        mx = block_max(mx, shf);
        double sum = 0.0;
        for (long long j = threadIdx.x; j < m; j += blockDim.x) {
            float e = expf(p[j] - mx);
            p[j] = e;
            sum += e;
        }
        sum = gv_block_sum<ROW_THREADS>(sum);
        float inv = (float)(1.0 / sum);
        for (long long j = threadIdx.x; j < m; j += blockDim.x) p[j] *= inv;
    }
}

/* dS = P ⊙ (dP − Σ_j dP_j P_j) per row, in place over dP. */
static __global__ void softmax_grad_kernel(long long rows, long long m, const float *P, float *g)
{
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *p = P + r * m;
        float *gr = g + r * m;
        double dot = 0.0;
        for (long long j = threadIdx.x; j < m; j += blockDim.x) dot += (double)gr[j] * p[j];
        float rd = (float)gv_block_sum<ROW_THREADS>(dot);
        for (long long j = threadIdx.x; j < m; j += blockDim.x) gr[j] = p[j] * (gr[j] - rd);
    }
}

/* Scratch of the backward: one batch's dS (H heads of N×M), reused batch
 * after batch (the stream orders the uses). */
extern "C" int64_t gv_cuda_cross_attention_scratch(int64_t B, int64_t H, int64_t N, int64_t M)
{
    (void)B;
    return H * N * M;
}

static float attn_scale(int64_t dh) { return (float)(1.0 / sqrt((double)(dh > 0 ? dh : 1))); }

extern "C" void gv_cuda_cross_attention(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh, gv_attn_rows q,
                                        gv_attn_rows k, gv_attn_rows v, const void *mask, int mask_u8, float *P,
                                        float *out)
{
    long long D = H * dh, NM = N * M;
    if (B * H * NM == 0) return;
    float scale = attn_scale(dh);
    /* S = q kᵀ/√dh per head, into P. */
    for (long long b = 0; b < B; b++)
        gemm_heads(false, true, N, M, dh, scale, q.data + b * q.sb, q.sn, dh, k.data + b * k.sb, k.sn, dh,
                   P + b * H * NM, M, NM, H, "cross_attention scores");
    long long rows = B * H * N;
    masked_softmax_kernel<<<blocks_for(rows), ROW_THREADS, 0, gv_cuda_stream()>>>(rows, H * N, M, P, mask, mask_u8);
    GV_CUDA_LAUNCHED("cross_attention softmax");
    /* out = P v per head, into the head's columns of out. */
    for (long long b = 0; b < B; b++)
        gemm_heads(false, false, N, dh, M, 1.0f, P + b * H * NM, M, NM, v.data + b * v.sb, v.sn, dh, out + b * N * D,
                   D, dh, H, "cross_attention values");
}

extern "C" void gv_cuda_cross_attention_backward(int64_t B, int64_t N, int64_t M, int64_t H, int64_t dh,
                                                 gv_attn_rows q, gv_attn_rows k, gv_attn_rows v, const float *P,
                                                 gv_attn_rows g, float *scratch, float *dq, float *dk, float *dv)
{
    long long D = H * dh, NM = N * M;
    float scale = attn_scale(dh);
    for (long long b = 0; b < B; b++) {
        const float *Pb = P + b * H * NM;
        const float *qb = q.data + b * q.sb, *kb = k.data + b * k.sb, *vb = v.data + b * v.sb;
        const float *gb = g.data + b * g.sb;
        /* dv = Pᵀ g (with no image tokens: zeros, through k = 0) */
        if (dv) gemm_heads(true, false, M, dh, N, 1.0f, Pb, M, NM, gb, g.sn, dh, dv + b * M * D, D, dh, H,
                           "cross_attention dv");
        if (!dq && !dk) continue;
        /* dP = g vᵀ, then dS in place */
        gemm_heads(false, true, N, M, dh, 1.0f, gb, g.sn, dh, vb, v.sn, dh, scratch, M, NM, H, "cross_attention dP");
        long long rows = H * N;
        if (rows * M > 0) {
            softmax_grad_kernel<<<blocks_for(rows), ROW_THREADS, 0, gv_cuda_stream()>>>(rows, M, Pb, scratch);
            GV_CUDA_LAUNCHED("cross_attention softmax backward");
        }
        /* dq = dS k/√dh, dk = dSᵀ q/√dh */
        if (dq) gemm_heads(false, false, N, dh, M, scale, scratch, M, NM, kb, k.sn, dh, dq + b * N * D, D, dh, H,
                           "cross_attention dq");
        if (dk) gemm_heads(true, false, M, dh, N, scale, scratch, M, NM, qb, q.sn, dh, dk + b * M * D, D, dh, H,
                           "cross_attention dk");
    }
}

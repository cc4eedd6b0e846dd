/*
 * optim.cu — CUDA twins of the optimizer kernels of kernels/cpu/optim.c:
 * SGD, AdamW, CAME (full and factored second moment), Σx² and x·=s. The
 * blockwise 8-bit quantizers are in quant.cu.
 *
 * The per-element formulas are the CPU's own (kernels/cpu/optim_rules.h). Sums are
 * in double, as on the CPU, and never use atomics:
 * - a full sum (Σx², CAME's Σu² over a vector) splits [0, n) among a number
 *   of blocks that depends only on n; each block reduces its share in a
 *   fixed tree and one block adds the block partials in order, so a result
 *   depends only on the data and n (its rounding differs from the CPU's
 *   chunk order by a few units in the last place of a double);
 * - CAME's factored statistics are summed exactly as the CPU sums them:
 *   each row over the columns in order (through shared-memory tiles, so
 *   that reads are coalesced), and the column sums from
 *   partials over fixed bands of ROW_BAND rows added band by band, so the
 *   row and column means are the CPU's bits.
 * The scalar results of a sum (CAME's clip divisor, Σx²) stay on the device
 * in the variables below; every launch goes on the one stream of the
 * device, so one step's use of them ends before the next step's begins.
 */
#include "cuda.h"
#include "context.h"
#include "block_reduce.cuh"
#include "../cpu/optim_rules.h"

/* One thread per index, striding over the grid: n may exceed 2^31. */
#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

constexpr int THREADS = GV_CUDA_THREADS;
/* Most blocks a full sum is split among (their partials are added by one block). */
constexpr long long MAX_PARTS = 1024;
/* The CPU's band of rows for column sums (kernels/cpu/optim.c). */
constexpr long long ROW_BAND = 16;

/* Block partials of a full sum, its total, and CAME's clip divisor. */
static __device__ double g_parts[MAX_PARTS];
static __device__ double g_total;
static __device__ float g_denom;


/* How many blocks share a full sum over n values: one per THREADS values, at most MAX_PARTS. */
static unsigned int sum_parts(long long n)
{
    long long p = (n + THREADS - 1) / THREADS;
    return (unsigned int)(p < MAX_PARTS ? p : MAX_PARTS);
}

/* ---- Σx² and x·=s ------------------------------------------------------------ */

static __global__ void sum_squares_parts(const float *x, long long n)
{
    double s = 0;
    GRID_LOOP(i, n) s += (double)x[i] * (double)x[i];
    double t = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) g_parts[blockIdx.x] = t;
}

/* Totals of a group of sums (gv_cuda_sum_squares_group), read back at once. */
constexpr int GROUP_SUMS = 1024;
static __device__ double g_sums[GROUP_SUMS];

/* Σ of the nparts block partials (one block), into g_total, or into
 * g_sums[slot] when slot >= 0. */
static __global__ void total_of_parts(unsigned int nparts, int slot)
{
    double s = 0;
    for (unsigned int b = threadIdx.x; b < nparts; b += blockDim.x) s += g_parts[b];
    double t = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) {
        if (slot >= 0) g_sums[slot] = t;
        else g_total = t;
    }
}

extern "C" double gv_cuda_sum_squares(const float *x, int64_t n)
{
    if (n <= 0) return 0.0;
    cudaStream_t st = gv_cuda_stream();
    unsigned int parts = sum_parts(n);
    sum_squares_parts<<<parts, THREADS, 0, st>>>(x, n);
    GV_CUDA_LAUNCHED("sum_squares");
    total_of_parts<<<1, THREADS, 0, st>>>(parts, -1);
    GV_CUDA_LAUNCHED("sum_squares");
    double total = 0;
    gv_cuda_record(cudaMemcpyFromSymbolAsync(&total, g_total, sizeof total, 0, cudaMemcpyDeviceToHost, st),
                   "sum_squares: copy to host");
    gv_cuda_record(cudaStreamSynchronize(st), "sum_squares");
    return total;
}

/* A group of Σx²: up to SUMSQ_TENSORS tensors per launch pair, by value.
 * Tensor t gets blocks first_block[t] .. first_block[t + 1] − 1, as many as
 * gv_cuda_sum_squares would launch for it, each striding as that launch's
 * grid would; a second launch adds each tensor's block partials in the same
 * tree. So every tensor's sum has the bits of gv_cuda_sum_squares. */
constexpr int SUMSQ_TENSORS = 32;
struct sumsq_batch {
    int count;
    unsigned int first_block[SUMSQ_TENSORS + 1];
    const float *x[SUMSQ_TENSORS];
    long long n[SUMSQ_TENSORS];
    int slot[SUMSQ_TENSORS];
};
static __device__ double g_group_parts[SUMSQ_TENSORS * MAX_PARTS];

static __global__ void sum_squares_parts_group(sumsq_batch b)
{
    int t = 0;
    while (blockIdx.x >= b.first_block[t + 1]) t++;
    const unsigned int local = blockIdx.x - b.first_block[t], parts = b.first_block[t + 1] - b.first_block[t];
    double s = 0;
    for (long long i = (long long)local * THREADS + threadIdx.x; i < b.n[t]; i += (long long)parts * THREADS)
        s += (double)b.x[t][i] * (double)b.x[t][i];
    double tot = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) g_group_parts[blockIdx.x] = tot;
}

/* One block per tensor: g_sums[slot] = Σ of its block partials. */
static __global__ void totals_of_parts_group(sumsq_batch b)
{
    const int t = blockIdx.x;
    const unsigned int first = b.first_block[t], parts = b.first_block[t + 1] - first;
    double s = 0;
    for (unsigned int k = threadIdx.x; k < parts; k += blockDim.x) s += g_group_parts[first + k];
    double tot = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) g_sums[b.slot[t]] = tot;
}

/* The per-tensor sums of gv_cuda_sum_squares (the same bits), two launches
 * per SUMSQ_TENSORS tensors, copied to the host together: one wait per
 * GROUP_SUMS tensors instead of one per tensor (clip_grad_norm). */
extern "C" void gv_cuda_sum_squares_group(int32_t count, const float *const *xs, const int64_t *ns, double *sums)
{
    cudaStream_t st = gv_cuda_stream();
    for (int32_t first = 0; first < count; first += GROUP_SUMS) {
        const int32_t m = count - first < GROUP_SUMS ? count - first : GROUP_SUMS;
        for (int32_t b0 = 0; b0 < m; b0 += SUMSQ_TENSORS) {
            sumsq_batch b;
            b.count = m - b0 < SUMSQ_TENSORS ? m - b0 : SUMSQ_TENSORS;
            b.first_block[0] = 0;
            for (int j = 0; j < b.count; j++) {
                const long long n = ns[first + b0 + j];
                b.x[j] = xs[first + b0 + j];
                b.n[j] = n > 0 ? n : 0;
                b.slot[j] = b0 + j;
                b.first_block[j + 1] = b.first_block[j] + (n > 0 ? sum_parts(n) : 0);
            }
            if (b.first_block[b.count] > 0) {
                sum_squares_parts_group<<<b.first_block[b.count], THREADS, 0, st>>>(b);
                GV_CUDA_LAUNCHED("sum_squares");
            }
            totals_of_parts_group<<<b.count, THREADS, 0, st>>>(b);
            GV_CUDA_LAUNCHED("sum_squares");
        }
        gv_cuda_record(cudaMemcpyFromSymbolAsync(sums + first, g_sums, (size_t)m * sizeof(double), 0,
                                                 cudaMemcpyDeviceToHost, st),
                       "sum_squares: copy to host");
        gv_cuda_record(cudaStreamSynchronize(st), "sum_squares");
    }
}

static __global__ void scale_kernel(float *x, long long n, float s)
{
    GRID_LOOP(i, n) x[i] *= s;
}

extern "C" void gv_cuda_scale_(float *x, int64_t n, float s)
{
    if (n <= 0) return;
    scale_kernel<<<gv_cuda_blocks(n), THREADS, 0, gv_cuda_stream()>>>(x, n, s);
    GV_CUDA_LAUNCHED("scale_");
}

/* A group of x ·= s: up to SUMSQ_TENSORS tensors per launch, by value, as
 * one concatenated range (as adamw_group_kernel walks its tensors). */
struct scale_batch {
    int count;
    long long start[SUMSQ_TENSORS + 1];
    float *x[SUMSQ_TENSORS];
};

static __global__ void scale_group_kernel(scale_batch b, float s)
{
    int t = 0;
    GRID_LOOP(i, b.start[b.count]) {
        while (i >= b.start[t + 1]) t++;
        b.x[t][i - b.start[t]] *= s;
    }
}

extern "C" void gv_cuda_scale_group(int32_t count, float *const *xs, const int64_t *ns, float s)
{
    for (int32_t first = 0; first < count; first += SUMSQ_TENSORS) {
        scale_batch b;
        b.count = 0;
        b.start[0] = 0;
        for (int32_t t = first; t < count && t < first + SUMSQ_TENSORS; t++) {
            if (ns[t] <= 0) continue;
            b.x[b.count] = xs[t];
            b.start[b.count + 1] = b.start[b.count] + ns[t];
            b.count++;
        }
        if (b.count == 0) continue;
        scale_group_kernel<<<gv_cuda_blocks(b.start[b.count]), THREADS, 0, gv_cuda_stream()>>>(b, s);
        GV_CUDA_LAUNCHED("scale_");
    }
}

/* ---- SGD and AdamW ------------------------------------------------------------ */

static __global__ void sgd_kernel(float *p, const float *g, float *buf, long long n, float lr, float momentum,
                           float one_minus_dampening, float weight_decay, int nesterov, int first)
{
    GRID_LOOP(i, n)
        p[i] = gv_rule_sgd(p[i], g[i], buf ? buf + i : NULL, lr, momentum, one_minus_dampening, weight_decay,
                           nesterov, first);
}

extern "C" void gv_cuda_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                            float one_minus_dampening, float weight_decay, int nesterov, int first)
{
    if (n <= 0) return;
    sgd_kernel<<<gv_cuda_blocks(n), THREADS, 0, gv_cuda_stream()>>>(p, g, buf, n, lr, momentum, one_minus_dampening,
                                                                     weight_decay, nesterov, first);
    GV_CUDA_LAUNCHED("sgd");
}

static __global__ void adamw_kernel(float *p, const float *g, float *m, float *v, long long n, float keep, float beta1,
                             float one_minus_beta1, float beta2, float one_minus_beta2, float eps, float step_size,
                             float bc2_sqrt)
{
    GRID_LOOP(i, n)
        p[i] = gv_rule_adamw(p[i], g[i], m + i, v + i, keep, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                             step_size, bc2_sqrt);
}

extern "C" void gv_cuda_adamw(float *p, const float *g, float *m, float *v, int64_t n, float keep, float beta1,
                              float one_minus_beta1, float beta2, float one_minus_beta2, float eps, float step_size,
                              float bc2_sqrt)
{
    if (n <= 0) return;
    adamw_kernel<<<gv_cuda_blocks(n), THREADS, 0, gv_cuda_stream()>>>(p, g, m, v, n, keep, beta1, one_minus_beta1,
                                                                       beta2, one_minus_beta2, eps, step_size, bc2_sqrt);
    GV_CUDA_LAUNCHED("adamw");
}

/* A grouped step: up to GROUP_TENSORS tensors per launch, passed by value
 * (kernel parameters, no upload), as one concatenated range of
 * start[count] elements; each thread walks its grid-stride positions in
 * increasing order, so finding the tensor of a position is a step forward. */
constexpr int GROUP_TENSORS = 32;
struct adamw_batch {
    int count;
    long long start[GROUP_TENSORS + 1];
    float *p[GROUP_TENSORS];
    const float *g[GROUP_TENSORS];
    float *m[GROUP_TENSORS], *v[GROUP_TENSORS];
    float step_size[GROUP_TENSORS], bc2_sqrt[GROUP_TENSORS];
};

static __global__ void adamw_group_kernel(adamw_batch b, float keep, float beta1, float one_minus_beta1, float beta2,
                                          float one_minus_beta2, float eps)
{
    int t = 0;
    GRID_LOOP(i, b.start[b.count]) {
        while (i >= b.start[t + 1]) t++;
        long long k = i - b.start[t];
        b.p[t][k] = gv_rule_adamw(b.p[t][k], b.g[t][k], b.m[t] + k, b.v[t] + k, keep, beta1, one_minus_beta1, beta2,
                                  one_minus_beta2, eps, b.step_size[t], b.bc2_sqrt[t]);
    }
}

extern "C" void gv_cuda_adamw_group(int32_t count, const gv_adamw_task *tasks, float keep, float beta1,
                                    float one_minus_beta1, float beta2, float one_minus_beta2, float eps)
{
    for (int32_t first = 0; first < count; first += GROUP_TENSORS) {
        adamw_batch b;
        b.count = 0;
        b.start[0] = 0;
        for (int32_t t = first; t < count && t < first + GROUP_TENSORS; t++) {
            if (tasks[t].n <= 0) continue;
            int j = b.count++;
            b.p[j] = tasks[t].p;
            b.g[j] = tasks[t].g;
            b.m[j] = tasks[t].m;
            b.v[j] = tasks[t].v;
            b.step_size[j] = tasks[t].step_size;
            b.bc2_sqrt[j] = tasks[t].bc2_sqrt;
            b.start[j + 1] = b.start[j] + tasks[t].n;
        }
        if (b.count == 0) continue;
        adamw_group_kernel<<<gv_cuda_blocks(b.start[b.count]), THREADS, 0, gv_cuda_stream()>>>(
            b, keep, beta1, one_minus_beta1, beta2, one_minus_beta2, eps);
        GV_CUDA_LAUNCHED("adamw");
    }
}

/* ---- CAME, full second moment ------------------------------------------------- */

/* v ← β2·v + (1 − β2)(g² + ε1); block partials of Σu² for u = g/√v. */
static __global__ void came_full_second_moment(const float *g, float *v, long long n, float b2, float omb2, float eps1)
{
    double s = 0;
    GRID_LOOP(i, n) {
        float vi = gv_rule_blend(v[i], b2, omb2, gv_rule_came_sq(g[i], eps1));
        v[i] = vi;
        float u = (1.0f / sqrtf(vi)) * g[i];
        s += (double)u * (double)u;
    }
    double t = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) g_parts[blockIdx.x] = t;
}

/* g_denom = the clip divisor from the block partials of Σu² (one block). */
static __global__ void came_denom_from_parts(unsigned int nparts, long long n, float clip)
{
    double s = 0;
    for (unsigned int b = threadIdx.x; b < nparts; b += blockDim.x) s += g_parts[b];
    double t = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) g_denom = gv_rule_clip_divisor(t, n, clip);
}

static __global__ void came_full_update(float *p, const float *g, float *m, const float *v, long long n, float b1, float omb1,
                                 float lr, float decay)
{
    const float denom = g_denom;
    GRID_LOOP(i, n) {
        float u = ((1.0f / sqrtf(v[i])) * g[i]) / denom;
        float mi = gv_rule_blend(m[i], b1, omb1, u);
        m[i] = mi;
        p[i] = gv_rule_came_step(p[i], decay, mi, lr);
    }
}

extern "C" void gv_cuda_came_full(float *p, const float *g, float *m, float *v, int64_t n, const gv_came_hyper *h)
{
    if (n <= 0) return;
    cudaStream_t st = gv_cuda_stream();
    /* the full grid of the second-moment pass is the sum's partition (at most MAX_PARTS blocks) */
    unsigned int parts = sum_parts(n);
    came_full_second_moment<<<parts, THREADS, 0, st>>>(g, v, n, h->beta2, h->one_minus_beta2, h->eps1);
    GV_CUDA_LAUNCHED("came_full");
    came_denom_from_parts<<<1, THREADS, 0, st>>>(parts, n, h->clip);
    GV_CUDA_LAUNCHED("came_full");
    came_full_update<<<gv_cuda_blocks(n), THREADS, 0, st>>>(p, g, m, v, n, h->beta1, h->one_minus_beta1, h->lr,
                                                            h->decay);
    GV_CUDA_LAUNCHED("came_full");
}

/* ---- CAME, factored statistics ---------------------------------------------------
 * The scratch has the CPU's layout and size: band partials (bands × cols),
 * then the row sums (rows) and the column sums (cols). The values summed
 * are given by a functor value(i, j) -> double, so one pair of sum kernels
 * serves the three statistics. */

/* g² + ε1: the second-moment statistic. */
struct SqValue {
    const float *g;
    long long cols;
    float eps1;
    __device__ double operator()(long long i, long long j) const
    {
        return (double)gv_rule_came_sq(g[i * cols + j], eps1);
    }
};

/* u² for u = (a_i·b_j)·g: the square whose mean gives the clip divisor. */
struct UsqValue {
    const float *g, *fa, *fb;
    long long cols;
    __device__ double operator()(long long i, long long j) const
    {
        float u = (fa[i] * fb[j]) * g[i * cols + j];
        return (double)u * (double)u;
    }
};

/* (û − m)² + ε2 with the clipped update û and the updated first moment m: the instability. */
struct ResValue {
    const float *g, *m, *fa, *fb;
    long long cols;
    float eps2;
    __device__ double operator()(long long i, long long j) const
    {
        long long k = i * cols + j;
        float u = ((fa[i] * fb[j]) * g[k]) / g_denom;
        return (double)gv_rule_came_instability(u, m[k], eps2);
    }
};

/* rsum[i] = Σ_j value(i, j), columns in order (the CPU's order), ROW_TILE
 * rows per block. The block reads ROW_TILE × ROW_TILE tiles with
 * neighbouring threads on neighbouring columns (coalesced) into shared
 * memory; thread r of the first warp then adds row r's values of the tile
 * in column order. Reading a row per thread straight from memory would put
 * each thread of a warp on its own cache line. The loop over row tiles
 * runs the same number of times in every thread of a block, so all reach
 * the barriers. */
constexpr int ROW_TILE = 32;
template <class V>
static __global__ void row_sums(V value, long long rows, long long cols, double *rsum)
{
    __shared__ double tile[ROW_TILE][ROW_TILE + 1]; /* +1: the first warp's row reads hit distinct banks */
    const int tx = (int)threadIdx.x % ROW_TILE, ty = (int)threadIdx.x / ROW_TILE, ny = THREADS / ROW_TILE;
    for (long long r0 = (long long)blockIdx.x * ROW_TILE; r0 < rows; r0 += (long long)gridDim.x * ROW_TILE) {
        double s = 0;
        for (long long c0 = 0; c0 < cols; c0 += ROW_TILE) {
            for (int k = ty; k < ROW_TILE; k += ny) {
                long long i = r0 + k, j = c0 + tx;
                tile[k][tx] = i < rows && j < cols ? value(i, j) : 0.0;
            }
            __syncthreads();
            if (threadIdx.x < ROW_TILE) {
                const int width = cols - c0 < ROW_TILE ? (int)(cols - c0) : ROW_TILE;
                for (int j = 0; j < width; j++) s += tile[threadIdx.x][j];
            }
            __syncthreads();
        }
        if (threadIdx.x < ROW_TILE && r0 + threadIdx.x < rows) rsum[r0 + threadIdx.x] = s;
    }
}

/* Blocks for row_sums: one per ROW_TILE rows. */
static unsigned int row_tiles(long long rows) { return gv_cuda_blocks((rows + ROW_TILE - 1) / ROW_TILE * THREADS); }

/* part[k·cols + j] = Σ value(i, j) over the rows i of band k, in order: one
 * thread per (band, column), neighbouring threads on neighbouring columns. */
template <class V>
static __global__ void band_sums(V value, long long rows, long long cols, double *part)
{
    const long long bands = (rows + ROW_BAND - 1) / ROW_BAND;
    GRID_LOOP(t, bands * cols) {
        long long k = t / cols, j = t % cols;
        long long i1 = (k + 1) * ROW_BAND < rows ? (k + 1) * ROW_BAND : rows;
        double s = 0;
        for (long long i = k * ROW_BAND; i < i1; i++) s += value(i, j);
        part[t] = s;
    }
}

/* csum[j] = Σ_k part[k·cols + j], bands in order (the CPU's add_bands). */
static __global__ void add_bands(const double *part, long long bands, long long cols, double *csum)
{
    GRID_LOOP(j, cols) {
        double s = 0;
        for (long long k = 0; k < bands; k++) s += part[k * cols + j];
        csum[j] = s;
    }
}

/* One block: row ← β·row + (1 − β)·rsum/cols, col likewise with csum/rows,
 * then the factors fa_i = 1/√(row_i / mean(row)) and fb_j = 1/√col_j (the
 * CPU's blend_and_factor). The mean is a fixed-tree sum in double of the
 * blended rows; the CPU adds them in row order, which differs only in the
 * last bits of a double before the rounding to float. */
static __global__ void blend_and_factor(float *row, float *col, const double *rsum, const double *csum, long long rows,
                                 long long cols, float beta, float one_minus_beta, float *fa, float *fb)
{
    double s = 0;
    for (long long i = threadIdx.x; i < rows; i += blockDim.x) {
        float r = gv_rule_blend(row[i], beta, one_minus_beta, (float)(rsum[i] / (double)cols));
        row[i] = r;
        s += r;
    }
    for (long long j = threadIdx.x; j < cols; j += blockDim.x)
        col[j] = gv_rule_blend(col[j], beta, one_minus_beta, (float)(csum[j] / (double)rows));
    /* gv_block_sum synchronises the block, so every row and column is blended below */
    const float mean = (float)(gv_block_sum<THREADS>(s) / (double)rows);
    for (long long i = threadIdx.x; i < rows; i += blockDim.x) fa[i] = 1.0f / sqrtf(row[i] / mean);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) fb[j] = 1.0f / sqrtf(col[j]);
}

/* g_denom = the clip divisor from the per-row sums of u² (one block). */
static __global__ void came_denom_from_rows(const double *rsum, long long rows, long long n, float clip)
{
    double s = 0;
    for (long long i = threadIdx.x; i < rows; i += blockDim.x) s += rsum[i];
    double t = gv_block_sum<THREADS>(s);
    if (threadIdx.x == 0) g_denom = gv_rule_clip_divisor(t, n, clip);
}

/* m ← β1·m + (1 − β1)·û, û = (a_i·b_j)·g / denom. */
static __global__ void came_factored_moment(const float *g, float *m, const float *fa, const float *fb, long long rows,
                                     long long cols, float b1, float omb1)
{
    const float denom = g_denom;
    GRID_LOOP(k, rows * cols) {
        long long i = k / cols, j = k % cols;
        float u = ((fa[i] * fb[j]) * g[k]) / denom;
        m[k] = gv_rule_blend(m[k], b1, omb1, u);
    }
}

/* p ← p − lr·wd·p − lr·(a'_i·b'_j)·m. */
static __global__ void came_factored_update(float *p, const float *m, const float *fa, const float *fb, long long rows,
                                     long long cols, float lr, float decay)
{
    GRID_LOOP(k, rows * cols) {
        long long i = k / cols, j = k % cols;
        p[k] = gv_rule_came_step(p[k], decay, (fa[i] * fb[j]) * m[k], lr);
    }
}

/* The CPU's scratch: band partials, row sums, column sums (the clip
 * divisor lives in g_denom). Equal to gv_cpu_came_scratch_doubles, so a
 * front-end sizing the scratch with either is right. */
extern "C" int64_t gv_cuda_came_scratch_doubles(int64_t rows, int64_t cols)
{
    int64_t bands = (rows + ROW_BAND - 1) / ROW_BAND;
    return bands * cols + rows + cols;
}

/* Row and column sums of value into rsum and csum (through the band partials). */
template <class V>
static void row_and_column_sums(V value, long long rows, long long cols, double *part, double *rsum, double *csum)
{
    cudaStream_t st = gv_cuda_stream();
    const long long bands = (rows + ROW_BAND - 1) / ROW_BAND;
    row_sums<<<row_tiles(rows), THREADS, 0, st>>>(value, rows, cols, rsum);
    GV_CUDA_LAUNCHED("came_factored");
    band_sums<<<gv_cuda_blocks(bands * cols), THREADS, 0, st>>>(value, rows, cols, part);
    GV_CUDA_LAUNCHED("came_factored");
    add_bands<<<gv_cuda_blocks(cols), THREADS, 0, st>>>(part, bands, cols, csum);
    GV_CUDA_LAUNCHED("came_factored");
}

extern "C" void gv_cuda_came_factored(float *p, const float *g, float *m, float *sq_row, float *sq_col,
                                      float *res_row, float *res_col, int64_t rows, int64_t cols,
                                      const gv_came_hyper *h, double *scratch, float *factors)
{
    if (rows <= 0 || cols <= 0) return;
    cudaStream_t st = gv_cuda_stream();
    const long long n = rows * cols, bands = (rows + ROW_BAND - 1) / ROW_BAND;
    double *part = scratch, *rsum = scratch + bands * cols, *csum = rsum + rows;
    float *fa = factors, *fb = factors + rows;

    /* 1. row and column means of g² + ε1 into the second-moment statistics, and their factors */
    row_and_column_sums(SqValue{g, cols, h->eps1}, rows, cols, part, rsum, csum);
    blend_and_factor<<<1, THREADS, 0, st>>>(sq_row, sq_col, rsum, csum, rows, cols, h->beta2, h->one_minus_beta2,
                                            fa, fb);
    GV_CUDA_LAUNCHED("came_factored");

    /* 2. the clip divisor from the RMS of u = (a_i·b_j)·g, summed per row, then over rows */
    row_sums<<<row_tiles(rows), THREADS, 0, st>>>(UsqValue{g, fa, fb, cols}, rows, cols, rsum);
    GV_CUDA_LAUNCHED("came_factored");
    came_denom_from_rows<<<1, THREADS, 0, st>>>(rsum, rows, n, h->clip);
    GV_CUDA_LAUNCHED("came_factored");

    /* 3. the first moment from the clipped update, then the instability
     *    (û − m)² + ε2 by rows and columns (recomputing û from the same
     *    factors, which stay in place until step 3's blend) */
    came_factored_moment<<<gv_cuda_blocks(n), THREADS, 0, st>>>(g, m, fa, fb, rows, cols, h->beta1,
                                                                 h->one_minus_beta1);
    GV_CUDA_LAUNCHED("came_factored");
    row_and_column_sums(ResValue{g, m, fa, fb, cols, h->eps2}, rows, cols, part, rsum, csum);
    blend_and_factor<<<1, THREADS, 0, st>>>(res_row, res_col, rsum, csum, rows, cols, h->beta3, h->one_minus_beta3,
                                            fa, fb);
    GV_CUDA_LAUNCHED("came_factored");

    /* 4. the step, scaled by the instability's factors */
    came_factored_update<<<gv_cuda_blocks(n), THREADS, 0, st>>>(p, m, fa, fb, rows, cols, h->lr, h->decay);
    GV_CUDA_LAUNCHED("came_factored");
}

/*
 * quant.cu — CUDA twins of the blockwise 8-bit quantizers of
 * kernels/cpu/optim.c (CAME-8bit's first moment): the signed dynamic map
 * with one absmax per block, and the affine code with a min and a step per
 * block.
 *
 * The codes are the CPU's bit for bit: a block's absmax (or min and max) is
 * exact whatever the order of comparison, the normalised value is the same
 * IEEE division, and the dynamic code is the same function of it, the
 * number of midpoints between neighbouring map values lying strictly below
 * it (the CPU finds that number through a table of float-bit ranges; here a
 * binary search over the 255 midpoints gives the same count). NaN inputs
 * get some code, as on the CPU, not necessarily the same one.
 */
#include "cuda.h"
#include "context.h"

#include <math.h>
#include <mutex>

/* One thread per index, striding over the grid: n may exceed 2^31. */
#define GRID_LOOP(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
         i += (long long)gridDim.x * blockDim.x)

constexpr int THREADS = GV_CUDA_THREADS;
/* Most blocks of a per-quantization-block launch (each block loops). */
constexpr long long MAX_GRID = 65535;
/* Devices whose tables were uploaded are remembered up to this many. */
constexpr int MAX_DEVICES = 64;

/* The dynamic map (256 ascending values) and the midpoints between
 * neighbours (mid[k] between map[k] and map[k + 1]; mid[255] = +inf). */
static __constant__ float c_map[256];
static __constant__ float c_mid[256];

static float h_map[256], h_mid[256];
static std::once_flag h_once;
static std::mutex upload_lock;
static bool uploaded[MAX_DEVICES];

/* The tables are built on the host as the CPU builds them (the same map,
 * the same float midpoints) and copied to the current device once. */
static void build_host_tables()
{
    gv_cpu_dynamic_map(h_map);
    for (int k = 0; k < 255; k++) h_mid[k] = 0.5f * (h_map[k] + h_map[k + 1]);
    h_mid[255] = INFINITY;
}

static void ensure_tables(cudaStream_t st)
{
    std::call_once(h_once, build_host_tables);
    int dev = 0;
    gv_cuda_record(cudaGetDevice(&dev), "quantize: current device");
    std::lock_guard<std::mutex> guard(upload_lock);
    if (dev >= 0 && dev < MAX_DEVICES && uploaded[dev]) return;
    /* from pageable host memory the copies have read h_map/h_mid on return */
    gv_cuda_record(cudaMemcpyToSymbolAsync(c_map, h_map, sizeof h_map, 0, cudaMemcpyHostToDevice, st),
                   "quantize: dynamic map upload");
    gv_cuda_record(cudaMemcpyToSymbolAsync(c_mid, h_mid, sizeof h_mid, 0, cudaMemcpyHostToDevice, st),
                   "quantize: dynamic map upload");
    if (dev >= 0 && dev < MAX_DEVICES) uploaded[dev] = true;
}

static unsigned int block_grid(long long nblocks)
{
    return (unsigned int)(nblocks < MAX_GRID ? nblocks : MAX_GRID);
}

/* Max and min over a block of THREADS threads (exact in any order); every
 * thread gets the result. The comparisons are the CPU's (a NaN never wins). */
static __device__ float block_max(float v)
{
    __shared__ float red[THREADS];
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float o = red[threadIdx.x + s];
            red[threadIdx.x] = o > red[threadIdx.x] ? o : red[threadIdx.x];
        }
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

static __device__ float block_min(float v)
{
    __shared__ float red[THREADS];
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float o = red[threadIdx.x + s];
            red[threadIdx.x] = o < red[threadIdx.x] ? o : red[threadIdx.x];
        }
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

/* The nearest map value's code: the number of midpoints strictly below v
 * (a tie goes to the lower code). The midpoints ascend, so a binary search
 * of eight halvings counts them; mid[255] is never read. */
static __device__ __forceinline__ int nearest_code(float v, const float *mid)
{
    int c = 0;
    for (int s = 128; s > 0; s >>= 1) c += v > mid[c + s - 1] ? s : 0;
    return c;
}

/* ---- dynamic map ------------------------------------------------------------- */

/* One block per quantization block: the absmax, then each value's code. */
static __global__ void quantize_dynamic_kernel(const float *x, long long n, long long block, long long nblocks,
                                        uint8_t *codes, float *absmax)
{
    /* the search reads scattered midpoints: shared memory serves them
     * without the serialisation of divergent constant-memory reads */
    __shared__ float mid[256];
    for (int k = threadIdx.x; k < 256; k += blockDim.x) mid[k] = c_mid[k];
    __syncthreads();
    for (long long b = blockIdx.x; b < nblocks; b += gridDim.x) {
        long long i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
        float a = 0;
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) a = fabsf(x[i]) > a ? fabsf(x[i]) : a;
        a = block_max(a);
        if (threadIdx.x == 0) absmax[b] = a;
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
            float v = a > 0 ? x[i] / a : 0.0f;
            codes[i] = (uint8_t)nearest_code(v, mid);
        }
    }
}

extern "C" void gv_cuda_quantize_dynamic(const float *x, int64_t n, int64_t block, uint8_t *codes, float *absmax)
{
    if (n <= 0) return;
    cudaStream_t st = gv_cuda_stream();
    ensure_tables(st);
    long long nblocks = (n + block - 1) / block;
    quantize_dynamic_kernel<<<block_grid(nblocks), THREADS, 0, st>>>(x, n, block, nblocks, codes, absmax);
    GV_CUDA_LAUNCHED("quantize_dynamic");
}

static __global__ void dequantize_dynamic_kernel(const uint8_t *codes, const float *absmax, long long n, long long block,
                                          float *out)
{
    __shared__ float map[256];
    for (int k = threadIdx.x; k < 256; k += blockDim.x) map[k] = c_map[k];
    __syncthreads();
    GRID_LOOP(i, n) out[i] = map[codes[i]] * absmax[i / block];
}

extern "C" void gv_cuda_dequantize_dynamic(const uint8_t *codes, const float *absmax, int64_t n, int64_t block,
                                           float *out)
{
    if (n <= 0) return;
    cudaStream_t st = gv_cuda_stream();
    ensure_tables(st);
    dequantize_dynamic_kernel<<<gv_cuda_blocks(n), THREADS, 0, st>>>(codes, absmax, n, block, out);
    GV_CUDA_LAUNCHED("dequantize_dynamic");
}

/* ---- affine ------------------------------------------------------------------------ */

/* One block per quantization block: min and step = (max − min)/255, then
 * code = round-half-up((x − min)/step), clamped to [0, 255] (a NaN to 0). */
static __global__ void quantize_affine_kernel(const float *x, long long n, long long block, long long nblocks,
                                       uint8_t *codes, float *min_step)
{
    for (long long b = blockIdx.x; b < nblocks; b += gridDim.x) {
        long long i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
        /* every thread starts from the block's first value, as the CPU
         * does, so threads without values change nothing */
        float lo = x[i0], hi = x[i0];
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        lo = block_min(lo);
        hi = block_max(hi);
        float step = (hi - lo) / 255.0f;
        if (threadIdx.x == 0) {
            min_step[2 * b] = lo;
            min_step[2 * b + 1] = step;
        }
        for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
            if (!(step > 0)) {
                codes[i] = 0;
                continue;
            }
            float v = (x[i] - lo) / step + 0.5f;
            v = v >= 0.0f ? v : 0.0f;
            v = v <= 255.0f ? v : 255.0f;
            codes[i] = (uint8_t)(int)v;
        }
    }
}

extern "C" void gv_cuda_quantize_affine(const float *x, int64_t n, int64_t block, uint8_t *codes, float *min_step)
{
    if (n <= 0) return;
    long long nblocks = (n + block - 1) / block;
    quantize_affine_kernel<<<block_grid(nblocks), THREADS, 0, gv_cuda_stream()>>>(x, n, block, nblocks, codes,
                                                                                  min_step);
    GV_CUDA_LAUNCHED("quantize_affine");
}

/* out = min + code·step, fused as the CPU build computes it (GCC contracts
 * the vectorised loop into an FMA under -march with FMA). */
static __global__ void dequantize_affine_kernel(const uint8_t *codes, const float *min_step, long long n, long long block,
                                         float *out)
{
    GRID_LOOP(i, n) {
        long long b = i / block;
        out[i] = __fmaf_rn((float)codes[i], min_step[2 * b + 1], min_step[2 * b]);
    }
}

extern "C" void gv_cuda_dequantize_affine(const uint8_t *codes, const float *min_step, int64_t n, int64_t block,
                                          float *out)
{
    if (n <= 0) return;
    dequantize_affine_kernel<<<gv_cuda_blocks(n), THREADS, 0, gv_cuda_stream()>>>(codes, min_step, n, block, out);
    GV_CUDA_LAUNCHED("dequantize_affine");
}

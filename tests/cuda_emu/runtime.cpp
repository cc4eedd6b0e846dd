/*
 * runtime.cpp — the CUDA emulator's engine: kernel launches on fibers, the
 * runtime API's memory and error calls, and cuBLAS on OpenBLAS. Device
 * memory is host memory, tracked, so that a kernel given a host pointer, a
 * copy in the wrong direction, or an access past an allocation is an error
 * rather than a silent success; fresh allocations are filled with 0xff bytes
 * (NaN as f32) so that a kernel reading what nobody wrote shows it.
 */
#include "device.hpp"

#include <cublas_v2.h>

extern "C" {
#include "internal.h" /* gv_blas_get: the OpenBLAS grove loaded */
}

#include <stdarg.h>

#include <algorithm>
#include <map>
#include <string>
#include <mutex>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <vector>

uint3 gv_emu_thread_idx, gv_emu_block_idx;
dim3 gv_emu_block_dim, gv_emu_grid_dim;

namespace {

/* ---- errors: the first one sticks until cudaGetLastError takes it ---- */
thread_local cudaError_t pending = cudaSuccess;

cudaError_t fail(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t fail(cudaError_t err, const char *fmt, ...)
{
    /* Emulator findings are bugs in the backend: say what and where. */
    va_list ap;
    va_start(ap, fmt);
    fputs("cuda emulator: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (pending == cudaSuccess) pending = err;
    return err;
}

/* ---- counters: GROVE_CUDA_EMULATOR_STATS=1 prints them at exit ----
 * Launches and waits are what a real GPU charges the host for (a launch
 * costs microseconds; a wait drains the queue), so these say how host-bound
 * a step would be before any GPU has run it. */
struct counters {
    unsigned long long launches, syncs, to_host, to_host_bytes, to_device, to_device_bytes;
    std::map<std::string, unsigned long long> by_kernel;
    ~counters()
    {
        const char *s = getenv("GROVE_CUDA_EMULATOR_STATS");
        if (!s || !*s || *s == '0') return;
        fprintf(stderr,
                "cuda emulator: %llu launches, %llu waits (stream or device synchronize), %llu copies to the "
                "host (%llu bytes), %llu copies to the device (%llu bytes)\n",
                launches, syncs, to_host, to_host_bytes, to_device, to_device_bytes);
        std::vector<std::pair<unsigned long long, std::string>> top;
        for (auto &e : by_kernel) top.push_back({e.second, e.first});
        std::sort(top.rbegin(), top.rend());
        for (size_t i = 0; i < top.size() && i < 40; i++)
            fprintf(stderr, "cuda emulator:   %8llu  %s\n", top[i].first, top[i].second.c_str());
    }
} stats;

/* ---- device memory ---- */
std::mutex mem_lock;
std::map<uintptr_t, size_t> allocations; /* base -> size */
size_t live_bytes;

size_t capacity()
{
    static size_t cap = [] {
        const char *s = getenv("GROVE_CUDA_EMULATOR_MEMORY");
        long long v = s ? atoll(s) : 0;
        return v > 0 ? (size_t)v : (size_t)4 << 30;
    }();
    return cap;
}

/* The allocation holding [p, p + n), or false. */
bool in_device(const void *p, size_t n)
{
    std::lock_guard<std::mutex> g(mem_lock);
    uintptr_t a = (uintptr_t)p;
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return false;
    --it;
    return a >= it->first && a + n <= it->first + it->second;
}

/* ---- fibers ----
 * A fiber switch saves the callee-saved registers on the fiber's own stack
 * and swaps stack pointers: a few nanoseconds, where swapcontext makes a
 * system call (to save the signal mask) on every switch, which made
 * barrier-heavy kernels take minutes. */
#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif
extern "C" void gv_emu_switch(void **save_sp, void *load_sp);
asm(R"(
    .text
    .globl gv_emu_switch
    .hidden gv_emu_switch
    .type gv_emu_switch, @function
gv_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gv_emu_switch, .-gv_emu_switch
)");

constexpr size_t STACK = 256 << 10;
constexpr int MAX_THREADS = 1024;

/* Fibers waiting at a barrier form a list (through fiber::next) that the
 * last arrival moves to the ready queue. */
struct barrier {
    int arrived = 0;
    int any = 0, any_result = 0;
    int head = -1, tail = -1;
};

struct fiber {
    void *sp;
    uint3 idx;
    int lane, warp;
    bool done;
    int next;
};

struct block_run {
    std::vector<fiber> fibers;
    std::vector<int> ready; /* a ring of fiber indices; each is queued at most once */
    size_t ready_head, ready_count;
    int live;
    std::vector<int> warp_live, warp_size;
    barrier block_bar;
    std::vector<barrier> warp_bars;
    std::vector<unsigned char> slots; /* 32 lanes x 8 bytes per warp */
    std::vector<unsigned char> shared;
    const char *kernel;
    bool broken;
};

void *scheduler_sp;
block_run *run_now;
fiber *current;
void (*body_now)(void *);
void *ctx_now;
std::vector<char *> stacks;
std::mutex launch_lock;

char *stack_of(int i)
{
    while ((int)stacks.size() <= i) {
        long page = sysconf(_SC_PAGESIZE);
        void *m = mmap(NULL, STACK + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("cuda emulator: stack");
            abort();
        }
        mprotect(m, page, PROT_NONE); /* guard: an overflow faults instead of corrupting */
        stacks.push_back((char *)m + page);
    }
    return stacks[i];
}

void make_ready(block_run &r, int i)
{
    r.ready[(r.ready_head + r.ready_count++) % r.ready.size()] = i;
}

/* Leaves the running fiber (saving it in *save) for the next ready one, or
 * for the scheduler when none is ready (the block is done, deadlocked or
 * broken). */
void switch_next(void **save)
{
    block_run &r = *run_now;
    if (r.ready_count == 0 || r.broken) {
        gv_emu_switch(save, scheduler_sp);
        return;
    }
    fiber &f = r.fibers[r.ready[r.ready_head]];
    r.ready_head = (r.ready_head + 1) % r.ready.size();
    r.ready_count--;
    current = &f;
    gv_emu_thread_idx = f.idx;
    gv_emu_switch(save, f.sp);
}

void release(barrier &b)
{
    block_run &r = *run_now;
    for (int i = b.head; i >= 0; i = r.fibers[i].next) make_ready(r, i);
    b.head = b.tail = -1;
    b.any_result = b.any;
    b.any = 0;
    b.arrived = 0;
}

/* Waits until `expected` fibers have arrived at b. */
void arrive(barrier &b, int expected)
{
    if (++b.arrived >= expected) {
        release(b);
        return;
    }
    fiber &f = *current;
    f.next = -1;
    int self = (int)(&f - run_now->fibers.data());
    if (b.tail >= 0) run_now->fibers[b.tail].next = self;
    else b.head = self;
    b.tail = self;
    switch_next(&f.sp);
}

[[noreturn]] void fiber_main()
{
    body_now(ctx_now);
    block_run &r = *run_now;
    fiber &f = *current;
    f.done = true;
    r.live--;
    r.warp_live[f.warp]--;
    /* Threads that have returned no longer hold a block barrier back (as on
     * the hardware), but a warp shuffle with a lane gone is undefined. */
    if (r.block_bar.arrived > 0 && r.block_bar.arrived >= r.live) release(r.block_bar);
    if (r.warp_bars[f.warp].arrived > 0) {
        fail(cudaErrorLaunchFailure, "%s: thread (%u,%u,%u) of block (%u,%u,%u) returned while its warp waits in a shuffle",
             r.kernel, f.idx.x, f.idx.y, f.idx.z, blockIdx.x, blockIdx.y, blockIdx.z);
        r.broken = true;
    }
    void *dead;
    switch_next(&dead); /* never resumed */
    __builtin_unreachable();
}

/* A fresh stack whose first switch "returns" into fiber_main, entered as if
 * called (the stack 16-byte aligned before the fake return address). */
void start_fiber(fiber &f, char *stack)
{
    f.done = false;
    f.next = -1;
    uintptr_t top = ((uintptr_t)stack + STACK) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = nullptr;                    /* fiber_main's return address: it never returns */
    *--sp = (void *)&fiber_main;        /* where gv_emu_switch's ret goes */
    for (int i = 0; i < 6; i++) *--sp = nullptr; /* rbp rbx r12 r13 r14 r15 */
    f.sp = sp;
}

} // namespace

namespace gv_emu {

void check_device_pointer(const void *p, const char *kernel, int arg)
{
    if (p && !in_device(p, 0))
        fail(cudaErrorInvalidDevicePointer, "%s: argument %d (%p) is not device memory", kernel, arg, p);
}

void sync_block() { arrive(run_now->block_bar, run_now->live); }

int sync_block_or(int predicate)
{
    barrier &b = run_now->block_bar;
    if (predicate) b.any = 1;
    arrive(b, run_now->live);
    return b.any_result;
}

void warp_exchange(unsigned int mask, const void *mine, void *theirs, size_t size, int lane_xor)
{
    block_run &r = *run_now;
    fiber &f = *current;
    if (mask != 0xffffffffu || r.warp_size[f.warp] != 32 || r.warp_live[f.warp] != 32) {
        fail(cudaErrorLaunchFailure, "%s: block (%u,%u,%u): a full-mask shuffle in warp %d with %d of %d lanes live",
             r.kernel, blockIdx.x, blockIdx.y, blockIdx.z, f.warp, r.warp_live[f.warp], r.warp_size[f.warp]);
        r.broken = true;
        memcpy(theirs, mine, size);
        return;
    }
    unsigned char *slots = &r.slots[(size_t)f.warp * 32 * 8];
    memcpy(slots + f.lane * 8, mine, size);
    arrive(r.warp_bars[f.warp], r.warp_live[f.warp]);
    memcpy(theirs, slots + (f.lane ^ (lane_xor & 31)) * 8, size);
    arrive(r.warp_bars[f.warp], r.warp_live[f.warp]); /* nobody overwrites a slot before all have read */
}

void *dynamic_shared() { return run_now->shared.data(); }

void run_grid(const config &c, void (*body)(void *), void *ctx, const char *kernel)
{
    const dim3 g = c.grid, b = c.block;
    const unsigned long long nthreads = (unsigned long long)b.x * b.y * b.z;
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535 || g.x > 2147483647u || nthreads == 0 ||
        nthreads > MAX_THREADS || b.x > 1024 || b.y > 1024 || b.z > 64) {
        fail(cudaErrorInvalidConfiguration, "%s: launch grid (%u,%u,%u) block (%u,%u,%u) is not a valid configuration",
             kernel, g.x, g.y, g.z, b.x, b.y, b.z);
        return;
    }
    if (c.shared > 48 * 1024) {
        fail(cudaErrorInvalidValue, "%s: %zu bytes of dynamic shared memory (48 KiB without an opt-in)", kernel,
             c.shared);
        return;
    }
    std::lock_guard<std::mutex> guard(launch_lock);
    stats.launches++;
    stats.by_kernel[kernel]++;
    block_run r;
    r.kernel = kernel;
    r.broken = false;
    const int n = (int)nthreads, nwarps = (n + 31) / 32;
    r.fibers.resize(n);
    r.ready.resize(n);
    r.warp_bars.resize(nwarps);
    r.warp_live.resize(nwarps);
    r.warp_size.resize(nwarps);
    r.slots.resize((size_t)nwarps * 32 * 8);
    r.shared.assign(c.shared, 0xff);
    for (int i = 0; i < n; i++) stack_of(i);
    run_now = &r;
    body_now = body;
    ctx_now = ctx;
    gv_emu_block_dim = b;
    gv_emu_grid_dim = g;
    for (unsigned bz = 0; bz < g.z && !r.broken; bz++)
        for (unsigned by = 0; by < g.y && !r.broken; by++)
            for (unsigned bx = 0; bx < g.x && !r.broken; bx++) {
                gv_emu_block_idx = uint3{bx, by, bz};
                r.live = n;
                r.block_bar = barrier();
                for (int w = 0; w < nwarps; w++) {
                    r.warp_bars[w] = barrier();
                    r.warp_size[w] = r.warp_live[w] = n - w * 32 < 32 ? n - w * 32 : 32;
                }
                r.ready_head = r.ready_count = 0;
                for (int i = 0; i < n; i++) {
                    fiber &f = r.fibers[i];
                    f.idx = uint3{(unsigned)i % b.x, (unsigned)i / b.x % b.y, (unsigned)i / (b.x * b.y)};
                    f.lane = i % 32;
                    f.warp = i / 32;
                    start_fiber(f, stacks[i]);
                    make_ready(r, i);
                }
                /* Runs fibers until none is ready: done, broken or deadlocked. */
                switch_next(&scheduler_sp);
                if (r.live > 0 && !r.broken) {
                    fail(cudaErrorLaunchFailure,
                         "%s: block (%u,%u,%u) deadlocks: %d threads wait at barriers the others never reach", kernel,
                         bx, by, bz, r.live);
                    r.broken = true;
                }
            }
    run_now = nullptr;
    current = nullptr;
}

} // namespace gv_emu

/* ---- the runtime API ---- */
extern "C" {

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: no device %d", device);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "grove CUDA emulator (CPU)");
    prop->totalGlobalMem = capacity();
    prop->sharedMemPerBlock = 48 * 1024;
    prop->multiProcessorCount = 1;
    prop->maxThreadsPerBlock = MAX_THREADS;
    prop->major = 9;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    std::lock_guard<std::mutex> g(mem_lock);
    *total_bytes = capacity();
    *free_bytes = capacity() - live_bytes;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = pending;
    pending = cudaSuccess;
    return e;
}

const char *cudaGetErrorName(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    static int one;
    *stream = (cudaStream_t)&one;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    stats.syncs++;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    stats.syncs++;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    *ptr = NULL;
    std::lock_guard<std::mutex> g(mem_lock);
    if (size > capacity() - live_bytes) return cudaErrorMemoryAllocation; /* as the runtime: no message */
    size_t rounded = (size + 255) / 256 * 256;
    void *p = aligned_alloc(256, rounded ? rounded : 256);
    if (!p) return cudaErrorMemoryAllocation;
    memset(p, 0xff, rounded ? rounded : 256);
    allocations[(uintptr_t)p] = size;
    live_bytes += size;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    if (!ptr) return cudaSuccess;
    std::lock_guard<std::mutex> g(mem_lock);
    auto it = allocations.find((uintptr_t)ptr);
    if (it == allocations.end()) {
        pending = cudaErrorInvalidDevicePointer;
        fprintf(stderr, "cuda emulator: cudaFree(%p): not an allocation\n", ptr);
        return cudaErrorInvalidDevicePointer;
    }
    live_bytes -= it->second;
    allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

static cudaError_t copy(const char *what, void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    if (count == 0) return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) dst_dev = in_device(dst, count), src_dev = in_device(src, count);
    if (in_device(dst, count) != dst_dev || in_device(src, count) != src_dev)
        return fail(cudaErrorInvalidValue, "%s of %zu bytes, kind %d: destination %p is %s, source %p is %s", what,
                    count, (int)kind, dst, in_device(dst, count) ? "device memory" : "not device memory", src,
                    in_device(src, count) ? "device memory" : "not device memory");
    memmove(dst, src, count);
    if (src_dev && !dst_dev) stats.to_host++, stats.to_host_bytes += count;
    if (dst_dev && !src_dev) stats.to_device++, stats.to_device_bytes += count;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    return copy("cudaMemcpy", dst, src, count, kind);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream)
{
    (void)stream;
    return copy("cudaMemcpyAsync", dst, src, count, kind);
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream)
{
    (void)stream;
    if (count == 0) return cudaSuccess;
    if (!in_device(dst, count))
        return fail(cudaErrorInvalidValue, "cudaMemsetAsync of %zu bytes at %p: not inside one allocation", count, dst);
    memset(dst, value, count);
    return cudaSuccess;
}

struct gv_emu_event {
    double ms;
    bool recorded;
};

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    *event = new gv_emu_event{0, false};
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    (void)stream;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    event->ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    event->recorded = true;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) { return event ? cudaSuccess : cudaErrorInvalidValue; }

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start || !end || !start->recorded || !end->recorded)
        return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: an event that was not recorded");
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

/* ---- cuBLAS (column-major, as cuBLAS) ---- */
static int blas_handle;

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    *handle = (cublasHandle_t)&blas_handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    (void)stream;
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    (void)mode; /* TF32 is not emulated: the emulator always computes in f32 */
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

/* Elements an op(X) of rows x cols with leading dimension ld spans. */
static size_t span(cublasOperation_t op, int rows, int cols, int ld)
{
    int r = op == CUBLAS_OP_N ? rows : cols, c = op == CUBLAS_OP_N ? cols : rows;
    return c == 0 || r == 0 ? 0 : (size_t)ld * (size_t)(c - 1) + (size_t)r;
}

static cublasStatus_t check_gemm(const char *what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 const void *A, int lda, const void *B, int ldb, const void *C, int ldc, size_t esz_ab,
                                 size_t esz_c)
{
    if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
        ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) || ldc < (m > 1 ? m : 1)) {
        fail(cudaErrorInvalidValue, "%s: invalid sizes m %d n %d k %d lda %d ldb %d ldc %d", what, m, n, k, lda, ldb,
             ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!in_device(A, span(ta, m, k, lda) * esz_ab) || !in_device(B, span(tb, k, n, ldb) * esz_ab) ||
        !in_device(C, span(CUBLAS_OP_N, m, n, ldc) * esz_c)) {
        fail(cudaErrorInvalidDevicePointer, "%s: an operand is not inside device memory", what);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

static int trans(cublasOperation_t op) { return op == CUBLAS_OP_N ? GV_CBLAS_NO_TRANS : GV_CBLAS_TRANS; }

/* OpenBLAS's own cblas_sgemm, column-major (cuBLAS's order). */
static bool sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc)
{
    const gv_blas *blas = gv_blas_get();
    if (!blas) return false;
    blas->cblas_sgemm(102 /* CblasColMajor */, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return true;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = check_gemm("cublasSgemm", transa, transb, m, n, k, A, lda, B, ldb, C, ldc, 4, 4);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (m && n && !sgemm(trans(transa), trans(transb), m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb, long long int strideB,
                                         const float *beta, float *C, int ldc, long long int strideC, int batchCount)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (int i = 0; i < batchCount; i++) {
        cublasStatus_t st = cublasSgemm_v2(handle, transa, transb, m, n, k, alpha, A + i * strideA, lda,
                                           B + i * strideB, ldb, beta, C + i * strideC, ldc);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}

static float load(const void *p, cudaDataType t, size_t i)
{
    if (t == CUDA_R_16BF) return __builtin_bit_cast(float, (uint32_t)((const uint16_t *)p)[i] << 16);
    return ((const float *)p)[i];
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (Atype != Btype || (Atype != CUDA_R_16BF && Atype != CUDA_R_32F) || Ctype != CUDA_R_32F ||
        computeType != CUBLAS_COMPUTE_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    size_t esz = Atype == CUDA_R_16BF ? 2 : 4;
    cublasStatus_t st = check_gemm("cublasGemmEx", transa, transb, m, n, k, A, lda, B, ldb, C, ldc, esz, 4);
    if (st != CUBLAS_STATUS_SUCCESS || !m || !n) return st;
    /* bf16 products are exact in f32; the sum accumulates in f32 (OpenBLAS). */
    size_t na = span(transa, m, k, lda), nb = span(transb, k, n, ldb);
    std::vector<float> a(na), b(nb);
    for (size_t i = 0; i < na; i++) a[i] = load(A, Atype, i);
    for (size_t i = 0; i < nb; i++) b[i] = load(B, Btype, i);
    if (!sgemm(trans(transa), trans(transb), m, n, k, *(const float *)alpha, a.data(), lda, b.data(), ldb,
               *(const float *)beta, (float *)C, ldc))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"

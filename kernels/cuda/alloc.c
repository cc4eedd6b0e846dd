/*
 * alloc.c — the caching device allocator. cudaMalloc and cudaFree are slow
 * (cudaFree also waits for the whole device), and a training step frees and
 * re-allocates the same activation sizes every time; so freed blocks are
 * kept in per-size free lists and handed out again for the same rounded
 * size. Sizes round up to 512 bytes up to 1 MiB and to 2 MiB above, so a
 * size class holds blocks of one size exactly.
 *
 * Stream order: all device work runs on the single grove stream
 * (context.c). A block freed here while kernels queued earlier on that
 * stream may still read or write it goes straight back to its free list;
 * whoever takes it next can only touch it through work queued on the same
 * stream after those kernels (kernels, cudaMemcpyAsync on the stream), so
 * it never runs before they finish. This holds only with one stream: a
 * second stream would need an event per block.
 *
 * When cudaMalloc runs out of memory, the whole cache is released (cudaFree
 * synchronises the device, so no queued kernel still uses those blocks) and
 * the allocation is tried once more; then it fails with a grove error and
 * the process goes on.
 */
#include "gpu.h"

#include <cuda_runtime.h>

#include <pthread.h>
#include <stdlib.h>

#define SMALL_LIMIT ((int64_t)1 << 20)
#define SMALL_QUANTUM ((int64_t)512)
#define LARGE_QUANTUM ((int64_t)2 << 20)
#define SMALL_CLASSES (SMALL_LIMIT / SMALL_QUANTUM)

typedef struct block {
    void *ptr;
    struct block *next;
} block;

/* Large sizes are sparse: a list of classes, each with its free blocks. */
typedef struct large_class {
    int64_t size;
    block *free;
    struct large_class *next;
} large_class;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block *small_free[SMALL_CLASSES]; /* class i holds blocks of (i + 1) * 512 bytes */
static large_class *large;
static int64_t cached;

static int64_t round_size(int64_t n)
{
    if (n < 1) n = 1;
    if (n <= SMALL_LIMIT) return (n + SMALL_QUANTUM - 1) / SMALL_QUANTUM * SMALL_QUANTUM;
    return (n + LARGE_QUANTUM - 1) / LARGE_QUANTUM * LARGE_QUANTUM;
}

/* The free list for a size; creates a large class when asked to. */
static block **free_list(int64_t size, int create)
{
    if (size <= SMALL_LIMIT) return &small_free[size / SMALL_QUANTUM - 1];
    for (large_class *c = large; c; c = c->next)
        if (c->size == size) return &c->free;
    if (!create) return NULL;
    large_class *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->size = size;
    c->next = large;
    large = c;
    return &c->free;
}

static void *cache_take(int64_t size)
{
    void *p = NULL;
    pthread_mutex_lock(&lock);
    block **l = free_list(size, 0);
    if (l && *l) {
        block *b = *l;
        *l = b->next;
        p = b->ptr;
        free(b);
        cached -= size;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

/* Frees every cached block (caller holds the lock); returns the bytes freed. */
static int64_t release_all_locked(void)
{
    int64_t freed = cached;
    for (int64_t i = 0; i < SMALL_CLASSES; i++) {
        while (small_free[i]) {
            block *b = small_free[i];
            small_free[i] = b->next;
            cudaFree(b->ptr);
            free(b);
        }
    }
    while (large) {
        large_class *c = large;
        while (c->free) {
            block *b = c->free;
            c->free = b->next;
            cudaFree(b->ptr);
            free(b);
        }
        large = c->next;
        free(c);
    }
    cached = 0;
    return freed;
}

void gv_gpu_empty_cache(void)
{
    pthread_mutex_lock(&lock);
    release_all_locked();
    pthread_mutex_unlock(&lock);
}

int64_t gv_gpu_cached_bytes(void)
{
    pthread_mutex_lock(&lock);
    int64_t c = cached;
    pthread_mutex_unlock(&lock);
    return c;
}

static double mib(int64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

void *gv_gpu_alloc(int64_t nbytes, int64_t *got)
{
    if (!gv_gpu_require("cuda")) return NULL;
    int64_t size = round_size(nbytes);
    void *p = cache_take(size);
    if (p) {
#ifdef GROVE_CUDA_EMULATOR
        /* The emulator (tests/cuda_emu) fills fresh blocks with NaN to show a
         * kernel reading what nobody wrote; a reused block gets the same. */
        cudaMemsetAsync(p, 0xff, (size_t)size, 0);
#endif
        *got = size;
        return p;
    }
    cudaError_t err = cudaMalloc(&p, (size_t)size);
    int64_t was_cached = 0;
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* clears the (non-sticky) error */
        pthread_mutex_lock(&lock);
        was_cached = release_all_locked();
        pthread_mutex_unlock(&lock);
        err = cudaMalloc(&p, (size_t)size);
    }
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        struct cudaDeviceProp prop;
        const char *name = cudaGetDeviceProperties(&prop, 0) == cudaSuccess ? prop.name : "device 0";
        return gv_fail_null("cuda: out of memory allocating %.1f MiB (free %.0f MiB of %.0f MiB on %s, %.0f MiB "
                            "cached by grove)",
                            mib(size), mib((int64_t)free_b), mib((int64_t)total_b), name, mib(was_cached));
    }
    if (err != cudaSuccess) {
        cudaGetLastError();
        return gv_fail_null("cuda: cudaMalloc of %.1f MiB failed: %s", mib(size), cudaGetErrorString(err));
    }
    *got = size;
    return p;
}

void gv_gpu_free(void *p, int64_t nbytes)
{
    if (!p) return;
    int64_t size = round_size(nbytes);
    block *b = malloc(sizeof *b);
    pthread_mutex_lock(&lock);
    block **l = b ? free_list(size, 1) : NULL;
    if (l) {
        b->ptr = p;
        b->next = *l;
        *l = b;
        cached += size;
        p = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (p) { /* no memory for the bookkeeping: give the block back instead */
        free(b);
        cudaFree(p);
    }
}

/*
 * storage.c — refcounted, 64-byte aligned buffers with per-device byte
 * counters, and a cache for large CPU blocks: glibc returns big freed blocks
 * to the OS, so without the cache every training step's activations would
 * page-fault afresh. CUDA storages hold a device pointer from the caching
 * device allocator (kernels/cuda/alloc.c); their bytes count for GROVE_CUDA.
 */
#include "gpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

enum { ALIGN = 64 };
/* Blocks at least this big go through the cache (glibc serves them with
 * mmap, so each fresh one page-faults); their sizes are rounded up to pages. */
#define CACHE_MIN ((int64_t)1 << 16)
#define CACHE_QUANTUM ((int64_t)1 << 12)
#define CACHE_SLOTS 1024
#define CACHE_MAX_BYTES ((int64_t)2 << 30)
/* No single allocation may exceed this (2^46 bytes = 64 TiB): larger requests
 * are certainly mistakes and would overflow size arithmetic downstream. */
#define MAX_ALLOC ((int64_t)1 << 46)

static _Atomic int64_t live_bytes[GROVE_DEVICE_COUNT];
static _Atomic int64_t peak_bytes[GROVE_DEVICE_COUNT];
static _Atomic int64_t live_tensors;
static _Atomic int64_t live_nodes;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { void *ptr; int64_t nbytes; } cache[CACHE_SLOTS];
static int cache_count;
static int64_t cache_bytes;

void gv_count_tensor(int delta) { atomic_fetch_add(&live_tensors, delta); }
void gv_count_node(int delta) { atomic_fetch_add(&live_nodes, delta); }

static void count_bytes(int32_t device, int64_t delta)
{
    int64_t now = atomic_fetch_add(&live_bytes[device], delta) + delta;
    int64_t peak = atomic_load(&peak_bytes[device]);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes[device], &peak, now)) {}
}

/* The smallest cached block that fits without wasting more than a quarter;
 * its real size goes to *got. */
static void *cache_take(int64_t nbytes, int64_t *got)
{
    void *p = NULL;
    int best = -1;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_count; i++) {
        int64_t sz = cache[i].nbytes;
        if (sz >= nbytes && sz <= nbytes + nbytes / 4 && (best < 0 || sz < cache[best].nbytes)) {
            best = i;
            if (sz == nbytes) break;
        }
    }
    if (best >= 0) {
        p = cache[best].ptr;
        *got = cache[best].nbytes;
        cache_bytes -= *got;
        cache[best] = cache[--cache_count];
    }
    pthread_mutex_unlock(&cache_lock);
    return p;
}

static void cache_put(void *p, int64_t nbytes)
{
    pthread_mutex_lock(&cache_lock);
    /* Evict the oldest entries until the new block fits. */
    while (cache_count > 0 && (cache_count == CACHE_SLOTS || cache_bytes + nbytes > CACHE_MAX_BYTES)) {
        free(cache[0].ptr);
        cache_bytes -= cache[0].nbytes;
        memmove(&cache[0], &cache[1], (size_t)(cache_count - 1) * sizeof cache[0]);
        cache_count--;
    }
    if (nbytes <= CACHE_MAX_BYTES) {
        cache[cache_count].ptr = p;
        cache[cache_count].nbytes = nbytes;
        cache_count++;
        cache_bytes += nbytes;
        p = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
    free(p);
}

void grove_memory_empty_cache(int32_t device)
{
    if (device == GROVE_CUDA) gv_gpu_empty_cache();
    if (device != GROVE_CPU) return;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_count; i++) free(cache[i].ptr);
    cache_count = 0;
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
}

/* Blocks at least this big are aligned to 2 MiB and asked to be backed by
 * transparent huge pages (where the kernel leaves that to madvise, as
 * Debian's does): a fresh block then faults once per 2 MiB instead of once
 * per 4 KiB page. On the virtual machine the CPU figures come from, a page
 * fault takes about 20 us, so filling a fresh 1 GiB block took 5.7 s with
 * 4 KiB pages and 0.12 s with huge ones (warm: 0.07 s); every first touch
 * of a large activation paid that (docs/performance.md, "The DC-AE
 * decode: Winograd 3×3 convolutions and huge pages"). */
#define HUGE_MIN ((int64_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

static void *block_alloc(int64_t size)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (size >= HUGE_MIN) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_ALIGN, (size_t)size) != 0) return NULL;
        madvise(p, (size_t)size, MADV_HUGEPAGE); /* advice only: a refusal changes nothing */
        return p;
    }
#endif
    return aligned_alloc(ALIGN, (size_t)size);
}

static int64_t rounded(int64_t nbytes)
{
    if (nbytes >= CACHE_MIN) return (nbytes + CACHE_QUANTUM - 1) / CACHE_QUANTUM * CACHE_QUANTUM;
    return (nbytes + ALIGN - 1) / ALIGN * ALIGN;
}

/* A device storage: data is the device pointer, nbytes the block's size. */
static grove_storage *cuda_storage_new(int64_t nbytes)
{
    if (nbytes < 0 || nbytes > MAX_ALLOC)
        return gv_fail_null("cuda: out of memory: cannot allocate %lld bytes", (long long)nbytes);
    grove_storage *s = malloc(sizeof *s);
    if (!s) return gv_fail_null("out of memory: cannot allocate a storage header");
    int64_t size = 0;
    void *p = gv_gpu_alloc(nbytes, &size);
    if (!p) {
        free(s);
        return NULL;
    }
    s->data = p;
    s->nbytes = size;
    s->device = GROVE_CUDA;
    s->refcount = 1;
    count_bytes(GROVE_CUDA, size);
    return s;
}

grove_storage *gv_storage_new(int64_t nbytes, int32_t device)
{
    if (device == GROVE_CUDA) return cuda_storage_new(nbytes);
    if (device != GROVE_CPU) return gv_fail_null("device %d: no such device", device);
    if (nbytes < 0 || nbytes > MAX_ALLOC)
        return gv_fail_null("out of memory: cannot allocate %lld bytes on cpu", (long long)nbytes);
    grove_storage *s = malloc(sizeof *s);
    if (!s) return gv_fail_null("out of memory: cannot allocate a storage header");
    int64_t size = rounded(nbytes > 0 ? nbytes : 1);
    void *p = size >= CACHE_MIN ? cache_take(size, &size) : NULL;
    if (!p) p = block_alloc(size);
    if (!p) {
        grove_memory_empty_cache(device); /* the cache may be what stands in the way */
        p = block_alloc(size);
    }
    if (!p) {
        free(s);
        return gv_fail_null("out of memory: cannot allocate %lld bytes on cpu", (long long)nbytes);
    }
    s->data = p;
    s->nbytes = size;
    s->device = device;
    s->refcount = 1;
    count_bytes(device, size);
    return s;
}

void gv_storage_retain(grove_storage *s)
{
    if (s) __atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED);
}

void gv_storage_release(grove_storage *s)
{
    if (!s || __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
    count_bytes(s->device, -s->nbytes);
    if (s->device == GROVE_CUDA) gv_gpu_free(s->data, s->nbytes);
    else if (s->nbytes >= CACHE_MIN) cache_put(s->data, s->nbytes);
    else free(s->data);
    free(s);
}

grove_status grove_memory(int32_t device, grove_memory_stats *out)
{
    if (device < 0 || device >= GROVE_DEVICE_COUNT) return gv_fail("memory: no device %d", device);
    if (!out) return gv_fail("memory: NULL output");
    out->live_bytes = atomic_load(&live_bytes[device]);
    out->peak_bytes = atomic_load(&peak_bytes[device]);
    pthread_mutex_lock(&cache_lock);
    out->cached_bytes = device == GROVE_CPU ? cache_bytes : 0;
    pthread_mutex_unlock(&cache_lock);
    if (device == GROVE_CUDA) out->cached_bytes = gv_gpu_cached_bytes();
    out->live_tensors = atomic_load(&live_tensors);
    out->live_nodes = atomic_load(&live_nodes);
    return 0;
}

int64_t grove_memory_live_total(void)
{
    int64_t n = 0;
    for (int d = 0; d < GROVE_DEVICE_COUNT; d++) n += atomic_load_explicit(&live_bytes[d], memory_order_relaxed);
    return n;
}

void grove_memory_reset_peak(int32_t device)
{
    if (device >= 0 && device < GROVE_DEVICE_COUNT)
        atomic_store(&peak_bytes[device], atomic_load(&live_bytes[device]));
}

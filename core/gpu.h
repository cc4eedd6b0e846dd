/*
 * gpu.h — the CUDA runtime as the core sees it: device memory, transfers
 * and events, without a CUDA type in sight (kernels, copies and fills on a
 * device go through the kernel table, core/backend.h), so that the core files
 * compile the same with and without CUDA. kernels/cuda/runtime.c implements
 * it on the CUDA runtime; core/cuda_off.c, in a build without CUDA, fails
 * every call with "this build has no CUDA". Functions returning a status set
 * the grove error (naming op where given) and return -1 on failure.
 */
#ifndef GROVE_CORE_GPU_H
#define GROVE_CORE_GPU_H

#include "internal.h"

/* True when a CUDA device can be used; otherwise false with the error set to
 * op + ": no CUDA device (grove.cuda.device_count() == 0)" or the no-CUDA-build
 * message. */
bool gv_gpu_require(const char *op);

/* The caching allocator (kernels/cuda/alloc.c). Rounds nbytes up and puts
 * the block's real size in *got; NULL with the out-of-memory error set. */
void *gv_gpu_alloc(int64_t nbytes, int64_t *got);
/* Returns a block of gv_gpu_alloc (its real size) to the cache. */
void gv_gpu_free(void *p, int64_t nbytes);
/* Bytes kept in the cache, and handing them back to the driver. */
int64_t gv_gpu_cached_bytes(void);
void gv_gpu_empty_cache(void);

/* Contiguous transfers on the stream. A download waits for the stream, so
 * the host may read dst on return. */
grove_status gv_gpu_upload(const char *op, void *dst, const void *src, int64_t nbytes);
grove_status gv_gpu_download(const char *op, void *dst, const void *src, int64_t nbytes);

/* Events on the stream, for the profiler: a recorded event (NULL with the
 * error set), the milliseconds from a to b (waits for b; negative with the
 * error set on failure), and freeing one. */
void *gv_gpu_event_record(void);
double gv_gpu_event_ms(void *a, void *b);
void gv_gpu_event_free(void *e);

/* ---- device-generic helpers (core/device.c) ---------------------------------- */
/* Strided copy with conversion on one device (CPU or CUDA). */
grove_status gv_copy_strided(const char *op, int32_t device, int32_t ndim, const int64_t *shape, void *dst,
                             const int64_t *dst_stride, int32_t dst_dtype, const void *src,
                             const int64_t *src_stride, int32_t src_dtype);
/* A contiguous copy of t's values on device (same dtype, not on the tape);
 * t itself (retained) when it already is contiguous there. */
grove_tensor *gv_on_device(const char *op, const grove_tensor *t, int32_t device);
/* "cpu" or "cuda". */
const char *gv_device_name(int32_t device);

#endif

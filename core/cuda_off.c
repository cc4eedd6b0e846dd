/*
 * cuda_off.c — compiled only when the build has no CUDA (CMake's GROVE_CUDA
 * OFF, or AUTO without nvcc), in place of kernels/cuda: no device is ever
 * present, and every request for CUDA memory or work says why.
 */
#include "gpu.h"

#define NO_CUDA "this build has no CUDA (configure with -DGROVE_CUDA=ON where nvcc is installed)"

int32_t grove_cuda_device_count(void) { return 0; }

bool gv_gpu_require(const char *op)
{
    gv_fail("%s: " NO_CUDA, op ? op : "cuda");
    return false;
}

grove_status grove_cuda_device_info(int32_t i, char *name, int64_t name_len, int64_t *total_bytes,
                                    int64_t *free_bytes)
{
    GV_UNUSED(i), GV_UNUSED(name), GV_UNUSED(name_len), GV_UNUSED(total_bytes), GV_UNUSED(free_bytes);
    return gv_fail("cuda: " NO_CUDA);
}

/* Nothing can have been queued. */
grove_status grove_cuda_synchronize(void) { return 0; }

void grove_cuda_set_tf32(int32_t on) { GV_UNUSED(on); }

void *gv_gpu_alloc(int64_t nbytes, int64_t *got)
{
    GV_UNUSED(nbytes), GV_UNUSED(got);
    gv_gpu_require("cuda");
    return NULL;
}

void gv_gpu_free(void *p, int64_t nbytes) { GV_UNUSED(p), GV_UNUSED(nbytes); }

int64_t gv_gpu_cached_bytes(void) { return 0; }

void gv_gpu_empty_cache(void) {}

/* No CUDA tensor can exist in this build, so these are never reached with
 * real data; they still fail cleanly. */
grove_status gv_gpu_upload(const char *op, void *dst, const void *src, int64_t nbytes)
{
    GV_UNUSED(dst), GV_UNUSED(src), GV_UNUSED(nbytes);
    return gv_gpu_require(op) ? 0 : -1;
}

grove_status gv_gpu_download(const char *op, void *dst, const void *src, int64_t nbytes)
{
    GV_UNUSED(dst), GV_UNUSED(src), GV_UNUSED(nbytes);
    return gv_gpu_require(op) ? 0 : -1;
}

void *gv_gpu_event_record(void)
{
    gv_gpu_require("profile");
    return NULL;
}

double gv_gpu_event_ms(void *a, void *b)
{
    GV_UNUSED(a), GV_UNUSED(b);
    gv_gpu_require("profile");
    return -1;
}

void gv_gpu_event_free(void *e) { GV_UNUSED(e); }

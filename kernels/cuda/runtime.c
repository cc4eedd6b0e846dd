/*
 * runtime.c — core/gpu.h on the CUDA runtime (device 0, the one stream of
 * context.c), and the public device queries of grove.h.
 */
#include "gpu.h"

#include "context.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t count_once = PTHREAD_ONCE_INIT;
static int32_t device_count;

/* Asked once: without a driver or a GPU the runtime reports an error, which
 * means "no device" here (nothing is printed). */
static void count_devices(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
    cudaGetLastError();
    device_count = n;
}

int32_t grove_cuda_device_count(void)
{
    pthread_once(&count_once, count_devices);
    return device_count;
}

bool gv_gpu_require(const char *op)
{
    if (grove_cuda_device_count() > 0) return true;
    gv_fail("%s: no CUDA device (grove.cuda.device_count() == 0)", op ? op : "cuda");
    return false;
}

grove_status grove_cuda_device_info(int32_t i, char *name, int64_t name_len, int64_t *total_bytes,
                                    int64_t *free_bytes)
{
    int32_t n = grove_cuda_device_count();
    if (i < 0 || i >= n) return gv_fail("cuda: no device %d (%d CUDA devices)", i, n);
    struct cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties(&prop, i);
    if (err != cudaSuccess) return gv_fail("cuda: device %d: %s", i, cudaGetErrorString(err));
    if (name && name_len > 0) {
        strncpy(name, prop.name, (size_t)name_len - 1);
        name[name_len - 1] = '\0';
    }
    if (total_bytes) *total_bytes = (int64_t)prop.totalGlobalMem;
    if (free_bytes) {
        /* Free memory is only known for the current device (0, grove's). */
        size_t f = 0, t = 0;
        *free_bytes = -1;
        if (i == 0 && cudaMemGetInfo(&f, &t) == cudaSuccess) *free_bytes = (int64_t)f;
        cudaGetLastError();
    }
    return 0;
}

grove_status grove_cuda_synchronize(void)
{
    if (grove_cuda_device_count() == 0) return 0; /* nothing can have been queued */
    gv_cuda_record(cudaStreamSynchronize(gv_cuda_stream()), "synchronize");
    return gv_cuda_take_error();
}

/* Reports a failure of what, naming op. */
static grove_status check(const char *op, cudaError_t err, const char *what)
{
    gv_cuda_record(err, what);
    if (gv_cuda_take_error() == 0) return 0;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", grove_last_error()); /* gv_fail writes the buffer it would read */
    return gv_fail("%s: %s", op, msg);
}

grove_status gv_gpu_upload(const char *op, void *dst, const void *src, int64_t nbytes)
{
    if (nbytes <= 0) return 0;
    return check(op, cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyHostToDevice, gv_cuda_stream()),
                 "copy to the device");
}

grove_status gv_gpu_download(const char *op, void *dst, const void *src, int64_t nbytes)
{
    if (nbytes <= 0) return 0;
    cudaStream_t s = gv_cuda_stream();
    if (check(op, cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyDeviceToHost, s), "copy to the host"))
        return -1;
    /* the host reads dst next: wait for the copy (and everything before it) */
    return check(op, cudaStreamSynchronize(s), "copy to the host");
}

void *gv_gpu_event_record(void)
{
    cudaEvent_t ev;
    if (check("profile", cudaEventCreate(&ev), "creating an event")) return NULL;
    if (check("profile", cudaEventRecord(ev, gv_cuda_stream()), "recording an event")) {
        cudaEventDestroy(ev);
        return NULL;
    }
    return (void *)ev;
}

double gv_gpu_event_ms(void *a, void *b)
{
    float ms = 0;
    if (check("profile", cudaEventSynchronize((cudaEvent_t)b), "waiting for an event") ||
        check("profile", cudaEventElapsedTime(&ms, (cudaEvent_t)a, (cudaEvent_t)b), "timing events"))
        return -1;
    return ms;
}

void gv_gpu_event_free(void *e)
{
    if (e) cudaEventDestroy((cudaEvent_t)e);
}

/*
 * context.c — the one stream, the cuBLAS handle bound to it, and the
 * pending launch error. grove uses device 0 and a single non-blocking stream
 * per process: every kernel, cuBLAS call and transfer goes on it, so work is
 * ordered without events (and the caching allocator may reuse a freed block
 * at once, see alloc.c). Created on first use, never destroyed: the driver
 * tears it down at exit.
 */
#include "context.h"

#include "internal.h"

#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cudaStream_t stream;
static int have_stream;
static cublasHandle_t blas;
static int have_blas;
static int tf32;

/* The pending error of this thread: the first failure since the last take. */
static _Thread_local char pending[256];
static _Thread_local int has_pending;

cudaStream_t gv_cuda_stream(void)
{
    pthread_mutex_lock(&lock);
    if (!have_stream) {
        cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        if (err == cudaSuccess) have_stream = 1;
        else {
            stream = 0; /* the legacy stream still orders the work; the error is reported */
            gv_cuda_record(err, "creating the stream");
        }
    }
    cudaStream_t s = stream;
    pthread_mutex_unlock(&lock);
    return s;
}

/* CUBLAS_DEFAULT_MATH keeps f32 GEMMs in full f32 precision (the CPU's
 * numbers); TF32 tensor cores only when the user opted in. */
static void apply_math_mode(void)
{
    if (have_blas)
        gv_cuda_record_blas(cublasSetMathMode(blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                            "cublasSetMathMode");
}

cublasHandle_t gv_cuda_blas(void)
{
    cudaStream_t s = gv_cuda_stream();
    pthread_mutex_lock(&lock);
    if (!have_blas) {
        cublasStatus_t st = cublasCreate(&blas);
        if (st == CUBLAS_STATUS_SUCCESS) {
            have_blas = 1;
            gv_cuda_record_blas(cublasSetStream(blas, s), "cublasSetStream");
            apply_math_mode();
        } else {
            gv_cuda_record_blas(st, "cublasCreate");
        }
    }
    cublasHandle_t h = have_blas ? blas : NULL;
    pthread_mutex_unlock(&lock);
    return h;
}

void grove_cuda_set_tf32(int32_t on)
{
    pthread_mutex_lock(&lock);
    tf32 = on != 0;
    apply_math_mode();
    pthread_mutex_unlock(&lock);
}

void gv_cuda_record(cudaError_t err, const char *what)
{
    if (err == cudaSuccess || has_pending) return;
    snprintf(pending, sizeof pending, "%s: %s (%s)", what ? what : "kernel", cudaGetErrorString(err),
             cudaGetErrorName(err));
    has_pending = 1;
}

static const char *blas_status_name(cublasStatus_t st)
{
    switch (st) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
    }
}

void gv_cuda_record_blas(cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS || has_pending) return;
    snprintf(pending, sizeof pending, "%s: %s (%d)", what ? what : "cublas", blas_status_name(st), (int)st);
    has_pending = 1;
}

int gv_cuda_take_error(void)
{
    if (!has_pending) return 0;
    has_pending = 0;
    gv_fail("cuda: %s", pending);
    return -1;
}

unsigned int gv_cuda_blocks(long long n)
{
    /* Kernels loop (grid-stride), so the grid only needs to fill the GPU. */
    const long long cap = 65535;
    long long b = (n + GV_CUDA_THREADS - 1) / GV_CUDA_THREADS;
    if (b < 1) b = 1;
    if (b > cap) b = cap;
    return (unsigned int)b;
}

/*
 * context.h — what every CUDA kernel file shares: the stream all work goes
 * on, the cuBLAS handle bound to it, and launch-error bookkeeping. Kernels
 * return nothing (as their CPU twins); a failed launch is recorded here and
 * the front-end turns it into a grove error after the kernel returns.
 */
#ifndef GROVE_KERNELS_CUDA_CONTEXT_H
#define GROVE_KERNELS_CUDA_CONTEXT_H

#include <cuda_runtime.h>
#include <cublas_v2.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one stream of the current device (created on first use). */
cudaStream_t gv_cuda_stream(void);
/* The cuBLAS handle, bound to gv_cuda_stream(); TF32 only when opted in. */
cublasHandle_t gv_cuda_blas(void);
/* Records err (with what) as the pending error unless one is pending. */
void gv_cuda_record(cudaError_t err, const char *what);
void gv_cuda_record_blas(cublasStatus_t st, const char *what);
/* Takes the pending error: 0 when none, else -1 with the grove error set. */
int gv_cuda_take_error(void);
/* Threads per block and a grid covering n elements (capped; kernels loop). */
enum { GV_CUDA_THREADS = 256 };
unsigned int gv_cuda_blocks(long long n);

#ifdef __cplusplus
}
#endif

#define GV_CUDA_LAUNCHED(what) gv_cuda_record(cudaGetLastError(), (what))

#endif

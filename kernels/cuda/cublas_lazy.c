/*
 * cublas_lazy.c — cuBLAS, loaded at its first use. Linking libcublas makes
 * every process that loads libgrove pay for cuBLASLt's static initialisers
 * (about half a second, even a CPU-only run, even without a GPU), so instead
 * libgrove defines the few cuBLAS functions it calls, hidden from other
 * libraries, and each forwards to the real one, dlopened on the first call.
 * A kernel file that needs another cuBLAS function adds it here (the link,
 * with --no-undefined, names any that is missing).
 */
#include <cublas_v2.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#define HIDDEN __attribute__((visibility("hidden")))

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *lib;

static void load(void)
{
    /* The toolkit's library found at configure time, then the loader's search. */
    static const char *const names[] = {GROVE_CUBLAS_PATH, GROVE_CUBLAS_SONAME, "libcublas.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
}

static void *sym(const char *name)
{
    pthread_once(&once, load);
    return lib ? dlsym(lib, name) : NULL;
}

/* Defines a forwarding function: NOT_INITIALIZED when cuBLAS cannot be loaded. */
#define FORWARD(name, params, args)                                                                     \
    HIDDEN cublasStatus_t name params                                                                    \
    {                                                                                                    \
        static cublasStatus_t (*fn) params;                                                              \
        if (!fn) *(void **)&fn = sym(#name);                                                             \
        return fn ? fn args : CUBLAS_STATUS_NOT_INITIALIZED;                                             \
    }

FORWARD(cublasCreate_v2, (cublasHandle_t *handle), (handle))
FORWARD(cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t stream), (handle, stream))
FORWARD(cublasSetMathMode, (cublasHandle_t handle, cublasMath_t mode), (handle, mode))
FORWARD(cublasSgemm_v2,
        (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
         const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc),
        (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc))
FORWARD(cublasSgemmStridedBatched,
        (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
         const float *alpha, const float *A, int lda, long long int strideA, const float *B, int ldb,
         long long int strideB, const float *beta, float *C, int ldc, long long int strideC, int batchCount),
        (handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
         batchCount))
FORWARD(cublasGemmEx,
        (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
         const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B, cudaDataType Btype, int ldb,
         const void *beta, void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
         cublasGemmAlgo_t algo),
        (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType,
         algo))

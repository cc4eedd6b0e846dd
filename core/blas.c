/*
 * blas.c — loads OpenBLAS at first use, after choosing its core type.
 *
 * Debian's OpenBLAS picks its kernels when it is loaded and misdetects these
 * Xeons/EPYCs as "Prescott" (SSE3), about 4x slower than the AVX-512 kernels.
 * It reads OPENBLAS_CORETYPE at load time, so libgrove does not link OpenBLAS:
 * it sets the variable from the CPU's features (unless the user set it) and
 * then dlopens the library. This works alike in the grove executable and when
 * stock luajit loads libgrove through the FFI.
 */
#include "internal.h"

#include <dlfcn.h>
#include <omp.h>
#include <string.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef GROVE_OPENBLAS_PATH
#define GROVE_OPENBLAS_PATH "libopenblas.so.0"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static gv_blas blas;
static bool loaded;
static char info[256];
static char load_error[512];

static const char *cpu_core_type(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

/* Below this many multiply-adds a GEMM is not worth a parallel region. */
#define SPLIT_MIN_FLOPS (128.0 * 128.0 * 128.0)

/* C (m×n, row-major) in blocks of rows — or of columns when C is wide and
 * short — each computed by single-threaded OpenBLAS and the blocks shared
 * among the threads. A block of C needs the matching rows of op(A) or
 * columns of op(B) only. The blocks' bounds depend on the shape alone, never
 * on the thread count: OpenBLAS may round a row differently with the
 * height of the block it sits in (its edge and small-matrix kernels), so
 * fixed blocks give the same bits on any number of threads. Two blocks at
 * least, then a power of two of them while each keeps SPLIT_ROWS rows, at
 * most SPLIT_MAX_BLOCKS: a power of two shares evenly among 2, 4, 8 or 16
 * threads, and blocks of a few hundred rows keep OpenBLAS near its peak. */
enum { SPLIT_ROWS = 256, SPLIT_MAX_BLOCKS = 16 };

static void split_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc)
{
    bool by_rows = m >= n;
    int len = by_rows ? m : n;
    if ((double)m * n * k < SPLIT_MIN_FLOPS || len < 32) {
        blas.cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int nblocks = 2;
    while (nblocks < SPLIT_MAX_BLOCKS && len / (2 * nblocks) >= SPLIT_ROWS) nblocks *= 2;
    /* blocks of a multiple of 16 (the kernels' register tiles) */
    int per = (len + nblocks - 1) / nblocks;
    per = (per + 15) / 16 * 16;
    int blocks = (len + per - 1) / per;
    int threads = omp_in_parallel() ? 1 : gv_threads();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int i = 0; i < blocks; i++) {
        int start = i * per, size = len - start < per ? len - start : per;
        if (by_rows) {
            const float *ai = transa == GV_CBLAS_TRANS ? a + start : a + (int64_t)start * lda;
            blas.cblas_sgemm(order, transa, transb, size, n, k, alpha, ai, lda, b, ldb, beta, c + (int64_t)start * ldc, ldc);
        } else {
            const float *bj = transb == GV_CBLAS_TRANS ? b + (int64_t)start * ldb : b + start;
            blas.cblas_sgemm(order, transa, transb, m, size, k, alpha, a, lda, bj, ldb, beta, c + start, ldc);
        }
    }
}

static void load(void)
{
    const char *how;
    const char *user = getenv("OPENBLAS_CORETYPE");
    void *already = dlopen(GROVE_OPENBLAS_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (already) {
        how = "OpenBLAS was already loaded by the process; its own choice stands";
        dlclose(already);
    } else if (user && *user) {
        how = "OPENBLAS_CORETYPE set by the user";
    } else {
        const char *core = cpu_core_type();
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 1);
            how = "chosen by grove from cpuid";
        } else {
            how = "OpenBLAS's own detection (no AVX2/AVX-512)";
        }
    }
    void *h = dlopen(GROVE_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "cannot load OpenBLAS (%s): %s; install libopenblas0",
                 GROVE_OPENBLAS_PATH, dlerror());
        return;
    }
    *(void **)&blas.cblas_sgemm = dlsym(h, "cblas_sgemm");
    *(void **)&blas.set_num_threads = dlsym(h, "openblas_set_num_threads");
    *(void **)&blas.get_corename = dlsym(h, "openblas_get_corename");
    if (!blas.cblas_sgemm) {
        snprintf(load_error, sizeof load_error, "OpenBLAS at %s has no cblas_sgemm", GROVE_OPENBLAS_PATH);
        return;
    }
    const char *mode = getenv("GROVE_BLAS_THREADS");
    blas.own_threads = !(mode && !strcmp(mode, "openblas")) && blas.set_num_threads;
    blas.sgemm = blas.own_threads ? split_sgemm : blas.cblas_sgemm;
    if (blas.set_num_threads) blas.set_num_threads(blas.own_threads ? 1 : gv_threads());
    snprintf(info, sizeof info, "OpenBLAS core %s (%s), %d threads (%s)",
             blas.get_corename ? blas.get_corename() : "unknown", how, gv_threads(),
             blas.own_threads ? "grove's OpenMP threads over single-threaded OpenBLAS" : "OpenBLAS's own threads");
    loaded = true;
}

const gv_blas *gv_blas_get(void)
{
    pthread_once(&once, load);
    if (!loaded) return gv_fail_null("%s", load_error);
    return &blas;
}

const char *grove_blas_info(void)
{
    if (!gv_blas_get()) return load_error;
    return info;
}

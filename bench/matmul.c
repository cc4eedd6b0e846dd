/*
 * matmul.c — GFLOP/s of grove_matmul on square f32 matrices against OpenBLAS's
 * cblas_sgemm called directly on the same buffers, with OpenBLAS's own
 * threads at grove's thread count, through the very library grove loaded
 * (gv_blas_get). grove itself runs OpenBLAS single-threaded on blocks of C
 * split over its OpenMP threads (unless GROVE_BLAS_THREADS=openblas), so the
 * ratio measures that scheme plus grove's overhead (validation, allocation).
 *
 * Usage: bench_matmul [min_seconds_per_size]   (default 0.2)
 * Prints a table; asserts nothing.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static grove_tensor *square(int64_t n, grove_generator *gen)
{
    int64_t shape[2] = {n, n};
    return grove_randn(2, shape, gen);
}

/* One timed grove_matmul, output released; a negative time on error. */
static double time_grove(grove_tensor *a, grove_tensor *b)
{
    double t0 = now();
    grove_tensor *c = grove_matmul(a, b);
    double t = now() - t0;
    if (!c) return -1;
    grove_tensor_release(c);
    return t;
}

static double time_sgemm(const gv_blas *blas, int n, const float *a, const float *b, float *c)
{
    double t0 = now();
    blas->cblas_sgemm(GV_CBLAS_ROW_MAJOR, GV_CBLAS_NO_TRANS, GV_CBLAS_NO_TRANS, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                      n);
    return now() - t0;
}

/* OpenBLAS's own thread count: 1 while grove runs (grove splits the work
 * itself), grove's count while the baseline runs. */
static void openblas_threads(const gv_blas *blas, int n)
{
    if (blas->set_num_threads) blas->set_num_threads(n);
}

int main(int argc, char **argv)
{
    double min_time = argc > 1 ? atof(argv[1]) : 0.2;
    if (!(min_time > 0)) min_time = 0.2;
    /* read before loading: grove sets the variable itself when it is unset */
    const char *user_core = getenv("OPENBLAS_CORETYPE");
    char given[64];
    snprintf(given, sizeof given, "%s", user_core && *user_core ? user_core : "(unset)");
    const gv_blas *blas = gv_blas_get();
    if (!blas) {
        fprintf(stderr, "bench_matmul: %s\n", grove_last_error());
        return 1;
    }
    int nthreads = grove_num_threads();
    printf("matmul: square f32 C = A @ B, grove_matmul vs cblas_sgemm (same OpenBLAS, same buffers)\n");
    printf("threads: %d for grove; sgemm column: OpenBLAS's own %d threads\n", nthreads, nthreads);
    printf("blas: %s\n", grove_blas_info());
    printf("OPENBLAS_CORETYPE given by the user: %s\n", given);
    printf("timing: best of >= 3 runs and >= %.2f s per cell, after one warm-up run\n\n", min_time);
    printf("%6s  %14s  %14s  %12s\n", "n", "grove GFLOP/s", "sgemm GFLOP/s", "grove/sgemm");

    static const int sizes[] = {64, 128, 256, 512, 1024, 2048};
    grove_generator gen = {.seed = 1, .offset = 0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        grove_tensor *a = square(n, &gen), *b = square(n, &gen), *c = square(n, &gen);
        if (!a || !b || !c) {
            fprintf(stderr, "bench_matmul: %s\n", grove_last_error());
            return 1;
        }
        const float *ad = a->data, *bd = b->data;
        float *cd = c->data;
        /* The two columns run one after the other, not interleaved: OpenBLAS's
         * threads spin for a while after each call and would slow grove's
         * next one. Each starts with a warm-up call (page-in, thread start). */
        double best_g = 1e30, best_s = 1e30, total = 0;
        openblas_threads(blas, blas->own_threads ? 1 : nthreads);
        for (int runs = -1; runs < 3 || total < min_time; runs++) {
            double t = time_grove(a, b);
            if (t < 0) {
                fprintf(stderr, "bench_matmul: %s\n", grove_last_error());
                return 1;
            }
            if (runs < 0) continue;
            total += t;
            if (t < best_g) best_g = t;
        }
        openblas_threads(blas, nthreads);
        total = 0;
        for (int runs = -1; runs < 3 || total < min_time; runs++) {
            double t = time_sgemm(blas, n, ad, bd, cd);
            if (runs < 0) continue;
            total += t;
            if (t < best_s) best_s = t;
        }
        openblas_threads(blas, blas->own_threads ? 1 : nthreads);
        double flop = 2.0 * n * (double)n * n;
        double gg = flop / best_g * 1e-9, gs = flop / best_s * 1e-9;
        printf("%6d  %14.1f  %14.1f  %12.2f\n", n, gg, gs, gg / gs);
        fflush(stdout);
        grove_tensor_release(a);
        grove_tensor_release(b);
        grove_tensor_release(c);
    }
    return 0;
}

/*
 * matmul.c — GFLOP/s of grove_matmul on square f32 matrices against OpenBLAS's
 * cblas_sgemm called directly on the same buffers, through the very library
 * and thread count grove uses (gv_blas_get), so the ratio is grove's overhead
 * alone: validation, output allocation, dispatch.
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
    blas->sgemm(GV_CBLAS_ROW_MAJOR, GV_CBLAS_NO_TRANS, GV_CBLAS_NO_TRANS, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    return now() - t0;
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
    printf("matmul: square f32 C = A @ B, grove_matmul vs cblas_sgemm (same OpenBLAS, same buffers)\n");
    printf("threads: %d (grove and OpenBLAS)\n", grove_num_threads());
    printf("blas: %s\n", grove_blas_info());
    printf("OPENBLAS_CORETYPE given by the user: %s\n", given);
    printf("timing: best of >= 3 runs and >= %.2f s per column, after one warm-up run\n\n", min_time);
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
        /* warm-up: page in the buffers, start OpenBLAS's threads */
        if (time_grove(a, b) < 0) {
            fprintf(stderr, "bench_matmul: %s\n", grove_last_error());
            return 1;
        }
        time_sgemm(blas, n, ad, bd, cd);
        /* interleaved so that drift in the machine's load hits both columns alike */
        double best_g = 1e30, best_s = 1e30, total_g = 0, total_s = 0;
        int runs = 0;
        while (runs < 3 || total_g < min_time || total_s < min_time) {
            double tg = time_grove(a, b);
            if (tg < 0) {
                fprintf(stderr, "bench_matmul: %s\n", grove_last_error());
                return 1;
            }
            double ts = time_sgemm(blas, n, ad, bd, cd);
            total_g += tg;
            total_s += ts;
            if (tg < best_g) best_g = tg;
            if (ts < best_s) best_s = ts;
            runs++;
        }
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

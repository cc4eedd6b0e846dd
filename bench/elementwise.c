/*
 * elementwise.c — memory bandwidth of grove_binary(a, b, GROVE_ADD) against
 * memcpy. The add moves three arrays (reads a and b, writes out), memcpy two
 * (reads src, writes dst); GB/s counts exactly those bytes, so a ratio near 1
 * means the add runs at copy speed, the most a streaming op can do.
 * grove_binary allocates its output on every call (through the caching
 * allocator), as it does in real use; memcpy writes into a buffer kept warm.
 *
 * Usage: bench_elementwise [min_seconds_per_row]   (default 0.2)
 * Prints a table; asserts nothing.
 */
#include "grove.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct job {
    grove_tensor *a, *b;
    float *src, *dst;
    size_t bytes;
    int failed;
} job;

static void run_add(job *j)
{
    grove_tensor *c = grove_binary(j->a, j->b, GROVE_ADD);
    if (!c) {
        j->failed = 1;
        return;
    }
    grove_tensor_release(c);
}

static void run_memcpy(job *j)
{
    memcpy(j->dst, j->src, j->bytes);
    /* keep the copy from being optimised away */
    __asm__ volatile("" : : "r"(j->dst) : "memory");
}

/* Seconds per call: calls are timed in batches of at least ~2 ms (so that
 * the clock's resolution does not matter for small sizes), batches repeat
 * for at least min_time, and the best batch counts. */
static double time_per_call(void (*fn)(job *), job *j, double min_time)
{
    fn(j); /* warm-up: page in, start the thread pool */
    long k = 1;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < k; i++) fn(j);
        if (now() - t0 >= 2e-3 || k >= (1L << 24)) break;
        k *= 2;
    }
    double best = 1e30, total = 0;
    int batches = 0;
    while (batches < 3 || total < min_time) {
        double t0 = now();
        for (long i = 0; i < k; i++) fn(j);
        double t = now() - t0;
        total += t;
        if (t < best) best = t;
        batches++;
    }
    return best / (double)k;
}

int main(int argc, char **argv)
{
    double min_time = argc > 1 ? atof(argv[1]) : 0.2;
    if (!(min_time > 0)) min_time = 0.2;
    printf("elementwise: out = a + b (grove_binary, f32, contiguous) vs memcpy\n");
    printf("threads: %d for grove (memcpy is one thread)\n", grove_num_threads());
    printf("traffic: add counts 3 arrays x 4 bytes x n, memcpy 2; best batch over >= %.2f s\n\n", min_time);
    printf("%12s  %12s  %12s  %14s  %14s  %10s\n", "floats", "add us/call", "add GB/s", "memcpy us/call",
           "memcpy GB/s", "add/memcpy");

    static const int64_t sizes[] = {10000, 1000000, 10000000};
    grove_generator gen = {.seed = 1, .offset = 0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        job j = {0};
        j.a = grove_randn(1, &n, &gen);
        j.b = grove_randn(1, &n, &gen);
        j.bytes = (size_t)n * sizeof(float);
        j.src = malloc(j.bytes);
        j.dst = malloc(j.bytes);
        if (!j.a || !j.b || !j.src || !j.dst) {
            fprintf(stderr, "bench_elementwise: out of memory or %s\n", grove_last_error());
            return 1;
        }
        memcpy(j.src, j.a->data, j.bytes);
        memset(j.dst, 0, j.bytes);
        double t_add = time_per_call(run_add, &j, min_time);
        if (j.failed) {
            fprintf(stderr, "bench_elementwise: %s\n", grove_last_error());
            return 1;
        }
        double t_cpy = time_per_call(run_memcpy, &j, min_time);
        double gb_add = 3.0 * (double)j.bytes / t_add * 1e-9;
        double gb_cpy = 2.0 * (double)j.bytes / t_cpy * 1e-9;
        printf("%12lld  %12.2f  %12.1f  %14.2f  %14.1f  %10.2f\n", (long long)n, t_add * 1e6, gb_add, t_cpy * 1e6,
               gb_cpy, gb_add / gb_cpy);
        fflush(stdout);
        grove_tensor_release(j.a);
        grove_tensor_release(j.b);
        free(j.src);
        free(j.dst);
    }
    return 0;
}

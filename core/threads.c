/* threads.c — one thread count for grove's kernels (OpenMP) and OpenBLAS. */
#include "internal.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static int32_t thread_count;

static int32_t initial_threads(void)
{
    const char *env = getenv("GROVE_NUM_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == 0 && n > 0 && n <= 4096) return (int32_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

int32_t gv_threads(void)
{
    if (!thread_count) {
        thread_count = initial_threads();
        omp_set_num_threads(thread_count);
    }
    return thread_count;
}

/* Applied when the library loads, before any kernel opens a parallel region. */
__attribute__((constructor)) static void threads_init(void) { gv_threads(); }

int32_t grove_num_threads(void) { return gv_threads(); }

grove_status grove_set_num_threads(int32_t n)
{
    if (n < 1 || n > 4096) return gv_fail("set_num_threads: %d threads requested (1 to 4096)", n);
    thread_count = n;
    omp_set_num_threads(n);
    const gv_blas *b = gv_blas_get();
    if (b && b->set_num_threads && !b->own_threads) b->set_num_threads(n);
    return 0;
}

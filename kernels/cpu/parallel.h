/* parallel.h — how kernels spread a loop over threads. */
#ifndef GROVE_KERNELS_CPU_PARALLEL_H
#define GROVE_KERNELS_CPU_PARALLEL_H

/* Runs the for loop given as the remaining arguments on all threads when
 * cond holds, and inline otherwise. OpenMP's own `if` clause still enters
 * the runtime when false (a futex round trip, about 2 µs here), which would
 * dominate every small op; this keeps small work out of the runtime. */
#define GV_PARALLEL_FOR(cond, ...)                                                                        \
    do {                                                                                                  \
        if (cond) {                                                                                       \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__                                      \
        } else {                                                                                          \
            __VA_ARGS__                                                                                   \
        }                                                                                                 \
    } while (0)

#endif

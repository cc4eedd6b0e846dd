/*
 * device.hpp — what nvcc gives device code, for g++: force-included into
 * every .cu file of kernels/cuda after rewrite.cmake turned its launches
 * (kernel<<<grid, block, shared, stream>>>(args)) into gv_emu::launch calls.
 *
 * The model: a launch runs its blocks one after another on the calling
 * thread; the threads of a block are fibers that run until they finish or
 * reach a barrier (__syncthreads, or a warp shuffle, which waits for its
 * warp). __shared__ variables become statics — one block runs at a time, so
 * they are that block's shared memory. __device__ and __constant__
 * variables are ordinary globals. See README.md for what this can and
 * cannot find.
 */
#ifndef GROVE_CUDA_EMU_DEVICE_HPP
#define GROVE_CUDA_EMU_DEVICE_HPP

#include <cuda_runtime.h>

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <tuple>
#include <type_traits>

/* A literal NULL argument must still convert to the kernel's pointer type
 * after passing through the launcher's deduced parameters. */
#undef NULL
#define NULL nullptr

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __constant__

/* The built-in variables, set for the fiber that runs. */
/* Plain globals: launches are serialised (one runs at a time), and a
 * thread-local in a shared library costs a call on every access. */
extern uint3 gv_emu_thread_idx, gv_emu_block_idx;
extern dim3 gv_emu_block_dim, gv_emu_grid_dim;
#define threadIdx gv_emu_thread_idx
#define blockIdx gv_emu_block_idx
#define blockDim gv_emu_block_dim
#define gridDim gv_emu_grid_dim

namespace gv_emu {

struct config {
    dim3 grid, block;
    size_t shared;
};
inline config cfg(dim3 grid, dim3 block, size_t shared = 0, cudaStream_t stream = 0)
{
    (void)stream; /* one stream; a launch runs to completion at once */
    return config{grid, block, shared};
}

/* Runs body(ctx) as every thread of every block of c; a launch error
 * (bad configuration, deadlock, bad pointer) becomes cudaGetLastError's. */
void run_grid(const config &c, void (*body)(void *), void *ctx, const char *kernel);
/* Notes a kernel argument that must be device memory (or null). */
void check_device_pointer(const void *p, const char *kernel, int arg);
void sync_block();
int sync_block_or(int predicate);
/* Lane l gets the value of lane src(l) of its warp; all 32 lanes must take part. */
void warp_exchange(unsigned int mask, const void *mine, void *theirs, size_t size, int lane_xor);
void *dynamic_shared();

template <class A> void check_arg(const A &a, const char *kernel, int i)
{
    if constexpr (std::is_pointer<A>::value) check_device_pointer((const void *)a, kernel, i);
}

/* The kernel is wrapped in a generic lambda (rewrite.cmake), so a call
 * resolves templates and converts arguments as a launch does. */
template <class F> struct launcher {
    config c;
    F kernel;
    const char *name;
    template <class... A> void operator()(A... args) const
    {
        int i = 0;
        (check_arg(args, name, ++i), ...);
        struct call {
            F kernel;
            std::tuple<A...> args;
        } ctx{kernel, std::tuple<A...>(args...)};
        run_grid(c, [](void *p) { std::apply(static_cast<call *>(p)->kernel, static_cast<call *>(p)->args); }, &ctx,
                 name);
    }
};
template <class F> launcher<F> launch(config c, F kernel, const char *name) { return launcher<F>{c, kernel, name}; }

} // namespace gv_emu

#define __syncthreads() gv_emu::sync_block()
static inline int __syncthreads_or(int predicate) { return gv_emu::sync_block_or(predicate); }

template <class T> static inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = 32)
{
    (void)width;
    T r;
    gv_emu::warp_exchange(mask, &v, &r, sizeof(T), lane_mask);
    return r;
}

static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __int_as_float(int i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
static inline int __float_as_int(float f)
{
    int i;
    memcpy(&i, &f, sizeof i);
    return i;
}
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }

#endif

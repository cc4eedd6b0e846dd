/*
 * build_info.c — the facts of this libgrove's build, for `grove info`, bug
 * reports and programs that must know what they linked against.
 *
 * CMake passes the options as GROVE_BUILD_* definitions on this file alone
 * (CMakeLists.txt, "build facts"), so changing one recompiles only this
 * file. The rest comes from the compiler's own macros, which say what the
 * code was really compiled with.
 */
#include "grove.h"

#ifndef GROVE_BUILD_VERSION
#define GROVE_BUILD_VERSION "0.1.0"
#endif
#ifndef GROVE_BUILD_TYPE
#define GROVE_BUILD_TYPE "unknown"
#endif
#ifndef GROVE_BUILD_MARCH
#define GROVE_BUILD_MARCH "unknown"
#endif
#ifndef GROVE_BUILD_CUDA_ARCHITECTURES
#define GROVE_BUILD_CUDA_ARCHITECTURES "none"
#endif
#ifndef GROVE_OPENBLAS_PATH
#define GROVE_OPENBLAS_PATH "libopenblas.so.0"
#endif

#if defined(__AVX512F__)
#define SIMD "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define SIMD "avx2+fma"
#elif defined(__AVX2__)
#define SIMD "avx2"
#elif defined(__SSE2__)
#define SIMD "sse2"
#else
#define SIMD "none"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZERS "address,undefined"
#else
#define SANITIZERS "none"
#endif

#if defined(_OPENMP)
#define OPENMP "on"
#else
#define OPENMP "off"
#endif

/* GROVE_HAVE_CUDA is defined for the whole library when kernels/cuda is
 * compiled in (and core/cuda_off.c left out). */
#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown"
#endif

#if defined(GROVE_HAVE_CUDA)
#define CUDA "on"
#define CUDA_ARCHS GROVE_BUILD_CUDA_ARCHITECTURES
#else
#define CUDA "off"
#define CUDA_ARCHS "none"
#endif

const char *grove_version(void) { return GROVE_BUILD_VERSION; }

const char *grove_build_info(void)
{
    return "version=" GROVE_BUILD_VERSION "\n"
           "compiler=" COMPILER "\n"
           "build_type=" GROVE_BUILD_TYPE "\n"
           "march=" GROVE_BUILD_MARCH "\n"
           "simd=" SIMD "\n"
           "sanitizers=" SANITIZERS "\n"
           "openmp=" OPENMP "\n"
           "cuda=" CUDA "\n"
           "cuda_architectures=" CUDA_ARCHS "\n"
           "openblas=" GROVE_OPENBLAS_PATH "\n";
}

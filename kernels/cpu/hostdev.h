/* hostdev.h — GV_HD marks an inline function for host and device alike, so
 * a formula written once serves the CPU kernels and their CUDA twins. */
#ifndef GROVE_KERNELS_CPU_HOSTDEV_H
#define GROVE_KERNELS_CPU_HOSTDEV_H

#ifdef __CUDACC__
#define GV_HD __host__ __device__
#else
#define GV_HD
#endif

#endif

/*
 * backend.h — the per-device kernel table every op front-end calls through.
 *
 * A front-end validates its arguments, then asks gv_kernels_for(op, t) for
 * the table of t's device and calls k->entry(...) with raw data pointers of
 * that device. The entries are generated from the kernel list
 * (kernels/kernels.def): each has the parameter list written there, which
 * is the CPU kernel's minus the sgemm-function argument of the kernels
 * marked GV_KERNEL_SGEMM (the CPU table wraps those and passes OpenBLAS's
 * sgemm itself, kernels/cpu/table.c).
 *
 * An entry may be NULL (a CUDA kernel not written yet): GV_KCALL and
 * gv_kernel_ready turn that into the error "<op>: no CUDA kernel for
 * <entry>". After kernels ran, gv_kernels_check(k) reports what they could
 * not return themselves (a CUDA launch error, OpenBLAS failing to load).
 *
 * Kernels that only ever run on the host (gv_cpu_philox_block,
 * gv_cpu_dynamic_map: fixed tables and test vectors; cpu.h) have no entry.
 */
#ifndef GROVE_BACKEND_H
#define GROVE_BACKEND_H

#include "internal.h"
#include "../kernels/cpu/cpu.h"

typedef struct gv_kernels {
    int32_t device;     /* grove_device */
    /* 0 when the kernels since the last call ran, else -1 with the grove
     * error set; takes the pending error. */
    int (*take_error)(void);

    /* one entry per kernel of the list, named as there */
#define GV_KERNEL(ret, name, params) ret (*name) params;
#include "../kernels/kernels.def"
} gv_kernels;

/* The tables (kernels/cpu/table.c, kernels/cuda/table.c). */
extern const gv_kernels gv_cpu_kernels;
#ifdef GROVE_HAVE_CUDA
extern const gv_kernels gv_cuda_kernels;
#endif

/* The table of t's device; NULL with an error naming op when this build or
 * this machine has no backend for it (backend.c). */
const gv_kernels *gv_kernels_for(const char *op, const grove_tensor *t);
/* The same for a device code, where no tensor is at hand (copies between
 * raw buffers). */
const gv_kernels *gv_kernels_on(const char *op, int32_t device);

/* t's values readable by the host: t itself (retained) when it is on the
 * CPU and contiguous, otherwise a contiguous CPU copy; NULL with the error
 * set. For front-ends that inspect data (index range checks). */
grove_tensor *gv_host_data(const char *op, grove_tensor *t);

/* t (B, N, D) as attention rows: read in place when its channels are
 * adjacent (a slice of a wider projection, say) and its rows fit BLAS's int
 * leading dimension, else as a contiguous copy; r receives the layout.
 * Returns the tensor read (a new reference), NULL with the error set
 * (attention_rows.c). */
grove_tensor *gv_attn_rows_of(grove_tensor *t, gv_attn_rows *r);

/* Sets "<op>: no CUDA kernel for <entry>" (or the device's name) and returns false. */
bool gv_no_kernel(const char *op, const gv_kernels *k, const char *entry);

/* True when k has the entry, else false with the error set. */
#define gv_kernel_ready(op, k, entry) ((k)->entry != NULL || gv_no_kernel((op), (k), #entry))

/* Reports what the kernels since the last check could not return
 * themselves: 0, or -1 with the grove error set. */
static inline grove_status gv_kernels_check(const gv_kernels *k)
{
    return k->take_error ? k->take_error() : 0;
}

/* Calls a void entry and checks it: 0, or -1 with the error set when the
 * entry is missing or the kernel failed. */
#define GV_KCALL(op, k, entry, ...) \
    (gv_kernel_ready((op), (k), entry) ? ((k)->entry(__VA_ARGS__), gv_kernels_check(k)) : -1)

#endif

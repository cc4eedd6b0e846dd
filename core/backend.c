/* backend.c — which kernel table serves a tensor's device. */
#include "backend.h"
#include "gpu.h"

/* The table of device, or NULL when this build has none for it. */
static const gv_kernels *table_of(int32_t device)
{
    switch (device) {
    case GROVE_CPU:
        return &gv_cpu_kernels;
#ifdef GROVE_HAVE_CUDA
    case GROVE_CUDA:
        return &gv_cuda_kernels;
#endif
    default:
        return NULL;
    }
}

const gv_kernels *gv_kernels_for(const char *op, const grove_tensor *t)
{
    gv_profile_op(op, t->device);
    const gv_kernels *k = table_of(t->device);
    if (k) return k;
    if (t->device == GROVE_CUDA)
        return gv_fail_null("%s: this build has no CUDA backend (tensor %s is on cuda)", op, gv_shape_str(t));
    return gv_fail_null("%s: no device %d (tensor %s)", op, t->device, gv_shape_str(t));
}

const gv_kernels *gv_kernels_on(const char *op, int32_t device)
{
    gv_profile_op(op, device);
    const gv_kernels *k = table_of(device);
    if (k) return k;
    if (device == GROVE_CUDA) return gv_fail_null("%s: this build has no CUDA backend", op);
    return gv_fail_null("%s: no device %d", op, device);
}

bool gv_no_kernel(const char *op, const gv_kernels *k, const char *entry)
{
    gv_fail("%s: no %s kernel for %s", op, k->device == GROVE_CUDA ? "CUDA" : "CPU", entry);
    return false;
}

grove_tensor *gv_host_data(const char *op, grove_tensor *t)
{
    if (t->device == GROVE_CPU) return gv_contiguous_data(t);
    return gv_on_device(op, t, GROVE_CPU);
}

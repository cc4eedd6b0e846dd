/* backend.c — which kernel table serves a tensor's device. */
#include "backend.h"
#include "gpu.h"

const gv_kernels *gv_kernels_for(const char *op, const grove_tensor *t)
{
    gv_profile_op(op, t->device);
    switch (t->device) {
    case GROVE_CPU:
        return &gv_cpu_kernels;
    case GROVE_CUDA:
#ifdef GROVE_HAVE_CUDA
        return &gv_cuda_kernels;
#else
        return gv_fail_null("%s: this build has no CUDA backend (tensor %s is on cuda)", op, gv_shape_str(t));
#endif
    default:
        return gv_fail_null("%s: no device %d (tensor %s)", op, t->device, gv_shape_str(t));
    }
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

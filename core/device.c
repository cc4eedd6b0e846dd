/*
 * device.c — what is the same for every device: copies on one device
 * (the kernel table's copy), moving values between devices (the runtime's
 * transfers, core/gpu.h), and grove_tensor_to_device, whose
 * gradient flows back to the source device.
 */
#include "backend.h"
#include "gpu.h"

const char *gv_device_name(int32_t device)
{
    return device == GROVE_CPU ? "cpu" : device == GROVE_CUDA ? "cuda" : "unknown device";
}

grove_status gv_copy_strided(const char *op, int32_t device, int32_t ndim, const int64_t *shape, void *dst,
                             const int64_t *dst_stride, int32_t dst_dtype, const void *src,
                             const int64_t *src_stride, int32_t src_dtype)
{
    const gv_kernels *k = gv_kernels_on(op, device);
    return k ? GV_KCALL(op, k, copy, ndim, shape, dst, dst_stride, dst_dtype, src, src_stride, src_dtype) : -1;
}

grove_tensor *gv_on_device(const char *op, const grove_tensor *t, int32_t device)
{
    grove_tensor *src = (grove_tensor *)t; /* only read */
    if (t->device == device) return gv_contiguous_data(src);
    gv_profile_op("to_device", t->device == GROVE_CUDA ? GROVE_CUDA : device);
    /* contiguous on the source side, then one transfer of the bytes */
    grove_tensor *c = gv_contiguous_data(src);
    if (!c) return NULL;
    grove_tensor *out = gv_empty(t->ndim, t->shape, t->dtype, device);
    if (out) {
        int64_t nbytes = grove_tensor_numel(t) * grove_dtype_size(t->dtype);
        grove_status st = device == GROVE_CUDA ? gv_gpu_upload(op, out->data, c->data, nbytes)
                                               : gv_gpu_download(op, out->data, c->data, nbytes);
        if (st) {
            grove_tensor_release(out);
            out = NULL;
        }
    }
    grove_tensor_release(c);
    return out;
}

/* The gradient goes back where the input lives. */
static grove_status to_device_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    gi[0] = grove_tensor_to_device(g, (int32_t)n->ints[0]);
    return gi[0] ? 0 : -1;
}

grove_tensor *grove_tensor_to_device(grove_tensor *t, int32_t device)
{
    const char *op = "to_device";
    if (!gv_check_live(op, t)) return NULL;
    if (device < 0 || device >= GROVE_DEVICE_COUNT) return gv_fail_null("%s: unknown device %d", op, device);
    if (t->device == device) {
        grove_tensor_retain(t);
        return t;
    }
    if (device == GROVE_CUDA && !gv_gpu_require("cuda")) return NULL;
    grove_tensor *out = gv_on_device(op, t, device);
    if (!out) return NULL;
    grove_node *node;
    if (gv_node_begin(op, to_device_backward, 1, &t, &node)) {
        grove_tensor_release(out);
        return NULL;
    }
    if (node) {
        node->ints[0] = t->device;
        gv_node_finish(node, out);
    }
    return out;
}

/* copy.c — copies between layouts, dtypes and devices, fills, and random
 * fills. A CUDA tensor's copies stay on CUDA; copy_ moves values between
 * devices (source made contiguous on its side, one transfer, then the
 * strided copy on the destination's device). */
#include "backend.h"
#include "gpu.h"

#include <math.h>

static grove_status identity_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    GV_UNUSED(n);
    grove_tensor_retain(g);
    gi[0] = g;
    return 0;
}

/* A fresh contiguous copy of t, converted to dtype, recorded on the tape
 * when dtype stays f32. */
static grove_tensor *copy_as(const char *op, grove_tensor *t, int32_t dtype)
{
    if (!gv_check_live(op, t)) return NULL;
    if (dtype < 0 || dtype >= GROVE_DTYPE_COUNT) return gv_fail_null("%s: unknown dtype %d", op, dtype);
    grove_tensor *c = gv_empty(t->ndim, t->shape, dtype, t->device);
    if (!c) {
        gv_name_oom(op);
        return NULL;
    }
    if (gv_copy_strided(op, t->device, t->ndim, t->shape, c->data, c->stride, dtype, t->data, t->stride, t->dtype)) {
        grove_tensor_release(c);
        return NULL;
    }
    if (dtype == GROVE_F32 && t->dtype == GROVE_F32) {
        grove_node *node;
        if (gv_node_begin(op, identity_backward, 1, &t, &node)) {
            grove_tensor_release(c);
            return NULL;
        }
        if (node) gv_node_finish(node, c);
    }
    return c;
}

grove_tensor *grove_contiguous(grove_tensor *t)
{
    if (!gv_check_live("contiguous", t)) return NULL;
    if (grove_tensor_is_contiguous(t)) {
        grove_tensor_retain(t);
        return t;
    }
    return copy_as("contiguous", t, t->dtype);
}

grove_tensor *grove_clone(grove_tensor *t) { return copy_as("clone", t, t ? t->dtype : 0); }

grove_tensor *grove_to_dtype(grove_tensor *t, int32_t dtype)
{
    if (!gv_check_live("to", t)) return NULL;
    if (t->dtype == dtype) {
        grove_tensor_retain(t);
        return t;
    }
    if (gv_tracks(t))
        return gv_fail_null("to: converting %s from f32 to %s would cut it from the autograd tape; detach it first",
                            gv_shape_str(t), grove_dtype_name(dtype));
    return copy_as("to", t, dtype);
}

/* In-place writes to a tensor the tape may read later would corrupt the
 * gradients; refuse them while grad mode is on. A tensor whose elements
 * share memory (an expanded view: stride 0 on a dimension longer than 1)
 * is refused too, as PyTorch does: the write's result would depend on the
 * order of the stores, and an expand can claim far more elements (2^60) than
 * its one stored value, each of which the write would visit. */
static bool check_writable(const char *op, const grove_tensor *t)
{
    if (!gv_check_live(op, t)) return false;
    if (gv_tracks(t)) {
        gv_fail("%s: in-place write to %s, which requires grad; wrap it in grove.no_grad", op, gv_shape_str(t));
        return false;
    }
    for (int32_t i = 0; i < t->ndim; i++)
        if (t->stride[i] == 0 && t->shape[i] > 1) {
            gv_fail("%s: in-place write to %s, an expanded view whose elements share memory (dimension %d has "
                    "stride 0); write to a contiguous() copy instead", op, gv_shape_str(t), i);
            return false;
        }
    return true;
}

grove_status grove_copy_(grove_tensor *dst, grove_tensor *src)
{
    if (!check_writable("copy_", dst) || !gv_check_live("copy_", src)) return -1;
    int64_t st[GROVE_MAX_DIMS];
    if (src->ndim > dst->ndim) goto mismatch;
    for (int32_t i = 0; i < src->ndim; i++) {
        int64_t s = src->shape[i], d = dst->shape[dst->ndim - src->ndim + i];
        if (s != d && s != 1) goto mismatch;
    }
    grove_tensor *tmp = NULL;
    if (src->device != dst->device) {
        /* The source's values, contiguous, on the destination's device. */
        tmp = gv_on_device("copy_", src, dst->device);
        if (!tmp) return -1;
        src = tmp;
    } else if (dst->storage == src->storage) {
        /* Source and destination may overlap: read from a snapshot. */
        tmp = gv_empty_like(src);
        if (!tmp) return -1;
        if (gv_copy_strided("copy_", src->device, src->ndim, src->shape, tmp->data, tmp->stride, tmp->dtype,
                            src->data, src->stride, src->dtype)) {
            grove_tensor_release(tmp);
            return -1;
        }
        src = tmp;
    }
    gv_broadcast_strides(src, dst->ndim, dst->shape, st);
    grove_status status = gv_copy_strided("copy_", dst->device, dst->ndim, dst->shape, dst->data, dst->stride,
                                          dst->dtype, src->data, st, src->dtype);
    grove_tensor_release(tmp);
    return status;
mismatch:
    return gv_fail("copy_: source %s does not broadcast to destination %s", gv_shape_str(src), gv_shape_str(dst));
}

grove_status grove_fill_(grove_tensor *t, double value)
{
    if (!check_writable("fill_", t)) return -1;
    const gv_kernels *k = gv_kernels_for("fill_", t);
    return k ? GV_KCALL("fill_", k, fill, t->ndim, t->shape, t->data, t->stride, t->dtype, value) : -1;
}

static grove_status random_fill(const char *op, grove_tensor *t, grove_generator *gen, double a, double b, bool normal)
{
    if (!check_writable(op, t)) return -1;
    if (t->dtype != GROVE_F32) return gv_fail("%s: expected an f32 tensor, got %s", op, grove_dtype_name(t->dtype));
    if (!isfinite(a) || !isfinite(b)) return gv_fail("%s: parameters must be finite (%g, %g)", op, a, b);
    if (normal && b < 0) return gv_fail("%s: standard deviation %g is negative", op, b);
    if (!gen) gen = grove_default_generator();
    int64_t n = grove_tensor_numel(t);
    const gv_kernels *k = gv_kernels_for(op, t);
    grove_tensor *c = k ? gv_contiguous_data(t) : NULL;
    if (!c) return -1;
    grove_status st = normal ? GV_KCALL(op, k, philox_normal, c->data, n, gen->seed, gen->offset, (float)a, (float)b)
                             : GV_KCALL(op, k, philox_uniform, c->data, n, gen->seed, gen->offset, (float)a, (float)b);
    gen->offset += (uint64_t)(n + 3) / 4;
    if (c != t && st == 0) st = grove_copy_(t, c);
    grove_tensor_release(c);
    return st;
}

grove_status grove_uniform_(grove_tensor *t, grove_generator *gen, double lo, double hi)
{
    return random_fill("uniform_", t, gen, lo, hi, false);
}

grove_status grove_normal_(grove_tensor *t, grove_generator *gen, double mean, double std)
{
    return random_fill("normal_", t, gen, mean, std, true);
}

grove_tensor *grove_rand(int32_t ndim, const int64_t *shape, grove_generator *gen)
{
    grove_tensor *t = gv_empty(ndim, shape, GROVE_F32, GROVE_CPU);
    if (t && grove_uniform_(t, gen, 0.0, 1.0)) {
        grove_tensor_release(t);
        return NULL;
    }
    return t;
}

grove_tensor *grove_randn(int32_t ndim, const int64_t *shape, grove_generator *gen)
{
    grove_tensor *t = gv_empty(ndim, shape, GROVE_F32, GROVE_CPU);
    if (t && grove_normal_(t, gen, 0.0, 1.0)) {
        grove_tensor_release(t);
        return NULL;
    }
    return t;
}

/*
 * resample.c — changing the resolution of NHWC images (B, H, W, C) without
 * arithmetic on the values: nearest upsampling by an integer scale and
 * pixel shuffle / unshuffle in PyTorch's channel order (DC-AE's up- and
 * down-sampling blocks and their shortcuts). Each shuffle's backward is
 * the other shuffle, so it is itself differentiable.
 */
#include "backend.h"

/* x must be a live f32 NHWC image; factor (named what) at least 1. */
static bool check_image(const char *op, const grove_tensor *x, const char *what, int32_t factor)
{
    if (!gv_check_f32(op, x)) return false;
    if (x->ndim != 4) {
        gv_fail("%s: expected an NHWC image (B, H, W, C), got %s", op, gv_shape_str(x));
        return false;
    }
    if (factor < 1) {
        gv_fail("%s: %s must be an integer >= 1, got %d (x %s)", op, what, factor, gv_shape_str(x));
        return false;
    }
    return true;
}

/* ---- nearest upsampling ------------------------------------------------------ */

/* ints[0] = s; the input's shape is the node's. */
static grove_status upsample_nearest_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    const int64_t *in = n->in_shape[0];
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    grove_tensor *gx = gc ? gv_empty(4, in, GROVE_F32, g->device) : NULL;
    if (gx && GV_KCALL(n->name, k, upsample_nearest_backward, in[0], in[1], in[2], in[3], n->ints[0], gc->data,
                       gx->data)) {
        grove_tensor_release(gx);
        gx = NULL;
    }
    grove_tensor_release(gc);
    gi[0] = gx;
    return gx ? 0 : -1;
}

grove_tensor *grove_upsample_nearest(grove_tensor *x, int32_t scale)
{
    const char *op = "upsample_nearest";
    if (!check_image(op, x, "scale", scale)) return NULL;
    int64_t shape[4] = {x->shape[0], x->shape[1] * scale, x->shape[2] * scale, x->shape[3]};
    if (!gv_shape_ok(op, 4, shape)) return NULL;
    gv_op o;
    if (!gv_op_begin(&o, op, upsample_nearest_backward, 1, &x)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x);
    grove_tensor *out = gv_op_output(&o, 4, shape, GROVE_F32);
    GV_OP_CALL(&o, upsample_nearest, x->shape[0], x->shape[1], x->shape[2], x->shape[3], scale, xc->data,
               out->data);
    if (o.node) o.node->ints[0] = scale;
    return gv_op_end(&o);
}

/* ---- pixel shuffle and unshuffle ----------------------------------------------- */

static grove_status pixel_shuffle_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    gi[0] = grove_pixel_unshuffle(g, (int32_t)n->ints[0]);
    return gi[0] ? 0 : -1;
}

static grove_status pixel_unshuffle_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    gi[0] = grove_pixel_shuffle(g, (int32_t)n->ints[0]);
    return gi[0] ? 0 : -1;
}

/* packed (B, H, W, C) is x for shuffle and the output for unshuffle. */
static grove_tensor *shuffle_run(const char *op, grove_tensor *x, int32_t r, bool unshuffle, const int64_t *packed,
                                 const int64_t *out_shape)
{
    gv_op o;
    if (!gv_op_begin(&o, op, unshuffle ? pixel_unshuffle_backward : pixel_shuffle_backward, 1, &x)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x);
    grove_tensor *out = gv_op_output(&o, 4, out_shape, GROVE_F32);
    GV_OP_CALL(&o, pixel_shuffle, unshuffle, packed[0], packed[1], packed[2], packed[3], r, xc->data, out->data);
    if (o.node) o.node->ints[0] = r;
    return gv_op_end(&o);
}

grove_tensor *grove_pixel_shuffle(grove_tensor *x, int32_t r)
{
    const char *op = "pixel_shuffle";
    if (!check_image(op, x, "r", r)) return NULL;
    int64_t rr = (int64_t)r * r, c = x->shape[3];
    if (c % rr)
        return gv_fail_null("%s: x %s has C = %lld channels, not a multiple of r² = %lld (r = %d)", op,
                            gv_shape_str(x), (long long)c, (long long)rr, r);
    int64_t shape[4] = {x->shape[0], x->shape[1] * r, x->shape[2] * r, c / rr};
    if (!gv_shape_ok(op, 4, shape)) return NULL;
    return shuffle_run(op, x, r, false, x->shape, shape);
}

grove_tensor *grove_pixel_unshuffle(grove_tensor *x, int32_t r)
{
    const char *op = "pixel_unshuffle";
    if (!check_image(op, x, "r", r)) return NULL;
    static const char *const names[] = {"B", "H", "W"};
    for (int d = 1; d <= 2; d++)
        if (x->shape[d] % r)
            return gv_fail_null("%s: x %s has %s = %lld, not divisible by r = %d", op, gv_shape_str(x), names[d],
                                (long long)x->shape[d], r);
    int64_t rr = (int64_t)r * r;
    int64_t shape[4] = {x->shape[0], x->shape[1] / r, x->shape[2] / r, x->shape[3] * rr};
    if (!gv_shape_ok(op, 4, shape)) return NULL;
    return shuffle_run(op, x, r, true, shape, shape);
}

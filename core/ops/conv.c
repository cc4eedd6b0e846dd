/*
 * conv.c — conv2d on NHWC activations with PyTorch-layout weights.
 *
 * Two cases cover SANA's Mix-FFN: the 1x1 convolution (a GEMM over pixels)
 * and the depthwise kxk convolution with stride 1. Anything else is refused
 * with a message saying what is supported, rather than computed slowly.
 */
#include "internal.h"
#include "backend.h"

#include <limits.h>

enum { CONV_1X1 = 0, CONV_DEPTHWISE = 1 };

/* The depthwise weight (C, 1, k, k) as a contiguous (k, k, C) copy, so the
 * kernels read one tap's weights for all channels contiguously. */
static grove_tensor *taps_major(grove_tensor *w)
{
    int64_t c = w->shape[0], k = w->shape[2];
    int64_t shape[3] = {k, k, c}, stride[3] = {w->stride[2], w->stride[3], w->stride[0]};
    grove_tensor *view = gv_alias(w, 3, shape, stride, w->offset);
    if (!view) return NULL;
    grove_tensor *wt = gv_contiguous_data(view);
    grove_tensor_release(view);
    return wt;
}

static grove_status conv_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *x = n->saved[0], *w = n->saved[1];
    int64_t bsz = x->shape[0], h = x->shape[1], wd = x->shape[2], cin = x->shape[3];
    int64_t cout = w->shape[0], k = w->shape[2], pad = n->ints[1];
    const gv_kernels *kt = gv_kernels_for(n->name, g);
    if (!kt) return -1;
    grove_tensor *gc = gv_contiguous_data(g);
    if (!gc) return -1;
    grove_tensor *dx = NULL, *dw = NULL, *db = NULL, *wt = NULL;
    if (n->needs_grad[0] && !(dx = gv_empty(4, x->shape, GROVE_F32, x->device))) goto fail;
    if (n->needs_grad[1] && !(dw = gv_empty(4, w->shape, GROVE_F32, w->device))) goto fail;
    if (n->needs_grad[2] && !(db = gv_empty(1, &cout, GROVE_F32, g->device))) goto fail;
    int64_t m = bsz * h * wd;
    if (n->ints[0] == CONV_1X1) {
        /* dx (m, cin) = dy (m, cout) · w (cout, cin); dw (cout, cin) = dyᵀ · x (m, cin). */
        if (dx && GV_KCALL(n->name, kt, gemm, false, false, (int)m, (int)cin, (int)cout, gc->data, (int)cout,
                           w->data, (int)cin, NULL, dx->data))
            goto fail;
        if (dw && GV_KCALL(n->name, kt, gemm, true, false, (int)cout, (int)cin, (int)m, gc->data, (int)cout,
                           x->data, (int)cin, NULL, dw->data))
            goto fail;
    } else {
        if (dx) {
            if (!(wt = taps_major(w))) goto fail;
            if (GV_KCALL(n->name, kt, dwconv_backward_input, bsz, h, wd, cin, k, pad, gc->data, wt->data, dx->data))
                goto fail;
        }
        if (dw && GV_KCALL(n->name, kt, dwconv_backward_weight, bsz, h, wd, cin, k, pad, x->data, gc->data,
                           dw->data))
            goto fail;
    }
    if (db && GV_KCALL(n->name, kt, sum_rows, grove_tensor_numel(gc) / (cout > 0 ? cout : 1), cout, gc->data,
                       db->data))
        goto fail;
    grove_tensor_release(wt);
    grove_tensor_release(gc);
    gi[0] = dx;
    gi[1] = dw;
    gi[2] = db;
    return 0;
fail:
    grove_tensor_release(wt);
    grove_tensor_release(gc);
    grove_tensor_release(dx);
    grove_tensor_release(dw);
    grove_tensor_release(db);
    return -1;
}

/* Validates the arguments and picks the case; false with an error. */
static bool conv_check(grove_tensor *x, grove_tensor *w, grove_tensor *b, int32_t stride, int32_t padding,
                       int32_t groups, int32_t *kind)
{
    if (!gv_check_f32("conv2d", x) || !gv_check_f32("conv2d", w)) return false;
    if (b && !gv_check_f32("conv2d", b)) return false;
    if (!gv_check_same_device("conv2d", x, w) || (b && !gv_check_same_device("conv2d", x, b))) return false;
    if (x->ndim != 4) {
        gv_fail("conv2d: input %s must be 4-d NHWC (batch, height, width, channels)", gv_shape_str(x));
        return false;
    }
    if (w->ndim != 4) {
        gv_fail("conv2d: weight %s must be 4-d (out_channels, in_channels/groups, k, k)", gv_shape_str(w));
        return false;
    }
    if (groups < 1 || stride < 1 || padding < 0) {
        gv_fail("conv2d: input %s, weight %s: invalid groups %d, stride %d or padding %d "
                "(need groups >= 1, stride >= 1, padding >= 0)",
                gv_shape_str(x), gv_shape_str(w), groups, stride, padding);
        return false;
    }
    int64_t cin = x->shape[3], cout = w->shape[0];
    if (cin % groups || cout % groups) {
        gv_fail("conv2d: input %s, weight %s: channels (%lld in, %lld out) are not divisible by groups %d",
                gv_shape_str(x), gv_shape_str(w), (long long)cin, (long long)cout, groups);
        return false;
    }
    if (w->shape[1] != cin / groups) {
        gv_fail("conv2d: input %s has %lld channels but weight %s expects %lld per group x %d groups = %lld",
                gv_shape_str(x), (long long)cin, gv_shape_str(w), (long long)w->shape[1], groups,
                (long long)(w->shape[1] * groups));
        return false;
    }
    if (w->shape[2] != w->shape[3] || w->shape[2] < 1 || w->shape[2] > GV_DW_MAX_K) {
        gv_fail("conv2d: weight %s: only square kxk kernels with 1 <= k <= %d are supported", gv_shape_str(w),
                GV_DW_MAX_K);
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != cout)) {
        gv_fail("conv2d: bias %s does not match weight %s (expected [%lld])", gv_shape_str(b), gv_shape_str(w),
                (long long)cout);
        return false;
    }
    int64_t k = w->shape[2];
    int64_t ho = (x->shape[1] + 2 * (int64_t)padding - k) / stride + 1;
    int64_t wo = (x->shape[2] + 2 * (int64_t)padding - k) / stride + 1;
    if (x->shape[1] + 2 * (int64_t)padding < k || x->shape[2] + 2 * (int64_t)padding < k || ho <= 0 || wo <= 0) {
        gv_fail("conv2d: input %s with padding %d is smaller than the %lldx%lld kernel of weight %s", gv_shape_str(x),
                padding, (long long)k, (long long)k, gv_shape_str(w));
        return false;
    }
    if (k == 1 && groups == 1) {
        if (stride != 1 || padding != 0) {
            gv_fail("conv2d: 1x1 weight %s with stride %d, padding %d: only stride 1 and padding 0 are supported "
                    "for 1x1 convolutions", gv_shape_str(w), stride, padding);
            return false;
        }
        int64_t m = x->shape[0] * x->shape[1] * x->shape[2];
        if (m > INT_MAX || cin > INT_MAX || cout > INT_MAX) {
            gv_fail("conv2d: input %s, weight %s: too large for one BLAS call", gv_shape_str(x), gv_shape_str(w));
            return false;
        }
        *kind = CONV_1X1;
        return true;
    }
    if (groups == cin && cout == cin && w->shape[1] == 1) {
        if (stride != 1) {
            gv_fail("conv2d: depthwise weight %s with stride %d: only stride 1 is supported for depthwise "
                    "convolutions", gv_shape_str(w), stride);
            return false;
        }
        *kind = CONV_DEPTHWISE;
        return true;
    }
    gv_fail("conv2d: weight %s with groups %d: only 1x1 and depthwise kxk convolutions are supported "
            "(1x1 with groups 1, or groups = in = out channels with weight [C,1,k,k])",
            gv_shape_str(w), groups);
    return false;
}

grove_tensor *grove_conv2d(grove_tensor *x, grove_tensor *w, grove_tensor *b, int32_t stride, int32_t padding,
                           int32_t groups)
{
    int32_t kind;
    if (!conv_check(x, w, b, stride, padding, groups, &kind)) return NULL;
    int64_t bsz = x->shape[0], h = x->shape[1], wd = x->shape[2], cin = x->shape[3];
    int64_t cout = w->shape[0], k = w->shape[2];
    int64_t out_shape[4] = {bsz, h + 2 * (int64_t)padding - k + 1, wd + 2 * (int64_t)padding - k + 1, cout};
    grove_tensor *inputs[3] = {x, w, b};
    gv_op o;
    if (!gv_op_begin(&o, "conv2d", conv_backward, 3, inputs)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x), *wc = gv_op_input(&o, w), *bc = gv_op_input(&o, b);
    grove_tensor *out = gv_op_output(&o, 4, out_shape, GROVE_F32);
    if (kind == CONV_1X1) {
        /* y (m, cout) = x (m, cin) · w (cout, cin)ᵀ + bias: the weight read transposed in place. */
        GV_OP_CALL(&o, gemm, false, true, (int)(bsz * h * wd), (int)cout, (int)cin, xc->data, (int)cin, wc->data,
                   (int)cin, bc ? bc->data : NULL, out->data);
    } else {
        grove_tensor *wt = o.ok ? gv_op_hold(&o, taps_major(wc)) : NULL;
        GV_OP_CALL(&o, dwconv_forward, bsz, h, wd, cin, k, padding, xc->data, wt->data, bc ? bc->data : NULL,
                   out->data);
    }
    /* The backward reads x for dw and w for dx: keep the contiguous data. */
    gv_op_save(&o, 0, xc);
    gv_op_save(&o, 1, wc);
    if (o.node) {
        o.node->ints[0] = kind;
        o.node->ints[1] = padding;
    }
    return gv_op_end(&o);
}

/*
 * conv.c — conv2d on NHWC activations with PyTorch-layout weights
 * (out, in/groups, kh, kw), so diffusers' weights load unchanged.
 *
 * Three cases: the 1x1 convolution with stride 1 and no padding (a GEMM
 * over pixels), the depthwise square convolution with stride 1 (SANA's
 * Mix-FFN; direct loops), and everything else — any kernel, stride,
 * padding and groups — through the general conv kernels (im2col + GEMM in
 * chunks of output rows), which read the weight in tap-major order.
 */
#include "internal.h"
#include "backend.h"

#include <limits.h>

enum { CONV_1X1 = 0, CONV_DEPTHWISE = 1, CONV_GENERAL = 2 };

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

/* The weight (cout, cpg, kh, kw) as a contiguous tap-major (cout, kh, kw, cpg)
 * copy: one output channel's taps in the order of the general kernels'
 * columns (a view already in that order is read as it is). */
static grove_tensor *weight_tap_major(grove_tensor *w)
{
    int64_t shape[4] = {w->shape[0], w->shape[2], w->shape[3], w->shape[1]};
    int64_t stride[4] = {w->stride[0], w->stride[2], w->stride[3], w->stride[1]};
    grove_tensor *view = gv_alias(w, 4, shape, stride, w->offset);
    if (!view) return NULL;
    grove_tensor *wk = gv_contiguous_data(view);
    grove_tensor_release(view);
    return wk;
}

/* A tap-major (cout, kh, kw, cpg) gradient back in PyTorch order (cout, cpg, kh, kw). */
static grove_tensor *weight_torch_order(grove_tensor *dwk)
{
    int64_t co = dwk->shape[0], kh = dwk->shape[1], kw = dwk->shape[2], cpg = dwk->shape[3];
    int64_t shape[4] = {co, cpg, kh, kw}, stride[4] = {kh * kw * cpg, 1, kw * cpg, cpg};
    grove_tensor *view = gv_alias(dwk, 4, shape, stride, dwk->offset);
    if (!view) return NULL;
    grove_tensor *dw = gv_contiguous_data(view);
    grove_tensor_release(view);
    return dw;
}

static gv_conv_shape conv_shape_of(const grove_tensor *x, const grove_tensor *w, int64_t stride, int64_t pad,
                                   int64_t groups)
{
    gv_conv_shape s = {
        .b = x->shape[0], .h = x->shape[1], .w = x->shape[2], .cin = x->shape[3],
        .cout = w->shape[0], .kh = w->shape[2], .kw = w->shape[3],
        .stride = stride, .pad = pad, .groups = groups,
    };
    s.ho = (s.h + 2 * pad - s.kh) / stride + 1;
    s.wo = (s.w + 2 * pad - s.kw) / stride + 1;
    return s;
}

/* dx and dw of a general convolution, where not NULL; *dw comes tap-major
 * (cout, kh, kw, cpg) and leaves in PyTorch's order. */
static grove_status conv_general_backward(grove_node *n, const gv_kernels *kt, grove_tensor *x, grove_tensor *w,
                                          grove_tensor *gc, grove_tensor *dx, grove_tensor **dw)
{
    gv_conv_shape s = conv_shape_of(x, w, n->ints[2], n->ints[1], n->ints[3]);
    if (!gv_kernel_ready(n->name, kt, conv_scratch)) return -1;
    int64_t floats = kt->conv_scratch(&s);
    grove_tensor *scratch = gv_empty(1, &floats, GROVE_F32, x->device), *wk = NULL;
    grove_status st = -1;
    if (!scratch) return -1;
    if (dx) {
        if (!(wk = weight_tap_major(w))) goto out;
        if (GV_KCALL(n->name, kt, conv_backward_input, &s, gc->data, wk->data, dx->data, scratch->data)) goto out;
    }
    if (*dw) {
        if (GV_KCALL(n->name, kt, conv_backward_weight, &s, x->data, gc->data, (*dw)->data, scratch->data)) goto out;
        grove_tensor *torch = weight_torch_order(*dw);
        if (!torch) goto out;
        grove_tensor_release(*dw);
        *dw = torch;
    }
    st = 0;
out:
    grove_tensor_release(wk);
    grove_tensor_release(scratch);
    return st;
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
    /* the general case writes a tap-major dw and swaps in PyTorch's order */
    int64_t dw_shape[4] = {w->shape[0], w->shape[2], w->shape[3], w->shape[1]};
    if (n->needs_grad[1] && !(dw = gv_empty(4, n->ints[0] == CONV_GENERAL ? dw_shape : w->shape, GROVE_F32,
                                            w->device)))
        goto fail;
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
    } else if (n->ints[0] == CONV_GENERAL) {
        if (conv_general_backward(n, kt, x, w, gc, dx, &dw)) goto fail;
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
static bool conv_check(const char *op, grove_tensor *x, grove_tensor *w, grove_tensor *b, int32_t stride, int32_t padding,
                       int32_t groups, int32_t *kind)
{
    if (!gv_check_f32(op, x) || !gv_check_f32(op, w)) return false;
    if (b && !gv_check_f32(op, b)) return false;
    if (!gv_check_same_device(op, x, w) || (b && !gv_check_same_device(op, x, b))) return false;
    if (x->ndim != 4) {
        gv_fail("%s: input %s must be 4-d NHWC (batch, height, width, channels)", op, gv_shape_str(x));
        return false;
    }
    if (w->ndim != 4) {
        gv_fail("%s: weight %s must be 4-d (out_channels, in_channels/groups, kh, kw)", op, gv_shape_str(w));
        return false;
    }
    if (groups < 1) {
        gv_fail("%s: input %s, weight %s: groups %d must be >= 1", op, gv_shape_str(x), gv_shape_str(w), groups);
        return false;
    }
    if (stride < 1) {
        gv_fail("%s: input %s, weight %s: stride %d must be >= 1", op, gv_shape_str(x), gv_shape_str(w), stride);
        return false;
    }
    if (padding < 0) {
        gv_fail("%s: input %s, weight %s: padding %d must be >= 0", op, gv_shape_str(x), gv_shape_str(w), padding);
        return false;
    }
    int64_t cin = x->shape[3], cout = w->shape[0];
    if (cin % groups || cout % groups) {
        gv_fail("%s: input %s, weight %s: channels (%lld in, %lld out) are not divisible by groups %d", op,
                gv_shape_str(x), gv_shape_str(w), (long long)cin, (long long)cout, groups);
        return false;
    }
    if (w->shape[1] != cin / groups) {
        gv_fail("%s: input %s has %lld channels but weight %s expects %lld per group x %d groups = %lld", op,
                gv_shape_str(x), (long long)cin, gv_shape_str(w), (long long)w->shape[1], groups,
                (long long)(w->shape[1] * groups));
        return false;
    }
    int64_t kh = w->shape[2], kw = w->shape[3];
    if (kh < 1 || kw < 1) {
        gv_fail("%s: weight %s has an empty %lldx%lld kernel", op, gv_shape_str(w), (long long)kh, (long long)kw);
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != cout)) {
        gv_fail("%s: bias %s does not match weight %s (expected [%lld])", op, gv_shape_str(b), gv_shape_str(w),
                (long long)cout);
        return false;
    }
    if (x->shape[1] + 2 * (int64_t)padding < kh || x->shape[2] + 2 * (int64_t)padding < kw) {
        gv_fail("%s: input %s with padding %d is smaller than the %lldx%lld kernel of weight %s", op, gv_shape_str(x),
                padding, (long long)kh, (long long)kw, gv_shape_str(w));
        return false;
    }
    /* BLAS takes int sizes: the column width kh·kw·cin, the channels, and
     * (for the GEMMs over all pixels at once) the pixel count. */
    int64_t ho = (x->shape[1] + 2 * (int64_t)padding - kh) / stride + 1;
    int64_t wo = (x->shape[2] + 2 * (int64_t)padding - kw) / stride + 1;
    if (kh * kw * cin > INT_MAX || cout > INT_MAX || x->shape[0] * ho * wo > INT_MAX ||
        x->shape[0] * x->shape[1] * x->shape[2] > INT_MAX) {
        gv_fail("%s: input %s, weight %s: too large for BLAS's int sizes", op, gv_shape_str(x), gv_shape_str(w));
        return false;
    }
    if (kh == 1 && kw == 1 && groups == 1 && stride == 1 && padding == 0)
        *kind = CONV_1X1;
    else if (groups == cin && cout == cin && kh == kw && kh <= GV_DW_MAX_K && stride == 1)
        *kind = CONV_DEPTHWISE;
    else
        *kind = CONV_GENERAL;
    return true;
}

/* Ends a convolution's forward: the backward reads x for dw and w for dx,
 * so the node keeps their contiguous data and the geometry. */
static grove_tensor *conv_end(gv_op *o, grove_tensor *xc, grove_tensor *wc, int32_t kind, int32_t padding,
                              int32_t stride, int32_t groups)
{
    gv_op_save(o, 0, xc);
    gv_op_save(o, 1, wc);
    if (o->node) {
        o->node->ints[0] = kind;
        o->node->ints[1] = padding;
        o->node->ints[2] = stride;
        o->node->ints[3] = groups;
    }
    return gv_op_end(o);
}

grove_tensor *grove_conv2d(grove_tensor *x, grove_tensor *w, grove_tensor *b, int32_t stride, int32_t padding,
                           int32_t groups)
{
    int32_t kind;
    if (!conv_check("conv2d", x, w, b, stride, padding, groups, &kind)) return NULL;
    gv_conv_shape s = conv_shape_of(x, w, stride, padding, groups);
    int64_t out_shape[4] = {s.b, s.ho, s.wo, s.cout};
    grove_tensor *inputs[3] = {x, w, b};
    gv_op o;
    if (!gv_op_begin(&o, "conv2d", conv_backward, 3, inputs)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x), *wc = gv_op_input(&o, w), *bc = gv_op_input(&o, b);
    grove_tensor *out = gv_op_output(&o, 4, out_shape, GROVE_F32);
    if (kind == CONV_1X1) {
        /* y (m, cout) = x (m, cin) · w (cout, cin)ᵀ + bias: the weight read transposed in place. */
        GV_OP_CALL(&o, gemm, false, true, (int)(s.b * s.h * s.w), (int)s.cout, (int)s.cin, xc->data, (int)s.cin,
                   wc->data, (int)s.cin, bc ? bc->data : NULL, out->data);
    } else if (kind == CONV_DEPTHWISE) {
        grove_tensor *wt = o.ok ? gv_op_hold(&o, taps_major(wc)) : NULL;
        GV_OP_CALL(&o, dwconv_forward, s.b, s.h, s.w, s.cin, s.kh, padding, xc->data, wt->data,
                   bc ? bc->data : NULL, out->data);
    } else {
        grove_tensor *wk = o.ok ? gv_op_hold(&o, weight_tap_major(wc)) : NULL;
        int64_t floats = GV_OP_VALUE(&o, conv_scratch, &s);
        grove_tensor *scratch = gv_op_temp(&o, 1, &floats, GROVE_F32);
        GV_OP_CALL(&o, conv_forward, &s, xc->data, wk->data, bc ? bc->data : NULL, out->data, scratch->data);
    }
    return conv_end(&o, xc, wc, kind, padding, stride, groups);
}

/* The bf16 forward runs every case through the general kernel
 * (conv_forward_bf16: oneDNN's bf16 convolution, or the f32 forward of the
 * rounded operands). The node records the f32 case, so the backward is the
 * f32 convolution's at the unrounded operands: bf16 convolutions are meant
 * for inference (the DC-AE decode), and a gradient through them is the one
 * of the f32 convolution, as if the rounding were the identity. */
grove_tensor *grove_conv2d_bf16(grove_tensor *x, grove_tensor *w, grove_tensor *b, int32_t stride, int32_t padding,
                                int32_t groups)
{
    int32_t kind;
    if (!conv_check("conv2d_bf16", x, w, b, stride, padding, groups, &kind)) return NULL;
    gv_conv_shape s = conv_shape_of(x, w, stride, padding, groups);
    int64_t out_shape[4] = {s.b, s.ho, s.wo, s.cout};
    grove_tensor *inputs[3] = {x, w, b};
    gv_op o;
    if (!gv_op_begin(&o, "conv2d_bf16", conv_backward, 3, inputs)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x), *wc = gv_op_input(&o, w), *bc = gv_op_input(&o, b);
    grove_tensor *out = gv_op_output(&o, 4, out_shape, GROVE_F32);
    grove_tensor *wk = o.ok ? gv_op_hold(&o, weight_tap_major(wc)) : NULL;
    int64_t nbytes = GV_OP_VALUE(&o, conv_bf16_scratch, &s);
    grove_tensor *scratch = gv_op_temp(&o, 1, &nbytes, GROVE_U8);
    GV_OP_CALL(&o, conv_forward_bf16, &s, xc->data, wk->data, bc ? bc->data : NULL, out->data, scratch->data);
    return conv_end(&o, xc, wc, kind, padding, stride, groups);
}

bool grove_conv_dnnl_available(void) { return gv_cpu_conv_dnnl_available(); }

void grove_conv_set_dnnl(int32_t on) { gv_cpu_conv_dnnl_enable(on != 0); }

void grove_conv_set_winograd(int32_t on) { gv_cpu_conv_winograd_enable(on != 0); }

bool grove_conv_bf16_dnnl_available(void) { return gv_cpu_conv_bf16_dnnl_available(); }

void grove_conv_bf16_set_dnnl(int32_t on) { gv_cpu_conv_bf16_dnnl_enable(on != 0); }

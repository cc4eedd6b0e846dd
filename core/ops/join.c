/*
 * join.c — cat, stack and constant pad. Their backwards cut the gradient
 * back into the inputs' pieces with narrow.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

/* ---- cat -------------------------------------------------------------------- */

/* A contiguous copy of narrow(g, dim, start, length). */
static grove_tensor *narrow_copy(grove_tensor *g, int32_t dim, int64_t start, int64_t length)
{
    grove_tensor *v = grove_narrow(g, dim, start, length);
    if (!v) return NULL;
    grove_tensor *c = grove_contiguous(v);
    grove_tensor_release(v);
    return c;
}

/* The node's inputs are the pieces that need a gradient; ints[0] is the
 * dimension and ints[1 + i] where input i starts along it. */
static grove_status cat_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t dim = (int32_t)n->ints[0];
    for (int32_t i = 0; i < n->n_inputs; i++) {
        if (!n->needs_grad[i]) continue;
        gi[i] = narrow_copy(g, dim, n->ints[1 + i], n->in_shape[i][dim]);
        if (!gi[i]) return -1;
    }
    return 0;
}

/* Concatenates validated tensors along dim. A node holds at most
 * GV_NODE_MAX_INPUTS inputs, so with more pieces needing a gradient the
 * cat is built as a tree of smaller cats. */
static grove_tensor *cat_impl(int32_t n, grove_tensor *const *ts, int32_t dim)
{
    int32_t tracked = 0;
    for (int32_t i = 0; i < n; i++) tracked += gv_tracks(ts[i]);
    if (tracked > GV_NODE_MAX_INPUTS) {
        int32_t groups = (n + GV_NODE_MAX_INPUTS - 1) / GV_NODE_MAX_INPUTS;
        grove_tensor **parts = calloc((size_t)groups, sizeof *parts);
        if (!parts) return gv_fail_null("cat: out of memory");
        grove_tensor *out = NULL;
        int32_t made = 0;
        for (; made < groups; made++) {
            int32_t lo = made * GV_NODE_MAX_INPUTS, cnt = n - lo < GV_NODE_MAX_INPUTS ? n - lo : GV_NODE_MAX_INPUTS;
            if (!(parts[made] = cat_impl(cnt, ts + lo, dim))) break;
        }
        if (made == groups) out = cat_impl(groups, parts, dim);
        for (int32_t i = 0; i < made; i++) grove_tensor_release(parts[i]);
        free(parts);
        return out;
    }

    const grove_tensor *t0 = ts[0];
    int64_t shape[GROVE_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    shape[dim] = 0;
    for (int32_t i = 0; i < n; i++) shape[dim] += ts[i]->shape[dim];
    /* The node's inputs are the pieces that need a gradient (ts[0] only
     * names the device when none does). */
    grove_tensor *inputs[GV_NODE_MAX_INPUTS];
    int64_t starts[GV_NODE_MAX_INPUTS];
    int32_t k = 0;
    int64_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        if (gv_tracks(ts[i])) {
            inputs[k] = ts[i];
            starts[k++] = at;
        }
        at += ts[i]->shape[dim];
    }
    gv_op o;
    if (!gv_op_begin(&o, "cat", cat_backward, k, k ? inputs : ts)) return NULL;
    GV_OP_READY(&o, cat_part);
    grove_tensor *out = gv_op_output(&o, t0->ndim, shape, t0->dtype);
    /* Seen as (outer, shape[dim] * inner): piece i fills a column band. */
    int64_t esz = grove_dtype_size(t0->dtype), outer = 1, inner = esz;
    for (int32_t d = 0; d < dim; d++) outer *= shape[d];
    for (int32_t d = dim + 1; d < t0->ndim; d++) inner *= shape[d];
    at = 0;
    for (int32_t i = 0; i < n && o.ok; i++) {
        grove_tensor *c = gv_contiguous_data(ts[i]);
        if (!c) {
            o.ok = false;
            break;
        }
        int64_t len = ts[i]->shape[dim];
        o.k->cat_part(outer, len * inner, shape[dim] * inner, at * inner, c->data, out->data);
        grove_tensor_release(c);
        at += len;
    }
    o.ok = o.ok && !gv_kernels_check(o.k);
    if (o.node) {
        o.node->ints[0] = dim;
        for (int32_t i = 0; i < k; i++) o.node->ints[1 + i] = starts[i];
    }
    return gv_op_end(&o);
}

/* Same dtype, device and rank; when same_all, equal shapes, otherwise equal
 * except along dim. */
static bool check_pieces(const char *op, int32_t n, grove_tensor *const *ts, int32_t dim, bool same_all)
{
    for (int32_t i = 0; i < n; i++) {
        const grove_tensor *t = ts[i], *t0 = ts[0];
        if (!gv_check_live(op, t)) return false;
        if (t->dtype != t0->dtype) {
            gv_fail("%s: tensor %d is %s %s but tensor 1 is %s %s", op, i + 1, grove_dtype_name(t->dtype),
                    gv_shape_str(t), grove_dtype_name(t0->dtype), gv_shape_str(t0));
            return false;
        }
        if (!gv_check_same_device(op, t0, t)) return false;
        bool ok = t->ndim == t0->ndim;
        for (int32_t d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == t0->shape[d] || (!same_all && d == dim);
        if (!ok) {
            if (same_all)
                gv_fail("%s: tensor %d has shape %s but tensor 1 has %s; all shapes must be equal", op, i + 1,
                        gv_shape_str(t), gv_shape_str(t0));
            else
                gv_fail("%s: tensor %d has shape %s but tensor 1 has %s; shapes must match except in dimension %d",
                        op, i + 1, gv_shape_str(t), gv_shape_str(t0), dim);
            return false;
        }
    }
    return true;
}

grove_tensor *grove_cat(int32_t n, grove_tensor *const *ts, int32_t dim)
{
    if (n <= 0 || !ts) return gv_fail_null("cat: expected at least one tensor, got %d", n);
    if (!gv_check_live("cat", ts[0])) return NULL;
    if (ts[0]->ndim == 0) return gv_fail_null("cat: 0-d tensors cannot be concatenated (use stack)");
    if (!gv_norm_dim("cat", ts[0], &dim)) return NULL;
    if (!check_pieces("cat", n, ts, dim, false)) return NULL;
    if (!gv_kernels_for("cat", ts[0])) return NULL;
    return cat_impl(n, ts, dim);
}

grove_tensor *grove_stack(int32_t n, grove_tensor *const *ts, int32_t dim)
{
    if (n <= 0 || !ts) return gv_fail_null("stack: expected at least one tensor, got %d", n);
    if (!gv_check_live("stack", ts[0])) return NULL;
    if (ts[0]->ndim >= GROVE_MAX_DIMS)
        return gv_fail_null("stack: %s already has %d dimensions", gv_shape_str(ts[0]), GROVE_MAX_DIMS);
    int32_t nd = ts[0]->ndim + 1;
    if (dim < -nd || dim >= nd)
        return gv_fail_null("stack: dimension %d out of range for stacking %s (%d dimensions)", dim,
                            gv_shape_str(ts[0]), nd);
    if (dim < 0) dim += nd;
    if (!check_pieces("stack", n, ts, -1, true)) return NULL;
    if (!gv_kernels_for("stack", ts[0])) return NULL;
    /* unsqueeze is a recorded view, so the cat's backward reaches the inputs. */
    grove_tensor **us = calloc((size_t)n, sizeof *us);
    if (!us) return gv_fail_null("stack: out of memory");
    grove_tensor *out = NULL;
    int32_t made = 0;
    for (; made < n; made++)
        if (!(us[made] = grove_unsqueeze(ts[made], dim))) break;
    if (made == n) out = cat_impl(n, us, dim);
    for (int32_t i = 0; i < made; i++) grove_tensor_release(us[i]);
    free(us);
    return out;
}

/* ---- pad -------------------------------------------------------------------- */

/* ints[d] is the padding before dimension d; the input's shape gives the
 * length to keep. */
static grove_status pad_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *v = g;
    grove_tensor_retain(v);
    for (int32_t d = 0; d < n->in_ndim[0]; d++) {
        if (v->shape[d] == n->in_shape[0][d]) continue;
        grove_tensor *w = grove_narrow(v, d, n->ints[d], n->in_shape[0][d]);
        grove_tensor_release(v);
        if (!w) return -1;
        v = w;
    }
    gi[0] = grove_contiguous(v);
    grove_tensor_release(v);
    return gi[0] ? 0 : -1;
}

grove_tensor *grove_pad(grove_tensor *x, int32_t npairs, const int64_t *pads, double value)
{
    if (!gv_check_live("pad", x)) return NULL;
    if (npairs < 0 || npairs > x->ndim || (npairs > 0 && !pads))
        return gv_fail_null("pad: %d (before, after) pairs given for %s, which has %d dimensions", npairs,
                            gv_shape_str(x), x->ndim);
    int64_t before[GROVE_MAX_DIMS] = {0}, shape[GROVE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    for (int32_t i = 0; i < npairs; i++) {
        int32_t d = x->ndim - 1 - i;
        int64_t lo = pads[2 * i], hi = pads[2 * i + 1];
        if (lo < 0 || hi < 0)
            return gv_fail_null("pad: negative padding (%lld, %lld) for dimension %d of %s; only constant padding "
                                "with pads >= 0 is supported (use narrow to crop)",
                                (long long)lo, (long long)hi, d, gv_shape_str(x));
        if (lo > ((int64_t)1 << 50) || hi > ((int64_t)1 << 50))
            return gv_fail_null("pad: padding (%lld, %lld) for dimension %d of %s is too large", (long long)lo,
                                (long long)hi, d, gv_shape_str(x));
        before[d] = lo;
        shape[d] += lo + hi;
    }
    if (!gv_shape_ok("pad", x->ndim, shape)) return NULL;
    gv_op o;
    if (!gv_op_begin(&o, "pad", pad_backward, 1, &x)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x);
    grove_tensor *out = gv_op_output(&o, x->ndim, shape, x->dtype);
    /* One element of the fill value, host bytes the kernel copies. */
    unsigned char fill[8];
    gv_store_double(fill, x->dtype, 0, value);
    GV_OP_CALL(&o, pad, x->ndim, x->shape, shape, before, grove_dtype_size(x->dtype), fill, xc->data, out->data);
    if (o.node) memcpy(o.node->ints, before, sizeof before);
    return gv_op_end(&o);
}

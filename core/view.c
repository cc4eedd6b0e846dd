/*
 * view.c — views that share storage: reshape, permute, narrow, select,
 * expand, squeeze. Each records on the tape so gradients flow through views.
 */
#include "internal.h"

#include <string.h>

/* ---- backward functions ------------------------------------------------- */

/* view, reshape, squeeze, unsqueeze: the gradient takes the input's shape back. */
static grove_status reshape_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    gi[0] = grove_reshape(g, n->in_ndim[0], n->in_shape[0]);
    return gi[0] ? 0 : -1;
}

static grove_status permute_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t inv[GROVE_MAX_DIMS];
    for (int32_t i = 0; i < n->in_ndim[0]; i++) inv[n->ints[i]] = i;
    gi[0] = grove_permute(g, n->in_ndim[0], inv);
    return gi[0] ? 0 : -1;
}

/* narrow and select: scatter the gradient into zeros of the input's shape. */
static grove_status slice_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *z = grove_tensor_zeros(n->in_ndim[0], n->in_shape[0], GROVE_F32, g->device);
    if (!z) return -1;
    int32_t dim = (int32_t)n->ints[0];
    grove_tensor *part = n->ints[2] < 0 ? grove_select(z, dim, n->ints[1]) : grove_narrow(z, dim, n->ints[1], n->ints[2]);
    grove_status st = part ? grove_copy_(part, g) : -1;
    grove_tensor_release(part);
    if (st) {
        grove_tensor_release(z);
        return -1;
    }
    gi[0] = z;
    return 0;
}

static grove_status expand_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    gi[0] = gv_sum_to(g, n->in_ndim[0], n->in_shape[0]);
    return gi[0] ? 0 : -1;
}

/* ---- shared tail: make the alias and record it ---------------------------- */

static grove_tensor *make_view(const char *op, grove_tensor *t, int32_t ndim, const int64_t *shape,
                               const int64_t *stride, int64_t offset, gv_backward_fn fn, const int64_t *ints,
                               int32_t nints)
{
    grove_tensor *v = gv_alias(t, ndim, shape, stride, offset);
    if (!v) return NULL;
    grove_node *node;
    if (gv_node_begin(op, fn, 1, &t, &node)) {
        grove_tensor_release(v);
        return NULL;
    }
    if (node) {
        if (nints) memcpy(node->ints, ints, (size_t)nints * sizeof *ints);
        gv_node_finish(node, v);
    }
    return v;
}

/* Resolves one -1 entry and checks the element count. */
static bool infer_shape(const char *op, const grove_tensor *t, int32_t ndim, const int64_t *shape, int64_t *out)
{
    if (ndim < 0 || ndim > GROVE_MAX_DIMS) {
        gv_fail("%s: %d dimensions requested; tensors have at most %d", op, ndim, GROVE_MAX_DIMS);
        return false;
    }
    int32_t infer = -1;
    int64_t known = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] == -1 && infer < 0) {
            infer = i;
            out[i] = 1;
            continue;
        }
        if (shape[i] < 0) {
            gv_fail("%s: invalid size %lld in %s", op, (long long)shape[i], gv_dims_str(ndim, shape));
            return false;
        }
        out[i] = shape[i];
    }
    /* bounded before multiplying: sizes come from callers */
    if (!gv_shape_ok(op, ndim, out)) return false;
    for (int32_t i = 0; i < ndim; i++)
        if (i != infer) known *= out[i];
    int64_t n = grove_tensor_numel(t);
    if (infer >= 0) {
        if (known == 0 || n % known) {
            gv_fail("%s: cannot view %s as %s", op, gv_shape_str(t), gv_dims_str(ndim, shape));
            return false;
        }
        out[infer] = n / known;
        known = n;
        if (!gv_shape_ok(op, ndim, out)) return false;
    }
    if (known != n) {
        gv_fail("%s: cannot view %s (%lld elements) as %s (%lld elements)", op, gv_shape_str(t), (long long)n,
                gv_dims_str(ndim, shape), (long long)known);
        return false;
    }
    return true;
}

/* Strides for viewing t as shape without copying, as torch's computeStride;
 * false when the memory layout does not allow it. */
static bool view_strides(const grove_tensor *t, int32_t ndim, const int64_t *shape, int64_t *stride)
{
    if (grove_tensor_numel(t) == 0 || grove_tensor_is_contiguous(t)) {
        gv_contiguous_strides(ndim, shape, stride);
        return true;
    }
    /* Walk the input's dimensions from the innermost, grouping runs that are
     * contiguous with each other into chunks; each chunk must be exactly
     * covered by a run of the requested dimensions. */
    int32_t vd = ndim - 1;
    int64_t base = t->stride[t->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int32_t td = t->ndim - 1; td >= 0; td--) {
        tensor_numel *= t->shape[td];
        if (td == 0 || (t->shape[td - 1] != 1 && t->stride[td - 1] != tensor_numel * base)) {
            while (vd >= 0 && (view_numel < tensor_numel || shape[vd] == 1)) {
                stride[vd] = view_numel * base;
                view_numel *= shape[vd];
                vd--;
            }
            if (view_numel != tensor_numel) return false;
            if (td > 0) {
                base = t->stride[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return vd == -1;
}

grove_tensor *grove_view(grove_tensor *t, int32_t ndim, const int64_t *shape)
{
    if (!gv_check_live("view", t)) return NULL;
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS];
    if (!infer_shape("view", t, ndim, shape, sh)) return NULL;
    if (!view_strides(t, ndim, sh, st))
        return gv_fail_null("view: %s with strides that do not allow viewing as %s; use reshape or :contiguous()",
                            gv_shape_str(t), gv_dims_str(ndim, sh));
    return make_view("view", t, ndim, sh, st, t->offset, reshape_backward, NULL, 0);
}

grove_tensor *grove_reshape(grove_tensor *t, int32_t ndim, const int64_t *shape)
{
    if (!gv_check_live("reshape", t)) return NULL;
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS];
    if (!infer_shape("reshape", t, ndim, shape, sh)) return NULL;
    if (view_strides(t, ndim, sh, st)) return make_view("reshape", t, ndim, sh, st, t->offset, reshape_backward, NULL, 0);
    grove_tensor *c = grove_contiguous(t);
    if (!c) return NULL;
    grove_tensor *v = grove_view(c, ndim, sh);
    grove_tensor_release(c);
    return v;
}

grove_tensor *grove_permute(grove_tensor *t, int32_t ndim, const int32_t *dims)
{
    if (!gv_check_live("permute", t)) return NULL;
    if (ndim != t->ndim)
        return gv_fail_null("permute: %d dimensions given for %s (%d dimensions)", ndim, gv_shape_str(t), t->ndim);
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS], ints[GROVE_MAX_DIMS];
    bool seen[GROVE_MAX_DIMS] = {false};
    for (int32_t i = 0; i < ndim; i++) {
        int32_t d = dims[i];
        if (!gv_norm_dim("permute", t, &d)) return NULL;
        if (seen[d]) return gv_fail_null("permute: dimension %d repeated for %s", dims[i], gv_shape_str(t));
        seen[d] = true;
        sh[i] = t->shape[d];
        st[i] = t->stride[d];
        ints[i] = d;
    }
    return make_view("permute", t, ndim, sh, st, t->offset, permute_backward, ints, ndim);
}

grove_tensor *grove_transpose(grove_tensor *t, int32_t dim0, int32_t dim1)
{
    if (!gv_check_live("transpose", t)) return NULL;
    if (!gv_norm_dim("transpose", t, &dim0) || !gv_norm_dim("transpose", t, &dim1)) return NULL;
    int32_t dims[GROVE_MAX_DIMS];
    for (int32_t i = 0; i < t->ndim; i++) dims[i] = i;
    dims[dim0] = dim1;
    dims[dim1] = dim0;
    return grove_permute(t, t->ndim, dims);
}

grove_tensor *grove_narrow(grove_tensor *t, int32_t dim, int64_t start, int64_t length)
{
    if (!gv_check_live("narrow", t)) return NULL;
    if (!gv_norm_dim("narrow", t, &dim)) return NULL;
    /* written so that no sum can overflow: start and length come from callers */
    if (start < 0 || length < 0 || start > t->shape[dim] || length > t->shape[dim] - start)
        return gv_fail_null("narrow: range [%lld, %lld) out of bounds for dimension %d of %s", (long long)start,
                            (long long)((uint64_t)start + (uint64_t)length), dim, gv_shape_str(t));
    int64_t sh[GROVE_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    sh[dim] = length;
    int64_t ints[3] = {dim, start, length};
    return make_view("narrow", t, t->ndim, sh, t->stride, t->offset + start * t->stride[dim], slice_backward, ints, 3);
}

grove_tensor *grove_select(grove_tensor *t, int32_t dim, int64_t index)
{
    if (!gv_check_live("select", t)) return NULL;
    if (!gv_norm_dim("select", t, &dim)) return NULL;
    int64_t given = index;
    if (index < 0) index += t->shape[dim];
    if (index < 0 || index >= t->shape[dim])
        return gv_fail_null("select: index %lld out of range for dimension %d of %s", (long long)given, dim,
                            gv_shape_str(t));
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS];
    int32_t k = 0;
    for (int32_t i = 0; i < t->ndim; i++) {
        if (i == dim) continue;
        sh[k] = t->shape[i];
        st[k++] = t->stride[i];
    }
    int64_t ints[3] = {dim, index, -1};
    return make_view("select", t, k, sh, st, t->offset + index * t->stride[dim], slice_backward, ints, 3);
}

grove_tensor *grove_expand(grove_tensor *t, int32_t ndim, const int64_t *shape)
{
    if (!gv_check_live("expand", t)) return NULL;
    if (ndim < t->ndim || ndim > GROVE_MAX_DIMS)
        return gv_fail_null("expand: cannot expand %s to %s", gv_shape_str(t), gv_dims_str(ndim, shape));
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS];
    int32_t lead = ndim - t->ndim;
    for (int32_t i = 0; i < ndim; i++) sh[i] = shape[i] == -1 ? 1 : shape[i];
    if (!gv_shape_ok("expand", ndim, sh)) return NULL;
    for (int32_t i = 0; i < ndim; i++) {
        int32_t it = i - lead;
        int64_t have = it >= 0 ? t->shape[it] : 1;
        int64_t want = shape[i] == -1 && it >= 0 ? have : shape[i];
        if (want < 0 || (have != want && have != 1))
            return gv_fail_null("expand: cannot expand %s to %s (dimension %d: %lld to %lld)", gv_shape_str(t),
                                gv_dims_str(ndim, shape), i, (long long)have, (long long)shape[i]);
        sh[i] = want;
        st[i] = (it < 0 || have != want) ? 0 : t->stride[it];
    }
    return make_view("expand", t, ndim, sh, st, t->offset, expand_backward, NULL, 0);
}

grove_tensor *grove_squeeze(grove_tensor *t, int32_t dim)
{
    if (!gv_check_live("squeeze", t)) return NULL;
    if (dim >= 0 && !gv_norm_dim("squeeze", t, &dim)) return NULL;
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS];
    int32_t k = 0;
    for (int32_t i = 0; i < t->ndim; i++) {
        bool drop = t->shape[i] == 1 && (dim < 0 || dim == i);
        if (drop) continue;
        sh[k] = t->shape[i];
        st[k++] = t->stride[i];
    }
    return make_view("squeeze", t, k, sh, st, t->offset, reshape_backward, NULL, 0);
}

grove_tensor *grove_unsqueeze(grove_tensor *t, int32_t dim)
{
    if (!gv_check_live("unsqueeze", t)) return NULL;
    if (t->ndim >= GROVE_MAX_DIMS)
        return gv_fail_null("unsqueeze: %s already has %d dimensions", gv_shape_str(t), GROVE_MAX_DIMS);
    if (dim < 0) dim += t->ndim + 1;
    if (dim < 0 || dim > t->ndim)
        return gv_fail_null("unsqueeze: dimension %d out of range for %s", dim, gv_shape_str(t));
    int64_t sh[GROVE_MAX_DIMS], st[GROVE_MAX_DIMS];
    int32_t k = 0;
    for (int32_t i = 0; i <= t->ndim; i++) {
        if (i == dim) {
            sh[k] = 1;
            st[k++] = i < t->ndim ? t->stride[i] * t->shape[i] : 1;
        }
        if (i < t->ndim) {
            sh[k] = t->shape[i];
            st[k++] = t->stride[i];
        }
    }
    return make_view("unsqueeze", t, t->ndim + 1, sh, st, t->offset, reshape_backward, NULL, 0);
}

/* reduce.c — front-ends of sum, mean, max and min over dimensions, of
 * max/min with positions, of argmax/argmin, and of any/all over u8 masks.
 *
 * The gradient of max and min goes entirely to the first position of the
 * extreme value (in row-major order over the reduced dimensions), the
 * position reduce_arg reports; ties do not share it. NaN counts as the
 * extreme, so a NaN input propagates to the output and takes the gradient. */
#include "internal.h"
#include "backend.h"

#include <math.h>
#include <string.h>

static const char *const reduce_names[GROVE_REDUCE_COUNT] = {"sum", "mean", "max", "min"};

/* The reduced dimensions of a node's input live in ints[0..ndim) as 0/1
 * flags; ints[GROVE_MAX_DIMS] holds the op. */
enum { SLOT_OP = GROVE_MAX_DIMS };

/* Splits shape/stride into kept and reduced dimensions. */
static gv_reduce_plan make_plan(int32_t ndim, const int64_t *shape, const int64_t *stride, const bool *mask)
{
    gv_reduce_plan p;
    memset(&p, 0, sizeof p);
    for (int32_t i = 0; i < ndim; i++) {
        if (mask[i]) {
            p.red_shape[p.nred] = shape[i];
            p.red_stride[p.nred++] = stride[i];
        } else {
            p.keep_shape[p.nkeep] = shape[i];
            p.keep_stride[p.nkeep++] = stride[i];
        }
    }
    return p;
}

/* The input's shape with reduced dimensions set to 1 (or removed). */
static int32_t reduced_shape(int32_t ndim, const int64_t *shape, const bool *mask, bool keepdim, int64_t *out)
{
    int32_t k = 0;
    for (int32_t i = 0; i < ndim; i++) {
        if (!mask[i]) out[k++] = shape[i];
        else if (keepdim) out[k++] = 1;
    }
    return k;
}

/* ---- backward --------------------------------------------------------------- */

/* sum and mean: spread g back over the reduced dimensions. */
static grove_status sum_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t ndim = n->in_ndim[0];
    bool mask[GROVE_MAX_DIMS];
    int64_t kshape[GROVE_MAX_DIMS];
    for (int32_t i = 0; i < ndim; i++) mask[i] = n->ints[i] != 0;
    reduced_shape(ndim, n->in_shape[0], mask, true, kshape);
    grove_tensor *r = grove_reshape(g, ndim, kshape);
    grove_tensor *e = r ? grove_expand(r, ndim, n->in_shape[0]) : NULL;
    grove_tensor_release(r);
    if (!e) return -1;
    if (n->ints[SLOT_OP] == GROVE_MEAN) gi[0] = grove_binary_scalar(e, 1.0 / n->scalars[0], GROVE_MUL, false);
    else gi[0] = grove_contiguous(e);
    grove_tensor_release(e);
    return gi[0] ? 0 : -1;
}

/* max and min: g goes to the saved position of each extreme. */
static grove_status arg_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t ndim = n->in_ndim[0];
    bool mask[GROVE_MAX_DIMS];
    int64_t stride[GROVE_MAX_DIMS];
    for (int32_t i = 0; i < ndim; i++) mask[i] = n->ints[i] != 0;
    gv_contiguous_strides(ndim, n->in_shape[0], stride);
    const gv_kernels *k = gv_kernels_for(n->name, g);
    if (!k) return -1;
    grove_tensor *gx = grove_tensor_zeros(ndim, n->in_shape[0], GROVE_F32, g->device);
    grove_tensor *gc = gx ? gv_contiguous_data(g) : NULL;
    grove_tensor *idx = gc ? gv_contiguous_data(n->saved[0]) : NULL;
    grove_status st = idx ? 0 : -1;
    if (idx) {
        gv_reduce_plan p = make_plan(ndim, n->in_shape[0], stride, mask);
        st = GV_KCALL(n->name, k, reduce_arg_scatter, &p, idx->data, gc->data, gx->data);
    }
    grove_tensor_release(gc);
    grove_tensor_release(idx);
    if (st) {
        grove_tensor_release(gx);
        return -1;
    }
    gi[0] = gx;
    return 0;
}

/* ---- the shared forward -------------------------------------------------------- */

/* Reduces a over the dimensions in mask. With idx_out (max/min only) the
 * positions come back too, as an i64 tensor shaped like the values. */
static grove_tensor *reduce_masked(const char *name, grove_tensor *a, int32_t op, const bool *mask, bool keepdim,
                                   grove_tensor **idx_out, bool record)
{
    int64_t total = 1;
    bool all = true;
    for (int32_t i = 0; i < a->ndim; i++) {
        if (mask[i]) total *= a->shape[i];
        else all = false;
    }
    if ((op == GROVE_MAX || op == GROVE_MIN) && total == 0) {
        const char *what = op == GROVE_MAX ? "maximum" : "minimum";
        if (all) return gv_fail_null("%s: empty tensor %s has no %s", name, gv_shape_str(a), what);
        int64_t dl[GROVE_MAX_DIMS];
        int32_t k = 0;
        for (int32_t i = 0; i < a->ndim; i++)
            if (mask[i]) dl[k++] = i;
        return gv_fail_null("%s: dimensions %s of %s are empty and have no %s", name, gv_dims_str(k, dl),
                            gv_shape_str(a), what);
    }
    int64_t oshape[GROVE_MAX_DIMS];
    int32_t ondim = reduced_shape(a->ndim, a->shape, mask, keepdim, oshape);
    bool arg = op == GROVE_MAX || op == GROVE_MIN;
    gv_op o;
    if (!gv_op_begin(&o, name, record ? (arg ? arg_backward : sum_backward) : NULL, 1, &a)) return NULL;
    grove_tensor *out = gv_op_output(&o, ondim, oshape, GROVE_F32);
    grove_tensor *idx = arg && (o.node || idx_out) ? gv_op_temp(&o, ondim, oshape, GROVE_I64) : NULL;
    /* The kernel reads a through its strides: no copy for views. */
    gv_reduce_plan p = make_plan(a->ndim, a->shape, a->stride, mask);
    if (idx) GV_OP_CALL(&o, reduce_arg, op, &p, a->data, out->data, idx->data);
    else GV_OP_CALL(&o, reduce, op, &p, a->data, out->data);
    if (o.node) {
        for (int32_t i = 0; i < a->ndim; i++) o.node->ints[i] = mask[i];
        o.node->ints[SLOT_OP] = op;
        o.node->scalars[0] = (double)total;
    }
    if (idx) gv_op_save(&o, 0, idx);
    if (o.ok && idx_out) {
        grove_tensor_retain(idx);
        *idx_out = idx;
    }
    return gv_op_end(&o);
}

/* ---- public entry points -------------------------------------------------------- */

/* The dimensions a reduction over dims (ndims = 0: all) covers, as flags;
 * false with the error naming name. */
static bool dims_mask(const char *name, const grove_tensor *a, int32_t ndims, const int32_t *dims, bool *mask)
{
    if (ndims < 0 || ndims > GROVE_MAX_DIMS || (ndims > 0 && !dims)) {
        gv_fail("%s: invalid dimension list (%d entries) for %s", name, ndims, gv_shape_str(a));
        return false;
    }
    for (int32_t i = 0; i < GROVE_MAX_DIMS; i++) mask[i] = ndims == 0 && i < a->ndim;
    int64_t listed[GROVE_MAX_DIMS];
    for (int32_t i = 0; i < ndims; i++) listed[i] = dims[i];
    for (int32_t i = 0; i < ndims; i++) {
        int32_t d = dims[i];
        /* A 0-d tensor accepts dimension 0 / -1 as torch does: nothing to reduce. */
        if (a->ndim == 0 && (d == 0 || d == -1) && ndims == 1) continue;
        if (!gv_norm_dim(name, a, &d)) return false;
        if (mask[d]) {
            gv_fail("%s: dimension %d repeated in dimensions %s for %s", name, dims[i], gv_dims_str(ndims, listed),
                    gv_shape_str(a));
            return false;
        }
        mask[d] = true;
    }
    return true;
}

grove_tensor *grove_reduce(grove_tensor *a, int32_t op, int32_t ndims, const int32_t *dims, bool keepdim)
{
    if (op < 0 || op >= GROVE_REDUCE_COUNT) return gv_fail_null("reduce: unknown op %d", op);
    const char *name = reduce_names[op];
    if (!gv_check_f32(name, a)) return NULL;
    bool mask[GROVE_MAX_DIMS];
    if (!dims_mask(name, a, ndims, dims, mask)) return NULL;
    return reduce_masked(name, a, op, mask, keepdim, NULL, true);
}

grove_tensor *grove_reduce_arg(grove_tensor *a, int32_t op, int32_t dim, bool keepdim, grove_tensor **indices)
{
    if (indices) *indices = NULL;
    if (op != GROVE_MAX && op != GROVE_MIN)
        return gv_fail_null("reduce_arg: op %d is not max or min", op);
    const char *name = reduce_names[op];
    if (!gv_check_f32(name, a)) return NULL;
    bool mask[GROVE_MAX_DIMS] = {false};
    if (!(a->ndim == 0 && (dim == 0 || dim == -1))) {
        if (!gv_norm_dim(name, a, &dim)) return NULL;
        mask[dim] = true;
    }
    grove_tensor *idx = NULL;
    grove_tensor *out = reduce_masked(name, a, op, mask, keepdim, &idx, true);
    if (!out) return NULL;
    if (indices) *indices = idx;
    else grove_tensor_release(idx);
    return out;
}

static grove_tensor *arg_extreme(const char *name, grove_tensor *a, int32_t op, int32_t dim, bool keepdim)
{
    if (!gv_check_live(name, a)) return NULL;
    /* Other dtypes compare as f32 (exact below 2^24). */
    grove_tensor *f = a->dtype == GROVE_F32 ? (grove_tensor_retain(a), a) : grove_to_dtype(a, GROVE_F32);
    if (!f) return NULL;
    bool mask[GROVE_MAX_DIMS] = {false};
    if (dim < 0) {
        /* dim < 0 flattens: positions over all dimensions row-major are
         * exactly the flat indices. */
        for (int32_t i = 0; i < f->ndim; i++) mask[i] = true;
    } else if (!(f->ndim == 0 && dim == 0)) {
        if (!gv_norm_dim(name, f, &dim)) {
            grove_tensor_release(f);
            return NULL;
        }
        mask[dim] = true;
    }
    grove_tensor *idx = NULL;
    grove_tensor *vals = reduce_masked(name, f, op, mask, keepdim, &idx, false);
    grove_tensor_release(f);
    grove_tensor_release(vals);
    return vals ? idx : NULL;
}

grove_tensor *grove_argmax(grove_tensor *a, int32_t dim, bool keepdim)
{
    return arg_extreme("argmax", a, GROVE_MAX, dim, keepdim);
}

grove_tensor *grove_argmin(grove_tensor *a, int32_t dim, bool keepdim)
{
    return arg_extreme("argmin", a, GROVE_MIN, dim, keepdim);
}

/* ---- any / all over u8 masks ------------------------------------------------------ */

static grove_tensor *reduce_mask(const char *name, bool all, grove_tensor *a, int32_t ndims, const int32_t *dims,
                                 bool keepdim)
{
    if (!gv_check_live(name, a)) return NULL;
    if (a->dtype != GROVE_U8)
        return gv_fail_null("%s: expected a u8 mask (nonzero = true), got %s %s; compare first (x:ne(0))", name,
                            grove_dtype_name(a->dtype), gv_shape_str(a));
    bool mask[GROVE_MAX_DIMS];
    if (!dims_mask(name, a, ndims, dims, mask)) return NULL;
    int64_t oshape[GROVE_MAX_DIMS];
    int32_t ondim = reduced_shape(a->ndim, a->shape, mask, keepdim, oshape);
    /* The kernel reads a through its strides: no copy for views. */
    gv_reduce_plan p = make_plan(a->ndim, a->shape, a->stride, mask);
    gv_op o;
    if (!gv_op_begin(&o, name, NULL, 1, &a)) return NULL;
    grove_tensor *out = gv_op_output(&o, ondim, oshape, GROVE_U8);
    GV_OP_CALL(&o, reduce_mask, all, &p, a->data, out->data);
    return gv_op_end(&o);
}

grove_tensor *grove_any(grove_tensor *a, int32_t ndims, const int32_t *dims, bool keepdim)
{
    return reduce_mask("any", false, a, ndims, dims, keepdim);
}

grove_tensor *grove_all(grove_tensor *a, int32_t ndims, const int32_t *dims, bool keepdim)
{
    return reduce_mask("all", true, a, ndims, dims, keepdim);
}

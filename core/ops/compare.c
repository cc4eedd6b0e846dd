/*
 * compare.c — comparisons (eq ne lt le gt ge) and logic (and, or, not) with
 * broadcasting, giving u8 masks (1 or 0) for where, masked_fill and the
 * any / all reductions. Masks are not differentiable: nothing is recorded
 * on the tape. Inputs of other dtypes compare as f32 (exact below 2^24, so
 * token ids compare exactly).
 */
#include "backend.h"

#include <string.h>

static const char *const compare_names[GROVE_COMPARE_COUNT] = {"eq", "ne", "lt", "le", "gt", "ge"};
static const char *const compare_syms[GROVE_COMPARE_COUNT] = {"==", "~=", "<", "<=", ">", ">="};
static const char *const logical_names[GROVE_LOGICAL_COUNT] = {"logical_and", "logical_or", "logical_not"};

/* out (u8) = a op b for a, b of one dtype broadcast to shape: the shared
 * tail of every front-end here. */
static grove_tensor *mask_op(const char *name, bool logical, int32_t op, grove_tensor *a, grove_tensor *b,
                             const int64_t *b_stride, int32_t ndim, const int64_t *shape)
{
    int64_t sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
    gv_broadcast_strides(a, ndim, shape, sa);
    if (b_stride) memcpy(sb, b_stride, sizeof sb);
    else gv_broadcast_strides(b, ndim, shape, sb);
    gv_op o;
    if (!gv_op_begin(&o, name, NULL, 1, &a)) return NULL;
    grove_tensor *out = gv_op_output(&o, ndim, shape, GROVE_U8);
    if (logical) GV_OP_CALL(&o, logical, op, ndim, shape, a->data, sa, b->data, sb, out->data);
    else GV_OP_CALL(&o, compare, op, ndim, shape, a->data, sa, b->data, sb, out->data);
    return gv_op_end(&o);
}

grove_tensor *grove_compare(grove_tensor *a, grove_tensor *b, int32_t op)
{
    if (op < 0 || op >= GROVE_COMPARE_COUNT) return gv_fail_null("compare: unknown op %d", op);
    const char *name = compare_names[op];
    if (!gv_check_live(name, a) || !gv_check_live(name, b) || !gv_check_same_device(name, a, b)) return NULL;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    if (!gv_broadcast_shape(name, compare_syms[op], a, b, &ndim, shape)) return NULL;
    grove_tensor *af = grove_to_dtype(a, GROVE_F32), *bf = af ? grove_to_dtype(b, GROVE_F32) : NULL;
    grove_tensor *out = bf ? mask_op(name, false, op, af, bf, NULL, ndim, shape) : NULL;
    grove_tensor_release(af);
    grove_tensor_release(bf);
    return out;
}

grove_tensor *grove_compare_scalar(grove_tensor *a, double s, int32_t op)
{
    if (op < 0 || op >= GROVE_COMPARE_COUNT) return gv_fail_null("compare: unknown op %d", op);
    const char *name = compare_names[op];
    if (!gv_check_live(name, a)) return NULL;
    /* s as a one-element f32 tensor read with zero strides */
    grove_tensor *sf = grove_tensor_full(0, NULL, (float)s, GROVE_F32, a->device);
    grove_tensor *af = sf ? grove_to_dtype(a, GROVE_F32) : NULL;
    static const int64_t zero[GROVE_MAX_DIMS] = {0};
    grove_tensor *out = af ? mask_op(name, false, op, af, sf, zero, a->ndim, a->shape) : NULL;
    grove_tensor_release(af);
    grove_tensor_release(sf);
    return out;
}

static bool check_mask(const char *name, const char *what, const grove_tensor *m)
{
    if (!gv_check_live(name, m)) return false;
    if (m->dtype != GROVE_U8) {
        gv_fail("%s: %s must be a u8 mask (nonzero = true), got %s %s; compare first (x:gt(0)) or convert "
                "with :to(\"u8\")",
                name, what, grove_dtype_name(m->dtype), gv_shape_str(m));
        return false;
    }
    return true;
}

grove_tensor *grove_logical(grove_tensor *a, grove_tensor *b, int32_t op)
{
    if (op < 0 || op >= GROVE_LOGICAL_COUNT) return gv_fail_null("logical: unknown op %d", op);
    const char *name = logical_names[op];
    if (op == GROVE_NOT) {
        if (!check_mask(name, "input", a)) return NULL;
        if (b) return gv_fail_null("%s: takes one mask, got a second (%s)", name, gv_shape_str(b));
        return mask_op(name, true, op, a, a, NULL, a->ndim, a->shape);
    }
    if (!b) return gv_fail_null("%s: needs two masks, got one (%s)", name, gv_shape_str(a));
    if (!check_mask(name, "first mask", a) || !check_mask(name, "second mask", b)) return NULL;
    if (!gv_check_same_device(name, a, b)) return NULL;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS];
    if (!gv_broadcast_shape(name, op == GROVE_AND ? "and" : "or", a, b, &ndim, shape)) return NULL;
    return mask_op(name, true, op, a, b, NULL, ndim, shape);
}

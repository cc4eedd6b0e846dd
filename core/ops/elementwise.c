/* elementwise.c — front-ends of the pointwise ops: unary maps, broadcasting
 * binary ops, scalar forms, pow and clamp, each with its backward. */
#include "internal.h"
#include "backend.h"

#include <math.h>
#include <string.h>

static const char *const unary_names[GROVE_UNARY_COUNT] = {
    "neg", "exp", "log", "sqrt", "rsqrt", "abs", "relu", "silu", "gelu", "sigmoid", "tanh",
};
static const char *const binary_names[GROVE_BINARY_COUNT] = {"add", "sub", "mul", "div"};
static const char *const binary_syms[GROVE_BINARY_COUNT] = {"+", "-", "*", "/"};

/* A fresh contiguous f32 tensor shaped like the node's input i. */
static grove_tensor *empty_input_like(const grove_node *n, int32_t i, int32_t device)
{
    return gv_empty(n->in_ndim[i], n->in_shape[i], GROVE_F32, device);
}

/* The backward of pow and clamp: a kernel of the saved input x and g,
 * run on contiguous versions of both. */
typedef grove_status (*xg_kernel)(const gv_kernels *k, const grove_node *n, const float *x, const float *g,
                                  float *gx, int64_t count);

static grove_status xg_backward(grove_node *n, grove_tensor *g, grove_tensor **gi, xg_kernel kern)
{
    const gv_kernels *k = gv_kernels_for(n->name, g);
    if (!k) return -1;
    grove_tensor *x = gv_contiguous_data(n->saved[0]);
    grove_tensor *gc = x ? gv_contiguous_data(g) : NULL;
    grove_tensor *gx = gc ? empty_input_like(n, 0, g->device) : NULL;
    if (gx && kern(k, n, x->data, gc->data, gx->data, grove_tensor_numel(gx))) {
        grove_tensor_release(gx);
        gx = NULL;
    }
    grove_tensor_release(x);
    grove_tensor_release(gc);
    gi[0] = gx;
    return gx ? 0 : -1;
}

/* ---- unary ------------------------------------------------------------------ */

static grove_status unary_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    const gv_kernels *k = gv_kernels_for(n->name, g);
    if (!k) return -1;
    grove_tensor *x = gv_contiguous_data(n->saved[0]);
    grove_tensor *y = x ? gv_contiguous_data(n->saved[1]) : NULL;
    grove_tensor *gc = y ? gv_contiguous_data(g) : NULL;
    grove_tensor *gx = gc ? empty_input_like(n, 0, g->device) : NULL;
    if (gx && GV_KCALL(n->name, k, unary_backward, (int32_t)n->ints[0], x->data, y->data, gc->data, gx->data,
                       grove_tensor_numel(gx))) {
        grove_tensor_release(gx);
        gx = NULL;
    }
    grove_tensor_release(x);
    grove_tensor_release(y);
    grove_tensor_release(gc);
    gi[0] = gx;
    return gx ? 0 : -1;
}

grove_tensor *grove_unary(grove_tensor *a, int32_t op)
{
    if (op < 0 || op >= GROVE_UNARY_COUNT) return gv_fail_null("unary: unknown op %d", op);
    const char *name = unary_names[op];
    if (!gv_check_f32(name, a)) return NULL;
    gv_op o;
    if (!gv_op_begin(&o, name, unary_backward, 1, &a)) return NULL;
    grove_tensor *ac = gv_op_input(&o, a);
    grove_tensor *out = gv_op_output(&o, a->ndim, a->shape, GROVE_F32);
    GV_OP_CALL(&o, unary, op, ac->data, out->data, grove_tensor_numel(a));
    /* Saving the output creates no cycle: saved tensors are aliases without grad_fn. */
    gv_op_save(&o, 0, ac);
    gv_op_save(&o, 1, out);
    if (o.node) o.node->ints[0] = op;
    return gv_op_end(&o);
}

/* ---- binary ------------------------------------------------------------------ */

static grove_status binary_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t op = (int32_t)n->ints[0];
    grove_tensor *full[2] = {NULL, NULL};
    grove_status st = 0;
    switch (op) {
    case GROVE_ADD:
        full[0] = g; grove_tensor_retain(g);
        full[1] = g; grove_tensor_retain(g);
        break;
    case GROVE_SUB:
        full[0] = g; grove_tensor_retain(g);
        if (n->needs_grad[1]) full[1] = grove_unary(g, GROVE_NEG);
        break;
    case GROVE_MUL:
        if (n->needs_grad[0]) full[0] = grove_binary(g, n->saved[1], GROVE_MUL);
        if (n->needs_grad[1]) full[1] = grove_binary(g, n->saved[0], GROVE_MUL);
        break;
    case GROVE_DIV: {
        /* d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b = -out/b. */
        grove_tensor *ga = grove_binary(g, n->saved[1], GROVE_DIV);
        if (!ga) return -1;
        if (n->needs_grad[1]) {
            grove_tensor *t = grove_binary(ga, n->saved[2], GROVE_MUL);
            full[1] = t ? grove_unary(t, GROVE_NEG) : NULL;
            grove_tensor_release(t);
        }
        full[0] = ga;
        break;
    }
    default:
        return gv_fail("%s: bad op code in backward", n->name);
    }
    for (int32_t i = 0; i < 2; i++) {
        if (!n->needs_grad[i]) continue;
        if (!full[i]) {
            st = -1;
            break;
        }
        gi[i] = gv_sum_to(full[i], n->in_ndim[i], n->in_shape[i]);
        if (!gi[i]) {
            st = -1;
            break;
        }
    }
    grove_tensor_release(full[0]);
    grove_tensor_release(full[1]);
    return st;
}

grove_tensor *grove_binary(grove_tensor *a, grove_tensor *b, int32_t op)
{
    if (op < 0 || op >= GROVE_BINARY_COUNT) return gv_fail_null("binary: unknown op %d", op);
    const char *name = binary_names[op];
    if (!gv_check_f32(name, a) || !gv_check_f32(name, b)) return NULL;
    if (!gv_check_same_device(name, a, b)) return NULL;
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS], sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
    if (!gv_broadcast_shape(name, binary_syms[op], a, b, &ndim, shape)) return NULL;
    /* The kernel walks both inputs through their own strides (0 where
     * broadcast), so neither broadcasting nor a transposed input copies. */
    gv_broadcast_strides(a, ndim, shape, sa);
    gv_broadcast_strides(b, ndim, shape, sb);
    grove_tensor *ins[2] = {a, b};
    gv_op o;
    if (!gv_op_begin(&o, name, binary_backward, 2, ins)) return NULL;
    grove_tensor *out = gv_op_output(&o, ndim, shape, GROVE_F32);
    GV_OP_CALL(&o, binary, op, ndim, shape, a->data, sa, b->data, sb, out->data);
    if (o.node) o.node->ints[0] = op;
    if (op == GROVE_MUL) {
        gv_op_save(&o, 0, a);
        gv_op_save(&o, 1, b);
    }
    if (op == GROVE_DIV) {
        gv_op_save(&o, 1, b);
        gv_op_save(&o, 2, out);
    }
    return gv_op_end(&o);
}

/* ---- scalar forms ------------------------------------------------------------ */

static grove_status binary_scalar_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t op = (int32_t)n->ints[0];
    bool reverse = n->ints[1] != 0;
    double s = n->scalars[0];
    switch (op) {
    case GROVE_ADD:
        grove_tensor_retain(g);
        gi[0] = g;
        break;
    case GROVE_SUB:
        if (reverse) gi[0] = grove_unary(g, GROVE_NEG);
        else {
            grove_tensor_retain(g);
            gi[0] = g;
        }
        break;
    case GROVE_MUL:
        gi[0] = grove_binary_scalar(g, s, GROVE_MUL, false);
        break;
    case GROVE_DIV:
        if (!reverse) gi[0] = grove_binary_scalar(g, s, GROVE_DIV, false);
        else {
            /* d(s/a)/da = -s/a² = -out/a. */
            grove_tensor *t = grove_binary(g, n->saved[1], GROVE_MUL);
            grove_tensor *u = t ? grove_binary(t, n->saved[0], GROVE_DIV) : NULL;
            gi[0] = u ? grove_unary(u, GROVE_NEG) : NULL;
            grove_tensor_release(t);
            grove_tensor_release(u);
        }
        break;
    default:
        return gv_fail("%s: bad op code in backward", n->name);
    }
    return gi[0] ? 0 : -1;
}

grove_tensor *grove_binary_scalar(grove_tensor *a, double s, int32_t op, bool reverse)
{
    if (op < 0 || op >= GROVE_BINARY_COUNT) return gv_fail_null("binary: unknown op %d", op);
    const char *name = binary_names[op];
    if (!gv_check_f32(name, a)) return NULL;
    gv_op o;
    if (!gv_op_begin(&o, name, binary_scalar_backward, 1, &a)) return NULL;
    grove_tensor *ac = gv_op_input(&o, a);
    grove_tensor *out = gv_op_output(&o, a->ndim, a->shape, GROVE_F32);
    GV_OP_CALL(&o, binary_scalar, op, ac->data, (float)s, reverse, out->data, grove_tensor_numel(a));
    if (o.node) {
        o.node->ints[0] = op;
        o.node->ints[1] = reverse;
        o.node->scalars[0] = s;
    }
    if (op == GROVE_DIV && reverse) {
        gv_op_save(&o, 0, ac);
        gv_op_save(&o, 1, out);
    }
    return gv_op_end(&o);
}

/* ---- pow and clamp ------------------------------------------------------------ */

static grove_status pow_kernel(const gv_kernels *k, const grove_node *n, const float *x, const float *g, float *gx,
                               int64_t count)
{
    return GV_KCALL(n->name, k, pow_scalar_backward, x, (float)n->scalars[0], g, gx, count);
}

static grove_status pow_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    return xg_backward(n, g, gi, pow_kernel);
}

grove_tensor *grove_pow_scalar(grove_tensor *a, double exponent)
{
    if (!gv_check_f32("pow", a)) return NULL;
    gv_op o;
    if (!gv_op_begin(&o, "pow", pow_backward, 1, &a)) return NULL;
    grove_tensor *ac = gv_op_input(&o, a);
    grove_tensor *out = gv_op_output(&o, a->ndim, a->shape, GROVE_F32);
    GV_OP_CALL(&o, pow_scalar, ac->data, (float)exponent, out->data, grove_tensor_numel(a));
    gv_op_save(&o, 0, ac);
    if (o.node) o.node->scalars[0] = exponent;
    return gv_op_end(&o);
}

static grove_status clamp_kernel(const gv_kernels *k, const grove_node *n, const float *x, const float *g, float *gx,
                                 int64_t count)
{
    return GV_KCALL(n->name, k, clamp_backward, x, (float)n->scalars[0], (float)n->scalars[1], g, gx, count);
}

static grove_status clamp_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    return xg_backward(n, g, gi, clamp_kernel);
}

grove_tensor *grove_clamp(grove_tensor *a, double lo, double hi)
{
    if (!gv_check_f32("clamp", a)) return NULL;
    if (isnan(lo) || isnan(hi)) return gv_fail_null("clamp: NaN bound (%g, %g) for %s", lo, hi, gv_shape_str(a));
    if (lo > hi) return gv_fail_null("clamp: lower bound %g is above upper bound %g for %s", lo, hi, gv_shape_str(a));
    gv_op o;
    if (!gv_op_begin(&o, "clamp", clamp_backward, 1, &a)) return NULL;
    grove_tensor *ac = gv_op_input(&o, a);
    grove_tensor *out = gv_op_output(&o, a->ndim, a->shape, GROVE_F32);
    GV_OP_CALL(&o, clamp, ac->data, (float)lo, (float)hi, out->data, grove_tensor_numel(a));
    gv_op_save(&o, 0, ac);
    if (o.node) {
        o.node->scalars[0] = lo;
        o.node->scalars[1] = hi;
    }
    return gv_op_end(&o);
}

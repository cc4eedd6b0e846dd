/* softmax.c — softmax and log-softmax over any dimension, numerically stable
 * (the maximum is subtracted first). The kernel sees the input as a
 * contiguous (outer, n, inner) block with the softmax over n. */
#include "backend.h"

/* outer and inner sizes around dimension dim of the given shape. */
static void split_at(int32_t ndim, const int64_t *shape, int32_t dim, int64_t *outer, int64_t *inner)
{
    *outer = gv_numel_of(dim, shape);
    *inner = gv_numel_of(ndim - dim - 1, shape + dim + 1);
}

/* The output y is saved; ints[0] = dim, ints[1] = 1 for log-softmax. */
static grove_status softmax_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t dim = (int32_t)n->ints[0];
    int64_t outer, inner;
    split_at(n->in_ndim[0], n->in_shape[0], dim, &outer, &inner);
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *y = k ? gv_contiguous_data(n->saved[0]) : NULL;
    grove_tensor *gc = y ? gv_contiguous_data(g) : NULL;
    grove_tensor *dx = gc ? gv_empty(n->in_ndim[0], n->in_shape[0], GROVE_F32, g->device) : NULL;
    if (dx && GV_KCALL(n->name, k, softmax_backward, outer, n->in_shape[0][dim], inner, y->data, gc->data, dx->data,
                       n->ints[1] != 0)) {
        grove_tensor_release(dx);
        dx = NULL;
    }
    grove_tensor_release(y);
    grove_tensor_release(gc);
    gi[0] = dx;
    return dx ? 0 : -1;
}

static grove_tensor *softmax_op(const char *op, grove_tensor *x, int32_t dim, bool log_out)
{
    if (!gv_check_f32(op, x)) return NULL;
    if (!gv_norm_dim(op, x, &dim)) return NULL;
    int64_t outer, inner;
    split_at(x->ndim, x->shape, dim, &outer, &inner);
    gv_op o;
    if (!gv_op_begin(&o, op, softmax_backward, 1, &x)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x);
    grove_tensor *y = gv_op_output(&o, x->ndim, x->shape, GROVE_F32);
    GV_OP_CALL(&o, softmax, outer, x->shape[dim], inner, xc->data, y->data, log_out);
    if (o.node) {
        o.node->ints[0] = dim;
        o.node->ints[1] = log_out;
    }
    gv_op_save(&o, 0, y);
    return gv_op_end(&o);
}

grove_tensor *grove_softmax(grove_tensor *x, int32_t dim) { return softmax_op("softmax", x, dim, false); }

grove_tensor *grove_log_softmax(grove_tensor *x, int32_t dim) { return softmax_op("log_softmax", x, dim, true); }

/* cosine.c — cosine similarity along one dimension, torch semantics:
 * Σ a·b / max(‖a‖·‖b‖, eps), with a and b broadcast against each other.
 * One fused pass forward; backward recomputes the three row sums. */
#include "internal.h"
#include "backend.h"

#include <math.h>

/* The broadcast geometry of a and b: shape and both stride sets. */
typedef struct {
    int32_t ndim;
    int64_t shape[GROVE_MAX_DIMS], sa[GROVE_MAX_DIMS], sb[GROVE_MAX_DIMS];
} pair_geom;

static bool pair_geometry(const grove_tensor *a, const grove_tensor *b, pair_geom *pg)
{
    if (!gv_broadcast_shape("cosine_similarity", "and", a, b, &pg->ndim, pg->shape)) return false;
    gv_broadcast_strides(a, pg->ndim, pg->shape, pg->sa);
    gv_broadcast_strides(b, pg->ndim, pg->shape, pg->sb);
    return true;
}

/* The gradient of one input in the full broadcast shape, summed down to its own. */
static grove_tensor *reduce_to_input(grove_tensor *full, grove_node *n, int32_t i)
{
    grove_tensor *r = gv_sum_to(full, n->in_ndim[i], n->in_shape[i]);
    grove_tensor_release(full);
    return r;
}

static grove_status cosine_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *a = n->saved[0], *b = n->saved[1];
    pair_geom pg;
    if (!pair_geometry(a, b, &pg)) return -1;
    const gv_kernels *k = gv_kernels_for(n->name, g);
    if (!k) return -1;
    grove_tensor *gc = gv_contiguous_data(g);
    if (!gc) return -1;
    grove_tensor *ga = NULL, *gb = NULL;
    grove_status st = -1;
    if (n->needs_grad[0] && !(ga = gv_empty(pg.ndim, pg.shape, GROVE_F32, g->device))) goto done;
    if (n->needs_grad[1] && !(gb = gv_empty(pg.ndim, pg.shape, GROVE_F32, g->device))) goto done;
    if (GV_KCALL(n->name, k, cosine_backward, pg.ndim, pg.shape, (int32_t)n->ints[0], a->data, pg.sa, b->data,
                 pg.sb, n->scalars[0], gc->data, ga ? ga->data : NULL, gb ? gb->data : NULL))
        goto done;
    if (ga) {
        gi[0] = reduce_to_input(ga, n, 0);
        ga = NULL;
        if (!gi[0]) goto done;
    }
    if (gb) {
        gi[1] = reduce_to_input(gb, n, 1);
        gb = NULL;
        if (!gi[1]) goto done;
    }
    st = 0;
done:
    grove_tensor_release(ga);
    grove_tensor_release(gb);
    grove_tensor_release(gc);
    return st;
}

grove_tensor *grove_cosine_similarity(grove_tensor *a, grove_tensor *b, int32_t dim, double eps)
{
    const char *op = "cosine_similarity";
    if (!gv_check_f32(op, a) || !gv_check_f32(op, b)) return NULL;
    if (!gv_check_same_device(op, a, b)) return NULL;
    if (!(eps >= 0) || isinf(eps)) return gv_fail_null("%s: eps %g must be finite and >= 0", op, eps);
    pair_geom pg;
    if (!pair_geometry(a, b, &pg)) return NULL;
    int32_t d = dim < 0 ? dim + pg.ndim : dim;
    if (d < 0 || d >= pg.ndim)
        return gv_fail_null("%s: dimension %d out of range for %s and %s (broadcast to %s, %d dimensions)", op, dim,
                            gv_shape_str(a), gv_shape_str(b), gv_dims_str(pg.ndim, pg.shape), pg.ndim);
    int64_t osh[GROVE_MAX_DIMS];
    int32_t k = 0;
    for (int32_t i = 0; i < pg.ndim; i++)
        if (i != d) osh[k++] = pg.shape[i];
    grove_tensor *ins[2] = {a, b};
    gv_op o;
    if (!gv_op_begin(&o, op, cosine_backward, 2, ins)) return NULL;
    grove_tensor *out = gv_op_output(&o, k, osh, GROVE_F32);
    GV_OP_CALL(&o, cosine_forward, pg.ndim, pg.shape, d, a->data, pg.sa, b->data, pg.sb, eps, out->data);
    gv_op_save(&o, 0, a);
    gv_op_save(&o, 1, b);
    if (o.node) {
        o.node->scalars[0] = eps;
        o.node->ints[0] = d;
    }
    return gv_op_end(&o);
}

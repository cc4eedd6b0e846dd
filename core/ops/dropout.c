/* dropout.c — inverted dropout with a Philox mask.
 *
 * Element i draws the same uniform u_i in (0, 1] as a uniform fill from the
 * generator's (seed, offset) would (counter offset + i/4, lane i%4), and is
 * kept when u_i > p, which happens with probability 1 − p. Kept elements are
 * scaled by 1/(1 − p), so the expectation is unchanged; p = 1 drops all. The
 * generator then advances by (n + 3)/4 counters, as after a fill. */
#include "internal.h"
#include "backend.h"

static grove_status dropout_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    if (!gc) return -1;
    grove_tensor *gx = gv_empty(n->in_ndim[0], n->in_shape[0], GROVE_F32, g->device);
    if (gx && GV_KCALL(n->name, k, dropout_backward, gc->data, n->saved[0]->data, grove_tensor_numel(gx),
                       (float)n->scalars[0], gx->data)) {
        grove_tensor_release(gx);
        gx = NULL;
    }
    grove_tensor_release(gc);
    gi[0] = gx;
    return gx ? 0 : -1;
}

grove_tensor *grove_dropout(grove_tensor *x, double p, bool training, grove_generator *gen)
{
    if (!gv_check_f32("dropout", x)) return NULL;
    if (!(p >= 0 && p <= 1))
        return gv_fail_null("dropout: probability %g for %s is outside [0, 1]", p, gv_shape_str(x));
    if (!training || p == 0) {
        grove_tensor_retain(x);
        return x;
    }
    if (!gen) gen = grove_default_generator();
    int64_t n = grove_tensor_numel(x);
    float scale = p < 1 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    gv_op o;
    if (!gv_op_begin(&o, "dropout", dropout_backward, 1, &x)) return NULL;
    grove_tensor *xc = gv_op_input(&o, x);
    grove_tensor *out = gv_op_output(&o, x->ndim, x->shape, GROVE_F32);
    grove_tensor *keep = o.node ? gv_op_temp(&o, x->ndim, x->shape, GROVE_U8) : NULL;
    /* Both kernels present before the generator moves. */
    GV_OP_READY(&o, philox_uniform);
    GV_OP_READY(&o, dropout_apply);
    /* The uniforms go straight into the output buffer, then become the result. */
    GV_OP_CALL(&o, philox_uniform, out->data, n, gen->seed, gen->offset, 0.0f, 1.0f);
    if (o.ok) gen->offset += (uint64_t)(n + 3) / 4;
    GV_OP_CALL(&o, dropout_apply, xc->data, out->data, keep ? keep->data : NULL, n, (float)p, scale);
    gv_op_save(&o, 0, keep);
    if (o.node) o.node->scalars[0] = scale;
    return gv_op_end(&o);
}

/* glu.c — the gate of SANA's Mix-FFN (GLUMBConv): h (..., 2C) splits along
 * the last dimension into the value a = h[..., :C] and the gate h[..., C:]
 * (diffusers' torch.chunk(h, 2, dim=1) on NCHW, i.e. the channels of our
 * NHWC tokens), giving a·SiLU(gate) (..., C). */
#include "backend.h"

/* Saved: 0 = contiguous h. */
static grove_status glu_silu_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int32_t nd = n->in_ndim[0];
    int64_t c2 = n->in_shape[0][nd - 1], rows = gv_numel_of(nd - 1, n->in_shape[0]);
    const gv_kernels *k = gv_kernels_for(n->name, g);
    grove_tensor *gc = k ? gv_contiguous_data(g) : NULL;
    grove_tensor *dh = gc ? gv_empty(nd, n->in_shape[0], GROVE_F32, g->device) : NULL;
    if (dh && GV_KCALL(n->name, k, glu_silu_backward, rows, c2 / 2, n->saved[0]->data, gc->data, dh->data)) {
        grove_tensor_release(dh);
        dh = NULL;
    }
    grove_tensor_release(gc);
    gi[0] = dh;
    return dh ? 0 : -1;
}

grove_tensor *grove_glu_silu(grove_tensor *h)
{
    const char *op = "glu_silu";
    if (!gv_check_f32(op, h)) return NULL;
    if (h->ndim == 0) return gv_fail_null("%s: input %s needs at least 1 dimension (..., 2C)", op, gv_shape_str(h));
    int64_t c2 = h->shape[h->ndim - 1];
    if (c2 % 2)
        return gv_fail_null("%s: the last dimension of %s is %lld, which is odd (expected (..., 2C) to split into "
                            "value and gate)",
                            op, gv_shape_str(h), (long long)c2);
    int64_t shape[GROVE_MAX_DIMS];
    for (int32_t i = 0; i < h->ndim; i++) shape[i] = h->shape[i];
    shape[h->ndim - 1] = c2 / 2;
    gv_op o;
    if (!gv_op_begin(&o, op, glu_silu_backward, 1, &h)) return NULL;
    grove_tensor *hc = gv_op_input(&o, h);
    grove_tensor *out = gv_op_output(&o, h->ndim, shape, GROVE_F32);
    GV_OP_CALL(&o, glu_silu, gv_numel_of(h->ndim - 1, h->shape), c2 / 2, hc->data, out->data);
    gv_op_save(&o, 0, hc);
    return gv_op_end(&o);
}

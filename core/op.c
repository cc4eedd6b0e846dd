/*
 * op.c — the skeleton every op front-end runs through (backend.h, gv_op):
 * the kernels of the inputs' device, the node to record, the tensors held
 * for the run, and one flag that turns every later step into a no-op once
 * a step failed, so that a front-end reads as its steps and ends in one
 * place, gv_op_end.
 */
#include "backend.h"

bool gv_op_begin(gv_op *o, const char *name, gv_backward_fn fn, int32_t n, grove_tensor *const *inputs)
{
    o->name = name;
    o->node = NULL;
    o->out = NULL;
    o->nheld = 0;
    o->k = gv_kernels_for(name, inputs[0]);
    o->ok = o->k && (!fn || !gv_node_begin(name, fn, n, inputs, &o->node));
    return o->ok;
}

grove_tensor *gv_op_hold(gv_op *o, grove_tensor *t)
{
    if (!t) {
        o->ok = false;
        return NULL;
    }
    if (!o->ok || o->nheld == GV_OP_MAX_HELD) {
        /* a failed run keeps nothing; more than the slots is a bug in the front-end */
        if (o->ok) gv_fail("%s: internal error: more than %d tensors held", o->name, GV_OP_MAX_HELD);
        grove_tensor_release(t);
        o->ok = false;
        return NULL;
    }
    o->held[o->nheld++] = t;
    return t;
}

grove_tensor *gv_op_input(gv_op *o, grove_tensor *t)
{
    if (!t || !o->ok) return NULL;
    return gv_op_hold(o, gv_contiguous_data(t));
}

grove_tensor *gv_op_temp(gv_op *o, int32_t ndim, const int64_t *shape, int32_t dtype)
{
    if (!o->ok) return NULL;
    return gv_op_hold(o, gv_empty(ndim, shape, dtype, o->k->device));
}

grove_tensor *gv_op_output(gv_op *o, int32_t ndim, const int64_t *shape, int32_t dtype)
{
    if (!o->ok) return NULL;
    o->out = gv_empty(ndim, shape, dtype, o->k->device);
    o->ok = o->out != NULL;
    return o->out;
}

void gv_op_save(gv_op *o, int32_t slot, const grove_tensor *t)
{
    if (o->ok && o->node) o->ok = !gv_node_save(o->node, slot, t);
}

grove_tensor *gv_op_end(gv_op *o)
{
    if (!o->ok) gv_name_oom(o->name);
    for (int32_t i = 0; i < o->nheld; i++) grove_tensor_release(o->held[i]);
    o->nheld = 0;
    return gv_node_end(o->node, o->out, o->ok && o->out);
}

/*
 * autograd_custom.c — tape nodes whose backward lives outside C.
 *
 * Activation checkpointing runs a block without recording its tape and
 * records one node instead; that node's backward must re-run the block's
 * Lua forward, so it calls back into Lua through one registered function
 * pointer with an integer handle naming what the Lua side kept. The Lua
 * side learns which handles are dead from a queue filled when nodes are
 * freed (grove_custom_take_freed), never by a call from here: nodes are
 * freed from Lua finalizers, where calling back into Lua is not allowed.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static grove_custom_backward_fn callback;
static int64_t live;

/* Handles of freed nodes, until the owner takes them. */
static int64_t *freed;
static int32_t n_freed, cap_freed;

void grove_custom_set_backward(grove_custom_backward_fn fn) { callback = fn; }

int64_t grove_custom_live(void) { return live; }

grove_status grove_set_error(const char *message) { return gv_fail("%s", message ? message : "error"); }

int32_t grove_custom_take_freed(int64_t *out, int32_t max)
{
    int32_t k = n_freed < max ? n_freed : max;
    if (k <= 0) return 0;
    memcpy(out, freed, (size_t)k * sizeof *out);
    memmove(freed, freed + k, (size_t)(n_freed - k) * sizeof *freed);
    n_freed -= k;
    return k;
}

static void on_free(grove_node *n)
{
    live--;
    if (n_freed == cap_freed) {
        int32_t cap = cap_freed ? cap_freed * 2 : 64;
        int64_t *bigger = realloc(freed, (size_t)cap * sizeof *bigger);
        if (!bigger) return; /* the owner keeps a few bytes longer; nothing breaks */
        freed = bigger;
        cap_freed = cap;
    }
    freed[n_freed++] = n->ints[0];
}

/* Node names must outlive the Lua strings they come from: a few distinct
 * names are interned for the life of the process. */
static const char *intern(const char *name)
{
    static char names[32][48];
    static int32_t count;
    if (!name || !*name) return "custom";
    for (int32_t i = 0; i < count; i++)
        if (!strncmp(names[i], name, sizeof names[i] - 1)) return names[i];
    if (count == 32) return "custom";
    strncpy(names[count], name, sizeof names[count] - 1);
    return names[count++];
}

static grove_status custom_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    if (!callback) return gv_fail("backward: custom node %s has no backward callback registered", n->name);
    grove_tensor *gc = gv_contiguous_data(g);
    if (!gc) return -1;
    grove_status st = callback(n->ints[0], n->saved, gc, gi);
    grove_tensor_release(gc);
    if (st != 0) {
        for (int32_t i = 0; i < n->n_inputs; i++) {
            grove_tensor_release(gi[i]);
            gi[i] = NULL;
        }
        return -1;
    }
    /* Only inputs with an edge may receive a gradient. */
    for (int32_t i = 0; i < n->n_inputs; i++)
        if (gi[i] && !n->needs_grad[i]) {
            grove_tensor_release(gi[i]);
            gi[i] = NULL;
        }
    return 0;
}

grove_tensor *grove_custom_record(const char *name, grove_tensor *out, int32_t n_inputs, grove_tensor *const *inputs,
                                  int32_t n_saved, grove_tensor *const *saved, int64_t handle, bool force)
{
    const char *nm = intern(name);
    if (!gv_check_live(nm, out)) return NULL;
    if (n_inputs < 0 || n_inputs > GV_NODE_MAX_INPUTS || n_saved < 0 || n_saved > GV_NODE_MAX_SAVED)
        return gv_fail_null("%s: a custom node takes at most %d inputs and %d saved tensors, got %d and %d", nm,
                            GV_NODE_MAX_INPUTS, GV_NODE_MAX_SAVED, n_inputs, n_saved);
    for (int32_t i = 0; i < n_inputs; i++)
        if (inputs[i] && !gv_check_live(nm, inputs[i])) return NULL;
    for (int32_t i = 0; i < n_saved; i++)
        if (saved[i] && !gv_check_live(nm, saved[i])) return NULL;
    grove_node *node = NULL;
    if (gv_node_begin(nm, custom_backward, n_inputs, inputs, &node)) return NULL;
    if (!node && force && grove_grad_enabled()) {
        /* a node without edges: grad mode is on, but no input requires
         * grad (the callback may still accumulate into parameters it
         * reaches itself) */
        node = gv_node_new(nm, custom_backward, n_inputs, inputs);
        if (!node) return NULL;
    }
    if (node && out->dtype != GROVE_F32) {
        gv_node_release(node);
        return gv_fail_null("%s: the output %s is %s; only f32 outputs can carry a gradient", nm, gv_shape_str(out),
                            grove_dtype_name(out->dtype));
    }
    /* The result is always a fresh alias, so out (which may be an input
     * returned unchanged) never gets a grad_fn itself. */
    grove_tensor *res = gv_alias(out, out->ndim, out->shape, out->stride, out->offset);
    if (!res) {
        if (node) gv_node_release(node);
        return NULL;
    }
    if (!node) return res;
    for (int32_t i = 0; i < n_saved; i++)
        if (saved[i] && gv_node_save(node, i, saved[i])) {
            gv_node_release(node);
            grove_tensor_release(res);
            return NULL;
        }
    node->ints[0] = handle;
    node->on_free = on_free;
    live++;
    gv_node_finish(node, res);
    return res;
}

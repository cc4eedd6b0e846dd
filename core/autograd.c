/*
 * autograd.c — the reverse-mode tape. Every op output that needs a gradient
 * carries a node naming its inputs (their nodes, or the leaves that collect
 * .grad) and the tensors its backward needs. backward() orders the nodes
 * topologically from the root, runs each node's backward once all of its
 * consumers have contributed, and frees saved tensors as it goes.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local bool grad_disabled;

bool grove_grad_enabled(void) { return !grad_disabled; }

bool grove_set_grad_enabled(bool enabled)
{
    bool prev = !grad_disabled;
    grad_disabled = !enabled;
    return prev;
}

bool gv_tracks(const grove_tensor *t) { return !grad_disabled && t && t->requires_grad; }

grove_status gv_node_begin(const char *name, gv_backward_fn fn, int32_t n, grove_tensor *const *inputs,
                           grove_node **out)
{
    *out = NULL;
    bool any = false;
    for (int32_t i = 0; i < n; i++) any = any || gv_tracks(inputs[i]);
    if (!any) return 0;
    *out = gv_node_new(name, fn, n, inputs);
    return *out ? 0 : -1;
}

grove_node *gv_node_new(const char *name, gv_backward_fn fn, int32_t n, grove_tensor *const *inputs)
{
    grove_node *node = calloc(1, sizeof *node);
    if (!node) return gv_fail_null("%s: out of memory recording the autograd tape", name);
    gv_count_node(1);
    node->name = name;
    node->backward = fn;
    node->refcount = 1;
    node->n_inputs = n;
    for (int32_t i = 0; i < n; i++) {
        grove_tensor *t = inputs[i];
        if (!t) continue;
        node->in_ndim[i] = t->ndim;
        memcpy(node->in_shape[i], t->shape, sizeof t->shape);
        if (!t->requires_grad) continue;
        node->needs_grad[i] = true;
        if (t->grad_fn) {
            node->inputs[i].node = t->grad_fn;
            t->grad_fn->refcount++;
        } else {
            node->inputs[i].leaf = t;
            grove_tensor_retain(t);
        }
    }
    return node;
}

grove_status gv_node_save(grove_node *n, int32_t slot, const grove_tensor *t)
{
    grove_tensor *a = gv_alias(t, t->ndim, t->shape, t->stride, t->offset);
    if (!a) return -1;
    if (n->saved[slot]) grove_tensor_release(n->saved[slot]);
    n->saved[slot] = a;
    return 0;
}

void gv_node_finish(grove_node *n, grove_tensor *out)
{
    if (out->grad_fn) gv_node_release(out->grad_fn);
    out->grad_fn = n;
    out->requires_grad = 1;
    out->is_leaf = 0;
}

grove_tensor *gv_node_end(grove_node *n, grove_tensor *out, bool ok)
{
    if (!ok) {
        if (n) gv_node_release(n);
        grove_tensor_release(out);
        return NULL;
    }
    if (n) gv_node_finish(n, out);
    return out;
}

static void node_free_saved(grove_node *n)
{
    for (int i = 0; i < GV_NODE_MAX_SAVED; i++) {
        grove_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
}

void gv_node_release(grove_node *n)
{
    /* Iterative, so that a long chain of nodes cannot overflow the C stack. */
    grove_node *stack_buf[64];
    grove_node **stack = stack_buf;
    int64_t top = 0, cap = 64;
    stack[top++] = n;
    while (top > 0) {
        grove_node *m = stack[--top];
        if (!m || --m->refcount > 0) continue;
        for (int32_t i = 0; i < m->n_inputs; i++) {
            if (m->inputs[i].leaf) grove_tensor_release(m->inputs[i].leaf);
            if (!m->inputs[i].node) continue;
            if (top == cap) {
                grove_node **bigger = malloc((size_t)cap * 2 * sizeof *bigger);
                if (!bigger) { /* cannot grow: leak rather than crash */
                    continue;
                }
                memcpy(bigger, stack, (size_t)cap * sizeof *bigger);
                if (stack != stack_buf) free(stack);
                stack = bigger;
                cap *= 2;
            }
            stack[top++] = m->inputs[i].node;
        }
        if (m->on_free) m->on_free(m);
        node_free_saved(m);
        grove_tensor_release(m->pending_grad);
        gv_count_node(-1);
        free(m);
    }
    if (stack != stack_buf) free(stack);
}

grove_tensor *gv_sum_to(grove_tensor *g, int32_t ndim, const int64_t *shape)
{
    int32_t lead = g->ndim - ndim;
    int32_t dims[GROVE_MAX_DIMS], k = 0;
    for (int32_t i = 0; i < g->ndim; i++)
        if (i < lead || (shape[i - lead] == 1 && g->shape[i] != 1)) dims[k++] = i;
    if (k == 0 && lead == 0) {
        grove_tensor_retain(g);
        return g;
    }
    grove_tensor *r = grove_reduce(g, GROVE_SUM, k, dims, true);
    if (!r) return NULL;
    grove_tensor *v = grove_reshape(r, ndim, shape);
    grove_tensor_release(r);
    return v;
}

grove_status grove_set_requires_grad(grove_tensor *t, bool requires_grad)
{
    if (!gv_check_live("requires_grad", t)) return -1;
    if (t->grad_fn)
        return gv_fail("requires_grad: %s is the result of %s, not a leaf; use :detach() to get a leaf",
                       gv_shape_str(t), t->grad_fn->name);
    if (requires_grad && t->dtype != GROVE_F32)
        return gv_fail("requires_grad: only f32 tensors can require gradients, got %s %s", grove_dtype_name(t->dtype),
                       gv_shape_str(t));
    t->requires_grad = requires_grad;
    return 0;
}

grove_tensor *grove_detach(grove_tensor *t)
{
    if (!gv_check_live("detach", t)) return NULL;
    return gv_alias(t, t->ndim, t->shape, t->stride, t->offset);
}

grove_tensor *grove_tensor_grad(grove_tensor *t)
{
    if (!t || !t->grad) return NULL;
    grove_tensor_retain(t->grad);
    return t->grad;
}

grove_status grove_tensor_set_grad(grove_tensor *t, grove_tensor *grad)
{
    if (!gv_check_live("set_grad", t)) return -1;
    if (grad) {
        if (!gv_check_f32("set_grad", grad)) return -1;
        if (grad->ndim != t->ndim || memcmp(grad->shape, t->shape, (size_t)t->ndim * sizeof t->shape[0]))
            return gv_fail("set_grad: gradient %s does not match tensor %s", gv_shape_str(grad), gv_shape_str(t));
        grove_tensor_retain(grad);
    }
    grove_tensor_release(t->grad);
    t->grad = grad;
    return 0;
}

void grove_zero_grad(grove_tensor *t)
{
    if (!t) return;
    grove_tensor_release(t->grad);
    t->grad = NULL;
}

const char *grove_grad_fn_name(const grove_tensor *t)
{
    return t && t->grad_fn ? t->grad_fn->name : NULL;
}

/* acc := acc + g, where either may be missing. Consumes g. */
static grove_status accumulate(grove_tensor **acc, grove_tensor *g)
{
    if (!*acc) {
        *acc = g;
        return 0;
    }
    grove_tensor *s = grove_binary(*acc, g, GROVE_ADD);
    grove_tensor_release(g);
    if (!s) return -1;
    grove_tensor_release(*acc);
    *acc = s;
    return 0;
}

static grove_status accumulate_leaf(grove_tensor *leaf, grove_tensor *g)
{
    if (!leaf->storage) { /* freed by the user meanwhile: nothing to collect into */
        grove_tensor_release(g);
        return 0;
    }
    if (!leaf->grad) {
        /* The leaf owns its .grad: never share a buffer the tape still uses.
         * A gradient nothing else holds (the usual case: a fresh result of
         * the node's backward) becomes .grad as it is; anything else is
         * copied. Adopting saves a copy of every parameter per step. */
        int64_t need = grove_tensor_numel(g) * grove_dtype_size(g->dtype);
        /* no bigger than an allocation of its size can be (the allocators
         * round up: the CPU's reuse up to +25 %, CUDA's to 2 MiB), so .grad
         * never keeps a larger buffer alive through a view of its start */
        bool sized = g->storage && g->storage->nbytes <= need + need / 4 + ((int64_t)2 << 20);
        if (g->refcount == 1 && sized && g->storage->refcount == 1 && !g->grad_fn && !g->requires_grad && !g->grad &&
            g->offset == 0 && grove_tensor_is_contiguous(g) && g->dtype == leaf->dtype && g->device == leaf->device) {
            leaf->grad = g;
            return 0;
        }
        grove_tensor *own = grove_clone(g);
        grove_tensor_release(g);
        if (!own) return -1;
        leaf->grad = own;
        return 0;
    }
    return accumulate(&leaf->grad, g);
}

typedef struct { grove_node **items; int64_t count, cap; } node_list;

static grove_status list_push(node_list *l, grove_node *n)
{
    if (l->count == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 64;
        grove_node **items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) return gv_fail("backward: out of memory ordering the tape");
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = n;
    return 0;
}

static bool same_shape(const grove_tensor *t, int32_t ndim, const int64_t *shape)
{
    return t->ndim == ndim && !memcmp(t->shape, shape, (size_t)ndim * sizeof *shape);
}

static grove_status run_backward(grove_node *root, grove_tensor *seed, bool retain_graph)
{
    node_list all = {0}, ready = {0};
    grove_status st = 0;
    /* Count, for each node, how many edges inside this graph point at it. */
    if (list_push(&all, root)) return -1;
    root->visited = 1;
    for (int64_t i = 0; i < all.count && st == 0; i++) {
        grove_node *n = all.items[i];
        for (int32_t k = 0; k < n->n_inputs; k++) {
            grove_node *m = n->inputs[k].node;
            if (!m) continue;
            m->deps++;
            if (!m->visited) {
                m->visited = 1;
                st = list_push(&all, m);
                if (st) break;
            }
        }
    }
    if (st == 0) {
        grove_tensor_retain(seed);
        root->pending_grad = seed;
        st = list_push(&ready, root);
    }
    while (st == 0 && ready.count > 0) {
        grove_node *n = ready.items[--ready.count];
        grove_tensor *grad_in[GV_NODE_MAX_INPUTS] = {0};
        if (n->pending_grad) {
            if (n->released) {
                st = gv_fail("backward: the graph through %s was already freed by an earlier backward "
                             "(call backward with retain_graph = true to run it twice)", n->name);
                break;
            }
            gv_profile_backward_begin(n->name, n->pending_grad->device);
            st = n->backward(n, n->pending_grad, grad_in);
            gv_profile_backward_end();
            grove_tensor_release(n->pending_grad);
            n->pending_grad = NULL;
            if (!retain_graph) {
                node_free_saved(n);
                n->released = 1;
            }
        }
        for (int32_t k = 0; k < n->n_inputs; k++) {
            grove_tensor *g = grad_in[k];
            if (g && st == 0 && !same_shape(g, n->in_ndim[k], n->in_shape[k]))
                st = gv_fail("backward: %s produced a gradient %s for an input of shape %s", n->name,
                             gv_shape_str(g), gv_dims_str(n->in_ndim[k], n->in_shape[k]));
            if (st) {
                grove_tensor_release(g);
                continue;
            }
            if (n->inputs[k].leaf && g) st = accumulate_leaf(n->inputs[k].leaf, g);
            else if (n->inputs[k].node) {
                grove_node *m = n->inputs[k].node;
                if (g) st = accumulate(&m->pending_grad, g);
                if (--m->deps == 0 && st == 0) st = list_push(&ready, m);
            } else grove_tensor_release(g);
        }
    }
    for (int64_t i = 0; i < all.count; i++) {
        grove_node *n = all.items[i];
        grove_tensor_release(n->pending_grad);
        n->pending_grad = NULL;
        n->deps = 0;
        n->visited = 0;
    }
    free(all.items);
    free(ready.items);
    return st;
}

grove_status grove_backward(grove_tensor *t, grove_tensor *grad, bool retain_graph)
{
    if (!gv_check_live("backward", t)) return -1;
    if (!t->requires_grad)
        return gv_fail("backward: tensor %s does not require grad (no input of its computation requires grad)",
                       gv_shape_str(t));
    grove_tensor *seed;
    if (grad) {
        if (!gv_check_f32("backward", grad)) return -1;
        if (!same_shape(grad, t->ndim, t->shape))
            return gv_fail("backward: gradient %s does not match output %s", gv_shape_str(grad), gv_shape_str(t));
        seed = grove_contiguous(grad);
    } else {
        if (grove_tensor_numel(t) != 1)
            return gv_fail("backward: output %s is not a scalar; pass a gradient of the same shape", gv_shape_str(t));
        seed = grove_tensor_full(t->ndim, t->shape, 1.0, GROVE_F32, t->device);
    }
    if (!seed) return -1;
    bool prev = grove_set_grad_enabled(false);
    grove_status st;
    if (!t->grad_fn) {
        grove_tensor_retain(seed);
        st = accumulate_leaf(t, seed);
    } else st = run_backward(t->grad_fn, seed, retain_graph);
    grove_set_grad_enabled(prev);
    grove_tensor_release(seed);
    return st;
}

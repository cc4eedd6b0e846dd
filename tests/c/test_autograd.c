/* test_autograd.c — the tape driven from C: known gradients of a small graph,
 * the errors of backward, grad mode, and that nodes are freed. */
#include "helpers.h"

static const int64_t S3[] = {3};

static grove_tensor *leaf(double a, double b, double c)
{
    grove_tensor *t = T(GROVE_F32, 1, S3, a, b, c);
    cr_assert_eq(grove_set_requires_grad(t, true), 0, "%s", grove_last_error());
    return t;
}

static grove_tensor *sum_all(grove_tensor *t) { return grove_reduce(t, GROVE_SUM, 0, NULL, false); }

Test(autograd, small_graph_gradients)
{
    grove_memory_stats m0 = memory_now();
    grove_tensor *x = leaf(1, 2, 3), *y = leaf(4, 5, 6);
    /* loss = Σ (x·y + x) → dloss/dx = y + 1, dloss/dy = x */
    grove_tensor *xy = grove_binary(x, y, GROVE_MUL);
    grove_tensor *z = grove_binary(xy, x, GROVE_ADD);
    grove_tensor *loss = sum_all(z);
    cr_assert_not_null(loss, "%s", grove_last_error());
    cr_assert_eq(loss->ndim, 0);
    cr_assert(loss->requires_grad);
    cr_assert_not(loss->is_leaf);
    cr_assert_not_null(grove_grad_fn_name(loss));
    EXPECT_VALUES(loss, 1e-6, 4 + 10 + 18 + 6);
    cr_assert_gt(memory_now().live_nodes, m0.live_nodes);
    cr_assert_eq(grove_backward(loss, NULL, false), 0, "%s", grove_last_error());
    grove_tensor *gx = grove_tensor_grad(x), *gy = grove_tensor_grad(y);
    EXPECT_VALUES(gx, 1e-6, 5, 6, 7);
    EXPECT_VALUES(gy, 1e-6, 1, 2, 3);
    grove_tensor_release(gx);
    grove_tensor_release(gy);
    grove_tensor *ts[] = {loss, z, xy, x, y};
    for (int i = 0; i < 5; i++) grove_tensor_release(ts[i]);
    grove_memory_stats m1 = memory_now();
    cr_assert_eq(m1.live_nodes, m0.live_nodes, "nodes %lld -> %lld", (long long)m0.live_nodes, (long long)m1.live_nodes);
    cr_assert_eq(m1.live_tensors, m0.live_tensors);
    cr_assert_eq(m1.live_bytes, m0.live_bytes);
}

Test(autograd, mean_and_broadcast_gradients)
{
    /* loss = mean((w + b)²) with w (2,3) and b (3) broadcast:
     * dloss/dw = 2(w + b)/6, dloss/db = Σ_rows 2(w + b)/6 */
    grove_tensor *w = T(GROVE_F32, 2, ((int64_t[]){2, 3}), 1, 2, 3, 4, 5, 6);
    grove_tensor *b = leaf(-1, 0, 1);
    cr_assert_eq(grove_set_requires_grad(w, true), 0);
    grove_tensor *s = grove_binary(w, b, GROVE_ADD);
    grove_tensor *sq = grove_binary(s, s, GROVE_MUL);
    grove_tensor *loss = grove_reduce(sq, GROVE_MEAN, 0, NULL, false);
    cr_assert_not_null(loss, "%s", grove_last_error());
    /* s = [0 2 4; 3 5 7] */
    EXPECT_VALUES(loss, 1e-5, (0 + 4 + 16 + 9 + 25 + 49) / 6.0);
    cr_assert_eq(grove_backward(loss, NULL, false), 0, "%s", grove_last_error());
    EXPECT_VALUES(w->grad, 1e-6, 0, 4 / 6.0, 8 / 6.0, 6 / 6.0, 10 / 6.0, 14 / 6.0);
    EXPECT_VALUES(b->grad, 1e-6, 6 / 6.0, 14 / 6.0, 22 / 6.0);
    grove_tensor *ts[] = {loss, sq, s, b, w};
    for (int i = 0; i < 5; i++) grove_tensor_release(ts[i]);
}

Test(autograd, gradients_flow_through_views)
{
    grove_tensor *x = T(GROVE_F32, 2, ((int64_t[]){2, 3}), 1, 2, 3, 4, 5, 6);
    cr_assert_eq(grove_set_requires_grad(x, true), 0);
    grove_tensor *tr = grove_transpose(x, 0, 1);      /* (3,2) */
    grove_tensor *part = grove_narrow(tr, 0, 1, 2);   /* rows 1..2 of the transpose: columns 1..2 of x */
    grove_tensor *loss = sum_all(part);
    cr_assert_eq(grove_backward(loss, NULL, false), 0, "%s", grove_last_error());
    EXPECT_VALUES(x->grad, 0, 0, 1, 1, 0, 1, 1);
    grove_tensor *ts[] = {loss, part, tr, x};
    for (int i = 0; i < 4; i++) grove_tensor_release(ts[i]);
}

Test(autograd, backward_twice_needs_retain_graph)
{
    grove_tensor *x = leaf(1, 2, 3);
    grove_tensor *sq = grove_binary(x, x, GROVE_MUL);
    grove_tensor *loss = sum_all(sq);
    cr_assert_eq(grove_backward(loss, NULL, true), 0, "%s", grove_last_error());
    cr_assert_eq(grove_backward(loss, NULL, false), 0, "retained graph runs again: %s", grove_last_error());
    /* gradients accumulate: 2 · 2x */
    EXPECT_VALUES(x->grad, 1e-6, 4, 8, 12);
    cr_assert_neq(grove_backward(loss, NULL, false), 0);
    expect_error("retain_graph");
    grove_tensor_release(loss);
    grove_tensor_release(sq);
    grove_tensor_release(x);
}

Test(autograd, backward_errors)
{
    grove_tensor *x = leaf(1, 2, 3);
    grove_tensor *y = grove_binary(x, x, GROVE_ADD);
    cr_assert_neq(grove_backward(y, NULL, false), 0);
    expect_error("not a scalar");
    grove_tensor *wrong = grove_tensor_full(1, (int64_t[]){2}, 1, GROVE_F32, GROVE_CPU);
    cr_assert_neq(grove_backward(y, wrong, false), 0);
    expect_error("does not match");
    /* with a gradient of the right shape it runs */
    grove_tensor *g = T(GROVE_F32, 1, S3, 1, 10, 100);
    cr_assert_eq(grove_backward(y, g, false), 0, "%s", grove_last_error());
    EXPECT_VALUES(x->grad, 1e-6, 2, 20, 200);

    grove_tensor *c = T(GROVE_F32, 1, S3, 1, 2, 3);
    cr_assert_neq(grove_backward(c, NULL, false), 0);
    expect_error("does not require grad");
    grove_tensor *ints = T(GROVE_I64, 1, S3, 1, 2, 3);
    cr_assert_neq(grove_set_requires_grad(ints, true), 0);
    expect_error("f32");
    cr_assert_neq(grove_set_requires_grad(y, false), 0);
    expect_error("not a leaf");
    grove_tensor *ts[] = {x, y, wrong, g, c, ints};
    for (int i = 0; i < 6; i++) grove_tensor_release(ts[i]);
}

Test(autograd, no_grad_records_nothing)
{
    grove_tensor *x = leaf(1, 2, 3);
    grove_memory_stats m0 = memory_now();
    cr_assert(grove_grad_enabled());
    bool prev = grove_set_grad_enabled(false);
    cr_assert(prev);
    cr_assert_not(grove_grad_enabled());
    grove_tensor *y = grove_binary(x, x, GROVE_MUL);
    grove_tensor *s = sum_all(y);
    cr_assert_not_null(s);
    cr_assert_not(y->requires_grad);
    cr_assert_null(y->grad_fn);
    cr_assert_null(s->grad_fn);
    cr_assert_null(grove_grad_fn_name(s));
    cr_assert_eq(memory_now().live_nodes, m0.live_nodes);
    cr_assert_neq(grove_backward(s, NULL, false), 0);
    expect_error("does not require grad");
    cr_assert_eq(grove_set_grad_enabled(prev), false);
    cr_assert(grove_grad_enabled());
    /* and recording resumes */
    grove_tensor *z = grove_binary(x, x, GROVE_MUL);
    cr_assert(z->requires_grad);
    cr_assert_not_null(z->grad_fn);
    grove_tensor *ts[] = {x, y, s, z};
    for (int i = 0; i < 4; i++) grove_tensor_release(ts[i]);
}

Test(autograd, nodes_freed_with_the_output)
{
    grove_tensor *x = leaf(1, 2, 3);
    grove_memory_stats m0 = memory_now();
    /* A chain of 200 ops, released without running backward. */
    grove_tensor *cur = x;
    grove_tensor_retain(cur);
    for (int i = 0; i < 200; i++) {
        grove_tensor *next = grove_binary_scalar(cur, 1.0, GROVE_ADD, false);
        cr_assert_not_null(next, "%s", grove_last_error());
        grove_tensor_release(cur);
        cur = next;
    }
    cr_assert_geq(memory_now().live_nodes, m0.live_nodes + 200);
    grove_tensor_release(cur);
    grove_memory_stats m1 = memory_now();
    cr_assert_eq(m1.live_nodes, m0.live_nodes);
    cr_assert_eq(m1.live_tensors, m0.live_tensors);
    cr_assert_eq(m1.live_bytes, m0.live_bytes);
    cr_assert_eq(x->refcount, 1, "the tape released its reference to the leaf");
    grove_tensor_release(x);
}

Test(autograd, detach_and_grad_accessors)
{
    grove_tensor *x = leaf(1, 2, 3);
    grove_tensor *y = grove_binary(x, x, GROVE_MUL);
    grove_tensor *d = grove_detach(y);
    cr_assert_eq(d->storage, y->storage);
    cr_assert_not(d->requires_grad);
    cr_assert_null(d->grad_fn);
    cr_assert_null(grove_tensor_grad(x), "no gradient before backward");
    grove_tensor *g = T(GROVE_F32, 1, S3, 7, 8, 9);
    cr_assert_eq(grove_tensor_set_grad(x, g), 0);
    EXPECT_VALUES(x->grad, 0, 7, 8, 9);
    grove_tensor *bad = grove_tensor_zeros(1, (int64_t[]){2}, GROVE_F32, GROVE_CPU);
    cr_assert_neq(grove_tensor_set_grad(x, bad), 0);
    expect_error("does not match");
    grove_zero_grad(x);
    cr_assert_null(x->grad);
    grove_tensor *ts[] = {x, y, d, g, bad};
    for (int i = 0; i < 5; i++) grove_tensor_release(ts[i]);
}

/* A leaf's first gradient becomes .grad without a copy when nothing else
 * holds it, and is copied when something does: .grad never shares storage
 * with another leaf's .grad, the seed, or a tensor the tape keeps. */
Test(autograd, first_gradient_owned_by_the_leaf)
{
    grove_tensor *x = leaf(1, 2, 3), *y = leaf(4, 5, 6);
    grove_tensor *s = grove_binary(x, y, GROVE_ADD); /* both inputs get the same gradient */
    grove_tensor *loss = sum_all(s);
    cr_assert_eq(grove_backward(loss, NULL, false), 0, "%s", grove_last_error());
    cr_assert_neq(x->grad->storage, y->grad->storage, "the two leaves' gradients share a buffer");
    cr_assert_eq(grove_fill_(x->grad, 9), 0);
    EXPECT_VALUES(y->grad, 0, 1, 1, 1);
    cr_assert_eq(x->grad->refcount, 1);

    /* a seed the caller holds is copied: writing .grad leaves the seed alone */
    grove_tensor *z = leaf(1, 1, 1);
    grove_tensor *seed = T(GROVE_F32, 1, S3, 2, 3, 4);
    cr_assert_eq(grove_backward(z, seed, false), 0, "%s", grove_last_error());
    cr_assert_neq(z->grad->storage, seed->storage);
    cr_assert_eq(grove_fill_(z->grad, 0), 0);
    EXPECT_VALUES(seed, 0, 2, 3, 4);

    /* a second backward adds into the first gradient */
    grove_tensor *s2 = grove_binary(x, y, GROVE_ADD);
    grove_tensor *loss2 = sum_all(s2);
    cr_assert_eq(grove_backward(loss2, NULL, false), 0, "%s", grove_last_error());
    EXPECT_VALUES(x->grad, 0, 10, 10, 10);
    EXPECT_VALUES(y->grad, 0, 2, 2, 2);
    grove_tensor *ts[] = {x, y, s, loss, z, seed, s2, loss2};
    for (int i = 0; i < 8; i++) grove_tensor_release(ts[i]);
}

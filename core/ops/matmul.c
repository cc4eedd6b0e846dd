/*
 * matmul.c — matrix products: grove_matmul (torch.matmul's shape rules) and
 * grove_linear. Both hand OpenBLAS strided operands as they are: a matrix
 * whose last two strides are (ld, 1) goes as is, one with (1, ld) as its
 * transpose, so transposed views cost no copy; only other layouts are copied.
 */
#include "backend.h"

#include <limits.h>
#include <string.h>

/* How sgemm reads a rows x cols matrix with strides (sr, sc); false when
 * neither layout fits and the matrix must be copied. */
static bool gemm_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, bool *trans, int *ld)
{
    int64_t r1 = rows > 1 ? rows : 1, c1 = cols > 1 ? cols : 1;
    if ((cols <= 1 || sc == 1) && (rows <= 1 || sr >= c1)) {
        int64_t l = rows <= 1 ? c1 : sr;
        if (l <= INT_MAX) {
            *trans = false;
            *ld = (int)l;
            return true;
        }
    }
    if ((rows <= 1 || sr == 1) && (cols <= 1 || sc >= r1)) {
        int64_t l = cols <= 1 ? r1 : sc;
        if (l <= INT_MAX) {
            *trans = true;
            *ld = (int)l;
            return true;
        }
    }
    return false;
}

/* Fills op for the last two dimensions of t (ndim >= 2), seen as (rows, cols),
 * or as its transpose when transposed is set. */
bool gv_gemm_operand_of(grove_tensor *t, bool transposed, gv_gemm_operand *op)
{
    int32_t r = t->ndim - 2, c = t->ndim - 1;
    if (transposed) {
        r = t->ndim - 1;
        c = t->ndim - 2;
    }
    if (gemm_layout(t->shape[r], t->shape[c], t->stride[r], t->stride[c], &op->trans, &op->ld)) {
        grove_tensor_retain(t);
        op->t = t;
        return true;
    }
    op->t = gv_contiguous_data(t);
    if (!op->t) return false;
    if (!gemm_layout(t->shape[r], t->shape[c], op->t->stride[r], op->t->stride[c], &op->trans, &op->ld)) {
        grove_tensor_release(op->t);
        op->t = NULL;
        gv_fail("gemm: matrix %s too large for BLAS", gv_shape_str(t));
        return false;
    }
    return true;
}

/* t seen with at least two dimensions: a 1-d left operand as a row (1, K),
 * a 1-d right operand as a column (K, 1). An alias, off the tape. */
static grove_tensor *as_matrix(grove_tensor *t, bool left)
{
    if (t->ndim >= 2) return gv_alias(t, t->ndim, t->shape, t->stride, t->offset);
    int64_t shape[2], stride[2];
    if (left) {
        shape[0] = 1;
        shape[1] = t->shape[0];
        stride[0] = t->shape[0] * t->stride[0];
        stride[1] = t->stride[0];
    } else {
        shape[0] = t->shape[0];
        shape[1] = 1;
        stride[0] = t->stride[0];
        stride[1] = 1;
    }
    return gv_alias(t, 2, shape, stride, t->offset);
}

static bool fits_int(int64_t v) { return v <= INT_MAX; }

/* ---- matmul ------------------------------------------------------------- */

/* g with the dimensions matmul removed for 1-d operands put back. */
static grove_tensor *grad_as_matrix(grove_node *n, grove_tensor *g)
{
    int64_t shape[GROVE_MAX_DIMS];
    int32_t nd = 0;
    for (int32_t i = 0; i < g->ndim; i++) shape[nd++] = g->shape[i];
    if (n->in_ndim[1] == 1) shape[nd++] = 1;
    if (n->in_ndim[0] == 1) {
        shape[nd] = shape[nd - 1];
        shape[nd - 1] = 1;
        nd++;
    }
    return grove_reshape(g, nd, shape);
}

/* The shape input i has as a matrix operand (see as_matrix); returns its ndim. */
static int32_t matrix_shape(const grove_node *n, int32_t i, int64_t *shape)
{
    int32_t nd = n->in_ndim[i];
    if (nd >= 2) {
        memcpy(shape, n->in_shape[i], (size_t)nd * sizeof *shape);
        return nd;
    }
    shape[0] = i == 0 ? 1 : n->in_shape[i][0];
    shape[1] = i == 0 ? n->in_shape[i][0] : 1;
    return 2;
}

/* The gradient of input i: prod (the full batched product) summed over the
 * input's broadcast batch dimensions and given the input's shape. */
static grove_tensor *to_input_shape(grove_node *n, int32_t i, grove_tensor *prod)
{
    if (!prod) return NULL;
    int64_t shape[GROVE_MAX_DIMS];
    int32_t nd = matrix_shape(n, i, shape);
    grove_tensor *s = gv_sum_to(prod, nd, shape);
    grove_tensor_release(prod);
    if (!s) return NULL;
    grove_tensor *r = grove_reshape(s, n->in_ndim[i], n->in_shape[i]);
    grove_tensor_release(s);
    return r;
}

static grove_tensor *matmul_t(grove_tensor *a, grove_tensor *b, bool ta, bool tb)
{
    grove_tensor *at = ta ? grove_transpose(a, -2, -1) : a;
    grove_tensor *bt = tb ? grove_transpose(b, -2, -1) : b;
    grove_tensor *r = at && bt ? grove_matmul(at, bt) : NULL;
    if (ta) grove_tensor_release(at);
    if (tb) grove_tensor_release(bt);
    return r;
}

/* dB = Aᵀ @ g. When b has no batch (its batch dimensions are all 1), the
 * batches of a and g stack into tall matrices and one gemm sums over them. */
static grove_tensor *matmul_grad_b(grove_node *n, grove_tensor *a2, grove_tensor *g2)
{
    int64_t bshape[GROVE_MAX_DIMS];
    int32_t bnd = matrix_shape(n, 1, bshape);
    if (gv_numel_of(bnd - 2, bshape) != 1 || a2->ndim <= 2) return matmul_t(a2, g2, true, false);
    int64_t K = a2->shape[a2->ndim - 1], N = g2->shape[g2->ndim - 1];
    int64_t rows = gv_numel_of(a2->ndim - 1, a2->shape);
    int64_t as[2] = {rows, K}, gs[2] = {rows, N};
    grove_tensor *af = grove_reshape(a2, 2, as);
    grove_tensor *gf = af ? grove_reshape(g2, 2, gs) : NULL;
    grove_tensor *r = gf ? matmul_t(af, gf, true, false) : NULL;
    grove_tensor_release(af);
    grove_tensor_release(gf);
    /* (K, N) back to b's batch-of-ones shape, which sum_to then keeps. */
    grove_tensor *v = r ? grove_reshape(r, bnd, bshape) : NULL;
    grove_tensor_release(r);
    return v;
}

/* dA = g @ Bᵀ and dB = Aᵀ @ g, through transposed views (no copies). */
static grove_status matmul_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *g2 = grad_as_matrix(n, g);
    if (!g2) return -1;
    grove_status st = 0;
    if (n->needs_grad[0]) {
        grove_tensor *b2 = as_matrix(n->saved[1], false);
        gi[0] = b2 ? to_input_shape(n, 0, matmul_t(g2, b2, false, true)) : NULL;
        grove_tensor_release(b2);
        if (!gi[0]) st = -1;
    }
    if (n->needs_grad[1] && st == 0) {
        grove_tensor *a2 = as_matrix(n->saved[0], true);
        gi[1] = a2 ? to_input_shape(n, 1, matmul_grad_b(n, a2, g2)) : NULL;
        grove_tensor_release(a2);
        if (!gi[1]) st = -1;
    }
    grove_tensor_release(g2);
    return st;
}

/* Batch strides of a matrix operand against the output's batch shape: 0
 * where the operand has no such dimension or broadcasts along it. */
static void batch_strides(const grove_tensor *m, int32_t nbatch, const int64_t *batch_shape, int64_t *stride)
{
    int32_t mb = m->ndim - 2;
    for (int32_t i = 0; i < nbatch; i++) {
        int32_t im = i - (nbatch - mb);
        stride[i] = im >= 0 && m->shape[im] == batch_shape[i] && m->shape[im] != 1 ? m->stride[im] : 0;
    }
}

/* The operand of t for the gemm, its tensor held by the op; false after a failure. */
static bool hold_operand(gv_op *o, grove_tensor *t, bool transposed, gv_gemm_operand *g)
{
    o->ok = o->ok && gv_gemm_operand_of(t, transposed, g) && gv_op_hold(o, g->t);
    return o->ok;
}

/* The output of a @ b, seen as a2 @ b2 with at least two dimensions each. */
static void matmul_compute(gv_op *o, grove_tensor *a, grove_tensor *b, grove_tensor *a2, grove_tensor *b2)
{
    if (!o->ok) return;
    const char *sa = gv_shape_str(a), *sb = gv_shape_str(b);
    int64_t M = a2->shape[a2->ndim - 2], K = a2->shape[a2->ndim - 1];
    int64_t Kb = b2->shape[b2->ndim - 2], N = b2->shape[b2->ndim - 1];
    if (K != Kb) {
        GV_OP_FAIL(o, "matmul: %s @ %s: inner dimensions differ (%lld vs %lld)", sa, sb, (long long)K, (long long)Kb);
        return;
    }
    int32_t ab = a2->ndim - 2, bb = b2->ndim - 2, nb = ab > bb ? ab : bb;
    int64_t shape[GROVE_MAX_DIMS + 2];
    for (int32_t i = 0; i < nb; i++) {
        int32_t ia = i - (nb - ab), ib = i - (nb - bb);
        int64_t da = ia >= 0 ? a2->shape[ia] : 1, db = ib >= 0 ? b2->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            GV_OP_FAIL(o, "matmul: %s @ %s: batch dimensions cannot broadcast (%lld vs %lld)", sa, sb, (long long)da,
                       (long long)db);
            return;
        }
        shape[i] = da == 1 ? db : da;
    }
    if (!fits_int(M) || !fits_int(N) || !fits_int(K)) {
        GV_OP_FAIL(o, "matmul: %s @ %s: matrix dimensions exceed the BLAS int range", sa, sb);
        return;
    }
    /* The result drops the dimension a 1-d operand gained; the memory layout
     * is the same as (batch..., M, N). */
    int32_t nd = nb;
    if (a->ndim > 1) shape[nd++] = M;
    if (b->ndim > 1) shape[nd++] = N;
    grove_tensor *out = gv_op_output(o, nd, shape, GROVE_F32);
    if (!out || grove_tensor_numel(out) == 0) return;
    gv_gemm_operand oa, ob;
    if (!hold_operand(o, a2, false, &oa) || !hold_operand(o, b2, false, &ob)) return;
    int64_t as[GROVE_MAX_DIMS], bs[GROVE_MAX_DIMS];
    batch_strides(oa.t, nb, shape, as);
    batch_strides(ob.t, nb, shape, bs);
    GV_OP_CALL(o, matmul_batched, nb, shape, oa.t->data, as, oa.trans, oa.ld, ob.t->data, bs, ob.trans, ob.ld,
               out->data, (int)M, (int)N, (int)K);
}

grove_tensor *grove_matmul(grove_tensor *a, grove_tensor *b)
{
    if (!gv_check_f32("matmul", a) || !gv_check_f32("matmul", b)) return NULL;
    if (!gv_check_same_device("matmul", a, b)) return NULL;
    if (a->ndim == 0 || b->ndim == 0)
        return gv_fail_null("matmul: %s @ %s: both operands need at least 1 dimension", gv_shape_str(a),
                            gv_shape_str(b));
    grove_tensor *in[2] = {a, b};
    gv_op o;
    if (!gv_op_begin(&o, "matmul", matmul_backward, 2, in)) return NULL;
    grove_tensor *a2 = gv_op_hold(&o, as_matrix(a, true));
    grove_tensor *b2 = o.ok ? gv_op_hold(&o, as_matrix(b, false)) : NULL;
    matmul_compute(&o, a, b, a2, b2);
    /* Each gradient needs the other operand only. */
    if (o.node && o.node->needs_grad[1]) gv_op_save(&o, 0, a);
    if (o.node && o.node->needs_grad[0]) gv_op_save(&o, 1, b);
    return gv_op_end(&o);
}

/* ---- linear --------------------------------------------------------------- */

static grove_status linear_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    int64_t in_f = n->ints[0], out_f = n->ints[1], rows = n->ints[2];
    int64_t gs[2] = {rows, out_f};
    grove_tensor *g2 = grove_reshape(g, 2, gs);
    if (!g2) return -1;
    grove_status st = 0;
    if (n->needs_grad[0]) {
        grove_tensor *dx = grove_matmul(g2, n->saved[1]);
        gi[0] = dx ? grove_reshape(dx, n->in_ndim[0], n->in_shape[0]) : NULL;
        grove_tensor_release(dx);
        if (!gi[0]) st = -1;
    }
    if (n->needs_grad[1] && st == 0) {
        int64_t xs[2] = {rows, in_f};
        grove_tensor *x2 = grove_reshape(n->saved[0], 2, xs);
        gi[1] = x2 ? matmul_t(g2, x2, true, false) : NULL;
        grove_tensor_release(x2);
        if (!gi[1]) st = -1;
    }
    if (n->needs_grad[2] && st == 0) {
        const gv_kernels *k = gv_kernels_for(n->name, g);
        grove_tensor *gc = k ? gv_contiguous_data(g2) : NULL;
        gi[2] = gc ? gv_empty(1, &out_f, GROVE_F32, g->device) : NULL;
        if (gi[2] && GV_KCALL(n->name, k, sum_rows, rows, out_f, gc->data, gi[2]->data)) {
            grove_tensor_release(gi[2]);
            gi[2] = NULL;
        }
        grove_tensor_release(gc);
        if (!gi[2]) st = -1;
    }
    grove_tensor_release(g2);
    return st;
}

/* Stride between x's rows when its leading dimensions merge into one row
 * index (always for ndim <= 2); -1 when they do not. */
static int64_t merged_row_stride(const grove_tensor *x)
{
    int64_t rs = -1, expect = 0;
    for (int32_t i = x->ndim - 2; i >= 0; i--) {
        if (x->shape[i] == 1) continue;
        if (rs < 0) {
            rs = x->stride[i];
            expect = rs * x->shape[i];
        } else if (x->stride[i] != expect) {
            return -1;
        } else {
            expect *= x->shape[i];
        }
    }
    return rs < 0 ? 0 : rs;
}

static bool linear_check(grove_tensor *x, grove_tensor *w, grove_tensor *b)
{
    if (!gv_check_f32("linear", x) || !gv_check_f32("linear", w)) return false;
    if (b && !gv_check_f32("linear", b)) return false;
    if (!gv_check_same_device("linear", x, w) || (b && !gv_check_same_device("linear", x, b))) return false;
    if (w->ndim != 2) {
        gv_fail("linear: weight %s must be 2-d (out, in)", gv_shape_str(w));
        return false;
    }
    if (x->ndim == 0 || x->shape[x->ndim - 1] != w->shape[1]) {
        gv_fail("linear: input %s and weight %s: in features differ (%lld vs %lld)", gv_shape_str(x),
                gv_shape_str(w), x->ndim ? (long long)x->shape[x->ndim - 1] : 0LL, (long long)w->shape[1]);
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        gv_fail("linear: bias %s does not match weight %s (expected [%lld])", gv_shape_str(b), gv_shape_str(w),
                (long long)w->shape[0]);
        return false;
    }
    return true;
}

/* y (rows, out) = x (rows, in) @ wᵀ + b: one gemm that reads w transposed in
 * place. */
static void linear_compute(gv_op *o, grove_tensor *x, grove_tensor *w, grove_tensor *b, int64_t rows,
                           grove_tensor *y)
{
    int64_t in_f = w->shape[1], out_f = w->shape[0];
    if (!o->ok || rows == 0 || out_f == 0) return;
    /* x as a (rows, in) matrix: a view when its leading dimensions merge. */
    grove_tensor *x2;
    int64_t rs = merged_row_stride(x);
    int64_t xs[2] = {rows, in_f};
    if (rs >= 0) {
        int64_t st[2] = {rs, x->stride[x->ndim - 1]};
        x2 = gv_op_hold(o, gv_alias(x, 2, xs, st, x->offset));
    } else {
        grove_tensor *xc = gv_op_input(o, x);
        x2 = xc ? gv_op_hold(o, gv_alias(xc, 2, xs, (int64_t[2]){in_f, 1}, xc->offset)) : NULL;
    }
    gv_gemm_operand ox, ow;
    if (!x2 || !hold_operand(o, x2, false, &ox) || !hold_operand(o, w, true, &ow)) return;
    grove_tensor *bc = gv_op_input(o, b);
    GV_OP_CALL(o, gemm, ox.trans, ow.trans, (int)rows, (int)out_f, (int)in_f, ox.t->data, ox.ld, ow.t->data, ow.ld,
               bc ? bc->data : NULL, y->data);
}

grove_tensor *grove_linear(grove_tensor *x, grove_tensor *w, grove_tensor *b)
{
    if (!linear_check(x, w, b)) return NULL;
    int64_t shape[GROVE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    int64_t rows = gv_numel_of(x->ndim - 1, x->shape);
    if (!fits_int(rows) || !fits_int(w->shape[1]) || !fits_int(w->shape[0]))
        return gv_fail_null("linear: input %s, weight %s: dimensions exceed the BLAS int range", gv_shape_str(x),
                            gv_shape_str(w));
    grove_tensor *in[3] = {x, w, b};
    gv_op o;
    if (!gv_op_begin(&o, "linear", linear_backward, 3, in)) return NULL;
    grove_tensor *y = gv_op_output(&o, x->ndim, shape, GROVE_F32);
    linear_compute(&o, x, w, b, rows, y);
    if (o.node) {
        o.node->ints[0] = w->shape[1];
        o.node->ints[1] = w->shape[0];
        o.node->ints[2] = rows;
    }
    if (o.node && o.node->needs_grad[1]) gv_op_save(&o, 0, x);
    if (o.node && o.node->needs_grad[0]) gv_op_save(&o, 1, w);
    return gv_op_end(&o);
}

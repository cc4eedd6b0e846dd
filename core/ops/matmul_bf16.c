/*
 * matmul_bf16.c — grove_matmul_bf16: the GEMM of bf16 mixed precision.
 * Both operands are rounded to bf16 and the products summed in f32 (the
 * kernel list's gemm_bf16: on the CPU round copies of the operands, then
 * the f32 GEMM, the reference CUDA's cublasGemmEx is checked against). An
 * operand may be stored bf16 already (an inference model's weights): it is
 * read as is, with the same result as its f32 original. Transposed views
 * are read in place, as grove_matmul does. Its gradients are bf16 GEMMs as
 * well, as under PyTorch's autocast.
 */
#include "backend.h"

#include <limits.h>

static grove_status matmul_bf16_backward(grove_node *n, grove_tensor *g, grove_tensor **gi)
{
    grove_tensor *a = n->saved[0], *b = n->saved[1];
    if (n->needs_grad[0]) {
        grove_tensor *bt = grove_transpose(b, 0, 1);
        gi[0] = bt ? grove_matmul_bf16(g, bt) : NULL;
        grove_tensor_release(bt);
        if (!gi[0]) return -1;
    }
    if (n->needs_grad[1]) {
        grove_tensor *at = grove_transpose(a, 0, 1);
        gi[1] = at ? grove_matmul_bf16(at, g) : NULL;
        grove_tensor_release(at);
        if (!gi[1]) return -1;
    }
    return 0;
}

/* a is f32 or bf16 (bf16 is stored already rounded); name names it. */
static bool check_operand(const char *op, const char *name, const grove_tensor *t)
{
    if (!gv_check_live(op, t)) return false;
    if (t->dtype != GROVE_F32 && t->dtype != GROVE_BF16) {
        gv_fail("%s: operand %s is %s %s, expected f32 or bf16", op, name, grove_dtype_name(t->dtype),
                gv_shape_str(t));
        return false;
    }
    if (t->ndim != 2) {
        gv_fail("%s: operand %s %s must be 2-d", op, name, gv_shape_str(t));
        return false;
    }
    return true;
}

grove_tensor *grove_matmul_bf16(grove_tensor *a, grove_tensor *b)
{
    const char *op = "matmul_bf16";
    if (!check_operand(op, "a", a) || !check_operand(op, "b", b) || !gv_check_same_device(op, a, b)) return NULL;
    if (a->shape[1] != b->shape[0])
        return gv_fail_null("%s: %s @ %s: inner dimensions differ (%lld vs %lld)", op, gv_shape_str(a),
                            gv_shape_str(b), (long long)a->shape[1], (long long)b->shape[0]);
    if (a->shape[0] > INT_MAX || a->shape[1] > INT_MAX || b->shape[1] > INT_MAX)
        return gv_fail_null("%s: %s @ %s: a dimension exceeds the GEMM's int range", op, gv_shape_str(a),
                            gv_shape_str(b));
    int m = (int)a->shape[0], kk = (int)a->shape[1], n = (int)b->shape[1];
    int64_t shape[2] = {m, n};
    grove_tensor *inputs[2] = {a, b};
    gv_op o;
    if (!gv_op_begin(&o, op, matmul_bf16_backward, 2, inputs)) return NULL;
    grove_tensor *out = gv_op_output(&o, 2, shape, GROVE_F32);
    /* transposed and row-strided views are read in place (a Linear's wᵀ) */
    gv_gemm_operand oa = {0}, ob = {0};
    o.ok = o.ok && gv_gemm_operand_of(a, false, &oa) && gv_op_hold(&o, oa.t);
    o.ok = o.ok && gv_gemm_operand_of(b, false, &ob) && gv_op_hold(&o, ob.t);
    /* scratch for the converted operands: bytes, as much as the device asks */
    int64_t nbytes = GV_OP_READY(&o, gemm_bf16_scratch) ? o.k->gemm_bf16_scratch(m, n, kk) : 0;
    grove_tensor *scratch = gv_op_temp(&o, 1, &nbytes, GROVE_U8);
    GV_OP_CALL(&o, gemm_bf16, oa.trans, ob.trans, m, n, kk, oa.t->data, oa.t->dtype, oa.ld, ob.t->data, ob.t->dtype,
               ob.ld, out->data, scratch->data);
    gv_op_save(&o, 0, a);
    gv_op_save(&o, 1, b);
    return gv_op_end(&o);
}

bool grove_gemm_bf16_dnnl_available(void) { return gv_cpu_gemm_bf16_dnnl_available(); }

void grove_gemm_bf16_set_dnnl(int32_t on) { gv_cpu_gemm_bf16_dnnl_enable(on != 0); }

bool grove_cpu_has_bf16(void) { return gv_cpu_has_bf16_arithmetic(); }

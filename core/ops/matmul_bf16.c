/*
 * matmul_bf16.c — grove_matmul_bf16: the GEMM of bf16 mixed precision.
 * Both operands are rounded to bf16 and the products summed in f32 (the
 * kernel list's gemm_bf16: on the CPU round copies of the operands, then
 * the f32 GEMM, the reference CUDA's cublasGemmEx is checked against). Its
 * gradients are bf16 GEMMs as well, as under PyTorch's autocast.
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

/* c = round(a)·round(b) on data of the kernels' device. */
static grove_status run(const gv_kernels *k, grove_tensor *ac, grove_tensor *bc, grove_tensor *out, int m, int n,
                        int kk)
{
    const char *op = "matmul_bf16";
    if (!gv_kernel_ready(op, k, gemm_bf16_scratch)) return -1;
    int64_t nbytes = k->gemm_bf16_scratch(m, n, kk);
    grove_tensor *scratch = gv_empty(1, &nbytes, GROVE_U8, ac->device);
    if (!scratch) return -1;
    grove_status st = GV_KCALL(op, k, gemm_bf16, m, n, kk, ac->data, bc->data, out->data, scratch->data);
    grove_tensor_release(scratch);
    return st;
}

grove_tensor *grove_matmul_bf16(grove_tensor *a, grove_tensor *b)
{
    const char *op = "matmul_bf16";
    if (!gv_check_f32(op, a) || !gv_check_f32(op, b) || !gv_check_same_device(op, a, b)) return NULL;
    if (a->ndim != 2 || b->ndim != 2)
        return gv_fail_null("%s: %s @ %s: both operands must be 2-d", op, gv_shape_str(a), gv_shape_str(b));
    if (a->shape[1] != b->shape[0])
        return gv_fail_null("%s: %s @ %s: inner dimensions differ (%lld vs %lld)", op, gv_shape_str(a),
                            gv_shape_str(b), (long long)a->shape[1], (long long)b->shape[0]);
    if (a->shape[0] > INT_MAX || a->shape[1] > INT_MAX || b->shape[1] > INT_MAX)
        return gv_fail_null("%s: %s @ %s: a dimension exceeds the GEMM's int range", op, gv_shape_str(a),
                            gv_shape_str(b));
    const gv_kernels *k = gv_kernels_for(op, a);
    if (!k) return NULL;
    int m = (int)a->shape[0], kk = (int)a->shape[1], n = (int)b->shape[1];
    int64_t shape[2] = {m, n};
    grove_tensor *out = gv_empty(2, shape, GROVE_F32, a->device);
    if (!out) return NULL;
    grove_tensor *ac = gv_contiguous_data(a), *bc = ac ? gv_contiguous_data(b) : NULL;
    grove_status st = bc ? run(k, ac, bc, out, m, n, kk) : -1;
    grove_tensor_release(ac);
    grove_tensor_release(bc);
    if (st) {
        grove_tensor_release(out);
        return NULL;
    }
    grove_tensor *inputs[2] = {a, b};
    grove_node *node;
    if (gv_node_begin(op, matmul_bf16_backward, 2, inputs, &node)) {
        grove_tensor_release(out);
        return NULL;
    }
    if (node) {
        if (gv_node_save(node, 0, a) || gv_node_save(node, 1, b)) {
            gv_node_release(node);
            grove_tensor_release(out);
            return NULL;
        }
        gv_node_finish(node, out);
    }
    return out;
}

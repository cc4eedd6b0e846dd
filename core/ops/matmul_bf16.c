/*
 * matmul_bf16.c — grove_matmul_bf16: the GEMM of bf16 mixed precision.
 * Both operands are rounded to bf16 and the products summed in f32. On the
 * CPU this is the reference the CUDA path (cublasGemmEx, bf16 inputs, f32
 * compute) is checked against: round copies of the operands, then the f32
 * GEMM of the kernel table. Its gradients are bf16 GEMMs as well, as under
 * PyTorch's autocast.
 */
#include "backend.h"
#include "round_bf16.h"

#include <limits.h>
#include <string.h>

#ifdef GROVE_HAVE_CUDA
#include "gemm_bf16.h"
#endif

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
#ifdef GROVE_HAVE_CUDA
    if (ac->device == GROVE_CUDA) {
        int64_t shape = (int64_t)m * kk + (int64_t)kk * n;
        grove_tensor *scratch = gv_empty(1, &shape, GROVE_BF16, GROVE_CUDA);
        if (!scratch) return -1;
        gv_cuda_gemm_bf16(m, n, kk, ac->data, bc->data, out->data, scratch->data);
        grove_status st = gv_kernels_check(k);
        grove_tensor_release(scratch);
        return st;
    }
#endif
    if (ac->device != GROVE_CPU) {
        gv_no_backend(op, ac);
        return -1;
    }
    if (kk == 0 || m == 0 || n == 0) { /* an empty sum: zeros */
        memset(out->data, 0, (size_t)m * (size_t)n * sizeof(float));
        return 0;
    }
    grove_tensor *ar = gv_empty_like(ac), *br = gv_empty_like(bc);
    grove_status st = -1;
    if (ar && br) {
        gv_cpu_round_bf16(ac->data, ar->data, grove_tensor_numel(ac));
        gv_cpu_round_bf16(bc->data, br->data, grove_tensor_numel(bc));
        st = GV_KCALL(op, k, gemm, false, false, m, n, kk, ar->data, kk, br->data, n, NULL, out->data);
    }
    grove_tensor_release(ar);
    grove_tensor_release(br);
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

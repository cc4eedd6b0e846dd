/* quant.c — blockwise 8-bit quantization of f32 tensors, the storage of
 * CAME-8bit's first moment, exposed for tests and state conversion. */
#include "common.h"

static bool check_kind(const char *op, int32_t kind, int64_t block, int64_t *per)
{
    *per = kind == GROVE_QUANT_DYNAMIC ? 1 : kind == GROVE_QUANT_AFFINE ? 2 : 0;
    if (!*per) {
        gv_fail("%s: unknown quantizer kind %d (0 dynamic, 1 affine)", op, kind);
        return false;
    }
    if (block < 1) {
        gv_fail("%s: block must be >= 1, got %lld", op, (long long)block);
        return false;
    }
    return true;
}

/* A live, contiguous tensor on device of a dtype and element count. */
static bool check_buffer(const char *op, const char *what, const grove_tensor *t, int32_t device, int32_t dtype,
                         int64_t numel)
{
    if (!gv_check_live(op, t)) return false;
    if (t->dtype != dtype || t->device != device || !grove_tensor_is_contiguous(t) ||
        grove_tensor_numel(t) != numel) {
        gv_fail("%s: %s must be a contiguous %s %s tensor of %lld elements, got %s %s%s%s", op, what,
                device == GROVE_CUDA ? "cuda" : "cpu", grove_dtype_name(dtype), (long long)numel,
                grove_dtype_name(t->dtype), gv_shape_str(t), grove_tensor_is_contiguous(t) ? "" : " (not contiguous)",
                t->device != device ? (t->device == GROVE_CUDA ? " on cuda" : " on cpu") : "");
        return false;
    }
    return true;
}

grove_status grove_quantize_blockwise(grove_tensor *x, int32_t kind, int64_t block, grove_tensor *codes,
                                      grove_tensor *scales)
{
    const char *op = "quantize_blockwise";
    int64_t per;
    if (!check_kind(op, kind, block, &per) || !gv_check_f32(op, x)) return -1;
    const gv_kernels *k = gv_kernels_for(op, x);
    if (!k) return -1;
    int64_t n = grove_tensor_numel(x), nblocks = (n + block - 1) / block;
    if (!check_buffer(op, "codes", codes, x->device, GROVE_U8, n) ||
        !check_buffer(op, "scales", scales, x->device, GROVE_F32, per * nblocks))
        return -1;
    grove_tensor *xc = gv_contiguous_data(x);
    if (!xc) return -1;
    grove_status st = kind == GROVE_QUANT_DYNAMIC
                          ? GV_KCALL(op, k, quantize_dynamic, xc->data, n, block, codes->data, scales->data)
                          : GV_KCALL(op, k, quantize_affine, xc->data, n, block, codes->data, scales->data);
    grove_tensor_release(xc);
    return st;
}

grove_status grove_dequantize_blockwise(grove_tensor *codes, grove_tensor *scales, int32_t kind, int64_t block,
                                        grove_tensor *out)
{
    const char *op = "dequantize_blockwise";
    int64_t per;
    if (!check_kind(op, kind, block, &per) || !gv_check_live(op, codes)) return -1;
    const gv_kernels *k = gv_kernels_for(op, codes);
    if (!k) return -1;
    int64_t n = grove_tensor_numel(codes), nblocks = (n + block - 1) / block;
    if (!check_buffer(op, "codes", codes, codes->device, GROVE_U8, n) ||
        !check_buffer(op, "scales", scales, codes->device, GROVE_F32, per * nblocks) ||
        !check_buffer(op, "out", out, codes->device, GROVE_F32, n))
        return -1;
    return kind == GROVE_QUANT_DYNAMIC
               ? GV_KCALL(op, k, dequantize_dynamic, codes->data, scales->data, n, block, out->data)
               : GV_KCALL(op, k, dequantize_affine, codes->data, scales->data, n, block, out->data);
}

void grove_quant_dynamic_map(float *out)
{
    /* A fixed table computed on the host: no device kernel involved. */
    if (out) gv_cpu_dynamic_map(out);
}

/* quant.c — blockwise 8-bit quantization of f32 tensors, the storage of
 * CAME-8bit's first moment, exposed for tests and state conversion. */
#include "common.h"
#include "../../kernels/cpu/cpu.h"

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

/* A live, contiguous CPU tensor of a dtype and element count. */
static bool check_buffer(const char *op, const char *what, const grove_tensor *t, int32_t dtype, int64_t numel)
{
    if (!gv_check_live(op, t)) return false;
    if (t->dtype != dtype || t->device != GROVE_CPU || !grove_tensor_is_contiguous(t) ||
        grove_tensor_numel(t) != numel) {
        gv_fail("%s: %s must be a contiguous cpu %s tensor of %lld elements, got %s %s%s", op, what,
                grove_dtype_name(dtype), (long long)numel, grove_dtype_name(t->dtype), gv_shape_str(t),
                grove_tensor_is_contiguous(t) ? "" : " (not contiguous)");
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
    if (x->device != GROVE_CPU) {
        gv_no_backend(op, x);
        return -1;
    }
    int64_t n = grove_tensor_numel(x), nblocks = (n + block - 1) / block;
    if (!check_buffer(op, "codes", codes, GROVE_U8, n) || !check_buffer(op, "scales", scales, GROVE_F32, per * nblocks))
        return -1;
    grove_tensor *xc = gv_contiguous_data(x);
    if (!xc) return -1;
    if (kind == GROVE_QUANT_DYNAMIC) {
        gv_cpu_quantize_dynamic(xc->data, n, block, codes->data, scales->data);
    } else {
        gv_cpu_quantize_affine(xc->data, n, block, codes->data, scales->data);
    }
    grove_tensor_release(xc);
    return 0;
}

grove_status grove_dequantize_blockwise(grove_tensor *codes, grove_tensor *scales, int32_t kind, int64_t block,
                                        grove_tensor *out)
{
    const char *op = "dequantize_blockwise";
    int64_t per;
    if (!check_kind(op, kind, block, &per) || !gv_check_live(op, codes)) return -1;
    int64_t n = grove_tensor_numel(codes), nblocks = (n + block - 1) / block;
    if (!check_buffer(op, "codes", codes, GROVE_U8, n) || !check_buffer(op, "scales", scales, GROVE_F32, per * nblocks) ||
        !check_buffer(op, "out", out, GROVE_F32, n))
        return -1;
    if (kind == GROVE_QUANT_DYNAMIC) {
        gv_cpu_dequantize_dynamic(codes->data, scales->data, n, block, out->data);
    } else {
        gv_cpu_dequantize_affine(codes->data, scales->data, n, block, out->data);
    }
    return 0;
}

void grove_quant_dynamic_map(float *out)
{
    if (out) gv_cpu_dynamic_map(out);
}

/*
 * image_convert.c — pixels between u8 [0, 255] and f32 [-1, 1], the range
 * the models train in.
 */
#include "internal.h"

#include <math.h>
#include <stdint.h>

static uint8_t f32_to_u8(float x)
{
    double v = ((double)x + 1.0) * 127.5;
    if (!(v > 0)) return 0; /* also NaN */
    if (v >= 255) return 255;
    return (uint8_t)floor(v + 0.5);
}

grove_tensor *grove_image_to_u8(grove_tensor *x)
{
    const char *op = "image_to_u8";
    if (!gv_check_f32(op, x)) return NULL;
    if (x->device != GROVE_CPU) return gv_no_backend(op, x);
    grove_tensor *xc = gv_contiguous_data(x);
    if (!xc) return NULL;
    grove_tensor *out = gv_empty(x->ndim, x->shape, GROVE_U8, GROVE_CPU);
    if (out) {
        const float *s = xc->data;
        uint8_t *d = out->data;
        int64_t n = grove_tensor_numel(x);
        for (int64_t i = 0; i < n; i++) d[i] = f32_to_u8(s[i]);
    }
    grove_tensor_release(xc);
    return out;
}

grove_tensor *grove_image_to_f32(grove_tensor *x)
{
    const char *op = "image_to_f32";
    if (!gv_check_live(op, x)) return NULL;
    if (x->dtype != GROVE_U8)
        return gv_fail_null("%s: expected a u8 tensor, got %s %s", op, grove_dtype_name(x->dtype), gv_shape_str(x));
    if (x->device != GROVE_CPU) return gv_no_backend(op, x);
    grove_tensor *xc = gv_contiguous_data(x);
    if (!xc) return NULL;
    grove_tensor *out = gv_empty(x->ndim, x->shape, GROVE_F32, GROVE_CPU);
    if (out) {
        const uint8_t *s = xc->data;
        float *d = out->data;
        int64_t n = grove_tensor_numel(x);
        for (int64_t i = 0; i < n; i++) d[i] = (float)s[i] / 127.5f - 1.0f;
    }
    grove_tensor_release(xc);
    return out;
}

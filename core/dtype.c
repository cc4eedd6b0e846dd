/* dtype.c — element sizes, names, and conversions between storage types. */
#include "internal.h"
#include "../kernels/cpu/convert.h"

#include <math.h>
#include <string.h>

static const int64_t sizes[GROVE_DTYPE_COUNT] = {4, 2, 2, 1, 1, 4, 8};
static const char *names[GROVE_DTYPE_COUNT] = {"f32", "f16", "bf16", "u8", "i8", "i32", "i64"};

int64_t grove_dtype_size(int32_t dtype)
{
    return dtype >= 0 && dtype < GROVE_DTYPE_COUNT ? sizes[dtype] : 0;
}

const char *grove_dtype_name(int32_t dtype)
{
    return dtype >= 0 && dtype < GROVE_DTYPE_COUNT ? names[dtype] : "invalid";
}

/* The conversions themselves live in kernels/cpu/convert.h, shared with the
 * CUDA copy kernels; these are their exported forms. */
float gv_bf16_to_f32(uint16_t h) { return gv_conv_bf16_to_f32(h); }
uint16_t gv_f32_to_bf16(float f) { return gv_conv_f32_to_bf16(f); }
float gv_f16_to_f32(uint16_t h) { return gv_conv_f16_to_f32(h); }
uint16_t gv_f32_to_f16(float f) { return gv_conv_f32_to_f16(f); }
double gv_load_as_double(const void *data, int32_t dtype, int64_t i) { return gv_conv_load(data, dtype, i); }
void gv_store_double(void *data, int32_t dtype, int64_t i, double v) { gv_conv_store(data, dtype, i, v); }

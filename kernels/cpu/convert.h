/*
 * convert.h — element conversions between grove's storage types: f32 ↔ f16
 * and bf16 bit patterns, and any dtype through double with saturating
 * integer stores. Inline and marked for host and device alike, so the CPU
 * (core/dtype.c, kernels/cpu/copy.c) and the CUDA copy kernels
 * (kernels/cuda/copy.cu) convert with one definition and give the same bits.
 */
#ifndef GROVE_KERNELS_CPU_CONVERT_H
#define GROVE_KERNELS_CPU_CONVERT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <grove.h>

#include "hostdev.h"

static inline GV_HD uint32_t gv_conv_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline GV_HD float gv_conv_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline GV_HD float gv_conv_bf16_to_f32(uint16_t h) { return gv_conv_bits_f32((uint32_t)h << 16); }

static inline GV_HD uint16_t gv_conv_f32_to_bf16(float f)
{
    uint32_t u = gv_conv_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    /* round to nearest, ties to even */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline GV_HD float gv_conv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return gv_conv_bits_f32(sign | 0x7f800000u | (man << 13));
    return gv_conv_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline GV_HD uint16_t gv_conv_f32_to_f16(float f)
{
    uint32_t u = gv_conv_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* overflow (incl. inf) after rounding */
    if (a < 0x38800000u) {                       /* subnormal or zero in f16 */
        /* value / 2^-24, rounded to nearest even (the default rounding mode) */
        float v = gv_conv_bits_f32(a) * 16777216.0f;
        return sign | (uint16_t)nearbyintf(v);
    }
    uint32_t mant = a & 0x7fffffu;
    uint32_t exp = (a >> 23) - 112u;
    uint32_t half = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return sign | (uint16_t)half;
}

static inline GV_HD double gv_conv_load(const void *data, int32_t dtype, int64_t i)
{
    switch (dtype) {
    case GROVE_F32: return ((const float *)data)[i];
    case GROVE_F16: return gv_conv_f16_to_f32(((const uint16_t *)data)[i]);
    case GROVE_BF16: return gv_conv_bf16_to_f32(((const uint16_t *)data)[i]);
    case GROVE_U8: return ((const uint8_t *)data)[i];
    case GROVE_I8: return ((const int8_t *)data)[i];
    case GROVE_I32: return ((const int32_t *)data)[i];
    case GROVE_I64: return (double)((const int64_t *)data)[i];
    default: return 0;
    }
}

/* Integer stores saturate (NaN stores 0) instead of invoking undefined behaviour. */
static inline GV_HD double gv_conv_clamp(double v, double lo, double hi)
{
    return v != v ? 0 : v < lo ? lo : v > hi ? hi : v;
}

static inline GV_HD void gv_conv_store(void *data, int32_t dtype, int64_t i, double v)
{
    switch (dtype) {
    case GROVE_F32: ((float *)data)[i] = (float)v; break;
    case GROVE_F16: ((uint16_t *)data)[i] = gv_conv_f32_to_f16((float)v); break;
    case GROVE_BF16: ((uint16_t *)data)[i] = gv_conv_f32_to_bf16((float)v); break;
    case GROVE_U8: ((uint8_t *)data)[i] = (uint8_t)gv_conv_clamp(v, 0, 255); break;
    case GROVE_I8: ((int8_t *)data)[i] = (int8_t)gv_conv_clamp(v, -128, 127); break;
    case GROVE_I32: ((int32_t *)data)[i] = (int32_t)gv_conv_clamp(v, -2147483648.0, 2147483647.0); break;
    case GROVE_I64:
        ((int64_t *)data)[i] = (int64_t)gv_conv_clamp(v, -9223372036854775808.0, 9223372036854774784.0);
        break;
    default: break;
    }
}

#endif

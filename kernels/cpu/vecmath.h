/*
 * vecmath.h — exp, sigmoid and tanh that the compiler can vectorise.
 *
 * libm's expf and tanhf are scalar calls, and under GCC's default
 * -ftrapping-math a float ternary becomes a branch; either stops a loop from
 * vectorising and made SiLU, GELU and softmax 4-5x slower. Here e^−a is
 * Cephes' expf (Cody-Waite reduction, degree-6 polynomial, about 1 ulp;
 * within 2.2e-7 relative of float64) and every select is a bit mask.
 */
#ifndef GROVE_KERNELS_CPU_VECMATH_H
#define GROVE_KERNELS_CPU_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline int32_t gv_f2i(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

static inline float gv_i2f(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* e^−a for a >= 0; 0 when a >= 87 or NaN (so the result stays a normal
 * float and no NaN reaches the integer conversion); a negative a counts as 0. */
static inline float gv_exp_neg(float a)
{
    a = gv_i2f(gv_f2i(a) & ~(gv_f2i(a) >> 31)); /* negative (sign bit set) → +0 */
    int32_t out = -(int32_t)!isless(a, 87.0f); /* all ones outside the range */
    float x = -gv_i2f((gv_f2i(a) & ~out) | (gv_f2i(87.0f) & out));
    /* n = round(x / ln 2): adding and subtracting 1.5·2²³ rounds to an
     * integer (C does not reassociate it away; floorf does not vectorise). */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float v = p * gv_i2f(((int32_t)n + 127) << 23);
    return gv_i2f(gv_f2i(v) & ~out);
}

/* r, or z itself when z is NaN: NaN stays visible through every map. */
static inline float gv_keep_nan(float z, float r)
{
    int32_t nan = -(int32_t)(z != z);
    return gv_i2f((gv_f2i(r) & ~nan) | (gv_f2i(z) & nan));
}

/* σ(z) through e^−|z|, which never overflows. */
static inline float gv_sigmoid(float z)
{
    float e = gv_exp_neg(fabsf(z));
    float inv = 1.0f / (1.0f + e);
    int32_t neg = gv_f2i(z) >> 31; /* all ones when the sign bit is set */
    return gv_keep_nan(z, gv_i2f((gv_f2i(inv) & ~neg) | (gv_f2i(e * inv) & neg)));
}

/* tanh(z) = sign(z)·(1 − e)/(1 + e), e = e^−2|z|. */
static inline float gv_tanh(float z)
{
    float e = gv_exp_neg(2.0f * fabsf(z));
    float t = (1.0f - e) / (1.0f + e);
    return gv_keep_nan(z, gv_i2f(gv_f2i(t) | (gv_f2i(z) & (int32_t)0x80000000)));
}

/* e^x for x <= 0 (softmax after subtracting the maximum). */
static inline float gv_exp_nonpos(float x) { return gv_exp_neg(-x); }

#endif

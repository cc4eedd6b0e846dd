/* test_quant.c — blockwise 8-bit quantization (the storage of CAME-8bit's
 * first moment): the dynamic code map, round trips of random, heavy-tailed,
 * constant and all-zero blocks for both quantizers, nearest rounding,
 * thread-count independence, and argument errors. */
#include "helpers.h"

#include <stdlib.h>

enum { BLOCK = 256 };

static grove_tensor *vec(int64_t n, int32_t dtype)
{
    grove_tensor *t = grove_tensor_zeros(1, &n, dtype, GROVE_CPU);
    cr_assert_not_null(t, "%s", grove_last_error());
    return t;
}

static grove_tensor *randn_vec(int64_t n, uint64_t seed)
{
    grove_generator g = {seed, 0};
    grove_tensor *t = grove_randn(1, &n, &g);
    cr_assert_not_null(t, "%s", grove_last_error());
    return t;
}

/* Quantizes x and decodes it again; *codes and *scales are returned for inspection. */
static grove_tensor *round_trip(grove_tensor *x, int32_t kind, int64_t block, grove_tensor **codes,
                                grove_tensor **scales)
{
    int64_t n = grove_tensor_numel(x), nb = (n + block - 1) / block;
    *codes = vec(n, GROVE_U8);
    *scales = vec(nb * (kind == GROVE_QUANT_AFFINE ? 2 : 1), GROVE_F32);
    cr_assert_eq(grove_quantize_blockwise(x, kind, block, *codes, *scales), 0, "%s", grove_last_error());
    grove_tensor *y = vec(n, GROVE_F32);
    cr_assert_eq(grove_dequantize_blockwise(*codes, *scales, kind, block, y), 0, "%s", grove_last_error());
    return y;
}

static void release4(grove_tensor *a, grove_tensor *b, grove_tensor *c, grove_tensor *d)
{
    grove_tensor_release(a);
    grove_tensor_release(b);
    grove_tensor_release(c);
    grove_tensor_release(d);
}

/* Half the gap between the map values around v (v in [−1, 1]). */
static double half_gap(const float *map, double v)
{
    for (int k = 0; k < 255; k++)
        if (v >= map[k] && v <= map[k + 1]) return 0.5 * (map[k + 1] - map[k]);
    return 0.5 * (map[1] - map[0]); /* below −0.993: the first gap bounds it */
}

Test(quant, dynamic_map_is_the_bitsandbytes_signed_map)
{
    float map[256];
    grove_quant_dynamic_map(map);
    for (int k = 0; k < 255; k++) cr_assert(map[k] < map[k + 1], "map ascends at %d: %g, %g", k, map[k], map[k + 1]);
    cr_assert_eq(map[255], 1.0f);
    int zeros = 0;
    for (int k = 0; k < 256; k++) zeros += map[k] == 0.0f;
    cr_assert_eq(zeros, 1, "zero is one code");
    /* the top decade: midpoints of 65 points evenly spaced over [0.1, 1] */
    cr_assert_float_eq(map[254], (float)(0.5 * (1.0 - 0.9 / 64) + 0.5), 1e-7);
    cr_assert_float_eq(map[0], -map[254], 0);
    /* the smallest magnitude: 1e-6 · 0.55 */
    double smallest = 1;
    for (int k = 0; k < 256; k++)
        if (map[k] != 0 && fabs(map[k]) < smallest) smallest = fabs(map[k]);
    cr_assert_float_eq(smallest, 0.55e-6, 1e-12);
    /* symmetric apart from +1 */
    for (int k = 0; k < 127; k++) cr_assert_eq(map[k], -map[254 - k], "pair %d", k);
}

Test(quant, dynamic_rounds_random_blocks_to_the_nearest_code)
{
    int64_t n = 40 * BLOCK + 77; /* a short last block */
    grove_tensor *x = randn_vec(n, 11), *codes, *scales;
    grove_tensor *y = round_trip(x, GROVE_QUANT_DYNAMIC, BLOCK, &codes, &scales);
    float map[256];
    grove_quant_dynamic_map(map);
    const float *xv = x->data, *yv = y->data, *sv = scales->data;
    const uint8_t *cv = codes->data;
    for (int64_t b = 0; b * BLOCK < n; b++) {
        int64_t i0 = b * BLOCK, i1 = i0 + BLOCK < n ? i0 + BLOCK : n;
        float a = 0;
        for (int64_t i = i0; i < i1; i++) a = fabsf(xv[i]) > a ? fabsf(xv[i]) : a;
        cr_assert_eq(sv[b], a, "block %lld absmax", (long long)b);
        for (int64_t i = i0; i < i1; i++) {
            double v = xv[i] / a;
            /* no code is nearer (up to the rounding of the midpoints) */
            double got = fabs(v - map[cv[i]]);
            for (int k = 0; k < 256; k++)
                cr_assert(got <= fabs(v - map[k]) + 1e-7, "element %lld: code %d (%g) but %d (%g) is nearer to %g",
                          (long long)i, cv[i], map[cv[i]], k, map[k], v);
            double bound = a * (half_gap(map, v) + 1e-7);
            cr_assert(fabs(yv[i] - xv[i]) <= bound, "element %lld: %g decoded as %g (bound %g)", (long long)i, xv[i],
                      yv[i], bound);
        }
    }
    release4(x, y, codes, scales);
}

Test(quant, affine_round_trip_is_within_half_a_step)
{
    int64_t n = 33 * BLOCK + 5;
    grove_tensor *x = randn_vec(n, 12), *codes, *scales;
    grove_tensor *y = round_trip(x, GROVE_QUANT_AFFINE, BLOCK, &codes, &scales);
    const float *xv = x->data, *yv = y->data, *sv = scales->data;
    for (int64_t b = 0; b * BLOCK < n; b++) {
        int64_t i0 = b * BLOCK, i1 = i0 + BLOCK < n ? i0 + BLOCK : n;
        float lo = xv[i0], hi = xv[i0];
        for (int64_t i = i0; i < i1; i++) {
            lo = xv[i] < lo ? xv[i] : lo;
            hi = xv[i] > hi ? xv[i] : hi;
        }
        cr_assert_eq(sv[2 * b], lo, "block %lld min", (long long)b);
        cr_assert_float_eq(sv[2 * b + 1], (hi - lo) / 255.0, 1e-6 * (hi - lo));
        double step = sv[2 * b + 1];
        for (int64_t i = i0; i < i1; i++)
            cr_assert(fabs(yv[i] - xv[i]) <= 0.5 * step + 1e-6 * (hi - lo), "element %lld: %g decoded as %g (step %g)",
                      (long long)i, xv[i], yv[i], step);
        /* the block minimum is exact */
        for (int64_t i = i0; i < i1; i++)
            if (xv[i] == lo) cr_assert_eq(yv[i], lo);
    }
    release4(x, y, codes, scales);
}

/* Heavy tails: Cauchy-like values (a ratio of normals) with two huge
 * outliers. Both quantizers decode without NaN and keep the outliers; the
 * dynamic map keeps small values within a few percent of themselves where
 * affine cannot. */
Test(quant, heavy_tailed_blocks)
{
    int64_t n = 8 * BLOCK;
    grove_tensor *a = randn_vec(n, 21), *b = randn_vec(n, 22);
    float *av = a->data;
    const float *bv = b->data;
    for (int64_t i = 0; i < n; i++) av[i] = av[i] / (fabsf(bv[i]) + 1e-3f);
    av[3] = 1e4f;
    av[BLOCK + 7] = -3e5f;
    double rel_mean[GROVE_QUANT_COUNT];
    for (int kind = 0; kind < GROVE_QUANT_COUNT; kind++) {
        grove_tensor *codes, *scales;
        grove_tensor *y = round_trip(a, kind, BLOCK, &codes, &scales);
        const float *yv = y->data;
        for (int64_t i = 0; i < n; i++) cr_assert(isfinite(yv[i]), "kind %d element %lld is %g", kind, (long long)i, yv[i]);
        /* the outliers themselves come back (they set the scale) */
        cr_assert(fabsf(yv[3] - 1e4f) <= 1e4f * 1e-6f, "kind %d: %g", kind, yv[3]);
        cr_assert(fabsf(yv[BLOCK + 7] + 3e5f) <= 3e5f * 7.1e-3f, "kind %d: %g", kind, yv[BLOCK + 7]);
        /* relative error of the values above 1e-4 of their block's absmax */
        const float *sv = scales->data;
        double rel_sum = 0, rel_max = 0;
        int64_t count = 0;
        for (int64_t i = 0; i < n; i++) {
            float amax = kind == GROVE_QUANT_DYNAMIC ? sv[i / BLOCK] : fmaxf(fabsf(sv[2 * (i / BLOCK)]),
                                                                             fabsf(sv[2 * (i / BLOCK)] + 255 * sv[2 * (i / BLOCK) + 1]));
            if (fabsf(av[i]) > 1e-4f * amax) {
                double rel = fabs(yv[i] - av[i]) / fabs(av[i]);
                rel_sum += rel;
                rel_max = rel > rel_max ? rel : rel_max;
                count++;
            }
        }
        rel_mean[kind] = rel_sum / (double)count;
        if (kind == GROVE_QUANT_DYNAMIC) cr_assert(rel_max < 0.5, "largest relative error %g", rel_max);
        release4(y, codes, scales, NULL);
    }
    /* the dynamic map keeps small values near themselves; affine steps of
     * (max − min)/255 swamp them */
    cr_assert(rel_mean[0] < 0.1, "dynamic: mean relative error %g", rel_mean[0]);
    cr_assert(rel_mean[1] > 5 * rel_mean[0], "affine %g against dynamic %g", rel_mean[1], rel_mean[0]);
    grove_tensor_release(a);
    grove_tensor_release(b);
}

Test(quant, zero_and_constant_blocks_decode_exactly)
{
    int64_t n = 3 * BLOCK;
    grove_tensor *x = vec(n, GROVE_F32);
    float *xv = x->data;
    /* block 0 all zero, block 1 constant 0.25, block 2 one nonzero value */
    for (int64_t i = BLOCK; i < 2 * BLOCK; i++) xv[i] = 0.25f;
    xv[2 * BLOCK + 9] = -2.0f;
    for (int kind = 0; kind < GROVE_QUANT_COUNT; kind++) {
        grove_tensor *codes, *scales;
        grove_tensor *y = round_trip(x, kind, BLOCK, &codes, &scales);
        const float *yv = y->data, *sv = scales->data;
        for (int64_t i = 0; i < BLOCK; i++) cr_assert_eq(yv[i], 0.0f, "kind %d zero block element %lld: %g", kind, (long long)i, yv[i]);
        cr_assert_eq(sv[kind == GROVE_QUANT_AFFINE ? 1 : 0], 0.0f, "kind %d: a zero block has scale 0", kind);
        for (int64_t i = BLOCK; i < 2 * BLOCK; i++) cr_assert_eq(yv[i], 0.25f, "kind %d constant block: %g", kind, yv[i]);
        /* the block's extreme: exact for affine (it is the minimum); the
         * dynamic map's most negative value is −0.99297 (no −1, as bitsandbytes') */
        float want = kind == GROVE_QUANT_AFFINE ? -2.0f : 2.0f * (float)(-0.5 * (1.0 - 0.9 / 64) - 0.5);
        cr_assert_float_eq(yv[2 * BLOCK + 9], want, 1e-6, "kind %d: %g", kind, yv[2 * BLOCK + 9]);
        if (kind == GROVE_QUANT_DYNAMIC)
            for (int64_t i = 2 * BLOCK; i < 3 * BLOCK; i++)
                if (i != 2 * BLOCK + 9) cr_assert_eq(yv[i], 0.0f, "zeros beside an outlier stay zero");
        release4(y, codes, scales, NULL);
    }
    grove_tensor_release(x);
}

Test(quant, codes_do_not_depend_on_the_thread_count)
{
    int64_t n = 1000 * BLOCK + 3;
    grove_tensor *x = randn_vec(n, 31);
    int32_t t0 = grove_num_threads();
    for (int kind = 0; kind < GROVE_QUANT_COUNT; kind++) {
        grove_tensor *c1, *s1, *c2, *s2;
        cr_assert_eq(grove_set_num_threads(1), 0);
        grove_tensor *y1 = round_trip(x, kind, BLOCK, &c1, &s1);
        cr_assert_eq(grove_set_num_threads(2), 0);
        grove_tensor *y2 = round_trip(x, kind, BLOCK, &c2, &s2);
        cr_assert_eq(memcmp(c1->data, c2->data, (size_t)n), 0, "kind %d codes", kind);
        cr_assert_eq(memcmp(y1->data, y2->data, (size_t)n * 4), 0, "kind %d values", kind);
        release4(y1, c1, s1, NULL);
        release4(y2, c2, s2, NULL);
    }
    grove_set_num_threads(t0);
    grove_tensor_release(x);
}

Test(quant, bad_arguments_are_errors)
{
    int64_t n = 300;
    grove_tensor *x = randn_vec(n, 41), *codes = vec(n, GROVE_U8), *scales = vec(2, GROVE_F32);
    grove_tensor *short_codes = vec(n - 1, GROVE_U8), *f32_codes = vec(n, GROVE_F32);
    cr_assert_eq(grove_quantize_blockwise(x, 7, BLOCK, codes, scales), -1);
    expect_error("unknown quantizer kind 7");
    cr_assert_eq(grove_quantize_blockwise(x, GROVE_QUANT_DYNAMIC, 0, codes, scales), -1);
    expect_error("block must be >= 1");
    cr_assert_eq(grove_quantize_blockwise(x, GROVE_QUANT_DYNAMIC, BLOCK, short_codes, scales), -1);
    expect_error("codes must be a contiguous cpu u8 tensor of 300 elements");
    cr_assert_eq(grove_quantize_blockwise(x, GROVE_QUANT_DYNAMIC, BLOCK, f32_codes, scales), -1);
    expect_error("codes must be");
    cr_assert_eq(grove_quantize_blockwise(x, GROVE_QUANT_AFFINE, BLOCK, codes, scales), -1);
    expect_error("scales must be a contiguous cpu f32 tensor of 4 elements");
    cr_assert_eq(grove_quantize_blockwise(codes, GROVE_QUANT_DYNAMIC, BLOCK, codes, scales), -1);
    expect_error("expected an f32 tensor");
    cr_assert_eq(grove_dequantize_blockwise(codes, scales, GROVE_QUANT_DYNAMIC, BLOCK, short_codes), -1);
    expect_error("out must be");
    release4(x, codes, scales, short_codes);
    grove_tensor_release(f32_codes);
}

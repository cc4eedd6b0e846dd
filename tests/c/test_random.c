/* test_random.c — Philox4x32-10 against the Random123 known-answer vectors,
 * the counter scheme of the fills, their statistics and determinism. */
#include "helpers.h"

#include <stdlib.h>

/* From Random123's kat_vectors (philox4x32 10: counter, key, expected output). */
Test(philox, known_answer_vectors)
{
    static const struct { uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        grove_philox4x32(kat[k].ctr, kat[k].key, out);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(out[i], kat[k].out[i], "vector %d word %d: expected %08x, got %08x", k, i, kat[k].out[i],
                         out[i]);
    }
}

/* Element i of a fill is lane i%4 of the block at counter (offset + i/4),
 * keyed by the seed, mapped to (0, 1] as cuRAND: x·2^-32 + 2^-33. */
Test(philox, fills_follow_the_counter_scheme)
{
    grove_generator g = {0x0123456789abcdefull, 5};
    int64_t n = 10;
    grove_tensor *u = grove_rand(1, &n, &g);
    cr_assert_not_null(u, "%s", grove_last_error());
    cr_assert_eq(g.offset, 5 + 3, "10 elements use 3 counters");
    const float *v = u->data;
    for (int64_t i = 0; i < n; i++) {
        uint64_t c = 5 + (uint64_t)i / 4;
        uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0}, key[2] = {0x89abcdef, 0x01234567}, out[4];
        grove_philox4x32(ctr, key, out);
        double want = out[i % 4] * ldexp(1, -32) + ldexp(1, -33);
        cr_assert(fabs(v[i] - want) <= 1e-7, "element %lld: expected %.9g, got %.9g", (long long)i, want, v[i]);
    }
    grove_tensor_release(u);
}

static void moments(const float *v, int64_t n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(ss / (double)(n - 1));
}

Test(random, uniform_statistics)
{
    grove_manual_seed(1234);
    int64_t n = 100000;
    grove_tensor *u = grove_rand(1, &n, NULL);
    const float *v = u->data;
    for (int64_t i = 0; i < n; i++) cr_assert(v[i] > 0 && v[i] <= 1, "element %lld = %.9g outside (0, 1]", (long long)i, v[i]);
    double mean, std;
    moments(v, n, &mean, &std);
    /* standard error of the mean: 0.289/√n ≈ 0.0009 */
    cr_assert(fabs(mean - 0.5) < 0.005, "mean %.5f", mean);
    cr_assert(fabs(std - sqrt(1.0 / 12)) < 0.005, "std %.5f", std);
    grove_tensor_release(u);

    grove_tensor *r = grove_tensor_empty(1, &n, GROVE_F32, GROVE_CPU);
    cr_assert_eq(grove_uniform_(r, NULL, -3, 5), 0);
    v = r->data;
    for (int64_t i = 0; i < n; i++) cr_assert(v[i] >= -3 && v[i] <= 5);
    moments(v, n, &mean, &std);
    cr_assert(fabs(mean - 1) < 0.04, "mean %.5f", mean);
    grove_tensor_release(r);
}

Test(random, normal_statistics)
{
    grove_manual_seed(99);
    int64_t n = 100000;
    grove_tensor *z = grove_randn(1, &n, NULL);
    const float *v = z->data;
    for (int64_t i = 0; i < n; i++) cr_assert(isfinite(v[i]));
    double mean, std;
    moments(v, n, &mean, &std);
    cr_assert(fabs(mean) < 0.02, "mean %.5f", mean);
    cr_assert(fabs(std - 1) < 0.02, "std %.5f", std);
    grove_tensor_release(z);

    grove_tensor *r = grove_tensor_empty(1, &n, GROVE_F32, GROVE_CPU);
    cr_assert_eq(grove_normal_(r, NULL, 3, 0.5), 0);
    moments(r->data, n, &mean, &std);
    cr_assert(fabs(mean - 3) < 0.01, "mean %.5f", mean);
    cr_assert(fabs(std - 0.5) < 0.01, "std %.5f", std);
    cr_assert_neq(grove_normal_(r, NULL, 0, -1), 0);
    expect_error("negative");
    grove_tensor_release(r);
}

/* Large enough that the fills run in parallel. */
static grove_tensor *draw(int32_t threads, bool normal)
{
    cr_assert_eq(grove_set_num_threads(threads), 0);
    grove_generator g = {777, 3};
    int64_t n = 300001;
    return normal ? grove_randn(1, &n, &g) : grove_rand(1, &n, &g);
}

Test(random, same_draws_for_any_thread_count)
{
    for (int normal = 0; normal < 2; normal++) {
        grove_tensor *a = draw(1, normal), *b = draw(2, normal);
        cr_assert_not_null(a);
        cr_assert_not_null(b);
        cr_assert(!memcmp(a->data, b->data, (size_t)grove_tensor_numel(a) * 4), "%s draws differ between 1 and 2 threads",
                  normal ? "normal" : "uniform");
        grove_tensor_release(a);
        grove_tensor_release(b);
    }
}

Test(random, offsets_advance)
{
    grove_generator g = {42, 0};
    int64_t n = 8, n2 = 16;
    grove_tensor *a = grove_rand(1, &n, &g);
    cr_assert_eq(g.offset, 2);
    grove_tensor *b = grove_rand(1, &n, &g);
    cr_assert_eq(g.offset, 4);
    cr_assert(memcmp(a->data, b->data, 32), "consecutive draws must differ");
    /* Two draws of 8 are one draw of 16 from the same start. */
    grove_generator h = {42, 0};
    grove_tensor *c = grove_rand(1, &n2, &h);
    cr_assert(!memcmp(c->data, a->data, 32));
    cr_assert(!memcmp((float *)c->data + 8, b->data, 32));
    /* A different seed gives different numbers. */
    grove_generator k = {43, 0};
    grove_tensor *d = grove_rand(1, &n, &k);
    cr_assert(memcmp(d->data, a->data, 32));
    grove_tensor *ts[] = {a, b, c, d};
    for (int i = 0; i < 4; i++) grove_tensor_release(ts[i]);
}

Test(random, manual_seed_repeats_the_default_stream)
{
    int64_t n = 100;
    grove_manual_seed(7);
    cr_assert_eq(grove_default_generator()->seed, 7);
    cr_assert_eq(grove_default_generator()->offset, 0);
    grove_tensor *a = grove_randn(1, &n, NULL);
    cr_assert_eq(grove_default_generator()->offset, 25);
    grove_tensor *b = grove_randn(1, &n, NULL);
    grove_manual_seed(7);
    grove_tensor *c = grove_randn(1, &n, NULL);
    cr_assert(!memcmp(a->data, c->data, 400));
    cr_assert(memcmp(a->data, b->data, 400));
    grove_tensor_release(a);
    grove_tensor_release(b);
    grove_tensor_release(c);
}

Test(random, fills_into_strided_views)
{
    /* A fill of a transpose draws in logical order. */
    grove_tensor *t = grove_tensor_zeros(2, (int64_t[]){3, 4}, GROVE_F32, GROVE_CPU);
    grove_tensor *tr = grove_transpose(t, 0, 1);
    grove_generator g = {5, 0};
    cr_assert_eq(grove_uniform_(tr, &g, 0, 1), 0);
    int64_t n = 12;
    grove_generator h = {5, 0};
    grove_tensor *flat = grove_rand(1, &n, &h);
    double got[12];
    cr_assert_eq(grove_tensor_read_doubles(tr, got, 12), 0);
    for (int i = 0; i < 12; i++) cr_assert_eq((float)got[i], ((float *)flat->data)[i]);
    grove_tensor *ints = grove_tensor_zeros(1, &n, GROVE_I64, GROVE_CPU);
    cr_assert_neq(grove_uniform_(ints, &g, 0, 1), 0);
    expect_error("f32");
    grove_tensor_release(ints);
    grove_tensor_release(flat);
    grove_tensor_release(tr);
    grove_tensor_release(t);
}

/* helpers.h — small conveniences shared by the Criterion tests of the C core. */
#ifndef GROVE_TEST_HELPERS_H
#define GROVE_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <grove.h>
#include <math.h>
#include <string.h>

/* A tensor of the given dtype from a literal list of values, e.g.
 * T(GROVE_F32, 2, ((int64_t[]){2, 3}), 1, 2, 3, 4, 5, 6). */
#define T(dtype, ndim, shape, ...)                                                                              \
    grove_tensor_from_doubles((ndim), (shape), (dtype), (const double[]){__VA_ARGS__},                        \
                              (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)))

/* Asserts that t holds exactly the n values of want (in logical order) to within tol. */
static inline void expect_values(const grove_tensor *t, const double *want, int64_t n, double tol)
{
    cr_assert_not_null(t, "tensor is NULL: %s", grove_last_error());
    cr_assert_eq(grove_tensor_numel(t), n, "expected %lld elements, got %lld", (long long)n,
                 (long long)grove_tensor_numel(t));
    double got[256];
    cr_assert(n <= 256);
    cr_assert_eq(grove_tensor_read_doubles(t, got, n), 0, "%s", grove_last_error());
    for (int64_t i = 0; i < n; i++) {
        bool same = (isnan(want[i]) && isnan(got[i])) || got[i] == want[i] || fabs(got[i] - want[i]) <= tol;
        cr_assert(same, "element %lld: expected %.9g, got %.9g", (long long)i, want[i], got[i]);
    }
}

#define EXPECT_VALUES(t, tol, ...)                                                                             \
    expect_values((t), (const double[]){__VA_ARGS__},                                                          \
                  (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), (tol))

/* Asserts that the last error message contains needle. */
static inline void expect_error(const char *needle)
{
    const char *msg = grove_last_error();
    cr_assert(msg && strstr(msg, needle), "expected an error containing '%s', got '%s'", needle, msg ? msg : "(none)");
}

static inline grove_memory_stats memory_now(void)
{
    grove_memory_stats s;
    cr_assert_eq(grove_memory(GROVE_CPU, &s), 0);
    return s;
}

#endif

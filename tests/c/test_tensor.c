/* test_tensor.c — tensors, views, copies, dtype conversions and memory counters. */
#include "helpers.h"

static const int64_t S23[] = {2, 3};
static const int64_t S34[] = {3, 4};

/* ---- creation and references ---------------------------------------------- */

Test(tensor, creation_geometry)
{
    grove_tensor *t = grove_tensor_zeros(2, S23, GROVE_F32, GROVE_CPU);
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    cr_assert_eq(t->stride[0], 3);
    cr_assert_eq(t->stride[1], 1);
    cr_assert_eq(t->dtype, GROVE_F32);
    cr_assert_eq(t->device, GROVE_CPU);
    cr_assert_eq(t->refcount, 1);
    cr_assert(t->is_leaf);
    cr_assert_not(t->requires_grad);
    cr_assert_eq(grove_tensor_numel(t), 6);
    cr_assert(grove_tensor_is_contiguous(t));
    EXPECT_VALUES(t, 0, 0, 0, 0, 0, 0, 0);
    grove_tensor_release(t);

    grove_tensor *f = grove_tensor_full(1, (int64_t[]){4}, 2.5, GROVE_F32, GROVE_CPU);
    EXPECT_VALUES(f, 0, 2.5, 2.5, 2.5, 2.5);
    grove_tensor_release(f);

    grove_tensor *d = T(GROVE_I64, 2, S23, 1, -2, 3, 4, 5, 6);
    cr_assert_eq(d->dtype, GROVE_I64);
    EXPECT_VALUES(d, 0, 1, -2, 3, 4, 5, 6);
    grove_tensor_release(d);
}

Test(tensor, zero_dim_and_empty)
{
    grove_tensor *s = grove_tensor_full(0, NULL, 7, GROVE_F32, GROVE_CPU);
    cr_assert_not_null(s);
    cr_assert_eq(s->ndim, 0);
    cr_assert_eq(grove_tensor_numel(s), 1);
    double v;
    cr_assert_eq(grove_tensor_item(s, &v), 0);
    cr_assert_eq(v, 7);
    grove_tensor_release(s);

    grove_tensor *e = grove_tensor_zeros(2, (int64_t[]){0, 5}, GROVE_F32, GROVE_CPU);
    cr_assert_not_null(e);
    cr_assert_eq(grove_tensor_numel(e), 0);
    grove_tensor_release(e);
}

Test(tensor, bad_creation_is_an_error)
{
    cr_assert_null(grove_tensor_zeros(2, (int64_t[]){2, -1}, GROVE_F32, GROVE_CPU));
    expect_error("negative size");
    cr_assert_null(grove_tensor_zeros(9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, GROVE_F32, GROVE_CPU));
    cr_assert_null(grove_tensor_zeros(1, (int64_t[]){2}, 99, GROVE_CPU));
    expect_error("dtype");
    cr_assert_null(grove_tensor_from_doubles(2, S23, GROVE_F32, (double[]){1, 2, 3}, 3));
    expect_error("3 values");
}

Test(tensor, refcounts)
{
    grove_memory_stats m0 = memory_now();
    grove_tensor *t = grove_tensor_zeros(2, S23, GROVE_F32, GROVE_CPU);
    grove_tensor_retain(t);
    cr_assert_eq(t->refcount, 2);
    grove_tensor_release(t);
    cr_assert_eq(t->refcount, 1);
    cr_assert_eq(memory_now().live_tensors, m0.live_tensors + 1);
    /* A view holds the storage, not the tensor object. */
    grove_tensor *v = grove_narrow(t, 1, 0, 2);
    cr_assert_eq(t->refcount, 1);
    cr_assert_eq(v->storage, t->storage);
    grove_tensor_release(t);
    cr_assert_eq(memory_now().live_tensors, m0.live_tensors + 1);
    cr_assert_gt(memory_now().live_bytes, m0.live_bytes, "the view keeps the storage alive");
    grove_tensor_release(v);
    cr_assert_eq(memory_now().live_tensors, m0.live_tensors);
    cr_assert_eq(memory_now().live_bytes, m0.live_bytes);
}

/* ---- views ------------------------------------------------------------------ */

Test(view, narrow_writes_through_to_the_base)
{
    grove_tensor *base = grove_tensor_zeros(2, S34, GROVE_F32, GROVE_CPU);
    grove_tensor *v = grove_narrow(base, 1, 1, 2);
    cr_assert_not_null(v);
    cr_assert_eq(v->storage, base->storage);
    cr_assert_eq(v->offset, 1);
    cr_assert_eq(v->shape[1], 2);
    cr_assert_eq(grove_fill_(v, 7), 0);
    EXPECT_VALUES(base, 0, 0, 7, 7, 0, 0, 7, 7, 0, 0, 7, 7, 0);
    grove_tensor_release(v);
    grove_tensor_release(base);
}

Test(view, transpose_writes_through_to_the_base)
{
    grove_tensor *base = grove_tensor_zeros(2, S34, GROVE_F32, GROVE_CPU);
    grove_tensor *t = grove_transpose(base, 0, 1);
    cr_assert_eq(t->shape[0], 4);
    cr_assert_eq(t->shape[1], 3);
    cr_assert_eq(t->stride[0], 1);
    cr_assert_eq(t->stride[1], 4);
    /* Row 3 of the transpose is column 3 of the base. */
    grove_tensor *row = grove_select(t, 0, 3);
    grove_tensor *src = T(GROVE_F32, 1, (int64_t[]){3}, 1, 2, 3);
    cr_assert_eq(grove_copy_(row, src), 0, "%s", grove_last_error());
    EXPECT_VALUES(base, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3);
    EXPECT_VALUES(t, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3);
    grove_tensor_release(src);
    grove_tensor_release(row);
    grove_tensor_release(t);
    grove_tensor_release(base);
}

Test(view, view_of_non_contiguous_fails_reshape_copies)
{
    grove_tensor *base = T(GROVE_F32, 2, S23, 1, 2, 3, 4, 5, 6);
    grove_tensor *t = grove_transpose(base, 0, 1);
    int64_t flat[] = {6};
    cr_assert_null(grove_view(t, 1, flat));
    expect_error("view");
    expect_error("[3,2]");
    expect_error("reshape");
    grove_tensor *r = grove_reshape(t, 1, flat);
    cr_assert_not_null(r, "%s", grove_last_error());
    cr_assert_neq(r->storage, base->storage, "reshape of a transpose must copy");
    EXPECT_VALUES(r, 0, 1, 4, 2, 5, 3, 6);
    /* On a contiguous tensor both are views. */
    grove_tensor *v = grove_view(base, 2, (int64_t[]){3, -1});
    cr_assert_not_null(v);
    cr_assert_eq(v->storage, base->storage);
    cr_assert_eq(v->shape[1], 2);
    grove_tensor *r2 = grove_reshape(base, 1, flat);
    cr_assert_eq(r2->storage, base->storage);
    cr_assert_null(grove_view(base, 1, (int64_t[]){5}));
    expect_error("cannot view");
    grove_tensor_release(r2);
    grove_tensor_release(v);
    grove_tensor_release(r);
    grove_tensor_release(t);
    grove_tensor_release(base);
}

Test(view, is_contiguous)
{
    grove_tensor *base = grove_tensor_zeros(2, S34, GROVE_F32, GROVE_CPU);
    grove_tensor *tr = grove_transpose(base, 0, 1);
    grove_tensor *cols = grove_narrow(base, 1, 1, 2);
    grove_tensor *rows = grove_narrow(base, 0, 1, 2);
    grove_tensor *row = grove_select(base, 0, 2);
    grove_tensor *col = grove_select(base, 1, 2);
    cr_assert(grove_tensor_is_contiguous(base));
    cr_assert_not(grove_tensor_is_contiguous(tr));
    cr_assert_not(grove_tensor_is_contiguous(cols));
    cr_assert(grove_tensor_is_contiguous(rows));
    cr_assert(grove_tensor_is_contiguous(row));
    cr_assert_not(grove_tensor_is_contiguous(col));
    grove_tensor *ts[] = {tr, cols, rows, row, col, base};
    for (int i = 0; i < 6; i++) grove_tensor_release(ts[i]);
}

Test(view, expand_gives_stride_zero)
{
    grove_tensor *c = T(GROVE_F32, 2, ((int64_t[]){3, 1}), 1, 2, 3);
    grove_tensor *e = grove_expand(c, 3, (int64_t[]){2, 3, 4});
    cr_assert_not_null(e, "%s", grove_last_error());
    cr_assert_eq(e->storage, c->storage);
    cr_assert_eq(e->stride[0], 0);
    cr_assert_eq(e->stride[1], 1);
    cr_assert_eq(e->stride[2], 0);
    cr_assert_not(grove_tensor_is_contiguous(e));
    double got[24];
    cr_assert_eq(grove_tensor_read_doubles(e, got, 24), 0);
    for (int i = 0; i < 24; i++) cr_assert_eq(got[i], (double)((i / 4) % 3 + 1));
    cr_assert_null(grove_expand(c, 2, (int64_t[]){4, 4}));
    expect_error("expand");
    grove_tensor_release(e);
    grove_tensor_release(c);
}

Test(view, squeeze_unsqueeze)
{
    grove_tensor *t = grove_tensor_zeros(4, (int64_t[]){2, 1, 3, 1}, GROVE_F32, GROVE_CPU);
    grove_tensor *all = grove_squeeze(t, -1);
    cr_assert_eq(all->ndim, 2);
    cr_assert_eq(all->shape[0], 2);
    cr_assert_eq(all->shape[1], 3);
    grove_tensor *one = grove_squeeze(t, 1);
    cr_assert_eq(one->ndim, 3);
    cr_assert_eq(one->shape[2], 1);
    grove_tensor *none = grove_squeeze(t, 0); /* size 2: unchanged */
    cr_assert_eq(none->ndim, 4);
    grove_tensor *front = grove_unsqueeze(all, 0);
    cr_assert_eq(front->ndim, 3);
    cr_assert_eq(front->shape[0], 1);
    cr_assert_eq(front->shape[1], 2);
    grove_tensor *back = grove_unsqueeze(all, -1);
    cr_assert_eq(back->ndim, 3);
    cr_assert_eq(back->shape[2], 1);
    cr_assert(grove_tensor_is_contiguous(back));
    cr_assert_eq(back->storage, t->storage);
    cr_assert_null(grove_unsqueeze(all, 4));
    expect_error("out of range");
    grove_tensor *ts[] = {all, one, none, front, back, t};
    for (int i = 0; i < 6; i++) grove_tensor_release(ts[i]);
}

Test(view, out_of_range_arguments_are_errors)
{
    grove_tensor *t = grove_tensor_zeros(2, S23, GROVE_F32, GROVE_CPU);
    cr_assert_null(grove_narrow(t, 1, 2, 2));
    expect_error("out of bounds");
    cr_assert_null(grove_select(t, 0, 2));
    expect_error("out of range");
    cr_assert_null(grove_transpose(t, 0, 2));
    expect_error("dimension 2 out of range");
    cr_assert_null(grove_permute(t, 2, (int32_t[]){0, 0}));
    expect_error("repeated");
    grove_tensor_release(t);
}

/* ---- copies ------------------------------------------------------------------ */

Test(copy, contiguous_copies_only_when_needed)
{
    grove_tensor *base = T(GROVE_F32, 2, S23, 1, 2, 3, 4, 5, 6);
    grove_tensor *same = grove_contiguous(base);
    cr_assert_eq(same, base, "a contiguous tensor is returned as itself");
    cr_assert_eq(base->refcount, 2);
    grove_tensor_release(same);
    grove_tensor *tr = grove_transpose(base, 0, 1);
    grove_tensor *c = grove_contiguous(tr);
    cr_assert_neq(c, tr);
    cr_assert_neq(c->storage, base->storage);
    cr_assert(grove_tensor_is_contiguous(c));
    EXPECT_VALUES(c, 0, 1, 4, 2, 5, 3, 6);
    grove_tensor *cl = grove_clone(base);
    cr_assert_neq(cl->storage, base->storage);
    EXPECT_VALUES(cl, 0, 1, 2, 3, 4, 5, 6);
    grove_tensor_release(cl);
    grove_tensor_release(c);
    grove_tensor_release(tr);
    grove_tensor_release(base);
}

Test(copy, broadcasts_and_converts)
{
    grove_tensor *dst = grove_tensor_zeros(2, S23, GROVE_F32, GROVE_CPU);
    grove_tensor *row = T(GROVE_F32, 1, (int64_t[]){3}, 1, 2, 3);
    cr_assert_eq(grove_copy_(dst, row), 0, "%s", grove_last_error());
    EXPECT_VALUES(dst, 0, 1, 2, 3, 1, 2, 3);
    grove_tensor *col = T(GROVE_I64, 2, ((int64_t[]){2, 1}), 10, 20);
    cr_assert_eq(grove_copy_(dst, col), 0, "%s", grove_last_error());
    EXPECT_VALUES(dst, 0, 10, 10, 10, 20, 20, 20);

    /* f32 → i32 truncates toward zero, as torch. */
    grove_tensor *ints = grove_tensor_zeros(1, (int64_t[]){4}, GROVE_I32, GROVE_CPU);
    grove_tensor *fl = T(GROVE_F32, 1, (int64_t[]){4}, 1.7, -2.7, 3.5, 0.25);
    cr_assert_eq(grove_copy_(ints, fl), 0);
    cr_assert_eq(ints->dtype, GROVE_I32);
    EXPECT_VALUES(ints, 0, 1, -2, 3, 0);
    /* and into a strided destination */
    grove_tensor *tr = grove_transpose(dst, 0, 1);
    grove_tensor *src = T(GROVE_F32, 2, ((int64_t[]){3, 2}), 1, 2, 3, 4, 5, 6);
    cr_assert_eq(grove_copy_(tr, src), 0);
    EXPECT_VALUES(dst, 0, 1, 3, 5, 2, 4, 6);

    grove_tensor *bad = T(GROVE_F32, 1, (int64_t[]){4}, 1, 2, 3, 4);
    cr_assert_neq(grove_copy_(dst, bad), 0);
    expect_error("does not broadcast");
    grove_tensor *ts[] = {dst, row, col, ints, fl, tr, src, bad};
    for (int i = 0; i < 8; i++) grove_tensor_release(ts[i]);
}

Test(copy, to_dtype)
{
    grove_tensor *f = T(GROVE_F32, 1, (int64_t[]){3}, 1.5, -2, 300);
    grove_tensor *u = grove_to_dtype(f, GROVE_U8);
    cr_assert_eq(u->dtype, GROVE_U8);
    EXPECT_VALUES(u, 0, 1, 0, 255); /* integer stores saturate */
    grove_tensor *same = grove_to_dtype(f, GROVE_F32);
    cr_assert_eq(same, f);
    grove_tensor_release(same);
    grove_tensor_release(u);
    grove_tensor_release(f);
}

/* ---- reduced-precision dtypes --------------------------------------------------- */

/* Stores each value through dtype and reads it back. */
static void round_trip(int32_t dtype, const double *in, double *out, int64_t n)
{
    grove_tensor *t = grove_tensor_from_doubles(1, &n, dtype, in, n);
    cr_assert_not_null(t, "%s", grove_last_error());
    cr_assert_eq(grove_tensor_read_doubles(t, out, n), 0);
    grove_tensor_release(t);
}

static void expect_round_trip(int32_t dtype, const double *in, const double *want, int64_t n)
{
    double out[64];
    round_trip(dtype, in, out, n);
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i])) cr_assert(isnan(out[i]), "%s: %.17g should give NaN, got %.17g", grove_dtype_name(dtype), in[i], out[i]);
        else cr_assert(out[i] == want[i] && signbit(out[i]) == signbit(want[i]), "%s: %.17g should give %.17g, got %.17g",
                       grove_dtype_name(dtype), in[i], want[i], out[i]);
    }
}

Test(dtype, bf16_round_trips)
{
    /* bf16 keeps 8 significant bits: 1 + 2^-7 is representable, 1 + 2^-8 is a tie. */
    const double e7 = ldexp(1, -7), e8 = ldexp(1, -8);
    const double in[] = {
        0.0, -0.0, 1.0, -2.5, 0.15625, 65536.0, 1 + e7, 3.3895313892515355e38, ldexp(1, -133), /* exact */
        1 + e8,             /* tie → even (1) */
        1 + 3 * e8,         /* tie → even (1 + 2^-6) */
        1 + e8 + ldexp(1, -20), /* above the tie → up */
        1 + e8 - ldexp(1, -20), /* below the tie → down */
        3.4028234663852886e38,  /* f32 max rounds up to inf */
        INFINITY, -INFINITY, NAN,
    };
    const double want[] = {
        0.0, -0.0, 1.0, -2.5, 0.15625, 65536.0, 1 + e7, 3.3895313892515355e38, ldexp(1, -133),
        1.0, 1 + 4 * e8, 1 + e7, 1.0, INFINITY,
        INFINITY, -INFINITY, NAN,
    };
    expect_round_trip(GROVE_BF16, in, want, (int64_t)(sizeof in / sizeof in[0]));
}

Test(dtype, f16_round_trips)
{
    /* f16 keeps 11 significant bits; min normal 2^-14, min subnormal 2^-24, max 65504. */
    const double e10 = ldexp(1, -10), e11 = ldexp(1, -11), s = ldexp(1, -24);
    const double in[] = {
        0.0, -0.0, 1.0, -2.0, 0.5, 65504.0, -65504.0, ldexp(1, -14), 1 + e10, /* exact */
        s, 3 * s, 1023 * s, -5 * s,  /* subnormals, exact */
        1 + e11,                   /* tie → even (1) */
        1 + 3 * e11,               /* tie → even (1 + 2^-9) */
        1 + e11 + ldexp(1, -20),   /* above the tie → up */
        s / 2,                     /* subnormal tie → even (0) */
        3 * s / 2,                 /* subnormal tie → even (2·2^-24) */
        5 * s / 2,                 /* subnormal tie → even (2·2^-24) */
        s / 4,                     /* underflow → 0 */
        -s / 4,                    /* underflow → -0 */
        65519.0,                   /* below the tie with 65536 → 65504 */
        65520.0,                   /* the tie rounds to even: 2^16, which overflows to inf */
        1e6, -1e6,                 /* overflow */
        INFINITY, -INFINITY, NAN,
    };
    const double want[] = {
        0.0, -0.0, 1.0, -2.0, 0.5, 65504.0, -65504.0, ldexp(1, -14), 1 + e10,
        s, 3 * s, 1023 * s, -5 * s,
        1.0, 1 + 4 * e11, 1 + e10,
        0.0, 2 * s, 2 * s, 0.0, -0.0,
        65504.0, INFINITY, INFINITY, -INFINITY,
        INFINITY, -INFINITY, NAN,
    };
    expect_round_trip(GROVE_F16, in, want, (int64_t)(sizeof in / sizeof in[0]));
}

Test(dtype, half_conversions_through_copy)
{
    /* f32 → bf16 → f32 via copy_ agrees with the element stores. */
    grove_tensor *f = T(GROVE_F32, 1, (int64_t[]){3}, 1.0, 1 + ldexp(1, -8), 1 + 3 * ldexp(1, -8));
    grove_tensor *b = grove_tensor_zeros(1, (int64_t[]){3}, GROVE_BF16, GROVE_CPU);
    cr_assert_eq(grove_copy_(b, f), 0);
    grove_tensor *back = grove_to_dtype(b, GROVE_F32);
    EXPECT_VALUES(back, 0, 1.0, 1.0, 1 + ldexp(1, -6));
    cr_assert_eq(grove_dtype_size(GROVE_BF16), 2);
    cr_assert_eq(grove_dtype_size(GROVE_F16), 2);
    cr_assert_str_eq(grove_dtype_name(GROVE_BF16), "bf16");
    grove_tensor_release(back);
    grove_tensor_release(b);
    grove_tensor_release(f);
}

/* ---- memory ------------------------------------------------------------------------ */

Test(memory, counters_return_to_start)
{
    grove_memory_stats m0 = memory_now();
    /* 1024 floats: 4096 bytes, already a multiple of the 64-byte alignment. */
    grove_tensor *t = grove_tensor_empty(1, (int64_t[]){1024}, GROVE_F32, GROVE_CPU);
    grove_memory_stats m1 = memory_now();
    cr_assert_eq(m1.live_bytes, m0.live_bytes + 4096, "live bytes %lld -> %lld", (long long)m0.live_bytes,
                 (long long)m1.live_bytes);
    cr_assert_eq(m1.live_tensors, m0.live_tensors + 1);
    cr_assert_geq(m1.peak_bytes, m1.live_bytes);
    grove_tensor *v = grove_view(t, 2, (int64_t[]){32, 32});
    grove_memory_stats m2 = memory_now();
    cr_assert_eq(m2.live_bytes, m1.live_bytes, "a view allocates no data");
    cr_assert_eq(m2.live_tensors, m1.live_tensors + 1);
    grove_tensor_release(t);
    grove_tensor_release(v);
    grove_memory_stats m3 = memory_now();
    cr_assert_eq(m3.live_bytes, m0.live_bytes);
    cr_assert_eq(m3.live_tensors, m0.live_tensors);
}

Test(memory, large_blocks_are_cached_not_live)
{
    grove_memory_stats m0 = memory_now();
    int64_t n = (int64_t)1 << 20; /* 4 MiB */
    grove_tensor *t = grove_tensor_empty(1, &n, GROVE_F32, GROVE_CPU);
    cr_assert_geq(memory_now().live_bytes, m0.live_bytes + 4 * n);
    grove_tensor_release(t);
    grove_memory_stats m1 = memory_now();
    cr_assert_eq(m1.live_bytes, m0.live_bytes);
    cr_assert_geq(m1.cached_bytes, m0.cached_bytes + 4 * n);
    cr_assert_geq(m1.peak_bytes, m0.live_bytes + 4 * n);
    grove_memory_empty_cache(GROVE_CPU);
    cr_assert_eq(memory_now().cached_bytes, 0);
    grove_memory_reset_peak(GROVE_CPU);
    cr_assert_eq(memory_now().peak_bytes, m0.live_bytes);
}

Test(memory, freed_tensor_is_an_error)
{
    grove_memory_stats m0 = memory_now();
    grove_tensor *t = grove_tensor_zeros(2, S23, GROVE_F32, GROVE_CPU);
    cr_assert_not(grove_tensor_is_freed(t));
    grove_tensor_free_data(t);
    cr_assert(grove_tensor_is_freed(t));
    cr_assert_eq(memory_now().live_bytes, m0.live_bytes, "free_data releases the bytes at once");
    cr_assert_null(grove_binary(t, t, GROVE_ADD));
    expect_error("freed");
    cr_assert_null(grove_view(t, 1, (int64_t[]){6}));
    expect_error("freed");
    cr_assert_null(grove_transpose(t, 0, 1));
    expect_error("freed");
    cr_assert_null(grove_contiguous(t));
    expect_error("freed");
    cr_assert_neq(grove_fill_(t, 1), 0);
    expect_error("freed");
    double v;
    cr_assert_neq(grove_tensor_item(t, &v), 0);
    expect_error("freed");
    grove_tensor_free_data(t); /* twice is harmless */
    grove_tensor_release(t);
    cr_assert_eq(memory_now().live_tensors, m0.live_tensors);
}

Test(library, errors_and_threads)
{
    cr_assert_null(grove_tensor_zeros(1, (int64_t[]){-3}, GROVE_F32, GROVE_CPU));
    cr_assert(strlen(grove_last_error()) > 0);
    grove_clear_error();
    cr_assert_str_eq(grove_last_error(), "no error");
    cr_assert_neq(grove_set_num_threads(0), 0);
    expect_error("threads");
    cr_assert_eq(grove_set_num_threads(2), 0);
    cr_assert_eq(grove_num_threads(), 2);
    cr_assert_not_null(grove_version());
}

/* test_safetensors_writer.c — the streaming safetensors writer: the same bytes
 * as a whole-file save, header order and geometry enforced, and no file left
 * behind by an incomplete or aborted write. */
#define _GNU_SOURCE
#include "helpers.h"
#include "scratch.h"

/* The writer's geometry arrays for a list of tensors. */
typedef struct geometry {
    int32_t dtypes[8], ndims[8];
    int64_t shapes[8 * 8];
} geometry;

static geometry geometry_of(int n, grove_tensor *const *ts)
{
    geometry g;
    memset(&g, 0, sizeof g);
    for (int i = 0; i < n; i++) {
        g.dtypes[i] = ts[i]->dtype;
        g.ndims[i] = ts[i]->ndim;
        for (int32_t d = 0; d < ts[i]->ndim; d++) g.shapes[i * 8 + d] = ts[i]->shape[d];
    }
    return g;
}

static grove_safetensors_writer *open_for(const char *path, int n, const char *const *names, grove_tensor *const *ts)
{
    geometry g = geometry_of(n, ts);
    return grove_safetensors_writer_open(path, n, names, g.dtypes, g.ndims, g.shapes, 0, NULL, NULL);
}

TestSuite(safetensors_writer, .init = make_dir, .fini = remove_dir);

Test(safetensors_writer, streams_the_bytes_of_a_whole_save)
{
    const int64_t s23[] = {2, 3}, s3[] = {3};
    grove_tensor *a = T(GROVE_F32, 2, s23, 1, 2, 3, 4, 5, 6);
    grove_tensor *ts[] = {a, grove_transpose(a, 0, 1), T(GROVE_I64, 1, s3, -1, 0, 9),
                          grove_tensor_full(0, NULL, 2.5, GROVE_BF16, GROVE_CPU)};
    const char *names[] = {"a", "a.t", "ids", "scalar"};
    const char *keys[] = {"format", "grove.config"}, *values[] = {"pt", "{\"depth\":2}"};
    cr_assert_eq(grove_safetensors_save(at("whole.safetensors"), 4, names, ts, 2, keys, values), 0, "%s",
                 grove_last_error());

    geometry g = geometry_of(4, ts);
    grove_safetensors_writer *w =
        grove_safetensors_writer_open(at("stream.safetensors"), 4, names, g.dtypes, g.ndims, g.shapes, 2, keys, values);
    cr_assert_not_null(w, "%s", grove_last_error());
    cr_assert(exists(at("stream.safetensors.tmp")), "the data goes to a temporary first");
    cr_assert_not(exists(at("stream.safetensors")));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(grove_safetensors_writer_write(w, names[i], ts[i]), 0, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_finish(w), 0, "%s", grove_last_error());
    cr_assert_not(exists(at("stream.safetensors.tmp")));

    size_t n1, n2;
    unsigned char *whole = read_bytes(at("whole.safetensors"), &n1);
    unsigned char *stream = read_bytes(at("stream.safetensors"), &n2);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(whole, stream, n1) == 0, "streamed file differs from a whole save");
    free(whole);
    free(stream);

    grove_safetensors *f = grove_safetensors_open(at("stream.safetensors"));
    cr_assert_not_null(f, "%s", grove_last_error());
    grove_tensor *t = grove_safetensors_get(f, "a.t");
    EXPECT_VALUES(t, 0, 1, 4, 2, 5, 3, 6);
    grove_tensor_release(t);
    /* Pages of a copied tensor are dropped from the mapping; a second get
     * reads them from the file again. */
    t = grove_safetensors_get(f, "a.t");
    EXPECT_VALUES(t, 0, 1, 4, 2, 5, 3, 6);
    grove_tensor_release(t);
    grove_safetensors_close(f);
    for (int i = 0; i < 4; i++) grove_tensor_release(ts[i]);
}

Test(safetensors_writer, enforces_header_order_and_geometry)
{
    const int64_t s2[] = {2}, s3[] = {3};
    grove_tensor *a = T(GROVE_F32, 1, s2, 1, 2), *b = T(GROVE_F32, 1, s3, 3, 4, 5);
    grove_tensor *ab[] = {a, b};
    const char *names[] = {"a", "b"};
    grove_safetensors_writer *w = open_for(at("order.safetensors"), 2, names, ab);
    cr_assert_not_null(w, "%s", grove_last_error());

    cr_assert_eq(grove_safetensors_writer_write(w, "b", b), -1);
    expect_error("expected 'a' (number 1 of 2), got 'b'");
    cr_assert_eq(grove_safetensors_writer_write(w, "a", b), -1);
    expect_error("tensor 'a' has shape [3], the header says [2]");
    grove_tensor *ai = grove_to_dtype(a, GROVE_I32);
    cr_assert_eq(grove_safetensors_writer_write(w, "a", ai), -1);
    expect_error("tensor 'a' is I32, the header says F32");
    cr_assert_eq(grove_safetensors_writer_write(w, "a", NULL), -1);
    expect_error("tensor 'a' is NULL");

    /* Refused writes wrote nothing: the file still comes out whole. */
    cr_assert_eq(grove_safetensors_writer_write(w, "a", a), 0, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_write(w, "b", b), 0, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_write(w, "c", b), -1);
    expect_error("all 2 tensors were written");
    cr_assert_eq(grove_safetensors_writer_finish(w), 0, "%s", grove_last_error());

    grove_safetensors *f = grove_safetensors_open(at("order.safetensors"));
    cr_assert_not_null(f, "%s", grove_last_error());
    grove_tensor *t = grove_safetensors_get(f, "b");
    EXPECT_VALUES(t, 0, 3, 4, 5);
    grove_tensor_release(t);
    grove_safetensors_close(f);

    cr_assert_eq(grove_safetensors_writer_write(NULL, "a", a), -1);
    expect_error("expected an open writer");
    cr_assert_eq(grove_safetensors_writer_finish(NULL), -1);
    grove_safetensors_writer_abort(NULL);
    grove_tensor_release(ai);
    grove_tensor_release(a);
    grove_tensor_release(b);
}

Test(safetensors_writer, incomplete_or_aborted_writes_leave_the_old_file)
{
    const int64_t s2[] = {2};
    grove_tensor *a = T(GROVE_F32, 1, s2, 1, 2), *b = T(GROVE_F32, 1, s2, 3, 4);
    grove_tensor *ab[] = {a, b};
    const char *names[] = {"a", "b"};
    const char *path = at("keep.safetensors"), *tmp = at("keep.safetensors.tmp");
    cr_assert_eq(grove_safetensors_save(path, 1, names, ab, 0, NULL, NULL), 0, "%s", grove_last_error());
    size_t n0;
    unsigned char *before = read_bytes(path, &n0);

    grove_safetensors_writer *w = open_for(path, 2, names, ab);
    cr_assert_not_null(w, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_write(w, "a", a), 0, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_finish(w), -1);
    expect_error("finished after 1 of 2 tensors ('b' was never written)");
    cr_assert_not(exists(tmp));

    w = open_for(path, 2, names, ab);
    cr_assert_not_null(w, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_write(w, "a", a), 0, "%s", grove_last_error());
    grove_safetensors_writer_abort(w);
    cr_assert_not(exists(tmp));

    size_t n1;
    unsigned char *after = read_bytes(path, &n1);
    cr_assert_eq(n1, n0);
    cr_assert(memcmp(before, after, n0) == 0, "the existing file changed");
    free(before);
    free(after);
    grove_tensor_release(a);
    grove_tensor_release(b);
}

Test(safetensors_writer, open_rejects_bad_headers_before_creating_anything)
{
    const char *names[] = {"a", "b"}, *dup[] = {"a", "a"};
    int32_t dtypes[] = {GROVE_F32, GROVE_F32}, bad_dtype[] = {GROVE_F32, 42};
    int32_t ndims[] = {1, 1}, bad_ndim[] = {1, 9};
    int64_t shapes[16] = {2}, neg[16] = {2};
    shapes[8] = 3;
    neg[8] = -1;
    const char *path = at("bad.safetensors");
    cr_assert_null(grove_safetensors_writer_open(path, 2, dup, dtypes, ndims, shapes, 0, NULL, NULL));
    expect_error("safetensors_writer");
    expect_error("duplicate tensor name 'a'");
    cr_assert_null(grove_safetensors_writer_open(path, 2, names, bad_dtype, ndims, shapes, 0, NULL, NULL));
    expect_error("tensor 'b' has unknown dtype 42");
    cr_assert_null(grove_safetensors_writer_open(path, 2, names, dtypes, bad_ndim, shapes, 0, NULL, NULL));
    expect_error("tensor 'b' has 9 dimensions");
    cr_assert_null(grove_safetensors_writer_open(path, 2, names, dtypes, ndims, neg, 0, NULL, NULL));
    expect_error("tensor 'b' has an invalid shape [-1]");
    cr_assert_null(grove_safetensors_writer_open(path, 2, names, NULL, ndims, shapes, 0, NULL, NULL));
    expect_error("no name, dtype, ndim or shape array");
    cr_assert_null(grove_safetensors_writer_open(at("no/dir/x.safetensors"), 2, names, dtypes, ndims, shapes, 0,
                                                 NULL, NULL));
    expect_error("does not exist");
    cr_assert_null(grove_safetensors_writer_open("", 0, NULL, NULL, NULL, NULL, 0, NULL, NULL));
    expect_error("expected a file path");
    cr_assert_not(exists(path));
    cr_assert_not(exists(at("bad.safetensors.tmp")));

    /* No tensors at all is a valid (empty) file. */
    grove_safetensors_writer *w = grove_safetensors_writer_open(path, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL);
    cr_assert_not_null(w, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_writer_finish(w), 0, "%s", grove_last_error());
    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_count(f), 0);
    grove_safetensors_close(f);
}

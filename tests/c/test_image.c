/* test_image.c — image files (PNG round trips, JPEG decoding, refusal of
 * truncated and non-image data without leaving the process), the centre-crop
 * resize, u8 <-> f32 conversion, text drawing and folder listing. */
#define _GNU_SOURCE
#include "helpers.h"
#include "scratch.h"

/* A file shipped in tests/data, found next to this source file. */
static const char *data_file(const char *name)
{
    static char buf[4096];
    const char *src = __FILE__; /* .../tests/c/test_image.c */
    const char *slash = strrchr(src, '/');
    int n = slash ? (int)(slash - src) : 0;
    snprintf(buf, sizeof buf, "%.*s%s../data/%s", n, src, slash ? "/" : "", name);
    return buf;
}

/* A u8 tensor of the given shape with value(i) at flat index i. */
static grove_tensor *u8_image(int32_t ndim, const int64_t *shape, int (*value)(int64_t))
{
    grove_tensor *t = grove_tensor_empty(ndim, shape, GROVE_U8, GROVE_CPU);
    cr_assert_not_null(t, "%s", grove_last_error());
    uint8_t *d = t->data;
    for (int64_t i = 0; i < grove_tensor_numel(t); i++) d[i] = (uint8_t)value(i);
    return t;
}

static int pattern(int64_t i) { return (int)((i * 37 + i / 7) % 256); }

static uint8_t px(const grove_tensor *t, int64_t y, int64_t x, int c)
{
    return ((const uint8_t *)t->data)[y * t->stride[0] + x * t->stride[1] + c * t->stride[2]];
}

TestSuite(image, .init = make_dir, .fini = remove_dir);

/* ---- PNG ------------------------------------------------------------------------- */

Test(image, png_round_trip_is_exact)
{
    int64_t shape[3] = {7, 5, 3};
    grove_tensor *img = u8_image(3, shape, pattern);
    cr_assert_eq(grove_image_write_png(at("a.png"), img), 0, "%s", grove_last_error());
    cr_assert(!exists(at("a.png.tmp")), "the temporary file must be renamed away");
    grove_tensor *back = grove_image_read(at("a.png"));
    cr_assert_not_null(back, "%s", grove_last_error());
    cr_assert_eq(back->dtype, GROVE_U8);
    cr_assert_eq(back->ndim, 3);
    cr_assert(back->shape[0] == 7 && back->shape[1] == 5 && back->shape[2] == 3);
    cr_assert_eq(memcmp(back->data, img->data, 7 * 5 * 3), 0, "pixels differ after a round trip");
    grove_tensor_release(back);
    grove_tensor_release(img);
}

Test(image, png_grey_and_alpha)
{
    int64_t gshape[2] = {3, 4};
    grove_tensor *grey = u8_image(2, gshape, pattern);
    cr_assert_eq(grove_image_write_png(at("g.png"), grey), 0, "%s", grove_last_error());
    grove_tensor *back = grove_image_read(at("g.png"));
    cr_assert_not_null(back, "%s", grove_last_error());
    for (int64_t i = 0; i < 12; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(px(back, i / 4, i % 4, c), pattern(i));
    grove_tensor_release(back);
    grove_tensor_release(grey);

    /* RGBA: alpha 0 reads as white, 255 as the colour, 51 as a fifth of the way. */
    int64_t ashape[3] = {1, 3, 4};
    grove_tensor *rgba = T(GROVE_U8, 3, ashape, 10, 20, 30, 0, 10, 20, 30, 255, 0, 0, 0, 51);
    cr_assert_eq(grove_image_write_png(at("a.png"), rgba), 0, "%s", grove_last_error());
    back = grove_image_read(at("a.png"));
    cr_assert_not_null(back, "%s", grove_last_error());
    EXPECT_VALUES(back, 0, 255, 255, 255, 10, 20, 30, 204, 204, 204);
    grove_tensor_release(back);
    grove_tensor_release(rgba);
}

Test(image, png_from_f32)
{
    int64_t shape[3] = {1, 4, 3};
    grove_tensor *x = T(GROVE_F32, 3, shape, -1, 0, 1, -2, 2, 0.5, NAN, -0.999, 0.999, 0.003, -0.003, 1);
    cr_assert_eq(grove_image_write_png(at("f.png"), x), 0, "%s", grove_last_error());
    grove_tensor *back = grove_image_read(at("f.png"));
    /* round((x + 1) * 127.5), clamped; NaN as 0 */
    EXPECT_VALUES(back, 0, 0, 128, 255, 0, 255, 191, 0, 0, 255, 128, 127, 255);
    grove_tensor_release(back);
    grove_tensor_release(x);
}

Test(image, u8_f32_conversions_round_trip)
{
    int64_t shape[1] = {256};
    grove_tensor *u = u8_image(1, shape, pattern);
    for (int64_t i = 0; i < 256; i++) ((uint8_t *)u->data)[i] = (uint8_t)i;
    grove_tensor *f = grove_image_to_f32(u);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_eq(((float *)f->data)[0], -1.0f);
    cr_assert_eq(((float *)f->data)[255], 1.0f);
    grove_tensor *u2 = grove_image_to_u8(f);
    cr_assert_not_null(u2, "%s", grove_last_error());
    cr_assert_eq(memcmp(u->data, u2->data, 256), 0);
    cr_assert_null(grove_image_to_u8(u));
    expect_error("image_to_u8");
    cr_assert_null(grove_image_to_f32(f));
    expect_error("expected a u8 tensor");
    grove_tensor_release(u2);
    grove_tensor_release(f);
    grove_tensor_release(u);
}

Test(image, png_write_errors)
{
    int64_t shape[3] = {2, 2, 2};
    grove_tensor *two = u8_image(3, shape, pattern);
    cr_assert_eq(grove_image_write_png(at("x.png"), two), -1);
    expect_error("expected a u8 or f32 image");
    int64_t ok_shape[3] = {2, 2, 3};
    grove_tensor *img = u8_image(3, ok_shape, pattern);
    cr_assert_eq(grove_image_write_png(at("missing/x.png"), img), -1);
    expect_error("missing' does not exist");
    cr_assert_eq(grove_image_write_png(NULL, img), -1);
    grove_tensor_release(img);
    grove_tensor_release(two);
}

/* ---- refusing bad files ------------------------------------------------------------ */

Test(image, bad_files_are_errors)
{
    cr_assert_null(grove_image_read(at("nope.png")));
    expect_error("no such file");
    expect_error("nope.png");

    write_bytes(at("empty.png"), "", 0);
    cr_assert_null(grove_image_read(at("empty.png")));
    expect_error("empty file");

    write_bytes(at("text.jpg"), "hello, this is not a picture\n", 29);
    cr_assert_null(grove_image_read(at("text.jpg")));
    expect_error("not a PNG or JPEG file");

    cr_assert_null(grove_image_read(dir));
    expect_error("is a directory");

    /* Every cut of a valid PNG is refused, never decoded to garbage. */
    int64_t shape[3] = {9, 9, 3};
    grove_tensor *img = u8_image(3, shape, pattern);
    cr_assert_eq(grove_image_write_png(at("full.png"), img), 0, "%s", grove_last_error());
    size_t n;
    unsigned char *png = read_bytes(at("full.png"), &n);
    for (size_t cut = 1; cut < n; cut++) {
        grove_tensor *t = grove_image_decode(png, (int64_t)cut, "cut.png");
        cr_assert_null(t, "a PNG cut to %zu of %zu bytes decoded", cut, n);
        expect_error("cut.png");
    }
    write_bytes(at("half.png"), png, n / 2);
    cr_assert_null(grove_image_read(at("half.png")));
    expect_error("truncated");
    free(png);
    grove_tensor_release(img);
}

/* ---- JPEG -------------------------------------------------------------------------- */

/* Within tol of want at the centre of each 8x8 quadrant. */
static void expect_quadrants(const grove_tensor *t, const int want[4][3], int tol)
{
    cr_assert_not_null(t, "%s", grove_last_error());
    cr_assert(t->ndim == 3 && t->shape[0] == 16 && t->shape[1] == 16 && t->shape[2] == 3, "shape %lld %lld",
              (long long)t->shape[0], (long long)t->shape[1]);
    for (int q = 0; q < 4; q++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                for (int c = 0; c < 3; c++) {
                    int got = px(t, (q / 2) * 8 + y, (q % 2) * 8 + x, c);
                    cr_assert(abs(got - want[q][c]) <= tol, "quadrant %d (%d,%d) channel %d: %d, want %d", q, y, x,
                              c, got, want[q][c]);
                }
}

static const int rgbw[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};

Test(image, jpeg_decodes)
{
    grove_tensor *t = grove_image_read(data_file("quadrants.jpg"));
    expect_quadrants(t, rgbw, 4);
    grove_tensor_release(t);
    t = grove_image_read(data_file("quadrants_progressive.jpg"));
    expect_quadrants(t, rgbw, 4);
    grove_tensor_release(t);
    t = grove_image_read(data_file("cmyk.jpg"));
    expect_quadrants(t, rgbw, 4);
    grove_tensor_release(t);
    static const int grey[4][3] = {{0, 0, 0}, {80, 80, 80}, {160, 160, 160}, {240, 240, 240}};
    t = grove_image_read(data_file("grey.jpg"));
    expect_quadrants(t, grey, 2);
    grove_tensor_release(t);
}

Test(image, jpeg_reduced_decode)
{
    /* 16x16 may shrink to 8x8 (min_side 8) but not to 4x4. */
    grove_tensor *t = grove_image_read_reduced(data_file("quadrants.jpg"), 8);
    cr_assert_not_null(t, "%s", grove_last_error());
    cr_assert(t->shape[0] == 8 && t->shape[1] == 8);
    cr_assert(abs(px(t, 1, 1, 0) - 255) <= 4 && px(t, 1, 1, 1) <= 4);
    grove_tensor_release(t);
    t = grove_image_read_reduced(data_file("quadrants.jpg"), 9);
    cr_assert(t->shape[0] == 16);
    grove_tensor_release(t);
    cr_assert_null(grove_image_read_reduced(data_file("quadrants.jpg"), 0));
}

/* libjpeg's error_exit would call exit(): each cut must come back as an
 * error in this process instead. */
Test(image, truncated_jpeg_is_an_error)
{
    const char *files[] = {"quadrants.jpg", "quadrants_progressive.jpg", "grey.jpg", "cmyk.jpg"};
    for (int f = 0; f < 4; f++) {
        size_t n;
        unsigned char *jpg = read_bytes(data_file(files[f]), &n);
        grove_tensor *whole = grove_image_decode(jpg, (int64_t)n, files[f]);
        cr_assert_not_null(whole, "%s", grove_last_error());
        grove_tensor_release(whole);
        /* The last two bytes are the end-of-image marker, which libjpeg does not need. */
        for (size_t cut = 1; cut + 2 < n; cut++) {
            grove_tensor *t = grove_image_decode(jpg, (int64_t)cut, files[f]);
            cr_assert_null(t, "%s cut to %zu of %zu bytes decoded", files[f], cut, n);
        }
        free(jpg);
    }
    size_t n;
    unsigned char *jpg = read_bytes(data_file("quadrants.jpg"), &n);
    write_bytes(at("half.jpg"), jpg, n / 2);
    cr_assert_null(grove_image_read(at("half.jpg")));
    expect_error("truncated JPEG");
    expect_error("half.jpg");
    /* A JPEG signature followed by junk. */
    unsigned char junk[64] = {0xFF, 0xD8, 0xFF, 0x01, 0x02};
    cr_assert_null(grove_image_decode(junk, sizeof junk, "junk"));
    expect_error("JPEG");
    free(jpg);
}

/* ---- resize and crop ----------------------------------------------------------------- */

static int const_200(int64_t i) { return (void)i, 200; }

Test(image, resize_keeps_a_constant_image_constant)
{
    int64_t sizes[][2] = {{30, 20}, {5, 9}, {17, 17}, {1, 1}, {64, 3}};
    int32_t targets[] = {7, 13, 17, 4, 2};
    for (int k = 0; k < 5; k++) {
        int64_t shape[3] = {sizes[k][0], sizes[k][1], 3};
        grove_tensor *img = u8_image(3, shape, const_200);
        grove_tensor *r = grove_image_resize_crop(img, targets[k]);
        cr_assert_not_null(r, "%s", grove_last_error());
        cr_assert(r->shape[0] == targets[k] && r->shape[1] == targets[k] && r->shape[2] == 3);
        for (int64_t i = 0; i < grove_tensor_numel(r); i++)
            cr_assert_eq(((uint8_t *)r->data)[i], 200, "case %d element %lld", k, (long long)i);
        grove_tensor_release(r);
        grove_tensor_release(img);
    }
}

Test(image, resize_averages_blocks)
{
    /* 4x4 of 2x2 blocks 0, 100 / 200, 60 (all channels). */
    static const int blocks[2][2] = {{0, 100}, {200, 60}};
    int64_t shape[3] = {4, 4, 3};
    grove_tensor *img = grove_tensor_empty(3, shape, GROVE_U8, GROVE_CPU);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++) ((uint8_t *)img->data)[(y * 4 + x) * 3 + c] = (uint8_t)blocks[y / 2][x / 2];
    grove_tensor *r = grove_image_resize_crop(img, 2);
    EXPECT_VALUES(r, 0, 0, 0, 0, 100, 100, 100, 200, 200, 200, 60, 60, 60);
    grove_tensor_release(r);
    r = grove_image_resize_crop(img, 1);
    EXPECT_VALUES(r, 0, 90, 90, 90);
    grove_tensor_release(r);
    /* 4 -> 3: output 0 covers input 0 and a third of input 1. */
    r = grove_image_resize_crop(img, 3);
    cr_assert_not_null(r);
    cr_assert_eq(px(r, 0, 0, 0), 0);
    cr_assert_eq(px(r, 0, 1, 0), 50);   /* half of 0, half of 100 */
    cr_assert_eq(px(r, 1, 1, 0), 90);   /* the middle: all four blocks equally */
    grove_tensor_release(r);
    grove_tensor_release(img);
}

Test(image, resize_upscales_bilinear_and_crops_the_centre)
{
    /* 2x2 with columns 0 and 100 -> 4x4: 0, 25, 75, 100 along each row. */
    int64_t shape[3] = {2, 2, 3};
    grove_tensor *img = T(GROVE_U8, 3, shape, 0, 0, 0, 100, 100, 100, 0, 0, 0, 100, 100, 100);
    grove_tensor *r = grove_image_resize_crop(img, 4);
    cr_assert_not_null(r, "%s", grove_last_error());
    int want[4] = {0, 25, 75, 100};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) cr_assert_eq(px(r, y, x, 1), want[x], "(%d,%d)", y, x);
    grove_tensor_release(r);
    grove_tensor_release(img);

    /* 2x6: the centre square is columns 2 and 3. */
    int64_t wide[3] = {2, 6, 3};
    img = grove_tensor_empty(3, wide, GROVE_U8, GROVE_CPU);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 6; x++)
            for (int c = 0; c < 3; c++) ((uint8_t *)img->data)[(y * 6 + x) * 3 + c] = (uint8_t)(10 * x + c);
    r = grove_image_resize_crop(img, 2);
    cr_assert_eq(px(r, 0, 0, 0), 20);
    cr_assert_eq(px(r, 1, 1, 2), 32);
    grove_tensor_release(r);
    /* A strided view (every other column) is read through its strides. */
    grove_tensor *tr = grove_transpose(img, 0, 1); /* (6, 2, 3) */
    r = grove_image_resize_crop(tr, 2);
    cr_assert_not_null(r, "%s", grove_last_error());
    cr_assert_eq(px(r, 0, 0, 0), 20); /* rows 2 and 3 of the transposed image */
    cr_assert_eq(px(r, 1, 0, 0), 30);
    grove_tensor_release(r);
    grove_tensor_release(tr);

    cr_assert_null(grove_image_resize_crop(img, 0));
    expect_error("size 0");
    grove_tensor_release(img);
    int64_t fshape[3] = {2, 2, 3};
    grove_tensor *f = grove_tensor_zeros(3, fshape, GROVE_F32, GROVE_CPU);
    cr_assert_null(grove_image_resize_crop(f, 2));
    expect_error("u8 image");
    grove_tensor_release(f);
}

/* ---- text ---------------------------------------------------------------------------- */

static int white(int64_t i) { return (void)i, 255; }

Test(image, draw_text_sets_pixels_and_clips)
{
    int64_t shape[3] = {10, 20, 3};
    grove_tensor *img = u8_image(3, shape, white);
    cr_assert_eq(grove_image_draw_text(img, 1, 1, "Hi", 1, 0x102030), 0, "%s", grove_last_error());
    int dark = 0;
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 20; x++)
            if (px(img, y, x, 0) != 255) {
                dark++;
                cr_assert(px(img, y, x, 0) == 0x10 && px(img, y, x, 1) == 0x20 && px(img, y, x, 2) == 0x30);
                cr_assert(y >= 1 && y < 8 && x >= 1 && x < 12, "pixel outside the two cells at (%d,%d)", y, x);
            }
    cr_assert(dark > 10, "only %d pixels drawn", dark);
    /* 'H' at scale 1: its left column is set in all seven rows. */
    for (int y = 1; y < 8; y++) cr_assert_neq(px(img, y, 1, 0), 255);
    /* Far outside, half outside, multi-line and non-ASCII text must stay in bounds. */
    cr_assert_eq(grove_image_draw_text(img, -7, -5, "clip\nme", 3, 0), 0);
    cr_assert_eq(grove_image_draw_text(img, 18, 8, "na\xc3\xafve\t!", 2, 0), 0);
    cr_assert_eq(grove_image_draw_text(img, 1000, -1000, "x", 1, 0), 0);
    cr_assert_eq(grove_text_width("abc", 1), 18);
    cr_assert_eq(grove_text_width("ab\nwxyz", 2), 48);
    cr_assert_eq(grove_text_width("\xc3\xaf", 1), 6); /* one code point, one '?' */
    cr_assert_eq(grove_image_draw_text(img, 0, 0, "x", 0, 0), -1);
    expect_error("scale");
    grove_tensor_release(img);
}

/* ---- folders ------------------------------------------------------------------------- */

Test(image, list_images_filters_and_sorts)
{
    cr_assert_eq(mkdir(at("sub"), 0777), 0);
    const char *names[] = {"b.png", "a.JPG", "c.jpeg", "notes.txt", ".hidden.png", "sub/d.png", "e.gif", "png"};
    for (int i = 0; i < 8; i++) write_bytes(at(names[i]), "x", 1);
    grove_file_list *l = grove_list_images(dir, false);
    cr_assert_not_null(l, "%s", grove_last_error());
    cr_assert_eq(grove_file_list_count(l), 3);
    cr_assert_str_eq(grove_file_list_get(l, 0), at("a.JPG"));
    cr_assert_str_eq(grove_file_list_get(l, 1), at("b.png"));
    cr_assert_str_eq(grove_file_list_get(l, 2), at("c.jpeg"));
    cr_assert_null(grove_file_list_get(l, 3));
    grove_file_list_free(l);
    l = grove_list_images(dir, true);
    cr_assert_eq(grove_file_list_count(l), 4);
    cr_assert_str_eq(grove_file_list_get(l, 3), at("sub/d.png"));
    grove_file_list_free(l);
    cr_assert_null(grove_list_images(at("nothing"), false));
    expect_error("no such directory");
    cr_assert_null(grove_list_images(at("b.png"), false));
    expect_error("not a directory");
}

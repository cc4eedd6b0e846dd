/* test_shapes.c — the shapes data set's C API: vocabulary, sampling and
 * layout rules, exact rendering, thread-count independence, detection of a
 * known scene, and errors for bad arguments. */
#include "helpers.h"

static grove_shapes_scene one_object(int32_t shape, int32_t color, float cx, float cy, float w)
{
    grove_shapes_scene s;
    memset(&s, 0, sizeof s);
    s.n_objects = 1;
    s.objects[0] = (grove_shapes_object){shape, color, cx, cy, w, w};
    return s;
}

Test(shapes, vocabulary)
{
    cr_assert_eq(grove_shapes_count(GROVE_SHAPES_SHAPE), 4);
    cr_assert_eq(grove_shapes_count(GROVE_SHAPES_COLOR), 6);
    cr_assert_eq(grove_shapes_count(GROVE_SHAPES_CATEGORY), 6);
    cr_assert_eq(grove_shapes_count(GROVE_SHAPES_RELATION), 4);
    cr_assert_eq(grove_shapes_count(99), 0);
    cr_assert_str_eq(grove_shapes_name(GROVE_SHAPES_SHAPE, 2), "triangle");
    cr_assert_str_eq(grove_shapes_name(GROVE_SHAPES_CATEGORY, 5), "color_attr");
    cr_assert_str_eq(grove_shapes_name(GROVE_SHAPES_RELATION, 0), "left of");
    cr_assert_null(grove_shapes_name(GROVE_SHAPES_COLOR, 6));
    cr_assert_null(grove_shapes_name(GROVE_SHAPES_COLOR, -1));
    uint8_t rgb[3];
    cr_assert_eq(grove_shapes_rgb(-1, rgb), 0);
    cr_assert(rgb[0] == 235 && rgb[1] == 235 && rgb[2] == 235);
    cr_assert_eq(grove_shapes_rgb(6, rgb), -1);
    expect_error("out of range");
    /* one held-out pair per shape, each with its own colour */
    int per_color[6] = {0};
    for (int s = 0; s < 4; s++) {
        int n = 0;
        for (int c = 0; c < 6; c++)
            if (grove_shapes_heldout(s, c)) n++, per_color[c]++;
        cr_assert_eq(n, 1, "shape %d has %d held-out pairs", s, n);
    }
    for (int c = 0; c < 6; c++) cr_assert_leq(per_color[c], 1);
    cr_assert(!grove_shapes_heldout(-1, 0) && !grove_shapes_heldout(0, -1));
}

Test(shapes, samples_follow_the_split)
{
    grove_shapes_scene sc;
    for (uint64_t i = 0; i < 3000; i++) {
        cr_assert_eq(grove_shapes_sample(7, i, 0, 0, &sc), 0, "%s", grove_last_error());
        cr_assert(sc.n_objects >= 1 && sc.n_objects <= 4);
        for (int k = 0; k < sc.n_objects; k++) {
            const grove_shapes_object *o = &sc.objects[k];
            cr_assert(!grove_shapes_heldout(o->shape, o->color), "train sample %llu draws a held-out pair",
                      (unsigned long long)i);
            /* inside the image */
            cr_assert(o->cx - o->w / 2 >= 0 && o->cx + o->w / 2 <= 1 && o->cy - o->h / 2 >= 0 && o->cy + o->h / 2 <= 1);
        }
        cr_assert_eq(grove_shapes_sample(7, i, 1, 0, &sc), 0, "%s", grove_last_error());
        bool named = false;
        for (int k = 0; k < sc.spec.n_items; k++)
            named = named || grove_shapes_heldout(sc.spec.items[k].shape, sc.spec.items[k].color);
        cr_assert(named, "heldout sample %llu names no held-out pair", (unsigned long long)i);
    }
}

Test(shapes, samples_are_deterministic)
{
    grove_shapes_scene a, b;
    cr_assert_eq(grove_shapes_sample(3, 41, 0, 0, &a), 0);
    cr_assert_eq(grove_shapes_sample(3, 41, 0, 0, &b), 0);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    cr_assert_eq(grove_shapes_sample(3, 42, 0, 0, &b), 0);
    cr_assert_neq(memcmp(&a, &b, sizeof a), 0);
    /* a category mask keeps to its categories */
    for (uint64_t i = 0; i < 200; i++) {
        cr_assert_eq(grove_shapes_sample(3, i, 0, 1u << 4, &a), 0);
        cr_assert_eq(a.spec.category, 4);
        cr_assert_geq(a.spec.relation, 0);
    }
}

Test(shapes, layout_places_objects_apart_and_related)
{
    grove_shapes_spec spec = {.category = 4, .relation = 2, .n_items = 2,
                              .items = {{0, 0, 1}, {1, 4, 1}}}; /* a red circle above a blue square */
    for (uint64_t i = 0; i < 200; i++) {
        grove_shapes_scene sc;
        cr_assert_eq(grove_shapes_layout(&spec, 1, i, true, &sc), 0, "%s", grove_last_error());
        cr_assert_eq(sc.n_objects, 2);
        const grove_shapes_object *a = &sc.objects[0], *b = &sc.objects[1];
        cr_assert(a->cy + a->h / 2 < b->cy - b->h / 2, "the circle is not above the square (layout %llu)",
                  (unsigned long long)i);
    }
    /* four objects at most per phrase, and never more than eight */
    grove_shapes_spec many = {.category = 2, .relation = -1, .n_items = 1, .items = {{2, 3, 5}}};
    grove_shapes_scene sc;
    cr_assert_eq(grove_shapes_layout(&many, 1, 0, true, &sc), -1);
    expect_error("count 5 out of range [1, 4]");
    grove_shapes_spec bad_rel = {.category = 4, .relation = 1, .n_items = 1, .items = {{0, 0, 1}}};
    cr_assert_eq(grove_shapes_layout(&bad_rel, 1, 0, true, &sc), -1);
    expect_error("a relation needs two phrases");
    grove_shapes_spec bad_shape = {.category = 0, .relation = -1, .n_items = 1, .items = {{7, -1, 1}}};
    cr_assert_eq(grove_shapes_layout(&bad_shape, 1, 0, true, &sc), -1);
    expect_error("shape 7 out of range");
    cr_assert_eq(grove_shapes_sample(1, 0, 2, 0, &sc), -1);
    expect_error("split 2");
    cr_assert_eq(grove_shapes_sample(1, 0, 1, 3, &sc), -1);
    expect_error("no single_object or two_object");
    cr_assert_eq(grove_shapes_sample(1, 0, 0, 1u << 6, &sc), -1);
    expect_error("names no category");
}

Test(shapes, renders_exact_colours)
{
    grove_shapes_scene s = one_object(1, 4, 0.5f, 0.5f, 0.5f); /* blue square over the middle half */
    grove_tensor *f = grove_shapes_render(1, &s, 32, GROVE_F32);
    grove_tensor *u = grove_shapes_render(1, &s, 32, GROVE_U8);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_not_null(u, "%s", grove_last_error());
    cr_assert_eq(f->ndim, 4);
    cr_assert(f->shape[0] == 1 && f->shape[1] == 32 && f->shape[2] == 32 && f->shape[3] == 3);
    const float *pf = f->data;
    const uint8_t *pu = u->data;
    uint8_t blue[3], bg[3];
    grove_shapes_rgb(4, blue);
    grove_shapes_rgb(-1, bg);
    for (int k = 0; k < 3; k++) {
        int inside = (16 * 32 + 16) * 3 + k, corner = k;
        cr_assert_float_eq(pf[inside], blue[k] / 127.5f - 1, 1e-6);
        cr_assert_float_eq(pf[corner], bg[k] / 127.5f - 1, 1e-6);
        cr_assert_eq(pu[inside], blue[k]);
        cr_assert_eq(pu[corner], bg[k]);
    }
    /* the square covers pixels 8..23 exactly: no partial pixels at its edge */
    cr_assert_eq(pu[(8 * 32 + 7) * 3], bg[0]);
    cr_assert_eq(pu[(8 * 32 + 8) * 3], blue[0]);
    grove_tensor_release(f);
    grove_tensor_release(u);

    /* a circle's edge pixels are partly covered */
    s = one_object(0, 0, 0.5f, 0.5f, 0.5f);
    u = grove_shapes_render(1, &s, 32, GROVE_U8);
    pu = u->data;
    int partial = 0;
    for (int p = 0; p < 32 * 32; p++) {
        uint8_t g = pu[p * 3 + 1]; /* green: 235 background, 20 red */
        if (g > 20 && g < 235) partial++;
    }
    cr_assert_gt(partial, 20, "only %d anti-aliased pixels", partial);
    grove_tensor_release(u);
}

Test(shapes, render_does_not_depend_on_threads)
{
    grove_shapes_scene sc[32];
    for (int i = 0; i < 32; i++) cr_assert_eq(grove_shapes_sample(9, (uint64_t)i, 0, 0, &sc[i]), 0);
    int32_t threads = grove_num_threads();
    grove_set_num_threads(1);
    grove_tensor *a = grove_shapes_render(32, sc, 96, GROVE_F32);
    grove_set_num_threads(3);
    grove_tensor *b = grove_shapes_render(32, sc, 96, GROVE_F32);
    grove_set_num_threads(threads);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_eq(memcmp(a->data, b->data, sizeof(float) * 32 * 96 * 96 * 3), 0);
    /* one scene alone renders as it does in the batch */
    grove_tensor *c = grove_shapes_render(1, &sc[5], 96, GROVE_F32);
    cr_assert_eq(memcmp(c->data, (float *)a->data + 5 * 96 * 96 * 3, sizeof(float) * 96 * 96 * 3), 0);
    grove_tensor_release(a);
    grove_tensor_release(b);
    grove_tensor_release(c);
}

Test(shapes, render_rejects_bad_arguments)
{
    grove_shapes_scene s = one_object(0, 0, 0.5f, 0.5f, 0.3f);
    cr_assert_null(grove_shapes_render(1, &s, 15, GROVE_F32));
    expect_error("size 15 out of range [16, 128]");
    cr_assert_null(grove_shapes_render(1, &s, 129, GROVE_F32));
    expect_error("size 129 out of range");
    cr_assert_null(grove_shapes_render(0, &s, 32, GROVE_F32));
    expect_error("0 scenes");
    cr_assert_null(grove_shapes_render(1, &s, 32, GROVE_I32));
    expect_error("expected f32 or u8");
    s.objects[0].w = NAN;
    cr_assert_null(grove_shapes_render(1, &s, 32, GROVE_F32));
    expect_error("is not a box");
    s = one_object(0, 9, 0.5f, 0.5f, 0.3f);
    cr_assert_null(grove_shapes_render(1, &s, 32, GROVE_F32));
    expect_error("out of range");
    s.n_objects = 9;
    cr_assert_null(grove_shapes_render(1, &s, 32, GROVE_F32));
    expect_error("9 objects");
}

Test(shapes, detects_a_known_scene)
{
    grove_shapes_scene s;
    memset(&s, 0, sizeof s);
    s.n_objects = 3;
    s.objects[0] = (grove_shapes_object){2, 5, 0.25f, 0.3f, 0.3f, 0.3f};  /* purple triangle */
    s.objects[1] = (grove_shapes_object){3, 1, 0.75f, 0.3f, 0.3f, 0.3f};  /* orange diamond */
    s.objects[2] = (grove_shapes_object){0, 3, 0.5f, 0.75f, 0.35f, 0.35f}; /* green circle */
    grove_tensor *img = grove_shapes_render(1, &s, 64, GROVE_F32);
    cr_assert_not_null(img);
    grove_shapes_detection d[8];
    int32_t n = grove_shapes_detect(img, 0, d, 8);
    cr_assert_eq(n, 3, "found %d objects: %s", n, grove_last_error());
    /* largest first: the circle */
    cr_assert_eq(d[0].shape, 0);
    cr_assert_eq(d[0].color, 3);
    cr_assert_float_eq(d[0].cx, 32.0f, 0.05f);
    cr_assert_float_eq(d[0].cy, 48.0f, 0.05f);
    cr_assert_float_eq(d[0].area, 3.14159f * 11.2f * 11.2f, 2.0f);
    cr_assert_gt(d[0].score, 0.95f);
    bool tri = false, dia = false;
    for (int i = 1; i < 3; i++) {
        if (d[i].shape == 2 && d[i].color == 5) tri = true;
        if (d[i].shape == 3 && d[i].color == 1) dia = true;
    }
    cr_assert(tri && dia);
    /* room for one: the largest */
    cr_assert_eq(grove_shapes_detect(img, 0, d, 1), 1);
    cr_assert_eq(d[0].shape, 0);
    /* a single (H, W, 3) image */
    grove_tensor *one = grove_select(img, 0, 0);
    cr_assert_eq(grove_shapes_detect(one, 0, d, 8), 3);
    grove_tensor_release(one);
    grove_tensor_release(img);
}

Test(shapes, detect_rejects_bad_arguments)
{
    grove_shapes_detection d[4];
    int64_t s2[2] = {32, 32}, s4[4] = {1, 32, 32, 4}, ok[4] = {2, 32, 32, 3};
    grove_tensor *flat = grove_tensor_zeros(2, s2, GROVE_F32, GROVE_CPU);
    grove_tensor *four = grove_tensor_zeros(4, s4, GROVE_F32, GROVE_CPU);
    grove_tensor *ints = grove_tensor_zeros(4, ok, GROVE_I32, GROVE_CPU);
    grove_tensor *img = grove_tensor_full(4, ok, -1.0, GROVE_F32, GROVE_CPU); /* black */
    cr_assert_eq(grove_shapes_detect(flat, 0, d, 4), -1);
    expect_error("expected (B, H, W, 3)");
    cr_assert_eq(grove_shapes_detect(four, 0, d, 4), -1);
    expect_error("3 channels");
    cr_assert_eq(grove_shapes_detect(ints, 0, d, 4), -1);
    expect_error("expected f32 in [-1, 1] or u8");
    cr_assert_eq(grove_shapes_detect(img, 2, d, 4), -1);
    expect_error("image 2 out of range");
    cr_assert_eq(grove_shapes_detect(img, 0, NULL, 4), -1);
    expect_error("no room");
    /* black is no palette colour: nothing to find */
    cr_assert_eq(grove_shapes_detect(img, 1, d, 4), 0);
    grove_tensor_release(flat);
    grove_tensor_release(four);
    grove_tensor_release(ints);
    grove_tensor_release(img);
}

/* palette.c — the vocabulary of the shapes data set: names, colours, the
 * held-out pairs, the per-sample random stream and GenEval's position rule. */
#include "shapes.h"
#include "../kernels/cpu/cpu.h"

#include <math.h>

const char *const sh_shape_names[SH_NUM_SHAPES] = {"circle", "square", "triangle", "diamond"};
const char *const sh_color_names[SH_NUM_COLORS] = {"red", "orange", "yellow", "green", "blue", "purple"};
const char *const sh_category_names[SH_NUM_CATEGORIES] = {"single_object", "two_object", "counting",
                                                          "colors",        "position",   "color_attr"};
const char *const sh_relation_names[SH_NUM_RELATIONS] = {"left of", "right of", "above", "below"};

/* Saturated hues chosen so that every two colours are at least 100 apart
 * (8-bit RGB distance) and all stand far from the light gray background,
 * which is no palette colour. */
const uint8_t sh_palette[SH_NUM_COLORS][3] = {
    {205, 20, 45},   /* red */
    {250, 120, 5},   /* orange */
    {245, 225, 30},  /* yellow */
    {30, 160, 60},   /* green */
    {30, 85, 225},   /* blue */
    {145, 35, 195},  /* purple */
};
const uint8_t sh_background[3] = {235, 235, 235};

/* One pair per shape, each with its own colour: every held-out shape and
 * every held-out colour is still seen in training, in other pairs. */
bool sh_is_heldout(int32_t shape, int32_t color)
{
    static const int32_t held[SH_NUM_SHAPES] = {
        [SH_CIRCLE] = 1,   /* orange circle */
        [SH_SQUARE] = 3,   /* green square */
        [SH_TRIANGLE] = 5, /* purple triangle */
        [SH_DIAMOND] = 2,  /* yellow diamond */
    };
    return shape >= 0 && shape < SH_NUM_SHAPES && held[shape] == color;
}

int32_t grove_shapes_count(int32_t kind)
{
    switch (kind) {
    case GROVE_SHAPES_SHAPE: return SH_NUM_SHAPES;
    case GROVE_SHAPES_COLOR: return SH_NUM_COLORS;
    case GROVE_SHAPES_CATEGORY: return SH_NUM_CATEGORIES;
    case GROVE_SHAPES_RELATION: return SH_NUM_RELATIONS;
    default: return 0;
    }
}

const char *grove_shapes_name(int32_t kind, int32_t i)
{
    if (i < 0 || i >= grove_shapes_count(kind)) return NULL;
    switch (kind) {
    case GROVE_SHAPES_SHAPE: return sh_shape_names[i];
    case GROVE_SHAPES_COLOR: return sh_color_names[i];
    case GROVE_SHAPES_CATEGORY: return sh_category_names[i];
    case GROVE_SHAPES_RELATION: return sh_relation_names[i];
    default: return NULL;
    }
}

grove_status grove_shapes_rgb(int32_t color, uint8_t *rgb)
{
    if (!rgb) return gv_fail("shapes_rgb: output is NULL");
    if (color < -1 || color >= SH_NUM_COLORS)
        return gv_fail("shapes_rgb: colour %d out of range [-1, %d]", color, SH_NUM_COLORS - 1);
    const uint8_t *c = color < 0 ? sh_background : sh_palette[color];
    for (int k = 0; k < 3; k++) rgb[k] = c[k];
    return 0;
}

bool grove_shapes_heldout(int32_t shape, int32_t color) { return sh_is_heldout(shape, color); }

void sh_rng_init(sh_rng *r, uint64_t seed, uint64_t index, uint32_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = (uint32_t)index;
    r->ctr[1] = (uint32_t)(index >> 32);
    r->ctr[2] = stream;
    r->ctr[3] = 0;
    r->pos = 4;
}

uint32_t sh_rng_u32(sh_rng *r)
{
    if (r->pos == 4) {
        gv_cpu_philox_block(r->ctr, r->key, r->buf);
        r->ctr[3]++;
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

double sh_rng_unit(sh_rng *r) { return (double)sh_rng_u32(r) * (1.0 / 4294967296.0); }

int32_t sh_rng_int(sh_rng *r, int32_t n) { return (int32_t)(sh_rng_unit(r) * n); }

double sh_relation_strength(int32_t relation, const float a[4], const float b[4])
{
    double off[2] = {0.5 * (a[0] + a[2] - b[0] - b[2]), 0.5 * (a[1] + a[3] - b[1] - b[3])};
    double ext[2] = {(a[2] - a[0]) + (b[2] - b[0]), (a[3] - a[1]) + (b[3] - b[1])};
    double len = hypot(off[0], off[1]), rev[2];
    for (int k = 0; k < 2; k++) {
        double m = fabs(off[k]) - 0.1 * ext[k];
        rev[k] = m > 0 ? copysign(m, off[k]) : 0.0;
    }
    if (fabs(rev[0]) < 1e-3 && fabs(rev[1]) < 1e-3) return 0.0;
    double dx = rev[0] / len, dy = rev[1] / len;
    switch (relation) {
    case SH_LEFT_OF: return -dx;
    case SH_RIGHT_OF: return dx;
    case SH_ABOVE: return -dy;
    case SH_BELOW: return dy;
    default: return 0.0;
    }
}

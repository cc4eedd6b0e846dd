/*
 * shapes.h — what the pieces of the shapes data set share: the palette, the
 * shape geometry (one inside test used by the renderer and by the
 * detector's templates, so a perfect render matches its template exactly),
 * a Philox stream per (seed, index) and GenEval's relative-position rule.
 */
#ifndef GROVE_DATA_SHAPES_H
#define GROVE_DATA_SHAPES_H

#include "internal.h"

enum {
    SH_NUM_SHAPES = 4,
    SH_NUM_COLORS = 6,
    SH_NUM_CATEGORIES = 6,
    SH_NUM_RELATIONS = 4,
    SH_MAX_COUNT = 4,       /* objects one caption phrase may ask for */
    SH_SS = 4,              /* supersamples per pixel side */
    SH_MIN_SIZE = 16,
    SH_MAX_SIZE = 128,
};

enum { SH_CIRCLE = 0, SH_SQUARE, SH_TRIANGLE, SH_DIAMOND };
enum { SH_SINGLE_OBJECT = 0, SH_TWO_OBJECT, SH_COUNTING, SH_COLORS, SH_POSITION, SH_COLOR_ATTR };
enum { SH_LEFT_OF = 0, SH_RIGHT_OF, SH_ABOVE, SH_BELOW };

extern const char *const sh_shape_names[SH_NUM_SHAPES];
extern const char *const sh_color_names[SH_NUM_COLORS];
extern const char *const sh_category_names[SH_NUM_CATEGORIES];
extern const char *const sh_relation_names[SH_NUM_RELATIONS];
extern const uint8_t sh_palette[SH_NUM_COLORS][3];
extern const uint8_t sh_background[3];

bool sh_is_heldout(int32_t shape, int32_t color);

/* Is the point (x, y) inside the shape whose axis-aligned bounding box has
 * centre (cx, cy) and half sizes (hw, hh)? Triangles point up (apex at the
 * top centre, base along the bottom edge); diamonds touch the middle of
 * each side of the box. */
static inline bool sh_inside(int32_t shape, float x, float y, float cx, float cy, float hw, float hh)
{
    float dx = x - cx, dy = y - cy;
    float ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
    switch (shape) {
    case SH_CIRCLE: return (dx * dx) / (hw * hw) + (dy * dy) / (hh * hh) <= 1.0f;
    case SH_SQUARE: return ax <= hw && ay <= hh;
    case SH_TRIANGLE: {
        float depth = dy + hh; /* distance below the apex */
        return depth >= 0.0f && depth <= 2.0f * hh && ax * 2.0f * hh <= hw * depth;
    }
    case SH_DIAMOND: return ax * hh + ay * hw <= hw * hh;
    default: return false;
    }
}

/* Fraction of pixel (px, py) (the unit square at [px, px+1) × [py, py+1))
 * inside the shape, from SH_SS × SH_SS samples at sub-pixel centres. */
static inline float sh_coverage(int32_t shape, int px, int py, float cx, float cy, float hw, float hh)
{
    /* Every shape is convex: a pixel whose corners are all inside is
     * covered (the samples would all hit, so this changes no value). */
    float x0 = (float)px, y0 = (float)py, x1 = x0 + 1.0f, y1 = y0 + 1.0f;
    if (sh_inside(shape, x0, y0, cx, cy, hw, hh) && sh_inside(shape, x1, y0, cx, cy, hw, hh) &&
        sh_inside(shape, x0, y1, cx, cy, hw, hh) && sh_inside(shape, x1, y1, cx, cy, hw, hh))
        return 1.0f;
    int hits = 0;
    for (int j = 0; j < SH_SS; j++) {
        float y = (float)py + ((float)j + 0.5f) / SH_SS;
        for (int i = 0; i < SH_SS; i++) {
            float x = (float)px + ((float)i + 0.5f) / SH_SS;
            hits += sh_inside(shape, x, y, cx, cy, hw, hh);
        }
    }
    return (float)hits / (SH_SS * SH_SS);
}

/* Successive 32-bit words of Philox4x32-10 keyed by the seed, at counters
 * (index, stream, n) for n = 0, 1, ...: each sample of each stream owns its
 * own counters, so sample i is the same whatever the batching. */
typedef struct sh_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int32_t pos;
} sh_rng;

void sh_rng_init(sh_rng *r, uint64_t seed, uint64_t index, uint32_t stream);
uint32_t sh_rng_u32(sh_rng *r);
/* Uniform in [0, 1). */
double sh_rng_unit(sh_rng *r);
/* Uniform integer in [0, n). */
int32_t sh_rng_int(sh_rng *r, int32_t n);

/* GenEval's relative position of box a to box b (x0, y0, x1, y1; y grows
 * downwards): the offset of the centres, shrunk on each axis by 0.1 × the
 * sum of the boxes' extents, divided by the offset's length. Returns the
 * component along the relation's direction (left of: −dx, right of: dx,
 * above: −dy, below: dy); GenEval holds a relation when it exceeds 0.5. */
double sh_relation_strength(int32_t relation, const float a[4], const float b[4]);

#endif

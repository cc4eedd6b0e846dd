/* layout.c — what each sample of the shapes stream shows: its caption's
 * spec (category, phrases, relation) and where its objects go. */
#include "shapes.h"

#include <math.h>
#include <string.h>

/* Philox streams of one sample: its spec (per split) and its layout. */
enum { STREAM_SPEC_TRAIN = 1, STREAM_SPEC_HELDOUT = 2, STREAM_LAYOUT = 3 };

/* Layout geometry in fractions of the image side, written as pixels of a
 * 32-pixel image: objects keep 1 px from the border and 3 px from each
 * other (box to box), so every object is its own connected component. */
#define PX (1.0f / 32.0f)
static const float MARGIN = 1.0f * PX;
static const float GAP = 3.0f * PX;
/* A position scene holds its relation at this strength (GenEval holds it
 * above 0.5; above 0.9 the perpendicular relation cannot hold as well). */
static const double RELATION_STRENGTH = 0.9;

/* Object sizes (box side, px of 32) by how many objects share the image. */
static void size_range(int32_t n, float *lo, float *hi)
{
    if (n <= 1) { *lo = 10 * PX; *hi = 16 * PX; }
    else if (n == 2) { *lo = 8 * PX; *hi = 13 * PX; }
    else if (n <= 4) { *lo = 8 * PX; *hi = 11 * PX; }
    else { *lo = 6 * PX; *hi = 8 * PX; }
}

static bool spec_ok(const char *op, const grove_shapes_spec *s)
{
    if (!s) { gv_fail("%s: spec is NULL", op); return false; }
    if (s->category < 0 || s->category >= SH_NUM_CATEGORIES) {
        gv_fail("%s: category %d out of range [0, %d]", op, s->category, SH_NUM_CATEGORIES - 1);
        return false;
    }
    if (s->n_items < 1 || s->n_items > 2) { gv_fail("%s: %d phrases (expected 1 or 2)", op, s->n_items); return false; }
    int32_t total = 0;
    for (int32_t i = 0; i < s->n_items; i++) {
        const grove_shapes_item *it = &s->items[i];
        if (it->shape < 0 || it->shape >= SH_NUM_SHAPES) {
            gv_fail("%s: phrase %d: shape %d out of range [0, %d]", op, i + 1, it->shape, SH_NUM_SHAPES - 1);
            return false;
        }
        if (it->color < -1 || it->color >= SH_NUM_COLORS) {
            gv_fail("%s: phrase %d: colour %d out of range [-1, %d]", op, i + 1, it->color, SH_NUM_COLORS - 1);
            return false;
        }
        if (it->count < 1 || it->count > SH_MAX_COUNT) {
            gv_fail("%s: phrase %d: count %d out of range [1, %d]", op, i + 1, it->count, SH_MAX_COUNT);
            return false;
        }
        total += it->count;
    }
    if (total > GROVE_SHAPES_MAX_OBJECTS) {
        gv_fail("%s: %d objects (at most %d)", op, total, GROVE_SHAPES_MAX_OBJECTS);
        return false;
    }
    if (s->relation != -1 && (s->relation < 0 || s->relation >= SH_NUM_RELATIONS)) {
        gv_fail("%s: relation %d out of range [-1, %d]", op, s->relation, SH_NUM_RELATIONS - 1);
        return false;
    }
    if (s->relation >= 0 && s->n_items != 2) {
        gv_fail("%s: a relation needs two phrases, got %d", op, s->n_items);
        return false;
    }
    return true;
}

/* A (shape, colour) pair: of the training pairs, or one of the held-out ones. */
static void draw_pair(sh_rng *r, bool heldout, int32_t *shape, int32_t *color)
{
    if (heldout) {
        *shape = sh_rng_int(r, SH_NUM_SHAPES);
        for (*color = 0; !sh_is_heldout(*shape, *color); (*color)++) {}
        return;
    }
    do {
        *shape = sh_rng_int(r, SH_NUM_SHAPES);
        *color = sh_rng_int(r, SH_NUM_COLORS);
    } while (sh_is_heldout(*shape, *color));
}

/* A second pair with another shape and another colour than the first. */
static void draw_other_pair(sh_rng *r, int32_t shape0, int32_t color0, int32_t *shape, int32_t *color)
{
    do {
        draw_pair(r, false, shape, color);
    } while (*shape == shape0 || *color == color0);
}

static void draw_spec(sh_rng *r, int32_t category, bool heldout, grove_shapes_spec *s)
{
    memset(s, 0, sizeof *s);
    s->category = category;
    s->relation = -1;
    grove_shapes_item *a = &s->items[0], *b = &s->items[1];
    a->count = b->count = 1;
    switch (category) {
    case SH_SINGLE_OBJECT:
        s->n_items = 1;
        a->shape = sh_rng_int(r, SH_NUM_SHAPES);
        a->color = -1;
        break;
    case SH_TWO_OBJECT:
        s->n_items = 2;
        a->shape = sh_rng_int(r, SH_NUM_SHAPES);
        b->shape = (a->shape + 1 + sh_rng_int(r, SH_NUM_SHAPES - 1)) % SH_NUM_SHAPES;
        a->color = b->color = -1;
        break;
    case SH_COUNTING:
    case SH_COLORS:
        s->n_items = 1;
        draw_pair(r, heldout, &a->shape, &a->color);
        if (category == SH_COUNTING) a->count = 2 + sh_rng_int(r, SH_MAX_COUNT - 1);
        break;
    default: /* SH_POSITION, SH_COLOR_ATTR */
        s->n_items = 2;
        draw_pair(r, heldout, &a->shape, &a->color);
        draw_other_pair(r, a->shape, a->color, &b->shape, &b->color);
        if (heldout && sh_rng_int(r, 2)) {
            grove_shapes_item t = *a;
            *a = *b;
            *b = t;
        }
        if (category == SH_POSITION) s->relation = sh_rng_int(r, SH_NUM_RELATIONS);
        break;
    }
}

grove_status grove_shapes_sample(uint64_t seed, uint64_t index, int32_t split, uint32_t categories,
                                 grove_shapes_scene *out)
{
    if (!out) return gv_fail("shapes_sample: output is NULL");
    if (split != 0 && split != 1) return gv_fail("shapes_sample: split %d (expected 0 train or 1 heldout)", split);
    uint32_t all = (1u << SH_NUM_CATEGORIES) - 1;
    if (categories & ~all) return gv_fail("shapes_sample: category mask 0x%x names no category", categories);
    /* Only captions that name colours can name a held-out pair. */
    uint32_t allowed = split == 1 ? all & ~((1u << SH_SINGLE_OBJECT) | (1u << SH_TWO_OBJECT)) : all;
    uint32_t mask = (categories ? categories : all) & allowed;
    if (!mask)
        return gv_fail("shapes_sample: the heldout split has no single_object or two_object captions "
                       "(they name no colour)");
    int32_t cats[SH_NUM_CATEGORIES], n = 0;
    for (int32_t c = 0; c < SH_NUM_CATEGORIES; c++)
        if (mask & (1u << c)) cats[n++] = c;

    sh_rng r;
    sh_rng_init(&r, seed, index, split ? STREAM_SPEC_HELDOUT : STREAM_SPEC_TRAIN);
    grove_shapes_spec spec;
    draw_spec(&r, cats[sh_rng_int(&r, n)], split == 1, &spec);
    return grove_shapes_layout(&spec, seed, index, split == 0, out);
}

/* Boxes (x0, y0, x1, y1) apart by at least the gap on some axis. */
static bool apart(const float a[4], const float b[4])
{
    return a[2] + GAP <= b[0] || b[2] + GAP <= a[0] || a[3] + GAP <= b[1] || b[3] + GAP <= a[1];
}

static void box_of(const grove_shapes_object *o, float box[4])
{
    box[0] = o->cx - 0.5f * o->w;
    box[1] = o->cy - 0.5f * o->h;
    box[2] = o->cx + 0.5f * o->w;
    box[3] = o->cy + 0.5f * o->h;
}

/* Tries to place object k among the k already placed; group[] tells which
 * phrase each object came from, for the relation. */
static bool place(sh_rng *r, grove_shapes_object *obj, const int32_t *group, int32_t k, int32_t relation,
                  float scale, float lo, float hi)
{
    grove_shapes_object *o = &obj[k];
    /* An object of the second phrase of a position caption starts beside
     * one of the first's, on the relation's side and roughly in line, so
     * that few tries fail the relation. */
    const grove_shapes_object *anchor = NULL;
    if (relation >= 0 && group[k] == 1) {
        int32_t n0 = 0;
        while (group[n0] == 0) n0++;
        anchor = &obj[sh_rng_int(r, n0)];
    }
    /* beside an anchor that leaves no room, a few tries are enough to tell */
    int tries = anchor ? 16 : 100;
    for (int attempt = 0; attempt < tries; attempt++) {
        float s = scale * (lo + (hi - lo) * (float)sh_rng_unit(r));
        float room = 1.0f - 2.0f * MARGIN - s;
        o->w = o->h = s;
        o->cx = MARGIN + 0.5f * s + room * (float)sh_rng_unit(r);
        o->cy = MARGIN + 0.5f * s + room * (float)sh_rng_unit(r);
        if (anchor) {
            /* the first phrase's objects stand `relation` of this one */
            bool horizontal = relation == SH_LEFT_OF || relation == SH_RIGHT_OF;
            float sign = relation == SH_LEFT_OF || relation == SH_ABOVE ? 1.0f : -1.0f;
            float along = sign * (0.5f * (anchor->w + s) + GAP + room * 0.6f * (float)sh_rng_unit(r));
            float across = 0.25f * s * (2.0f * (float)sh_rng_unit(r) - 1.0f);
            o->cx = anchor->cx + (horizontal ? along : across);
            o->cy = anchor->cy + (horizontal ? across : along);
            float lo_c = MARGIN + 0.5f * s, hi_c = 1.0f - MARGIN - 0.5f * s;
            if (o->cx < lo_c || o->cx > hi_c || o->cy < lo_c || o->cy > hi_c) continue;
        }
        float box[4], other[4];
        box_of(o, box);
        bool ok = true;
        for (int32_t j = 0; j < k && ok; j++) {
            box_of(&obj[j], other);
            if (!apart(box, other)) ok = false;
            /* objects of the first phrase come first, so j is in phrase 0 */
            else if (relation >= 0 && group[j] != group[k] &&
                     sh_relation_strength(relation, other, box) < RELATION_STRENGTH)
                ok = false;
        }
        if (ok) return true;
    }
    return false;
}

grove_status grove_shapes_layout(const grove_shapes_spec *spec, uint64_t seed, uint64_t index,
                                 bool avoid_heldout, grove_shapes_scene *out)
{
    const char *op = "shapes_layout";
    if (!out) return gv_fail("%s: output is NULL", op);
    if (!spec_ok(op, spec)) return -1;
    memset(out, 0, sizeof *out);
    out->spec = *spec;

    sh_rng r;
    sh_rng_init(&r, seed, index, STREAM_LAYOUT);
    int32_t group[GROVE_SHAPES_MAX_OBJECTS], n = 0;
    for (int32_t i = 0; i < spec->n_items; i++) {
        const grove_shapes_item *it = &spec->items[i];
        for (int32_t c = 0; c < it->count; c++, n++) {
            int32_t color = it->color;
            while (color < 0 || (it->color < 0 && avoid_heldout && sh_is_heldout(it->shape, color)))
                color = sh_rng_int(&r, SH_NUM_COLORS);
            out->objects[n].shape = it->shape;
            out->objects[n].color = color;
            group[n] = i;
        }
    }
    out->n_objects = n;

    float lo, hi;
    size_range(n, &lo, &hi);
    /* Whole-scene restarts; objects shrink a little after every 8 so that a
     * crowded or tightly related scene always fits in the end. */
    float scale = 1.0f;
    for (int restart = 0; restart < 4096; restart++) {
        if (restart > 0 && restart % 8 == 0) scale *= 0.95f;
        int32_t k = 0;
        while (k < n && place(&r, out->objects, group, k, spec->relation, scale, lo, hi)) k++;
        if (k == n) return 0;
    }
    return gv_fail("%s: cannot place %d objects", op, n);
}

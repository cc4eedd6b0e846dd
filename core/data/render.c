/* render.c — draws shapes scenes into image tensors, anti-aliased by
 * supersampling the exact geometry of shapes.h. */
#include "shapes.h"

#include <math.h>
#include <string.h>

static bool scene_ok(const grove_shapes_scene *s, int64_t i)
{
    if (s->n_objects < 0 || s->n_objects > GROVE_SHAPES_MAX_OBJECTS) {
        gv_fail("shapes_render: scene %lld has %d objects (expected 0..%d)", (long long)i, s->n_objects,
                GROVE_SHAPES_MAX_OBJECTS);
        return false;
    }
    for (int32_t k = 0; k < s->n_objects; k++) {
        const grove_shapes_object *o = &s->objects[k];
        if (o->shape < 0 || o->shape >= SH_NUM_SHAPES || o->color < 0 || o->color >= SH_NUM_COLORS) {
            gv_fail("shapes_render: scene %lld object %d: shape %d / colour %d out of range", (long long)i, k,
                    o->shape, o->color);
            return false;
        }
        bool finite = isfinite(o->cx) && isfinite(o->cy) && isfinite(o->w) && isfinite(o->h);
        if (!finite || o->w <= 0 || o->h <= 0 || o->w > 2 || o->h > 2 || fabsf(o->cx) > 2 || fabsf(o->cy) > 2) {
            gv_fail("shapes_render: scene %lld object %d: box (%g, %g, %g, %g) is not a box in the image",
                    (long long)i, k, o->cx, o->cy, o->w, o->h);
            return false;
        }
    }
    return true;
}

/* Coverage of every pixel by the scene's objects (they do not overlap, so
 * coverages add); cov holds size² floats. */
static void coverage(const grove_shapes_scene *s, int32_t size, float *cov, int8_t *owner)
{
    memset(cov, 0, sizeof(float) * (size_t)size * (size_t)size);
    memset(owner, -1, (size_t)size * (size_t)size);
    for (int32_t k = 0; k < s->n_objects; k++) {
        const grove_shapes_object *o = &s->objects[k];
        float cx = o->cx * size, cy = o->cy * size, hw = 0.5f * o->w * size, hh = 0.5f * o->h * size;
        int x0 = (int)floorf(cx - hw), x1 = (int)ceilf(cx + hw), y0 = (int)floorf(cy - hh), y1 = (int)ceilf(cy + hh);
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > size) x1 = size;
        if (y1 > size) y1 = size;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                float c = sh_coverage(o->shape, x, y, cx, cy, hw, hh);
                if (c <= 0) continue;
                int64_t p = (int64_t)y * size + x;
                /* a pixel two objects share keeps the larger cover's colour */
                if (owner[p] < 0 || c > cov[p]) owner[p] = (int8_t)o->color;
                cov[p] = fminf(cov[p] + c, 1.0f);
            }
    }
}

/* Writes image i of the output (f32 in [-1, 1] or u8, whichever is set). */
static void render_one(const grove_shapes_scene *s, int32_t size, float *f, uint8_t *u, int64_t i)
{
    float cov[SH_MAX_SIZE * SH_MAX_SIZE];
    int8_t owner[SH_MAX_SIZE * SH_MAX_SIZE];
    int64_t npix = (int64_t)size * size;
    coverage(s, size, cov, owner);
    for (int64_t p = 0; p < npix; p++) {
        const uint8_t *c = owner[p] >= 0 ? sh_palette[owner[p]] : sh_background;
        float a = cov[p];
        for (int k = 0; k < 3; k++) {
            float v = (float)sh_background[k] + a * ((float)c[k] - (float)sh_background[k]);
            int64_t at = (i * npix + p) * 3 + k;
            if (f) f[at] = v * (2.0f / 255.0f) - 1.0f;
            else u[at] = (uint8_t)lrintf(v);
        }
    }
}

grove_tensor *grove_shapes_render(int64_t n, const grove_shapes_scene *scenes, int32_t size, int32_t dtype)
{
    if (n < 1) return gv_fail_null("shapes_render: %lld scenes (expected at least 1)", (long long)n);
    if (!scenes) return gv_fail_null("shapes_render: scenes is NULL");
    if (size < SH_MIN_SIZE || size > SH_MAX_SIZE)
        return gv_fail_null("shapes_render: size %d out of range [%d, %d]", size, SH_MIN_SIZE, SH_MAX_SIZE);
    if (dtype != GROVE_F32 && dtype != GROVE_U8)
        return gv_fail_null("shapes_render: dtype %s (expected f32 or u8)", grove_dtype_name(dtype));
    for (int64_t i = 0; i < n; i++)
        if (!scene_ok(&scenes[i], i)) return NULL;

    int64_t shape[4] = {n, size, size, 3};
    grove_tensor *out = gv_empty(4, shape, dtype, GROVE_CPU);
    if (!out) return NULL;
    float *f = dtype == GROVE_F32 ? out->data : NULL;
    uint8_t *u = dtype == GROVE_U8 ? out->data : NULL;
    /* Each image is one thread's work, so pixels never depend on the split;
     * a training batch (32 at 32×32, a fraction of a millisecond) stays on
     * the calling thread, clear of the OpenMP runtime. */
    if (n * size * size >= 131072) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) render_one(&scenes[i], size, f, u, i);
    } else {
        for (int64_t i = 0; i < n; i++) render_one(&scenes[i], size, f, u, i);
    }
    return out;
}

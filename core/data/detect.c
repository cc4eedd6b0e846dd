/*
 * detect.c — the shapes evaluator's detector: finds the flat objects of an
 * image of the shapes data set (or of a model's attempt at one).
 *
 * 1. Colour: every pixel p is unmixed against the background bg along each
 *    palette colour c: α = (p−bg)·(c−bg)/|c−bg|², residual |p−bg−α(c−bg)|.
 *    An anti-aliased edge pixel is exactly such a blend, so it keeps its
 *    object's colour (a half-covered pixel is as far from its colour as from
 *    the background, and may be nearer a third one). The pixel takes the colour with the
 *    smallest residual among those with α ≥ 0.25, and is foreground when
 *    that α ≥ 0.5 and the residual ≤ 0.3 (RGB in [0, 1]).
 * 2. Objects: connected components (8-connectivity) of equal colour, at
 *    least max(4, H·W/64) pixels (half the smallest object the data set
 *    draws); smaller ones are noise, or stray colours of a blotchy sample.
 * 3. Shape: the object's soft mask (α over its pixels and the background
 *    ring within RING pixels that is nearer to it than to other objects)
 *    gives its area, centroid and second moments. Each shape template is
 *    fitted to those moments (e.g. a square of side √12·σ), for a few
 *    Gaussian blurs (a blur of σ_b adds σ_b² to the variances), rendered
 *    with the data set's own anti-aliasing and blurred; the template with
 *    the highest soft IoU (Σ min / Σ max) names the shape when that IoU ≥ 0.5.
 */
#include "shapes.h"
#include "gpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float MIN_ALPHA = 0.5f, CANDIDATE_ALPHA = 0.25f, MAX_RESIDUAL = 0.3f, MIN_IOU = 0.5f;
/* The soft mask reaches RING pixels past the object's pixels; there, weights
 * under RING_FLOOR are background noise. */
enum { RING = 2, BLUR_RADIUS = 3 };
static const float RING_FLOOR = 0.1f;
/* Gaussian blurs (pixels) the templates are also tried with: a model's
 * samples have soft edges, and a soft square is not a circle. */
static const double blur_levels[] = {0.0, 0.5, 0.75, 1.0};
/* ... at most this fraction of the object's RMS radius √(σx² + σy²) */
static const double MAX_BLUR_RATIO = 0.4;

typedef struct detector {
    int32_t w, h;
    float *rgb;         /* h·w·3, in [0, 1] */
    int8_t *label;      /* palette colour or -1 */
    int32_t *comp;      /* component id or -1 */
    int32_t *stack;
    float *weight;      /* one object's soft mask */
    float *templ, *scratch; /* one template, and room to blur it */
    float dir[SH_NUM_COLORS][3], inv_norm2[SH_NUM_COLORS], bg[3];
} detector;

static float alpha_along(const detector *d, const float *p, int32_t c)
{
    float a = 0;
    for (int k = 0; k < 3; k++) a += (p[k] - d->bg[k]) * d->dir[c][k];
    return a * d->inv_norm2[c];
}

static void classify(detector *d)
{
    int64_t n = (int64_t)d->w * d->h;
    for (int64_t i = 0; i < n; i++) {
        const float *p = d->rgb + 3 * i;
        int32_t best = -1;
        float best_r2 = INFINITY, best_a = 0;
        for (int32_t c = 0; c < SH_NUM_COLORS; c++) {
            float a = alpha_along(d, p, c);
            if (a < CANDIDATE_ALPHA) continue;
            float r2 = 0;
            for (int k = 0; k < 3; k++) {
                float e = p[k] - d->bg[k] - a * d->dir[c][k];
                r2 += e * e;
            }
            if (r2 < best_r2) { best = c; best_r2 = r2; best_a = a; }
        }
        d->label[i] = best >= 0 && best_a >= MIN_ALPHA && best_r2 <= MAX_RESIDUAL * MAX_RESIDUAL ? (int8_t)best : -1;
        d->comp[i] = -1;
    }
}

/* Flood-fills the component of pixel `seed` with id; returns its pixel
 * count and its box (inclusive pixel indices). */
static int64_t flood(detector *d, int64_t seed, int32_t id, int32_t box[4])
{
    int8_t color = d->label[seed];
    int64_t top = 0, count = 0;
    d->stack[top++] = (int32_t)seed;
    d->comp[seed] = id;
    box[0] = box[2] = (int32_t)(seed % d->w);
    box[1] = box[3] = (int32_t)(seed / d->w);
    while (top > 0) {
        int32_t p = d->stack[--top];
        int32_t x = p % d->w, y = p / d->w;
        count++;
        if (x < box[0]) box[0] = x;
        if (x > box[2]) box[2] = x;
        if (y < box[1]) box[1] = y;
        if (y > box[3]) box[3] = y;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int32_t nx = x + dx, ny = y + dy;
                if (nx < 0 || ny < 0 || nx >= d->w || ny >= d->h) continue;
                int32_t q = ny * d->w + nx;
                if (d->comp[q] < 0 && d->label[q] == color) {
                    d->comp[q] = id;
                    d->stack[top++] = q;
                }
            }
    }
    return count;
}

/* Does background pixel (x, y) belong to the ring of component id: within
 * RING pixels (Chebyshev) of it, and nearer to it than to any other
 * object's pixels (so a neighbour's soft edge stays the neighbour's)? */
static bool in_ring(const detector *d, int32_t x, int32_t y, int32_t id)
{
    int own = RING + 1, other = RING + 1;
    for (int dy = -RING; dy <= RING; dy++)
        for (int dx = -RING; dx <= RING; dx++) {
            int32_t nx = x + dx, ny = y + dy;
            if (nx < 0 || ny < 0 || nx >= d->w || ny >= d->h) continue;
            int64_t q = (int64_t)ny * d->w + nx;
            if (d->label[q] < 0) continue;
            int dist = abs(dx) > abs(dy) ? abs(dx) : abs(dy);
            if (d->comp[q] == id) {
                if (dist < own) own = dist;
            } else if (dist < other) {
                other = dist;
            }
        }
    return own <= RING && own < other;
}

/* Template boxes fitted to the moments: centre (cx, cy) and half sizes. */
static void fit_template(int32_t shape, double mx, double my, double sx, double sy, float t[4])
{
    double w, h, cy = my;
    switch (shape) {
    case SH_CIRCLE: w = 4 * sx; h = 4 * sy; break;
    case SH_SQUARE: w = sqrt(12.0) * sx; h = sqrt(12.0) * sy; break;
    case SH_TRIANGLE: w = sqrt(24.0) * sx; h = sqrt(18.0) * sy; cy = my - h / 6; break; /* centroid 2h/3 below the apex */
    default: w = sqrt(24.0) * sx; h = sqrt(24.0) * sy; break;                            /* diamond */
    }
    t[0] = (float)mx;
    t[1] = (float)cy;
    t[2] = (float)(0.5 * w);
    t[3] = (float)(0.5 * h);
}

/* Blurs the w × h grid g in place with a Gaussian of standard deviation
 * sigma (pixels), separably, zero outside the grid. */
static void gaussian_blur(float *g, float *tmp, int32_t w, int32_t h, double sigma)
{
    float k[2 * BLUR_RADIUS + 1];
    double sum = 0;
    for (int i = -BLUR_RADIUS; i <= BLUR_RADIUS; i++) sum += k[i + BLUR_RADIUS] = (float)exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i < 2 * BLUR_RADIUS + 1; i++) k[i] = (float)(k[i] / sum);
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++) {
            float acc = 0;
            for (int i = -BLUR_RADIUS; i <= BLUR_RADIUS; i++)
                if (x + i >= 0 && x + i < w) acc += k[i + BLUR_RADIUS] * g[y * w + x + i];
            tmp[y * w + x] = acc;
        }
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++) {
            float acc = 0;
            for (int i = -BLUR_RADIUS; i <= BLUR_RADIUS; i++)
                if (y + i >= 0 && y + i < h) acc += k[i + BLUR_RADIUS] * tmp[(y + i) * w + x];
            g[y * w + x] = acc;
        }
}

static void measure(detector *d, int32_t id, int32_t color, const int32_t box[4], grove_shapes_detection *out)
{
    /* the soft mask over the object's box grown by RING pixels: its pixels
     * and the background ring holding its anti-aliased (or blurred) edge */
    int32_t rx0 = box[0] - RING, ry0 = box[1] - RING, rx1 = box[2] + RING, ry1 = box[3] + RING;
    if (rx0 < 0) rx0 = 0;
    if (ry0 < 0) ry0 = 0;
    if (rx1 > d->w - 1) rx1 = d->w - 1;
    if (ry1 > d->h - 1) ry1 = d->h - 1;
    int32_t rw = rx1 - rx0 + 1;
    double m0 = 0, mx = 0, my = 0, mxx = 0, myy = 0;
    for (int32_t y = ry0; y <= ry1; y++)
        for (int32_t x = rx0; x <= rx1; x++) {
            int64_t p = (int64_t)y * d->w + x;
            float wgt = 0;
            bool own = d->comp[p] == id;
            if (own || (d->label[p] < 0 && in_ring(d, x, y, id))) {
                wgt = alpha_along(d, d->rgb + 3 * p, color);
                wgt = wgt > 1 ? 1 : wgt;
                if (!own && wgt < RING_FLOOR) wgt = 0; /* background noise */
            }
            d->weight[(y - ry0) * rw + (x - rx0)] = wgt;
            double px = x + 0.5, py = y + 0.5;
            m0 += wgt;
            mx += wgt * px;
            my += wgt * py;
            mxx += wgt * px * px;
            myy += wgt * py * py;
        }
    mx /= m0;
    my /= m0;
    /* Sheppard's correction: sampling at pixel centres adds 1/12 px². */
    double vx = mxx / m0 - mx * mx - 1.0 / 12, vy = myy / m0 - my * my - 1.0 / 12;

    int32_t best = -1;
    double best_iou = 0;
    for (int b = 0; b < (int)(sizeof blur_levels / sizeof blur_levels[0]); b++) {
        /* a blur of σ adds σ² to the variances of the sharp shape */
        double s2 = blur_levels[b] * blur_levels[b];
        /* a blur wide against the object would make every shape a blob */
        if (vx - s2 < 0.25 || vy - s2 < 0.25 || s2 > MAX_BLUR_RATIO * MAX_BLUR_RATIO * (vx + vy)) continue;
        double sx = sqrt(vx - s2), sy = sqrt(vy - s2);
        for (int32_t s = 0; s < SH_NUM_SHAPES; s++) {
            float t[4];
            fit_template(s, mx, my, sx, sy, t);
            /* the union of the soft mask's region and the template's box
             * (grown by the blur's reach), within the image */
            int32_t ux0 = (int32_t)floorf(t[0] - t[2]) - BLUR_RADIUS, ux1 = (int32_t)ceilf(t[0] + t[2]) + BLUR_RADIUS;
            int32_t uy0 = (int32_t)floorf(t[1] - t[3]) - BLUR_RADIUS, uy1 = (int32_t)ceilf(t[1] + t[3]) + BLUR_RADIUS;
            if (ux0 > rx0) ux0 = rx0;
            if (uy0 > ry0) uy0 = ry0;
            if (ux1 < rx1 + 1) ux1 = rx1 + 1;
            if (uy1 < ry1 + 1) uy1 = ry1 + 1;
            if (ux0 < 0) ux0 = 0;
            if (uy0 < 0) uy0 = 0;
            if (ux1 > d->w) ux1 = d->w;
            if (uy1 > d->h) uy1 = d->h;
            int32_t uw = ux1 - ux0, uh = uy1 - uy0;
            for (int32_t y = 0; y < uh; y++)
                for (int32_t x = 0; x < uw; x++)
                    d->templ[y * uw + x] = sh_coverage(s, ux0 + x, uy0 + y, t[0], t[1], t[2], t[3]);
            if (blur_levels[b] > 0) gaussian_blur(d->templ, d->scratch, uw, uh, blur_levels[b]);
            double inter = 0, uni = 0;
            for (int32_t y = 0; y < uh; y++)
                for (int32_t x = 0; x < uw; x++) {
                    int32_t ix = ux0 + x, iy = uy0 + y;
                    float tc = d->templ[y * uw + x];
                    float wc = ix >= rx0 && ix <= rx1 && iy >= ry0 && iy <= ry1
                                   ? d->weight[(iy - ry0) * rw + (ix - rx0)] : 0;
                    inter += fminf(tc, wc);
                    uni += fmaxf(tc, wc);
                }
            double iou = uni > 0 ? inter / uni : 0;
            if (iou > best_iou) { best_iou = iou; best = s; }
        }
    }
    out->shape = best_iou >= MIN_IOU ? best : -1;
    out->color = color;
    out->cx = (float)mx;
    out->cy = (float)my;
    out->x0 = (float)box[0];
    out->y0 = (float)box[1];
    out->x1 = (float)(box[2] + 1);
    out->y1 = (float)(box[3] + 1);
    out->area = (float)m0;
    out->score = (float)best_iou;
}

static int by_area(const void *pa, const void *pb)
{
    const grove_shapes_detection *a = pa, *b = pb;
    if (a->area != b->area) return a->area > b->area ? -1 : 1;
    if (a->color != b->color) return a->color < b->color ? -1 : 1;
    if (a->cy != b->cy) return a->cy < b->cy ? -1 : 1;
    return a->cx < b->cx ? -1 : a->cx > b->cx;
}

static void load_image(detector *d, const grove_tensor *t, int64_t index)
{
    int64_t n = (int64_t)d->w * d->h * 3, base = index * n;
    if (t->dtype == GROVE_U8) {
        const uint8_t *u = (const uint8_t *)t->data + base;
        for (int64_t i = 0; i < n; i++) d->rgb[i] = u[i] * (1.0f / 255.0f);
    } else {
        const float *f = (const float *)t->data + base;
        for (int64_t i = 0; i < n; i++) d->rgb[i] = 0.5f * (f[i] + 1.0f);
    }
}

int32_t grove_shapes_detect(grove_tensor *images, int64_t index, grove_shapes_detection *out, int32_t max_out)
{
    const char *op = "shapes_detect";
    if (!gv_check_live(op, images)) return -1;
    if (images->ndim != 3 && images->ndim != 4)
        return gv_fail("%s: images %s: expected (B, H, W, 3) or (H, W, 3)", op, gv_shape_str(images));
    int32_t o = images->ndim - 3;
    int64_t b = o ? images->shape[0] : 1, h = images->shape[o], w = images->shape[o + 1];
    if (images->shape[o + 2] != 3)
        return gv_fail("%s: images %s: expected 3 channels (RGB) last", op, gv_shape_str(images));
    if (h < 8 || w < 8 || h > 1024 || w > 1024)
        return gv_fail("%s: images %s: height and width must be in [8, 1024]", op, gv_shape_str(images));
    if (images->dtype != GROVE_F32 && images->dtype != GROVE_U8)
        return gv_fail("%s: images are %s (expected f32 in [-1, 1] or u8)", op, grove_dtype_name(images->dtype));
    if (index < 0 || index >= b)
        return gv_fail("%s: image %lld out of range for images %s", op, (long long)index, gv_shape_str(images));
    if (max_out < 0 || (max_out > 0 && !out)) return gv_fail("%s: no room for detections", op);

    /* the detector reads pixels on the host: CUDA images are copied over */
    grove_tensor *c = gv_on_device(op, images, GROVE_CPU);
    if (!c) return -1;
    detector d = {.w = (int32_t)w, .h = (int32_t)h};
    int64_t npix = w * h;
    d.rgb = malloc(sizeof(float) * 3 * npix);
    d.label = malloc((size_t)npix);
    d.comp = malloc(sizeof(int32_t) * npix);
    d.stack = malloc(sizeof(int32_t) * npix);
    d.weight = malloc(sizeof(float) * npix);
    d.templ = malloc(sizeof(float) * npix);
    d.scratch = malloc(sizeof(float) * npix);
    grove_shapes_detection *found = NULL;
    int32_t result = -1;
    if (!d.rgb || !d.label || !d.comp || !d.stack || !d.weight || !d.templ || !d.scratch) {
        gv_fail("%s: out of memory for a %lldx%lld image", op, (long long)h, (long long)w);
        goto done;
    }
    for (int k = 0; k < 3; k++) d.bg[k] = sh_background[k] / 255.0f;
    for (int32_t col = 0; col < SH_NUM_COLORS; col++) {
        float n2 = 0;
        for (int k = 0; k < 3; k++) {
            d.dir[col][k] = sh_palette[col][k] / 255.0f - d.bg[k];
            n2 += d.dir[col][k] * d.dir[col][k];
        }
        d.inv_norm2[col] = 1.0f / n2;
    }
    load_image(&d, c, index);
    classify(&d);

    int64_t min_area = npix / 64 > 4 ? npix / 64 : 4;
    int32_t n = 0, cap = 16, ids = 0;
    found = malloc(sizeof *found * (size_t)cap);
    if (!found) {
        gv_fail("%s: out of memory", op);
        goto done;
    }
    for (int64_t p = 0; p < npix; p++) {
        if (d.label[p] < 0 || d.comp[p] >= 0) continue;
        int32_t box[4];
        int32_t id = ids++;
        if (flood(&d, p, id, box) < min_area) continue;
        if (n == cap) {
            grove_shapes_detection *grown = realloc(found, sizeof *found * (size_t)(cap * 2));
            if (!grown) {
                gv_fail("%s: out of memory", op);
                goto done;
            }
            found = grown;
            cap *= 2;
        }
        measure(&d, id, d.label[p], box, &found[n++]);
    }
    qsort(found, (size_t)n, sizeof *found, by_area);
    result = n < max_out ? n : max_out;
    if (result > 0) memcpy(out, found, sizeof *found * (size_t)result);

done:
    free(found);
    free(d.rgb);
    free(d.label);
    free(d.comp);
    free(d.stack);
    free(d.weight);
    free(d.templ);
    free(d.scratch);
    grove_tensor_release(c);
    return result;
}

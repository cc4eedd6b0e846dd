/*
 * image_resize.c — the centre-crop resize that feeds models: the centre
 * square of an image scaled to size × size, area averaging when shrinking,
 * bilinear between pixel centres when enlarging.
 */
#include "image.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How output index o of one axis reads the input: taps consecutive inputs
 * from first, with weights w[o * max_taps + t] summing to 1. */
typedef struct axis_map {
    int64_t *first;
    int32_t *taps;
    double *w;
    int32_t max_taps;
} axis_map;

static void axis_map_free(axis_map *m)
{
    free(m->first);
    free(m->taps);
    free(m->w);
}

/* n_in → n_out: box (area) averaging when shrinking, so every input pixel
 * counts in proportion to how much of it an output pixel covers; bilinear
 * between pixel centres when enlarging; a copy when the sizes match. */
static bool axis_map_init(axis_map *m, int64_t n_in, int64_t n_out)
{
    double r = (double)n_in / (double)n_out;
    m->max_taps = n_in > n_out ? (int32_t)ceil(r) + 1 : 2;
    m->first = calloc((size_t)n_out, sizeof *m->first);
    m->taps = calloc((size_t)n_out, sizeof *m->taps);
    m->w = calloc((size_t)n_out * (size_t)m->max_taps, sizeof *m->w);
    if (!m->first || !m->taps || !m->w) return false;
    for (int64_t o = 0; o < n_out; o++) {
        double *w = m->w + o * m->max_taps;
        if (n_in == n_out) {
            m->first[o] = o;
            m->taps[o] = 1;
            w[0] = 1;
        } else if (n_in > n_out) {
            /* Exact integer bounds of [o·n_in/n_out, (o+1)·n_in/n_out). */
            int64_t lo_num = o * n_in, hi_num = (o + 1) * n_in;
            int64_t i0 = lo_num / n_out, i1 = (hi_num + n_out - 1) / n_out; /* inputs i0 .. i1-1 */
            m->first[o] = i0;
            m->taps[o] = (int32_t)(i1 - i0);
            for (int64_t i = i0; i < i1; i++) {
                /* Overlap of [i, i+1) with the output's span, in units of 1/n_out. */
                int64_t a = i * n_out > lo_num ? i * n_out : lo_num;
                int64_t b = (i + 1) * n_out < hi_num ? (i + 1) * n_out : hi_num;
                w[i - i0] = (double)(b - a) / (double)n_in;
            }
        } else {
            double src = ((double)o + 0.5) * r - 0.5;
            if (src < 0) src = 0;
            int64_t i0 = (int64_t)floor(src);
            double f = src - (double)i0;
            if (i0 >= n_in - 1) {
                i0 = n_in - 1;
                f = 0;
            }
            m->first[o] = i0;
            m->taps[o] = f > 0 ? 2 : 1;
            w[0] = 1 - f;
            w[1] = f;
        }
    }
    return true;
}

static uint8_t round_u8(double v)
{
    if (!(v > 0)) return 0;
    if (v >= 255) return 255;
    return (uint8_t)floor(v + 0.5);
}

grove_tensor *grove_image_resize_crop(grove_tensor *image, int32_t size)
{
    const char *op = "image_resize_crop";
    if (!gv_check_live(op, image)) return NULL;
    if (image->dtype != GROVE_U8 || image->ndim != 3 || image->shape[2] != 3)
        return gv_fail_null("%s: expected a (H, W, 3) u8 image, got %s %s", op, grove_dtype_name(image->dtype),
                            gv_shape_str(image));
    if (size < 1 || size > 16384) return gv_fail_null("%s: size %d is out of range (1 to 16384)", op, size);
    if (image->shape[0] < 1 || image->shape[1] < 1)
        return gv_fail_null("%s: cannot resize an empty image %s", op, gv_shape_str(image));
    if (image->device != GROVE_CPU) return gv_no_backend(op, image);

    int64_t h = image->shape[0], w = image->shape[1];
    int64_t m = h < w ? h : w;                  /* side of the centre square */
    int64_t y0 = (h - m) / 2, x0 = (w - m) / 2; /* its top-left corner */
    int64_t n = size;
    const uint8_t *src = image->data;
    const int64_t *st = image->stride;

    axis_map map = {0};
    double *tmp = NULL; /* the square's rows, resized horizontally: (m, n, 3) */
    grove_tensor *out = NULL;
    if (!axis_map_init(&map, m, n) || !(tmp = malloc((size_t)(m * n * 3) * sizeof *tmp))) {
        gv_fail("%s: out of memory resizing %s to %d", op, gv_shape_str(image), size);
        goto done;
    }
    if (!(out = gv_image_new(n, n))) goto done;
    for (int64_t y = 0; y < m; y++) {
        const uint8_t *row = src + (y0 + y) * st[0];
        for (int64_t o = 0; o < n; o++) {
            const double *wt = map.w + o * map.max_taps;
            double acc[3] = {0, 0, 0};
            for (int32_t t = 0; t < map.taps[o]; t++) {
                const uint8_t *p = row + (x0 + map.first[o] + t) * st[1];
                for (int c = 0; c < 3; c++) acc[c] += wt[t] * p[c * st[2]];
            }
            for (int c = 0; c < 3; c++) tmp[(y * n + o) * 3 + c] = acc[c];
        }
    }
    uint8_t *dst = out->data;
    for (int64_t o = 0; o < n; o++) {
        const double *wt = map.w + o * map.max_taps;
        for (int64_t x = 0; x < n; x++)
            for (int c = 0; c < 3; c++) {
                double acc = 0;
                for (int32_t t = 0; t < map.taps[o]; t++) acc += wt[t] * tmp[((map.first[o] + t) * n + x) * 3 + c];
                dst[(o * n + x) * 3 + c] = round_u8(acc);
            }
    }
done:
    axis_map_free(&map);
    free(tmp);
    return out;
}

/* shape.c — concatenation and constant padding, as row-wise byte copies. */
#include "cpu.h"

#include <string.h>

void gv_cpu_cat_part(int64_t outer, int64_t src_row, int64_t dst_row, int64_t dst_off, const void *src, void *dst)
{
    if (outer == 0 || src_row == 0) return;
#pragma omp parallel for schedule(static) if (outer * src_row > 262144 && outer > 1)
    for (int64_t r = 0; r < outer; r++)
        memcpy((char *)dst + r * dst_row + dst_off, (const char *)src + r * src_row, (size_t)src_row);
}

/* Writes n copies of the esz-byte element at fill. */
static void fill_bytes(char *dst, int64_t n, int64_t esz, const void *fill)
{
    if (esz == 4) {
        uint32_t v;
        memcpy(&v, fill, 4);
        uint32_t *d = (uint32_t *)(void *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = v;
        return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * esz, fill, (size_t)esz);
}

void gv_cpu_pad(int32_t ndim, const int64_t *in_shape, const int64_t *out_shape, const int64_t *before,
                int64_t esz, const void *fill, const void *src, void *dst)
{
    if (ndim == 0) {
        memcpy(dst, src, (size_t)esz);
        return;
    }
    int64_t rows = 1;
    for (int32_t d = 0; d < ndim - 1; d++) rows *= out_shape[d];
    int64_t out_len = out_shape[ndim - 1], in_len = in_shape[ndim - 1], lead = before[ndim - 1];
    if (rows * out_len == 0) return;
    /* Each output row (all dimensions but the last) is either wholly padding
     * or the input row it covers, framed by padding on both sides. */
#pragma omp parallel for schedule(static) if (rows * out_len > 65536 && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        char *d = (char *)dst + r * out_len * esz;
        int64_t rem = r, src_row = 0, scale = 1;
        int inside = 1;
        for (int32_t k = ndim - 2; k >= 0; k--) {
            int64_t i = rem % out_shape[k] - before[k];
            rem /= out_shape[k];
            if (i < 0 || i >= in_shape[k]) {
                inside = 0;
                break;
            }
            src_row += i * scale;
            scale *= in_shape[k];
        }
        if (!inside || in_len == 0) {
            fill_bytes(d, out_len, esz, fill);
            continue;
        }
        fill_bytes(d, lead, esz, fill);
        memcpy(d + lead * esz, (const char *)src + src_row * in_len * esz, (size_t)(in_len * esz));
        fill_bytes(d + (lead + in_len) * esz, out_len - lead - in_len, esz, fill);
    }
}

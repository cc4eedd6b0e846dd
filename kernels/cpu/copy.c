/* copy.c — strided copies with dtype conversion, and fills. */
#include "cpu.h"
#include "parallel.h"
#include "convert.h"

#include <string.h>

/* Visits every row (all dimensions but the last) of a strided shape; the
 * callback handles one row of shape[ndim-1] elements. */
static int64_t outer_count(int32_t ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < ndim - 1; i++) n *= shape[i];
    return n;
}

static int64_t row_offset(int32_t ndim, const int64_t *shape, const int64_t *stride, int64_t row)
{
    int64_t off = 0;
    for (int32_t d = ndim - 2; d >= 0; d--) {
        off += (row % shape[d]) * stride[d];
        row /= shape[d];
    }
    return off;
}

void gv_cpu_copy(int32_t ndim, const int64_t *shape, void *dst, const int64_t *dst_stride, int32_t dst_dtype,
                 const void *src, const int64_t *src_stride, int32_t src_dtype)
{
    int64_t dsz = grove_dtype_size(dst_dtype), ssz = grove_dtype_size(src_dtype);
    if (ndim == 0) {
        gv_conv_store(dst, dst_dtype, 0, gv_conv_load(src, src_dtype, 0));
        if (dst_dtype == src_dtype) memcpy(dst, src, (size_t)dsz);
        return;
    }
    int64_t rows = outer_count(ndim, shape), len = shape[ndim - 1];
    int64_t ds = dst_stride[ndim - 1], ss = src_stride[ndim - 1];
    if (rows * len == 0) return;
    GV_PARALLEL_FOR(rows * len > 65536 && rows > 1,
        for (int64_t r = 0; r < rows; r++) {
            char *d = (char *)dst + row_offset(ndim, shape, dst_stride, r) * dsz;
            const char *s = (const char *)src + row_offset(ndim, shape, src_stride, r) * ssz;
            if (dst_dtype == src_dtype && ds == 1 && ss == 1) {
                memcpy(d, s, (size_t)(len * dsz));
            } else if (dst_dtype == GROVE_F32 && src_dtype == GROVE_F32) {
                float *df = (float *)d;
                const float *sf = (const float *)s;
                for (int64_t i = 0; i < len; i++) df[i * ds] = sf[i * ss];
            } else if (dst_dtype == src_dtype) {
                for (int64_t i = 0; i < len; i++) memcpy(d + i * ds * dsz, s + i * ss * ssz, (size_t)dsz);
            } else {
                for (int64_t i = 0; i < len; i++) gv_conv_store(d, dst_dtype, i * ds, gv_conv_load(s, src_dtype, i * ss));
            }
        });
}

void gv_cpu_fill(int32_t ndim, const int64_t *shape, void *data, const int64_t *stride, int32_t dtype, double value)
{
    /* One element converted once, then copied as bytes. */
    unsigned char elem[8];
    gv_conv_store(elem, dtype, 0, value);
    int64_t esz = grove_dtype_size(dtype);
    if (ndim == 0) {
        memcpy(data, elem, (size_t)esz);
        return;
    }
    int64_t rows = outer_count(ndim, shape), len = shape[ndim - 1], st = stride[ndim - 1];
    if (rows * len == 0) return;
    GV_PARALLEL_FOR(rows * len > 65536 && rows > 1,
        for (int64_t r = 0; r < rows; r++) {
            char *d = (char *)data + row_offset(ndim, shape, stride, r) * esz;
            if (dtype == GROVE_F32) {
                float f;
                memcpy(&f, elem, 4);
                float *df = (float *)d;
                for (int64_t i = 0; i < len; i++) df[i * st] = f;
            } else {
                for (int64_t i = 0; i < len; i++) memcpy(d + i * st * esz, elem, (size_t)esz);
            }
        });
}

/* shape.h — CPU kernels of this family (see cpu.h): joining and padding.
 * They move bytes, so they serve every dtype; sizes are in bytes where
 * noted, element counts elsewhere. */
#ifndef GROVE_KERNELS_CPU_SHAPE_H
#define GROVE_KERNELS_CPU_SHAPE_H

#include <stdint.h>

/* One input of a concatenation: src is contiguous, seen as `outer` rows of
 * src_row bytes; row r lands at dst + r * dst_row + dst_off. */
void gv_cpu_cat_part(int64_t outer, int64_t src_row, int64_t dst_row, int64_t dst_off, const void *src, void *dst);

/* Constant padding: dst (contiguous, out_shape) receives src (contiguous,
 * in_shape) at offset `before` in each dimension; every other element is a
 * copy of the esz bytes at fill. */
void gv_cpu_pad(int32_t ndim, const int64_t *in_shape, const int64_t *out_shape, const int64_t *before,
                int64_t esz, const void *fill, const void *src, void *dst);

#endif

/*
 * image.h — what the image files of core/io share: the decoders each format
 * provides to image_read.c, which picks one by the file's first bytes.
 */
#ifndef GROVE_IO_IMAGE_H
#define GROVE_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* A new contiguous u8 (h, w, 3) CPU tensor. */
grove_tensor *gv_image_new(int64_t h, int64_t w);

/* Decoders: an (H, W, 3) u8 tensor or NULL with an error naming op and name. */
extern const unsigned char gv_png_magic[8];
grove_tensor *gv_image_decode_png(const char *op, const char *name, const unsigned char *buf, size_t len);
/* min_side > 0 lets the DCT shrink the image while its short side stays >= min_side. */
grove_tensor *gv_image_decode_jpeg(const char *op, const char *name, const unsigned char *buf, size_t len,
                                   int32_t min_side);

#endif /* GROVE_IO_IMAGE_H */

/*
 * image_png.c — PNG files: decoding to (H, W, 3) u8 (alpha composited over
 * white) and writing grey, RGB or RGBA images, through lodepng (png.h).
 */
#include "file_atomic.h"
#include "gpu.h"
#include "image.h"
#include "png.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const unsigned char gv_png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Signature, then the IHDR chunk: length, "IHDR", width, height. The size
 * it declares is checked before lodepng allocates for it: against the
 * pixel limit, and against the file's length. Deflate expands by 1032:1 at
 * most and a pixel is one bit at the least (a 1-bit grey image), so len
 * bytes hold at most about 8 · 1032 · len pixels; a larger claim is a
 * decompression bomb or a damaged header. */
static bool png_header_ok(const char *op, const char *name, const unsigned char *buf, size_t len)
{
    const char *sep = name ? ": " : "";
    if (!name) name = "";
    if (len < 24 || memcmp(buf + 12, "IHDR", 4) != 0) {
        gv_fail("%s: %s%struncated PNG (no complete header)", op, name, sep);
        return false;
    }
    uint32_t w = be32(buf + 16), h = be32(buf + 20);
    uint64_t hw = (uint64_t)w * h;
    if (hw > GROVE_IMAGE_MAX_PIXELS) {
        gv_fail("%s: %s%sPNG of %u x %u pixels is larger than the %d-pixel limit", op, name, sep, w, h,
                GROVE_IMAGE_MAX_PIXELS);
        return false;
    }
    if (hw > (uint64_t)len * 8 * 1040) {
        gv_fail("%s: %s%sPNG declares %u x %u pixels, more than %zu bytes of deflate data can hold", op, name, sep, w,
                h, len);
        return false;
    }
    return true;
}

grove_tensor *gv_image_decode_png(const char *op, const char *name, const unsigned char *buf, size_t len)
{
    if (!png_header_ok(op, name, buf, len)) return NULL;
    unsigned char *rgba = NULL;
    unsigned w = 0, h = 0;
    unsigned err = gv_png_decode_rgba(&rgba, &w, &h, buf, len);
    if (err) {
        free(rgba);
        return gv_fail_null("%s: %s: corrupt or truncated PNG (lodepng: %s)", op, name, gv_png_error_text(err));
    }
    grove_tensor *out = gv_image_new(h, w);
    if (!out) {
        free(rgba);
        return NULL;
    }
    /* Alpha composited over white: a transparent background reads as the
     * white page it is usually shown on, not as black. */
    uint8_t *dst = out->data;
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) {
        unsigned a = rgba[4 * i + 3];
        for (int c = 0; c < 3; c++) dst[3 * i + c] = (uint8_t)((rgba[4 * i + c] * a + 255 * (255 - a) + 127) / 255);
    }
    free(rgba);
    return out;
}

/* ---- writing ------------------------------------------------------------------ */

grove_status grove_image_write_png(const char *path, grove_tensor *image)
{
    return grove_image_write_png_text(path, image, NULL, NULL, 0);
}

grove_status grove_image_write_png_text(const char *path, grove_tensor *image, const char *const *keys,
                                        const char *const *values, int32_t n)
{
    const char *op = "image_write_png";
    if (!path || !path[0]) return gv_fail("%s: expected a file path", op);
    if (n < 0 || (n > 0 && (!keys || !values))) return gv_fail("%s: %s: bad text chunk list", op, path);
    for (int32_t i = 0; i < n; i++) {
        size_t kl = keys[i] ? strlen(keys[i]) : 0;
        if (kl < 1 || kl > 79 || !values[i])
            return gv_fail("%s: %s: text chunk %d: a PNG keyword is 1 to 79 bytes, with a value", op, path, (int)i + 1);
    }
    if (!gv_check_live(op, image)) return -1;
    int64_t channels = image->ndim == 2 ? 1 : image->ndim == 3 ? image->shape[2] : 0;
    if ((image->dtype != GROVE_U8 && image->dtype != GROVE_F32) ||
        !(channels == 1 || channels == 3 || channels == 4))
        return gv_fail("%s: %s: expected a u8 or f32 image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got "
                       "%s %s",
                       op, path, grove_dtype_name(image->dtype), gv_shape_str(image));
    int64_t h = image->shape[0], w = image->shape[1];
    if (h < 1 || w < 1 || h > 0x7fffffff || w > 0x7fffffff || h * w > GROVE_IMAGE_MAX_PIXELS)
        return gv_fail("%s: %s: cannot write an image of shape %s", op, path, gv_shape_str(image));
    /* PNG bytes are made on the host: a CUDA image is copied over first */
    grove_tensor *host = gv_on_device(op, image, GROVE_CPU);
    if (!host) return -1;
    grove_tensor *px = host->dtype == GROVE_F32 ? grove_image_to_u8(host) : host;
    if (px != host) grove_tensor_release(host);
    if (!px) return -1;
    unsigned char *png = NULL;
    size_t png_len = 0;
    unsigned err = gv_png_encode_text(&png, &png_len, px->data, (unsigned)w, (unsigned)h, (int)channels, keys, values, n);
    grove_tensor_release(px);
    if (err) {
        free(png);
        return gv_fail("%s: %s: PNG encoding failed (lodepng: %s)", op, path, gv_png_error_text(err));
    }
    grove_status rc = gv_file_write_atomic(op, path, png, png_len);
    free(png);
    return rc;
}


int64_t grove_png_text(const void *data, int64_t size, char *buf, int64_t cap)
{
    const char *op = "png_text";
    if (!data || size < 8 || memcmp(data, gv_png_magic, 8) != 0) {
        gv_fail("%s: not a PNG (no PNG signature)", op);
        return -1;
    }
    /* lodepng decodes the pixels to reach the chunks after them: the size
     * is checked first, as for reading the image */
    if (!png_header_ok(op, NULL, data, (size_t)size)) return -1;
    char *text = NULL;
    size_t len = 0;
    unsigned err = gv_png_read_text(data, (size_t)size, &text, &len);
    if (err) {
        gv_fail("%s: corrupt or truncated PNG (lodepng: %s)", op, gv_png_error_text(err));
        return -1;
    }
    if (buf && cap >= (int64_t)len) memcpy(buf, text, len);
    free(text);
    return (int64_t)len;
}

/*
 * png.h — lodepng behind a C interface. Debian builds liblodepng from
 * lodepng.cc as C++, so its functions have C++ linkage; png.cc includes
 * lodepng.h as C++ and gives the C code these three functions.
 */
#ifndef GROVE_IO_PNG_H
#define GROVE_IO_PNG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decodes a PNG to 8-bit RGBA; *out is malloc'd (free it with free()).
 * Returns 0 or a lodepng error code. */
unsigned gv_png_decode_rgba(unsigned char **out, unsigned *w, unsigned *h, const unsigned char *in, size_t len);
/* Encodes 8-bit pixels of 1 (grey), 3 (RGB) or 4 (RGBA) channels; *out is
 * malloc'd. Returns 0 or a lodepng error code. */
unsigned gv_png_encode(unsigned char **out, size_t *outlen, const unsigned char *pixels, unsigned w, unsigned h,
                       int channels);
/* The same with n text chunks keys[i] = values[i] (NUL-terminated): tEXt
 * when the value is ASCII, iTXt (UTF-8) otherwise, never compressed. */
unsigned gv_png_encode_text(unsigned char **out, size_t *outlen, const unsigned char *pixels, unsigned w, unsigned h,
                            int channels, const char *const *keys, const char *const *values, int n);
/* The text chunks (tEXt, zTXt, iTXt) of a PNG as "key\0value\0" pairs in
 * file order (tEXt and zTXt first, then iTXt); *out is malloc'd. */
unsigned gv_png_read_text(const unsigned char *in, size_t len, char **out, size_t *outlen);
/* lodepng's text for an error code. */
const char *gv_png_error_text(unsigned code);

#ifdef __cplusplus
}
#endif

#endif /* GROVE_IO_PNG_H */

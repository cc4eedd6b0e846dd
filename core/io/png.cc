// png.cc — the C interface of png.h over lodepng, bound through the
// lodepng.h that CMake finds (Debian's liblodepng-dev). Compiled as C++ so the
// calls resolve to the library's C++-linkage functions by the compiler's own
// name mangling, not by names written out by hand.
#include "png.h"

#include <lodepng.h>

unsigned gv_png_decode_rgba(unsigned char **out, unsigned *w, unsigned *h, const unsigned char *in, size_t len)
{
    return lodepng_decode_memory(out, w, h, in, len, LCT_RGBA, 8);
}

unsigned gv_png_encode(unsigned char **out, size_t *outlen, const unsigned char *pixels, unsigned w, unsigned h,
                       int channels)
{
    LodePNGColorType type = channels == 4 ? LCT_RGBA : channels == 3 ? LCT_RGB : LCT_GREY;
    return lodepng_encode_memory(out, outlen, pixels, w, h, type, 8);
}

const char *gv_png_error_text(unsigned code) { return lodepng_error_text(code); }

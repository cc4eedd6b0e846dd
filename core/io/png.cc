// png.cc — the C interface of png.h over lodepng, bound through the
// lodepng.h that CMake finds (Debian's liblodepng-dev). Compiled as C++ so the
// calls resolve to the library's C++-linkage functions by the compiler's own
// name mangling, not by names written out by hand.
#include "png.h"

#include <lodepng.h>

#include <cstdlib>
#include <cstring>

unsigned gv_png_decode_rgba(unsigned char **out, unsigned *w, unsigned *h, const unsigned char *in, size_t len)
{
    return lodepng_decode_memory(out, w, h, in, len, LCT_RGBA, 8);
}

unsigned gv_png_encode(unsigned char **out, size_t *outlen, const unsigned char *pixels, unsigned w, unsigned h,
                       int channels)
{
    return gv_png_encode_text(out, outlen, pixels, w, h, channels, NULL, NULL, 0);
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

unsigned gv_png_encode_text(unsigned char **out, size_t *outlen, const unsigned char *pixels, unsigned w, unsigned h,
                            int channels, const char *const *keys, const char *const *values, int n)
{
    LodePNGColorType type = channels == 4 ? LCT_RGBA : channels == 3 ? LCT_RGB : LCT_GREY;
    LodePNGState state;
    lodepng_state_init(&state);
    state.info_raw.colortype = type;
    state.info_raw.bitdepth = 8;
    state.info_png.color.colortype = type;
    state.info_png.color.bitdepth = 8;
    /* plain tEXt / iTXt chunks, readable by any tool, rather than zTXt */
    state.encoder.text_compression = 0;
    unsigned err = 0;
    for (int i = 0; i < n && !err; i++) {
        /* tEXt holds Latin-1: UTF-8 text (a prompt in any language) goes
         * into an iTXt chunk instead */
        if (is_ascii(values[i])) err = lodepng_add_text(&state.info_png, keys[i], values[i]);
        else err = lodepng_add_itext(&state.info_png, keys[i], "", "", values[i]);
    }
    if (!err) err = lodepng_encode(out, outlen, pixels, w, h, &state);
    lodepng_state_cleanup(&state);
    return err;
}

unsigned gv_png_read_text(const unsigned char *in, size_t len, char **out, size_t *outlen)
{
    LodePNGState state;
    lodepng_state_init(&state);
    state.decoder.read_text_chunks = 1;
    unsigned char *pixels = NULL;
    unsigned w = 0, h = 0;
    unsigned err = lodepng_decode(&pixels, &w, &h, &state, in, len);
    std::free(pixels);
    *out = NULL;
    *outlen = 0;
    if (!err) {
        size_t total = 0;
        for (size_t i = 0; i < state.info_png.text_num; i++)
            total += std::strlen(state.info_png.text_keys[i]) + std::strlen(state.info_png.text_strings[i]) + 2;
        for (size_t i = 0; i < state.info_png.itext_num; i++)
            total += std::strlen(state.info_png.itext_keys[i]) + std::strlen(state.info_png.itext_strings[i]) + 2;
        char *buf = (char *)std::malloc(total ? total : 1);
        if (!buf) {
            err = 83; /* lodepng's "memory allocation failed" */
        } else {
            size_t at = 0;
            for (int pass = 0; pass < 2; pass++) {
                size_t count = pass ? state.info_png.itext_num : state.info_png.text_num;
                char **k = pass ? state.info_png.itext_keys : state.info_png.text_keys;
                char **v = pass ? state.info_png.itext_strings : state.info_png.text_strings;
                for (size_t i = 0; i < count; i++) {
                    size_t kl = std::strlen(k[i]) + 1, vl = std::strlen(v[i]) + 1;
                    std::memcpy(buf + at, k[i], kl);
                    std::memcpy(buf + at + kl, v[i], vl);
                    at += kl + vl;
                }
            }
            *out = buf;
            *outlen = total;
        }
    }
    lodepng_state_cleanup(&state);
    return err;
}

const char *gv_png_error_text(unsigned code) { return lodepng_error_text(code); }

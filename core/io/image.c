/*
 * image.c — image files: PNG (lodepng) and JPEG (libjpeg-turbo) decoding to
 * (H, W, 3) u8 tensors, PNG writing, the centre-crop resize that feeds models,
 * u8 ↔ f32 conversion, and listing the images of a folder.
 *
 * The format is decided by the file's first bytes (PNG's 8-byte signature,
 * JPEG's FF D8 FF), never by its name, so a mislabelled or broken file gives
 * a clear error instead of garbage pixels.
 *
 * libjpeg reports fatal errors through error_exit, whose default calls
 * exit(). Here error_exit longjmps back into decode_jpeg, the function that
 * called setjmp, so the jump never leaves this file and never crosses an FFI
 * frame. libjpeg reports a file that ends early only as a warning (and then
 * invents an end-of-image marker); those warnings are turned into errors too,
 * so a truncated JPEG is refused rather than decoded half grey.
 */
#define _GNU_SOURCE
#include "gpu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <lodepng.h>

/* Debian builds liblodepng from lodepng.cpp as C++, so its functions carry
 * C++ mangled names although lodepng.h declares them for C. These labels
 * bind the few functions used here to the names the library exports. */
unsigned lodepng_decode_memory(unsigned char **out, unsigned *w, unsigned *h, const unsigned char *in,
                               size_t insize, LodePNGColorType colortype, unsigned bitdepth)
    __asm__("_Z21lodepng_decode_memoryPPhPjS1_PKhm16LodePNGColorTypej");
unsigned lodepng_encode_memory(unsigned char **out, size_t *outsize, const unsigned char *image, unsigned w,
                               unsigned h, LodePNGColorType colortype, unsigned bitdepth)
    __asm__("_Z21lodepng_encode_memoryPPhPmPKhjj16LodePNGColorTypej");
const char *lodepng_error_text(unsigned code) __asm__("_Z18lodepng_error_textj");

/* Files above this are not images anyone trains on; refuse before reading. */
#define IMAGE_MAX_FILE_BYTES (1ll << 30)

/* ---- reading files ---------------------------------------------------------- */

/* The whole file in a malloc'd buffer; errors name op and path. */
static unsigned char *read_file(const char *op, const char *path, size_t *len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return gv_fail_null("%s: %s: no such file", op, path);
        return gv_fail_null("%s: %s: %s", op, path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return gv_fail_null("%s: %s: is a directory, not an image file", op, path);
    if (!S_ISREG(st.st_mode)) return gv_fail_null("%s: %s: not a regular file", op, path);
    if (st.st_size == 0) return gv_fail_null("%s: %s: empty file, not an image", op, path);
    if (st.st_size > IMAGE_MAX_FILE_BYTES)
        return gv_fail_null("%s: %s: %lld bytes is too large for an image file", op, path, (long long)st.st_size);
    FILE *f = fopen(path, "rb");
    if (!f) return gv_fail_null("%s: %s: cannot open: %s", op, path, strerror(errno));
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n);
    if (!buf) {
        fclose(f);
        return gv_fail_null("%s: %s: out of memory reading %zu bytes", op, path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (got != n) {
        free(buf);
        if (err) return gv_fail_null("%s: %s: read error: %s", op, path, strerror(err));
        return gv_fail_null("%s: %s: file shrank while reading", op, path);
    }
    *len = n;
    return buf;
}

static grove_tensor *new_image(int64_t h, int64_t w)
{
    int64_t shape[3] = {h, w, 3};
    return gv_empty(3, shape, GROVE_U8, GROVE_CPU);
}

/* ---- PNG ---------------------------------------------------------------------- */

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static grove_tensor *decode_png(const char *op, const char *name, const unsigned char *buf, size_t len)
{
    /* Signature, then the IHDR chunk: length, "IHDR", width, height. Check
     * the size before lodepng allocates for it. */
    if (len < 24 || memcmp(buf + 12, "IHDR", 4) != 0)
        return gv_fail_null("%s: %s: truncated PNG (no complete header)", op, name);
    uint64_t hw = (uint64_t)be32(buf + 16) * be32(buf + 20);
    if (hw > GROVE_IMAGE_MAX_PIXELS)
        return gv_fail_null("%s: %s: PNG of %u x %u pixels is larger than the %d-pixel limit", op, name,
                            be32(buf + 16), be32(buf + 20), GROVE_IMAGE_MAX_PIXELS);
    unsigned char *rgba = NULL;
    unsigned w = 0, h = 0;
    unsigned err = lodepng_decode_memory(&rgba, &w, &h, buf, len, LCT_RGBA, 8);
    if (err) {
        free(rgba);
        return gv_fail_null("%s: %s: corrupt or truncated PNG (lodepng: %s)", op, name, lodepng_error_text(err));
    }
    grove_tensor *out = new_image(h, w);
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

/* ---- JPEG --------------------------------------------------------------------- */

typedef struct jpeg_guard {
    struct jpeg_error_mgr mgr; /* first, so libjpeg's err pointer is the guard's */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_guard;

static void jpeg_fail(j_common_ptr c)
{
    jpeg_guard *g = (jpeg_guard *)c->err;
    c->err->format_message(c, g->msg);
    longjmp(g->jump, 1);
}

/* Warnings that mean the data ended early or is damaged fail the decode;
 * other warnings (stray bytes between markers, which many cameras write)
 * and trace messages are ignored, never printed. */
static void jpeg_message(j_common_ptr c, int level)
{
    if (level >= 0) return;
    int code = c->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC) jpeg_fail(c);
    c->err->num_warnings++;
}

static void jpeg_silent(j_common_ptr c) { (void)c; }

static grove_tensor *decode_jpeg(const char *op, const char *name, const unsigned char *buf, size_t len,
                                 int32_t min_side)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_guard guard;
    /* Assigned after setjmp and read after longjmp, hence volatile. */
    grove_tensor *volatile out = NULL;
    unsigned char *volatile cmyk_row = NULL;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&guard.mgr);
    guard.mgr.error_exit = jpeg_fail;
    guard.mgr.emit_message = jpeg_message;
    guard.mgr.output_message = jpeg_silent;
    guard.msg[0] = 0;
    if (setjmp(guard.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(cmyk_row);
        grove_tensor_release(out);
        return gv_fail_null("%s: %s: corrupt or truncated JPEG (libjpeg: %s)", op, name, guard.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);

    uint64_t hw = (uint64_t)cinfo.image_width * cinfo.image_height;
    if (hw > GROVE_IMAGE_MAX_PIXELS) {
        gv_fail("%s: %s: JPEG of %u x %u pixels is larger than the %d-pixel limit", op, name, cinfo.image_width,
                cinfo.image_height, GROVE_IMAGE_MAX_PIXELS);
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    if (min_side > 0) {
        /* The DCT can shrink by 1/2, 1/4 or 1/8 almost for free. */
        unsigned short_side = cinfo.image_width < cinfo.image_height ? cinfo.image_width : cinfo.image_height;
        for (unsigned d = 8; d >= 2; d /= 2)
            if ((short_side + d - 1) / d >= (unsigned)min_side) {
                cinfo.scale_num = 1;
                cinfo.scale_denom = d;
                break;
            }
    }
    jpeg_start_decompress(&cinfo);
    unsigned w = cinfo.output_width, h = cinfo.output_height;
    out = new_image(h, w);
    if (!out) {
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    if (cmyk && !(cmyk_row = malloc((size_t)w * 4))) {
        gv_fail("%s: %s: out of memory", op, name);
        jpeg_destroy_decompress(&cinfo);
        grove_tensor_release(out);
        return NULL;
    }
    uint8_t *dst = out->data;
    while (cinfo.output_scanline < h) {
        uint8_t *line = dst + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW row = cmyk ? cmyk_row : line;
        jpeg_read_scanlines(&cinfo, &row, 1);
        if (!cmyk) continue;
        /* Adobe's CMYK JPEGs (nearly all of them) store inverted values. */
        bool inverted = cinfo.saw_Adobe_marker;
        for (unsigned x = 0; x < w; x++) {
            unsigned k = inverted ? cmyk_row[4 * x + 3] : 255u - cmyk_row[4 * x + 3];
            for (int c = 0; c < 3; c++) {
                unsigned v = inverted ? cmyk_row[4 * x + c] : 255u - cmyk_row[4 * x + c];
                line[3 * x + c] = (uint8_t)((v * k + 127) / 255);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    return out;
}

/* ---- decoding entry points ---------------------------------------------------- */

static grove_tensor *decode(const char *op, const char *name, const unsigned char *buf, size_t len,
                            int32_t min_side)
{
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0) return decode_png(op, name, buf, len);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return decode_jpeg(op, name, buf, len, min_side);
    if (len < 8 && memcmp(buf, png_magic, len) == 0) return gv_fail_null("%s: %s: truncated PNG", op, name);
    char head[3 * 8 + 1] = {0};
    for (size_t i = 0, at = 0; i < len && i < 8; i++) at += (size_t)snprintf(head + at, sizeof head - at, i ? " %02x" : "%02x", buf[i]);
    return gv_fail_null("%s: %s: not a PNG or JPEG file (it starts with bytes %s)", op, name, head);
}

grove_tensor *grove_image_decode(const void *data, int64_t size, const char *name)
{
    const char *op = "image_decode";
    if (!name) name = "(memory)";
    if (!data || size <= 0) return gv_fail_null("%s: %s: no data", op, name);
    if (size > IMAGE_MAX_FILE_BYTES) return gv_fail_null("%s: %s: %lld bytes is too large", op, name, (long long)size);
    return decode(op, name, data, (size_t)size, 0);
}

static grove_tensor *read_image(const char *op, const char *path, int32_t min_side)
{
    if (!path) return gv_fail_null("%s: expected a file path, got NULL", op);
    size_t len = 0;
    unsigned char *buf = read_file(op, path, &len);
    if (!buf) return NULL;
    grove_tensor *out = decode(op, path, buf, len, min_side);
    free(buf);
    return out;
}

grove_tensor *grove_image_read(const char *path) { return read_image("image_read", path, 0); }

grove_tensor *grove_image_read_reduced(const char *path, int32_t min_side)
{
    if (min_side < 1) return gv_fail_null("image_read_reduced: min_side must be at least 1, got %d", min_side);
    return read_image("image_read_reduced", path, min_side);
}

/* ---- u8 <-> f32 ----------------------------------------------------------------- */

static uint8_t f32_to_u8(float x)
{
    double v = ((double)x + 1.0) * 127.5;
    if (!(v > 0)) return 0; /* also NaN */
    if (v >= 255) return 255;
    return (uint8_t)floor(v + 0.5);
}

grove_tensor *grove_image_to_u8(grove_tensor *x)
{
    const char *op = "image_to_u8";
    if (!gv_check_f32(op, x)) return NULL;
    if (x->device != GROVE_CPU) return gv_no_backend(op, x);
    grove_tensor *xc = gv_contiguous_data(x);
    if (!xc) return NULL;
    grove_tensor *out = gv_empty(x->ndim, x->shape, GROVE_U8, GROVE_CPU);
    if (out) {
        const float *s = xc->data;
        uint8_t *d = out->data;
        int64_t n = grove_tensor_numel(x);
        for (int64_t i = 0; i < n; i++) d[i] = f32_to_u8(s[i]);
    }
    grove_tensor_release(xc);
    return out;
}

grove_tensor *grove_image_to_f32(grove_tensor *x)
{
    const char *op = "image_to_f32";
    if (!gv_check_live(op, x)) return NULL;
    if (x->dtype != GROVE_U8)
        return gv_fail_null("%s: expected a u8 tensor, got %s %s", op, grove_dtype_name(x->dtype), gv_shape_str(x));
    if (x->device != GROVE_CPU) return gv_no_backend(op, x);
    grove_tensor *xc = gv_contiguous_data(x);
    if (!xc) return NULL;
    grove_tensor *out = gv_empty(x->ndim, x->shape, GROVE_F32, GROVE_CPU);
    if (out) {
        const uint8_t *s = xc->data;
        float *d = out->data;
        int64_t n = grove_tensor_numel(x);
        for (int64_t i = 0; i < n; i++) d[i] = (float)s[i] / 127.5f - 1.0f;
    }
    grove_tensor_release(xc);
    return out;
}

/* ---- PNG writing ------------------------------------------------------------------ */

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        c += k;
        n -= (size_t)k;
    }
    return true;
}

/* Writes bytes to path + ".tmp", syncs, and renames it over path. */
static grove_status write_atomic(const char *op, const char *path, const void *bytes, size_t n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return gv_fail("%s: %s: out of memory", op, path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    grove_status rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        if (errno == ENOENT) gv_fail("%s: %s: its directory does not exist", op, path);
        else gv_fail("%s: %s: cannot create %s: %s", op, path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (!write_all(fd, bytes, n)) {
        gv_fail("%s: %s: cannot write %s: %s", op, path, tmp, strerror(errno));
    } else if (fsync(fd) != 0) {
        gv_fail("%s: %s: cannot sync %s: %s", op, path, tmp, strerror(errno));
    } else if (close(fd) != 0) {
        fd = -1;
        gv_fail("%s: %s: cannot close %s: %s", op, path, tmp, strerror(errno));
    } else {
        fd = -1;
        if (rename(tmp, path) != 0) gv_fail("%s: %s: cannot rename %s over it: %s", op, path, tmp, strerror(errno));
        else rc = 0;
    }
    if (fd >= 0) close(fd);
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

grove_status grove_image_write_png(const char *path, grove_tensor *image)
{
    const char *op = "image_write_png";
    if (!path || !path[0]) return gv_fail("%s: expected a file path", op);
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
    static const LodePNGColorType types[5] = {LCT_GREY, LCT_GREY, LCT_RGB, LCT_RGB, LCT_RGBA};
    unsigned char *png = NULL;
    size_t png_len = 0;
    unsigned err = lodepng_encode_memory(&png, &png_len, px->data, (unsigned)w, (unsigned)h, types[channels], 8);
    grove_tensor_release(px);
    if (err) {
        free(png);
        return gv_fail("%s: %s: PNG encoding failed (lodepng: %s)", op, path, lodepng_error_text(err));
    }
    grove_status rc = write_atomic(op, path, png, png_len);
    free(png);
    return rc;
}

/* ---- resize and centre crop ---------------------------------------------------- */

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
    if (!(out = new_image(n, n))) goto done;
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

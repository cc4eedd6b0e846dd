/*
 * image_jpeg.c — JPEG decoding through libjpeg-turbo to (H, W, 3) u8, CMYK
 * included, optionally shrunk by the DCT for a reduced read.
 *
 * libjpeg reports fatal errors through error_exit, whose default calls
 * exit(). Here error_exit longjmps back into gv_image_decode_jpeg, the
 * function that called setjmp, so the jump never leaves this file and never
 * crosses an FFI frame. libjpeg reports a file that ends early only as a
 * warning (and then invents an end-of-image marker); those warnings are
 * turned into errors too, so a truncated JPEG is refused rather than decoded
 * half grey.
 */
#include "image.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

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

/* Memory libjpeg may use for its own work arrays: enough for a progressive
 * image at the pixel limit's usual shapes (2 bytes per coefficient, 64 per
 * 8×8 block, 1.5 blocks per 64 pixels with 4:2:0 chroma: 3 bytes a pixel). */
#define JPEG_MAX_WORK_BYTES (1l << 30)

/* A Huffman-coded block costs at least one bit for its DC code and, in a
 * sequential scan, one more for its AC codes (an end-of-block code at the
 * least: no Huffman code is shorter than a bit). A progressive image sends
 * each block's DC in a scan of its own, one bit at the least. Counting only
 * the blocks of the component at full resolution (the widest sampling
 * factors) gives a bound no valid file exceeds. Arithmetic coding can go
 * below a bit per block and gets no such bound, only the work-memory one. */
static bool jpeg_size_implausible(const struct jpeg_decompress_struct *c, size_t len)
{
    if (c->arith_code) return false;
    uint64_t blocks = (uint64_t)((c->image_width + 7) / 8) * ((c->image_height + 7) / 8);
    uint64_t bits_per_block = c->progressive_mode ? 1 : 2;
    return blocks * bits_per_block > (uint64_t)len * 8;
}

grove_tensor *gv_image_decode_jpeg(const char *op, const char *name, const unsigned char *buf, size_t len,
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
    /* The header's size is only a claim: tie it to the bytes that follow
     * before anything is allocated for it, so that a few hundred bytes
     * cannot ask for gigabytes. */
    if (jpeg_size_implausible(&cinfo, len)) {
        gv_fail("%s: %s: JPEG declares %u x %u pixels, more than %zu bytes of Huffman-coded data can hold", op,
                name, cinfo.image_width, cinfo.image_height, len);
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    /* libjpeg's own buffers (a progressive image's coefficients: 2 bytes per
     * coefficient of every block) are bounded too; past it libjpeg fails
     * with "backing store not supported" instead of allocating. */
    cinfo.mem->max_memory_to_use = JPEG_MAX_WORK_BYTES;
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
    out = gv_image_new(h, w);
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


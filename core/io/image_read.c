/*
 * image_read.c — reading image files: the whole file into memory, then the
 * decoder its first bytes name (PNG's 8-byte signature, JPEG's FF D8 FF),
 * never its file name, so a mislabelled or broken file gives a clear error
 * instead of garbage pixels.
 */
#include "image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Files above this are not images anyone trains on; refuse before reading. */
#define IMAGE_MAX_FILE_BYTES (1ll << 30)

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

grove_tensor *gv_image_new(int64_t h, int64_t w)
{
    int64_t shape[3] = {h, w, 3};
    return gv_empty(3, shape, GROVE_U8, GROVE_CPU);
}

static grove_tensor *decode(const char *op, const char *name, const unsigned char *buf, size_t len,
                            int32_t min_side)
{
    if (len >= 8 && memcmp(buf, gv_png_magic, 8) == 0) return gv_image_decode_png(op, name, buf, len);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return gv_image_decode_jpeg(op, name, buf, len, min_side);
    if (len < 8 && memcmp(buf, gv_png_magic, len) == 0) return gv_fail_null("%s: %s: truncated PNG", op, name);
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


/*
 * fuzz_image.c — PNG and JPEG decoding from memory (core/io/image_*.c on
 * lodepng and libjpeg-turbo), the way image folders and grove.image.read
 * meet a file: by content, whatever its name. Built twice, with FUZZ_NAME
 * "input.png" and "input.jpg", so each format has its own target and corpus.
 */
#include "grove.h"

#ifndef FUZZ_NAME
#define FUZZ_NAME "input.png"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    grove_tensor *t = grove_image_decode(data, (int64_t)size, FUZZ_NAME);
    if (t) grove_tensor_release(t);
    return 0;
}

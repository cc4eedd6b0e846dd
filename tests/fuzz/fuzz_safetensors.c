/*
 * fuzz_safetensors.c — a safetensors file (8-byte header length, JSON
 * header, data) through the reader: open, every name, info, stored dtype,
 * metadata, and every tensor read. Any input may be refused with an error;
 * none may crash, overrun or leak.
 */
#include "fuzz_file.h"
#include "grove.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size, ".safetensors");
    grove_safetensors *f = grove_safetensors_open(path);
    if (!f) return 0;
    int64_t n = grove_safetensors_count(f);
    for (int64_t i = 0; i < n; i++) {
        const char *name = grove_safetensors_name(f, i);
        int32_t dtype, ndim;
        int64_t shape[GROVE_MAX_DIMS];
        if (grove_safetensors_info(f, name, &dtype, &ndim, shape) != 0) abort(); /* a listed name has info */
        (void)grove_safetensors_stored_dtype(f, name);
        grove_tensor *t = grove_safetensors_get(f, name);
        if (t) grove_tensor_release(t);
    }
    (void)grove_safetensors_get(f, "no such tensor");
    int64_t m = grove_safetensors_metadata_count(f);
    for (int64_t i = 0; i < m; i++) {
        const char *key = grove_safetensors_metadata_key(f, i);
        if (!grove_safetensors_metadata(f, key)) abort(); /* a listed key has a value */
    }
    grove_safetensors_close(f);
    return 0;
}

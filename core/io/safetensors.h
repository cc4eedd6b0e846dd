/*
 * safetensors.h — what the safetensors reader (safetensors.c) and writer
 * (safetensors_writer.c) share.
 */
#ifndef GROVE_IO_SAFETENSORS_H
#define GROVE_IO_SAFETENSORS_H

#include <stdint.h>

/* The reference implementation refuses larger headers. */
#define ST_MAX_HEADER 100000000ull
#define ST_METADATA_KEY "__metadata__"

/* The file's name for a grove dtype ("F32", ...), NULL for an unknown one. */
const char *gv_st_dtype_name(int32_t dtype);

#endif

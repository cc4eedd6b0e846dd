/*
 * file_atomic.h — writing a file so that no reader ever sees half of it and
 * a failed write never destroys the file it was replacing: the bytes go to
 * path + ".tmp", which is synced and then renamed over path. Safetensors
 * files (streamed, tensor by tensor), PNG images and, through
 * grove_file_write_atomic, the Lua layer's text files all go through here.
 */
#ifndef GROVE_IO_FILE_ATOMIC_H
#define GROVE_IO_FILE_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

typedef struct gv_atomic_file {
    char *path;     /* the file to replace */
    char *tmp;      /* path + ".tmp", being written */
    int fd;         /* -1 when not open */
} gv_atomic_file;

/* Creates path + ".tmp". false with an error naming op and path ("directory
 * 'd' does not exist", "cannot create ..."); nothing is created then. */
bool gv_atomic_open(gv_atomic_file *f, const char *op, const char *path);
bool gv_atomic_write(gv_atomic_file *f, const char *op, const void *data, size_t n);
/* Syncs and closes the temporary, renames it over path and syncs the
 * directory. On failure the temporary is removed. Either way f is released. */
bool gv_atomic_commit(gv_atomic_file *f, const char *op);
/* Closes and removes the temporary and releases f; harmless on a released or
 * zeroed one. */
void gv_atomic_abort(gv_atomic_file *f);

/* The three steps for bytes already in memory. */
grove_status gv_file_write_atomic(const char *op, const char *path, const void *data, size_t n);

#endif /* GROVE_IO_FILE_ATOMIC_H */

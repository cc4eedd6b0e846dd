/*
 * fuzz_file.h — the loaders under test take a path, so each input is
 * written to one file per process (in $TMPDIR, removed at exit) and the
 * loader opens that. One header, shared by the libFuzzer targets.
 */
#ifndef GROVE_FUZZ_FILE_H
#define GROVE_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_path[512];

static void fuzz_file_remove(void) { if (fuzz_path[0]) unlink(fuzz_path); }

/* Writes data to this process's input file; returns its path. */
static const char *fuzz_file_write(const uint8_t *data, size_t size, const char *suffix)
{
    if (!fuzz_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_path, sizeof fuzz_path, "%s/grove-fuzz-%ld%s", tmp && tmp[0] ? tmp : "/tmp", (long)getpid(),
                 suffix);
        atexit(fuzz_file_remove);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return fuzz_path;
}

#endif

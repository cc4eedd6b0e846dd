/* scratch.h — a scratch directory per test and small file helpers, shared by
 * the Criterion tests that write files. Include after defining _GNU_SOURCE
 * (nftw) and after helpers.h; use make_dir/remove_dir as .init/.fini. */
#ifndef GROVE_TEST_SCRATCH_H
#define GROVE_TEST_SCRATCH_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static inline void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/grove_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static inline int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline void remove_dir(void) { nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

/* A path inside the scratch directory (one of 16 rotating buffers). */
static inline const char *at(const char *name)
{
    static char bufs[16][256];
    static int next;
    char *b = bufs[next];
    next = (next + 1) % 16;
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static inline bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* Reads a whole file into a malloc'd buffer (the caller frees it). */
static inline unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    cr_assert(len >= 0, "ftell %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    cr_assert_not_null(p);
    cr_assert_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

#endif

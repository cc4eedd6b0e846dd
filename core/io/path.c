/*
 * path.c — what the Lua layer asks of the file system that plain Lua cannot
 * say: whether a path is a file or a folder, where it really leads (so a
 * diffusers weight map cannot reach outside its folder through a symbolic
 * link), and making a folder with its parents.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int32_t grove_path_kind(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) return GROVE_PATH_NONE;
    if (S_ISREG(st.st_mode)) return GROVE_PATH_FILE;
    if (S_ISDIR(st.st_mode)) return GROVE_PATH_DIR;
    return GROVE_PATH_OTHER;
}

grove_status grove_path_real(const char *path, char *out, int64_t cap)
{
    if (!path || !path[0]) return gv_fail("path_real: expected a path");
    if (!out || cap < 1) return gv_fail("path_real: %s: no room for the result", path);
    char *real = realpath(path, NULL);
    if (!real) return gv_fail("path_real: %s: %s", path, strerror(errno));
    size_t n = strlen(real);
    if ((int64_t)n >= cap) {
        free(real);
        return gv_fail("path_real: %s: the resolved path is longer than %lld bytes", path, (long long)cap - 1);
    }
    memcpy(out, real, n + 1);
    free(real);
    return 0;
}

static grove_status make_one(const char *path)
{
    if (mkdir(path, 0777) == 0) return 0;
    int err = errno;
    if (err == EEXIST && grove_path_kind(path) == GROVE_PATH_DIR) return 0;
    if (err == EEXIST) return gv_fail("dir_make: %s exists and is not a directory", path);
    return gv_fail("dir_make: %s: %s", path, strerror(err));
}

grove_status grove_dir_make(const char *path)
{
    if (!path || !path[0]) return gv_fail("dir_make: expected a path");
    if (grove_path_kind(path) == GROVE_PATH_DIR) return 0;
    char *p = strdup(path);
    if (!p) return gv_fail("dir_make: %s: out of memory", path);
    grove_status rc = 0;
    /* Each parent in turn, as mkdir -p: "a/b/c" makes "a", "a/b", "a/b/c". */
    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (grove_path_kind(p) != GROVE_PATH_DIR) rc = make_one(p);
        *s = '/';
    }
    if (rc == 0) rc = make_one(p);
    free(p);
    return rc;
}

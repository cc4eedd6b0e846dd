/* file_atomic.c — files written to a temporary and renamed; see file_atomic.h. */
#include "file_atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void release(gv_atomic_file *f)
{
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    f->fd = -1;
}

/* The directory part of path ("." when there is none), for messages and the
 * directory sync. */
static void dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, outlen, ".");
    else if (slash == path) snprintf(out, outlen, "/");
    else snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

bool gv_atomic_open(gv_atomic_file *f, const char *op, const char *path)
{
    f->path = f->tmp = NULL;
    f->fd = -1;
    if (!path || !path[0]) return gv_fail("%s: expected a file path", op) == 0;
    size_t plen = strlen(path);
    f->path = strdup(path);
    f->tmp = malloc(plen + 5);
    if (!f->path || !f->tmp) {
        release(f);
        return gv_fail("%s: %s: out of memory", op, path) == 0;
    }
    memcpy(f->tmp, path, plen);
    memcpy(f->tmp + plen, ".tmp", 5);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (f->fd < 0) {
        int err = errno;
        char dir[4096];
        dir_of(path, dir, sizeof dir);
        if (err == ENOENT) gv_fail("%s: %s: directory '%s' does not exist", op, path, dir);
        else gv_fail("%s: %s: cannot create %s: %s", op, path, f->tmp, strerror(err));
        release(f);
        return false;
    }
    return true;
}

bool gv_atomic_write(gv_atomic_file *f, const char *op, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(f->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return gv_fail("%s: %s: cannot write %s: %s", op, f->path, f->tmp, strerror(errno)) == 0;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

bool gv_atomic_commit(gv_atomic_file *f, const char *op)
{
    if (fsync(f->fd) != 0) {
        gv_fail("%s: %s: cannot sync %s: %s", op, f->path, f->tmp, strerror(errno));
        gv_atomic_abort(f);
        return false;
    }
    int cerr = close(f->fd);
    int cerrno = errno;
    f->fd = -1;
    if (cerr != 0) {
        gv_fail("%s: %s: cannot close %s: %s", op, f->path, f->tmp, strerror(cerrno));
        unlink(f->tmp);
        release(f);
        return false;
    }
    if (rename(f->tmp, f->path) != 0) {
        gv_fail("%s: %s: cannot rename %s over it: %s", op, f->path, f->tmp, strerror(errno));
        unlink(f->tmp);
        release(f);
        return false;
    }
    /* Make the rename itself durable; a failure here loses nothing written. */
    char dir[4096];
    dir_of(f->path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    release(f);
    return true;
}

void gv_atomic_abort(gv_atomic_file *f)
{
    if (!f) return;
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    release(f);
}

grove_status gv_file_write_atomic(const char *op, const char *path, const void *data, size_t n)
{
    gv_atomic_file f;
    if (!gv_atomic_open(&f, op, path)) return -1;
    if (!gv_atomic_write(&f, op, data, n)) {
        gv_atomic_abort(&f);
        return -1;
    }
    return gv_atomic_commit(&f, op) ? 0 : -1;
}

grove_status grove_file_write_atomic(const char *path, const void *data, int64_t n)
{
    if (n < 0 || (n > 0 && !data)) return gv_fail("write_atomic: %s: expected data and a size >= 0", path ? path : "?");
    return gv_file_write_atomic("write_atomic", path, data, (size_t)n);
}

/*
 * dir_replace.c — replacing a whole folder at once, for the writers whose
 * result is several files (a sharded diffusers component: shards, index,
 * config.json). Each file is written atomically, but a kill between files
 * would leave files of two saves side by side; so the new folder is staged
 * beside the old one, complete, and swapped in with one rename.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

grove_status grove_dir_replace(const char *staged, const char *dir, const char *old)
{
    const char *op = "dir_replace";
    if (!staged || !dir || !old || !staged[0] || !dir[0] || !old[0]) return gv_fail("%s: expected three paths", op);
    if (grove_path_kind(staged) != GROVE_PATH_DIR) return gv_fail("%s: %s is not a folder", op, staged);
    if (grove_path_kind(dir) == GROVE_PATH_NONE) {
        if (rename(staged, dir) != 0) return gv_fail("%s: cannot rename %s to %s: %s", op, staged, dir, strerror(errno));
        return 0;
    }
    /* Linux swaps two names in one step; readers see the old folder or the
     * new one, never neither. The old one is left at `staged`. */
    if (renameat2(AT_FDCWD, staged, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        if (rename(staged, old) != 0) return gv_fail("%s: cannot rename %s to %s: %s", op, staged, old, strerror(errno));
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return gv_fail("%s: cannot swap %s and %s: %s", op, staged, dir, strerror(errno));
    /* File systems without the exchange: two renames, with a moment in
     * between when dir is missing (the old folder is then at `old`). */
    if (rename(dir, old) != 0) return gv_fail("%s: cannot rename %s to %s: %s", op, dir, old, strerror(errno));
    if (rename(staged, dir) != 0) {
        int err = errno;
        if (rename(old, dir) != 0) { /* nothing more can be done; say where the old folder is */ }
        return gv_fail("%s: cannot rename %s to %s: %s", op, staged, dir, strerror(err));
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 ? 0 : errno;
}

grove_status grove_dir_remove(const char *path)
{
    if (!path || !path[0]) return gv_fail("dir_remove: expected a path");
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : gv_fail("dir_remove: %s: %s", path, strerror(errno));
    /* Depth first, never following a symbolic link out of the folder. */
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) return gv_fail("dir_remove: %s: %s", path, strerror(rc > 0 ? rc : errno));
    return 0;
}

/* One regular file: a hard link, or a copy where the file system cannot link. */
static grove_status link_file(const char *op, const char *src, const char *dst)
{
    if (link(src, dst) == 0) return 0;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
        return gv_fail("%s: cannot link %s to %s: %s", op, dst, src, strerror(errno));
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return gv_fail("%s: %s: %s", op, src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (out < 0) {
        int err = errno;
        close(in);
        return gv_fail("%s: %s: %s", op, dst, strerror(err));
    }
    char buf[1 << 16];
    ssize_t n;
    grove_status rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                rc = gv_fail("%s: writing %s: %s", op, dst, strerror(errno));
                break;
            }
            off += w;
        }
        if (rc) break;
    }
    if (n < 0 && !rc) rc = gv_fail("%s: reading %s: %s", op, src, strerror(errno));
    if (close(out) != 0 && !rc) rc = gv_fail("%s: writing %s: %s", op, dst, strerror(errno));
    close(in);
    if (rc) unlink(dst);
    return rc;
}

static grove_status link_path(const char *op, const char *src, const char *dst, int depth)
{
    if (depth > 64) return gv_fail("%s: %s: folders nested more than 64 deep", op, src);
    struct stat st;
    if (lstat(src, &st) != 0) return gv_fail("%s: %s: %s", op, src, strerror(errno));
    if (S_ISREG(st.st_mode)) return link_file(op, src, dst);
    if (S_ISLNK(st.st_mode)) {
        /* A symbolic link is recreated as it reads, never followed. */
        char target[4096];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0) return gv_fail("%s: %s: %s", op, src, strerror(errno));
        target[n] = 0;
        if (symlink(target, dst) != 0) return gv_fail("%s: %s: %s", op, dst, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return gv_fail("%s: %s is neither a file, a folder nor a link", op, src);
    if (mkdir(dst, st.st_mode & 07777) != 0) return gv_fail("%s: %s: %s", op, dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return gv_fail("%s: %s: %s", op, src, strerror(errno));
    grove_status rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t ls = strlen(src), ld = strlen(dst), ln = strlen(e->d_name);
        char *a = malloc(ls + ln + 2), *b = malloc(ld + ln + 2);
        if (!a || !b) rc = gv_fail("%s: out of memory", op);
        else {
            snprintf(a, ls + ln + 2, "%s/%s", src, e->d_name);
            snprintf(b, ld + ln + 2, "%s/%s", dst, e->d_name);
            rc = link_path(op, a, b, depth + 1);
        }
        free(a);
        free(b);
    }
    closedir(d);
    return rc;
}

grove_status grove_path_link(const char *src, const char *dst)
{
    if (!src || !dst || !src[0] || !dst[0]) return gv_fail("path_link: expected two paths");
    return link_path("path_link", src, dst, 0);
}

/*
 * dir_list.c — the entries of a folder: the images a dataset reads
 * (grove_list_images, recursive) and every name in one folder
 * (grove_list_dir, for the weight files of a diffusers component).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct grove_file_list {
    int64_t count, cap;
    char **paths;
};

void grove_file_list_free(grove_file_list *l)
{
    if (!l) return;
    for (int64_t i = 0; i < l->count; i++) free(l->paths[i]);
    free(l->paths);
    free(l);
}

int64_t grove_file_list_count(const grove_file_list *l) { return l ? l->count : 0; }

const char *grove_file_list_get(const grove_file_list *l, int64_t i)
{
    if (!l || i < 0 || i >= l->count) return NULL;
    return l->paths[i];
}

static bool has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    return strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] == '/';
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (!slash) p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

static bool list_push(grove_file_list *l, char *path)
{
    if (l->count == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        char **p = realloc(l->paths, (size_t)cap * sizeof *p);
        if (!p) return false;
        l->paths = p;
        l->cap = cap;
    }
    l->paths[l->count++] = path;
    return true;
}

static bool scan_dir(const char *op, grove_file_list *l, const char *dir, bool recursive)
{
    DIR *d = opendir(dir);
    if (!d) {
        gv_fail("%s: %s: cannot open the directory: %s", op, dir, strerror(errno));
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", and hidden files such as macOS's "._x.jpg" */
        char *path = join_path(dir, e->d_name);
        if (!path) {
            gv_fail("%s: out of memory", op);
            ok = false;
            break;
        }
        struct stat st;
        if (lstat(path, &st) != 0) { /* vanished since readdir */
            free(path);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (recursive) ok = scan_dir(op, l, path, true);
            free(path);
        } else if ((S_ISREG(st.st_mode) || (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode))) &&
                   has_image_extension(e->d_name)) {
            if (!list_push(l, path)) {
                free(path);
                gv_fail("%s: out of memory", op);
                ok = false;
            }
        } else {
            free(path);
        }
    }
    closedir(d);
    return ok;
}

static int cmp_paths(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool check_dir(const char *op, const char *dir)
{
    if (!dir || !dir[0]) return gv_fail("%s: expected a directory path", op) == 0;
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) return gv_fail("%s: %s: no such directory", op, dir) == 0;
        return gv_fail("%s: %s: %s", op, dir, strerror(errno)) == 0;
    }
    if (!S_ISDIR(st.st_mode)) return gv_fail("%s: %s: not a directory", op, dir) == 0;
    return true;
}

grove_file_list *grove_list_images(const char *dir, bool recursive)
{
    const char *op = "list_images";
    if (!check_dir(op, dir)) return NULL;
    grove_file_list *l = calloc(1, sizeof *l);
    if (!l) return gv_fail_null("%s: out of memory", op);
    if (!scan_dir(op, l, dir, recursive)) {
        grove_file_list_free(l);
        return NULL;
    }
    if (l->count > 1) qsort(l->paths, (size_t)l->count, sizeof *l->paths, cmp_paths);
    return l;
}

grove_file_list *grove_list_dir(const char *dir)
{
    const char *op = "list_dir";
    if (!check_dir(op, dir)) return NULL;
    grove_file_list *l = calloc(1, sizeof *l);
    DIR *d = l ? opendir(dir) : NULL;
    if (!d) {
        if (l) gv_fail("%s: %s: cannot open the directory: %s", op, dir, strerror(errno));
        else gv_fail("%s: out of memory", op);
        grove_file_list_free(l);
        return NULL;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *name = strdup(e->d_name);
        if (!name || !list_push(l, name)) {
            free(name);
            closedir(d);
            grove_file_list_free(l);
            return gv_fail_null("%s: out of memory", op);
        }
    }
    closedir(d);
    if (l->count > 1) qsort(l->paths, (size_t)l->count, sizeof *l->paths, cmp_paths);
    return l;
}

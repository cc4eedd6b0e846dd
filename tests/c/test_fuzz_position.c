/* test_fuzz_position.c — the fuzz harness's test for a Lua runtime error's
 * position (tests/fuzz/lua_position.h): a position counts only when its
 * chunk is a file of this machine, whole or cut by LuaJIT to "..." and its
 * last 56 characters, at the start of a message or quoted inside one. */
#define _GNU_SOURCE
#include "helpers.h"
#include "scratch.h"

#include "../fuzz/lua_position.h"

TestSuite(fuzz_position, .init = make_dir, .fini = remove_dir);

/* a Lua file under the scratch folder with a path longer than LuaJIT keeps */
static const char *long_lua_file(char *root, size_t n)
{
    snprintf(root, n, "%s/a-folder-name-long-enough-for-luajit-to-cut", dir);
    cr_assert_eq(mkdir(root, 0777), 0);
    cr_assert_eq(mkdir(at("a-folder-name-long-enough-for-luajit-to-cut/grove"), 0777), 0);
    const char *path = at("a-folder-name-long-enough-for-luajit-to-cut/grove/loader.lua");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("return {}\n", f);
    fclose(f);
    cr_assert_gt(strlen(path), 60, "the path must be one LuaJIT cuts");
    return path;
}

/* whether the message's first "attempt to " follows a position */
static int flagged(const char *msg, const char *root)
{
    const char *roots[] = {root};
    const char *p = strstr(msg, "attempt to ");
    cr_assert_not_null(p, "%s", msg);
    return lua_position_before(msg, p, roots, 1);
}

Test(fuzz_position, whole_paths_count_where_the_file_exists)
{
    char root[256], msg[1024];
    const char *path = long_lua_file(root, sizeof root);
    snprintf(msg, sizeof msg, "%s:12: attempt to index a nil value", path);
    cr_assert(flagged(msg, root), "at the start: %s", msg);
    snprintf(msg, sizeof msg, "images/x.png: %s:12: attempt to index a nil value", path);
    cr_assert(flagged(msg, root), "quoted after a loader's words: %s", msg);
    cr_assert(!flagged("shard 'grove/made-up.lua:3: attempt to call' is missing", root),
              "a made-up file in the input is not a position");
    snprintf(msg, sizeof msg, "%s: attempt to index", path);
    cr_assert(!flagged(msg, root), "no line number");
}

Test(fuzz_position, cut_paths_count_where_their_tail_completes_to_a_file)
{
    char root[256], msg[1024], tail[64];
    const char *path = long_lua_file(root, sizeof root);
    /* what LuaJIT prints for the chunk: "..." and the last 56 characters */
    snprintf(tail, sizeof tail, "...%s", path + strlen(path) - LUA_POSITION_CUT_TAIL);
    snprintf(msg, sizeof msg, "%s:7: attempt to index a nil value", tail);
    cr_assert(flagged(msg, root), "at the start: %s", msg);
    snprintf(msg, sizeof msg, "cache: images/x.png: %s:7: attempt to index a nil value", tail);
    cr_assert(flagged(msg, root), "quoted after a loader's words: %s", msg);
    cr_assert(!flagged(msg, "/nowhere"), "the tail completes to a file only with a root's leading part");

    /* the fuzzer can write dots and any 56 characters, not a file of this machine */
    char forged[64];
    snprintf(forged, sizeof forged, "%s", tail);
    forged[10] = forged[10] == 'x' ? 'y' : 'x';
    snprintf(msg, sizeof msg, "cache: %s:7: attempt to index a nil value", forged);
    cr_assert(!flagged(msg, root), "a changed tail: %s", msg);
    snprintf(msg, sizeof msg, "cache: ...%s:7: attempt to index a nil value", tail + 4);
    cr_assert(!flagged(msg, root), "a tail shorter than LuaJIT's: %s", msg);
}

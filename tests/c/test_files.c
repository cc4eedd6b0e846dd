/* test_files.c — the file-system helpers the Lua layer uses: the one atomic
 * write (a failed write leaves the old file and no temporary), listing a
 * folder, what a path names, resolving links, and mkdir -p. */
#define _GNU_SOURCE
#include "helpers.h"
#include "scratch.h"

TestSuite(files, .init = make_dir, .fini = remove_dir);

Test(files, write_atomic_replaces_whole_files)
{
    const char *p = at("a.txt");
    cr_assert_eq(grove_file_write_atomic(p, "first", 5), 0, "%s", grove_last_error());
    cr_assert_eq(grove_file_write_atomic(p, "second\n", 7), 0, "%s", grove_last_error());
    size_t n = 0;
    unsigned char *got = read_bytes(p, &n);
    cr_assert_eq(n, 7);
    cr_assert_eq(memcmp(got, "second\n", 7), 0);
    free(got);
    cr_assert(!exists(at("a.txt.tmp")), "the temporary was renamed away");
    cr_assert_eq(grove_file_write_atomic(at("empty"), NULL, 0), 0, "%s", grove_last_error());
    cr_assert(exists(at("empty")));
}

Test(files, write_atomic_failures_touch_nothing)
{
    cr_assert_eq(grove_file_write_atomic(at("no/such/x.txt"), "x", 1), -1);
    expect_error("no/such' does not exist");
    cr_assert_eq(grove_file_write_atomic(at("x.txt"), NULL, 3), -1);
    expect_error("expected data");
    /* a folder where the temporary would go: the existing file stays */
    const char *p = at("kept.txt");
    cr_assert_eq(grove_file_write_atomic(p, "old", 3), 0);
    cr_assert_eq(mkdir(at("kept.txt.tmp"), 0777), 0);
    cr_assert_eq(grove_file_write_atomic(p, "new", 3), -1);
    expect_error("cannot create");
    size_t n = 0;
    unsigned char *got = read_bytes(p, &n);
    cr_assert(n == 3 && memcmp(got, "old", 3) == 0, "the old file is untouched");
    free(got);
}

Test(files, list_dir_kinds_and_real_paths)
{
    cr_assert_eq(grove_dir_make(at("sub/deeper/deepest")), 0, "%s", grove_last_error());
    cr_assert_eq(grove_dir_make(at("sub/deeper")), 0, "an existing folder is fine");
    write_bytes(at("b.txt"), "b", 1);
    write_bytes(at(".hidden"), "h", 1);
    cr_assert_eq(symlink(at("b.txt"), at("link")), 0);
    grove_file_list *l = grove_list_dir(dir);
    cr_assert_not_null(l, "%s", grove_last_error());
    cr_assert_eq(grove_file_list_count(l), 4);
    cr_assert_str_eq(grove_file_list_get(l, 0), ".hidden");
    cr_assert_str_eq(grove_file_list_get(l, 1), "b.txt");
    cr_assert_str_eq(grove_file_list_get(l, 2), "link");
    cr_assert_str_eq(grove_file_list_get(l, 3), "sub");
    grove_file_list_free(l);
    cr_assert_eq(grove_path_kind(at("b.txt")), GROVE_PATH_FILE);
    cr_assert_eq(grove_path_kind(at("link")), GROVE_PATH_FILE, "links are followed");
    cr_assert_eq(grove_path_kind(at("sub/deeper/deepest")), GROVE_PATH_DIR);
    cr_assert_eq(grove_path_kind(at("nothing")), GROVE_PATH_NONE);
    cr_assert_eq(grove_path_kind("/dev/null"), GROVE_PATH_OTHER);
    char real[4096], want[4096];
    cr_assert_eq(grove_path_real(at("link"), real, sizeof real), 0, "%s", grove_last_error());
    cr_assert_not_null(realpath(at("b.txt"), want));
    cr_assert_str_eq(real, want);
    cr_assert_eq(grove_path_real(at("sub/../b.txt"), real, sizeof real), 0);
    cr_assert_str_eq(real, want);
    cr_assert_eq(grove_path_real(at("nothing"), real, sizeof real), -1);
    expect_error("No such file");
    cr_assert_eq(grove_path_real(at("b.txt"), real, 4), -1);
    expect_error("longer than 3 bytes");
    cr_assert_null(grove_list_dir(at("b.txt")));
    expect_error("not a directory");
    cr_assert_eq(grove_dir_make(at("b.txt/x")), -1);
    cr_assert_eq(grove_dir_make(at("b.txt")), -1);
    expect_error("exists and is not a directory");
}

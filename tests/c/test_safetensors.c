/* test_safetensors.c — safetensors round trips, the exact bytes written,
 * rejection of malformed files, and atomic saves. */
#define _GNU_SOURCE
#include "helpers.h"
#include "scratch.h"

/* A file with the given header (its length written as the u64 prefix) and
 * data_len bytes of data (1, 2, 3, ...). */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t hn = strlen(header);
    unsigned char *p = malloc(8 + hn + data_len + 1);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(p + 8, header, hn);
    for (size_t i = 0; i < data_len; i++) p[8 + hn + i] = (unsigned char)(i + 1);
    write_bytes(path, p, 8 + hn + data_len);
    free(p);
}

static void expect_same_values(grove_tensor *want, grove_tensor *got)
{
    cr_assert_not_null(got, "%s", grove_last_error());
    cr_assert_eq(got->dtype, want->dtype);
    cr_assert_eq(got->ndim, want->ndim);
    for (int32_t d = 0; d < want->ndim; d++) cr_assert_eq(got->shape[d], want->shape[d]);
    int64_t n = grove_tensor_numel(want);
    cr_assert_eq(grove_tensor_numel(got), n);
    double *a = malloc((size_t)(n ? n : 1) * sizeof *a), *b = malloc((size_t)(n ? n : 1) * sizeof *b);
    cr_assert_eq(grove_tensor_read_doubles(want, a, n), 0);
    cr_assert_eq(grove_tensor_read_doubles(got, b, n), 0);
    for (int64_t i = 0; i < n; i++) cr_assert_eq(a[i], b[i], "element %lld: %g vs %g", (long long)i, a[i], b[i]);
    free(a);
    free(b);
}

TestSuite(safetensors, .init = make_dir, .fini = remove_dir);

/* ---- round trips ------------------------------------------------------------------ */

Test(safetensors, round_trip_every_dtype)
{
    grove_memory_stats m0 = memory_now();
    const int64_t s23[] = {2, 3}, s4[] = {4}, s03[] = {0, 3};
    grove_tensor *ts[] = {
        T(GROVE_F32, 2, s23, 1.5, -2, 3.25, 1e-3, 1e30, -0.0),
        T(GROVE_F16, 1, s4, 0.5, -2, 65504, 1.5),
        T(GROVE_BF16, 1, s4, 0.5, -2, 3.0e38, 1.5),
        T(GROVE_U8, 1, s4, 0, 1, 128, 255),
        T(GROVE_I8, 1, s4, -128, -1, 0, 127),
        T(GROVE_I32, 1, s4, -2147483648.0, -1, 0, 2147483647),
        T(GROVE_I64, 1, s4, -9007199254740992.0, -1, 0, 9007199254740992.0),
        grove_tensor_full(0, NULL, 7.25, GROVE_F32, GROVE_CPU), /* 0-d */
        grove_tensor_zeros(2, s03, GROVE_I64, GROVE_CPU),       /* empty */
        NULL,
    };
    /* Non-contiguous input: saved in logical order. */
    ts[9] = grove_transpose(ts[0], 0, 1);
    const char *names[] = {"f32", "f16", "bf16", "u8", "i8", "i32", "i64", "scalar", "empty", "f32.T"};
    const int n = 10;
    const char *keys[] = {"format", "quote\"back\\slash", "unicode"};
    const char *values[] = {"pt", "line\nbreak\ttab\x01", "gr\xc3\xb6\xc3\x9f" "e \xf0\x9f\x8c\xb3"};
    const char *path = at("all.safetensors");
    cr_assert_eq(grove_safetensors_save(path, n, names, ts, 3, keys, values), 0, "%s", grove_last_error());
    cr_assert_not(exists(at("all.safetensors.tmp")));

    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_count(f), n);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(grove_safetensors_name(f, i), names[i], "names keep the given order");
        int32_t dtype, ndim;
        int64_t shape[8];
        cr_assert_eq(grove_safetensors_info(f, names[i], &dtype, &ndim, shape), 0);
        cr_assert_eq(dtype, ts[i]->dtype);
        cr_assert_eq(ndim, ts[i]->ndim);
        for (int32_t d = 0; d < ndim; d++) cr_assert_eq(shape[d], ts[i]->shape[d]);
        grove_tensor *g = grove_safetensors_get(f, names[i]);
        expect_same_values(ts[i], g);
        cr_assert(grove_tensor_is_contiguous(g));
        grove_tensor_release(g);
    }
    cr_assert_null(grove_safetensors_name(f, n));
    cr_assert_null(grove_safetensors_name(f, -1));
    cr_assert_eq(grove_safetensors_metadata_count(f), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(grove_safetensors_metadata_key(f, i), keys[i]);
        cr_assert_str_eq(grove_safetensors_metadata(f, keys[i]), values[i]);
    }
    cr_assert_null(grove_safetensors_metadata(f, "absent"));
    cr_assert_null(grove_safetensors_metadata_key(f, 3));
    cr_assert_null(grove_safetensors_get(f, "nope"));
    expect_error("no tensor named 'nope'");
    cr_assert_eq(grove_safetensors_info(f, "nope", NULL, NULL, NULL), -1);
    grove_safetensors_close(f);

    for (int i = 0; i < n; i++) grove_tensor_release(ts[i]);
    cr_assert_eq(memory_now().live_tensors, m0.live_tensors);
}

/* The bytes written: header in the given order with contiguous offsets,
 * metadata first, padded with spaces so the data starts at a multiple of 8. */
Test(safetensors, exact_bytes)
{
    const int64_t s2[] = {2}, s1[] = {1};
    grove_tensor *ts[] = {T(GROVE_F32, 1, s2, 1, 2), T(GROVE_U8, 1, s1, 7)};
    const char *names[] = {"b", "a"};
    const char *keys[] = {"k"}, *values[] = {"v"};
    const char *path = at("x.safetensors");
    cr_assert_eq(grove_safetensors_save(path, 2, names, ts, 1, keys, values), 0, "%s", grove_last_error());
    size_t n;
    unsigned char *p = read_bytes(path, &n);
    const char *want = "{\"__metadata__\":{\"k\":\"v\"},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[8,9]}}";
    size_t wl = strlen(want), padded = (wl + 7) / 8 * 8;
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | p[i];
    cr_assert_eq(hn, padded);
    cr_assert_eq(n, 8 + padded + 9);
    cr_assert(memcmp(p + 8, want, wl) == 0, "header: %.*s", (int)hn, (const char *)p + 8);
    for (size_t i = wl; i < padded; i++) cr_assert_eq(p[8 + i], ' ');
    float fv[2];
    memcpy(fv, p + 8 + padded, 8);
    cr_assert(fv[0] == 1 && fv[1] == 2);
    cr_assert_eq(p[8 + padded + 8], 7);
    free(p);
    grove_tensor_release(ts[0]);
    grove_tensor_release(ts[1]);

    /* No tensors, no metadata: "{}" padded to 8 bytes, still readable. */
    cr_assert_eq(grove_safetensors_save(path, 0, NULL, NULL, 0, NULL, NULL), 0, "%s", grove_last_error());
    p = read_bytes(path, &n);
    cr_assert_eq(n, 16);
    cr_assert(memcmp(p + 8, "{}      ", 8) == 0);
    free(p);
    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_count(f), 0);
    cr_assert_eq(grove_safetensors_metadata_count(f), 0);
    grove_safetensors_close(f);
}

/* A file written by hand as another writer might: whitespace, escapes in names,
 * several empty tensors sharing an offset, metadata after the tensors. */
Test(safetensors, reads_foreign_headers)
{
    const char *path = at("foreign.safetensors");
    write_st(path,
             "  {\n \"w\\u00e9\\ud83c\\udf33\\n\" : {\"data_offsets\": [0, 4], \"shape\": [2, 2], \"dtype\": \"U8\", "
             "\"extra\": [1, {\"x\": null}]},\n"
             " \"e1\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]},\n"
             " \"e2\": {\"dtype\": \"BF16\", \"shape\": [3, 0], \"data_offsets\": [4, 4]},\n"
             " \"b\": {\"dtype\": \"I8\", \"shape\": [], \"data_offsets\": [4, 5]},\n"
             " \"__metadata__\": {\"a\\\"b\": \"\\u00e9\\/\"}}\t ",
             5);
    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_count(f), 4);
    cr_assert_str_eq(grove_safetensors_name(f, 0), "w\xc3\xa9\xf0\x9f\x8c\xb3\n");
    cr_assert_str_eq(grove_safetensors_name(f, 3), "b");
    grove_tensor *w = grove_safetensors_get(f, "w\xc3\xa9\xf0\x9f\x8c\xb3\n");
    EXPECT_VALUES(w, 0, 1, 2, 3, 4);
    cr_assert_eq(w->dtype, GROVE_U8);
    grove_tensor *b = grove_safetensors_get(f, "b");
    EXPECT_VALUES(b, 0, 5);
    cr_assert_eq(b->ndim, 0);
    grove_tensor *e2 = grove_safetensors_get(f, "e2");
    cr_assert_not_null(e2, "%s", grove_last_error());
    cr_assert_eq(e2->dtype, GROVE_BF16);
    cr_assert_eq(grove_tensor_numel(e2), 0);
    cr_assert_str_eq(grove_safetensors_metadata(f, "a\"b"), "\xc3\xa9/");
    grove_tensor_release(w);
    grove_tensor_release(b);
    grove_tensor_release(e2);
    grove_safetensors_close(f);
}

/* PyTorch's float64 and bool tensors: F64 is rounded to f32 as it is read
 * (here from an offset that is not 8-byte aligned), BOOL read as u8. */
Test(safetensors, reads_f64_as_f32_and_bool_as_u8)
{
    const char *path = at("f64.safetensors");
    const char *h = "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]},"
                    "\"r\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[3,19]}}";
    size_t hn = strlen(h);
    unsigned char buf[512];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, h, hn);
    unsigned char *data = buf + 8 + hn;
    data[0] = 1, data[1] = 0, data[2] = 1;
    double r[2] = {0.1, -3.25};
    memcpy(data + 3, r, sizeof r);
    write_bytes(path, buf, 8 + hn + 19);
    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    int32_t dtype = -1, ndim = 0;
    int64_t shape[8];
    cr_assert_eq(grove_safetensors_info(f, "r", &dtype, &ndim, shape), 0);
    cr_assert_eq(dtype, GROVE_F32);
    cr_assert_str_eq(grove_safetensors_stored_dtype(f, "r"), "F64");
    cr_assert_str_eq(grove_safetensors_stored_dtype(f, "m"), "BOOL");
    grove_tensor *t = grove_safetensors_get(f, "r");
    cr_assert_eq(t->dtype, GROVE_F32);
    cr_assert_eq(((float *)t->data)[0], (float)0.1);
    cr_assert_eq(((float *)t->data)[1], -3.25f);
    grove_tensor *m = grove_safetensors_get(f, "m");
    cr_assert_eq(m->dtype, GROVE_U8);
    EXPECT_VALUES(m, 0, 1, 0, 1);
    grove_tensor_release(t);
    grove_tensor_release(m);
    grove_safetensors_close(f);
}

/* The parser behind the headers, as grove.h exposes it to Lua. */
Test(safetensors, json_api)
{
    const char *text = "{\"a\": [1, 2.5, null, true], \"b\": \"x\\u00e9\"}";
    grove_json_doc *doc = grove_json_parse(text, (int64_t)strlen(text), 0);
    cr_assert_not_null(doc, "%s", grove_last_error());
    const grove_json *root = grove_json_root(doc);
    cr_assert_eq(root->kind, GROVE_JSON_OBJECT);
    cr_assert_eq(root->count, 2);
    const grove_json *a = root->first;
    cr_assert_str_eq(a->key, "a");
    cr_assert_eq(a->count, 4);
    cr_assert_eq(a->first->kind, GROVE_JSON_INT);
    cr_assert_eq(a->first->integer, 1);
    cr_assert_eq(a->first->next->kind, GROVE_JSON_NUMBER);
    cr_assert_eq(a->first->next->number, 2.5);
    cr_assert_eq(a->first->next->next->kind, GROVE_JSON_NULL);
    cr_assert_eq(a->first->next->next->next->boolean, 1);
    cr_assert_str_eq(a->next->str, "x\xc3\xa9");
    cr_assert_eq(a->next->len, 3);
    grove_json_free(doc);
    cr_assert_null(grove_json_parse("[1,]", 4, 0));
    cr_assert(strstr(grove_last_error(), "at byte 3"), "%s", grove_last_error());
    cr_assert_null(grove_json_parse("-Infinity", 9, 0));
    doc = grove_json_parse("[NaN, -Infinity]", 16, GROVE_JSON_ALLOW_NAN);
    cr_assert_not_null(doc, "%s", grove_last_error());
    const grove_json *n = grove_json_root(doc)->first;
    cr_assert(n->number != n->number);
    cr_assert(n->next->number < -1e308);
    grove_json_free(doc);
}

/* ---- malformed files ---------------------------------------------------------------- */

typedef struct bad_case {
    const char *header;    /* NULL: raw bytes below */
    size_t data_len;
    const char *raw;
    size_t raw_len;
    const char *phrase;
} bad_case;

#define HDR(h, dl, phrase) {(h), (dl), NULL, 0, (phrase)}
#define RAW(bytes, phrase) {NULL, 0, (bytes), sizeof(bytes) - 1, (phrase)}
#define A8 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"

static const bad_case bad_cases[] = {
    RAW("", "file is empty"),
    RAW("\x02\x00\x00\x00\x00", "too short (5 bytes)"),
    RAW("\xe8\x03\x00\x00\x00\x00\x00\x00{}", "header length 1000 is beyond the end of the file (2 bytes"),
    RAW("\x00\x00\x00\x00\x00\x01\x00\x00{}", "is absurd"),
    RAW("\x00\x00\x00\x00\x00\x00\x00\x00", "not valid JSON: at byte 0: unexpected end of input"),
    HDR("{\"a\":{\"dtype\":\"F32\",}}", 0, "not valid JSON: at byte 20: expected a string key"),
    HDR("{\"a\" 1}", 0, "expected ':' after an object key"),
    HDR("{\"a\":[1 2]}", 0, "expected ',' or ']' in an array"),
    HDR("{\"a\":{}", 0, "expected ',' or '}' in an object"),
    HDR("{\"a\":\"x}", 0, "unterminated string"),
    HDR("{\"a\":\"\\x\"}", 0, "invalid escape '\\x'"),
    HDR("{\"a\":\"\\u12g4\"}", 0, "four hex digits"),
    HDR("{\"a\":\"\\udc00\"}", 0, "unpaired low surrogate"),
    HDR("{\"a\":\"\\ud800x\"}", 0, "not followed by a low surrogate"),
    HDR("{\"a\":\"\\u0000\"}", 0, "\\u0000"),
    HDR("{\"a\":\"\xc3\x28\"}", 0, "invalid UTF-8"),
    HDR("{\"a\":\"\xc0\xaf\"}", 0, "invalid UTF-8"), /* overlong '/' */
    HDR("{\"a\":\"tab\there\"}", 0, "control character 0x09"),
    HDR("{\"a\":012}", 0, "leading zero"),
    HDR("{\"a\":1.}", 0, "expected a digit after '.'"),
    HDR("{\"a\":tru}", 0, "unexpected character 't'"),
    HDR("{} x", 0, "unexpected data after the JSON value"),
    HDR("{}{}", 0, "unexpected data after the JSON value"),
    HDR("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        0, "nesting deeper than 64"),
    HDR("[1, 2]", 0, "header is an array, expected a JSON object"),
    HDR("\"str\"", 0, "header is a string, expected a JSON object"),
    HDR("{\"a\":[0, 8]}", 8, "tensor 'a': entry is an array, expected an object"),
    HDR("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
        "tensor 'a': unsupported dtype 'F8_E4M3'"),
    HDR("{\"x\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "tensor 'x': unsupported dtype 'C64'"),
    /* F64 is read as f32, but its size in the file is still 8 bytes */
    HDR("{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "F64 shape [2] needs 16"),
    HDR("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 'f32'"),
    HDR("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': missing field 'dtype'"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a': missing field 'shape'"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a': missing field 'data_offsets'"),
    HDR("{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "field 'dtype' is an integer, expected a string"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
        "field 'shape' is a string, expected an array"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "field 'dtype' appears twice"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape entry 0 is negative (-1)"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,4]}}", 4,
        "shape entry 1 is a number, not an integer"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "not an integer"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
        "shape has 9 dimensions; grove supports at most 8"),
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,2],\"data_offsets\":[0,4]}}", 4,
        "too many elements"),
    HDR("{" A8 "[0]}}", 8, "data_offsets must be [begin, end]"),
    HDR("{" A8 "[0,8,8]}}", 8, "data_offsets must be [begin, end]"),
    HDR("{" A8 "[0,\"8\"]}}", 8, "data_offsets must be [begin, end]"),
    HDR("{" A8 "[8,0]}}", 8, "data_offsets [8, 0] must satisfy 0 <= begin <= end"),
    HDR("{" A8 "[-8,0]}}", 8, "must satisfy 0 <= begin <= end"),
    HDR("{" A8 "[0,16]}}", 8, "data_offsets [0, 16] end beyond the data buffer (8 bytes)"),
    HDR("{" A8 "[8,99999999999999999999]}}", 8, "data_offsets must be [begin, end]"),
    HDR("{" A8 "[0,12]}}", 12, "span 12 bytes, but F32 shape [2] needs 8"),
    HDR("{" A8 "[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
        "tensor 'b' (bytes [4, 12)) overlaps tensor 'a' (bytes [0, 8))"),
    HDR("{" A8 "[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlaps"),
    HDR("{" A8 "[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16,
        "gap in the data buffer: bytes [8, 12) belong to no tensor (before 'b')"),
    HDR("{" A8 "[4,12]}}", 12, "gap in the data buffer: bytes [0, 4)"),
    HDR("{" A8 "[0,8]}}", 11, "3 trailing bytes after the last tensor"),
    HDR("{}", 1, "1 trailing bytes after the last tensor"),
    HDR("{" A8 "[0,8]}," A8 "[8,16]}}", 16, "duplicate tensor name 'a'"),
    HDR("{\"__metadata__\":{\"k\":1}}", 0, "metadata value for key 'k' is an integer, not a string"),
    HDR("{\"__metadata__\":{\"k\":null}}", 0, "metadata value for key 'k' is null, not a string"),
    HDR("{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is an array, expected an object"),
    HDR("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key 'k'"),
    HDR("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice"),
};

Test(safetensors, rejects_malformed_files)
{
    grove_memory_stats m0 = memory_now();
    const char *path = at("bad.safetensors");
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        if (c->header) write_st(path, c->header, c->data_len);
        else write_bytes(path, c->raw, c->raw_len);
        grove_clear_error();
        grove_safetensors *f = grove_safetensors_open(path);
        cr_assert_null(f, "case %zu (%s) was accepted", i, c->phrase);
        const char *msg = grove_last_error();
        cr_assert(strstr(msg, c->phrase), "case %zu: expected '%s' in '%s'", i, c->phrase, msg);
        cr_assert(strstr(msg, path), "case %zu: the message names the file: '%s'", i, msg);
    }
    cr_assert_eq(memory_now().live_bytes, m0.live_bytes);
}

Test(safetensors, missing_file_and_directory)
{
    cr_assert_null(grove_safetensors_open(at("absent.safetensors")));
    expect_error("absent.safetensors: cannot open: No such file or directory");
    cr_assert_null(grove_safetensors_open(dir));
    expect_error("not a regular file");
    cr_assert_null(grove_safetensors_open(NULL));
    expect_error("expected a path");
    cr_assert_eq(grove_safetensors_count(NULL), -1);
    cr_assert_null(grove_safetensors_get(NULL, "a"));
}

/* ---- saving: argument errors and atomicity -------------------------------------------- */

Test(safetensors, save_rejects_bad_arguments)
{
    const int64_t s1[] = {1};
    grove_tensor *a = T(GROVE_F32, 1, s1, 1), *b = T(GROVE_F32, 1, s1, 2);
    grove_tensor *ab[] = {a, b};
    const char *path = at("args.safetensors");
    struct {
        const char *names[2];
        const char *phrase;
    } cases[] = {
        {{"a", "a"}, "duplicate tensor name 'a'"},
        {{"a", ""}, "tensor name 1 is empty"},
        {{NULL, "b"}, "tensor name 0 is NULL"},
        {{"a", "__metadata__"}, "'__metadata__' is reserved"},
        {{"a", "\xff"}, "tensor name 1 is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(grove_safetensors_save(path, 2, cases[i].names, ab, 0, NULL, NULL), -1);
        expect_error(cases[i].phrase);
    }
    const char *names[] = {"a", "b"};
    const char *k2[] = {"k", "k"}, *v2[] = {"1", "2"};
    cr_assert_eq(grove_safetensors_save(path, 2, names, ab, 2, k2, v2), -1);
    expect_error("duplicate metadata key 'k'");
    const char *k1[] = {"k"}, *vnull[] = {NULL};
    cr_assert_eq(grove_safetensors_save(path, 2, names, ab, 1, k1, vnull), -1);
    expect_error("metadata value for key 'k' is NULL");
    grove_tensor *anull[] = {a, NULL};
    cr_assert_eq(grove_safetensors_save(path, 2, names, anull, 0, NULL, NULL), -1);
    expect_error("tensor 'b' is NULL");
    grove_tensor_free_data(b);
    cr_assert_eq(grove_safetensors_save(path, 2, names, ab, 0, NULL, NULL), -1);
    expect_error("tensor 'b' was freed");
    cr_assert_eq(grove_safetensors_save(NULL, 0, NULL, NULL, 0, NULL, NULL), -1);
    expect_error("expected a file path");
    cr_assert_not(exists(path));
    cr_assert_not(exists(at("args.safetensors.tmp")));
    grove_tensor_release(a);
    grove_tensor_release(b);
}

Test(safetensors, save_into_missing_directory)
{
    const int64_t s1[] = {1};
    grove_tensor *a = T(GROVE_F32, 1, s1, 1);
    const char *names[] = {"a"};
    const char *path = at("no/such/dir/m.safetensors");
    cr_assert_eq(grove_safetensors_save(path, 1, names, &a, 0, NULL, NULL), -1);
    expect_error("no/such/dir' does not exist");
    expect_error(path);
    cr_assert_not(exists(at("no/such/dir/m.safetensors.tmp")));
    cr_assert_not(exists(at("no")));
    grove_tensor_release(a);
}

Test(safetensors, failed_save_leaves_existing_file)
{
    const int64_t s3[] = {3};
    grove_tensor *a = T(GROVE_F32, 1, s3, 1, 2, 3), *b = T(GROVE_I64, 1, s3, 4, 5, 6);
    grove_tensor *ab[] = {a, b};
    const char *names[] = {"a", "b"}, *dup[] = {"a", "a"};
    const char *path = at("keep.safetensors"), *tmp = at("keep.safetensors.tmp");
    cr_assert_eq(grove_safetensors_save(path, 2, names, ab, 0, NULL, NULL), 0, "%s", grove_last_error());
    size_t n0;
    unsigned char *before = read_bytes(path, &n0);

    /* Rejected arguments: nothing is touched. */
    cr_assert_eq(grove_safetensors_save(path, 2, dup, ab, 0, NULL, NULL), -1);
    /* The temporary cannot be created (a directory is in the way). */
    cr_assert_eq(mkdir(tmp, 0700), 0);
    cr_assert_eq(grove_safetensors_save(path, 1, names, ab, 0, NULL, NULL), -1);
    expect_error("cannot create");
    expect_error("keep.safetensors.tmp");
    cr_assert_eq(rmdir(tmp), 0, "the save must not remove what it did not create");

    size_t n1;
    unsigned char *after = read_bytes(path, &n1);
    cr_assert_eq(n1, n0);
    cr_assert(memcmp(before, after, n0) == 0, "the existing file changed");
    cr_assert_not(exists(tmp));
    free(before);
    free(after);

    /* A failure after the temporary was written (the rename target is a
     * non-empty directory) removes the temporary. */
    const char *dpath = at("isdir.safetensors");
    cr_assert_eq(mkdir(dpath, 0700), 0);
    write_bytes(at("isdir.safetensors/inside"), "x", 1);
    cr_assert_eq(grove_safetensors_save(dpath, 2, names, ab, 0, NULL, NULL), -1);
    expect_error("cannot rename");
    cr_assert_not(exists(at("isdir.safetensors.tmp")));
    cr_assert(exists(at("isdir.safetensors/inside")));

    /* A successful save replaces the file and leaves no temporary. */
    grove_tensor *c = T(GROVE_F32, 1, s3, 7, 8, 9);
    cr_assert_eq(grove_safetensors_save(path, 1, names, &c, 0, NULL, NULL), 0, "%s", grove_last_error());
    cr_assert_not(exists(tmp));
    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    cr_assert_eq(grove_safetensors_count(f), 1);
    grove_tensor *g = grove_safetensors_get(f, "a");
    EXPECT_VALUES(g, 0, 7, 8, 9);
    grove_tensor_release(g);
    grove_safetensors_close(f);
    grove_tensor_release(a);
    grove_tensor_release(b);
    grove_tensor_release(c);
}

/* A tensor that requires grad is saved by value and the tape is untouched. */
Test(safetensors, saves_tensors_that_require_grad)
{
    const int64_t s2[] = {2};
    grove_tensor *a = T(GROVE_F32, 1, s2, 1, 2);
    cr_assert_eq(grove_set_requires_grad(a, true), 0);
    grove_tensor *b = grove_binary_scalar(a, 3, GROVE_MUL, false);
    cr_assert_not_null(b, "%s", grove_last_error());
    grove_tensor *ab[] = {a, b};
    const char *names[] = {"a", "b"};
    const char *path = at("grad.safetensors");
    cr_assert_eq(grove_safetensors_save(path, 2, names, ab, 0, NULL, NULL), 0, "%s", grove_last_error());
    grove_safetensors *f = grove_safetensors_open(path);
    cr_assert_not_null(f, "%s", grove_last_error());
    grove_tensor *g = grove_safetensors_get(f, "b");
    EXPECT_VALUES(g, 0, 3, 6);
    cr_assert_not(g->requires_grad);
    grove_tensor_release(g);
    grove_safetensors_close(f);
    grove_tensor_release(b);
    grove_tensor_release(a);
}

/*
 * fuzz_json.c — grove's JSON parser (core/io/json.c), which reads
 * safetensors headers, config.json, model_index.json and index files: parse
 * with and without its flags, then walk the tree.
 */
#include <stdlib.h>
#include "grove.h"

static int64_t walk(const grove_json *v, int depth)
{
    if (depth > 1000) abort(); /* the parser bounds nesting */
    int64_t n = 1;
    for (const grove_json *c = v->first; c; c = c->next) n += walk(c, depth + 1);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int32_t flags = 0; flags < 2; flags++) {
        grove_json_doc *doc = grove_json_parse((const char *)data, (int64_t)size, flags);
        if (!doc) continue;
        const grove_json *root = grove_json_root(doc);
        if (!root) abort();
        (void)walk(root, 0);
        grove_json_free(doc);
    }
    return 0;
}

/*
 * fuzz_sentencepiece.c — a tokenizer.model file through grove's wrapper
 * (core/io/sentencepiece.cc): load, then ask for what grove.diffusers'
 * tokenizer asks (special ids, pieces of ids, encoding a prompt). The
 * protobuf parsing itself is libsentencepiece's; what is tested here is
 * that nothing the library accepts or returns makes the wrapper misbehave.
 */
#include <stdlib.h>
#include "fuzz_file.h"
#include "grove.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size, ".model");
    grove_spm *m = grove_spm_load(path);
    if (!m) return 0;
    int32_t n = grove_spm_vocab_size(m);
    (void)grove_spm_unk_id(m);
    (void)grove_spm_bos_id(m);
    (void)grove_spm_eos_id(m);
    (void)grove_spm_pad_id(m);
    (void)grove_spm_id_piece(m, -1);
    (void)grove_spm_id_piece(m, n);
    for (int32_t i = 0; i < n && i < 64; i++) {
        const char *p = grove_spm_id_piece(m, i);
        if (p) (void)grove_spm_piece_id(m, p, (int64_t)strlen(p));
    }
    static const char prompt[] = "a photo of two red circles above a blue square";
    int32_t ids[64];
    int64_t k = grove_spm_encode(m, prompt, (int64_t)sizeof prompt - 1, ids, 64);
    if (k > 64) {
        int32_t *all = malloc((size_t)k * sizeof *all);
        if (!all) abort();
        (void)grove_spm_encode(m, prompt, (int64_t)sizeof prompt - 1, all, k);
        free(all);
    }
    grove_spm_free(m);
    return 0;
}

// sentencepiece.cc — the C face of Debian's libsentencepiece (grove.h,
// "SentencePiece tokenizers"). libsentencepiece is C++: every call into it
// sits inside a try block, so no exception ever crosses into C or LuaJIT;
// failures become grove's thread-local error.
#include <sentencepiece_processor.h>

#include <cstdarg>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "grove.h"

extern "C" int32_t gv_fail(const char *fmt, ...);
extern "C" void *gv_fail_null(const char *fmt, ...);

struct grove_spm {
    sentencepiece::SentencePieceProcessor sp;
    std::string path; // names the model in error messages
};

extern "C" grove_spm *grove_spm_load(const char *path)
{
    if (!path) return static_cast<grove_spm *>(gv_fail_null("spm_load: no path given"));
    try {
        // libsentencepiece reports a missing file as a bare "No such file";
        // checking first gives a message that says what was looked for.
        FILE *f = std::fopen(path, "rb");
        if (!f) return static_cast<grove_spm *>(gv_fail_null("spm_load: cannot open the SentencePiece model '%s'", path));
        std::fclose(f);
        // Owned until returned: the library can throw from inside Load
        // (found by fuzz_sentencepiece), and the catch blocks below must not
        // leak the half-loaded model.
        std::unique_ptr<grove_spm> m(new grove_spm);
        m->path = path;
        const sentencepiece::util::Status st = m->sp.Load(path);
        if (!st.ok()) {
            const std::string why = st.ToString();
            return static_cast<grove_spm *>(
                gv_fail_null("spm_load: '%s' is not a valid SentencePiece model: %s", path, why.c_str()));
        }
        if (m->sp.GetPieceSize() <= 0)
            return static_cast<grove_spm *>(gv_fail_null("spm_load: '%s' holds no pieces", path));
        return m.release();
    } catch (const std::exception &e) {
        return static_cast<grove_spm *>(gv_fail_null("spm_load: '%s': %s", path, e.what()));
    } catch (...) {
        return static_cast<grove_spm *>(gv_fail_null("spm_load: '%s': unknown failure in libsentencepiece", path));
    }
}

extern "C" void grove_spm_free(grove_spm *m) { delete m; }

extern "C" int32_t grove_spm_vocab_size(const grove_spm *m) { return m ? m->sp.GetPieceSize() : -1; }
extern "C" int32_t grove_spm_unk_id(const grove_spm *m) { return m ? m->sp.unk_id() : -1; }
extern "C" int32_t grove_spm_bos_id(const grove_spm *m) { return m ? m->sp.bos_id() : -1; }
extern "C" int32_t grove_spm_eos_id(const grove_spm *m) { return m ? m->sp.eos_id() : -1; }
extern "C" int32_t grove_spm_pad_id(const grove_spm *m) { return m ? m->sp.pad_id() : -1; }

extern "C" int32_t grove_spm_piece_id(const grove_spm *m, const char *piece, int64_t len)
{
    if (!m || !piece || len < 0) return gv_fail("spm_piece_id: no model or piece given");
    try {
        return m->sp.PieceToId(std::string_view(piece, static_cast<size_t>(len)));
    } catch (const std::exception &e) {
        return gv_fail("spm_piece_id: '%s': %s", m->path.c_str(), e.what());
    }
}

extern "C" const char *grove_spm_id_piece(const grove_spm *m, int32_t id)
{
    if (!m) return static_cast<const char *>(gv_fail_null("spm_id_piece: no model given"));
    const int32_t n = m->sp.GetPieceSize();
    if (id < 0 || id >= n)
        return static_cast<const char *>(
            gv_fail_null("spm_id_piece: id %d is outside the vocabulary of '%s' (0 .. %d)", id, m->path.c_str(), n - 1));
    try {
        return m->sp.IdToPiece(id).c_str();
    } catch (const std::exception &e) {
        return static_cast<const char *>(gv_fail_null("spm_id_piece: '%s': %s", m->path.c_str(), e.what()));
    }
}

extern "C" int64_t grove_spm_encode(const grove_spm *m, const char *text, int64_t len, int32_t *ids, int64_t cap)
{
    if (!m) return gv_fail("spm_encode: no model given");
    if (len < 0 || (len > 0 && !text)) return gv_fail("spm_encode: no text given");
    if (cap < 0 || (cap > 0 && !ids)) return gv_fail("spm_encode: no room for the ids given");
    try {
        std::vector<int> out;
        const sentencepiece::util::Status st =
            m->sp.Encode(std::string_view(len ? text : "", static_cast<size_t>(len)), &out);
        if (!st.ok()) return gv_fail("spm_encode: '%s': %s", m->path.c_str(), st.ToString().c_str());
        const int64_t n = static_cast<int64_t>(out.size());
        for (int64_t i = 0; i < n && i < cap; i++) ids[i] = out[static_cast<size_t>(i)];
        return n;
    } catch (const std::bad_alloc &) {
        return gv_fail("spm_encode: out of memory encoding %lld bytes with '%s'", static_cast<long long>(len),
                       m->path.c_str());
    } catch (const std::exception &e) {
        return gv_fail("spm_encode: '%s': %s", m->path.c_str(), e.what());
    }
}

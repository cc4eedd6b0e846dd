/* text_case.c — Python's str.lower().strip() on UTF-8, for prompts.
 *
 * diffusers lower-cases and strips every SANA prompt with Python's str
 * methods before tokenizing, so the ids of "Über" depend on Unicode case
 * rules, not ASCII ones. The simple case mapping comes from glibc's C.UTF-8
 * locale (towlower_l); the two places where Python's lower() goes beyond it
 * are done here: U+0130 (İ) becomes "i" + U+0307, and a capital sigma at the
 * end of a word becomes ς (the Final_Sigma rule). "Cased" and
 * "case-ignorable" for that rule are approximated by glibc's upper/lower
 * classes and the common ignorable marks (apostrophes, periods, colons,
 * combining diacritics, modifier letters). */
#define _GNU_SOURCE
#include "internal.h"

#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <wctype.h>

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_open(void) { utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0); }

/* Decodes one code point at s[*i] (advancing *i); -1 when the bytes are not
 * valid UTF-8 (overlong forms, surrogates and values past U+10FFFF too). */
static int32_t utf8_next(const unsigned char *s, int64_t n, int64_t *i)
{
    const unsigned char c = s[*i];
    int32_t cp, need;
    if (c < 0x80) { (*i)++; return c; }
    if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; need = 1; }
    else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; need = 2; }
    else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; need = 3; }
    else return -1;
    if (*i + need >= n) return -1; /* truncated */
    for (int32_t k = 1; k <= need; k++) {
        const unsigned char d = s[*i + k];
        if ((d & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (d & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += need + 1;
    return cp;
}

static int64_t utf8_put(int32_t cp, unsigned char *out, int64_t pos, int64_t cap)
{
    unsigned char b[4];
    int n;
    if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (unsigned char)(0xC0 | (cp >> 6)); b[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (int k = 0; k < n; k++)
        if (pos + k < cap) out[pos + k] = b[k];
    return pos + n;
}

/* str.isspace(): Unicode White_Space plus the ASCII separators 0x1C-0x1F. */
static bool py_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static bool cased(int32_t c) { return iswupper_l((wint_t)c, utf8_locale) || iswlower_l((wint_t)c, utf8_locale); }

static bool case_ignorable(int32_t c)
{
    return c == 0x27 || c == 0x2E || c == 0x3A || c == 0x5E || c == 0x60 || c == 0xA8 || c == 0xAD || c == 0xAF ||
           c == 0xB4 || c == 0xB7 || c == 0xB8 || (c >= 0x2B0 && c <= 0x36F) || c == 0x2018 || c == 0x2019 ||
           c == 0x2024 || c == 0x2027 || c == 0x200B || c == 0x200C || c == 0x200D;
}

int64_t grove_text_lower_strip(const char *text, int64_t len, char *out, int64_t cap)
{
    if (len < 0 || (len > 0 && !text)) return gv_fail("text_lower_strip: no text given");
    if (cap < 0 || (cap > 0 && !out)) return gv_fail("text_lower_strip: no room for the result given");
    pthread_once(&utf8_once, utf8_locale_open);
    if (utf8_locale == (locale_t)0)
        return gv_fail("text_lower_strip: the C.UTF-8 locale is not available (glibc provides it built in)");
    const unsigned char *s = (const unsigned char *)text;
    int32_t *cps = malloc(sizeof *cps * (size_t)(len > 0 ? len : 1));
    if (!cps) return gv_fail("text_lower_strip: out of memory for %lld bytes of text", (long long)len);
    int64_t n = 0;
    for (int64_t i = 0; i < len;) {
        const int64_t at = i;
        const int32_t cp = utf8_next(s, len, &i);
        if (cp < 0) {
            free(cps);
            return gv_fail("text_lower_strip: the text is not valid UTF-8 (byte %lld, 0x%02x)", (long long)at, s[at]);
        }
        cps[n++] = cp;
    }
    int64_t lo = 0, hi = n;
    while (lo < hi && py_space(cps[lo])) lo++;
    while (hi > lo && py_space(cps[hi - 1])) hi--;
    int64_t pos = 0;
    unsigned char *o = (unsigned char *)out;
    for (int64_t i = lo; i < hi; i++) {
        const int32_t c = cps[i];
        if (c == 0x130) {
            pos = utf8_put('i', o, pos, cap);
            pos = utf8_put(0x307, o, pos, cap);
        } else if (c == 0x3A3) {
            /* Final_Sigma looks past the stripped ends too: Python lowers before it strips. */
            int64_t j = i - 1;
            while (j >= 0 && case_ignorable(cps[j])) j--;
            bool final = j >= 0 && cased(cps[j]);
            if (final) {
                j = i + 1;
                while (j < n && case_ignorable(cps[j])) j++;
                final = j == n || !cased(cps[j]);
            }
            pos = utf8_put(final ? 0x3C2 : 0x3C3, o, pos, cap);
        } else {
            pos = utf8_put((int32_t)towlower_l((wint_t)c, utf8_locale), o, pos, cap);
        }
    }
    free(cps);
    return pos;
}

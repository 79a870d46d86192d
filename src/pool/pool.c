#include "pool/pool.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define ELEMENTSOF(a) (sizeof (a) / sizeof (a)[0])

bool pool_name_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > POOL_NAME_CHARS)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("._-", *s))
                        return false;
        return true;
}

int pool_template_format_index(const struct pool_template *t, int64_t i, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s%0*" PRId64 "%s", t->prefix, t->width, t->start + i, t->suffix);
        return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

int pool_template_format_token(const struct pool_template *t, const char *token, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s%s%s", t->prefix, token, t->suffix);
        return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

bool pool_template_match_index(const struct pool_template *t, int64_t size, const char *s, int64_t *ret_index) {
        size_t lp = strlen(t->prefix), ls = strlen(t->suffix), n = strlen(s);
        if (n != lp + (size_t) t->width + ls || strncmp(s, t->prefix, lp) != 0 ||
            strcmp(s + lp + t->width, t->suffix) != 0)
                return false;
        int64_t v = 0;
        for (int k = 0; k < t->width; k++) {
                char c = s[lp + (size_t) k];
                if (!isdigit((unsigned char) c))
                        return false;
                v = v * 10 + (c - '0');
        }
        if (v < t->start || v - t->start >= size)
                return false;
        *ret_index = v - t->start;
        return true;
}

int pool_token_random(enum token_alphabet a, int length, char *buf) {
        static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";
        unsigned char rnd[64];
        size_t used = sizeof rnd;
        if (length < 1 || length > POOL_TOKEN_MAX)
                return -EINVAL;
        for (int i = 0; i < length;) {
                if (used == sizeof rnd) {
                        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
                                return -EIO;
                        used = 0;
                }
                unsigned char b = rnd[used++];
                if (a == TOKEN_ALPHABET_BASE32)
                        buf[i++] = base32[b & 31];
                else if (b < 250) /* 250 = 25 * 10: rejecting the rest keeps digits uniform */
                        buf[i++] = (char) ('0' + b % 10);
        }
        buf[length] = '\0';
        return 0;
}

/* Each enum's words, indexed by value. */
static const char *const pool_kind_words[] = { [POOL_KIND_AUTHENTICATED] = "authenticated",
                                               [POOL_KIND_ANONYMOUS] = "anonymous" };
static const char *const pool_source_words[] = { [POOL_SOURCE_LIST] = "list", [POOL_SOURCE_RANGE] = "range",
                                                 [POOL_SOURCE_WILDCARD] = "wildcard" };
static const char *const impi_mode_words[] = { [IMPI_MODE_SHARED] = "shared", [IMPI_MODE_PER_ENTRY] = "per-entry" };
static const char *const token_alphabet_words[] = { [TOKEN_ALPHABET_BASE32] = "base32",
                                                    [TOKEN_ALPHABET_DIGITS] = "digits" };

/* The word of value v, or fallback for a value outside the enum. */
static const char *word_of(const char *const *words, size_t n, int v, const char *fallback) {
        return v >= 0 && (size_t) v < n ? words[v] : fallback;
}

/* The value whose word is s, or -EINVAL. */
static int value_of(const char *const *words, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (strcmp(s, words[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

/* NAME_to_string() and NAME_from_string() over NAME_words (as systemd's
 * DEFINE_STRING_TABLE_LOOKUP). A value outside the enum reads as fallback. */
#define DEFINE_WORDS(name, type, fallback)                                                      \
        const char *name##_to_string(type v) {                                                  \
                return word_of(name##_words, ELEMENTSOF(name##_words), (int) v, fallback);      \
        }                                                                                       \
        int name##_from_string(const char *s, type *ret) {                                      \
                int v = value_of(name##_words, ELEMENTSOF(name##_words), s);                    \
                if (v < 0)                                                                      \
                        return v;                                                               \
                *ret = (type) v;                                                                \
                return 0;                                                                       \
        }

/* Anything but anonymous is the stricter kind. */
DEFINE_WORDS(pool_kind, enum pool_kind, "authenticated")
DEFINE_WORDS(pool_source, enum pool_source, "?")
DEFINE_WORDS(impi_mode, enum impi_mode, "per-entry")
DEFINE_WORDS(token_alphabet, enum token_alphabet, "base32")

/* Whether two range templates generate a common identity, exactly, whatever
 * their prefixes and widths ("sip:+1555{00..99}" and "sip:+15550{0..9}" do).
 * Both strings have the same length L. Over the window W of positions where
 * either has its number, each template fixes the other positions (they must be
 * digits), so its identities read as W-digit numbers form an arithmetic
 * progression: an interval with a step of 10^(digits after its number in W)
 * and a fixed remainder. Steps are powers of ten, so one divides the other and
 * the intersection is found by one congruence. */
bool pool_ranges_overlap(const struct pool_template *a, const struct pool_template *b) {
        size_t pa = strlen(a->prefix), pb = strlen(b->prefix);
        size_t len = pa + (size_t) a->width + strlen(a->suffix);
        if (len != pb + (size_t) b->width + strlen(b->suffix))
                return false;
        size_t lo = pa < pb ? pa : pb;
        size_t hi_a = pa + (size_t) a->width, hi_b = pb + (size_t) b->width;
        size_t hi = hi_a > hi_b ? hi_a : hi_b;
        if (hi - lo > 36)
                return true; /* beyond 128-bit arithmetic: assume the worst */

        /* Character i of template t: a fixed char, or 0 inside its number. */
#define FIXED(t, p, i) ((i) < (p) ? (t)->prefix[i] : (i) < (p) + (size_t) (t)->width ? 0 : (t)->suffix[(i) - (p) - (size_t) (t)->width])
        for (size_t i = 0; i < len; i++) {
                char ca = FIXED(a, pa, i), cb = FIXED(b, pb, i);
                if (i >= lo && i < hi) {
                        if ((ca && !isdigit((unsigned char) ca)) || (cb && !isdigit((unsigned char) cb)))
                                return false;
                        if (ca && cb && ca != cb)
                                return false;
                } else if (tolower((unsigned char) ca) != tolower((unsigned char) cb))
                        return false;
        }
        struct ap { __int128 first, last, step, rem; } ap[2];
        const struct pool_template *t[2] = { a, b };
        size_t p[2] = { pa, pb };
        for (int k = 0; k < 2; k++) {
                __int128 high = 0, low = 0, step = 1;
                for (size_t i = lo; i < p[k]; i++)
                        high = high * 10 + (FIXED(t[k], p[k], i) - '0');
                for (size_t i = p[k] + (size_t) t[k]->width; i < hi; i++) {
                        low = low * 10 + (FIXED(t[k], p[k], i) - '0');
                        step *= 10;
                }
                __int128 scale = step;
                for (int w = 0; w < t[k]->width; w++)
                        scale *= 10;
                ap[k].step = step;
                ap[k].rem = low;
                ap[k].first = high * scale + (__int128) t[k]->start * step + low;
                ap[k].last = high * scale + (__int128) (t[k]->start + t[k]->count - 1) * step + low;
        }
#undef FIXED
        struct ap *fine = ap[0].step <= ap[1].step ? &ap[0] : &ap[1];
        struct ap *coarse = fine == &ap[0] ? &ap[1] : &ap[0];
        if (coarse->rem % fine->step != fine->rem)
                return false;
        __int128 from = ap[0].first > ap[1].first ? ap[0].first : ap[1].first;
        __int128 to = ap[0].last < ap[1].last ? ap[0].last : ap[1].last;
        if (from > to)
                return false;
        __int128 x = from + ((coarse->rem - from) % coarse->step + coarse->step) % coarse->step;
        return x <= to;
}

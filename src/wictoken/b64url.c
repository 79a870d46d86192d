/* base64url decoding for JWS segments and JWK members. GnuTLS has a base64
 * decoder (gnutls_base64_decode2) but not for the URL alphabet, and JWS
 * forbids padding, which a strict decoder must refuse rather than skip. */
#include "internal.h"

/* 0..63 for the alphabet, 0xff for anything else. */
static const unsigned char DECODE[256] = {
#define X 0xff
        X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
        X, X, X, X, X, X, X, X, X, X, X, X, X, 62, X, X,
        52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
        X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
        15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63,
        X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
        41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
        X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
        X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
        X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
        X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
#undef X
};

long wt_b64url_decode(const char *in, size_t len, unsigned char *out) {
        size_t o = 0, i = 0;
        if (len % 4 == 1)
                return -1;
        for (; i + 4 <= len; i += 4) {
                unsigned a = DECODE[(unsigned char) in[i]], b = DECODE[(unsigned char) in[i + 1]],
                         c = DECODE[(unsigned char) in[i + 2]], d = DECODE[(unsigned char) in[i + 3]];
                if ((a | b | c | d) == 0xff || a > 63 || b > 63 || c > 63 || d > 63)
                        return -1;
                unsigned v = a << 18 | b << 12 | c << 6 | d;
                out[o++] = (unsigned char) (v >> 16);
                out[o++] = (unsigned char) (v >> 8);
                out[o++] = (unsigned char) v;
        }
        size_t rest = len - i;
        if (rest == 2 || rest == 3) {
                unsigned a = DECODE[(unsigned char) in[i]], b = DECODE[(unsigned char) in[i + 1]];
                unsigned c = rest == 3 ? DECODE[(unsigned char) in[i + 2]] : 0;
                if (a > 63 || b > 63 || c > 63)
                        return -1;
                /* The bits past the last whole byte must be zero: otherwise
                 * two encodings decode alike (a changed token that still
                 * verifies). */
                if (rest == 2 && (b & 0x0f))
                        return -1;
                if (rest == 3 && (c & 0x03))
                        return -1;
                unsigned v = a << 18 | b << 12 | c << 6;
                out[o++] = (unsigned char) (v >> 16);
                if (rest == 3)
                        out[o++] = (unsigned char) (v >> 8);
        }
        return (long) o;
}

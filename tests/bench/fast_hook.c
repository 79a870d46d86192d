/* A fast eligibility helper for the wwsfd benchmark (bench_wwsfd.py): the
 * protocol of pool-config/hooks/README.md, in C, so that the hook is not
 * what limits the anonymous token rate being measured. It admits every
 * request whose evidence has a non-empty "name" and an "email" with an '@'
 * (a crude stand-in for personal-info's checks: no JSON library, no
 * allocation per request), and answers everything else not eligible.
 *
 * One request per line on stdin, one answer per line on stdout, flushed;
 * exits at end of file. Never used outside the benchmarks. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define LINE_MAX_BYTES (128 * 1024 + 2)

static char line[LINE_MAX_BYTES];

/* Copies the string value of "key" (no escapes inside: ids are digits) into
 * out; false when absent or too long. */
static bool string_value(const char *text, const char *key, char *out, size_t size) {
        const char *p = strstr(text, key);
        if (!p)
                return false;
        p += strlen(key);
        while (*p == ' ' || *p == ':')
                p++;
        if (*p != '"')
                return false;
        p++;
        size_t n = 0;
        while (p[n] && p[n] != '"' && p[n] != '\\') {
                if (n + 1 >= size)
                        return false;
                out[n] = p[n];
                n++;
        }
        if (p[n] != '"')
                return false;
        out[n] = '\0';
        return true;
}

int main(void) {
        setvbuf(stdout, NULL, _IOFBF, 4096);
        while (fgets(line, sizeof line, stdin)) {
                char id[32], name[256], email[256];
                const char *evidence = strstr(line, "\"evidence\"");
                if (!string_value(line, "\"id\"", id, sizeof id)) {
                        fputs("{\"id\":null,\"eligible\":false,\"reason\":\"malformed request\"}\n", stdout);
                } else if (evidence && string_value(evidence, "\"name\"", name, sizeof name) && name[0] &&
                           string_value(evidence, "\"email\"", email, sizeof email) && strchr(email, '@')) {
                        printf("{\"id\":\"%s\",\"eligible\":true}\n", id);
                } else {
                        printf("{\"id\":\"%s\",\"eligible\":false,\"reason\":\"please give your name and email\"}\n",
                               id);
                }
                if (fflush(stdout) != 0)
                        return 0;       /* the daemon is gone */
        }
        return 0;
}

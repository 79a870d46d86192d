#include "config/ini_file.h"

#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

/* inih (Debian build) reads lines into INI_MAX_LINE bytes: the characters, the
 * newline and the NUL. The reader refuses longer lines instead of letting
 * inih split them into two. */
#define LINE_MAX_CHARS (INI_MAX_LINE - 2)

__attribute__((format(printf, 2, 3)))
static void report(struct ini_file *f, const char *fmt, ...) {
        char msg[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        f->on_error(f, f->line, msg);
}

/* fgets-style reader that counts lines, notes section headers and flags the
 * lines inih would drop or split. */
static char *counting_reader(char *str, int num, void *stream) {
        struct ini_file *f = stream;
        if (!fgets(str, num, f->stream))
                return NULL;
        f->line++;
        size_t n = strlen(str);
        if (n > 0 && str[n - 1] != '\n' && !feof(f->stream)) {
                report(f, "line longer than %d characters", LINE_MAX_CHARS);
                int c;
                while ((c = fgetc(f->stream)) != EOF && c != '\n')
                        ;
                str[0] = '\0';
                return str;
        }
        char *p = str;
        while (*p == ' ' || *p == '\t')
                p++;
        if (*p == '[') {
                char *end = strchr(p, ']');
                if (!end) {
                        report(f, "section header without ']'");
                        str[0] = '\0';
                        return str;
                }
                struct ini_section *s = reallocarray(f->sections, f->n_sections + 1, sizeof *s);
                if (!s)
                        abort();
                f->sections = s;
                f->sections[f->n_sections++] = (struct ini_section) {
                        .name = strndup(p + 1, (size_t) (end - p - 1)), .line = f->line,
                };
        } else if (*p && *p != '\n' && *p != '\r' && *p != ';' && *p != '#' && p == str && !strchr(p, '=')) {
                report(f, "expected 'key = value', a [section] or a comment");
                str[0] = '\0';
        }
        return str;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
        struct ini_file *f = user;
        for (size_t i = f->n_sections; i > 0; i--)
                if (strcmp(f->sections[i - 1].name, section) == 0) {
                        f->sections[i - 1].has_keys = true;
                        break;
                }
        f->on_key(f, section, name, value);
        return 1;
}

int ini_file_parse(struct ini_file *f) {
        f->stream = fopen(f->path, "re");
        if (!f->stream)
                return -errno;
        f->line = 0;
        int r = ini_parse_stream(counting_reader, f, handler, f);
        bool read_error = ferror(f->stream);
        fclose(f->stream);
        f->stream = NULL;
        if (r == -1 || read_error)
                return -EIO;
        for (size_t i = 0; i < f->n_sections; i++)
                if (!f->sections[i].has_keys) {
                        f->line = f->sections[i].line;
                        report(f, "section [%s] has no keys", f->sections[i].name);
                }
        return 0;
}

int ini_file_section_line(const struct ini_file *f, const char *section) {
        for (size_t i = f->n_sections; i > 0; i--)
                if (strcmp(f->sections[i - 1].name, section) == 0)
                        return f->sections[i - 1].line;
        return 0;
}

void ini_file_done(struct ini_file *f) {
        for (size_t i = 0; i < f->n_sections; i++)
                free(f->sections[i].name);
        free(f->sections);
        f->sections = NULL;
        f->n_sections = 0;
}

void config_error_add(char ***errors, size_t *n, const char *file, int line, const char *fmt, va_list ap) {
        char msg[512], *e;
        vsnprintf(msg, sizeof msg, fmt, ap);
        char **list = reallocarray(*errors, *n + 1, sizeof *list);
        if (!list || asprintf(&e, "%s:%d: %s", file, line, msg) < 0)
                abort();
        *errors = list;
        list[(*n)++] = e;
}

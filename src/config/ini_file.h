/* Reading an INI file with libinih while knowing the line of every key, so
 * that each problem can be reported as FILE:LINE: reason. Shared by the pool
 * configuration and the wwsfd configuration. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct ini_file {
        const char *path;
        /* Called for every key = value, with line set to the key's line;
         * section is "" before the first header. Return 0 to go on. */
        int (*on_key)(struct ini_file *f, const char *section, const char *name, const char *value);
        /* Called for every syntax problem the reader finds itself. */
        void (*on_error)(struct ini_file *f, int line, const char *message);

        int line;               /* the line being read */
        FILE *stream;
        struct ini_section {
                char *name;
                int line;
                bool has_keys;
        } *sections;
        size_t n_sections;
};

/* Parses f->path; sections that end up without keys are reported through
 * on_error. Returns 0, or -errno when the file cannot be opened or read. */
int ini_file_parse(struct ini_file *f);

/* The header line of the last section named `section` (0 if none). */
int ini_file_section_line(const struct ini_file *f, const char *section);

void ini_file_done(struct ini_file *f);

/* Appends "FILE:LINE: message" to a list of problems (aborts when out of
 * memory: a configuration that cannot be reported is not worth going on). */
__attribute__((format(printf, 5, 0)))
void config_error_add(char ***errors, size_t *n, const char *file, int line, const char *fmt, va_list ap);

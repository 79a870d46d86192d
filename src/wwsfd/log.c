/* Logging: a line per message, written in one call so that lines from
 * threads do not interleave. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wwsfd/log.h"

static _Atomic int current_level = LOG_INFO;
static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_set_level(enum log_level level) {
        current_level = level;
}

int log_level_from_string(const char *s, enum log_level *ret) {
        for (int i = 0; i < 4; i++)
                if (strcmp(s, level_names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...) {
        if ((int) level > current_level)
                return;
        char line[1024];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = (int) strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof line - (size_t) n, ".%03ldZ wwsfd %s: ", ts.tv_nsec / 1000000,
                      level_names[level]);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - (size_t) n, fmt, ap);
        va_end(ap);
        size_t len = strnlen(line, sizeof line - 2);
        line[len++] = '\n';
        fwrite(line, 1, len, stderr);
}

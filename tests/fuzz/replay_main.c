/* main() of the fuzz targets in ordinary builds: runs LLVMFuzzerTestOneInput
 * once on each file named on the command line and on each file of each
 * directory named (not recursing), in name order, as libFuzzer does with
 * -runs=0. That is how the saved corpora replay as tests, under the
 * sanitizers in a sanitizer build. Exits 1 when a path cannot be read or
 * when nothing at all was replayed (a corpus path that went wrong). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Corpus inputs are small (the targets are fuzzed with -max_len=65536); a
 * file larger than this is not an input. */
#define REPLAY_FILE_MAX (16u * 1024 * 1024)

static int replay_file(const char *path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        struct stat st;
        if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (unsigned long long) st.st_size > REPLAY_FILE_MAX) {
                fprintf(stderr, "%s: not a corpus file (unreadable or over %u bytes)\n", path, REPLAY_FILE_MAX);
                fclose(f);
                return -1;
        }
        size_t size = (size_t) st.st_size;
        /* Exactly the input's size, so that ASan sees a read past its end. */
        uint8_t *data = malloc(size ? size : 1);
        if (!data || fread(data, 1, size, f) != size) {
                fprintf(stderr, "%s: cannot read %zu bytes\n", path, size);
                free(data);
                fclose(f);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        return 0;
}

static int not_hidden(const struct dirent *e) {
        return e->d_name[0] != '.';
}

/* Replays the regular files of a directory; returns how many, or -1. */
static long replay_dir(const char *dir) {
        struct dirent **names;
        int n = scandir(dir, &names, not_hidden, alphasort);
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -1;
        }
        long count = 0;
        for (int i = 0; i < n; i++) {
                char path[4096];
                struct stat st;
                int len = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
                if (len < 0 || (size_t) len >= sizeof path || stat(path, &st) < 0) {
                        fprintf(stderr, "%s/%s: cannot stat\n", dir, names[i]->d_name);
                        count = -1;
                } else if (S_ISREG(st.st_mode) && count >= 0) {
                        if (replay_file(path) < 0)
                                count = -1;
                        else
                                count++;
                }
                free(names[i]);
        }
        free(names);
        return count;
}

int main(int argc, char **argv) {
        long total = 0;
        int status = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                long n;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        status = 1;
                        continue;
                }
                if (S_ISDIR(st.st_mode))
                        n = replay_dir(argv[i]);
                else
                        n = replay_file(argv[i]) < 0 ? -1 : 1;
                if (n < 0) {
                        status = 1;
                        continue;
                }
                printf("%s: %ld inputs\n", argv[i], n);
                total += n;
        }
        printf("replayed %ld inputs from %d paths\n", total, argc - 1);
        if (total == 0) {
                fprintf(stderr, "nothing replayed\n");
                status = 1;
        }
        return status;
}

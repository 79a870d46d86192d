/* What every fuzz target of tests/fuzz/ defines (libFuzzer's entry point,
 * also called by replay_main.c in ordinary builds) and how it reports a
 * broken invariant: loudly, with abort(), so that libFuzzer keeps the input
 * and the replay test fails. */
#ifndef WWSF_FUZZ_H
#define WWSF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

#endif

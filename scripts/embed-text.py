#!/usr/bin/env python3
"""Turns a text file into a C string the program serves as it is (build step):

    embed-text.py OUT.c SYMBOL INPUT

writes `const char SYMBOL[]` (the file's bytes) and `const size_t SYMBOL_len`."""
import sys

out, symbol, path = sys.argv[1:4]
with open(path, "rb") as f:
    data = f.read()
with open(out, "w") as f:
    f.write("/* Generated from %s by scripts/embed-text.py. Do not edit. */\n" % path.split("/")[-1])
    f.write("#include <stddef.h>\n\n")
    f.write("const char %s[] =\n" % symbol)
    for i in range(0, len(data), 64):
        chunk = data[i:i + 64]
        f.write('        "' + "".join("\\x%02x" % b for b in chunk) + '"\n')
    if not data:
        f.write('        ""\n')
    f.write(";\n")
    f.write("const size_t %s_len = %d;\n" % (symbol, len(data)))

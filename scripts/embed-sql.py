#!/usr/bin/env python3
"""Turns sql/NNNN-*.sql into a C array the store applies in order (build step)."""
import os
import re
import sys

out, inputs = sys.argv[1], sys.argv[2:]
inputs.sort(key=os.path.basename)
with open(out, "w") as f:
    f.write("/* Generated from sql/ by scripts/embed-sql.py. Do not edit. */\n")
    f.write('#include "store/migrations.h"\n\n')
    f.write("const struct store_migration store_migrations[] = {\n")
    for n, path in enumerate(inputs, 1):
        name = os.path.basename(path)
        m = re.match(r"^(\d{4})-[a-z0-9-]+\.sql$", name)
        if not m or int(m.group(1)) != n:
            sys.exit(f"{path}: migrations must be numbered 0001, 0002, ... without gaps")
        with open(path) as src:
            text = src.read()
        lit = "".join(
            '        "' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"\n'
            for line in text.splitlines()
        )
        f.write(f'    {{ {n}, "{name}",\n{lit}    }},\n')
    f.write("};\n")
    f.write(f"const int store_migrations_count = {len(inputs)};\n")

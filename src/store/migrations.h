#pragma once

/* One schema step from sql/, compiled in by scripts/embed-sql.py. */
struct store_migration {
        int version;
        const char *name;
        const char *sql;
};

extern const struct store_migration store_migrations[];
extern const int store_migrations_count;

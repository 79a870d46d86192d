#include "config/daemon_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "config/ini_file.h"
#include "config/pool_config.h"

struct parse_state {
        struct ini_file ini;    /* first: callbacks cast back */
        struct daemon_config *cfg;
        char *dir;              /* directory of the file, for relative paths */
        char seen[96][48];      /* "section.key" seen, for duplicates */
        size_t n_seen;
};

static char *xstrdup(const char *s) {
        char *r = strdup(s);
        if (!r)
                abort();
        return r;
}

__attribute__((format(printf, 3, 4)))
static void add_error(struct daemon_config *cfg, int line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        config_error_add(&cfg->errors, &cfg->n_errors, cfg->file, line, fmt, ap);
        va_end(ap);
}

static void set_string(char **dst, const char *value) {
        free(*dst);
        *dst = xstrdup(value);
}

/* Paths in the file are relative to the file's own directory. */
static char *path_value(struct parse_state *st, const char *value) {
        if (value[0] == '/')
                return xstrdup(value);
        char *r;
        if (asprintf(&r, "%s/%s", st->dir, value) < 0)
                abort();
        return r;
}

static bool parse_listen(struct daemon_config *cfg, const char *value) {
        const char *colon = strrchr(value, ':');
        if (!colon)
                return false;
        char host[64];
        size_t n = (size_t) (colon - value);
        if (value[0] == '[') {
                if (n < 2 || value[n - 1] != ']' || n - 2 >= sizeof host)
                        return false;
                memcpy(host, value + 1, n - 2);
                host[n - 2] = '\0';
        } else {
                if (n == 0 || n >= sizeof host)
                        return false;
                memcpy(host, value, n);
                host[n] = '\0';
        }
        int64_t port;
        if (!wwsf_is_ip_address(host) || wwsf_parse_int(colon + 1, 0, 65535, &port) < 0)
                return false;
        set_string(&cfg->listen_host, host);
        cfg->listen_port = (uint16_t) port;
        return true;
}

/* "10/m" or "10": requests per minute; 0 disables the limit. */
static int parse_rate(const char *value, int *ret) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s", value);
        char *slash = strchr(buf, '/');
        if (slash) {
                if (strcmp(slash, "/m") != 0 && strcmp(slash, "/min") != 0)
                        return -EINVAL;
                *slash = '\0';
        }
        int64_t v;
        if (wwsf_parse_int(buf, 0, 1000000, &v) < 0)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

static int split_words(const char *value, char **out, size_t max, size_t *ret_n) {
        char *copy = xstrdup(value), *save = NULL;
        size_t n = 0;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (n == max) {
                        free(copy);
                        return -E2BIG;
                }
                out[n++] = xstrdup(w);
        }
        free(copy);
        *ret_n = n;
        return 0;
}

#define KEY(sec, key) (strcmp(section, sec) == 0 && strcmp(name, key) == 0)

static void handle_key(struct parse_state *st, const char *section, const char *name, const char *value) {
        struct daemon_config *cfg = st->cfg;
        int line = st->ini.line;
        int64_t v;
        bool b;

        char full[48];
        snprintf(full, sizeof full, "%s.%s", section, name);
        bool repeatable = KEY("ldap", "group_pool") || KEY("store", "pool_config");
        if (!repeatable) {
                for (size_t i = 0; i < st->n_seen; i++)
                        if (strcmp(st->seen[i], full) == 0) {
                                add_error(cfg, line, "key '%s' given twice in [%s]", name, section);
                                return;
                        }
                if (st->n_seen < sizeof st->seen / sizeof st->seen[0])
                        snprintf(st->seen[st->n_seen++], sizeof st->seen[0], "%s", full);
        }
        if (!*value) {
                add_error(cfg, line, "key '%s' has no value", name);
                return;
        }

#define DURATION(field, min)                                                                      \
        do {                                                                                      \
                if (wwsf_parse_duration(value, &v) < 0 || v < (min))                              \
                        add_error(cfg, line, "%s: expected a duration such as 30s, 5m or 1h (at least %ds)", \
                                  name, (int) (min));                                             \
                else                                                                              \
                        cfg->field = v;                                                           \
        } while (0)
#define DURATION_MS(field, min)                                                                   \
        do {                                                                                      \
                if (wwsf_parse_duration_ms(value, &v) < 0 || v < (min))                           \
                        add_error(cfg, line, "%s: expected a duration such as 500ms, 2s or 1m", name); \
                else                                                                              \
                        cfg->field = v;                                                           \
        } while (0)
#define INTEGER(field, min, max)                                                                  \
        do {                                                                                      \
                if (wwsf_parse_int(value, min, max, &v) < 0)                                      \
                        add_error(cfg, line, "%s: expected a number from %d to %d", name, (int) (min), (int) (max)); \
                else                                                                              \
                        cfg->field = (typeof(cfg->field)) v;                                      \
        } while (0)
#define BOOLEAN(field)                                                                            \
        do {                                                                                      \
                if (wwsf_parse_bool(value, &b) < 0)                                               \
                        add_error(cfg, line, "%s: expected yes or no", name);                     \
                else                                                                              \
                        cfg->field = b;                                                           \
        } while (0)
#define RATE(field)                                                                               \
        do {                                                                                      \
                if (parse_rate(value, &cfg->field) < 0)                                           \
                        add_error(cfg, line, "%s: expected requests per minute, such as 20/m (0 = no limit)", name); \
        } while (0)

        if (KEY("server", "listen")) {
                if (!parse_listen(cfg, value))
                        add_error(cfg, line, "listen: expected ADDRESS:PORT, such as 0.0.0.0:8443 or [::1]:8443");
        } else if (KEY("server", "tls_cert")) {
                free(cfg->tls_cert);
                cfg->tls_cert = path_value(st, value);
        } else if (KEY("server", "tls_key")) {
                free(cfg->tls_key);
                cfg->tls_key = path_value(st, value);
        } else if (KEY("server", "tls_priorities"))
                set_string(&cfg->tls_priorities, value);
        else if (KEY("server", "web_root")) {
                free(cfg->web_root);
                cfg->web_root = path_value(st, value);
        } else if (KEY("server", "public_url")) {
                size_t n = strlen(value);
                if (strncmp(value, "https://", 8) != 0 || n <= 8 || value[n - 1] == '/' || strchr(value + 8, '/'))
                        add_error(cfg, line, "public_url: expected an https origin without a path, such as https://wwsf.example.com");
                else
                        set_string(&cfg->public_url, value);
        } else if (KEY("server", "threads"))
                INTEGER(threads, 1, 256);
        else if (KEY("server", "max_connections"))
                INTEGER(max_connections, 1, 100000);
        else if (KEY("server", "max_connections_per_ip"))
                INTEGER(max_connections_per_ip, 1, 100000);
        else if (KEY("server", "connection_timeout"))
                DURATION(connection_timeout, 1);
        else if (KEY("server", "header_limit"))
                INTEGER(header_limit, 4096, 1048576);
        else if (KEY("server", "shutdown_grace"))
                DURATION(shutdown_grace, 0);
        else if (KEY("server", "log_level")) {
                if (strcmp(value, "error") && strcmp(value, "warning") && strcmp(value, "info") && strcmp(value, "debug"))
                        add_error(cfg, line, "log_level: expected error, warning, info or debug");
                else
                        set_string(&cfg->log_level, value);
        } else if (KEY("store", "db")) {
                free(cfg->db);
                cfg->db = path_value(st, value);
        } else if (KEY("store", "pool_config")) {
                /* Space-separated files or globs, relative to this file. */
                char *words[DAEMON_MAX_POOL_FILES];
                size_t n = 0;
                if (split_words(value, words, DAEMON_MAX_POOL_FILES, &n) < 0) {
                        add_error(cfg, line, "pool_config: more than %d entries", DAEMON_MAX_POOL_FILES);
                        return;
                }
                for (size_t i = 0; i < n; i++) {
                        char *pattern = path_value(st, words[i]);
                        glob_t g;
                        int gr = glob(pattern, GLOB_NOCHECK, NULL, &g);
                        for (size_t k = 0; gr == 0 && k < g.gl_pathc; k++) {
                                if (cfg->n_pool_files == DAEMON_MAX_POOL_FILES) {
                                        add_error(cfg, line, "pool_config: more than %d files", DAEMON_MAX_POOL_FILES);
                                        break;
                                }
                                cfg->pool_files[cfg->n_pool_files++] = xstrdup(g.gl_pathv[k]);
                        }
                        if (gr == 0)
                                globfree(&g);
                        free(pattern);
                        free(words[i]);
                }
        } else if (KEY("store", "reclaim_interval"))
                DURATION(reclaim_interval, 1);
        else if (KEY("store", "sync")) {
                if (strcmp(value, "full") && strcmp(value, "normal"))
                        add_error(cfg, line, "sync: expected full or normal");
                else
                        set_string(&cfg->sync, value);
        } else if (KEY("tokens", "keys_dir")) {
                free(cfg->keys_dir);
                cfg->keys_dir = path_value(st, value);
        } else if (KEY("tokens", "token_ttl"))
                DURATION(token_ttl, 10);
        else if (KEY("tokens", "audience"))
                set_string(&cfg->audience, value);
        else if (KEY("tokens", "wwsf_id"))
                set_string(&cfg->wwsf_id, value);
        else if (KEY("epcscf", "uri")) {
                /* Its origin goes into the pages' Content-Security-Policy:
                 * nothing there may end or split a directive. */
                if (strncmp(value, "wss://", 6) != 0 || strlen(value) <= 6 || strcspn(value + 6, "/?#") == 0)
                        add_error(cfg, line, "uri: expected a wss:// URI (the WIC connects over secure WebSocket)");
                else if (strpbrk(value, " \t;,'\"\\"))
                        add_error(cfg, line, "uri: spaces, quotes, ';' and ',' are not allowed in the URI");
                else
                        set_string(&cfg->epcscf_uri, value);
        } else if (KEY("session", "ttl"))
                DURATION(session_ttl, 60);
        else if (KEY("session", "max_sessions"))
                INTEGER(max_sessions, 1, 16777216);
        else if (KEY("anonymous", "enabled"))
                BOOLEAN(anonymous_enabled);
        else if (KEY("anonymous", "hook")) {
                size_t n = 0;
                for (char **a = cfg->hook_argv; *a; a++) {
                        free(*a);
                        *a = NULL;
                }
                if (split_words(value, cfg->hook_argv, DAEMON_MAX_HOOK_ARGS, &n) < 0)
                        add_error(cfg, line, "hook: more than %d words", DAEMON_MAX_HOOK_ARGS);
                else if (cfg->hook_argv[0][0] != '/') {
                        char *abs = path_value(st, cfg->hook_argv[0]);
                        free(cfg->hook_argv[0]);
                        cfg->hook_argv[0] = abs;
                }
        } else if (KEY("anonymous", "hook_helpers"))
                INTEGER(hook_helpers, 1, 64);
        else if (KEY("anonymous", "hook_timeout"))
                DURATION_MS(hook_timeout_ms, 1);
        else if (KEY("anonymous", "pool"))
                set_string(&cfg->anonymous_pool, value);
        else if (KEY("ldap", "enabled"))
                BOOLEAN(ldap_enabled);
        else if (KEY("ldap", "uris")) {
                if (split_words(value, cfg->ldap_uris, DAEMON_MAX_LDAP_URIS, &cfg->n_ldap_uris) < 0)
                        add_error(cfg, line, "uris: more than %d URIs", DAEMON_MAX_LDAP_URIS);
                for (size_t i = 0; i < cfg->n_ldap_uris; i++)
                        if (strncmp(cfg->ldap_uris[i], "ldap://", 7) && strncmp(cfg->ldap_uris[i], "ldaps://", 8))
                                add_error(cfg, line, "uris: '%s' is not an ldap:// or ldaps:// URI", cfg->ldap_uris[i]);
        } else if (KEY("ldap", "starttls"))
                BOOLEAN(ldap_starttls);
        else if (KEY("ldap", "ca_file")) {
                free(cfg->ldap_ca_file);
                cfg->ldap_ca_file = path_value(st, value);
        } else if (KEY("ldap", "bind_dn"))
                set_string(&cfg->ldap_bind_dn, value);
        else if (KEY("ldap", "bind_password_file")) {
                free(cfg->ldap_bind_password_file);
                cfg->ldap_bind_password_file = path_value(st, value);
        } else if (KEY("ldap", "bind_password"))
                add_error(cfg, line, "bind_password: put the password in a file and name it with bind_password_file");
        else if (KEY("ldap", "base_dn"))
                set_string(&cfg->ldap_base_dn, value);
        else if (KEY("ldap", "user_attribute"))
                set_string(&cfg->ldap_user_attribute, value);
        else if (KEY("ldap", "impu_attribute"))
                set_string(&cfg->ldap_impu_attribute, value);
        else if (KEY("ldap", "impi_attribute"))
                set_string(&cfg->ldap_impi_attribute, value);
        else if (KEY("ldap", "group_attribute"))
                set_string(&cfg->ldap_group_attribute, value);
        else if (KEY("ldap", "timeout")) {
                DURATION(ldap_timeout_ms, 1);
                if (cfg->ldap_timeout_ms < 1000000)
                        cfg->ldap_timeout_ms *= 1000;
        } else if (KEY("ldap", "connections"))
                INTEGER(ldap_connections, 1, 64);
        else if (KEY("ldap", "pool"))
                set_string(&cfg->ldap_pool, value);
        else if (KEY("ldap", "group_pool")) {
                /* "GROUP-DN POOL": the last word is the pool, the rest the DN. */
                const char *sp = strrchr(value, ' ');
                if (!sp || sp == value || !sp[1])
                        add_error(cfg, line, "group_pool: expected 'GROUP-DN POOL'");
                else if (cfg->n_group_pools == DAEMON_MAX_GROUP_POOLS)
                        add_error(cfg, line, "group_pool: more than %d", DAEMON_MAX_GROUP_POOLS);
                else {
                        struct daemon_group_pool *g = &cfg->group_pools[cfg->n_group_pools++];
                        g->group_dn = strndup(value, (size_t) (sp - value));
                        g->pool = xstrdup(sp + 1);
                }
        } else if (KEY("throttle", "login_per_ip"))
                RATE(login_per_ip_per_minute);
        else if (KEY("throttle", "login_per_user"))
                RATE(login_per_user_per_minute);
        else if (KEY("throttle", "anonymous_per_ip"))
                RATE(anonymous_per_ip_per_minute);
        else if (KEY("throttle", "refresh_per_session"))
                RATE(refresh_per_session_per_minute);
        else if (KEY("throttle", "portal_per_key"))
                RATE(portal_per_key_per_minute);
        else if (!*section)
                add_error(cfg, line, "key '%s' outside any section", name);
        else if (strcmp(section, "server") && strcmp(section, "store") && strcmp(section, "tokens") &&
                 strcmp(section, "epcscf") && strcmp(section, "session") && strcmp(section, "anonymous") &&
                 strcmp(section, "ldap") && strcmp(section, "throttle"))
                add_error(cfg, line, "unknown section [%s]", section);
        else
                add_error(cfg, line, "unknown key '%s' in [%s]", name, section);
}

static int on_key(struct ini_file *f, const char *section, const char *name, const char *value) {
        handle_key((struct parse_state *) f, section, name, value);
        return 0;
}

static void on_error(struct ini_file *f, int line, const char *message) {
        add_error(((struct parse_state *) f)->cfg, line, "%s", message);
}

static void set_defaults(struct daemon_config *cfg) {
        cfg->listen_host = xstrdup("127.0.0.1");
        cfg->listen_port = 8443;
        /* TLS 1.2 and 1.3 only; GnuTLS's NORMAL cipher suites otherwise. */
        cfg->tls_priorities = xstrdup("NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE");
        cfg->threads = 4;
        cfg->max_connections = 1024;
        cfg->max_connections_per_ip = 64;
        cfg->connection_timeout = 15;
        cfg->header_limit = 32768;
        cfg->shutdown_grace = 10;
        cfg->log_level = xstrdup("info");
        cfg->db = xstrdup("/var/lib/wwsf/wwsf.db");
        cfg->reclaim_interval = 10;
        cfg->sync = xstrdup("full");
        cfg->keys_dir = xstrdup("/var/lib/wwsf/keys");
        cfg->token_ttl = 300;
        cfg->session_ttl = 8 * 3600;
        cfg->max_sessions = 1 << 20;
        cfg->anonymous_enabled = true;
        cfg->hook_helpers = 4;
        cfg->hook_timeout_ms = 2000;
        cfg->ldap_enabled = true;
        cfg->ldap_starttls = false;
        cfg->ldap_user_attribute = xstrdup("uid");
        cfg->ldap_impu_attribute = xstrdup("imsPublicIdentity");
        cfg->ldap_impi_attribute = xstrdup("imsPrivateIdentity");
        cfg->ldap_group_attribute = xstrdup("memberOf");
        cfg->ldap_timeout_ms = 3000;
        cfg->ldap_connections = 4;
        cfg->login_per_ip_per_minute = 30;
        cfg->login_per_user_per_minute = 10;
        cfg->anonymous_per_ip_per_minute = 30;
        cfg->refresh_per_session_per_minute = 30;
        cfg->portal_per_key_per_minute = 600;
}

static void validate(struct daemon_config *cfg, const struct ini_file *f) {
        int server = ini_file_section_line(f, "server");
        if (!server) {
                add_error(cfg, 1, "no [server] section: this is not a wwsfd configuration");
                return;
        }
        if (!cfg->tls_cert || !cfg->tls_key)
                add_error(cfg, server, "[server] needs tls_cert and tls_key (PEM files)");
        if (!cfg->public_url)
                add_error(cfg, server, "[server] needs public_url (the https origin browsers use)");
        if (!cfg->web_root)
                add_error(cfg, server, "[server] needs web_root (where the WIC's files are)");
        int tokens = ini_file_section_line(f, "tokens");
        if (!cfg->audience)
                add_error(cfg, tokens ? tokens : server, "[tokens] needs audience (the eP-CSCF / IMS domain)");
        if (!cfg->epcscf_uri)
                add_error(cfg, server, "[epcscf] needs uri (wss://...), handed to the WIC with its token");
        if (cfg->n_pool_files == 0)
                add_error(cfg, server, "[store] needs pool_config (the pool configuration files)");
        if (cfg->anonymous_enabled) {
                int line = ini_file_section_line(f, "anonymous");
                if (!cfg->hook_argv[0])
                        add_error(cfg, line ? line : server, "[anonymous] needs hook (the eligibility helper), or enabled = no");
                if (!cfg->anonymous_pool)
                        add_error(cfg, line ? line : server, "[anonymous] needs pool (the default anonymous pool)");
        }
        if (cfg->ldap_enabled) {
                int line = ini_file_section_line(f, "ldap");
                if (cfg->n_ldap_uris == 0 || !cfg->ldap_base_dn)
                        add_error(cfg, line ? line : server, "[ldap] needs uris and base_dn, or enabled = no");
                if (cfg->ldap_bind_dn && !cfg->ldap_bind_password_file)
                        add_error(cfg, line ? line : server, "[ldap] bind_dn needs bind_password_file");
        }
        if (!cfg->wwsf_id && cfg->public_url)
                cfg->wwsf_id = xstrdup(cfg->public_url + 8);
}

int daemon_config_load(const char *file, struct daemon_config **ret) {
        struct daemon_config *cfg = calloc(1, sizeof *cfg);
        if (!cfg)
                return -ENOMEM;
        *ret = cfg;
        cfg->file = xstrdup(file);
        set_defaults(cfg);

        char *copy = xstrdup(file);
        struct parse_state st = {
                .ini = { .path = file, .on_key = on_key, .on_error = on_error },
                .cfg = cfg,
                .dir = xstrdup(dirname(copy)),
        };
        free(copy);
        int r = ini_file_parse(&st.ini);
        if (r < 0)
                add_error(cfg, 0, "cannot %s: %s", r == -EIO ? "read" : "open", strerror(-r));
        else
                validate(cfg, &st.ini);
        ini_file_done(&st.ini);
        free(st.dir);
        if (r < 0)
                return r;
        return cfg->n_errors ? -EINVAL : 0;
}

void daemon_config_free(struct daemon_config *cfg) {
        if (!cfg)
                return;
        char **strings[] = {
                &cfg->listen_host, &cfg->tls_cert, &cfg->tls_key, &cfg->tls_priorities, &cfg->web_root,
                &cfg->public_url, &cfg->log_level, &cfg->db, &cfg->sync, &cfg->keys_dir, &cfg->audience,
                &cfg->wwsf_id, &cfg->epcscf_uri, &cfg->anonymous_pool, &cfg->ldap_ca_file, &cfg->ldap_bind_dn,
                &cfg->ldap_bind_password_file, &cfg->ldap_base_dn, &cfg->ldap_user_attribute,
                &cfg->ldap_impu_attribute, &cfg->ldap_impi_attribute, &cfg->ldap_group_attribute, &cfg->ldap_pool,
                &cfg->file,
        };
        for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
                free(*strings[i]);
        for (size_t i = 0; i < cfg->n_pool_files; i++)
                free(cfg->pool_files[i]);
        for (char **a = cfg->hook_argv; *a; a++)
                free(*a);
        for (size_t i = 0; i < cfg->n_ldap_uris; i++)
                free(cfg->ldap_uris[i]);
        for (size_t i = 0; i < cfg->n_group_pools; i++) {
                free(cfg->group_pools[i].group_dn);
                free(cfg->group_pools[i].pool);
        }
        for (size_t i = 0; i < cfg->n_errors; i++)
                free(cfg->errors[i]);
        free(cfg->errors);
        free(cfg);
}

int daemon_config_load_pools(struct daemon_config *cfg, struct pool_config **ret_pools) {
        int r = pool_config_load((const char *const *) cfg->pool_files, cfg->n_pool_files, ret_pools);
        if (r < 0 && r != -EINVAL)
                return r;
        struct pool_config *pc = *ret_pools;
        struct { const char *name, *what; enum pool_kind kind; } refs[2 + DAEMON_MAX_GROUP_POOLS];
        size_t n = 0;
        if (cfg->anonymous_enabled && cfg->anonymous_pool)
                refs[n++] = (typeof(refs[0])) { cfg->anonymous_pool, "[anonymous] pool", POOL_KIND_ANONYMOUS };
        if (cfg->ldap_enabled && cfg->ldap_pool)
                refs[n++] = (typeof(refs[0])) { cfg->ldap_pool, "[ldap] pool", POOL_KIND_AUTHENTICATED };
        for (size_t i = 0; cfg->ldap_enabled && i < cfg->n_group_pools; i++)
                refs[n++] = (typeof(refs[0])) { cfg->group_pools[i].pool, "[ldap] group_pool", POOL_KIND_AUTHENTICATED };
        for (size_t i = 0; i < n; i++) {
                const struct pool_config_pool *p = pool_config_find_pool(pc, refs[i].name);
                if (!p)
                        add_error(cfg, 0, "%s: no pool '%s' in the pool configuration", refs[i].what, refs[i].name);
                else if (p->def.kind != refs[i].kind)
                        add_error(cfg, 0, "%s: pool '%s' is %s, not %s", refs[i].what, refs[i].name,
                                  pool_kind_to_string(p->def.kind), pool_kind_to_string(refs[i].kind));
        }
        return cfg->n_errors || pc->n_errors ? -EINVAL : 0;
}

bool daemon_config_sniff(const char *file) {
        FILE *f = fopen(file, "re");
        if (!f)
                return false;
        char line[256];
        bool found = false;
        while (!found && fgets(line, sizeof line, f)) {
                const char *p = line;
                while (isspace((unsigned char) *p))
                        p++;
                found = strncmp(p, "[server]", 8) == 0;
        }
        fclose(f);
        return found;
}

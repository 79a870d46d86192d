#include "config/pool_config.h"

#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "config/ini_file.h"

enum section_type { SECTION_NONE, SECTION_SUBSCRIPTION, SECTION_POOL, SECTION_BAD };

struct parse_state {
        struct ini_file ini;    /* first: the ini_file callbacks cast back to parse_state */
        struct pool_config *cfg;
        const char *file;
        int line;               /* line of the key being handled */

        char *section;          /* section text of the current object */
        enum section_type type;
        void *object;           /* struct pool_config_subscription * or struct pool_config_pool * */
        /* Keys seen in the current section, for duplicate detection. */
        char seen[32][24];
        size_t n_seen;
};

static char *xstrdup(const char *s) {
        char *r = strdup(s ? s : "");
        if (!r)
                abort();
        return r;
}

static void *xrealloc_array(void *p, size_t n, size_t size) {
        void *r = reallocarray(p, n ? n : 1, size);
        if (!r)
                abort();
        return r;
}

__attribute__((format(printf, 4, 5)))
static void add_error(struct pool_config *cfg, const char *file, int line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        config_error_add(&cfg->errors, &cfg->n_errors, file, line, fmt, ap);
        va_end(ap);
}

/* An IMPI of a pool (user@realm). */
static bool impi_ok(const char *s) {
        return strlen(s) < POOL_IDENTITY_MAX && wwsf_is_private_identity(s);
}

/* An IMPU of a pool; *why says what is wrong with it. */
static bool impu_ok(const char *s, const char **why) {
        if (strlen(s) >= POOL_IDENTITY_MAX) {
                *why = "longer than 255 characters";
                return false;
        }
        return wwsf_public_identity_check(s, why);
}

/* Whether the IMPU s (one impu_ok() took) is written the way the eP-CSCF
 * compares a token's IMPU with a REGISTER's (docs/DESIGN.md section 4, step
 * 5: scheme and host case-insensitive, URI parameters and headers ignored):
 * scheme and host in small letters, no parameters or headers. Then two
 * IMPUs are the same identity for it exactly when their text is the same,
 * and "no IMPU in two pools", which the store checks on the text, holds for
 * the tokens too. */
static bool impu_identity_form(const char *s, const char **why) {
        if (strncmp(s, "sip:", 4) != 0 && strncmp(s, "sips:", 5) != 0 && strncmp(s, "tel:", 4) != 0) {
                *why = "the scheme in capitals: write sip:, sips: or tel:";
                return false;
        }
        const char *p = strchr(s, ':') + 1;
        if (s[0] != 't') {
                p = strchr(p, '@') + 1;
                for (; *p && *p != ':' && *p != ';' && *p != '?'; p++)
                        if (isupper((unsigned char) *p)) {
                                *why = "the host in capitals: write it in small letters";
                                return false;
                        }
                while (*p && *p != ';' && *p != '?')
                        p++;
        } else
                p += strcspn(p, ";");
        if (*p) {
                *why = "URI parameters or headers, which the eP-CSCF ignores: leave them out";
                return false;
        }
        return true;
}

static bool key_seen(struct parse_state *st, const char *name) {
        for (size_t i = 0; i < st->n_seen; i++)
                if (strcmp(st->seen[i], name) == 0)
                        return true;
        if (st->n_seen < sizeof st->seen / sizeof st->seen[0] && strlen(name) < sizeof st->seen[0])
                strcpy(st->seen[st->n_seen++], name);
        return false;
}

/* A pool of that name with every key unset; the name was checked. */
static struct pool_config_pool *new_pool(struct pool_config *cfg, const char *file, int line, const char *name) {
        cfg->pools = xrealloc_array(cfg->pools, cfg->n_pools + 1, sizeof *cfg->pools);
        struct pool_config_pool *p = &cfg->pools[cfg->n_pools++];
        *p = (struct pool_config_pool) {
                .def = { .kind = -1, .lease_ttl = -1, .quarantine = -1, .max_per_holder = 1, .source = -1,
                         .size = -1, .token_length = POOL_TOKEN_DEFAULT },
                .file = file, .line = line,
        };
        snprintf(p->def.name, sizeof p->def.name, "%s", name);
        snprintf(p->def.source_file, sizeof p->def.source_file, "%s", file);
        return p;
}

static void start_section(struct parse_state *st, const char *section) {
        struct pool_config *cfg = st->cfg;
        int line = ini_file_section_line(&st->ini, section);
        if (!line)
                line = st->line;

        free(st->section);
        st->section = xstrdup(section);
        st->n_seen = 0;
        st->object = NULL;

        const char *space = strchr(section, ' ');
        char *type = space ? strndup(section, (size_t) (space - section)) : xstrdup(section);
        const char *name = space ? space + 1 : "";
        while (*name == ' ')
                name++;

        if (strcmp(type, "subscription") == 0)
                st->type = SECTION_SUBSCRIPTION;
        else if (strcmp(type, "pool") == 0)
                st->type = SECTION_POOL;
        else {
                add_error(cfg, st->file, line,
                          "unknown section [%s]: expected [subscription NAME] or [pool NAME]", section);
                st->type = SECTION_BAD;
        }
        free(type);
        if (st->type == SECTION_BAD)
                return;
        if (!pool_name_valid(name)) {
                add_error(cfg, st->file, line,
                          "[%s]: the name must be 1-%d characters of letters, digits, '.', '_' or '-'",
                          section, POOL_NAME_CHARS);
                st->type = SECTION_BAD;
                return;
        }

        if (st->type == SECTION_SUBSCRIPTION) {
                for (size_t i = 0; i < cfg->n_subs; i++)
                        if (strcmp(cfg->subs[i].sub.name, name) == 0) {
                                add_error(cfg, st->file, line, "subscription '%s' is defined twice (first at %s:%d)",
                                          name, cfg->subs[i].file, cfg->subs[i].line);
                                st->type = SECTION_BAD;
                                return;
                        }
                cfg->subs = xrealloc_array(cfg->subs, cfg->n_subs + 1, sizeof *cfg->subs);
                struct pool_config_subscription *s = &cfg->subs[cfg->n_subs++];
                *s = (struct pool_config_subscription) { .sub.impi_mode = -1, .file = st->file, .line = line };
                snprintf(s->sub.name, sizeof s->sub.name, "%s", name);
                st->object = s;
        } else {
                for (size_t i = 0; i < cfg->n_pools; i++)
                        if (strcmp(cfg->pools[i].def.name, name) == 0) {
                                add_error(cfg, st->file, line, "pool '%s' is defined twice (first at %s:%d)",
                                          name, cfg->pools[i].file, cfg->pools[i].line);
                                st->type = SECTION_BAD;
                                return;
                        }
                st->object = new_pool(cfg, st->file, line, name);
        }
}

/* Copies the n bytes at src into dst as a string (n < size). */
static void copy_part(char *dst, size_t size, const char *src, size_t n) {
        snprintf(dst, size, "%.*s", (int) n, src);
}

/* Splits "prefix{A..B}suffix" (range) or "prefix!regex!suffix" (wildcard). */
static int parse_template_parts(const char *text, enum pool_source source, struct pool_template *t,
                          int64_t *ret_count, char *why, size_t why_size) {
        /* Every part then fits the model's buffers. */
        if (strlen(text) >= sizeof t->prefix) {
                snprintf(why, why_size, "longer than %zu characters", sizeof t->prefix - 1);
                return -EINVAL;
        }
        snprintf(t->text, sizeof t->text, "%s", text);
        if (source == POOL_SOURCE_RANGE) {
                const char *open = strchr(text, '{');
                const char *close = open ? strchr(open, '}') : NULL;
                if (!open || !close || strchr(close + 1, '{') || strchr(close + 1, '}')) {
                        snprintf(why, why_size, "expected exactly one {FIRST..LAST} group of digits");
                        return -EINVAL;
                }
                const char *dots = strstr(open, "..");
                if (!dots || dots > close) {
                        snprintf(why, why_size, "expected {FIRST..LAST} with '..' between the numbers");
                        return -EINVAL;
                }
                size_t wa = (size_t) (dots - open - 1), wb = (size_t) (close - dots - 2);
                if (wa == 0 || wb == 0 || wa != wb || wa > POOL_RANGE_WIDTH_MAX) {
                        snprintf(why, why_size, "FIRST and LAST must have the same number of digits (1-%d)",
                                 POOL_RANGE_WIDTH_MAX);
                        return -EINVAL;
                }
                int64_t a = 0, b = 0;
                for (size_t i = 0; i < wa; i++) {
                        char ca = open[1 + i], cb = dots[2 + i];
                        if (!isdigit((unsigned char) ca) || !isdigit((unsigned char) cb)) {
                                snprintf(why, why_size, "FIRST and LAST must be decimal digits");
                                return -EINVAL;
                        }
                        a = a * 10 + (ca - '0');
                        b = b * 10 + (cb - '0');
                }
                if (a > b) {
                        snprintf(why, why_size, "FIRST is greater than LAST");
                        return -EINVAL;
                }
                copy_part(t->prefix, sizeof t->prefix, text, (size_t) (open - text));
                copy_part(t->suffix, sizeof t->suffix, close + 1, strlen(close + 1));
                t->start = a;
                t->width = (int) wa;
                t->count = b - a + 1;
                *ret_count = t->count;
                return 0;
        }
        const char *open = strchr(text, '!');
        const char *close = open ? strchr(open + 1, '!') : NULL;
        if (!open || !close || strchr(close + 1, '!')) {
                snprintf(why, why_size, "expected exactly one !REGEX! wildcard part");
                return -EINVAL;
        }
        copy_part(t->prefix, sizeof t->prefix, text, (size_t) (open - text));
        copy_part(t->suffix, sizeof t->suffix, close + 1, strlen(close + 1));
        copy_part(t->regex, sizeof t->regex, open + 1, (size_t) (close - open - 1));
        t->wildcard = true;
        *ret_count = -1;
        return 0;
}

/* Leaves *t empty when text is refused, so later checks see no template. */
static int parse_template(const char *text, enum pool_source source, struct pool_template *t,
                          int64_t *ret_count, char *why, size_t why_size) {
        *t = (struct pool_template) { 0 };
        int r = parse_template_parts(text, source, t, ret_count, why, why_size);
        if (r < 0)
                *t = (struct pool_template) { 0 };
        return r;
}

static bool template_has_identity_chars(const struct pool_template *t) {
        return !strpbrk(t->prefix, "{}!") && !strpbrk(t->suffix, "{}!");
}

static int handle_subscription_key(struct parse_state *st, struct pool_config_subscription *s,
                                   const char *name, const char *value) {
        if (strcmp(name, "owner") == 0) {
                if (strcmp(value, "none") == 0)
                        return 0;
                if (!pool_name_valid(value)) {
                        add_error(st->cfg, st->file, st->line,
                                  "owner: expected a tenant name (letters, digits, '.', '_', '-') or 'none'");
                        return 0;
                }
                snprintf(s->sub.owner, sizeof s->sub.owner, "%s", value);
        } else if (strcmp(name, "domain") == 0) {
                bool ok = *value && strlen(value) <= 253;
                for (const char *p = value; *p; p++)
                        if (!isalnum((unsigned char) *p) && *p != '.' && *p != '-')
                                ok = false;
                if (!ok) {
                        add_error(st->cfg, st->file, st->line, "domain: '%s' is not a domain name", value);
                        return 0;
                }
                snprintf(s->sub.domain, sizeof s->sub.domain, "%s", value);
        } else if (strcmp(name, "impi_mode") == 0) {
                if (impi_mode_from_string(value, &s->sub.impi_mode) < 0)
                        add_error(st->cfg, st->file, st->line, "impi_mode: expected 'shared' or 'per-entry'");
        } else
                add_error(st->cfg, st->file, st->line,
                          "unknown key '%s' in a subscription (expected owner, domain, impi_mode)", name);
        return 0;
}

static void set_source(struct parse_state *st, struct pool_config_pool *p, enum pool_source src) {
        if (p->def.source != (enum pool_source) -1 && p->def.source != src) {
                add_error(st->cfg, st->file, st->line,
                          "a pool has exactly one IMPU source (entry, impu_range or impu_wildcard); this one already has '%s'",
                          pool_source_to_string(p->def.source));
                return;
        }
        p->def.source = src;
        if (!p->key_lines[POOL_LINE_SOURCE])
                p->key_lines[POOL_LINE_SOURCE] = st->line;
}

static int handle_pool_key(struct parse_state *st, struct pool_config_pool *p, const char *name, const char *value) {
        struct pool_config *cfg = st->cfg;
        char why[256];
        int64_t v;

        if (strcmp(name, "subscription") == 0) {
                p->subscription_name = xstrdup(value);
                p->key_lines[POOL_LINE_SUBSCRIPTION] = st->line;
        } else if (strcmp(name, "kind") == 0) {
                if (pool_kind_from_string(value, &p->def.kind) < 0)
                        add_error(cfg, st->file, st->line, "kind: expected 'authenticated' or 'anonymous'");
        } else if (strcmp(name, "lease_ttl") == 0 || strcmp(name, "quarantine") == 0) {
                if (wwsf_parse_duration(value, &v) < 0 || (v < 1 && name[0] == 'l')) {
                        add_error(cfg, st->file, st->line,
                                  "%s: expected a duration such as 300, 90s, 15m, 2h or 1d%s", name,
                                  name[0] == 'l' ? " (at least 1s)" : "");
                        return 0;
                }
                if (name[0] == 'l')
                        p->def.lease_ttl = v;
                else {
                        p->def.quarantine = v;
                        p->key_lines[POOL_LINE_QUARANTINE] = st->line;
                }
        } else if (strcmp(name, "max_per_holder") == 0) {
                if (wwsf_parse_int(value, 1, POOL_HOLDER_LIMIT_MAX, &v) < 0)
                        add_error(cfg, st->file, st->line, "max_per_holder: expected a number from 1 to %d",
                                  POOL_HOLDER_LIMIT_MAX);
                else
                        p->def.max_per_holder = v;
        } else if (strcmp(name, "entry") == 0) {
                set_source(st, p, POOL_SOURCE_LIST);
                char impu[256], impi[256], extra[2];
                int n = sscanf(value, "%255s %255s %1s", impu, impi, extra);
                if (n < 1 || n > 2) {
                        add_error(cfg, st->file, st->line, "entry: expected 'IMPU' or 'IMPU IMPI'");
                        return 0;
                }
                const char *why_impu;
                if (!impu_ok(impu, &why_impu)) {
                        add_error(cfg, st->file, st->line, "entry: '%s' is not a sip:, sips: or tel: URI: %s", impu,
                                  why_impu);
                        return 0;
                }
                if (!impu_identity_form(impu, &why_impu)) {
                        add_error(cfg, st->file, st->line, "entry: '%s' would name the same identity as another "
                                  "IMPU at the eP-CSCF: %s", impu, why_impu);
                        return 0;
                }
                if (n == 2 && !impi_ok(impi)) {
                        add_error(cfg, st->file, st->line, "entry: IMPI '%s' is not of the form user@realm", impi);
                        return 0;
                }
                if (p->n_entries >= POOL_LIST_ENTRIES_MAX) {
                        add_error(cfg, st->file, st->line, "entry: more than %d listed entries; use impu_range",
                                  POOL_LIST_ENTRIES_MAX);
                        return 0;
                }
                p->entries = xrealloc_array(p->entries, p->n_entries + 1, sizeof *p->entries);
                p->entries[p->n_entries++] = (struct pool_list_entry) {
                        .impu = xstrdup(impu), .impi = n == 2 ? xstrdup(impi) : NULL, .line = st->line,
                };
        } else if (strcmp(name, "impu_range") == 0 || strcmp(name, "impu_wildcard") == 0) {
                enum pool_source src = name[5] == 'r' ? POOL_SOURCE_RANGE : POOL_SOURCE_WILDCARD;
                set_source(st, p, src);
                int64_t count;
                if (parse_template(value, src, &p->def.impu_tpl, &count, why, sizeof why) < 0) {
                        add_error(cfg, st->file, st->line, "%s: %s", name, why);
                        return 0;
                }
                if (src == POOL_SOURCE_RANGE && count > POOL_SIZE_MAX)
                        add_error(cfg, st->file, st->line, "%s: more than %" PRId64 " IMPUs", name, POOL_SIZE_MAX);
        } else if (strcmp(name, "impi_range") == 0 || strcmp(name, "impi_wildcard") == 0) {
                enum pool_source src = name[5] == 'r' ? POOL_SOURCE_RANGE : POOL_SOURCE_WILDCARD;
                int64_t count;
                p->key_lines[POOL_LINE_IMPI] = st->line;
                if (parse_template(value, src, &p->def.impi_tpl, &count, why, sizeof why) < 0) {
                        add_error(cfg, st->file, st->line, "%s: %s", name, why);
                        return 0;
                }
        } else if (strcmp(name, "impi") == 0) {
                p->key_lines[POOL_LINE_IMPI] = st->line;
                if (!impi_ok(value))
                        add_error(cfg, st->file, st->line, "impi: '%s' is not of the form user@realm", value);
                else
                        snprintf(p->def.shared_impi, sizeof p->def.shared_impi, "%s", value);
        } else if (strcmp(name, "size") == 0) {
                if (wwsf_parse_int(value, 1, POOL_SIZE_MAX, &v) < 0)
                        add_error(cfg, st->file, st->line, "size: expected a number from 1 to %" PRId64,
                                  POOL_SIZE_MAX);
                else {
                        p->def.size = v;
                        p->key_lines[POOL_LINE_SIZE] = st->line;
                }
        } else if (strcmp(name, "token_length") == 0) {
                if (wwsf_parse_int(value, POOL_TOKEN_MIN, POOL_TOKEN_MAX, &v) < 0)
                        add_error(cfg, st->file, st->line, "token_length: expected a number from %d to %d",
                                  POOL_TOKEN_MIN, POOL_TOKEN_MAX);
                else {
                        p->def.token_length = (int) v;
                        p->key_lines[POOL_LINE_TOKEN_LENGTH] = st->line;
                }
        } else
                add_error(cfg, st->file, st->line,
                          "unknown key '%s' in a pool (expected subscription, kind, lease_ttl, quarantine, "
                          "max_per_holder, entry, impu_range, impi_range, impu_wildcard, impi_wildcard, size, "
                          "token_length, impi)",
                          name);
        return 0;
}

static int ini_handler_fn(struct ini_file *f, const char *section, const char *name, const char *value) {
        struct parse_state *st = (struct parse_state *) f;
        st->line = f->line;
        if (!st->section || strcmp(st->section, section) != 0) {
                if (!*section) {
                        add_error(st->cfg, st->file, st->line, "key '%s' outside any section", name);
                        return 1;
                }
                start_section(st, section);
        }
        if (st->type == SECTION_BAD)
                return 1;
        if (strcmp(name, "entry") != 0 && key_seen(st, name)) {
                add_error(st->cfg, st->file, st->line, "key '%s' given twice in [%s]", name, section);
                return 1;
        }
        if (!*value) {
                add_error(st->cfg, st->file, st->line, "key '%s' has no value", name);
                return 1;
        }
        if (st->type == SECTION_SUBSCRIPTION)
                handle_subscription_key(st, st->object, name, value);
        else
                handle_pool_key(st, st->object, name, value);
        return 1;
}

/* A wildcard regex is only usable if the tokens we generate match it. */
static bool regex_accepts_alphabet(const char *regex, enum token_alphabet a, int length) {
        char *anchored;
        if (asprintf(&anchored, "^(%s)$", regex) < 0)
                abort();
        regex_t re;
        int r = regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB);
        free(anchored);
        if (r != 0)
                return false;
        bool ok = true;
        char token[POOL_TOKEN_MAX + 1];
        /* Several samples: a regex could accept some tokens of an alphabet only. */
        for (int i = 0; i < 16 && ok; i++) {
                if (pool_token_random(a, length, token) < 0 || regexec(&re, token, 0, NULL, 0) != 0)
                        ok = false;
        }
        regfree(&re);
        return ok;
}

static bool regex_compiles(const char *regex) {
        regex_t re;
        if (regcomp(&re, regex, REG_EXTENDED | REG_NOSUB) != 0)
                return false;
        regfree(&re);
        return true;
}

static bool sip_host_matches(const char *impu, const char *domain) {
        /* No domain: the subscription is refused for that already. */
        if (!*domain || strncasecmp(impu, "tel:", 4) == 0)
                return true;
        const char *at = strrchr(impu, '@');
        if (!at)
                return false;
        size_t n = strcspn(at + 1, ";?:>");
        return n == strlen(domain) && strncasecmp(at + 1, domain, n) == 0;
}

static void validate_pool(struct pool_config *cfg, struct pool_config_pool *p) {
        const int *lines = p->key_lines;
        const char *f = p->file;
        int before = (int) cfg->n_errors;
        char buf[512];
        const char *why = "longer than 255 characters";

        if (!p->subscription_name)
                add_error(cfg, f, p->line, "pool '%s': missing key 'subscription'", p->def.name);
        else {
                for (size_t i = 0; i < cfg->n_subs; i++)
                        if (strcmp(cfg->subs[i].sub.name, p->subscription_name) == 0)
                                p->subscription = &cfg->subs[i];
                if (p->subscription)
                        snprintf(p->def.subscription, sizeof p->def.subscription, "%s", p->subscription->sub.name);
                else
                        add_error(cfg, f, lines[POOL_LINE_SUBSCRIPTION], "pool '%s': unknown subscription '%s'",
                                  p->def.name, p->subscription_name);
        }
        if (p->def.kind == (enum pool_kind) -1)
                add_error(cfg, f, p->line, "pool '%s': missing key 'kind' (authenticated or anonymous)", p->def.name);
        if (p->def.lease_ttl < 0)
                add_error(cfg, f, p->line, "pool '%s': missing key 'lease_ttl'", p->def.name);
        if (p->def.quarantine < 0)
                add_error(cfg, f, p->line, "pool '%s': missing key 'quarantine'", p->def.name);
        if (p->def.lease_ttl >= 0 && p->def.quarantine >= 0 && p->def.quarantine < p->def.lease_ttl)
                add_error(cfg, f, lines[POOL_LINE_QUARANTINE],
                          "pool '%s': quarantine (%" PRId64 "s) is shorter than lease_ttl (%" PRId64
                          "s): a registration made under the old lease could outlive the hold",
                          p->def.name, p->def.quarantine, p->def.lease_ttl);
        if (p->def.source == (enum pool_source) -1) {
                add_error(cfg, f, p->line, "pool '%s': no IMPU source (entry, impu_range or impu_wildcard)",
                          p->def.name);
                return;
        }
        /* A template refused while parsing was reported there. */
        if (p->def.source != POOL_SOURCE_LIST && !p->def.impu_tpl.text[0])
                return;
        if ((int) cfg->n_errors > before && !p->subscription)
                return;

        const struct pool_config_subscription *s = p->subscription;
        bool shared = s && s->sub.impi_mode == IMPI_MODE_SHARED;
        bool has_impi_tpl = p->def.impi_tpl.text[0] != '\0';

        if (shared) {
                if (!p->def.shared_impi[0])
                        add_error(cfg, f, p->line, "pool '%s': subscription '%s' shares one IMPI: set 'impi'",
                                  p->def.name, s->sub.name);
                if (has_impi_tpl)
                        add_error(cfg, f, lines[POOL_LINE_IMPI],
                                  "pool '%s': subscription '%s' shares one IMPI: impi_range/impi_wildcard not allowed",
                                  p->def.name, s->sub.name);
        } else if (s) {
                if (p->def.shared_impi[0])
                        add_error(cfg, f, lines[POOL_LINE_IMPI],
                                  "pool '%s': subscription '%s' has an IMPI per entry: 'impi' not allowed", p->def.name,
                                  s->sub.name);
        }

        switch (p->def.source) {
        case POOL_SOURCE_LIST:
                if (lines[POOL_LINE_SIZE])
                        add_error(cfg, f, lines[POOL_LINE_SIZE], "size: only wildcard pools take a size");
                if (lines[POOL_LINE_TOKEN_LENGTH])
                        add_error(cfg, f, lines[POOL_LINE_TOKEN_LENGTH],
                                  "token_length: only wildcard pools take a token_length");
                p->def.size = (int64_t) p->n_entries;
                if (has_impi_tpl)
                        add_error(cfg, f, lines[POOL_LINE_IMPI], "pool '%s': a listed pool gives IMPIs in its entries",
                                  p->def.name);
                for (size_t i = 0; i < p->n_entries; i++) {
                        struct pool_list_entry *e = &p->entries[i];
                        if (shared && e->impi)
                                add_error(cfg, f, e->line, "entry: subscription '%s' shares one IMPI: no IMPI here",
                                          s->sub.name);
                        if (s && !shared && !e->impi)
                                add_error(cfg, f, e->line, "entry: subscription '%s' has an IMPI per entry: 'IMPU IMPI'",
                                          s->sub.name);
                        if (s && !sip_host_matches(e->impu, s->sub.domain))
                                add_error(cfg, f, e->line, "entry: '%s' is not in the subscription's domain '%s'",
                                          e->impu, s->sub.domain);
                }
                break;
        case POOL_SOURCE_RANGE:
                if (lines[POOL_LINE_SIZE])
                        add_error(cfg, f, lines[POOL_LINE_SIZE],
                                  "size: only wildcard pools take a size (a range's size is its {FIRST..LAST})");
                if (lines[POOL_LINE_TOKEN_LENGTH])
                        add_error(cfg, f, lines[POOL_LINE_TOKEN_LENGTH],
                                  "token_length: only wildcard pools take a token_length");
                p->def.size = p->def.impu_tpl.count;
                if (has_impi_tpl && !p->def.impi_tpl.wildcard && p->def.impi_tpl.count != p->def.size)
                        add_error(cfg, f, lines[POOL_LINE_IMPI],
                                  "impi_range: has %" PRId64 " identities but impu_range has %" PRId64,
                                  p->def.impi_tpl.count, p->def.size);
                if (!template_has_identity_chars(&p->def.impu_tpl)) {
                        add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_range: stray '{', '}' or '!' around the range");
                        break;
                }
                if (s && !shared && !has_impi_tpl)
                        add_error(cfg, f, p->line, "pool '%s': subscription '%s' has an IMPI per entry: set impi_range",
                                  p->def.name, s->sub.name);
                if (has_impi_tpl && p->def.impi_tpl.wildcard)
                        add_error(cfg, f, lines[POOL_LINE_IMPI], "pool '%s': a range pool takes impi_range, not impi_wildcard",
                                  p->def.name);
                for (int k = 0; k < 2; k++) {
                        int64_t idx = k == 0 ? 0 : p->def.size - 1;
                        if (pool_template_format_index(&p->def.impu_tpl, idx, buf, sizeof buf) < 0 ||
                            !impu_ok(buf, &why)) {
                                add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_range: '%s' is not a sip:, sips: or tel: URI: %s",
                                          buf, why);
                                break;
                        }
                        if (!impu_identity_form(buf, &why)) {
                                add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_range: '%s' would name the same identity "
                                          "as another IMPU at the eP-CSCF: %s", buf, why);
                                break;
                        }
                        if (s && !sip_host_matches(buf, s->sub.domain)) {
                                add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_range: '%s' is not in the subscription's domain '%s'",
                                          buf, s->sub.domain);
                                break;
                        }
                        if (has_impi_tpl && !p->def.impi_tpl.wildcard &&
                            (pool_template_format_index(&p->def.impi_tpl, idx, buf, sizeof buf) < 0 ||
                             !impi_ok(buf))) {
                                add_error(cfg, f, lines[POOL_LINE_IMPI], "impi_range: '%s' is not of the form user@realm", buf);
                                break;
                        }
                }
                break;
        case POOL_SOURCE_WILDCARD:
                if (p->def.size < 0)
                        add_error(cfg, f, p->line, "pool '%s': a wildcard pool needs 'size' (how many IMPUs it may hand out)",
                                  p->def.name);
                if (!template_has_identity_chars(&p->def.impu_tpl) || !regex_compiles(p->def.impu_tpl.regex)) {
                        add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_wildcard: '%s' is not a valid extended regular expression",
                                  p->def.impu_tpl.regex);
                        break;
                }
                if (regex_accepts_alphabet(p->def.impu_tpl.regex, TOKEN_ALPHABET_BASE32, p->def.token_length))
                        p->def.token_alphabet = TOKEN_ALPHABET_BASE32;
                else if (regex_accepts_alphabet(p->def.impu_tpl.regex, TOKEN_ALPHABET_DIGITS, p->def.token_length))
                        p->def.token_alphabet = TOKEN_ALPHABET_DIGITS;
                else {
                        add_error(cfg, f, lines[POOL_LINE_SOURCE],
                                  "impu_wildcard: no generated part of %d letters/digits or %d digits matches !%s!",
                                  p->def.token_length, p->def.token_length, p->def.impu_tpl.regex);
                        break;
                }
                /* Tokens are drawn at random and a draw that collides is drawn
                 * again (8 tries). Keeping the pool within 1% of the token space
                 * makes 8 collisions in a row (odds 1e-16) never happen. */
                double space = 1;
                for (int k = 0; k < p->def.token_length; k++)
                        space *= p->def.token_alphabet == TOKEN_ALPHABET_DIGITS ? 10 : 32;
                if (p->def.size > 0 && (double) p->def.size > space / 100)
                        add_error(cfg, f, lines[POOL_LINE_SIZE] ? lines[POOL_LINE_SIZE] : p->line,
                                  "size: %" PRId64 " is more than 1%% of the %.0f tokens of token_length %d; "
                                  "raise token_length",
                                  p->def.size, space, p->def.token_length);
                if (s && !shared && !has_impi_tpl)
                        add_error(cfg, f, p->line,
                                  "pool '%s': subscription '%s' has an IMPI per entry: set impi_wildcard", p->def.name,
                                  s->sub.name);
                if (has_impi_tpl && !p->def.impi_tpl.wildcard)
                        add_error(cfg, f, lines[POOL_LINE_IMPI], "pool '%s': a wildcard pool takes impi_wildcard, not impi_range",
                                  p->def.name);
                else if (has_impi_tpl && strcmp(p->def.impi_tpl.regex, p->def.impu_tpl.regex) != 0)
                        add_error(cfg, f, lines[POOL_LINE_IMPI],
                                  "impi_wildcard: use the same !%s! as impu_wildcard (one token fills both)",
                                  p->def.impu_tpl.regex);
                char token[POOL_TOKEN_MAX + 1];
                memset(token, p->def.token_alphabet == TOKEN_ALPHABET_DIGITS ? '0' : 'a', (size_t) p->def.token_length);
                token[p->def.token_length] = '\0';
                if (pool_template_format_token(&p->def.impu_tpl, token, buf, sizeof buf) < 0 ||
                    !impu_ok(buf, &why))
                        add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_wildcard: '%s' would not be a sip:, sips: or tel: URI: %s",
                                  buf, why);
                else if (!impu_identity_form(buf, &why))
                        add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_wildcard: '%s' would name the same identity as "
                                  "another IMPU at the eP-CSCF: %s", buf, why);
                else if (s && !sip_host_matches(buf, s->sub.domain))
                        add_error(cfg, f, lines[POOL_LINE_SOURCE], "impu_wildcard: '%s' is not in the subscription's domain '%s'",
                                  p->def.impu_tpl.text, s->sub.domain);
                if (has_impi_tpl && p->def.impi_tpl.wildcard &&
                    (pool_template_format_token(&p->def.impi_tpl, token, buf, sizeof buf) < 0 ||
                     !impi_ok(buf)))
                        add_error(cfg, f, lines[POOL_LINE_IMPI], "impi_wildcard: '%s' would not be of the form user@realm", buf);
                break;
        }
}

/* No IMPU may belong to two pools: listed entries against each other and
 * against ranges, and ranges of the same shape against each other. */
static void check_overlaps(struct pool_config *cfg) {
        for (size_t a = 0; a < cfg->n_pools; a++) {
                struct pool_config_pool *pa = &cfg->pools[a];
                for (size_t i = 0; pa->def.source == POOL_SOURCE_LIST && i < pa->n_entries; i++) {
                        for (size_t j = i + 1; j < pa->n_entries; j++)
                                if (strcasecmp(pa->entries[i].impu, pa->entries[j].impu) == 0)
                                        add_error(cfg, pa->file, pa->entries[j].line,
                                                  "entry: '%s' is listed twice in pool '%s' (first at line %d)",
                                                  pa->entries[j].impu, pa->def.name, pa->entries[i].line);
                }
                for (size_t b = a + 1; b < cfg->n_pools; b++) {
                        struct pool_config_pool *pb = &cfg->pools[b];
                        if (pa->def.source == POOL_SOURCE_LIST && pb->def.source == POOL_SOURCE_LIST) {
                                for (size_t i = 0; i < pa->n_entries; i++)
                                        for (size_t j = 0; j < pb->n_entries; j++)
                                                if (strcasecmp(pa->entries[i].impu, pb->entries[j].impu) == 0)
                                                        add_error(cfg, pb->file, pb->entries[j].line,
                                                                  "entry: '%s' is already in pool '%s' (%s:%d)",
                                                                  pb->entries[j].impu, pa->def.name, pa->file,
                                                                  pa->entries[i].line);
                        }
                        if (pa->def.source == POOL_SOURCE_RANGE && pb->def.source == POOL_SOURCE_RANGE &&
                            pa->def.impu_tpl.text[0] && pb->def.impu_tpl.text[0] &&
                            pool_ranges_overlap(&pa->def.impu_tpl, &pb->def.impu_tpl))
                                add_error(cfg, pb->file, pb->line, "pool '%s': its IMPU range overlaps pool '%s' (%s:%d)",
                                          pb->def.name, pa->def.name, pa->file, pa->line);
                        for (int k = 0; k < 2; k++) {
                                struct pool_config_pool *l = k ? pb : pa, *r = k ? pa : pb;
                                if (l->def.source != POOL_SOURCE_LIST || r->def.source != POOL_SOURCE_RANGE ||
                                    !r->def.impu_tpl.text[0])
                                        continue;
                                int64_t idx;
                                for (size_t i = 0; i < l->n_entries; i++)
                                        if (pool_template_match_index(&r->def.impu_tpl, r->def.size, l->entries[i].impu,
                                                                      &idx))
                                                add_error(cfg, l->file, l->entries[i].line,
                                                          "entry: '%s' is inside the IMPU range of pool '%s'",
                                                          l->entries[i].impu, r->def.name);
                        }
                }
        }
}

static void ini_error_fn(struct ini_file *f, int line, const char *message) {
        struct parse_state *st = (struct parse_state *) f;
        add_error(st->cfg, st->file, line, "%s", message);
}

static int parse_file(struct pool_config *cfg, const char *file) {
        struct parse_state st = {
                .ini = { .path = file, .on_key = ini_handler_fn, .on_error = ini_error_fn },
                .cfg = cfg,
                .file = file,
        };
        int r = ini_file_parse(&st.ini);
        if (r == -EIO)
                add_error(cfg, file, st.ini.line, "cannot read the file");
        else if (r < 0)
                add_error(cfg, file, 0, "cannot open: %s", strerror(-r));
        ini_file_done(&st.ini);
        free(st.section);
        return r;
}

int pool_config_load(const char *const *files, size_t n_files, struct pool_config **ret) {
        struct pool_config *cfg = calloc(1, sizeof *cfg);
        if (!cfg)
                return -ENOMEM;
        *ret = cfg;
        cfg->files = xrealloc_array(NULL, n_files, sizeof *cfg->files);
        for (size_t i = 0; i < n_files; i++)
                cfg->files[cfg->n_files++] = xstrdup(files[i]);

        int r = 0;
        for (size_t i = 0; i < n_files; i++) {
                int q = parse_file(cfg, cfg->files[i]);
                if (q < 0 && r == 0)
                        r = q;
        }
        if (r < 0)
                return r;
        return pool_config_validate(cfg);
}

int pool_config_validate(struct pool_config *cfg) {
        for (size_t i = 0; i < cfg->n_subs; i++) {
                struct pool_config_subscription *s = &cfg->subs[i];
                if (!s->sub.domain[0])
                        add_error(cfg, s->file, s->line, "subscription '%s': missing key 'domain'", s->sub.name);
                if (s->sub.impi_mode == (enum impi_mode) -1)
                        add_error(cfg, s->file, s->line,
                                  "subscription '%s': missing key 'impi_mode' (shared or per-entry)", s->sub.name);
        }
        for (size_t i = 0; i < cfg->n_pools; i++) {
                struct pool_config_pool *p = &cfg->pools[i];
                validate_pool(cfg, p);
        }
        check_overlaps(cfg);
        return cfg->n_errors ? -EINVAL : 0;
}

void pool_config_free(struct pool_config *cfg) {
        if (!cfg)
                return;
        free(cfg->subs);
        for (size_t i = 0; i < cfg->n_pools; i++) {
                struct pool_config_pool *p = &cfg->pools[i];
                free(p->subscription_name);
                for (size_t j = 0; j < p->n_entries; j++) {
                        free(p->entries[j].impu);
                        free(p->entries[j].impi);
                }
                free(p->entries);
        }
        free(cfg->pools);
        for (size_t i = 0; i < cfg->n_errors; i++)
                free(cfg->errors[i]);
        free(cfg->errors);
        for (size_t i = 0; i < cfg->n_files; i++)
                free(cfg->files[i]);
        free(cfg->files);
        free(cfg);
}

const struct pool_config_pool *pool_config_find_pool(const struct pool_config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->n_pools; i++)
                if (strcmp(cfg->pools[i].def.name, name) == 0)
                        return &cfg->pools[i];
        return NULL;
}

struct pool_config *pool_config_new(const char *origin) {
        struct pool_config *cfg = calloc(1, sizeof *cfg);
        if (!cfg)
                return NULL;
        cfg->files = xrealloc_array(NULL, 1, sizeof *cfg->files);
        cfg->files[cfg->n_files++] = xstrdup(origin);
        return cfg;
}

void pool_config_add_subscription(struct pool_config *cfg, const struct pool_subscription *sub) {
        cfg->subs = xrealloc_array(cfg->subs, cfg->n_subs + 1, sizeof *cfg->subs);
        cfg->subs[cfg->n_subs++] = (struct pool_config_subscription) { .sub = *sub, .file = cfg->files[0] };
}

struct pool_config_pool *pool_config_add_pool(struct pool_config *cfg, const char *name) {
        return new_pool(cfg, cfg->files[0], 0, name);
}

void pool_config_pool_key(struct pool_config *cfg, struct pool_config_pool *p, int line, const char *name,
                          const char *value) {
        struct parse_state st = { .cfg = cfg, .file = cfg->files[0], .line = line };
        handle_pool_key(&st, p, name, value);
}

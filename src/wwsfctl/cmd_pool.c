/* config check, pool import, pool list, pool show. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config/daemon_config.h"
#include "config/pool_config.h"
#include <stdlib.h>
#include "wwsfctl/ctl.h"

static int cmd_config_check(struct ctl *ctl, int argc, char **argv);
static int cmd_pool_import(struct ctl *ctl, int argc, char **argv);
static int cmd_pool_list(struct ctl *ctl, int argc, char **argv);
static int cmd_pool_show(struct ctl *ctl, int argc, char **argv);

const struct ctl_command ctl_config_commands[] = {
        { "config check", "FILE...",
          "Validates pool configuration files (subscriptions and pools) and wwsfd\n"
          "configuration files (those with a [server] section, checked with the pool files\n"
          "they name). Every problem is printed as FILE:LINE: reason; the exit status is 1\n"
          "if there is any.",
          cmd_config_check },
        { "pool import", "FILE...",
          "Creates or updates the subscriptions and pools of the files in the lease store,\n"
          "in one transaction. Importing the same files again changes nothing. A wwsfd\n"
          "configuration stands for the pool files it names.",
          cmd_pool_import },
        { "pool list", "[--json]", "Lists the pools with their sizes and lease counts.", cmd_pool_list },
        { "pool show", "POOL [--json]", "Shows one pool: its definition and its lease counts.", cmd_pool_show },
        { 0 },
};

/* Adds path to files unless a file with the same real path is there. */
static void add_unique(char ***files, size_t *n, const char *path) {
        char *real = realpath(path, NULL);
        for (size_t i = 0; real && i < *n; i++) {
                char *other = realpath((*files)[i], NULL);
                bool same = other && strcmp(other, real) == 0;
                free(other);
                if (same) {
                        free(real);
                        return;
                }
        }
        free(real);
        char **f = reallocarray(*files, *n + 1, sizeof **files);
        if (!f || !(f[*n] = strdup(path)))
                abort();
        *files = f;
        (*n)++;
}

/* Loads the pool files named on the command line, where a wwsfd
 * configuration stands for the pool files it names. Returns an exit status,
 * or -1 to go on with *ret. */
static int load_config(struct ctl *ctl, int argc, char **argv, const struct ctl_command *cmd,
                       struct pool_config **ret) {
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, NULL, NULL, NULL);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return ctl_usage_error("%s: name at least one FILE", cmd->name);
        char **files = NULL;
        size_t n = 0;
        for (int i = optind; i < argc; i++) {
                if (!daemon_config_sniff(argv[i])) {
                        add_unique(&files, &n, argv[i]);
                        continue;
                }
                struct daemon_config *dc = NULL;
                if (daemon_config_load(argv[i], &dc) < 0) {
                        for (size_t k = 0; k < dc->n_errors; k++)
                                fprintf(stderr, "%s\n", dc->errors[k]);
                        daemon_config_free(dc);
                        for (size_t k = 0; k < n; k++)
                                free(files[k]);
                        free(files);
                        return ctl_refuse("bad config: %s", argv[i]);
                }
                for (size_t k = 0; k < dc->n_pool_files; k++)
                        add_unique(&files, &n, dc->pool_files[k]);
                daemon_config_free(dc);
        }
        r = pool_config_load((const char *const *) files, n, ret);
        for (size_t k = 0; k < n; k++)
                free(files[k]);
        free(files);
        if (r == -ENOMEM)
                return ctl_refuse("out of memory");
        return -1;
}

/* A wwsfd configuration is checked with the pool files it names. */
static size_t check_daemon_config(const char *file, json_t *errs) {
        struct daemon_config *dc = NULL;
        struct pool_config *pc = NULL;
        if (daemon_config_load(file, &dc) == -ENOMEM)
                abort();
        if (dc->n_errors == 0)
                (void) daemon_config_load_pools(dc, &pc);
        size_t n = 0;
        for (int k = 0; k < 2; k++) {
                char **list = k == 0 ? dc->errors : pc ? pc->errors : NULL;
                size_t count = k == 0 ? dc->n_errors : pc ? pc->n_errors : 0;
                for (size_t i = 0; i < count; i++, n++) {
                        fprintf(stderr, "%s\n", list[i]);
                        if (errs)
                                json_array_append_new(errs, json_string(list[i]));
                }
        }
        pool_config_free(pc);
        daemon_config_free(dc);
        return n;
}

static int cmd_config_check(struct ctl *ctl, int argc, char **argv) {
        const struct ctl_command *cmd = &ctl_config_commands[0];
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, NULL, NULL, NULL);
        if (r >= 0)
                return r;
        if (optind >= argc)
                return ctl_usage_error("%s: name at least one FILE", cmd->name);

        /* wwsfd configurations one by one; pool files together (a pool may
         * name a subscription from another file). */
        const char **pool_files = calloc((size_t) argc, sizeof *pool_files);
        if (!pool_files)
                return ctl_refuse("out of memory");
        size_t n_pool_files = 0, n_daemon = 0, problems = 0;
        json_t *errs = ctl->json ? json_array() : NULL;
        for (int i = optind; i < argc; i++) {
                if (daemon_config_sniff(argv[i])) {
                        problems += check_daemon_config(argv[i], errs);
                        n_daemon++;
                } else
                        pool_files[n_pool_files++] = argv[i];
        }
        struct pool_config *cfg = NULL;
        if (n_pool_files) {
                if (pool_config_load(pool_files, n_pool_files, &cfg) == -ENOMEM)
                        abort();
                for (size_t i = 0; i < cfg->n_errors; i++) {
                        fprintf(stderr, "%s\n", cfg->errors[i]);
                        if (errs)
                                json_array_append_new(errs, json_string(cfg->errors[i]));
                }
                problems += cfg->n_errors;
        }
        free(pool_files);
        size_t n_subs = cfg ? cfg->n_subs : 0, n_pools = cfg ? cfg->n_pools : 0;
        size_t n_files = (size_t) (argc - optind);
        if (ctl->json) {
                json_t *o = json_object(), *files = json_array();
                for (int i = optind; i < argc; i++)
                        json_array_append_new(files, json_string(argv[i]));
                json_object_set_new(o, "ok", json_boolean(problems == 0));
                json_object_set_new(o, "files", files);
                json_object_set_new(o, "daemon_configs", json_integer((json_int_t) n_daemon));
                json_object_set_new(o, "subscriptions", json_integer((json_int_t) n_subs));
                json_object_set_new(o, "pools", json_integer((json_int_t) n_pools));
                json_object_set_new(o, "errors", errs);
                ctl_print_json(o);
        } else if (problems == 0) {
                printf("ok: %zu file%s", n_files, n_files == 1 ? "" : "s");
                if (n_daemon)
                        printf(", %zu wwsfd configuration%s", n_daemon, n_daemon == 1 ? "" : "s");
                if (n_pool_files)
                        printf(", %zu subscription%s, %zu pool%s", n_subs, n_subs == 1 ? "" : "s", n_pools,
                               n_pools == 1 ? "" : "s");
                printf("\n");
        }
        pool_config_free(cfg);
        if (problems == 0)
                return EXIT_OK;
        fprintf(stderr, "wwsfctl: bad config: %zu problem%s found\n", problems, problems == 1 ? "" : "s");
        return EXIT_REFUSED;
}

static int cmd_pool_import(struct ctl *ctl, int argc, char **argv) {
        struct pool_config *cfg = NULL;
        int r = load_config(ctl, argc, argv, &ctl_config_commands[1], &cfg);
        if (r >= 0)
                return r;
        if (cfg->n_errors) {
                for (size_t i = 0; i < cfg->n_errors; i++)
                        fprintf(stderr, "%s\n", cfg->errors[i]);
                fprintf(stderr, "wwsfctl: bad config: %zu problem%s found; nothing imported\n", cfg->n_errors,
                        cfg->n_errors == 1 ? "" : "s");
                pool_config_free(cfg);
                return EXIT_REFUSED;
        }
        struct lease_import_result res;
        if ((r = ctl_open(ctl)) != EXIT_OK)
                goto out;
        if (lease_import(ctl->engine, cfg, &res) < 0) {
                r = ctl_engine_error(ctl);
                goto out;
        }
        if (ctl->json) {
                json_t *o = json_object();
                json_object_set_new(o, "subscriptions", json_integer(res.subscriptions));
                json_object_set_new(o, "pools", json_integer(res.pools));
                json_object_set_new(o, "entries_added", json_integer(res.entries_added));
                json_object_set_new(o, "entries_retired", json_integer(res.entries_retired));
                ctl_print_json(o);
        } else
                printf("imported %d subscription%s and %d pool%s into %s (%d listed entr%s added, %d retired)\n",
                       res.subscriptions, res.subscriptions == 1 ? "" : "s", res.pools, res.pools == 1 ? "" : "s",
                       ctl->db_path, res.entries_added, res.entries_added == 1 ? "y" : "ies", res.entries_retired);
out:
        pool_config_free(cfg);
        return r;
}

static json_t *pool_json(const struct lease_pool_stats *s) {
        const struct pool_def *p = &s->pool.def;
        const struct pool_subscription *sub = &s->pool.sub;
        json_t *o = json_object();
        json_object_set_new(o, "pool", json_string(p->name));
        json_object_set_new(o, "subscription", json_string(p->subscription));
        json_object_set_new(o, "owner", sub->owner[0] ? json_string(sub->owner) : json_null());
        json_object_set_new(o, "domain", json_string(sub->domain));
        json_object_set_new(o, "impi_mode", json_string(impi_mode_to_string(sub->impi_mode)));
        json_object_set_new(o, "kind", json_string(pool_kind_to_string(p->kind)));
        json_object_set_new(o, "source", json_string(pool_source_to_string(p->source)));
        json_object_set_new(o, "lease_ttl", json_integer(p->lease_ttl));
        json_object_set_new(o, "quarantine", json_integer(p->quarantine));
        json_object_set_new(o, "max_per_holder", json_integer(p->max_per_holder));
        json_object_set_new(o, "size", json_integer(p->size));
        json_object_set_new(o, "materialised", json_integer(s->materialised));
        json_object_set_new(o, "leased", json_integer(s->leased));
        json_object_set_new(o, "quarantined", json_integer(s->quarantine));
        json_object_set_new(o, "free", json_integer(s->free));
        json_object_set_new(o, "retired", json_integer(s->retired));
        json_object_set_new(o, "impu_template", p->impu_tpl.text[0] ? json_string(p->impu_tpl.text) : json_null());
        json_object_set_new(o, "impi_template", p->impi_tpl.text[0] ? json_string(p->impi_tpl.text) : json_null());
        json_object_set_new(o, "shared_impi", p->shared_impi[0] ? json_string(p->shared_impi) : json_null());
        json_object_set_new(o, "source_file", json_string(p->source_file));
        json_object_set_new(o, "imported_at", json_integer(s->pool.imported_at));
        return o;
}

struct pool_list_state {
        struct ctl *ctl;
        json_t *array;
        int rows;
};

static int print_pool_row(const struct lease_pool_stats *s, void *userdata) {
        struct pool_list_state *st = userdata;
        if (st->array) {
                json_array_append_new(st->array, pool_json(s));
                return 0;
        }
        if (st->rows++ == 0)
                printf("%-20s %-13s %-8s %12s %10s %10s %12s  %s\n", "POOL", "KIND", "SOURCE", "SIZE", "LEASED",
                       "QUARANTINE", "FREE", "SUBSCRIPTION (OWNER)");
        const struct pool_def *p = &s->pool.def;
        const struct pool_subscription *sub = &s->pool.sub;
        printf("%-20s %-13s %-8s %12" PRId64 " %10" PRId64 " %10" PRId64 " %12" PRId64 "  %s (%s)\n", p->name,
               pool_kind_to_string(p->kind), pool_source_to_string(p->source), p->size, s->leased, s->quarantine,
               s->free, p->subscription, sub->owner[0] ? sub->owner : "none");
        return 0;
}

static int cmd_pool_list(struct ctl *ctl, int argc, char **argv) {
        const struct ctl_command *cmd = &ctl_config_commands[2];
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, NULL, NULL, NULL);
        if (r >= 0)
                return r;
        if (optind < argc)
                return ctl_usage_error("%s: unexpected argument '%s'", cmd->name, argv[optind]);
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        struct pool_list_state st = { .ctl = ctl, .array = ctl->json ? json_array() : NULL };
        if (lease_pools(ctl->engine, NULL, print_pool_row, &st) < 0) {
                json_decref(st.array);
                return ctl_engine_error(ctl);
        }
        if (st.array)
                ctl_print_json(st.array);
        else if (st.rows == 0)
                printf("no pools: import some with 'wwsfctl pool import FILE...'\n");
        return EXIT_OK;
}

static int print_pool_detail(const struct lease_pool_stats *s, void *userdata) {
        struct ctl *ctl = userdata;
        if (ctl->json) {
                ctl_print_json(pool_json(s));
                return 0;
        }
        const struct pool_def *p = &s->pool.def;
        const struct pool_subscription *sub = &s->pool.sub;
        char t[32];
        printf("pool:            %s\n", p->name);
        printf("subscription:    %s (owner %s, domain %s, IMPI %s)\n", p->subscription,
               sub->owner[0] ? sub->owner : "none", sub->domain, impi_mode_to_string(sub->impi_mode));
        printf("kind:            %s\n", pool_kind_to_string(p->kind));
        printf("source:          %s\n", pool_source_to_string(p->source));
        if (p->impu_tpl.text[0])
                printf("impu template:   %s\n", p->impu_tpl.text);
        if (p->impi_tpl.text[0])
                printf("impi template:   %s\n", p->impi_tpl.text);
        if (p->shared_impi[0])
                printf("shared impi:     %s\n", p->shared_impi);
        printf("lease ttl:       %" PRId64 "s\n", p->lease_ttl);
        printf("quarantine:      %" PRId64 "s\n", p->quarantine);
        printf("max per holder:  %" PRId64 "\n", p->max_per_holder);
        printf("size:            %" PRId64 " (%" PRId64 " materialised)\n", p->size, s->materialised);
        printf("leased:          %" PRId64 "\n", s->leased);
        printf("quarantined:     %" PRId64 "\n", s->quarantine);
        printf("free:            %" PRId64 "\n", s->free);
        if (s->retired)
                printf("retired:         %" PRId64 "\n", s->retired);
        printf("imported:        %s from %s\n", ctl_time(s->pool.imported_at, t), p->source_file);
        return 0;
}

static int cmd_pool_show(struct ctl *ctl, int argc, char **argv) {
        const struct ctl_command *cmd = &ctl_config_commands[3];
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, NULL, NULL, NULL);
        if (r >= 0)
                return r;
        if (optind + 1 != argc)
                return ctl_usage_error("%s: name exactly one POOL", cmd->name);
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        if (lease_pools(ctl->engine, argv[optind], print_pool_detail, ctl) < 0)
                return ctl_engine_error(ctl);
        return EXIT_OK;
}

/* audit, stats, db check. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wwsfctl/ctl.h"

static int cmd_audit(struct ctl *ctl, int argc, char **argv);
static int cmd_stats(struct ctl *ctl, int argc, char **argv);
static int cmd_db_check(struct ctl *ctl, int argc, char **argv);

const struct ctl_command ctl_report_commands[] = {
        { "audit", "IMPU [--at TIME] [--json]",
          "Lists who held IMPU, from when to when and from which address, newest first.\n"
          "With --at (epoch seconds or YYYY-MM-DDTHH:MM:SSZ), only the lease live at that time.",
          cmd_audit },
        { "stats", "[--json]", "Counts IMPUs by state, per pool and in total.", cmd_stats },
        { "db check", "[--json]", "Runs the store's integrity check; exit status 1 unless it says ok.", cmd_db_check },
        { 0 },
};

struct audit_state {
        json_t *array;
        int rows;
};

static int audit_one(const struct store_history *h, void *userdata) {
        struct audit_state *st = userdata;
        if (st->array) {
                json_t *o = json_object();
                json_object_set_new(o, "impu", json_string(h->impu));
                json_object_set_new(o, "impi", json_string(h->impi));
                json_object_set_new(o, "pool", json_string(h->pool));
                json_object_set_new(o, "holder", json_string(h->holder));
                json_object_set_new(o, "client_addr", h->client_addr[0] ? json_string(h->client_addr) : json_null());
                json_object_set_new(o, "from", json_integer(h->started_at));
                json_object_set_new(o, "until", json_integer(h->ended_at));
                json_object_set_new(o, "open", json_boolean(h->open));
                json_object_set_new(o, "end_reason", h->end_reason[0] ? json_string(h->end_reason) : json_null());
                json_object_set_new(o, "renewals", json_integer(h->renewals));
                json_array_append_new(st->array, o);
                return 0;
        }
        char t1[32], t2[32];
        if (st->rows++ == 0)
                printf("%-24s %-20s %-20s %-12s %-16s %s\n", "HOLDER", "FROM", "UNTIL", "END", "POOL", "CLIENT");
        printf("%-24s %-20s %-20s %-12s %-16s %s\n", h->holder, ctl_time(h->started_at, t1), ctl_time(h->ended_at, t2),
               h->open ? "(open)" : h->end_reason, h->pool, h->client_addr[0] ? h->client_addr : "-");
        return 0;
}

static int on_audit_opt(int c, const char *arg, void *userdata) {
        int64_t *at = userdata;
        if (c == 'a' && ctl_parse_time(arg, at) < 0)
                return ctl_usage_error("audit: --at '%s' is not epoch seconds or YYYY-MM-DDTHH:MM:SSZ", arg);
        return -1;
}

static int cmd_audit(struct ctl *ctl, int argc, char **argv) {
        static const struct option options[] = { { "at", required_argument, NULL, 'a' }, { 0 } };
        const struct ctl_command *cmd = &ctl_report_commands[0];
        int64_t at = -1;
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, options, on_audit_opt, &at);
        if (r >= 0)
                return r;
        if (argc - optind != 1)
                return ctl_usage_error("audit: name exactly one IMPU");
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        struct audit_state st = { .array = ctl->json ? json_array() : NULL };
        if (lease_audit(ctl->engine, argv[optind], at, audit_one, &st) < 0) {
                json_decref(st.array);
                return ctl_engine_error(ctl);
        }
        if (st.array)
                ctl_print_json(st.array);
        else if (st.rows == 0)
                printf("%s: nobody held it%s\n", argv[optind], at >= 0 ? " at that time" : "");
        return EXIT_OK;
}

struct stats_state {
        json_t *pools;
        int64_t size, leased, quarantine, free;
        int rows;
};

static int stats_one(const struct lease_pool_stats *s, void *userdata) {
        struct stats_state *st = userdata;
        st->size += s->pool.def.size;
        st->leased += s->leased;
        st->quarantine += s->quarantine;
        st->free += s->free;
        if (st->pools) {
                json_t *o = json_object();
                json_object_set_new(o, "pool", json_string(s->pool.def.name));
                json_object_set_new(o, "kind", json_string(pool_kind_to_string(s->pool.def.kind)));
                json_object_set_new(o, "size", json_integer(s->pool.def.size));
                json_object_set_new(o, "leased", json_integer(s->leased));
                json_object_set_new(o, "quarantined", json_integer(s->quarantine));
                json_object_set_new(o, "free", json_integer(s->free));
                json_object_set_new(o, "materialised", json_integer(s->materialised));
                json_array_append_new(st->pools, o);
                return 0;
        }
        if (st->rows++ == 0)
                printf("%-20s %-13s %12s %10s %11s %12s %12s\n", "POOL", "KIND", "SIZE", "LEASED", "QUARANTINED",
                       "FREE", "MATERIALISED");
        printf("%-20s %-13s %12" PRId64 " %10" PRId64 " %11" PRId64 " %12" PRId64 " %12" PRId64 "\n", s->pool.def.name,
               pool_kind_to_string(s->pool.def.kind), s->pool.def.size, s->leased, s->quarantine, s->free,
               s->materialised);
        return 0;
}

static int cmd_stats(struct ctl *ctl, int argc, char **argv) {
        const struct ctl_command *cmd = &ctl_report_commands[1];
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, NULL, NULL, NULL);
        if (r >= 0)
                return r;
        if (optind < argc)
                return ctl_usage_error("stats: unexpected argument '%s'", argv[optind]);
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        struct stats_state st = { .pools = ctl->json ? json_array() : NULL };
        if (lease_pools(ctl->engine, NULL, stats_one, &st) < 0) {
                json_decref(st.pools);
                return ctl_engine_error(ctl);
        }
        if (st.pools) {
                json_t *o = json_object();
                json_object_set_new(o, "now", json_integer(lease_engine_now(ctl->engine)));
                json_object_set_new(o, "size", json_integer(st.size));
                json_object_set_new(o, "leased", json_integer(st.leased));
                json_object_set_new(o, "quarantined", json_integer(st.quarantine));
                json_object_set_new(o, "free", json_integer(st.free));
                json_object_set_new(o, "pools", st.pools);
                ctl_print_json(o);
        } else
                printf("%-20s %-13s %12" PRId64 " %10" PRId64 " %11" PRId64 " %12" PRId64 "\n", "total", "", st.size,
                       st.leased, st.quarantine, st.free);
        return EXIT_OK;
}

static int cmd_db_check(struct ctl *ctl, int argc, char **argv) {
        const struct ctl_command *cmd = &ctl_report_commands[2];
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, NULL, NULL, NULL);
        if (r >= 0)
                return r;
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        char result[1024];
        if (lease_check(ctl->engine, result, sizeof result) < 0)
                return ctl_engine_error(ctl);
        bool ok = strcmp(result, "ok") == 0;
        if (ctl->json) {
                json_t *o = json_object();
                json_object_set_new(o, "ok", json_boolean(ok));
                json_object_set_new(o, "integrity_check", json_string(result));
                ctl_print_json(o);
        } else if (ok)
                printf("ok\n");
        return ok ? EXIT_OK : ctl_refuse("integrity check failed: %s", result);
}

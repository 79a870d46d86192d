/* lease acquire, renew, release, revoke, list, show, reclaim. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "wwsfctl/ctl.h"

static int cmd_acquire(struct ctl *ctl, int argc, char **argv);
static int cmd_renew(struct ctl *ctl, int argc, char **argv);
static int cmd_release(struct ctl *ctl, int argc, char **argv);
static int cmd_revoke(struct ctl *ctl, int argc, char **argv);
static int cmd_list(struct ctl *ctl, int argc, char **argv);
static int cmd_show(struct ctl *ctl, int argc, char **argv);
static int cmd_reclaim(struct ctl *ctl, int argc, char **argv);

enum { CMD_ACQUIRE, CMD_RENEW, CMD_RELEASE, CMD_REVOKE, CMD_LIST, CMD_SHOW, CMD_RECLAIM };

const struct ctl_command ctl_lease_commands[] = {
        [CMD_ACQUIRE] = { "lease acquire", "--pool POOL --holder HOLDER [--client-addr ADDR] [--additional] [--json]",
                          "Leases an IMPU of POOL to HOLDER. A holder with a live lease, or whose last IMPU is\n"
                          "still in quarantine, gets that IMPU back (affinity); --additional asks for another\n"
                          "one, up to the pool's max_per_holder. Refused with 'exhausted' when the pool has\n"
                          "no free IMPU.",
                          cmd_acquire },
        [CMD_RENEW] = { "lease renew", "IMPU --holder HOLDER [--json]",
                        "Extends HOLDER's lease on IMPU by the pool's lease_ttl from now.", cmd_renew },
        [CMD_RELEASE] = { "lease release", "IMPU --holder HOLDER [--json]",
                          "Ends HOLDER's lease on IMPU now; the IMPU stays in quarantine for the pool's hold.",
                          cmd_release },
        [CMD_REVOKE] = { "lease revoke", "IMPU [--json]",
                         "Ends the lease on IMPU now, whoever holds it, without affinity for that holder.\n"
                         "The quarantine hold still applies.",
                         cmd_revoke },
        [CMD_LIST] = { "lease list", "[--pool POOL] [--state leased|quarantine|free|retired] [--json]",
                       "Lists the IMPUs handed out at least once (and every listed entry), with their state.\n"
                       "Range IMPUs never handed out are counted by 'pool show', not listed.",
                       cmd_list },
        [CMD_SHOW] = { "lease show", "IMPU [--json]", "Shows the state of one IMPU.", cmd_show },
        [CMD_RECLAIM] = { "lease reclaim", "[--batch N] [--max-ms MS] [--json]",
                          "Closes every lease whose time has passed, in transactions of at most N leases\n"
                          "(default 100) or MS milliseconds (default 250), so it never holds up issuance.",
                          cmd_reclaim },
        { 0 },
};

struct lease_args {
        const char *pool, *holder, *client_addr, *state;
        bool additional;
        int64_t batch, max_ms;
        bool bad;
};

enum { OPT_POOL = 0x100, OPT_HOLDER, OPT_CLIENT_ADDR, OPT_ADDITIONAL, OPT_STATE, OPT_BATCH, OPT_MAX_MS };

static const struct option lease_options[] = {
        { "pool", required_argument, NULL, OPT_POOL },
        { "holder", required_argument, NULL, OPT_HOLDER },
        { "client-addr", required_argument, NULL, OPT_CLIENT_ADDR },
        { "additional", no_argument, NULL, OPT_ADDITIONAL },
        { "state", required_argument, NULL, OPT_STATE },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "max-ms", required_argument, NULL, OPT_MAX_MS },
        { 0 },
};

static int on_lease_opt(int c, const char *arg, void *userdata) {
        struct lease_args *a = userdata;
        switch (c) {
        case OPT_POOL: a->pool = arg; break;
        case OPT_HOLDER: a->holder = arg; break;
        case OPT_CLIENT_ADDR: a->client_addr = arg; break;
        case OPT_ADDITIONAL: a->additional = true; break;
        case OPT_STATE: a->state = arg; break;
        case OPT_BATCH:
                if (wwsf_parse_int(arg, 1, 100000, &a->batch) < 0)
                        return ctl_usage_error("--batch: expected a number from 1 to 100000");
                break;
        case OPT_MAX_MS:
                if (wwsf_parse_int(arg, 1, 60000, &a->max_ms) < 0)
                        return ctl_usage_error("--max-ms: expected a number from 1 to 60000");
                break;
        }
        return -1;
}

/* Which of the options a command accepts: the rest are usage errors. */
static int parse(struct ctl *ctl, int id, int argc, char **argv, struct lease_args *a, int positionals,
                 unsigned allowed) {
        const struct ctl_command *cmd = &ctl_lease_commands[id];
        int r = ctl_getopt(ctl, cmd, argc, argv, NULL, lease_options, on_lease_opt, a);
        if (r >= 0)
                return r;
        const void *given[] = { a->pool, a->holder, a->client_addr, a->additional ? "" : NULL, a->state,
                                a->batch ? "" : NULL, a->max_ms ? "" : NULL };
        for (unsigned i = 0; i < sizeof given / sizeof given[0]; i++)
                if (given[i] && !(allowed & (1u << i)))
                        return ctl_usage_error("%s: --%s does not apply here", cmd->name, lease_options[i].name);
        if (argc - optind != positionals)
                return positionals ? ctl_usage_error("%s: name exactly one IMPU", cmd->name)
                                   : ctl_usage_error("%s: unexpected argument '%s'", cmd->name, argv[optind]);
        return -1;
}

#define A_POOL (1u << 0)
#define A_HOLDER (1u << 1)
#define A_CLIENT_ADDR (1u << 2)
#define A_ADDITIONAL (1u << 3)
#define A_STATE (1u << 4)
#define A_BATCH (1u << 5)
#define A_MAX_MS (1u << 6)

static void print_lease(struct ctl *ctl, const struct lease *l, const char *origin) {
        if (ctl->json) {
                json_t *o = ctl_lease_json(l);
                if (origin)
                        json_object_set_new(o, "origin", json_string(origin));
                ctl_print_json(o);
                return;
        }
        char t1[32], t2[32], t3[32];
        printf("impu:             %s\n", l->impu);
        printf("impi:             %s\n", l->impi);
        printf("pool:             %s\n", l->pool);
        printf("state:            %s%s\n", lease_state_to_string(l->state),
               l->materialised ? "" : " (never handed out)");
        if (l->holder[0])
                printf("holder:           %s\n", l->holder);
        if (l->client_addr[0])
                printf("client address:   %s\n", l->client_addr);
        if (l->leased_at)
                printf("leased at:        %s\n", ctl_time(l->leased_at, t1));
        if (l->expires_at)
                printf("%s       %s\n", l->state == LEASE_STATE_LEASED ? "expires at:" : "ended at:  ",
                       ctl_time(l->expires_at, t2));
        if (l->quarantine_until)
                printf("quarantine until: %s\n", ctl_time(l->quarantine_until, t3));
        if (origin)
                printf("origin:           %s\n", origin);
}

static int acquire_error(struct ctl *ctl, int r) {
        if (r == -ENOSPC && lease_engine_retry_after(ctl->engine) > 0)
                return ctl_refuse("%s; the next IMPU frees in %" PRId64 "s", lease_engine_error(ctl->engine),
                                  lease_engine_retry_after(ctl->engine));
        return ctl_engine_error(ctl);
}

static int cmd_acquire(struct ctl *ctl, int argc, char **argv) {
        struct lease_args a = { 0 };
        int r = parse(ctl, CMD_ACQUIRE, argc, argv, &a, 0, A_POOL | A_HOLDER | A_CLIENT_ADDR | A_ADDITIONAL);
        if (r >= 0)
                return r;
        if (!a.pool || !a.holder)
                return ctl_usage_error("lease acquire: --pool and --holder are required");
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        struct lease l;
        enum lease_origin origin;
        r = lease_acquire(ctl->engine, a.pool, a.holder, a.client_addr,
                          a.additional ? LEASE_ACQUIRE_ADDITIONAL : 0, &l, &origin);
        if (r < 0)
                return r == -EINVAL ? ctl_usage_error("%s", lease_engine_error(ctl->engine)) : acquire_error(ctl, r);
        print_lease(ctl, &l, lease_origin_to_string(origin));
        return EXIT_OK;
}

/* renew, release, revoke: IMPU [--holder HOLDER]. */
static int change_lease(struct ctl *ctl, int id, int argc, char **argv) {
        struct lease_args a = { 0 };
        int r = parse(ctl, id, argc, argv, &a, 1, id == CMD_REVOKE ? 0 : A_HOLDER);
        if (r >= 0)
                return r;
        const char *impu = argv[optind];
        if (id != CMD_REVOKE && !a.holder)
                return ctl_usage_error("%s: --holder is required", ctl_lease_commands[id].name);
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        struct lease l;
        r = id == CMD_RENEW     ? lease_renew(ctl->engine, impu, a.holder, &l)
            : id == CMD_RELEASE ? lease_release(ctl->engine, impu, a.holder, &l)
                                : lease_revoke(ctl->engine, impu, &l);
        if (r < 0)
                return r == -EINVAL ? ctl_usage_error("%s", lease_engine_error(ctl->engine)) : ctl_engine_error(ctl);
        print_lease(ctl, &l, NULL);
        return EXIT_OK;
}

static int cmd_renew(struct ctl *ctl, int argc, char **argv) {
        return change_lease(ctl, CMD_RENEW, argc, argv);
}

static int cmd_release(struct ctl *ctl, int argc, char **argv) {
        return change_lease(ctl, CMD_RELEASE, argc, argv);
}

static int cmd_revoke(struct ctl *ctl, int argc, char **argv) {
        return change_lease(ctl, CMD_REVOKE, argc, argv);
}

struct list_state {
        bool filter;
        enum lease_state state;
        json_t *array;
        int rows;
};

static int list_one(const struct lease *l, void *userdata) {
        struct list_state *st = userdata;
        if (st->filter && l->state != st->state)
                return 0;
        if (st->array) {
                json_array_append_new(st->array, ctl_lease_json(l));
                return 0;
        }
        char t[32];
        if (st->rows++ == 0)
                printf("%-40s %-16s %-11s %-24s %-20s %s\n", "IMPU", "POOL", "STATE", "HOLDER", "UNTIL", "CLIENT");
        int64_t until = l->state == LEASE_STATE_LEASED ? l->expires_at : l->quarantine_until;
        printf("%-40s %-16s %-11s %-24s %-20s %s\n", l->impu, l->pool, lease_state_to_string(l->state),
               l->holder[0] ? l->holder : "-", ctl_time(until, t), l->client_addr[0] ? l->client_addr : "-");
        return 0;
}

static int cmd_list(struct ctl *ctl, int argc, char **argv) {
        struct lease_args a = { 0 };
        int r = parse(ctl, CMD_LIST, argc, argv, &a, 0, A_POOL | A_STATE);
        if (r >= 0)
                return r;
        struct list_state st = { 0 };
        if (a.state) {
                if (lease_state_from_string(a.state, &st.state) < 0)
                        return ctl_usage_error("lease list: --state is leased, quarantine, free or retired");
                st.filter = true;
        }
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        if (a.pool) {
                /* An unknown pool is an error, not an empty list. */
                if (lease_pools(ctl->engine, a.pool, NULL, NULL) == -ENOENT)
                        return ctl_engine_error(ctl);
        }
        st.array = ctl->json ? json_array() : NULL;
        if (lease_list(ctl->engine, a.pool, list_one, &st) < 0) {
                json_decref(st.array);
                return ctl_engine_error(ctl);
        }
        if (st.array)
                ctl_print_json(st.array);
        return EXIT_OK;
}

static int cmd_show(struct ctl *ctl, int argc, char **argv) {
        struct lease_args a = { 0 };
        int r = parse(ctl, CMD_SHOW, argc, argv, &a, 1, 0);
        if (r >= 0)
                return r;
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        struct lease l;
        r = lease_lookup(ctl->engine, argv[optind], &l);
        if (r < 0)
                return r == -EINVAL ? ctl_usage_error("%s", lease_engine_error(ctl->engine)) : ctl_engine_error(ctl);
        print_lease(ctl, &l, NULL);
        return EXIT_OK;
}

static int cmd_reclaim(struct ctl *ctl, int argc, char **argv) {
        struct lease_args a = { 0 };
        int r = parse(ctl, CMD_RECLAIM, argc, argv, &a, 0, A_BATCH | A_MAX_MS);
        if (r >= 0)
                return r;
        int batch = a.batch ? (int) a.batch : 100, max_ms = a.max_ms ? (int) a.max_ms : 250;
        if ((r = ctl_open(ctl)) != EXIT_OK)
                return r;
        int64_t total = 0, batches = 0;
        uint64_t longest = 0, started = wwsf_monotonic_ns(), last_report = started;
        for (;;) {
                struct lease_reclaim_result res;
                if (lease_reclaim_batch(ctl->engine, batch, max_ms, &res) < 0)
                        return ctl_engine_error(ctl);
                total += res.reclaimed;
                batches++;
                if (res.elapsed_ns > longest)
                        longest = res.elapsed_ns;
                if (!res.more)
                        break;
                uint64_t now = wwsf_monotonic_ns();
                if (now - last_report > 1000000000u) {
                        fprintf(stderr, "wwsfctl: reclaimed %" PRId64 " leases so far...\n", total);
                        last_report = now;
                }
        }
        double longest_ms = (double) longest / 1e6, total_ms = (double) (wwsf_monotonic_ns() - started) / 1e6;
        if (ctl->json) {
                json_t *o = json_object();
                json_object_set_new(o, "reclaimed", json_integer(total));
                json_object_set_new(o, "batches", json_integer(batches));
                json_object_set_new(o, "longest_batch_ms", json_real(longest_ms));
                json_object_set_new(o, "elapsed_ms", json_real(total_ms));
                ctl_print_json(o);
        } else
                printf("reclaimed %" PRId64 " expired lease%s in %" PRId64 " batch%s (longest %.1f ms, total %.1f ms)\n",
                       total, total == 1 ? "" : "s", batches, batches == 1 ? "" : "es", longest_ms, total_ms);
        return EXIT_OK;
}

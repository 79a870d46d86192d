/* portal add, list, rotate, revoke, check, log: the portals, their API keys
 * (src/portal) and what they changed through the API. A key appears on stdout once, from add or rotate, and is read
 * back only from stdin (check), never from argv: the process list shows
 * argv to every user of the host. */
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "portal/portal.h"
#include "wwsfctl/ctl.h"

static int cmd_portal(struct ctl *ctl, int argc, char **argv);

enum { CMD_ADD, CMD_LIST, CMD_ROTATE, CMD_REVOKE, CMD_CHECK, CMD_LOG, CMD_COUNT };

static const char add_summary[] =
        "Makes portal NAME, the owner of its subscriptions, and prints its API key, once,\n"
        "alone on one line (only a hash of it is kept). NAME: 1-64 letters, digits, '.',\n"
        "'_' or '-'. Limits: pools it may define (default 16, at most 1000) and IMPUs over\n"
        "all of them (default 100000).";
static const char list_summary[] =
        "Lists the portals: limits, when created and last used, and the key state: active,\n"
        "rotating (old keys work until the time shown) or revoked.";
static const char rotate_summary[] =
        "Prints a new API key for NAME like 'portal add'. The old keys keep working for\n"
        "DURATION (default 1h, at most 7d; 0 stops them now). Gives a revoked portal a\n"
        "key again.";
static const char check_summary[] =
        "Reads an API key from stdin (one line) and prints the name of its portal, or is\n"
        "refused with 'key refused' (exit 1) for any key that does not work now.";

static const char log_summary[] =
        "Prints what portal NAME changed through the portal API, oldest first: when, the\n"
        "action (pool.create, pool.update, pool.delete, entries.add, entry.remove,\n"
        "lease.revoke), the resource, the client's address, and (--json) the resource\n"
        "before and after. --since TIME (epoch seconds or YYYY-MM-DDTHH:MM:SSZ): only\n"
        "from then on.";

/* One function runs them all: it knows the command by its last word. */
const struct ctl_command ctl_portal_commands[] = {
        [CMD_ADD] = { "portal add", "NAME [--max-pools N] [--max-entries N] [--json]", add_summary, cmd_portal },
        [CMD_LIST] = { "portal list", "[--json]", list_summary, cmd_portal },
        [CMD_ROTATE] = { "portal rotate", "NAME [--grace DURATION] [--json]", rotate_summary, cmd_portal },
        [CMD_REVOKE] = { "portal revoke", "NAME [--json]", "Every API key of NAME stops working at once.",
                         cmd_portal },
        [CMD_CHECK] = { "portal check", "[--json] < KEY", check_summary, cmd_portal },
        [CMD_LOG] = { "portal log", "NAME [--since TIME] [--json]", log_summary, cmd_portal },
        { 0 },
};

/* A key is PORTAL_KEY_LEN characters; check reads at most this much of
 * stdin, and anything longer is no key. */
#define CHECK_INPUT_MAX 256

struct portal_args {
        int which;
        const struct ctl_command *cmd;
        const char *name;       /* NAME, for the commands that take one */
        int64_t max_pools, max_entries, grace, since;
};

enum { OPT_MAX_POOLS = 0x100, OPT_MAX_ENTRIES, OPT_GRACE, OPT_SINCE };

static int on_portal_opt(int c, const char *arg, void *userdata) {
        struct portal_args *a = userdata;
        /* getopt knows every option of the group; each belongs to one command. */
        bool allowed = c == OPT_GRACE ? a->which == CMD_ROTATE : c == OPT_SINCE ? a->which == CMD_LOG : a->which == CMD_ADD;
        if (!allowed) {
                const char *opt = c == OPT_GRACE       ? "--grace"
                                  : c == OPT_SINCE     ? "--since"
                                  : c == OPT_MAX_POOLS ? "--max-pools"
                                                       : "--max-entries";
                return ctl_usage_error("%s: unknown option '%s'", a->cmd->name, opt);
        }
        if (c == OPT_SINCE) {
                if (ctl_parse_time(arg, &a->since) == 0)
                        return -1;
                return ctl_usage_error("%s: --since: '%s' is not epoch seconds or YYYY-MM-DDTHH:MM:SSZ", a->cmd->name,
                                       arg);
        }
        if (c == OPT_GRACE) {
                if (wwsf_parse_duration(arg, &a->grace) == 0 && a->grace <= PORTAL_GRACE_MAX)
                        return -1;
                return ctl_usage_error("%s: --grace: expected a duration such as 0, 90s, 15m or 1h (at most 7d), "
                                       "not '%s'",
                                       a->cmd->name, arg);
        }
        bool pools = c == OPT_MAX_POOLS;
        int64_t max = pools ? PORTAL_MAX_POOLS_LIMIT : PORTAL_MAX_ENTRIES_LIMIT;
        if (wwsf_parse_int(arg, 1, max, pools ? &a->max_pools : &a->max_entries) == 0)
                return -1;
        return ctl_usage_error("%s: --max-%s: expected a number from 1 to %" PRId64 ", not '%s'", a->cmd->name,
                               pools ? "pools" : "entries", max, arg);
}

/* Parses the options and the NAME of the command, and opens the store.
 * Returns -1 to go on, or an exit status. */
static int parse(struct ctl *ctl, int argc, char **argv, struct portal_args *a) {
        static const struct option options[] = {
                { "max-pools", required_argument, NULL, OPT_MAX_POOLS },
                { "max-entries", required_argument, NULL, OPT_MAX_ENTRIES },
                { "grace", required_argument, NULL, OPT_GRACE },
                { "since", required_argument, NULL, OPT_SINCE },
                { 0 },
        };
        int which = 0;
        while (which < CMD_COUNT && strcmp(strchr(ctl_portal_commands[which].name, ' ') + 1, argv[0]) != 0)
                which++;
        if (which == CMD_COUNT)
                return ctl_usage_error("portal: unknown subcommand '%s'", argv[0]);
        a->which = which;
        a->cmd = &ctl_portal_commands[which];
        a->max_pools = PORTAL_MAX_POOLS_DEFAULT;
        a->max_entries = PORTAL_MAX_ENTRIES_DEFAULT;
        a->grace = PORTAL_GRACE_DEFAULT;
        int r = ctl_getopt(ctl, a->cmd, argc, argv, NULL, options, on_portal_opt, a);
        if (r >= 0)
                return r;
        bool named = which != CMD_LIST && which != CMD_CHECK;
        int extra = argc - optind - (named ? 1 : 0);
        if (extra < 0)
                return ctl_usage_error("%s: name the portal", a->cmd->name);
        if (extra > 0)
                return ctl_usage_error("%s: unexpected argument '%s'", a->cmd->name, argv[argc - extra]);
        a->name = named ? argv[optind] : NULL;
        if (a->name && !pool_name_valid(a->name))
                return ctl_usage_error("%s: '%s' is not a portal name: 1-%d characters of letters, digits, "
                                       "'.', '_' or '-'",
                                       a->cmd->name, a->name, POOL_NAME_CHARS);
        r = ctl_open(ctl);
        return r == EXIT_OK ? -1 : r;
}

static int portal_error(struct ctl *ctl, int r, const char *name) {
        switch (r) {
        case -EEXIST:
                return ctl_refuse("portal '%s' exists already", name);
        case -ENOENT:
                return ctl_refuse("unknown portal '%s'", name);
        case -EACCES:
                return ctl_refuse("key refused");
        case -EBUSY:
                return ctl_refuse("the lease store stayed locked: %s", ctl->store->ops->error(ctl->store));
        default:
                return ctl_refuse("lease store error: %s", ctl->store->ops->error(ctl->store));
        }
}

/* add and rotate: a new key, printed here and nowhere else. */
static int issue_key(struct ctl *ctl, const struct portal_args *a, int64_t now) {
        char key[PORTAL_KEY_SIZE];
        int r = a->which == CMD_ADD ? portal_add(ctl->store, a->name, a->max_pools, a->max_entries, now, key)
                                    : portal_rotate(ctl->store, a->name, a->grace, now, key);
        if (r < 0)
                return portal_error(ctl, r, a->name);
        if (ctl->json)
                ctl_print_json(json_pack("{s:s, s:s}", "name", a->name, "key", key));
        else
                printf("%s\n", key);
        gnutls_memset(key, 0, sizeof key);
        return EXIT_OK;
}

static json_t *time_or_null(int64_t t) {
        return t ? json_integer(t) : json_null();
}

struct list_state {
        json_t *array;
        int rows;
};

static int list_one(const struct portal_info *p, void *userdata) {
        struct list_state *st = userdata;
        const char *state = portal_key_state_to_string(p->state);
        if (st->array)
                return json_array_append_new(
                        st->array, json_pack("{s:s, s:I, s:I, s:o, s:o, s:s, s:o, s:o}", "name", p->name, "max_pools",
                                             (json_int_t) p->max_pools, "max_entries", (json_int_t) p->max_entries,
                                             "created_at", time_or_null(p->created_at), "last_used_at",
                                             time_or_null(p->last_used_at), "key_state", state, "grace_until",
                                             time_or_null(p->grace_until), "revoked_at",
                                             time_or_null(p->revoked_at))) < 0
                               ? -ENOMEM
                               : 0;
        char t1[32], t2[32], t3[32], keys[64];
        if (p->state == PORTAL_KEY_ROTATING)
                snprintf(keys, sizeof keys, "%s until %s", state, ctl_time(p->grace_until, t3));
        else
                snprintf(keys, sizeof keys, "%s", state);
        if (st->rows++ == 0)
                printf("%-20s %-9s %-11s %-20s %-20s %s\n", "NAME", "MAX-POOLS", "MAX-ENTRIES", "CREATED",
                       "LAST-USED", "KEY");
        printf("%-20s %-9" PRId64 " %-11" PRId64 " %-20s %-20s %s\n", p->name, p->max_pools, p->max_entries,
               ctl_time(p->created_at, t1), ctl_time(p->last_used_at, t2), keys);
        return 0;
}

static int list(struct ctl *ctl, int64_t now) {
        struct list_state st = { .array = ctl->json ? json_array() : NULL };
        int r = portal_list(ctl->store, now, list_one, &st);
        if (r < 0) {
                json_decref(st.array);
                return portal_error(ctl, r, "");
        }
        if (st.array)
                ctl_print_json(st.array);
        else if (st.rows == 0)
                printf("no portals: make one with 'wwsfctl portal add NAME'\n");
        return EXIT_OK;
}

/* One line of at most CHECK_INPUT_MAX bytes, without its line end, into buf;
 * false for more. */
static bool read_key_line(char buf[CHECK_INPUT_MAX + 2]) {
        size_t n = fread(buf, 1, CHECK_INPUT_MAX + 1, stdin);
        if (n > CHECK_INPUT_MAX)
                return false;
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
                buf[--n] = '\0';
        return true;
}

static int revoke(struct ctl *ctl, const struct portal_args *a, int64_t now) {
        int r = portal_revoke(ctl->store, a->name, now);
        if (r < 0)
                return portal_error(ctl, r, a->name);
        if (ctl->json)
                ctl_print_json(json_pack("{s:s, s:s}", "name", a->name, "key_state", "revoked"));
        else
                printf("portal '%s' is revoked: none of its keys works\n", a->name);
        return EXIT_OK;
}

static int check(struct ctl *ctl, int64_t now) {
        char buf[CHECK_INPUT_MAX + 2], name[POOL_NAME_MAX];
        int r = read_key_line(buf) ? portal_authenticate(ctl->store, buf, now, name) : -EACCES;
        gnutls_memset(buf, 0, sizeof buf);
        if (r < 0)
                return portal_error(ctl, r, "");
        if (ctl->json)
                ctl_print_json(json_pack("{s:s}", "name", name));
        else
                printf("%s\n", name);
        return EXIT_OK;
}

struct log_state {
        json_t *array;
        int rows;
};

static json_t *json_text_or_null(const char *text) {
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        return j ? j : json_null();
}

static int log_one(const struct store_audit *au, void *userdata) {
        struct log_state *st = userdata;
        if (st->array)
                return json_array_append_new(st->array,
                                             json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:s?}", "id", (json_int_t) au->id,
                                                       "at", (json_int_t) au->at, "action", au->action, "resource",
                                                       au->resource, "before", json_text_or_null(au->before), "after",
                                                       json_text_or_null(au->after), "client_addr",
                                                       au->client_addr[0] ? au->client_addr : NULL)) < 0
                               ? -ENOMEM
                               : 0;
        char t[32];
        if (st->rows++ == 0)
                printf("%-20s %-13s %-40s %s\n", "AT", "ACTION", "RESOURCE", "CLIENT");
        printf("%-20s %-13s %-40s %s\n", ctl_time(au->at, t), au->action, au->resource,
               au->client_addr[0] ? au->client_addr : "-");
        return 0;
}

static int show_log(struct ctl *ctl, const struct portal_args *a) {
        struct log_state st = { .array = ctl->json ? json_array() : NULL };
        int r = portal_log(ctl->store, a->name, a->since, log_one, &st);
        if (r < 0) {
                json_decref(st.array);
                return portal_error(ctl, r, a->name);
        }
        if (st.array)
                ctl_print_json(st.array);
        else if (st.rows == 0)
                printf("portal '%s' has changed nothing%s\n", a->name, a->since ? " since then" : "");
        return EXIT_OK;
}

static int cmd_portal(struct ctl *ctl, int argc, char **argv) {
        struct portal_args a = { 0 };
        int r = parse(ctl, argc, argv, &a);
        if (r >= 0)
                return r;
        int64_t now = wwsf_clock_now(&ctl->clock);
        switch (a.which) {
        case CMD_ADD:
        case CMD_ROTATE:
                return issue_key(ctl, &a, now);
        case CMD_LIST:
                return list(ctl, now);
        case CMD_REVOKE:
                return revoke(ctl, &a, now);
        case CMD_LOG:
                return show_log(ctl, &a);
        default:
                return check(ctl, now);
        }
}

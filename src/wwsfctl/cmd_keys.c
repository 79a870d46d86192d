/* keys generate, keys list, keys activate, keys retire: the token signing
 * keys of a keys directory (src/tokens). These commands never open the lease
 * store. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "tokens/tokens.h"
#include "wwsfctl/ctl.h"

#define WWSF_DEFAULT_KEYS_DIR "/var/lib/wwsf/keys"
/* The token TTL wwsfd uses unless configured otherwise (docs/DESIGN.md section 3). */
#define DEFAULT_TOKEN_TTL 300

static int cmd_keys_generate(struct ctl *ctl, int argc, char **argv);
static int cmd_keys_list(struct ctl *ctl, int argc, char **argv);
static int cmd_keys_activate(struct ctl *ctl, int argc, char **argv);
static int cmd_keys_retire(struct ctl *ctl, int argc, char **argv);

enum { CMD_GENERATE, CMD_LIST, CMD_ACTIVATE, CMD_RETIRE };

const struct ctl_command ctl_keys_commands[] = {
        [CMD_GENERATE] = { "keys generate", "[--alg ES256|RS256] [--keys-dir DIR] [--json]",
                           "Makes a new token signing key (default ES256) in state 'next', published in\n"
                           "the JWKS but not signing yet, and prints its kid. The keys directory is\n"
                           "$WWSF_KEYS_DIR, else " WWSF_DEFAULT_KEYS_DIR "; it is created (mode 0700) if missing.",
                           cmd_keys_generate },
        [CMD_LIST] = { "keys list", "[--keys-dir DIR] [--token-ttl DURATION] [--json]",
                       "Lists the keys, oldest first: kid, algorithm, state, when created, activated and\n"
                       "retired, and whether the JWKS publishes it now. A retired key stays published\n"
                       "for the longest token TTL after its retirement (--token-ttl, default 300s).",
                       cmd_keys_list },
        [CMD_ACTIVATE] = { "keys activate", "KID [--keys-dir DIR] [--json]",
                           "Makes KID the signing key; the key that was active is retired. Publish a key\n"
                           "(generate it) before activating it, so validators know it by then. A retired\n"
                           "key cannot be activated again.",
                           cmd_keys_activate },
        [CMD_RETIRE] = { "keys retire", "KID [--keys-dir DIR] [--json]",
                         "Retires KID: it signs no more, and leaves the JWKS once its tokens have expired.\n"
                         "Retiring the active key leaves wwsfd without a signing key.",
                         cmd_keys_retire },
        { 0 },
};

struct keys_args {
        const char *dir;
        enum token_alg alg;
        int64_t token_ttl;
        const struct ctl_command *cmd;
};

enum { OPT_ALG = 0x100, OPT_KEYS_DIR, OPT_TOKEN_TTL };

static int on_keys_opt(int c, const char *arg, void *userdata) {
        struct keys_args *a = userdata;
        switch (c) {
        case OPT_ALG:
                if (token_alg_from_string(arg, &a->alg) < 0)
                        return ctl_usage_error("%s: --alg is ES256 or RS256, not '%s'", a->cmd->name, arg);
                return -1;
        case OPT_KEYS_DIR:
                if (!*arg)
                        return ctl_usage_error("%s: --keys-dir needs a directory", a->cmd->name);
                a->dir = arg;
                return -1;
        case OPT_TOKEN_TTL:
                if (wwsf_parse_duration(arg, &a->token_ttl) < 0 || a->token_ttl <= 0)
                        return ctl_usage_error("%s: --token-ttl '%s' is not a duration such as 300, 90s or 15m",
                                               a->cmd->name, arg);
                return -1;
        }
        return ctl_usage_error("%s: unexpected option", a->cmd->name);
}

/* Parses the options of keys command `which`, with `positional` arguments
 * expected after them. Returns -1 to go on, or an exit status. */
static int parse(struct ctl *ctl, int which, int argc, char **argv, int positional, struct keys_args *a) {
        static const struct option generate_options[] = {
                { "alg", required_argument, NULL, OPT_ALG },
                { "keys-dir", required_argument, NULL, OPT_KEYS_DIR },
                { 0 },
        };
        static const struct option list_options[] = {
                { "keys-dir", required_argument, NULL, OPT_KEYS_DIR },
                { "token-ttl", required_argument, NULL, OPT_TOKEN_TTL },
                { 0 },
        };
        static const struct option kid_options[] = {
                { "keys-dir", required_argument, NULL, OPT_KEYS_DIR },
                { 0 },
        };
        const struct option *options = which == CMD_GENERATE ? generate_options
                                       : which == CMD_LIST   ? list_options
                                                             : kid_options;
        const char *env = getenv("WWSF_KEYS_DIR");
        *a = (struct keys_args) {
                .dir = env && *env ? env : WWSF_DEFAULT_KEYS_DIR,
                .alg = TOKEN_ALG_ES256,
                .token_ttl = DEFAULT_TOKEN_TTL,
                .cmd = &ctl_keys_commands[which],
        };
        int r = ctl_getopt(ctl, a->cmd, argc, argv, NULL, options, on_keys_opt, a);
        if (r >= 0)
                return r;
        if (argc - optind < positional)
                return ctl_usage_error("%s: name the key (its kid)", a->cmd->name);
        if (argc - optind > positional)
                return ctl_usage_error("%s: unexpected argument '%s'", a->cmd->name, argv[optind + positional]);
        return -1;
}

static json_t *time_or_null(int64_t t) {
        return t ? json_integer(t) : json_null();
}

static int cmd_keys_generate(struct ctl *ctl, int argc, char **argv) {
        struct keys_args a;
        int r = parse(ctl, CMD_GENERATE, argc, argv, 0, &a);
        if (r >= 0)
                return r;
        int64_t now = wwsf_clock_now(&ctl->clock);
        char kid[TOKEN_KID_MAX + 1], err[512];
        if (tokens_keys_generate(a.dir, a.alg, now, kid, err, sizeof err) < 0)
                return ctl_refuse("%s", err);
        if (ctl->json) {
                json_t *o = json_object();
                json_object_set_new(o, "kid", json_string(kid));
                json_object_set_new(o, "alg", json_string(token_alg_to_string(a.alg)));
                json_object_set_new(o, "state", json_string("next"));
                json_object_set_new(o, "created_at", json_integer(now));
                json_object_set_new(o, "keys_dir", json_string(a.dir));
                ctl_print_json(o);
        } else
                printf("%s\n", kid);
        return EXIT_OK;
}

struct list_state {
        json_t *array;
        int64_t token_ttl;
        int rows;
};

static int list_one(const struct token_key_info *k, void *userdata) {
        struct list_state *st = userdata;
        bool retired = strcmp(k->state, "retired") == 0;
        /* Until when a retired key is published (its last tokens expire). */
        int64_t until = retired && k->retired_at <= INT64_MAX - st->token_ttl ? k->retired_at + st->token_ttl : 0;
        if (st->array) {
                json_t *o = json_object();
                json_object_set_new(o, "kid", json_string(k->kid));
                json_object_set_new(o, "alg", json_string(token_alg_to_string(k->alg)));
                json_object_set_new(o, "state", json_string(k->state));
                json_object_set_new(o, "created_at", time_or_null(k->created_at));
                json_object_set_new(o, "activated_at", time_or_null(k->activated_at));
                json_object_set_new(o, "retired_at", time_or_null(k->retired_at));
                json_object_set_new(o, "published", json_boolean(k->published));
                json_object_set_new(o, "published_until", time_or_null(until));
                json_array_append_new(st->array, o);
                return 0;
        }
        char t1[32], t2[32], t3[32], t4[32], published[48];
        if (k->published && until)
                snprintf(published, sizeof published, "until %s", ctl_time(until, t4));
        else
                snprintf(published, sizeof published, "%s", k->published ? "yes" : "no");
        if (st->rows++ == 0)
                printf("%-20s %-5s %-7s %-20s %-20s %-20s %s\n", "KID", "ALG", "STATE", "CREATED", "ACTIVATED",
                       "RETIRED", "PUBLISHED");
        printf("%-20s %-5s %-7s %-20s %-20s %-20s %s\n", k->kid, token_alg_to_string(k->alg), k->state,
               ctl_time(k->created_at, t1), ctl_time(k->activated_at, t2), ctl_time(k->retired_at, t3), published);
        return 0;
}

static int cmd_keys_list(struct ctl *ctl, int argc, char **argv) {
        struct keys_args a;
        int r = parse(ctl, CMD_LIST, argc, argv, 0, &a);
        if (r >= 0)
                return r;
        char err[512];
        struct list_state st = { .array = ctl->json ? json_array() : NULL, .token_ttl = a.token_ttl };
        if (tokens_keys_list(a.dir, wwsf_clock_now(&ctl->clock), a.token_ttl, list_one, &st, err, sizeof err) < 0) {
                json_decref(st.array);
                return ctl_refuse("%s", err);
        }
        if (st.array)
                ctl_print_json(st.array);
        else if (st.rows == 0)
                printf("no keys in %s: make one with 'wwsfctl keys generate'\n", a.dir);
        return EXIT_OK;
}

struct find_state {
        const char *kid;
        char active[TOKEN_KID_MAX + 1];
        char state[16];
};

static int find_one(const struct token_key_info *k, void *userdata) {
        struct find_state *st = userdata;
        if (strcmp(k->state, "active") == 0)
                snprintf(st->active, sizeof st->active, "%s", k->kid);
        if (strcmp(k->kid, st->kid) == 0)
                snprintf(st->state, sizeof st->state, "%s", k->state);
        return 0;
}

static int cmd_keys_activate(struct ctl *ctl, int argc, char **argv) {
        struct keys_args a;
        int r = parse(ctl, CMD_ACTIVATE, argc, argv, 1, &a);
        if (r >= 0)
                return r;
        const char *kid = argv[optind];
        char err[512];
        /* Which key was active, to say which one this retires. */
        struct find_state before = { .kid = kid };
        if (tokens_keys_list(a.dir, 0, 0, find_one, &before, err, sizeof err) < 0)
                return ctl_refuse("%s", err);
        int64_t now = wwsf_clock_now(&ctl->clock);
        if (tokens_keys_activate(a.dir, kid, now, err, sizeof err) < 0)
                return ctl_refuse("%s", err);
        bool was_active = strcmp(before.active, kid) == 0;
        const char *retired = before.active[0] && !was_active ? before.active : NULL;
        if (ctl->json) {
                json_t *o = json_object();
                json_object_set_new(o, "kid", json_string(kid));
                json_object_set_new(o, "state", json_string("active"));
                json_object_set_new(o, "changed", json_boolean(!was_active));
                json_object_set_new(o, "retired", retired ? json_string(retired) : json_null());
                ctl_print_json(o);
        } else if (was_active)
                printf("%s was already active\n", kid);
        else if (retired)
                printf("%s is active; %s is retired\n", kid, retired);
        else
                printf("%s is active\n", kid);
        return EXIT_OK;
}

static int cmd_keys_retire(struct ctl *ctl, int argc, char **argv) {
        struct keys_args a;
        int r = parse(ctl, CMD_RETIRE, argc, argv, 1, &a);
        if (r >= 0)
                return r;
        const char *kid = argv[optind];
        char err[512];
        struct find_state before = { .kid = kid };
        if (tokens_keys_list(a.dir, 0, 0, find_one, &before, err, sizeof err) < 0)
                return ctl_refuse("%s", err);
        if (tokens_keys_retire(a.dir, kid, wwsf_clock_now(&ctl->clock), err, sizeof err) < 0)
                return ctl_refuse("%s", err);
        bool was_retired = strcmp(before.state, "retired") == 0;
        if (ctl->json) {
                json_t *o = json_object();
                json_object_set_new(o, "kid", json_string(kid));
                json_object_set_new(o, "state", json_string("retired"));
                json_object_set_new(o, "changed", json_boolean(!was_retired));
                ctl_print_json(o);
        } else if (was_retired)
                printf("%s was already retired\n", kid);
        else if (strcmp(before.state, "active") == 0)
                printf("%s is retired; no key signs until one is activated\n", kid);
        else
                printf("%s is retired\n", kid);
        return EXIT_OK;
}

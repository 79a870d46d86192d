/* wwsfctl: global options, command dispatch and the helpers the commands share. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/parse.h"
#include "wwsfctl/ctl.h"

static const struct ctl_command *const command_groups[] = {
        ctl_config_commands,
        ctl_lease_commands,
        ctl_report_commands,
        ctl_keys_commands,
        ctl_portal_commands,
};

int ctl_refuse(const char *fmt, ...) {
        va_list ap;
        fputs("wwsfctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_REFUSED;
}

int ctl_usage_error(const char *fmt, ...) {
        va_list ap;
        fputs("wwsfctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (try --help)\n", stderr);
        return EXIT_USAGE;
}

int ctl_engine_error(struct ctl *ctl) {
        return ctl_refuse("%s", lease_engine_error(ctl->engine));
}

/* The default database lives in a directory that may not exist yet. */
static int ensure_parent_dir(const char *path) {
        char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        char *dir = dirname(copy);
        struct stat st;
        int r = 0;
        if (stat(dir, &st) < 0 && mkdir(dir, 0750) < 0 && errno != EEXIST)
                r = -errno;
        free(copy);
        return r;
}

int ctl_open(struct ctl *ctl) {
        if (ctl->engine)
                return EXIT_OK;
        if (!ctl->db_path_given && ensure_parent_dir(ctl->db_path) < 0)
                return ctl_refuse("cannot create the directory of %s: %s (use --db PATH)", ctl->db_path,
                                  strerror(errno));
        char err[600];
        int r = store_sqlite_open(ctl->db_path, NULL, &ctl->store, err, sizeof err);
        if (r < 0)
                return ctl_refuse("cannot open the lease store %s", err);
        r = lease_engine_new(ctl->store, &ctl->clock, &ctl->engine);
        if (r < 0)
                return ctl_refuse("out of memory");
        return EXIT_OK;
}

void ctl_print_help(const struct ctl_command *cmd) {
        printf("Usage: wwsfctl [--db PATH] [--now EPOCH] %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
}

int ctl_getopt(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int (*on_opt)(int c, const char *arg, void *userdata), void *userdata) {
        struct option all[32];
        size_t n = 0;
        for (; longopts && longopts[n].name && n < 29; n++)
                all[n] = longopts[n];
        all[n++] = (struct option) { "help", no_argument, NULL, 'h' };
        all[n++] = (struct option) { "json", no_argument, NULL, 'J' };
        all[n] = (struct option) { 0 };

        char opts[64];
        snprintf(opts, sizeof opts, ":h%s", shortopts ? shortopts : "");
        optind = 0; /* a full reset: each command parses its own argv */
        int c;
        while ((c = getopt_long(argc, argv, opts, all, NULL)) != -1) {
                switch (c) {
                case 'h':
                        ctl_print_help(cmd);
                        return EXIT_OK;
                case 'J':
                        ctl->json = true;
                        break;
                case '?':
                        return ctl_usage_error("%s: unknown option '%s'", cmd->name, argv[optind - 1]);
                case ':':
                        return ctl_usage_error("%s: option '%s' needs a value", cmd->name, argv[optind - 1]);
                default:
                        if (!on_opt)
                                return ctl_usage_error("%s: unexpected option", cmd->name);
                        int r = on_opt(c, optarg, userdata);
                        if (r >= 0)
                                return r;
                }
        }
        return -1;
}

const char *ctl_time(int64_t t, char *buf) {
        if (t <= 0) {
                strcpy(buf, "-");
                return buf;
        }
        time_t tt = (time_t) t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return buf;
}

int ctl_parse_time(const char *s, int64_t *ret) {
        if (wwsf_parse_int(s, 0, INT64_C(253402300799), ret) == 0)
                return 0;
        struct tm tm = { 0 };
        const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end || (*end && strcmp(end, "Z") != 0))
                return -EINVAL;
        *ret = (int64_t) timegm(&tm);
        return 0;
}

json_t *ctl_lease_json(const struct lease *l) {
        json_t *o = json_object();
        json_object_set_new(o, "impu", json_string(l->impu));
        json_object_set_new(o, "impi", json_string(l->impi));
        json_object_set_new(o, "pool", json_string(l->pool));
        json_object_set_new(o, "state", json_string(lease_state_to_string(l->state)));
        json_object_set_new(o, "holder", l->holder[0] ? json_string(l->holder) : json_null());
        json_object_set_new(o, "client_addr", l->client_addr[0] ? json_string(l->client_addr) : json_null());
        json_object_set_new(o, "leased_at", l->leased_at ? json_integer(l->leased_at) : json_null());
        json_object_set_new(o, "expires_at", l->expires_at ? json_integer(l->expires_at) : json_null());
        json_object_set_new(o, "quarantine_until",
                            l->quarantine_until ? json_integer(l->quarantine_until) : json_null());
        return o;
}

void ctl_print_json(json_t *v) {
        json_dumpf(v, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        fputc('\n', stdout);
        json_decref(v);
}

static void print_usage(FILE *f) {
        fputs("Usage: wwsfctl [--db PATH] [--now EPOCH] [--json] COMMAND [ARGS...]\n"
              "\n"
              "Administers the WWSF lease store: IMPU pools and the leases given from them.\n"
              "\n"
              "Global options:\n"
              "  --db PATH      lease store (default $WWSF_DB, else " WWSF_DEFAULT_DB ")\n"
              "  --now EPOCH    act as if the time were EPOCH (seconds, or 2026-11-27T10:00:00Z)\n"
              "  --json         print data as JSON (also accepted after the command)\n"
              "  --help         this text; COMMAND --help tells about one command\n"
              "  --version      the version and the store schema version\n"
              "\n"
              "Commands:\n",
              f);
        for (size_t g = 0; g < sizeof command_groups / sizeof command_groups[0]; g++)
                for (const struct ctl_command *c = command_groups[g]; c->name; c++)
                        fprintf(f, "  %-15s %s\n", c->name, c->usage);
        fputs("\nExit status: 0 done, 1 refused (one line on stderr says why), 2 usage error.\n", f);
}

static const struct ctl_command *find_command(int argc, char **argv, int *ret_words) {
        for (size_t g = 0; g < sizeof command_groups / sizeof command_groups[0]; g++)
                for (const struct ctl_command *c = command_groups[g]; c->name; c++) {
                        const char *space = strchr(c->name, ' ');
                        size_t n1 = space ? (size_t) (space - c->name) : strlen(c->name);
                        if (strlen(argv[0]) != n1 || strncmp(argv[0], c->name, n1) != 0)
                                continue;
                        if (!space) {
                                *ret_words = 1;
                                return c;
                        }
                        if (argc > 1 && strcmp(argv[1], space + 1) == 0) {
                                *ret_words = 2;
                                return c;
                        }
                }
        return NULL;
}

static bool is_group(const char *word) {
        for (size_t g = 0; g < sizeof command_groups / sizeof command_groups[0]; g++)
                for (const struct ctl_command *c = command_groups[g]; c->name; c++)
                        if (strncmp(c->name, word, strlen(word)) == 0 && c->name[strlen(word)] == ' ')
                                return true;
        return false;
}

static void print_group_help(const char *word) {
        printf("Usage: wwsfctl [--db PATH] [--now EPOCH] %s SUBCOMMAND ...\n\nSubcommands:\n", word);
        for (size_t g = 0; g < sizeof command_groups / sizeof command_groups[0]; g++)
                for (const struct ctl_command *c = command_groups[g]; c->name; c++)
                        if (strncmp(c->name, word, strlen(word)) == 0 && c->name[strlen(word)] == ' ')
                                printf("  %-15s %s\n                  %s\n", c->name, c->usage, c->summary);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "db", required_argument, NULL, 'd' },
                { "now", required_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'J' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { 0 },
        };
        struct ctl ctl = { 0 };
        const char *env_db = getenv("WWSF_DB");
        ctl.db_path = env_db && *env_db ? env_db : WWSF_DEFAULT_DB;
        ctl.db_path_given = env_db && *env_db;
        ctl.clock = wwsf_clock_system;

        int c;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
                switch (c) {
                case 'd':
                        ctl.db_path = optarg;
                        ctl.db_path_given = true;
                        break;
                case 'n':
                        if (ctl_parse_time(optarg, &ctl.fixed_now) < 0)
                                return ctl_usage_error("--now: '%s' is not epoch seconds or YYYY-MM-DDTHH:MM:SSZ",
                                                       optarg);
                        ctl.clock = wwsf_clock_fixed(&ctl.fixed_now);
                        break;
                case 'J':
                        ctl.json = true;
                        break;
                case 'h':
                        print_usage(stdout);
                        return EXIT_OK;
                case 'V':
                        printf("wwsfctl %s (lease store schema %d)\n", WWSF_VERSION, store_schema_version());
                        return EXIT_OK;
                case ':':
                        return ctl_usage_error("option '%s' needs a value", argv[optind - 1]);
                default:
                        return ctl_usage_error("unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind >= argc) {
                print_usage(stderr);
                return EXIT_USAGE;
        }
        int words = 0;
        const struct ctl_command *cmd = find_command(argc - optind, argv + optind, &words);
        if (!cmd) {
                if (is_group(argv[optind])) {
                        if (optind + 1 < argc && (strcmp(argv[optind + 1], "--help") == 0 ||
                                                  strcmp(argv[optind + 1], "-h") == 0)) {
                                print_group_help(argv[optind]);
                                return EXIT_OK;
                        }
                        return ctl_usage_error("%s: unknown or missing subcommand", argv[optind]);
                }
                return ctl_usage_error("unknown command '%s'", argv[optind]);
        }
        /* The command sees argv[0] = its last word, then its own arguments. */
        int sub_argc = argc - optind - words + 1;
        char **sub_argv = argv + optind + words - 1;
        int r = cmd->run(&ctl, sub_argc, sub_argv);

        lease_engine_free(ctl.engine);
        store_close(ctl.store);
        if (fflush(stdout) != 0 && r == EXIT_OK)
                r = ctl_refuse("cannot write the output: %s", strerror(errno));
        return r;
}

/* Shared state and helpers of the wwsfctl commands. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "lease/lease.h"

/* Exit statuses: the contract other tools rely on. */
enum {
        EXIT_OK = 0,
        EXIT_REFUSED = 1,       /* the operation was refused or failed; one line on stderr says why */
        EXIT_USAGE = 2,
};

#define WWSF_DEFAULT_DB "/var/lib/wwsf/wwsf.db"

struct ctl {
        const char *db_path;
        bool db_path_given;
        bool json;
        int64_t fixed_now;
        struct wwsf_clock clock;
        struct store *store;
        struct lease_engine *engine;
};

struct ctl_command {
        const char *name;       /* "lease acquire" */
        const char *usage;      /* arguments after the name */
        const char *summary;
        int (*run)(struct ctl *ctl, int argc, char **argv);
};

extern const struct ctl_command ctl_config_commands[];
extern const struct ctl_command ctl_lease_commands[];
extern const struct ctl_command ctl_report_commands[];
extern const struct ctl_command ctl_keys_commands[];
extern const struct ctl_command ctl_portal_commands[];

/* Opens the store and the engine on first use. Returns an exit status. */
int ctl_open(struct ctl *ctl);

__attribute__((format(printf, 1, 2))) int ctl_refuse(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) int ctl_usage_error(const char *fmt, ...);
/* Maps an engine failure to its message and exit status. */
int ctl_engine_error(struct ctl *ctl);

/* Parses the options of a command; --help and --json are handled here. Returns
 * -1 to go on, or an exit status to return at once. */
struct option;
int ctl_getopt(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int (*on_opt)(int c, const char *arg, void *userdata), void *userdata);
void ctl_print_help(const struct ctl_command *cmd);

/* "2026-11-27T03:10:53Z", or "-" for 0. buf holds at least 32 bytes. */
const char *ctl_time(int64_t t, char *buf);
/* Epoch seconds or an ISO 8601 UTC time ("2026-11-27T03:10:53Z"). */
int ctl_parse_time(const char *s, int64_t *ret);

json_t *ctl_lease_json(const struct lease *l);
/* Prints the JSON value (consumed) on stdout with a newline. */
void ctl_print_json(json_t *v);

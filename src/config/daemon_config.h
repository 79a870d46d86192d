/* The wwsfd configuration file (INI). Every key, its meaning and its default
 * are documented in pool-config/wwsfd.ini, the shipped example. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAEMON_MAX_POOL_FILES 32
#define DAEMON_MAX_GROUP_POOLS 32
#define DAEMON_MAX_LDAP_URIS 8
#define DAEMON_MAX_HOOK_ARGS 16

struct daemon_group_pool {
        char *group_dn;         /* LDAP group (memberOf value or group entry DN) */
        char *pool;
};

struct daemon_config {
        /* [server] */
        char *listen_host;              /* "127.0.0.1", "::", ... */
        uint16_t listen_port;           /* 0 = any free port (tests) */
        char *tls_cert, *tls_key;       /* PEM files */
        char *tls_priorities;
        char *web_root;
        char *public_url;               /* https://host[:port]: the token issuer and the only allowed Origin */
        int threads;
        int max_connections;
        int max_connections_per_ip;
        int64_t connection_timeout;     /* seconds */
        int64_t header_limit;           /* bytes of request head a connection may use */
        int64_t shutdown_grace;         /* seconds to finish requests on SIGTERM */
        char *log_level;                /* error, warning, info, debug */

        /* [store] */
        char *db;
        char *pool_files[DAEMON_MAX_POOL_FILES];
        size_t n_pool_files;
        int64_t reclaim_interval;       /* seconds */
        char *sync;                     /* full, normal */

        /* [tokens] */
        char *keys_dir;
        int64_t token_ttl;
        char *audience;
        char *wwsf_id;                  /* the 3gpp-wwsf claim */

        /* [epcscf] */
        char *epcscf_uri;               /* wss://... handed to the WIC */

        /* [session] */
        int64_t session_ttl;
        int64_t max_sessions;           /* [session] max_sessions */

        /* [anonymous] */
        bool anonymous_enabled;
        char *hook_argv[DAEMON_MAX_HOOK_ARGS + 1];
        int hook_helpers;
        int64_t hook_timeout_ms;
        char *anonymous_pool;

        /* [ldap] */
        bool ldap_enabled;
        char *ldap_uris[DAEMON_MAX_LDAP_URIS];
        size_t n_ldap_uris;
        bool ldap_starttls;
        char *ldap_ca_file;
        char *ldap_bind_dn;
        char *ldap_bind_password_file;
        char *ldap_base_dn;
        char *ldap_user_attribute;      /* uid */
        char *ldap_impu_attribute, *ldap_impi_attribute, *ldap_group_attribute;
        int64_t ldap_timeout_ms;
        int ldap_connections;
        char *ldap_pool;                /* pool for users without their own IMPU */
        struct daemon_group_pool group_pools[DAEMON_MAX_GROUP_POOLS];
        size_t n_group_pools;

        /* [throttle] */
        int login_per_ip_per_minute;
        int login_per_user_per_minute;
        int anonymous_per_ip_per_minute;
        int refresh_per_session_per_minute;
        int portal_per_key_per_minute;  /* portal API requests of one API key */

        /* Problems found, "FILE:LINE: reason". */
        char **errors;
        size_t n_errors;
        char *file;
};

/* Reads and validates FILE. Relative paths in it are taken relative to the
 * file's directory. Returns 0, -EINVAL with cfg->errors filled, or another
 * negative errno; *ret is set in every case (free with daemon_config_free). */
int daemon_config_load(const char *file, struct daemon_config **ret);
void daemon_config_free(struct daemon_config *cfg);

struct pool_config;

/* Loads the pool configuration the daemon config names ([store] pool_config)
 * into *ret_pools and checks the pools the daemon config refers to exist with
 * the right kind; problems go to cfg->errors (and the pool files' own to
 * (*ret_pools)->errors). Returns 0 or -EINVAL. */
int daemon_config_load_pools(struct daemon_config *cfg, struct pool_config **ret_pools);

/* Whether FILE looks like a wwsfd configuration (has a [server] section)
 * rather than a pool configuration. */
bool daemon_config_sniff(const char *file);

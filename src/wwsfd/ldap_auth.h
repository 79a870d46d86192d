/* Password logins against LDAP (OpenLDAP's libldap), off the HTTP threads.
 *
 * A pool of worker threads, each with its own LDAP connection, opened on
 * first use and kept (pooled). A login: bind as the service account (or
 * anonymously without bind_dn), search base_dn (subtree) for
 * (user_attribute=<username escaped per RFC 4515>), refuse zero or several
 * matches, then bind as the found DN with the password on the same
 * connection (and rebind as the service account afterwards). StartTLS when
 * configured, ldaps:// URIs as given; every operation bounded by the
 * configured timeout; on a connection failure or timeout the next URI of the
 * list is tried (failover), and a worker that lost its connection reconnects
 * on its next login. Passwords are never logged, never kept. */
#pragma once
#include <stdbool.h>

#include "config/daemon_config.h"

enum ldap_login_status {
        LDAP_LOGIN_OK = 0,
        LDAP_LOGIN_INVALID = -1,        /* unknown user, wrong or empty password, several entries: one answer */
        LDAP_LOGIN_UNAVAILABLE = -2,    /* no LDAP server answered in time */
        LDAP_LOGIN_BUSY = -3,           /* the queue of logins waiting is full */
};

#define LDAP_LOGIN_MAX_GROUPS 32

struct ldap_user {
        char uid[256];                  /* the username as given (validated) */
        char dn[512];
        char impu[256], impi[256];      /* "" when the entry has none (scenario 3) */
        char groups[LDAP_LOGIN_MAX_GROUPS][512];        /* group_attribute values */
        int n_groups;
};

/* Called once per login, from a worker thread; user is NULL unless OK. */
typedef void (*ldap_done_fn)(void *userdata, enum ldap_login_status status, const struct ldap_user *user,
                             unsigned long elapsed_us);

struct ldap_pool;

/* Reads the service password file now; connects lazily. */
int ldap_pool_new(const struct daemon_config *cfg, struct ldap_pool **ret);
/* Answers every queued login LDAP_LOGIN_UNAVAILABLE, stops the workers;
 * accepts NULL. */
void ldap_pool_free(struct ldap_pool *p);

/* Queues a login. username and password are copied (the copy of the password
 * is wiped after use). done is called exactly once, possibly before this
 * returns (LDAP_LOGIN_BUSY or LDAP_LOGIN_INVALID for an empty password or a
 * username over 255 bytes or with NUL/control bytes). */
void ldap_pool_login(struct ldap_pool *p, const char *username, const char *password, ldap_done_fn done,
                     void *userdata);

/* RFC 4515 escaping of an assertion value: * ( ) \ NUL and every byte >= 0x80
 * or < 0x20 as \XX. Returns the length, or -1 if out is too small. */
int ldap_filter_escape(const char *in, char *out, int outsize);

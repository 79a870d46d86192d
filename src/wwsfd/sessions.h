/* Browser sessions: the table of live sessions, the tag a tab names its
 * session by, the opaque `sub` handle of a user, and the session cookie.
 *
 * One browser keeps one cookie for all its tabs; each tab has a session of
 * its own (alice in one tab, a visitor in another), so the cookie holds the
 * ids of the browser's newest sessions, joined by '.', and a tab names its
 * own by the session's tag in the X-WWSF-Request header. Tags and `sub`
 * handles are HMAC-SHA256 under one key kept in keys_dir (sub.key), so the
 * same user gets the same handle across restarts and nobody can turn either
 * back into an id or a username. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define SESSION_ID_LEN 43       /* 32 random bytes, base64url */
/* 8 sessions make a 351-byte cookie. */
#define SESSIONS_PER_COOKIE 8
#define SESSION_COOKIE_VALUE_MAX (SESSIONS_PER_COOKIE * (SESSION_ID_LEN + 1))
/* The whole Set-Cookie value: the ids and the attributes. */
#define SESSION_SET_COOKIE_MAX (SESSION_COOKIE_VALUE_MAX + 160)
#define SESSION_TAG_LEN 12      /* 72 bits of an HMAC of the id, base64url */
#define SESSION_KEY_LEN 32

struct session {
        char id[SESSION_ID_LEN + 1];
        char holder[STORE_HOLDER_MAX];
        char sub[STORE_HOLDER_MAX];
        char pool[STORE_NAME_MAX];      /* "" for a user's own IMPU (no lease) */
        char impu[STORE_IDENTITY_MAX];
        char impi[STORE_IDENTITY_MAX];
        bool anon;
        int64_t expires_at;
};

/* Reads keys_dir/sub.key, creating it (0600, random) on first use. */
int session_key_load(const char *keys_dir, uint8_t key[SESSION_KEY_LEN]);

struct session_table;
/* A table of at most max live sessions, tagging with key (copied). */
int session_table_new(size_t max, const uint8_t key[SESSION_KEY_LEN], struct session_table **ret);
/* Accepts NULL; wipes the key and every session. */
void session_table_free(struct session_table *t);
/* Whether a new session would be refused now: checked before an admission
 * takes a lease, so that a full table does not cost leases and signatures
 * (session_create() still refuses in the rare race past the check). */
bool session_table_full(struct session_table *t);
/* Whether a session with this id is live. */
bool session_exists(struct session_table *t, const char *id, int64_t now);
/* Fills s->id with a fresh random id and stores a copy. -ENOSPC when full. */
int session_create(struct session_table *t, struct session *s);
/* Copies the live session into *ret; false if unknown or expired. */
bool session_get(struct session_table *t, const char *id, int64_t now, struct session *ret);
void session_remove(struct session_table *t, const char *id);
void session_expire(struct session_table *t, int64_t now);

/* The tag of session id (SESSION_TAG_LEN characters and a NUL into buf):
 * what a tab sends to name its session among those of the cookie, without
 * the page ever holding the id itself (the cookie is HttpOnly). */
void session_tag(const struct session_table *t, const char *id, char buf[SESSION_TAG_LEN + 1]);
/* Whether s has the shape of a tag. */
bool session_tag_well_formed(const char *s);
/* The opaque `sub` of a holder ("u-" and 128 bits of its HMAC). */
void session_sub_for(const struct session_table *t, const char *holder, char *buf, size_t size);

/* ---- the cookie ---- */

#define SESSION_COOKIE "wwsf_session"

/* The browser's other live sessions for a new one (ids joined by '.', into
 * out): the newest SESSIONS_PER_COOKIE - 1 live ones of the cookie value
 * (NULL: none), so that the new session makes the cookie full. */
void session_cookie_others(struct session_table *t, const char *cookie, int64_t now, char *out, size_t size);
/* The session a refresh or logout means: the one whose tag is tag, or with
 * tag NULL the newest of the cookie. Copies it into *ret and the cookie's
 * other ids into others; false when there is none or it is not live. */
bool session_cookie_pick(struct session_table *t, const char *cookie, const char *tag, int64_t now,
                         struct session *ret, char *others, size_t size);
/* The Set-Cookie value that keeps others and adds id (either may be "" or
 * NULL); with neither, the cookie is cleared. */
void session_cookie_format(char *buf, size_t size, const char *others, const char *id, int64_t max_age);

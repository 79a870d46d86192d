-- Portals, version 2: the portal identities that will manage their own
-- subscriptions and pools through the portal API, and their API keys. Applied
-- in one transaction by the store (src/store), which then sets
-- PRAGMA user_version = 2. A database of version 1 is upgraded in place: this
-- only adds tables.
--
-- Times are Unix epoch seconds. A portal's name is the owner of its
-- subscriptions (subscription.owner).

CREATE TABLE portal (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,        -- lookup by name: add (duplicates), rotate, revoke
    max_pools   INTEGER NOT NULL CHECK (max_pools > 0),      -- pools it may define
    max_entries INTEGER NOT NULL CHECK (max_entries > 0),    -- IMPUs over all its pools
    created_at  INTEGER NOT NULL,
    last_used_at INTEGER,                    -- last accepted key; NULL = never
    revoked_at  INTEGER                      -- NULL unless revoked and not rotated since
);

-- An API key is "wwsfk_" base64url(key_id) "." base64url(secret). Only the
-- SHA-256 of the secret is kept; the key id finds the row. A portal has one
-- current key (expires_at NULL) and, after a rotation, old keys that work
-- until expires_at.
CREATE TABLE portal_key (
    id          INTEGER PRIMARY KEY,
    portal_id   INTEGER NOT NULL REFERENCES portal(id),
    key_id      BLOB NOT NULL UNIQUE CHECK (length(key_id) = 8),  -- authenticate: WHERE key_id = ?
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER                      -- NULL = the current key
);

-- Rotate, revoke and list: the keys of one portal:
--   UPDATE portal_key SET expires_at = ? WHERE portal_id = ? AND ...
--   DELETE FROM portal_key WHERE portal_id = ?
--   SELECT ... FROM portal_key WHERE portal_id = ?
CREATE INDEX portal_key_by_portal ON portal_key (portal_id);

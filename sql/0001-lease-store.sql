-- Lease store, version 1: subscriptions, pools, materialised pool entries and
-- the lease history. Applied in one transaction by the store (src/store), which
-- then sets PRAGMA user_version = 1.
--
-- Times are Unix epoch seconds. A pool entry is one (IMPU, IMPI) pair. Range
-- and wildcard pools do not store their entries up front: an entry row is
-- created the first time the pool hands it out (pool.next_index counts them),
-- so a pool of ten million IMPUs costs one row until it is used.

-- One IMS subscription: its IMPUs share subscription data in the HSS.
CREATE TABLE subscription (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,        -- lookup by name on import
    owner       TEXT,                        -- portal tenant; NULL = operator
    domain      TEXT NOT NULL,               -- IMS home domain
    impi_mode   TEXT NOT NULL CHECK (impi_mode IN ('shared', 'per-entry'))
);

CREATE TABLE pool (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,    -- lookup by name on every acquire
    subscription_id INTEGER NOT NULL REFERENCES subscription(id),
    kind            TEXT NOT NULL CHECK (kind IN ('authenticated', 'anonymous')),
    lease_ttl       INTEGER NOT NULL CHECK (lease_ttl > 0),
    quarantine      INTEGER NOT NULL CHECK (quarantine >= 0),
    max_per_holder  INTEGER NOT NULL CHECK (max_per_holder > 0),
    source          TEXT NOT NULL CHECK (source IN ('list', 'range', 'wildcard')),
    size            INTEGER NOT NULL CHECK (size >= 0),   -- entries the pool may hand out
    next_index      INTEGER NOT NULL DEFAULT 0,           -- entries materialised so far
    impu_template   TEXT,                    -- as written in the config
    impu_prefix     TEXT,
    impu_suffix     TEXT,
    impu_start      INTEGER,                 -- range: first number
    impu_width      INTEGER,                 -- range: digits, zero-padded
    impu_regex      TEXT,                    -- wildcard: the part between the ! marks
    impi_template   TEXT,
    impi_prefix     TEXT,
    impi_suffix     TEXT,
    impi_start      INTEGER,
    impi_width      INTEGER,
    shared_impi     TEXT,                    -- impi_mode 'shared'
    token_length    INTEGER,                 -- wildcard: characters generated
    token_alphabet  TEXT,                    -- wildcard: 'base32' or 'digits'
    source_file     TEXT,
    imported_at     INTEGER NOT NULL
);

-- One materialised (IMPU, IMPI) pair of a pool and its current or last lease.
-- The state is derived from the times, so nothing has to run for a lease to
-- expire or a quarantine to end:
--   leased      expires_at > now
--   quarantine  expires_at <= now < avail_at
--   free        avail_at <= now
-- avail_at is when the entry may go to another holder: end of lease + hold.
CREATE TABLE pool_entry (
    id          INTEGER PRIMARY KEY,
    pool_id     INTEGER NOT NULL REFERENCES pool(id),
    idx         INTEGER NOT NULL,            -- position in the pool's source
    impu        TEXT NOT NULL UNIQUE,        -- lookup by IMPU (renew, release, show); one pool per IMPU
    impi        TEXT NOT NULL,
    holder      TEXT,                        -- current or last holder (affinity); NULL after revoke
    client_addr TEXT,
    leased_at   INTEGER,
    expires_at  INTEGER NOT NULL DEFAULT 0,
    avail_at    INTEGER NOT NULL DEFAULT 0,
    retired     INTEGER NOT NULL DEFAULT 0,  -- no longer in the pool's source; never handed out again
    history_id  INTEGER,                     -- open lease_history row; NULL when no lease is open
    UNIQUE (pool_id, idx)                    -- materialising the same index twice is a bug
);

-- Acquire: the entry free for longest, O(log n):
--   SELECT ... WHERE pool_id = ? ORDER BY avail_at LIMIT 1
CREATE INDEX pool_entry_by_avail ON pool_entry (pool_id, avail_at);

-- Acquire (affinity) and the per-holder maximum:
--   SELECT ... WHERE pool_id = ? AND holder = ?
CREATE INDEX pool_entry_by_holder ON pool_entry (pool_id, holder) WHERE holder IS NOT NULL;

-- Reclaim: the leases still open whose time has passed, oldest first:
--   SELECT ... WHERE history_id IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?
CREATE INDEX pool_entry_open_by_expiry ON pool_entry (expires_at) WHERE history_id IS NOT NULL;

-- Audit: one row per lease, from acquisition to its end. An open row (ended_at
-- NULL) ends at its entry's expires_at unless renewed again.
CREATE TABLE lease_history (
    id          INTEGER PRIMARY KEY,
    pool_id     INTEGER NOT NULL REFERENCES pool(id),
    impu        TEXT NOT NULL,
    impi        TEXT NOT NULL,
    holder      TEXT NOT NULL,
    client_addr TEXT,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    end_reason  TEXT CHECK (end_reason IN ('released', 'expired', 'revoked')),
    renewals    INTEGER NOT NULL DEFAULT 0
);

-- "Who held IMPU X at time T":
--   SELECT ... WHERE impu = ? AND started_at <= ? ORDER BY started_at DESC
CREATE INDEX lease_history_by_impu ON lease_history (impu, started_at);

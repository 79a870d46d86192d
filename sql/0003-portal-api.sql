-- Portal API, version 3: pools that portals manage themselves, the record of
-- what each portal changed, and the answers kept for retried requests.
-- Applied in one transaction by the store (src/store), which then sets
-- PRAGMA user_version = 3. A database of version 2 is upgraded in place.
--
-- Times are Unix epoch seconds.

-- Who manages a pool: NULL for the pool-config files (pool import), else the
-- portal that made it through the API. Each side refuses to change the
-- other's pools.
ALTER TABLE pool ADD COLUMN portal_id INTEGER REFERENCES portal(id);
-- The pool's ETag: every change of its definition or its entries adds one.
ALTER TABLE pool ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE pool ADD COLUMN created_at INTEGER;
-- 1: deleted with ?when=released: hands out nothing more and goes when its
-- last lease ends.
ALTER TABLE pool ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
-- A deleted pool keeps its row for the lease history of its IMPUs, renamed
-- NAME#ID (a character no pool name has) so that the name can be used again;
-- its entries are gone.
ALTER TABLE pool ADD COLUMN deleted_at INTEGER;
UPDATE pool SET created_at = imported_at;

-- A portal's pools (limits, listing in id order):
--   SELECT ... FROM pool WHERE portal_id = ? AND deleted_at IS NULL
CREATE INDEX pool_by_portal ON pool (portal_id) WHERE portal_id IS NOT NULL;

-- A pool's leases, in id order for paging that holds still while leases are
-- added:
--   SELECT ... FROM lease_history WHERE pool_id = ? AND id > ? ORDER BY id LIMIT ?
CREATE INDEX lease_history_by_pool ON lease_history (pool_id, id);

-- Every write a portal made through the API, for `wwsfctl portal log`.
CREATE TABLE portal_audit (
    id          INTEGER PRIMARY KEY,
    portal_id   INTEGER NOT NULL REFERENCES portal(id),
    at          INTEGER NOT NULL,
    action      TEXT NOT NULL,               -- pool.create, pool.update, pool.delete, entries.add, entry.remove, lease.revoke
    resource    TEXT NOT NULL,               -- the path written to: /api/v1/portal/pools/7
    before      TEXT,                        -- JSON of the resource before; NULL when it did not exist
    after       TEXT,                        -- JSON after; NULL when it is gone
    client_addr TEXT
);
--   SELECT ... FROM portal_audit WHERE portal_id = ? AND at >= ? ORDER BY id
CREATE INDEX portal_audit_by_portal ON portal_audit (portal_id, at);

-- The first answer to a POST that carried an Idempotency-Key, replayed when
-- the same key comes again with the same body; kept for 24 hours.
CREATE TABLE portal_idempotency (
    portal_id   INTEGER NOT NULL REFERENCES portal(id),
    key         TEXT NOT NULL,
    request_sha256 BLOB NOT NULL CHECK (length(request_sha256) = 32),  -- method, path and body
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    location    TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (portal_id, key)
);
--   DELETE FROM portal_idempotency WHERE created_at < ?
CREATE INDEX portal_idempotency_by_age ON portal_idempotency (created_at);

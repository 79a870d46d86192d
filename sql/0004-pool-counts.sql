-- Pool counts, version 4: how many entries of each pool are leased, in
-- quarantine and retired, kept with the pool so that a pool's statistics cost
-- the same for 10^3 entries and for 10^7. Applied in one transaction by the
-- store (src/store), which then sets PRAGMA user_version = 4.
--
-- An entry's state is a function of its times and the clock (0001: leased
-- while expires_at > now, in quarantine while avail_at > now), so nothing has
-- to run for a lease to end. The counts therefore hold for one instant, the
-- pool's counted_at:
--   n_expires_after  entries not retired with expires_at > counted_at (leased then)
--   n_avail_after    entries not retired with avail_at > counted_at (leased or in
--                    quarantine then; avail_at >= expires_at for every such entry)
-- and the triggers below keep them true of counted_at whenever a row of
-- pool_entry changes, whatever statement changes it. The counts at a later
-- time now are those less the entries whose lease or quarantine ended between
-- counted_at and now: two range counts that cost what changed state in
-- between, not the pool's size, on indexes the lease path has anyway:
--   quarantines: pool_entry_by_avail (pool_id, avail_at);
--   leases:      pool_entry_open_by_expiry (expires_at) WHERE history_id IS NOT NULL.
-- The second holds every lease that can end after counted_at because the
-- lease engine moves a pool's counted_at up to a lease's end before it closes
-- the lease (release, revoke, reclaim), and extends open leases only (an
-- entry live again by the clock after its lease closed gets a new lease): a
-- closed lease ended at or before counted_at. The daemon's reclaim moves every pool's counted_at up to now on
-- each tick, so that little ever lies in between. (A time before counted_at,
-- which only `wwsfctl --now` asks for, is counted by a scan.)

ALTER TABLE pool ADD COLUMN counted_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pool ADD COLUMN n_entries INTEGER NOT NULL DEFAULT 0;        -- materialised rows
ALTER TABLE pool ADD COLUMN n_retired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pool ADD COLUMN n_expires_after INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pool ADD COLUMN n_avail_after INTEGER NOT NULL DEFAULT 0;

-- The counts of what is there now, once.
UPDATE pool SET counted_at = CAST(strftime('%s', 'now') AS INTEGER);
UPDATE pool SET
    n_entries = (SELECT count(*) FROM pool_entry e WHERE e.pool_id = pool.id),
    n_retired = (SELECT count(*) FROM pool_entry e WHERE e.pool_id = pool.id AND e.retired != 0),
    n_expires_after = (SELECT count(*) FROM pool_entry e WHERE e.pool_id = pool.id AND e.retired = 0
                       AND e.expires_at > pool.counted_at),
    n_avail_after = (SELECT count(*) FROM pool_entry e WHERE e.pool_id = pool.id AND e.retired = 0
                     AND e.avail_at > pool.counted_at);

-- In SET, the pool's columns are those of the row before the update, so
-- counted_at is the instant the counts hold for.
CREATE TRIGGER pool_entry_counts_insert AFTER INSERT ON pool_entry BEGIN
    UPDATE pool SET
        n_entries = n_entries + 1,
        n_retired = n_retired + (NEW.retired != 0),
        n_expires_after = n_expires_after + (NEW.retired = 0 AND NEW.expires_at > counted_at),
        n_avail_after = n_avail_after + (NEW.retired = 0 AND NEW.avail_at > counted_at)
    WHERE id = NEW.pool_id;
END;

CREATE TRIGGER pool_entry_counts_delete AFTER DELETE ON pool_entry BEGIN
    UPDATE pool SET
        n_entries = n_entries - 1,
        n_retired = n_retired - (OLD.retired != 0),
        n_expires_after = n_expires_after - (OLD.retired = 0 AND OLD.expires_at > counted_at),
        n_avail_after = n_avail_after - (OLD.retired = 0 AND OLD.avail_at > counted_at)
    WHERE id = OLD.pool_id;
END;

-- Entries never move to another pool (no statement sets pool_id).
CREATE TRIGGER pool_entry_counts_update AFTER UPDATE OF expires_at, avail_at, retired ON pool_entry
WHEN OLD.expires_at IS NOT NEW.expires_at OR OLD.avail_at IS NOT NEW.avail_at OR OLD.retired IS NOT NEW.retired
BEGIN
    UPDATE pool SET
        n_retired = n_retired + (NEW.retired != 0) - (OLD.retired != 0),
        n_expires_after = n_expires_after + (NEW.retired = 0 AND NEW.expires_at > counted_at)
                                          - (OLD.retired = 0 AND OLD.expires_at > counted_at),
        n_avail_after = n_avail_after + (NEW.retired = 0 AND NEW.avail_at > counted_at)
                                      - (OLD.retired = 0 AND OLD.avail_at > counted_at)
    WHERE id = NEW.pool_id;
END;

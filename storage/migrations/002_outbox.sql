-- Eddy device state, version 2: the report outbox for the hub (fleet/API.md, "reports").
--
-- Every journal transition, probe result and event becomes a report here, in the same
-- transaction as what it reports, while a hub is configured. Reports leave oldest first and are
-- deleted when the hub acknowledges them. `seq` is the report's per-device sequence number: its
-- id on the wire is "<device id>:<seq>". AUTOINCREMENT never hands a number out twice, and the
-- first number of a new database is seeded from the clock (milliseconds since 1970), so a
-- device whose data folder is wiped does not reuse ids the hub has seen (it would drop the new
-- reports as duplicates).
CREATE TABLE outbox (
  seq  INTEGER PRIMARY KEY AUTOINCREMENT,
  at   INTEGER NOT NULL,   -- unix seconds, when it was queued
  body TEXT NOT NULL       -- the report as JSON, without its id
);
INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', CAST(strftime('%s', 'now') AS INTEGER) * 1000);

-- The rollout an attempt belongs to, and the hub's generation of that rollout when it was
-- admitted (0 without a hub): reports carry both, and a release rejected here is retried only
-- under a higher generation.
ALTER TABLE updates ADD COLUMN rollout TEXT;
ALTER TABLE updates ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rejected_releases ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

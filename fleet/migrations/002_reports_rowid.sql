-- Reports in a rowid table, in the order they arrive, with (device, id) a unique index beside it.
-- 001 kept them WITHOUT ROWID, ordered by (device, id): each ~330-byte row went into its device's
-- B-tree page, about a dozen rows a page, so inserts split pages often and read and wrote pages
-- ten times the size of what now goes by device (the ~40-byte index entries); the rows of a group
-- commit now share the table's last pages (bench/RESULTS.md, "Hub"). An older eddy-hub still
-- reads and writes this table: the columns are the same, and ON CONFLICT (device, id) finds the
-- unique index.
CREATE TABLE reports_by_arrival (
  device TEXT NOT NULL,
  id TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  rollout TEXT NOT NULL,
  release TEXT NOT NULL,
  version TEXT NOT NULL,
  fleet_commit TEXT NOT NULL,
  generation INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  outcome TEXT NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  probes TEXT NOT NULL
);
INSERT INTO reports_by_arrival (device, id, received_at, time, kind, target, rollout, release, version, fleet_commit,
                                generation, from_state, to_state, outcome, level, message, probes)
  SELECT device, id, received_at, time, kind, target, rollout, release, version, fleet_commit, generation, from_state,
         to_state, outcome, level, message, probes
  FROM reports ORDER BY received_at, time, device, id;
DROP TABLE reports;
ALTER TABLE reports_by_arrival RENAME TO reports;
CREATE UNIQUE INDEX reports_by_device ON reports (device, id);

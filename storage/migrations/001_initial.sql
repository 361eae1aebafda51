-- Eddy device state, version 1.
-- key/value facts: accepted_commit, accepted_at, refused_commit, last_poll_at, last_poll_result
CREATE TABLE kv (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- One row per update attempt; `state` is the state machine's persisted state. target, release
-- and version are filled in when a release is admitted (a commit that admits nothing keeps
-- them NULL).
CREATE TABLE updates (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  commit_id     TEXT NOT NULL,
  target        TEXT,
  release       TEXT,
  version       TEXT,
  sha256        TEXT,
  from_version  TEXT,      -- the committed version when the attempt started: the rollback target
  state         TEXT NOT NULL,
  outcome       TEXT,      -- committed | rolled-back | failed | refused | interrupted, once finished
  message       TEXT,
  started_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE INDEX updates_target ON updates (target, version);

-- The journal: every transition, in order. `at` columns of transitions, probe_results and
-- events are unix time in microseconds, so that the three interleave in order in `eddy history`.
CREATE TABLE transitions (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  update_id  INTEGER NOT NULL REFERENCES updates (id),
  at         INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  event      TEXT NOT NULL,
  message    TEXT
);

CREATE TABLE probe_results (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  update_id   INTEGER NOT NULL REFERENCES updates (id),
  at          INTEGER NOT NULL,
  iteration   INTEGER NOT NULL,
  probe       TEXT NOT NULL,
  ok          INTEGER NOT NULL,
  detail      TEXT,
  duration_ms INTEGER NOT NULL
);

-- Things worth telling an operator that are not transitions: refused commits, skipped releases.
CREATE TABLE events (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  level   TEXT NOT NULL,
  message TEXT NOT NULL
);

-- What runs now, and what ran before it (the operator's rollback target).
CREATE TABLE installed (
  target           TEXT PRIMARY KEY,
  current_version  TEXT NOT NULL,
  current_release  TEXT NOT NULL,
  previous_version TEXT,
  previous_release TEXT,
  updated_at       INTEGER NOT NULL
);

-- Releases that failed on this device (probes failed, bad payload, rolled back by an
-- operator): not installed again until the rollout names another version or payload.
CREATE TABLE rejected_releases (
  target  TEXT NOT NULL,
  version TEXT NOT NULL,
  sha256  TEXT NOT NULL,
  reason  TEXT NOT NULL,
  at      INTEGER NOT NULL,
  PRIMARY KEY (target, version, sha256)
);

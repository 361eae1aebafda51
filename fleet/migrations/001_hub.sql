-- eddy-hub's database: what devices told the hub, and the state of each rollout.

-- Facts of the hub itself: the fleet commit it accepted.
CREATE TABLE hub_facts (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Devices that have synced: their labels and what they run (JSON, as in the sync request).
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  labels TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  fleet_commit TEXT NOT NULL,
  targets TEXT NOT NULL
);

-- Reports as devices sent them, once each: (device, id) is the device's outbox sequence.
CREATE TABLE reports (
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
  probes TEXT NOT NULL,
  PRIMARY KEY (device, id)
) WITHOUT ROWID;

-- One row per rollout of the accepted fleet: where the director has it, and its last verdict.
CREATE TABLE rollouts (
  name TEXT PRIMARY KEY,
  release TEXT NOT NULL,
  fleet_commit TEXT NOT NULL,
  generation INTEGER NOT NULL,
  state TEXT NOT NULL,
  step INTEGER NOT NULL,
  step_started_at INTEGER NOT NULL,
  generation_started_at INTEGER NOT NULL,
  verdict_at INTEGER NOT NULL DEFAULT 0,
  verdict_decision TEXT NOT NULL DEFAULT '',
  verdict_value REAL NOT NULL DEFAULT 0,
  verdict_threshold REAL NOT NULL DEFAULT 0,
  verdict_message TEXT NOT NULL DEFAULT ''
);

-- Devices admitted to a rollout's generation (sticky: never removed within a generation).
CREATE TABLE admissions (
  rollout TEXT NOT NULL,
  generation INTEGER NOT NULL,
  device TEXT NOT NULL,
  admitted_at INTEGER NOT NULL,
  step INTEGER NOT NULL,
  PRIMARY KEY (rollout, generation, device)
) WITHOUT ROWID;

-- What each device reported for a rollout's release in a generation: the verdict's inputs.
-- outcome: '' (in progress), committed, rolled-back or failed.
CREATE TABLE verdict_facts (
  rollout TEXT NOT NULL,
  generation INTEGER NOT NULL,
  device TEXT NOT NULL,
  first_at INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  outcome TEXT NOT NULL DEFAULT '',
  outcome_at INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (rollout, generation, device)
) WITHOUT ROWID;

-- The rollouts' timeline: only changes (a step widened, a halt, an operator command, ...).
-- rollout '' holds the hub's own events (a refused fleet commit).
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rollout TEXT NOT NULL,
  generation INTEGER NOT NULL,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL,
  value REAL,
  threshold REAL
);
CREATE INDEX events_by_rollout ON events (rollout, id);
CREATE INDEX events_by_time ON events (at, id);

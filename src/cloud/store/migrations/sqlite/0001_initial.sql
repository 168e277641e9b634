-- detectordag store, SQLite schema 1: accounts, notification targets, devices, shadows,
-- events, timers and the notification outbox.
--
-- STRICT tables make SQLite check column types as PostgreSQL will. Booleans are INTEGER
-- 0/1. Times are epoch milliseconds unless the column says _s. CHECK constraints repeat
-- the store's own validation so that other writers (sqlite3, dagctl) cannot store values
-- dagd would misread.

-- Enumerations are checked with OR chains, not `x IN ('a', 'b', 'c')`: SQLite builds an
-- ephemeral b-tree for a constant IN list of three or more items on every execution of
-- the statement, which made each single-row INSERT several times slower. (Lists of two,
-- like IN (0, 1), compile to plain comparisons.)
--
-- JSON columns hold compact JSON objects: json_valid() plus a leading '{' checks that with
-- one parse (json_type() would parse again, and raises an error rather than failing the
-- CHECK on malformed text). A failed CHECK is StoreErrc::invalid_argument.

-- Settings are typed columns, not one JSON blob: the schema holds the defaults and the
-- ranges in one place, the rules read single settings without parsing, and a new setting
-- is an ADD COLUMN ... DEFAULT, cheap on SQLite and PostgreSQL alike.
CREATE TABLE accounts (
  id                  TEXT    NOT NULL PRIMARY KEY,
  username            TEXT    NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 128),
  password_hash       TEXT    NOT NULL CHECK (length(password_hash) BETWEEN 1 AND 512),
  created_at_ms       INTEGER NOT NULL,
  power_off_grace_s   INTEGER NOT NULL DEFAULT 0   CHECK (power_off_grace_s BETWEEN 0 AND 604800),
  disconnect_grace_s  INTEGER NOT NULL DEFAULT 900 CHECK (disconnect_grace_s BETWEEN 0 AND 604800),
  low_battery_percent INTEGER NOT NULL DEFAULT 20  CHECK (low_battery_percent BETWEEN 0 AND 100),
  time_zone           TEXT    NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64),
  notify_power_lost   INTEGER NOT NULL DEFAULT 1 CHECK (notify_power_lost IN (0, 1)),
  notify_power_back   INTEGER NOT NULL DEFAULT 1 CHECK (notify_power_back IN (0, 1)),
  notify_contact_lost INTEGER NOT NULL DEFAULT 1 CHECK (notify_contact_lost IN (0, 1)),
  notify_dag_back     INTEGER NOT NULL DEFAULT 1 CHECK (notify_dag_back IN (0, 1)),
  notify_battery_low  INTEGER NOT NULL DEFAULT 1 CHECK (notify_battery_low IN (0, 1))
) STRICT;

CREATE TABLE notification_targets (
  id            TEXT    NOT NULL PRIMARY KEY,
  account_id    TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  kind          TEXT    NOT NULL CHECK (kind = 'email' OR kind = 'webhook' OR kind = 'ntfy'),
  address       TEXT    NOT NULL CHECK (length(address) BETWEEN 1 AND 512),
  verified      INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
  secret        TEXT    CHECK (secret IS NULL OR length(secret) <= 512),
  created_at_ms INTEGER NOT NULL,
  UNIQUE (account_id, kind, address)
) STRICT;

-- One row per dag with the state dagd derives from its messages. Small rows, looked up
-- by id on every message: WITHOUT ROWID saves the second b-tree search.
CREATE TABLE devices (
  id                     TEXT    NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
  account_id             TEXT    NOT NULL REFERENCES accounts (id),
  name                   TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  provisioned_at_ms      INTEGER NOT NULL,
  revoked                INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
  power                  TEXT    NOT NULL DEFAULT 'unknown'
                                 CHECK (power = 'unknown' OR power = 'on' OR power = 'off'),
  power_since_ms         INTEGER,
  last_seq               INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
  connection             TEXT    NOT NULL DEFAULT 'unknown'
                                 CHECK (connection = 'unknown' OR connection = 'connected'
                                        OR connection = 'disconnected'),
  connection_since_ms    INTEGER,
  last_seen_ms           INTEGER,
  user_state             TEXT    NOT NULL DEFAULT 'unknown'
                                 CHECK (user_state = 'unknown' OR user_state = 'on' OR user_state = 'off'
                                        OR user_state = 'was_on' OR user_state = 'was_off'),
  battery                TEXT    CHECK (battery IS NULL
                                        OR (json_valid(battery) AND substr(battery, 1, 1) = '{')),
  presence_marker        TEXT    NOT NULL DEFAULT '' CHECK (length(presence_marker) <= 256),
  last_lifecycle_version INTEGER,
  notified_lost_contact  INTEGER NOT NULL DEFAULT 0 CHECK (notified_lost_contact IN (0, 1)),
  notified_power_lost    INTEGER NOT NULL DEFAULT 0 CHECK (notified_power_lost IN (0, 1)),
  notified_battery_low   INTEGER NOT NULL DEFAULT 0 CHECK (notified_battery_low IN (0, 1))
) STRICT, WITHOUT ROWID;

CREATE INDEX devices_by_account ON devices (account_id, name, id);

-- The shadow document in the engine's storage form; `revision` counts puts (the
-- optimistic-concurrency token), the shadow's own version lives in the document. A
-- deleted shadow stays as its tombstone document so that its version carries on.
CREATE TABLE shadows (
  device_id TEXT    NOT NULL PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  revision  INTEGER NOT NULL CHECK (revision >= 1),
  document  TEXT    NOT NULL CHECK (json_valid(document) AND substr(document, 1, 1) = '{')
) STRICT;

-- History. AUTOINCREMENT: ids are never reused, so they are stable pagination cursors.
CREATE TABLE events (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id        TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  kind             TEXT    NOT NULL
                           CHECK (kind = 'power_off' OR kind = 'power_on' OR kind = 'lost_contact'
                                  OR kind = 'back' OR kind = 'battery_low'),
  observed_at_ms   INTEGER NOT NULL,
  received_at_ms   INTEGER NOT NULL,
  seq              INTEGER CHECK (seq IS NULL OR (seq >= 1 AND (kind = 'power_off' OR kind = 'power_on'))),
  clock_fallback   INTEGER NOT NULL DEFAULT 0 CHECK (clock_fallback IN (0, 1)),
  user_state_after TEXT    NOT NULL DEFAULT 'unknown'
                           CHECK (user_state_after = 'unknown' OR user_state_after = 'on'
                                  OR user_state_after = 'off' OR user_state_after = 'was_on'
                                  OR user_state_after = 'was_off')
) STRICT;

-- The dedupe of resent reports: one power event per (device, seq). NULL seqs (other
-- kinds, reports without seq) never collide.
--
-- It is also the only index by device, on purpose. In an outage storm every event is for
-- another device, so each index keyed by device costs one more scattered page written to
-- the WAL per event (about 10 us here, a third of the insert). History reads are rare (an
-- owner looking at a dashboard) and one dag's history is small (a few events a day), so
-- listing finds a device's events through this index and sorts them by id, rather than
-- keeping a second (device_id, id) index up to date on every write. Non-power events have
-- entries too (with a NULL seq): the index must stay complete, not partial.
CREATE UNIQUE INDEX events_device_seq ON events (device_id, seq);

-- Durable debounce timers: one per (device, kind). A claim is a lease (claimed_by until
-- claimed_until_ms), so replicas never fire the same timer and a dead replica's claims
-- expire.
CREATE TABLE timers (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id        TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  kind             TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
  due_at_ms        INTEGER NOT NULL,
  marker           TEXT    NOT NULL DEFAULT '' CHECK (length(marker) <= 256),
  claimed_by       TEXT,
  claimed_until_ms INTEGER,
  UNIQUE (device_id, kind)
) STRICT;

CREATE INDEX timers_due ON timers (due_at_ms);

-- Transactional outbox of notification intents, claimed with leases like timers.
CREATE TABLE outbox (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id         TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  device_id          TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  device_name        TEXT    NOT NULL CHECK (length(device_name) <= 128),
  transition         TEXT    NOT NULL
                             CHECK (transition = 'power_lost' OR transition = 'power_back'
                                    OR transition = 'contact_lost' OR transition = 'dag_back'
                                    OR transition = 'battery_low'),
  user_state         TEXT    NOT NULL
                             CHECK (user_state = 'on' OR user_state = 'off' OR user_state = 'was_on'
                                    OR user_state = 'was_off'),
  observed_at_ms     INTEGER NOT NULL,
  created_at_ms      INTEGER NOT NULL,
  payload            TEXT    NOT NULL DEFAULT '{}'
                             CHECK (json_valid(payload) AND substr(payload, 1, 1) = '{'),
  status             TEXT    NOT NULL DEFAULT 'pending'
                             CHECK (status = 'pending' OR status = 'done' OR status = 'failed'),
  attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at_ms INTEGER NOT NULL,
  claimed_by         TEXT,
  claimed_until_ms   INTEGER,
  last_error         TEXT,
  finished_at_ms     INTEGER
) STRICT;

-- Only pending rows are ever claimed or counted; the index stays as small as the backlog.
CREATE INDEX outbox_ready ON outbox (next_attempt_at_ms, id) WHERE status = 'pending';

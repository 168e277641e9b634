-- detectordag store, SQLite schema 2: what the admin CLI (dagctl) provisions besides
-- accounts and devices: the devices' client certificates, so that they can be revoked and
-- listed in the CRL, and configuration entries of the fleet, an account or a device.
--
-- Same conventions as 0001: STRICT tables, CHECK constraints repeating the store's own
-- validation, enumerations as OR chains.

-- One row per issued client certificate. device_id is deliberately not a foreign key: a
-- deleted device's certificates stay, so that they remain revocable and a revoked one
-- stays in the CRL until it expires. serial_hex is upper-case hex as dag::pki prints it,
-- so that one serial cannot be stored twice in two spellings.
CREATE TABLE certificates (
  serial_hex    TEXT    NOT NULL PRIMARY KEY
                        CHECK (length(serial_hex) BETWEEN 1 AND 64
                               AND serial_hex NOT GLOB '*[^0-9A-F]*'),
  device_id     TEXT    NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
  issued_at_ms  INTEGER NOT NULL,
  not_after_ms  INTEGER NOT NULL,
  revoked_at_ms INTEGER
) STRICT;

-- A device's certificates, oldest first. The CRL's query (revoked, not yet expired) scans
-- the table: it runs only when dagctl revokes, and there are a few rows per device.
CREATE INDEX certificates_by_device ON certificates (device_id, issued_at_ms);

-- Configuration as JSON values under a key, per scope: the fleet (scope_id ''), an account
-- or a device (scope_id its id). Not foreign keys either, as scope_id names rows of two
-- tables; delete_account and delete_device remove the entries of what they delete.
CREATE TABLE config_entries (
  scope         TEXT    NOT NULL CHECK (scope = 'fleet' OR scope = 'account' OR scope = 'device'),
  scope_id      TEXT    NOT NULL CHECK (length(scope_id) <= 128),
  key           TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
  value         TEXT    NOT NULL CHECK (json_valid(value)),
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (scope, scope_id, key),
  CHECK ((scope = 'fleet') = (scope_id = ''))
) STRICT, WITHOUT ROWID;

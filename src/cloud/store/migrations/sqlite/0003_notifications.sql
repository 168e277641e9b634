-- detectordag store, SQLite schema 3: what notification delivery needs besides the outbox
-- of schema 1: intents per target, the health of each target as its account sees it, the
-- body format of webhooks (an SMS gateway wants its own), and e-mail verification.
--
-- Same conventions as 0001: STRICT tables, CHECK constraints repeating the store's own
-- validation, enumerations as OR chains. ADD COLUMN keeps the rows already stored; a
-- column added with a REFERENCES clause must default to NULL, one added NOT NULL must
-- have a default, and SQLite checks the new CHECK constraints against every existing row.

-- Health of a target, shown to its account: consecutive failed deliveries (0 after a
-- success), the last error and when, the last success.
ALTER TABLE notification_targets ADD COLUMN failure_count INTEGER NOT NULL DEFAULT 0
  CHECK (failure_count >= 0);
ALTER TABLE notification_targets ADD COLUMN last_error TEXT
  CHECK (last_error IS NULL OR length(last_error) <= 1024);
ALTER TABLE notification_targets ADD COLUMN last_error_at_ms INTEGER;
ALTER TABLE notification_targets ADD COLUMN last_success_at_ms INTEGER;

-- Webhooks only: the body to send instead of dagd's JSON document (e.g. the form an SMS
-- gateway expects) and its Content-Type header.
ALTER TABLE notification_targets ADD COLUMN body_template TEXT
  CHECK (body_template IS NULL OR (kind = 'webhook' AND length(body_template) <= 4096));
ALTER TABLE notification_targets ADD COLUMN content_type TEXT
  CHECK (content_type IS NULL OR (kind = 'webhook' AND length(content_type) BETWEEN 1 AND 128));

-- E-mail verification: verification_requested asks the notifier for a (new) verification
-- mail; sending one clears it and records when, which rate-limits resends. The store sets
-- it on insert for unverified e-mail targets; rows stored before this schema that need no
-- mail (verified, or not e-mail) get it cleared below.
ALTER TABLE notification_targets ADD COLUMN verification_sent_at_ms INTEGER;
ALTER TABLE notification_targets ADD COLUMN verification_requested INTEGER NOT NULL DEFAULT 1
  CHECK (verification_requested IN (0, 1));
UPDATE notification_targets SET verification_requested = 0 WHERE verified = 1 OR kind <> 'email';

-- What the notifier polls for: small, as only targets waiting for a mail are in it.
CREATE INDEX targets_needing_verification ON notification_targets (created_at_ms, id)
  WHERE kind = 'email' AND verified = 0 AND verification_requested = 1;

-- One row per mailed token. Only the token's SHA-256 (lower-case hex) is kept, so a copy
-- of the database verifies nothing. A token is valid until used or expired.
CREATE TABLE verifications (
  token_hash    TEXT    NOT NULL PRIMARY KEY
                        CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
  target_id     TEXT    NOT NULL REFERENCES notification_targets (id) ON DELETE CASCADE,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL CHECK (expires_at_ms > created_at_ms),
  used_at_ms    INTEGER
) STRICT, WITHOUT ROWID;

-- Removing a target finds its tokens (the cascade) and a new token its target's old ones.
CREATE INDEX verifications_by_target ON verifications (target_id);

-- Intents per target: dagd expands each intent of the rules into one row per verified
-- target of the account that wants it, or one row with a NULL target when there is none
-- (the notifier marks it done at once). Removing a target removes its intents.
ALTER TABLE outbox ADD COLUMN target_id TEXT
  REFERENCES notification_targets (id) ON DELETE CASCADE;

-- The cascade of a target's removal (and the notifier's look-ups by target) without a scan
-- of the whole outbox. Partial: rows without a target, and the writes that add them, do
-- not pay for it. SQLite uses it for `target_id = ?`, which implies IS NOT NULL. Claims
-- keep using outbox_ready (next_attempt_at_ms, id).
CREATE INDEX outbox_by_target ON outbox (target_id) WHERE target_id IS NOT NULL;

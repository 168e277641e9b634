-- detectordag store, SQLite schema 4: battery readings over time, for the dashboard's
-- battery chart. devices.battery keeps only the latest report; this keeps a thinned
-- series of them (dagd records at most one per device every few minutes, plus one at
-- each power change) for a limited time (the store deletes a device's old readings as it
-- records new ones).
--
-- Same conventions as 0001: STRICT, CHECK constraints repeating the store's validation.
-- Each value may be NULL: a gauge may report only some of them (minutesLeft is null on
-- mains), and on_battery is NULL when the power was not known yet.
--
-- WITHOUT ROWID keyed by (device_id, at_ms): a device's readings are stored together in
-- time order, so a chart's window and the retention delete are one range of the primary
-- key, and a reading costs one b-tree insert (no rowid table plus index). The key also
-- makes a second reading of the same device and millisecond replace the first.
-- ON DELETE CASCADE: removing a device removes its readings.
CREATE TABLE battery_readings (
  device_id    TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  at_ms        INTEGER NOT NULL,
  percent      REAL    CHECK (percent IS NULL OR (percent >= 0 AND percent <= 100)),
  volts        REAL    CHECK (volts IS NULL OR (volts >= 0 AND volts <= 100)),
  minutes_left INTEGER CHECK (minutes_left IS NULL OR minutes_left >= 0),
  on_battery   INTEGER CHECK (on_battery IS NULL OR on_battery IN (0, 1)),
  PRIMARY KEY (device_id, at_ms)
) STRICT, WITHOUT ROWID;

import { describe, expect, it } from 'vitest';
import { availability, timeline } from './outages';
import type { DagEvent, EventKind } from './types';

const H = 3_600_000;
const from = Date.parse('2026-11-26T00:00:00Z');
const until = from + 24 * H;
let id = 0;
const ev = (kind: EventKind, at: number): DagEvent => ({
  id: String(++id),
  kind,
  observedAt: new Date(at).toISOString(),
  receivedAt: new Date(at).toISOString(),
  seq: null,
  clockFallback: false,
  userState: null,
});

describe('timeline', () => {
  it('is unknown before the first report and finds a closed outage', () => {
    const t = timeline(
      [ev('power_on', from + 2 * H), ev('power_off', from + 10 * H), ev('power_on', from + 13 * H)],
      null,
      from,
      until,
    );
    expect(t.bands.map((b) => b.power)).toEqual(['unknown', 'on', 'off', 'on']);
    expect(t.outages).toEqual([{ start: from + 10 * H, end: from + 13 * H, durationMs: 3 * H }]);
    expect(availability(t)).toBeCloseTo((100 * 19) / 22);
  });

  it('takes the state at the window start from the event before it, in any order', () => {
    const before = ev('power_off', from - 5 * H);
    const t = timeline([ev('power_on', from + 1 * H), ev('power_off', from + 20 * H)].reverse(), before, from, until);
    expect(t.bands.map((b) => [b.power, b.end - b.start])).toEqual([
      ['off', 1 * H],
      ['on', 19 * H],
      ['off', 4 * H],
    ]);
    // newest first; the first began before the window; the last is ongoing
    expect(t.outages).toEqual([
      { start: from + 20 * H, end: null, durationMs: 4 * H },
      { start: from - 5 * H, end: from + 1 * H, durationMs: 6 * H },
    ]);
  });

  it('ignores repeated reports and events outside the window', () => {
    const t = timeline(
      [ev('power_on', from - H), ev('power_on', from + H), ev('power_on', from + 2 * H), ev('power_off', until + H)],
      null,
      from,
      until,
    );
    expect(t.bands.map((b) => b.power)).toEqual(['unknown', 'on']);
    expect(t.outages).toEqual([]);
    expect(availability(t)).toBe(100);
  });

  it('pairs lost contact with back and keeps battery warnings', () => {
    const t = timeline(
      [
        ev('back', from + H),
        ev('lost_contact', from + 5 * H),
        ev('battery_low', from + 6 * H),
        ev('back', from + 7 * H),
        ev('lost_contact', from + 23 * H),
      ],
      null,
      from,
      until,
    );
    expect(t.gaps).toEqual([
      { start: from, end: from + H },
      { start: from + 5 * H, end: from + 7 * H },
      { start: from + 23 * H, end: null },
    ]);
    expect(t.batteryLow).toEqual([from + 6 * H]);
    expect(availability(t)).toBeNull();
  });
});

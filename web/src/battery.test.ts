import { describe, expect, it } from 'vitest';
import { batteryPoints, batterySummary } from './battery';

const reading = (at: string, percent: number | null, onBattery: boolean | null = false) => ({
  at,
  percent,
  volts: 4,
  minutesLeft: null,
  onBattery,
});

describe('batteryPoints', () => {
  it('keeps the readings with a charge, in order', () => {
    const points = batteryPoints([
      reading('2026-11-27T10:00:00.000Z', 100),
      reading('2026-11-27T10:05:00.000Z', null),
      reading('not a time', 50),
      reading('2026-11-27T10:10:00.000Z', 87.5, true),
    ]);
    expect(points).toEqual([
      { at: Date.parse('2026-11-27T10:00:00Z'), percent: 100, onBattery: false },
      { at: Date.parse('2026-11-27T10:10:00Z'), percent: 87.5, onBattery: true },
    ]);
  });
});

describe('batterySummary', () => {
  const at = (hh: string) => Date.parse(`2026-11-27T${hh}:00:00Z`);
  it('says when there is nothing', () => {
    expect(batterySummary([], 'the last 24 hours', 'UTC')).toBe('No battery readings in the last 24 hours.');
  });
  it('names the first, the latest and the lowest charge', () => {
    const text = batterySummary(
      [
        { at: at('08'), percent: 100, onBattery: false },
        { at: at('09'), percent: 79.6, onBattery: true },
        { at: at('10'), percent: 87.5, onBattery: false },
      ],
      'the last 7 days',
      'UTC',
    );
    expect(text).toMatch(/^3 battery readings in the last 7 days: 100\u00a0% at the first, 88\u00a0% at the latest \(.*10:00.*\); lowest 80\u00a0% \(.*09:00.*\)\.$/);
  });
  it('reads well with one reading', () => {
    expect(batterySummary([{ at: at('08'), percent: 64.5, onBattery: true }], 'the last 24 hours', 'UTC')).toMatch(
      /^1 battery reading in the last 24 hours: 65\u00a0% \(.*08:00.*\)\.$/,
    );
  });
});

import { describe, expect, it } from 'vitest';
import { duration, exactTime, minutesLeft, relativeTime, shortTime, usableTimeZone } from './time';

const now = Date.parse('2026-11-27T12:00:00Z');
const ago = (ms: number) => now - ms;

describe('relativeTime', () => {
  it('reads like speech', () => {
    expect(relativeTime(ago(5_000), now)).toBe('just now');
    expect(relativeTime(ago(60_000), now)).toBe('a minute ago');
    expect(relativeTime(ago(5 * 60_000), now)).toBe('5 minutes ago');
    expect(relativeTime(ago(65 * 60_000), now)).toBe('an hour ago');
    expect(relativeTime(ago(3 * 3_600_000), now)).toBe('3 hours ago');
    expect(relativeTime(ago(30 * 3_600_000), now)).toBe('yesterday');
    expect(relativeTime(ago(4 * 86_400_000), now)).toBe('4 days ago');
    expect(relativeTime(ago(400 * 86_400_000), now)).toBe('a year ago');
  });
  it('treats a clock slightly ahead as now', () => {
    expect(relativeTime(now + 10_000, now)).toBe('just now');
  });
});

describe('duration', () => {
  it('shows two units at most', () => {
    expect(duration(42_000)).toBe('42 s');
    expect(duration(12 * 60_000 + 5_000)).toBe('12 min');
    expect(duration(2 * 3_600_000 + 5 * 60_000)).toBe('2 h 5 min');
    expect(duration(3 * 3_600_000)).toBe('3 h');
    expect(duration(3 * 86_400_000 + 4 * 3_600_000 + 60_000)).toBe('3 d 4 h');
    expect(duration(-5)).toBe('under 1 s');
    expect(duration(400)).toBe('under 1 s');
  });
  it('says how long a battery lasts', () => {
    expect(minutesLeft(312)).toBe('about 5 h 12 min left');
  });
});

describe('time zones', () => {
  it('formats in the account zone and refuses unknown zones', () => {
    expect(usableTimeZone('Europe/Oslo')).toBe('Europe/Oslo');
    expect(usableTimeZone('Mars/Olympus')).toBeUndefined();
    expect(usableTimeZone(null)).toBeUndefined();
    expect(exactTime(now, 'UTC')).toContain('12:00:00');
    expect(exactTime(now, 'Europe/Oslo')).toContain('13:00:00');
    expect(shortTime(now, 'UTC')).toBe('27 Nov, 12:00:00');
  });
});
